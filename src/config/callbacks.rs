//! `trainer.callbacks`: the callback configs of OLMo-core's `src/olmo_core/train/callbacks/`, addressed by
//! their dict key as in OLMo-core (`--trainer.callbacks.wandb.enabled=true`).
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::data::{NumpyPaddedFSLDatasetConfig, TokenizerConfig};
use super::trainer::Duration;

/// The callback map. A name that is absent here is off; setting any field of an absent callback
/// creates it with OLMo-core's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Callbacks {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_monitor: Option<GpuMemoryMonitorCallback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpointer: Option<CheckpointerCallback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comet: Option<CometCallback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wandb: Option<WandBCallback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_saver: Option<ConfigSaverCallback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profiler: Option<ProfilerCallback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lm_evaluator: Option<LMEvaluatorCallbackConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downstream_evaluator: Option<DownstreamEvaluatorCallbackConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_monitor: Option<GapMonitorCallback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_logger: Option<ConsoleLoggerCallback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed_monitor: Option<SpeedMonitorCallback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub garbage_collector: Option<GarbageCollectorCallback>,
    /// Not in OLMo-core: TensorBoard event files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensorboard: Option<TensorBoardCallback>,
}

/// TensorBoard scalars for every logged metric, in `log_dir` (default: `<save_folder>/tb`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TensorBoardCallback {
    pub enabled: bool,
    pub log_dir: Option<String>,
}

