//! `trainer`: OLMo-core's `TrainerConfig` (`src/olmo_core/train/config.py`) and `Duration`.
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::callbacks::Callbacks;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurationUnit {
    Steps,
    Epochs,
    Tokens,
}

/// `Duration(value, unit)`; written as `{value: 100, unit: steps}` in overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Duration {
    pub value: u64,
    pub unit: DurationUnit,
}

impl Duration {
    pub fn steps(value: u64) -> Self {
        Self {
            value,
            unit: DurationUnit::Steps,
        }
    }

    pub fn epochs(value: u64) -> Self {
        Self {
            value,
            unit: DurationUnit::Epochs,
        }
    }

    pub fn tokens(value: u64) -> Self {
        Self {
            value,
            unit: DurationUnit::Tokens,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoadStrategy {
    #[default]
    IfAvailable,
    Always,
    Never,
}

/// `CheckpointerConfig`: how checkpoints are written and read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointerConfig {
    pub work_dir: Option<String>,
    pub save_overwrite: Option<bool>,
    pub pre_download: bool,
    pub save_thread_count: Option<u64>,
    pub load_thread_count: Option<u64>,
    pub throttle_uploads: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerConfig {
    pub save_folder: String,
    pub work_dir: Option<String>,
    pub load_path: Option<String>,
    pub load_strategy: LoadStrategy,
    pub load_optim_state: Option<bool>,
    pub load_trainer_state: Option<bool>,
    pub checkpointer: CheckpointerConfig,
    pub device: Option<String>,
    pub save_overwrite: bool,
    pub max_duration: Duration,
    pub cancel_check_interval: u64,
    pub hard_stop: Option<Duration>,
    pub metrics_collect_interval: u64,
    pub callbacks: Callbacks,
    pub async_bookkeeping: Option<bool>,
    pub bookkeeping_soft_timeout: u64,
    pub no_checkpoints: bool,
    pub no_evals: bool,
    pub steps_to_skip: Option<Value>,
    pub checkpoints_to_eval: Option<Value>,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            save_folder: String::new(),
            work_dir: None,
            load_path: None,
            load_strategy: LoadStrategy::IfAvailable,
            load_optim_state: None,
            load_trainer_state: None,
            checkpointer: CheckpointerConfig::default(),
            device: None,
            save_overwrite: false,
            max_duration: Duration::epochs(1),
            cancel_check_interval: 25,
            hard_stop: None,
            metrics_collect_interval: 5,
            callbacks: Callbacks::default(),
            async_bookkeeping: None,
            bookkeeping_soft_timeout: 30,
            no_checkpoints: false,
            no_evals: false,
            steps_to_skip: None,
            checkpoints_to_eval: None,
        }
    }
}
