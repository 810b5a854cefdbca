//! The trainer state of a checkpoint, with OLMo-core's `Trainer.state_dict()` keys. The data loader's and
//! the callbacks' states are JSON the checkpoint stores without reading.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub global_step: u64,
    pub global_train_tokens_seen: u64,
    pub max_steps: u64,
    pub epoch: u64,
    pub world_size: u64,
    pub data_loader: serde_json::Value,
    /// Callback states by callback name (the checkpointer's list of saved steps, ...).
    #[serde(default)]
    pub callbacks: BTreeMap<String, serde_json::Value>,
}