impl Default for TensorBoardCallback {
    fn default() -> Self {
        Self {
            enabled: true,
            log_dir: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct GpuMemoryMonitorCallback {
    pub device_id: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointRemoveStrategy {
    #[default]
    EphemeralOnly,
    AllNonPermanent,
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointerCallback {
    pub save_interval: u64,
    pub ephemeral_save_interval: Option<u64>,
    pub pre_train_checkpoint: Option<bool>,
    pub save_async: Option<bool>,
    pub remove: CheckpointRemoveStrategy,
    pub ephemeral_cooldown: Option<u64>,
    pub fixed_steps: Option<Vec<u64>>,
    pub max_checkpoints: Option<u64>,
    pub enabled: bool,
}

impl Default for CheckpointerCallback {
    fn default() -> Self {
        Self {
            save_interval: 250,
            ephemeral_save_interval: None,
            pre_train_checkpoint: None,
            save_async: None,
            remove: CheckpointRemoveStrategy::EphemeralOnly,
            ephemeral_cooldown: None,
            fixed_steps: None,
            max_checkpoints: Some(3),
            enabled: true,
        }
    }
}

fn default_cancel_tags() -> Vec<String> {
    ["cancel", "canceled", "cancelled"]
        .map(String::from)
        .to_vec()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CometCallback {
    pub enabled: bool,
    pub name: Option<String>,
    pub project: Option<String>,
    pub workspace: Option<String>,
    pub tags: Option<Vec<String>>,
    pub config: Option<Value>,
    pub cancel_tags: Vec<String>,
    pub cancel_check_interval: Option<u64>,
    pub notifications: String,
    pub failure_tag: String,
    pub auto_resume: bool,
}

impl Default for CometCallback {
    fn default() -> Self {
        Self {
            enabled: true,
            name: None,
            project: None,
            workspace: None,
            tags: None,
            config: None,
            cancel_tags: default_cancel_tags(),
            cancel_check_interval: None,
            notifications: "none".into(),
            failure_tag: "failed".into(),
            auto_resume: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WandBCallback {
    pub enabled: bool,
    pub name: Option<String>,
    pub project: Option<String>,
    pub entity: Option<String>,
    pub group: Option<String>,
    pub tags: Option<Vec<String>>,
    pub notes: Option<String>,
    pub config: Option<Value>,
    pub cancel_tags: Vec<String>,
    pub cancel_check_interval: Option<u64>,
}

impl Default for WandBCallback {
    fn default() -> Self {
        Self {
            enabled: true,
            name: None,
            project: None,
            entity: None,
            group: None,
            tags: None,
            notes: None,
            config: None,
            cancel_tags: default_cancel_tags(),
            cancel_check_interval: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigSaverCallback {
    pub fname: String,
    pub save_data_paths: Option<bool>,
    pub data_paths_fname: Option<String>,
}

impl Default for ConfigSaverCallback {
    fn default() -> Self {
        Self {
            fname: "config.json".into(),
            save_data_paths: None,
            data_paths_fname: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfilerCallback {
    pub skip_first: u64,
    pub wait: u64,
    pub warmup: u64,
    pub active: u64,
    pub repeat: u64,
    pub with_stack: bool,
    pub profile_memory: bool,
    pub enable_cuda_sync_events: bool,
    pub enabled: bool,
    pub ranks: Option<Vec<u64>>,
}

impl Default for ProfilerCallback {
    fn default() -> Self {
        Self {
            skip_first: 0,
            wait: 1,
            warmup: 5,
            active: 3,
            repeat: 1,
            with_stack: true,
            profile_memory: false,
            enable_cuda_sync_events: false,
            enabled: true,
            ranks: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LMEvaluatorCallbackConfig {
    pub eval_dataset: Option<NumpyPaddedFSLDatasetConfig>,
    pub eval_interval: u64,
    pub fixed_steps: Option<Vec<u64>>,
    pub eval_on_startup: bool,
    pub eval_on_finish: bool,
    pub cancel_after_first_eval: bool,
    pub eval_duration: Duration,
    pub log_interval: u64,
    pub deterministic: bool,
    pub enabled: bool,
}

impl Default for LMEvaluatorCallbackConfig {
    fn default() -> Self {
        Self {
            eval_dataset: None,
            eval_interval: 1000,
            fixed_steps: None,
            eval_on_startup: false,
            eval_on_finish: false,
            cancel_after_first_eval: false,
            eval_duration: Duration::epochs(1),
            log_interval: 5,
            deterministic: true,
            enabled: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DownstreamEvaluatorCallbackConfig {
    pub tasks: Vec<String>,
    pub tokenizer: TokenizerConfig,
    pub eval_interval: u64,
    pub fixed_steps: Option<Vec<u64>>,
    pub eval_duration: Duration,
    pub eval_on_startup: bool,
    pub eval_on_finish: bool,
    pub cancel_after_first_eval: bool,
    pub log_interval: u64,
    pub lazy: bool,
    pub enabled: bool,
}

impl Default for DownstreamEvaluatorCallbackConfig {
    fn default() -> Self {
        Self {
            tasks: Vec::new(),
            tokenizer: TokenizerConfig::default(),
            eval_interval: 1000,
            fixed_steps: None,
            eval_duration: Duration::epochs(1),
            eval_on_startup: false,
            eval_on_finish: false,
            cancel_after_first_eval: false,
            log_interval: 5,
            lazy: false,
            enabled: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GapMonitorCallback {
    pub enabled: bool,
    pub monitor: Option<Value>,
    pub interval: u64,
    pub dump_gradients: Option<bool>,
    pub dump_gradients_start_step: u64,
    pub dump_gradients_end_step: Option<u64>,
    pub dump_gradients_step_interval: u64,
    pub dump_gradients_save_first_n: Option<u64>,
}

impl Default for GapMonitorCallback {
    fn default() -> Self {
        Self {
            enabled: true,
            monitor: None,
            interval: 1,
            dump_gradients: None,
            dump_gradients_start_step: 0,
            dump_gradients_end_step: None,
            dump_gradients_step_interval: 1,
            dump_gradients_save_first_n: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleLoggerCallback {
    pub log_interval: u64,
    pub metrics_log_interval: Option<u64>,
    pub metrics: Vec<String>,
}

impl Default for ConsoleLoggerCallback {
    fn default() -> Self {
        let metrics = [
            "train/CE loss",
            "train/PPL",
            "train/Z loss",
            "train/load balancing loss",
            "train/router Z loss",
            "train/block */load imbalance",
            "train/block */token drop rate",
            "train/block */symm buffer util",
            "gpu_memory/*",
            "optim/total grad norm",
            "optim/step skipped",
            "optim/LR*",
            "throughput/*",
            "checkpoint/*",
            "system/*",
        ];
        Self {
            log_interval: 1,
            metrics_log_interval: None,
            metrics: metrics.map(String::from).to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SpeedMonitorCallback {
    pub num_flops_per_token: Option<u64>,
    pub num_params: Option<u64>,
    pub device_peak_flops_per_second: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GarbageCollectorCallback {
    pub gc_interval: u64,
    pub enabled: bool,
}

impl Default for GarbageCollectorCallback {
    fn default() -> Self {
        Self {
            gc_interval: 1000,
            enabled: true,
        }
    }
}
