//! Settings OLMo-core accepts that olmo-train does not honour yet. Each one set to a non-default value is
//! reported by its dotted path; a run refuses to start on any of them (never silently ignored), while
//! `--dry-run` lists them as notes.
use crate::config::DType;
use serde::Serialize;

use super::callbacks::Callbacks;
use super::train_module::DataParallelType;
use super::ExperimentConfig;
use crate::error::Error;

mod model;

/// One setting olmo-train cannot honour, with what to do instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported {
    pub path: String,
    pub value: String,
    pub hint: String,
}

impl From<Unsupported> for Error {
    fn from(u: Unsupported) -> Self {
        Error::NotSupported {
            path: u.path,
            value: u.value,
            hint: u.hint,
        }
    }
}

struct Checker(Vec<Unsupported>);

impl Checker {
    pub(super) fn flag(&mut self, cond: bool, path: &str, value: impl Serialize, hint: &str) {
        if cond {
            let value = serde_json::to_string(&value).unwrap_or_else(|_| "?".into());
            self.0.push(Unsupported {
                path: path.into(),
                value,
                hint: hint.into(),
            });
        }
    }

    pub(super) fn set<T: Serialize>(&mut self, value: &Option<T>, path: &str, hint: &str) {
        self.flag(value.is_some(), path, value, hint);
    }
}

pub(super) const LEAVE_NULL: &str = "leave it null";

/// `compile_model: true` (OLMo-core's example default) is accepted, not honoured: the run and
/// `--dry-run` say so.
pub fn compile_model_note(config: &ExperimentConfig) -> Option<&'static str> {
    config.train_module.compile_model.then_some(
        "train_module.compile_model = true: libtorch has no graph compiler (torch.compile is Python), so olmo-train runs its eager kernels",
    )
}

/// Every setting in `config` that olmo-train would not honour, in config order.
pub fn unsupported_settings(config: &ExperimentConfig) -> Vec<Unsupported> {
    let mut c = Checker(Vec::new());
    model::check_model(&mut c, config);
    check_data(&mut c, config);
    check_train_module(&mut c, config);
    check_trainer(&mut c, config);
    c.0
}

fn check_data(c: &mut Checker, config: &ExperimentConfig) {
    let d = &config.dataset;
    c.set(&d.mix, "dataset.mix", "list the files in dataset.paths");
    c.set(
        &d.source_mixture_config,
        "dataset.source_mixture_config",
        LEAVE_NULL,
    );
}

fn check_train_module(c: &mut Checker, config: &ExperimentConfig) {
    let t = &config.train_module;
    c.set(&t.float8_config, "train_module.float8_config", LEAVE_NULL);
    c.set(&t.pp_config, "train_module.pp_config", LEAVE_NULL);
    c.set(&t.tp_config, "train_module.tp_config", LEAVE_NULL);
    c.set(&t.cp_config, "train_module.cp_config", LEAVE_NULL);
    c.set(&t.ep_config, "train_module.ep_config", LEAVE_NULL);
    c.set(
        &t.load_key_mapping,
        "train_module.load_key_mapping",
        LEAVE_NULL,
    );
    if let super::train_module::OptimConfig::SkipStepAdamW(o) = &t.optim {
        c.flag(
            o.dtype.is_some_and(|d| d != DType::Float32),
            "train_module.optim.dtype",
            o.dtype.unwrap_or_default(),
            "the moments are kept in the fp32 masters' dtype (null or float32)",
        );
    }
    if let Some(dp) = &t.dp_config {
        let dtype_ok =
            |d: Option<DType>| matches!(d, None | Some(DType::Float32) | Some(DType::Bfloat16));
        c.flag(
            !dtype_ok(dp.param_dtype),
            "train_module.dp_config.param_dtype",
            dp.param_dtype,
            "float32 or bfloat16 (or null: the model's fp32)",
        );
        c.flag(
            !dtype_ok(Some(dp.reduce_dtype)),
            "train_module.dp_config.reduce_dtype",
            dp.reduce_dtype,
            "float32 or bfloat16",
        );
        c.flag(
            dp.name == DataParallelType::Ddp && dp.param_dtype.is_some_and(|d| d != DType::Float32),
            "train_module.dp_config.param_dtype",
            dp.param_dtype,
            "under ddp the whole model would be cast; use fsdp for bf16 parameters, or autocast_precision",
        );
        c.flag(
            dp.name != DataParallelType::Ddp
                && !matches!(dp.wrapping_strategy.as_str(), "full" | "blocks"),
            "train_module.dp_config.wrapping_strategy",
            &dp.wrapping_strategy,
            "full or blocks (fine_grained is not built)",
        );
        let defaults = crate::config::train_module::DataParallelConfig::default();
        for (key, differs) in [
            (
                "only_allreduce_last_microbatch",
                dp.only_allreduce_last_microbatch != defaults.only_allreduce_last_microbatch,
            ),
            (
                "reduce_grads_in_fp32",
                dp.reduce_grads_in_fp32 != defaults.reduce_grads_in_fp32,
            ),
            (
                "accumulate_grads_in_fp32",
                dp.accumulate_grads_in_fp32 != defaults.accumulate_grads_in_fp32,
            ),
            ("bucket_cap_mb", dp.bucket_cap_mb != defaults.bucket_cap_mb),
            (
                "use_reduce_scatter",
                dp.use_reduce_scatter != defaults.use_reduce_scatter,
            ),
        ] {
            c.flag(
                differs,
                &format!("train_module.dp_config.{key}"),
                "non-default",
                "used only by OLMo-core's MoE-v2 DDP module; leave the default",
            );
        }
    }
    c.flag(
        !matches!(
            t.autocast_precision,
            None | Some(DType::Bfloat16) | Some(DType::Float32)
        ),
        "train_module.autocast_precision",
        t.autocast_precision,
        "only bfloat16 autocast is built (or null/float32 for none)",
    );
}

fn check_trainer(c: &mut Checker, config: &ExperimentConfig) {
    let t = &config.trainer;
    c.set(&t.steps_to_skip, "trainer.steps_to_skip", LEAVE_NULL);
    c.set(
        &t.checkpoints_to_eval,
        "trainer.checkpoints_to_eval",
        LEAVE_NULL,
    );
    let Callbacks {
        comet,
        profiler,
        gap_monitor,
        ..
    } = &t.callbacks;
    c.flag(
        comet.as_ref().is_some_and(|cb| cb.enabled),
        "trainer.callbacks.comet.enabled",
        true,
        "use the wandb callback",
    );
    c.flag(
        profiler.as_ref().is_some_and(|cb| cb.enabled),
        "trainer.callbacks.profiler.enabled",
        true,
        "leave it false",
    );
    c.flag(
        gap_monitor.as_ref().is_some_and(|cb| cb.enabled),
        "trainer.callbacks.gap_monitor.enabled",
        true,
        "leave it false",
    );
}
