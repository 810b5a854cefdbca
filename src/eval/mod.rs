//! Evaluation: OLMo-core's in-loop LM (perplexity) evaluator, used by the trainer's `lm_evaluator`
//! callback and by `olmo-train eval`.
pub mod downstream;
pub mod icl_metric;
pub mod lm;
pub mod packing;
pub mod standalone;
pub mod task_file;

pub use downstream::DownstreamEvaluator;
pub use lm::LmEvaluator;
