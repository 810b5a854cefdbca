//! Training: OLMo-core's train module (model, optimizer, schedule, micro-batches), trainer loop
//! (durations, metrics, console, metrics.jsonl) and the entry point that wires them from a config.
pub mod checkpointer;
pub mod duration;
pub mod loss;
pub mod metrics;
pub mod run;
pub mod train_module;
pub mod trainer;

pub use run::train;
pub use trainer::TrainSummary;
