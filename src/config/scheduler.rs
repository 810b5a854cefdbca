//! `train_module.scheduler`: OLMo-core's learning-rate schedulers (`src/olmo_core/optim/scheduler.py`),
//! tagged by registered name, each with its fields flat as OLMo-core's dataclasses have them.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerUnits {
    #[default]
    Steps,
    Tokens,
}

fn lr_field() -> String {
    "lr".into()
}

fn initial_lr_field() -> String {
    "initial_lr".into()
}

/// Learning-rate schedulers, tagged by OLMo-core's registered name (`type: cos_with_warmup`).
/// Each variant lists its fields flat, as OLMo-core's dataclasses do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SchedulerConfig {
    Constant(ConstantScheduler),
    ConstantWithWarmup(ConstantWithWarmup),
    Wsd(Wsd),
    LinearWithWarmup(LinearWithWarmup),
    CosWithWarmup(CosWithWarmup),
}

impl SchedulerConfig {
    /// Whether the schedule counts steps or tokens.
    pub fn units(&self) -> SchedulerUnits {
        match self {
            SchedulerConfig::Constant(s) => s.units,
            SchedulerConfig::ConstantWithWarmup(s) => s.units,
            SchedulerConfig::Wsd(s) => s.units,
            SchedulerConfig::LinearWithWarmup(s) => s.units,
            SchedulerConfig::CosWithWarmup(s) => s.units,
        }
    }
}

/// Registered OLMo-core scheduler names olmo-train does not build yet (for a clear error).
pub const UNSUPPORTED_SCHEDULERS: &[&str] = &[
    "power_lr",
    "inv_sqrt_with_warmup",
    "half_cos_with_warmup",
    "cos_with_warmup_and_linear_decay",
    "composable",
    "sequential",
    "wsds",
    "exponential",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantScheduler {
    #[serde(default = "lr_field")]
    pub lr_field: String,
    #[serde(default = "initial_lr_field")]
    pub initial_lr_field: String,
    #[serde(default)]
    pub units: SchedulerUnits,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantWithWarmup {
    #[serde(default = "lr_field")]
    pub lr_field: String,
    #[serde(default = "initial_lr_field")]
    pub initial_lr_field: String,
    #[serde(default)]
    pub units: SchedulerUnits,
    #[serde(default)]
    pub warmup: Option<u64>,
    #[serde(default)]
    pub warmup_steps: Option<u64>,
    #[serde(default)]
    pub warmup_fraction: Option<f64>,
    #[serde(default)]
    pub warmup_min_lr: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wsd {
    #[serde(default = "lr_field")]
    pub lr_field: String,
    #[serde(default = "initial_lr_field")]
    pub initial_lr_field: String,
    #[serde(default)]
    pub units: SchedulerUnits,
    #[serde(default)]
    pub warmup: Option<u64>,
    #[serde(default)]
    pub warmup_steps: Option<u64>,
    #[serde(default)]
    pub warmup_fraction: Option<f64>,
    #[serde(default)]
    pub decay: Option<u64>,
    #[serde(default)]
    pub decay_steps: Option<u64>,
    #[serde(default = "default_decay_fraction")]
    pub decay_fraction: Option<f64>,
    #[serde(default)]
    pub warmup_min_lr: f64,
    #[serde(default)]
    pub decay_min_lr: f64,
}

fn default_decay_fraction() -> Option<f64> {
    Some(0.1)
}

fn default_alpha_f() -> f64 {
    0.1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearWithWarmup {
    #[serde(default = "lr_field")]
    pub lr_field: String,
    #[serde(default = "initial_lr_field")]
    pub initial_lr_field: String,
    #[serde(default)]
    pub units: SchedulerUnits,
    #[serde(default = "default_alpha_f")]
    pub alpha_f: f64,
    #[serde(default)]
    pub t_max: Option<u64>,
    #[serde(default)]
    pub warmup: Option<u64>,
    #[serde(default)]
    pub warmup_steps: Option<u64>,
    #[serde(default)]
    pub warmup_fraction: Option<f64>,
    #[serde(default)]
    pub warmup_min_lr: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosWithWarmup {
    #[serde(default = "lr_field")]
    pub lr_field: String,
    #[serde(default = "initial_lr_field")]
    pub initial_lr_field: String,
    #[serde(default)]
    pub units: SchedulerUnits,
    #[serde(default)]
    pub warmup: Option<u64>,
    #[serde(default)]
    pub warmup_steps: Option<u64>,
    #[serde(default)]
    pub warmup_fraction: Option<f64>,
    #[serde(default = "default_alpha_f")]
    pub alpha_f: f64,
    #[serde(default)]
    pub t_max: Option<u64>,
    #[serde(default)]
    pub warmup_min_lr: f64,
}

impl CosWithWarmup {
    pub fn with_warmup(warmup: u64) -> Self {
        Self {
            lr_field: lr_field(),
            initial_lr_field: initial_lr_field(),
            units: SchedulerUnits::Steps,
            warmup: Some(warmup),
            warmup_steps: None,
            warmup_fraction: None,
            alpha_f: default_alpha_f(),
            t_max: None,
            warmup_min_lr: 0.0,
        }
    }
}

impl SchedulerConfig {
    /// OLMo-core's `__post_init__`: the deprecated `warmup_steps`/`decay_steps` move to `warmup`/`decay`.
    pub fn normalize_deprecated(&mut self) {
        fn take(new: &mut Option<u64>, old: &mut Option<u64>) {
            if new.is_none() {
                *new = old.take();
            }
        }
        match self {
            Self::Constant(_) => {}
            Self::ConstantWithWarmup(s) => take(&mut s.warmup, &mut s.warmup_steps),
            Self::Wsd(s) => {
                take(&mut s.warmup, &mut s.warmup_steps);
                take(&mut s.decay, &mut s.decay_steps);
            }
            Self::LinearWithWarmup(s) => take(&mut s.warmup, &mut s.warmup_steps),
            Self::CosWithWarmup(s) => take(&mut s.warmup, &mut s.warmup_steps),
        }
    }
}
