//! What a run writes besides checkpoints: its metric sinks (the console, `metrics.jsonl`, W&B,
//! TensorBoard) and `config_saver`'s files.
use std::path::{Path, PathBuf};

use super::run::trainer_save_folder;
use super::sinks::{ConsoleSink, MetricsFile};
use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use crate::logging::MetricSink;

/// The console, `metrics.jsonl` (cut back to `resumed_at` when resuming), W&B and TensorBoard.
pub fn build_sinks(
    config: &ExperimentConfig,
    resumed_at: Option<u64>,
    max_steps: u64,
) -> Result<Vec<Box<dyn MetricSink>>> {
    let console = config
        .trainer
        .callbacks
        .console_logger
        .clone()
        .unwrap_or_default();
    let mut metrics_file = MetricsFile::open(&trainer_save_folder(config))?;
    if let Some(step) = resumed_at {
        metrics_file.truncate_after(step)?;
    }
    let mut sinks: Vec<Box<dyn MetricSink>> = vec![
        Box::new(ConsoleSink {
            patterns: console.metrics.clone(),
            interval: console.metrics_log_interval.unwrap_or(console.log_interval),
            max_steps,
            hard_stop: config.trainer.hard_stop.is_some(),
            started: std::time::Instant::now(),
        }),
        Box::new(metrics_file),
    ];
    if let Some(w) = build_wandb(config, resumed_at.is_some())? {
        sinks.push(Box::new(w));
    }
    if let Some(tb) = config
        .trainer
        .callbacks
        .tensorboard
        .as_ref()
        .filter(|t| t.enabled)
    {
        let dir = tb
            .log_dir
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| trainer_save_folder(config).join("tb"));
        sinks.push(Box::new(
            crate::logging::tensorboard::TensorBoardWriter::create(&dir)?,
        ));
    }
    Ok(sinks)
}

/// `config_saver`: `config.json` and `data_paths.txt` in the save folder.
pub fn save_config(config: &ExperimentConfig, folder: &Path, data_paths: &[String]) -> Result<()> {
    let Some(cs) = config.trainer.callbacks.config_saver.as_ref() else {
        return Ok(());
    };
    std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
    let json = serde_json::to_string_pretty(config)
        .map_err(|e| Error::Internal(format!("the config is not JSON: {e}")))?;
    let path = folder.join(&cs.fname);
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    if cs.save_data_paths.unwrap_or(true) {
        let name = cs
            .data_paths_fname
            .clone()
            .unwrap_or_else(|| "data_paths.txt".into());
        let path = folder.join(name);
        std::fs::write(&path, format!("{}\n", data_paths.join("\n")))
            .map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// The `wandb` callback as a native offline writer (rank 0), honouring wandb's environment variables.
fn build_wandb(
    config: &ExperimentConfig,
    resumed: bool,
) -> Result<Option<crate::logging::wandb::WandbWriter>> {
    use crate::logging::wandb::{sanitize_run_id, WandbOptions, WandbWriter};
    let Some(cb) = config
        .trainer
        .callbacks
        .wandb
        .as_ref()
        .filter(|c| c.enabled)
    else {
        return Ok(None);
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if env("WANDB_MODE").as_deref() == Some("disabled") {
        return Ok(None);
    }
    let name = cb.name.clone().unwrap_or_else(|| "olmo-train".into());
    let base_dir = env("WANDB_DIR")
        .map(PathBuf::from)
        .or_else(|| config.trainer.work_dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(&config.trainer.save_folder));
    let opts = WandbOptions {
        base_dir,
        run_id: env("WANDB_RUN_ID").unwrap_or_else(|| sanitize_run_id(&name)),
        display_name: Some(name),
        project: cb.project.clone().or_else(|| env("WANDB_PROJECT")),
        entity: cb.entity.clone().or_else(|| env("WANDB_ENTITY")),
        group: cb.group.clone(),
        tags: cb.tags.clone().unwrap_or_default(),
        notes: cb.notes.clone(),
        config: match &cb.config {
            Some(c) => serde_json::to_value(c),
            None => serde_json::to_value(config),
        }
        .map_err(|e| Error::Internal(format!("the W&B config is not JSON: {e}")))?,
    };
    if resumed {
        tracing::info!(
            "W&B: a new offline segment with run id {} (sync appends it to the same run)",
            opts.run_id
        );
    }
    WandbWriter::create(&opts).map(Some)
}
