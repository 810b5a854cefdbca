//! The `ExperimentConfig` tree of OLMo-core's `src/examples/llm/train.py`, with OLMo-core's field names,
//! nesting and defaults, and the machinery that turns a command line into it:
//! defaults ([`example`]) → `--config FILE` → dotted [`overrides`] → typed tree ([`resolve`]) →
//! checks of what olmo-train does not honour yet ([`support`]).
pub mod activation_checkpointing;
pub mod callbacks;
pub mod data;
pub mod example;
pub mod factories;
pub mod model;
mod model_size;
pub mod moe;
pub mod overrides;
pub mod resolve;
pub mod scheduler;
pub mod support;
pub mod train_module;
pub mod trainer;

use serde::{Deserialize, Serialize};

pub use data::{NumpyDataLoaderConfig, NumpyFSLDatasetConfig, TokenizerConfig};
pub use example::ExampleOptions;
pub use model::TransformerConfig;
pub use train_module::TransformerTrainModuleConfig;
pub use trainer::TrainerConfig;

/// OLMo-core's `DType` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    #[default]
    Float32,
    Bfloat16,
    Float16,
    #[serde(rename = "float8_e4m3fn")]
    Float8E4m3fn,
    #[serde(rename = "float8_e5m2")]
    Float8E5m2,
}

/// The whole run: what `--dry-run` prints and what each checkpoint's `config.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    pub model: TransformerConfig,
    pub dataset: NumpyFSLDatasetConfig,
    pub data_loader: NumpyDataLoaderConfig,
    pub trainer: TrainerConfig,
    pub train_module: TransformerTrainModuleConfig,
    #[serde(default = "default_init_seed")]
    pub init_seed: u64,
    #[serde(default)]
    pub load_path: Option<String>,
    #[serde(default)]
    pub load_trainer_state: bool,
    /// Seconds a rendezvous, collective or barrier may wait for the other ranks before the run ends
    /// with an error naming the operation. olmo-train's one key outside OLMo-core's tree: OLMo-core
    /// takes it as `prepare_training_environment(timeout=...)`, whose default (15 minutes) is ours.
    #[serde(default = "default_dist_timeout")]
    pub dist_timeout: u64,
}

fn default_init_seed() -> u64 {
    12536
}

pub fn default_dist_timeout() -> u64 {
    15 * 60
}

impl ExperimentConfig {
    /// The resolved tree as YAML, in OLMo-core's field order.
    pub fn to_yaml(&self) -> String {
        // Serializing plain structs of strings, numbers and maps cannot fail.
        serde_yaml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// Instances of `dataset.sequence_length` tokens in one global batch.
    pub fn global_batch_instances(&self) -> u64 {
        self.data_loader.global_batch_size / self.dataset.sequence_length.max(1)
    }
}
