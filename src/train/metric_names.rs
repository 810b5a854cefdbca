//! The metric names the trainer records, as OLMo-core names them (dashboards depend on them).
pub const CE_LOSS: &str = "train/CE loss";
pub const PPL: &str = "train/PPL";
pub const Z_LOSS: &str = "train/Z loss";
pub const MASKED_LABELS: &str = "train/masked labels (%)";
pub const MASKED_INSTANCES: &str = "train/masked instances (%)";
pub const GRAD_NORM: &str = "optim/total grad norm";
/// `skip_step_adamw` only: 1 when the step was skipped.
pub const STEP_SKIPPED: &str = "optim/step skipped";

// Mixture of experts (summed over the MoE blocks; the imbalance is their maximum).
pub const LOAD_BALANCING_LOSS: &str = "train/load balancing loss";
pub const LOAD_BALANCING_LOSS_UNSCALED: &str = "train/load balancing loss unscaled";
pub const ROUTER_Z_LOSS: &str = "train/router Z loss";
pub const ROUTER_Z_LOSS_UNSCALED: &str = "train/router Z loss unscaled";
pub const LOAD_IMBALANCE: &str = "train/load imbalance";

/// A mixture-of-experts metric of one block: `train/block 03/load imbalance`.
pub fn per_block(block: usize, metric: &str) -> String {
    format!(
        "train/block {block:02}/{}",
        metric.strip_prefix("train/").unwrap_or(metric)
    )
}

pub const TOTAL_TOKENS: &str = "throughput/total tokens";
pub const DATA_LOADING_SECONDS: &str = "throughput/device/data loading (s)";
pub const DATA_LOADING_PERCENT: &str = "throughput/device/data loading (%)";
pub const TPS: &str = "throughput/device/TPS";
pub const BPS: &str = "throughput/device/BPS";
pub const TPS_AVG: &str = "throughput/device/TPS (actual avg)";
pub const BPS_AVG: &str = "throughput/device/BPS (actual avg)";
pub const EVAL_SECONDS: &str = "throughput/in-loop eval time (s)";

pub const CHECKPOINT_SAVE_SECONDS: &str = "checkpoint/save_duration_s";

/// `optim/LR (group N)`.
pub fn lr(group: usize) -> String {
    format!("optim/LR (group {group})")
}

// OLMo-core's gpu_monitor callback.
pub const GPU_ACTIVE_GIB: &str = "gpu_memory/GPU active mem (GiB)";
pub const GPU_ACTIVE_PCT: &str = "gpu_memory/GPU active mem (%)";
pub const GPU_RESERVED_GIB: &str = "gpu_memory/GPU reserved mem (GiB)";
pub const GPU_RESERVED_PCT: &str = "gpu_memory/GPU reserved mem (%)";

// Sharded training, per rank (rank 0's are logged): what stays (fp32 shards, gradient shards at the
// optimizer step) and the most gathered weights held at once during the step.
pub const SHARDED_PERSISTENT_MIB: &str = "fsdp/persistent shards (MiB)";
pub const SHARDED_PEAK_UNSHARDED_MIB: &str = "fsdp/peak unsharded (MiB)";
