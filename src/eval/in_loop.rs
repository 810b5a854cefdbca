//! The evaluator callbacks as the trainer runs them: `lm_evaluator` (one `LmEvaluator`) and
//! `downstream_evaluator` (one `DownstreamEvaluator` per task, in sorted task order as OLMo-core builds
//! them), each with its schedule.
use std::collections::BTreeMap;

use tch::Device;

use super::downstream::{DownstreamEvaluator, DownstreamSettings};
use super::lm::PartialBatch;
use super::task_file;
use super::{InLoopEvaluator, LmEvaluator};
use crate::config::callbacks::DownstreamEvaluatorCallbackConfig;
use crate::config::{DType, ExperimentConfig};
use crate::dist::ProcessGroup;
use crate::error::{Error, Result};
use crate::model::Transformer;
use crate::tokenize::tokenizer::TextTokenizer;

/// One evaluator callback (`lm_evaluator`, `downstream_evaluator`) and when it runs.
pub struct EvalSchedule {
    pub evaluator: Box<dyn InLoopEvaluator>,
    pub interval: u64,
    pub fixed_steps: Vec<u64>,
    pub on_startup: bool,
    pub on_finish: bool,
}

impl EvalSchedule {
    /// Whether it runs after `step` (its interval, from step 2 on, or one of its fixed steps).
    pub fn due(&self, step: u64) -> bool {
        (step > 1 && self.interval > 0 && step % self.interval == 0)
            || self.fixed_steps.contains(&step)
    }
}

/// The downstream callback's tasks.
pub struct DownstreamSuite {
    pub tasks: Vec<DownstreamEvaluator>,
}

impl InLoopEvaluator for DownstreamSuite {
    fn run(
        &mut self,
        model: &Transformer,
        device: Device,
        group: Option<&ProcessGroup>,
    ) -> Result<BTreeMap<String, f64>> {
        let mut out = BTreeMap::new();
        for t in &self.tasks {
            out.extend(t.run(model, device, group)?);
        }
        Ok(out)
    }
}

impl DownstreamSuite {
    /// The callback's tasks from the task folder, tokenized with the callback's tokenizer.
    pub fn build(
        cfg: &DownstreamEvaluatorCallbackConfig,
        config: &ExperimentConfig,
        tasks_dir: &std::path::Path,
        rank: usize,
        world: usize,
    ) -> Result<Self> {
        let identifier =
            cfg.tokenizer
                .identifier
                .as_deref()
                .ok_or_else(|| Error::InvalidValue {
                    path: "trainer.callbacks.downstream_evaluator.tokenizer.identifier".into(),
                    reason:
                        "a tokenizer identifier (preset name or tokenizer.json path) is required"
                            .into(),
                })?;
        let tokenizer = TextTokenizer::load(identifier)?;
        let settings = DownstreamSettings {
            tasks_dir,
            tokenizer: &tokenizer,
            tokenizer_config: &cfg.tokenizer,
            max_sequence_length: config.train_module.max_sequence_length as usize,
            batch_tokens: config.train_module.rank_microbatch_size as usize,
            rank,
            world,
            // A window follows sequence order, which packed continuations do not have.
            share_contexts: !config.model.has_sliding_window(),
            model_vocab_size: config.model.vocab_size,
        };
        let mut names = cfg.tasks.clone();
        names.sort();
        names.dedup();
        let tasks = names
            .iter()
            .map(|t| DownstreamEvaluator::new(t, &settings))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { tasks })
    }
}

/// The enabled evaluator callbacks (none when `trainer.no_evals`).
pub fn build_schedules(
    config: &ExperimentConfig,
    rank: usize,
    world: usize,
) -> Result<Vec<EvalSchedule>> {
    let mut out = Vec::new();
    if config.trainer.no_evals {
        return Ok(out);
    }
    let cbs = &config.trainer.callbacks;
    if let Some(cfg) = cbs.lm_evaluator.as_ref().filter(|c| c.enabled) {
        let batch = config.train_module.rank_microbatch_size * world as u64;
        let evaluator =
            LmEvaluator::new(cfg, batch, rank as u64, world as u64, PartialBatch::Drop)?
                .with_bf16_autocast(
                    config.train_module.autocast_precision == Some(DType::Bfloat16),
                );
        out.push(EvalSchedule {
            evaluator: Box::new(evaluator),
            interval: cfg.eval_interval,
            fixed_steps: cfg.fixed_steps.clone().unwrap_or_default(),
            on_startup: cfg.eval_on_startup,
            on_finish: cfg.eval_on_finish,
        });
    }
    if let Some(cfg) = cbs.downstream_evaluator.as_ref().filter(|c| c.enabled) {
        let dir = task_file::default_tasks_dir();
        let suite = DownstreamSuite::build(cfg, config, &dir, rank, world)?;
        out.push(EvalSchedule {
            evaluator: Box::new(suite),
            interval: cfg.eval_interval,
            fixed_steps: cfg.fixed_steps.clone().unwrap_or_default(),
            on_startup: cfg.eval_on_startup,
            on_finish: cfg.eval_on_finish,
        });
    }
    Ok(out)
}
