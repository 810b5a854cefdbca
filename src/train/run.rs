//! `olmo-train RUN_NAME ...` without `--dry-run`: OLMo-core's `train(config)` for one process:
//! seed, build the model, data and train module, then fit.
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tch::Device;

use super::train_module::TrainModule;
use super::trainer::{TrainSummary, Trainer, TrainerOptions};
use crate::config::callbacks::ConsoleLoggerCallback;
use crate::config::support::unsupported_settings;
use crate::config::ExperimentConfig;
use crate::data::build::{build_fsl_dataset, build_loader};
use crate::error::{Error, Result};
use crate::model::Transformer;

/// `trainer.device`, or CUDA when present, else CPU.
pub fn select_device(requested: Option<&str>) -> Result<Device> {
    match requested {
        None => Ok(Device::cuda_if_available()),
        Some("cpu") => Ok(Device::Cpu),
        Some(s) if s == "cuda" || s.starts_with("cuda:") => {
            let index = s
                .strip_prefix("cuda:")
                .map_or(Ok(0), |i| i.parse::<usize>())
                .map_err(|_| bad_device(s))?;
            if !tch::Cuda::is_available() || index >= tch::Cuda::device_count() as usize {
                return Err(Error::InvalidValue {
                    path: "trainer.device".into(),
                    reason: format!(
                        "'{s}' requested but this machine has {} CUDA device(s)",
                        tch::Cuda::device_count()
                    ),
                });
            }
            Ok(Device::Cuda(index))
        }
        Some(s) => Err(bad_device(s)),
    }
}

fn bad_device(s: &str) -> Error {
    Error::InvalidValue {
        path: "trainer.device".into(),
        reason: format!("'{s}': expected cpu, cuda or cuda:N"),
    }
}

/// Trains with `config`; `stop` is set by SIGINT/SIGTERM.
pub fn train(config: &ExperimentConfig, stop: Arc<AtomicBool>) -> Result<TrainSummary> {
    if let Some(u) = unsupported_settings(config).into_iter().next() {
        return Err(u.into());
    }
    warn_not_built(config);
    let device = select_device(config.trainer.device.as_deref())?;
    let seq = config.dataset.sequence_length;
    if config.train_module.max_sequence_length < seq {
        return Err(Error::InvalidValue {
            path: "train_module.max_sequence_length".into(),
            reason: format!(
                "{} is shorter than dataset.sequence_length ({seq})",
                config.train_module.max_sequence_length
            ),
        });
    }
    if config.model.vocab_size < config.dataset.tokenizer.vocab_size {
        return Err(Error::InvalidValue {
            path: "model.vocab_size".into(),
            reason: format!(
                "{} is smaller than the tokenizer's vocab size {}",
                config.model.vocab_size, config.dataset.tokenizer.vocab_size
            ),
        });
    }
    tracing::info!("training on {device:?}");
    tch::manual_seed(config.init_seed as i64);
    let model = Transformer::new(&config.model, device)?;
    model.init_weights(config.model.init_seed);
    // OLMo-core seeds everything with `init_seed`; the model's own generator is separate.
    tch::manual_seed(config.init_seed as i64);
    tracing::info!("built model with {} parameters", model.num_params());
    let (dataset, _) = build_fsl_dataset(&config.dataset)?;
    let loader = build_loader(&config.data_loader, Arc::new(dataset), 0, 1)?;
    tracing::info!(
        "dataset: {} instances of {seq} tokens, {} batches of {} tokens per epoch",
        loader.dataset().len(),
        loader.total_batches(),
        loader.global_batch_size()
    );
    let module = TrainModule::new(&config.train_module, model, seq, device)?;
    let console = config
        .trainer
        .callbacks
        .console_logger
        .clone()
        .unwrap_or_default();
    let opts = TrainerOptions {
        max_duration: config.trainer.max_duration,
        hard_stop: config.trainer.hard_stop,
        metrics_collect_interval: config.trainer.metrics_collect_interval,
        console_metrics: console_patterns(&console),
        console_log_interval: console.metrics_log_interval.unwrap_or(console.log_interval),
        save_folder: PathBuf::from(&config.trainer.save_folder),
    };
    let mut trainer = Trainer::new(opts, module, loader, stop)?;
    if let Some(s) = &config.train_module.scheduler {
        crate::optim::scheduler::validate(s, trainer.max_steps())?;
    }
    trainer.fit()
}

fn console_patterns(c: &ConsoleLoggerCallback) -> Vec<String> {
    c.metrics.clone()
}

/// Callbacks that the example enables by default but that later issues build: said out loud, once.
fn warn_not_built(config: &ExperimentConfig) {
    let cb = &config.trainer.callbacks;
    let mut off = Vec::new();
    if cb.lm_evaluator.as_ref().is_some_and(|c| c.enabled) && !config.trainer.no_evals {
        off.push("lm_evaluator (in-loop perplexity)");
    }
    if cb.downstream_evaluator.as_ref().is_some_and(|c| c.enabled) && !config.trainer.no_evals {
        off.push("downstream_evaluator");
    }
    if cb.checkpointer.as_ref().is_some_and(|c| c.enabled) && !config.trainer.no_checkpoints {
        off.push("checkpointer");
    }
    if cb.wandb.as_ref().is_some_and(|c| c.enabled) {
        off.push("wandb");
    }
    if !off.is_empty() {
        tracing::warn!(
            "not built yet in this version, so these enabled callbacks will not run: {}",
            off.join(", ")
        );
    }
}
