//! Evaluation: OLMo-core's in-loop LM (perplexity) evaluator and downstream (ranked classification)
//! evaluators, used by the trainer's `lm_evaluator` and `downstream_evaluator` callbacks and by
//! `olmo-train eval`.
pub mod downstream;
pub mod icl_metric;
pub mod in_loop;
pub mod lm;
pub mod packing;
pub mod standalone;
pub mod task_file;

pub use downstream::DownstreamEvaluator;
pub use lm::LmEvaluator;

use std::collections::BTreeMap;

use tch::Device;

use crate::dist::ProcessGroup;
use crate::error::Result;
use crate::model::Transformer;

/// An evaluator the trainer runs on a schedule. With a data-parallel group every rank evaluates its
/// share and `run` reduces, so all ranks return the same metrics.
pub trait InLoopEvaluator {
    fn run(
        &mut self,
        model: &Transformer,
        device: Device,
        group: Option<&ProcessGroup>,
    ) -> Result<BTreeMap<String, f64>>;
}
