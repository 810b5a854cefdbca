//! Training: OLMo-core's train module (model, optimizer, schedule, micro-batches), the trainer loop
//! (durations, checkpoints, evaluators, metrics and their sinks) and the entry point that builds them
//! from a config.
pub mod checkpointer;
pub mod device_metrics;
pub mod duration;
mod gpu_memory;
mod group;
pub mod metric_names;
pub mod metrics;
mod outputs;
pub mod router_losses;
pub mod run;
pub mod sinks;
mod start_state;
pub mod throughput;
pub mod train_module;
pub mod trainer;

pub use run::train;
pub use trainer::TrainSummary;
