//! Evaluation: OLMo-core's in-loop LM (perplexity) evaluator, used by the trainer's `lm_evaluator`
//! callback and by `olmo-train eval`.
pub mod lm;
pub mod standalone;

pub use lm::LmEvaluator;
