//! `train_module`: OLMo-core's `TransformerTrainModuleConfig` with its optimizer, scheduler and
//! data-parallel sub-configs (`src/olmo_core/train/train_module/transformer/config.py`, `src/olmo_core/optim/`).
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

pub use super::scheduler::*;
use super::DType;

/// `OptimGroupOverride`: per-parameter-group option overrides, matched by parameter-name globs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimGroupOverride {
    pub params: Vec<String>,
    pub opts: serde_yaml::Mapping,
}

/// Optimizers, tagged by OLMo-core's registered name (`type: adamw`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OptimConfig {
    #[serde(rename = "adamw")]
    AdamW(AdamWConfig),
    #[serde(rename = "skip_step_adamw")]
    SkipStepAdamW(SkipStepAdamWConfig),
}

impl OptimConfig {
    /// The AdamW settings both optimizers share (groups, LR, betas, eps, weight decay, kernel).
    pub fn adamw(&self) -> AdamWConfig {
        match self {
            OptimConfig::AdamW(c) => c.clone(),
            OptimConfig::SkipStepAdamW(c) => AdamWConfig {
                group_overrides: c.group_overrides.clone(),
                compile: c.compile,
                fixed_fields: c.fixed_fields.clone(),
                lr: c.lr,
                betas: c.betas,
                eps: c.eps,
                weight_decay: c.weight_decay,
                foreach: Some(c.foreach),
                // The legacy step count (no increment) is kept on the host, by the single-tensor path.
                fused: (!c.step_increment_bugfix).then_some(false),
            },
        }
    }
}

/// Registered OLMo-core optimizer names olmo-train does not build yet (for a clear error).
pub const UNSUPPORTED_OPTIMIZERS: &[&str] = &[
    "adam",
    "dion",
    "lion",
    "skip_step_lion",
    "muon",
    "nor_muon",
    "noop",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    pub group_overrides: Option<Vec<OptimGroupOverride>>,
    pub compile: bool,
    pub fixed_fields: Vec<String>,
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub foreach: Option<bool>,
    pub fused: Option<bool>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            group_overrides: None,
            compile: false,
            fixed_fields: vec!["initial_lr".into()],
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            foreach: None,
            fused: None,
        }
    }
}

/// OLMo-core's `SkipStepAdamWConfig`: AdamW that skips the update of a step whose loss (or gradient
/// norm, when clipping) is more than `sigma_factor` standard deviations above the mean of the last
/// `rolling_interval_length` steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SkipStepAdamWConfig {
    pub group_overrides: Option<Vec<OptimGroupOverride>>,
    pub compile: bool,
    pub fixed_fields: Vec<String>,
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub dtype: Option<DType>,
    pub foreach: bool,
    pub step_increment_bugfix: bool,
    pub rolling_interval_length: u64,
    pub sigma_factor: u64,
}

impl Default for SkipStepAdamWConfig {
    fn default() -> Self {
        let adamw = AdamWConfig::default();
        Self {
            group_overrides: None,
            compile: false,
            fixed_fields: adamw.fixed_fields,
            lr: adamw.lr,
            betas: adamw.betas,
            eps: adamw.eps,
            weight_decay: adamw.weight_decay,
            dtype: None,
            foreach: true,
            step_increment_bugfix: true,
            rolling_interval_length: 128,
            sigma_factor: 6,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataParallelType {
    Fsdp,
    Hsdp,
    Ddp,
}

/// `TransformerDataParallelConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataParallelConfig {
    pub name: DataParallelType,
    pub param_dtype: Option<DType>,
    pub reduce_dtype: DType,
    pub num_replicas: Option<u64>,
    pub shard_degree: Option<u64>,
    pub wrapping_strategy: String,
    pub prefetch_factor: u64,
    pub only_allreduce_last_microbatch: bool,
    pub reduce_grads_in_fp32: bool,
    pub accumulate_grads_in_fp32: bool,
    pub bucket_cap_mb: Option<u64>,
    pub use_reduce_scatter: bool,
}

impl Default for DataParallelConfig {
    fn default() -> Self {
        Self {
            name: DataParallelType::Ddp,
            param_dtype: None,
            reduce_dtype: DType::Float32,
            num_replicas: None,
            shard_degree: None,
            wrapping_strategy: "full".into(),
            prefetch_factor: 0,
            only_allreduce_last_microbatch: true,
            reduce_grads_in_fp32: true,
            accumulate_grads_in_fp32: true,
            bucket_cap_mb: None,
            use_reduce_scatter: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformerTrainModuleConfig {
    pub rank_microbatch_size: u64,
    pub max_sequence_length: u64,
    pub optim: OptimConfig,
    pub max_grad_norm: Option<f64>,
    pub scheduler: Option<SchedulerConfig>,
    pub compile_model: bool,
    pub float8_config: Option<Value>,
    pub pp_config: Option<Value>,
    pub dp_config: Option<DataParallelConfig>,
    pub tp_config: Option<Value>,
    pub cp_config: Option<Value>,
    pub ep_config: Option<Value>,
    pub ac_config: Option<Value>,
    pub z_loss_multiplier: Option<f64>,
    pub state_dict_save_opts: Option<Value>,
    pub state_dict_load_opts: Option<Value>,
    pub load_key_mapping: Option<Value>,
    pub autocast_precision: Option<DType>,
    pub label_ignore_index: i64,
}

impl Default for TransformerTrainModuleConfig {
    fn default() -> Self {
        Self {
            rank_microbatch_size: 0,
            max_sequence_length: 0,
            optim: OptimConfig::AdamW(AdamWConfig::default()),
            max_grad_norm: None,
            scheduler: None,
            compile_model: false,
            float8_config: None,
            pp_config: None,
            dp_config: None,
            tp_config: None,
            cp_config: None,
            ep_config: None,
            ac_config: None,
            z_loss_multiplier: None,
            state_dict_save_opts: None,
            state_dict_load_opts: None,
            load_key_mapping: None,
            autocast_precision: None,
            label_ignore_index: -100,
        }
    }
}
