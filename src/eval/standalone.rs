//! `olmo-train eval CHECKPOINT`: the in-loop evaluators run on a saved or converted checkpoint, with the
//! checkpoint's own config (tokenizer, sequence length, micro-batch size, `lm_evaluator` and
//! `downstream_evaluator` settings), or with `--lm-sets LABEL=PATH...` and/or `--tasks NAME...` in place
//! of its evaluation files and tasks. Prints a table; writes JSON.
use std::path::{Path, PathBuf};

use super::in_loop::DownstreamSuite;
use super::lm::PartialBatch;
use super::{task_file, InLoopEvaluator, LmEvaluator};
use crate::checkpoint::{self, layout};
use crate::config::callbacks::{DownstreamEvaluatorCallbackConfig, LMEvaluatorCallbackConfig};
use crate::config::data::NumpyPaddedFSLDatasetConfig;
use crate::config::{DType, ExperimentConfig};
use crate::device::{device_name, for_rank, RankSlot};
use crate::error::{Error, Result};
use crate::model::Transformer;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "olmo-train eval",
    about = "Evaluate a checkpoint: perplexity on held-out token files, downstream tasks"
)]
pub struct EvalArgs {
    /// A checkpoint folder, or a save folder (its latest checkpoint is used).
    pub checkpoint: PathBuf,
    /// Perplexity sets as LABEL=PATH (token files; globs allowed), replacing the checkpoint config's.
    #[arg(long = "lm-sets", num_args = 1..)]
    pub lm_sets: Vec<String>,
    /// Downstream tasks by OLMo-core's names (hellaswag, arc_easy, ...), replacing the config's.
    #[arg(long, num_args = 1..)]
    pub tasks: Vec<String>,
    /// The task folder (scripts/get-eval-tasks.sh); default $OLMO_TRAIN_EVAL_TASKS, else ./eval-tasks.
    #[arg(long = "task-dir")]
    pub task_dir: Option<PathBuf>,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "eval_results.json")]
    pub output: PathBuf,
    /// cpu, cuda or cuda:N (default: CUDA when present).
    #[arg(long)]
    pub device: Option<String>,
}

pub struct EvalReport {
    pub checkpoint: PathBuf,
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// Documents read from each perplexity set, every one of them (partial last batch included).
    pub lm_documents: std::collections::BTreeMap<String, u64>,
}

pub fn run(args: &EvalArgs) -> Result<EvalReport> {
    let dir = layout::resolve(&args.checkpoint).ok_or_else(|| Error::Input {
        path: args.checkpoint.clone(),
        reason: "not a checkpoint (no .metadata.json and model weights) and holds none".into(),
    })?;
    let config = checkpoint::read_config(&dir)?;
    let explicit = !args.lm_sets.is_empty() || !args.tasks.is_empty();
    let lm = if explicit && args.lm_sets.is_empty() {
        None
    } else {
        lm_config(&config, &args.lm_sets)?
    };
    let downstream = downstream_config(&config, &args.tasks, explicit);
    if lm.is_none() && downstream.is_none() {
        return Err(Error::Usage(
            "the checkpoint's config has no LM evaluation set and no downstream tasks; pass --lm-sets LABEL=PATH or --tasks NAME"
                .into(),
        ));
    }
    let (device, why) = for_rank("--device", args.device.as_deref(), RankSlot::SINGLE)?;
    tracing::info!("evaluating on {}: {why}", device_name(device));
    let model = Transformer::new(&config.model, device)?;
    checkpoint::load_model(&dir, model.named_parameters())?;
    let mut metrics = std::collections::BTreeMap::new();
    let mut documents = std::collections::BTreeMap::new();
    if let Some(lm) = lm {
        let batch_tokens = config.train_module.rank_microbatch_size;
        let mut evaluator = LmEvaluator::new(&lm, batch_tokens, 0, 1, PartialBatch::Keep)?
            .with_bf16_autocast(config.train_module.autocast_precision == Some(DType::Bfloat16));
        metrics.extend(evaluator.run(&model, device, None)?);
        documents = evaluator.documents_read();
    }
    if let Some(ds) = downstream {
        let tasks_dir = args
            .task_dir
            .clone()
            .unwrap_or_else(task_file::default_tasks_dir);
        let mut suite = DownstreamSuite::build(&ds, &config, &tasks_dir, 0, 1)?;
        metrics.extend(suite.run(&model, device, None)?);
    }
    let report = serde_json::json!({
        "checkpoint": dir.display().to_string(),
        "metrics": metrics,
        "lm_documents": documents,
    });
    write_json(&args.output, &report)?;
    Ok(EvalReport {
        checkpoint: dir,
        metrics,
        lm_documents: documents,
    })
}

/// The checkpoint's `downstream_evaluator` (when enabled and nothing else was asked for), or one for
/// `--tasks` with the callback's tokenizer, else the dataset's.
fn downstream_config(
    config: &ExperimentConfig,
    tasks: &[String],
    explicit: bool,
) -> Option<DownstreamEvaluatorCallbackConfig> {
    let configured = config.trainer.callbacks.downstream_evaluator.clone();
    if tasks.is_empty() {
        return configured.filter(|c| c.enabled && !explicit && !c.tasks.is_empty());
    }
    let tokenizer = configured
        .as_ref()
        .map(|c| c.tokenizer.clone())
        .unwrap_or_else(|| config.dataset.tokenizer.clone());
    Some(DownstreamEvaluatorCallbackConfig {
        tasks: tasks.to_vec(),
        tokenizer,
        ..configured.unwrap_or_default()
    })
}

/// The checkpoint's `lm_evaluator`, with `--lm-sets` replacing its files and labels; `None` when it
/// has no evaluation files.
fn lm_config(
    config: &ExperimentConfig,
    lm_sets: &[String],
) -> Result<Option<LMEvaluatorCallbackConfig>> {
    let mut lm = config
        .trainer
        .callbacks
        .lm_evaluator
        .clone()
        .unwrap_or_default();
    if lm_sets.is_empty() {
        if lm
            .eval_dataset
            .as_ref()
            .and_then(|d| d.paths.as_ref())
            .is_none()
        {
            return Ok(None);
        }
        return Ok(Some(lm));
    }
    let mut paths = Vec::new();
    let mut metadata = Vec::new();
    for set in lm_sets {
        let (label, path) = set
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--lm-sets '{set}': expected LABEL=PATH")))?;
        paths.push(path.to_string());
        let mut m = serde_yaml::Mapping::new();
        m.insert("label".into(), label.into());
        metadata.push(serde_yaml::Value::Mapping(m));
    }
    let base = lm.eval_dataset.clone().unwrap_or_default();
    lm.eval_dataset = Some(NumpyPaddedFSLDatasetConfig {
        paths: Some(paths),
        metadata: Some(metadata),
        tokenizer: config.dataset.tokenizer.clone(),
        sequence_length: config.dataset.sequence_length,
        work_dir: base.work_dir.or_else(|| config.dataset.work_dir.clone()),
        dtype: config.dataset.dtype,
        ..base
    });
    Ok(Some(lm))
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::Internal(format!("the report is not JSON: {e}")))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// The table `olmo-train eval` prints.
pub fn table(report: &EvalReport) -> String {
    let mut s = format!("checkpoint: {}\n", report.checkpoint.display());
    for (label, n) in &report.lm_documents {
        s.push_str(&format!("lm set {label}: {n} documents read\n"));
    }
    let width = report.metrics.keys().map(|k| k.len()).max().unwrap_or(6);
    for (k, v) in &report.metrics {
        s.push_str(&format!("{k:<width$}  {v:.6}\n"));
    }
    s
}
