//! OLMo-core's `Duration` arithmetic: when training is due to stop and how many steps that is.
use crate::config::trainer::{Duration, DurationUnit};

/// Where training stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub step: u64,
    pub tokens: u64,
    /// 1-based epoch.
    pub epoch: u64,
}

/// `Duration.due`: steps and tokens compare with `>=`, epochs with `>` (the epoch counter has moved on).
pub fn is_due(d: &Duration, p: &Progress) -> bool {
    match d.unit {
        DurationUnit::Steps => p.step >= d.value,
        DurationUnit::Tokens => p.tokens >= d.value,
        DurationUnit::Epochs => p.epoch > d.value,
    }
}

/// `Trainer.max_steps` for a duration, given the global batch size and the batches per epoch.
pub fn max_steps(d: &Duration, global_batch_size: u64, batches_per_epoch: u64) -> u64 {
    match d.unit {
        DurationUnit::Steps => d.value,
        DurationUnit::Tokens => d.value.div_ceil(global_batch_size.max(1)),
        DurationUnit::Epochs => d.value * batches_per_epoch,
    }
}
