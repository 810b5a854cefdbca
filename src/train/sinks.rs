//! The trainer's own metric sinks: OLMo-core's console logger (a block of `name=value` lines every
//! `metrics_log_interval` steps) and `metrics.jsonl` in the save folder (one line per step).
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::metrics::{console_block, format_eta, jsonl_line, StepMetrics};
use crate::error::{Error, Result};
use crate::logging::MetricSink;

/// `console_logger`: the metrics matching its patterns, on step 1 and every `interval` steps.
pub struct ConsoleSink {
    pub patterns: Vec<String>,
    pub interval: u64,
    pub max_steps: u64,
    /// With a hard stop the ETA line says so.
    pub hard_stop: bool,
    pub started: Instant,
}

impl MetricSink for ConsoleSink {
    fn on_fit_start(&mut self) {
        self.started = Instant::now();
    }

    fn log(&mut self, step: u64, epoch: u64, m: &StepMetrics) -> Result<()> {
        if step != 1 && step % self.interval.max(1) != 0 {
            return Ok(());
        }
        let eta = (step > 1).then(|| {
            let per_step = self.started.elapsed().as_secs_f64() / step as f64;
            let left = per_step * self.max_steps.saturating_sub(step) as f64;
            format!(",eta={}", format_eta(left))
        });
        let hard = if self.hard_stop && eta.is_some() {
            "(hard stop)"
        } else {
            ""
        };
        let header = format!(
            "[step={step}/{},epoch={epoch}{}{hard}]",
            self.max_steps,
            eta.unwrap_or_default()
        );
        tracing::info!("{}", console_block(&header, m, &self.patterns));
        Ok(())
    }

    fn finish(&mut self, _exit_code: i32) -> Result<()> {
        Ok(())
    }

    /// Nothing to point at: the console is where the user already looks.
    fn describe(&self) -> String {
        String::new()
    }
}

/// `metrics.jsonl` in the save folder, appended to; a resumed run first drops the lines the interrupted
/// run logged after the step it resumes from.
pub struct MetricsFile {
    path: PathBuf,
    file: File,
}

impl MetricsFile {
    pub fn open(save_folder: &Path) -> Result<Self> {
        std::fs::create_dir_all(save_folder).map_err(|e| Error::io(save_folder, e))?;
        let path = metrics_path(save_folder);
        let file = append(&path)?;
        Ok(Self { path, file })
    }

    /// Keeps only the lines of steps up to `step` (atomically: temp file, then rename).
    pub fn truncate_after(&mut self, step: u64) -> Result<()> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Ok(());
        };
        let kept: String = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s <= step)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let tmp = self.path.with_extension("jsonl.tmp");
        std::fs::write(&tmp, kept).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&tmp, e)
        })?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        self.file = append(&self.path)?;
        Ok(())
    }
}

impl MetricSink for MetricsFile {
    fn log(&mut self, step: u64, _epoch: u64, m: &StepMetrics) -> Result<()> {
        // One write per line: a full disk leaves at most one cut-off last line, which the resumed
        // run's `truncate_after` drops.
        let line = format!("{}\n", jsonl_line(step, m));
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(&self.path, e))
    }

    fn finish(&mut self, _exit_code: i32) -> Result<()> {
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }

    fn describe(&self) -> String {
        format!("metrics: {}", self.path.display())
    }
}

/// The metrics file of a save folder.
pub fn metrics_path(save_folder: &Path) -> PathBuf {
    save_folder.join("metrics.jsonl")
}

fn append(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}
