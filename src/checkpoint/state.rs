//! The JSON parts of a checkpoint: trainer state (OLMo-core's `Trainer.state_dict()` keys) and the
//! optimizer's parameter groups and step counts.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::LoaderState;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub global_step: u64,
    pub global_train_tokens_seen: u64,
    pub max_steps: u64,
    pub epoch: u64,
    pub world_size: u64,
    pub data_loader: LoaderState,
    /// Callback states by callback name (the checkpointer's list of saved steps, ...).
    #[serde(default)]
    pub callbacks: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub params: Vec<String>,
    pub lr: f64,
    pub initial_lr: f64,
    pub weight_decay: f64,
    pub betas: (f64, f64),
    pub eps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimState {
    pub param_groups: Vec<GroupState>,
    /// AdamW's step count per parameter (absent: no update yet).
    pub steps: BTreeMap<String, f64>,
}
