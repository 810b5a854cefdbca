//! OLMo-core's `Trainer.fit` for one process: epochs of batches, `max_duration` and `hard_stop`,
//! metrics collected on step 1 and every `metrics_collect_interval` steps (one host sync each time),
//! OLMo-core's console lines, `metrics.jsonl`, throughput, and clean stops.
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::checkpointer::Checkpointer;
use super::duration::{is_due, max_steps, Progress};
use super::metrics::{console_block, format_eta, jsonl_line, StepMetrics};
use super::train_module::{StepOutputs, TrainModule};
use crate::checkpoint::{self, Snapshot, TrainerState};
use crate::config::trainer::Duration;
use crate::data::DataLoader;
use crate::dist::ProcessGroup;
use crate::error::{Error, Result};
use crate::eval::InLoopEvaluator;
use crate::logging::MetricSink;

/// The trainer's settings, from `trainer` and its callbacks.
pub struct TrainerOptions {
    pub max_duration: Duration,
    pub hard_stop: Option<Duration>,
    pub metrics_collect_interval: u64,
    /// Console metric patterns (`console_logger.metrics`) and its interval.
    pub console_metrics: Vec<String>,
    pub console_log_interval: u64,
    /// Where `metrics.jsonl` and checkpoints go.
    pub save_folder: PathBuf,
    /// The resolved config and the dataset's files, stored with every checkpoint.
    pub config_json: String,
    pub data_paths: Vec<String>,
}

/// One evaluator callback (`lm_evaluator`, `downstream_evaluator`) and when it runs.
pub struct EvalSchedule {
    pub evaluator: Box<dyn InLoopEvaluator>,
    pub interval: u64,
    pub fixed_steps: Vec<u64>,
    pub on_startup: bool,
    pub on_finish: bool,
}

impl EvalSchedule {
    fn due(&self, step: u64) -> bool {
        (step > 1 && self.interval > 0 && step % self.interval == 0)
            || self.fixed_steps.contains(&step)
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    pub steps: u64,
    pub tokens: u64,
    pub interrupted: bool,
    /// `train/CE loss` of every step, in order.
    pub losses: Vec<f64>,
    pub seconds: f64,
}

struct Pending {
    step: u64,
    epoch: u64,
    out: StepOutputs,
    host: StepMetrics,
}

pub struct Trainer {
    opts: TrainerOptions,
    module: TrainModule,
    loader: DataLoader,
    progress: Progress,
    max_steps: u64,
    stop: Arc<AtomicBool>,
    pending: Vec<Pending>,
    metrics_file: File,
    losses: Vec<f64>,
    started: Instant,
    /// When the first step ended (throughput averages exclude it, as OLMo-core does).
    first_step_end: Option<Instant>,
    tokens_after_first: u64,
    checkpointer: Checkpointer,
    evals: Vec<EvalSchedule>,
    sinks: Vec<Box<dyn MetricSink>>,
    /// Data-parallel group, and whether this is rank 0 (the one that logs and writes).
    dp: Option<Arc<ProcessGroup>>,
    is_main: bool,
    /// `OLMO_TRAIN_CHECK_REPLICAS=1`: verify after every step that all ranks hold the same weights.
    check_replicas: bool,
}

impl Trainer {
    pub fn new(
        opts: TrainerOptions,
        module: TrainModule,
        loader: DataLoader,
        stop: Arc<AtomicBool>,
        checkpointer: Checkpointer,
    ) -> Result<Self> {
        let max_steps = max_steps(
            &opts.max_duration,
            loader.global_batch_size(),
            loader.total_batches(),
        );
        std::fs::create_dir_all(&opts.save_folder).map_err(|e| Error::io(&opts.save_folder, e))?;
        let path = opts.save_folder.join("metrics.jsonl");
        let metrics_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self {
            opts,
            module,
            loader,
            progress: Progress {
                step: 0,
                tokens: 0,
                epoch: 1,
            },
            max_steps,
            stop,
            pending: Vec::new(),
            metrics_file,
            losses: Vec::new(),
            started: Instant::now(),
            first_step_end: None,
            tokens_after_first: 0,
            checkpointer,
            evals: Vec::new(),
            sinks: Vec::new(),
            dp: None,
            check_replicas: false,
            is_main: true,
        })
    }

    /// Continues from a checkpoint's trainer state: step, tokens, epoch and the exact data position.
    /// Metrics logged after that step by the interrupted run are dropped from `metrics.jsonl`.
    pub fn resume(&mut self, state: &TrainerState) -> Result<()> {
        self.loader.load_state(&state.data_loader)?;
        self.progress = Progress {
            step: state.global_step,
            tokens: state.global_train_tokens_seen,
            epoch: state.epoch.max(1),
        };
        if self.is_main {
            truncate_metrics(&metrics_path(&self.opts.save_folder), state.global_step)?;
        }
        let path = metrics_path(&self.opts.save_folder);
        self.metrics_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        tracing::info!(
            "resuming training from step {}, epoch {}",
            state.global_step,
            self.progress.epoch
        );
        Ok(())
    }

    /// Runs as one rank of a data-parallel group: gradients averaged, metrics reduced once per collection,
    /// stop requests agreed on by all ranks, checkpoints and logs written by rank 0 only.
    pub fn with_data_parallel(&mut self, group: Arc<ProcessGroup>) -> Result<()> {
        self.is_main = group.rank == 0;
        self.check_replicas =
            std::env::var_os("OLMO_TRAIN_CHECK_REPLICAS").is_some_and(|v| v == "1");
        if self.check_replicas {
            tracing::info!(
                "OLMO_TRAIN_CHECK_REPLICAS=1: comparing every rank's parameters with rank 0's after each step"
            );
        }
        if !self.is_main {
            self.checkpointer.read_only();
        }
        self.module.with_data_parallel(group.clone())?;
        self.dp = Some(group);
        Ok(())
    }

    /// Whether any rank asked to stop (one small collective per step with several ranks).
    fn stop_requested(&self) -> Result<bool> {
        let local = self.stop.load(Ordering::Relaxed);
        let Some(pg) = &self.dp else { return Ok(local) };
        let flag = Tensor::from_slice(&[f32::from(u8::from(local))]);
        pg.all_reduce_sum(&[flag.shallow_clone()])?;
        Ok(flag.double_value(&[0]) > 0.0)
    }

    /// Adds a metrics destination (W&B, ...); it gets every logged step.
    pub fn add_sink(&mut self, sink: Box<dyn MetricSink>) {
        tracing::info!("{}", sink.describe());
        self.sinks.push(sink);
    }

    /// Closes every metrics destination with the run's exit code (0 finished, 1 failed or stopped).
    pub fn close_sinks(&mut self, exit_code: i32) {
        for s in &mut self.sinks {
            if let Err(e) = s.finish(exit_code) {
                tracing::warn!("closing a metrics destination: {e}");
            }
            tracing::info!("{}", s.describe());
        }
    }

    /// Adds an in-loop evaluator callback.
    pub fn with_eval(&mut self, eval: EvalSchedule) {
        self.evals.push(eval);
    }

    /// Runs the evaluators `pick` selects now; their metrics plus `throughput/in-loop eval time (s)`.
    fn evaluate(&mut self, pick: impl Fn(&EvalSchedule) -> bool) -> Result<StepMetrics> {
        let started = Instant::now();
        let device = self.module.device();
        let mut m = StepMetrics::new();
        let mut ran = false;
        for e in self.evals.iter_mut().filter(|e| pick(e)) {
            m.extend(
                e.evaluator
                    .run(&self.module.model, device, self.dp.as_deref())?,
            );
            ran = true;
        }
        if ran {
            m.insert(
                "throughput/in-loop eval time (s)".into(),
                started.elapsed().as_secs_f64(),
            );
        }
        Ok(m)
    }

    pub fn module_mut(&mut self) -> &mut TrainModule {
        &mut self.module
    }

    /// Everything a checkpoint of the current state holds, copied to the host.
    fn snapshot(&self) -> Snapshot {
        let mut callbacks = std::collections::BTreeMap::new();
        callbacks.insert("checkpointer".to_string(), self.checkpointer.state());
        let trainer = TrainerState {
            global_step: self.progress.step,
            global_train_tokens_seen: self.progress.tokens,
            max_steps: self.max_steps,
            epoch: self.progress.epoch,
            world_size: 1,
            data_loader: self.loader.state(),
            callbacks,
        };
        checkpoint::snapshot(
            self.module.model.named_parameters(),
            &self.module.optim,
            trainer,
            self.opts.config_json.clone(),
            self.opts.data_paths.clone(),
            self.checkpointer.copies_state(),
        )
    }

    /// Runs a checkpointer hook with a snapshot of the current state.
    fn checkpoint_with(
        &mut self,
        hook: impl FnOnce(&mut Checkpointer, u64, Snapshot) -> Result<Option<f64>>,
        needed: bool,
    ) -> Result<Option<f64>> {
        if !needed {
            return Ok(None);
        }
        let snap = self.snapshot();
        let step = self.progress.step;
        let out = hook(&mut self.checkpointer, step, snap)?;
        if let (Some(pg), Some(_)) = (&self.dp, out) {
            // Nobody moves on (or reads the checkpoint) before rank 0 has written it.
            self.checkpointer.wait()?;
            pg.barrier()?;
        }
        Ok(out)
    }

    pub fn max_steps(&self) -> u64 {
        self.max_steps
    }

    pub fn module(&self) -> &TrainModule {
        &self.module
    }

    /// Trains until `max_duration`, `hard_stop` or a stop request.
    pub fn fit(&mut self) -> Result<TrainSummary> {
        self.started = Instant::now();
        let mut interrupted = false;
        let fresh = self.checkpointer.enabled() && self.progress.step == 0;
        self.checkpoint_with(|c, step, snap| c.pre_train(step, || snap), fresh)?;
        if self.evals.iter().any(|e| e.on_startup) {
            let m = self.evaluate(|e| e.on_startup)?;
            tracing::info!(
                "{}",
                console_block(
                    &format!(
                        "[step={}/{},eval on startup]",
                        self.progress.step, self.max_steps
                    ),
                    &m,
                    &["eval/*".to_string()]
                )
            );
        }
        'epochs: loop {
            self.loader.reshuffle(Some(self.progress.epoch))?;
            let mut step_start = Instant::now();
            loop {
                if self.stop_requested()? {
                    interrupted = true;
                    break 'epochs;
                }
                let Some(batch) = self.loader.next_batch() else {
                    break;
                };
                let batch = batch?;
                let data_seconds = step_start.elapsed().as_secs_f64();
                self.progress.step += 1;
                self.progress.tokens += self.loader.global_batch_size();
                let step = self.progress.step;
                let mut out = self.run_step(&batch, step)?;
                let (current, total) = if self.module.schedule_in_tokens() {
                    (
                        self.progress.tokens,
                        self.max_steps * self.loader.global_batch_size(),
                    )
                } else {
                    (step, self.max_steps)
                };
                self.module.optim_step(&mut out, current, total)?;
                if self.check_replicas {
                    self.module.check_replicas_identical(step)?;
                }
                let saving = self.checkpointer.enabled();
                let save_seconds =
                    self.checkpoint_with(|c, step, snap| c.after_step(step, || snap), saving)?;
                let step_seconds = step_start.elapsed().as_secs_f64();
                let mut host =
                    self.throughput(batch.input_ids.numel() as u64, step_seconds, data_seconds);
                if let Some(s) = save_seconds {
                    host.insert("checkpoint/save_duration_s".into(), s);
                }
                let finishing = self.is_done();
                host.extend(self.evaluate(|e| e.due(step) || (finishing && e.on_finish))?);
                self.pending.push(Pending {
                    step,
                    epoch: self.progress.epoch,
                    out,
                    host,
                });
                let done = self.is_done();
                if step == 1 || step % self.opts.metrics_collect_interval.max(1) == 0 || done {
                    self.collect()?;
                }
                step_start = Instant::now();
                if done {
                    break 'epochs;
                }
            }
            self.progress.epoch += 1;
            self.loader.reset();
            if is_due(&self.opts.max_duration, &self.progress) {
                break;
            }
        }
        self.collect()?;
        let saving = self.checkpointer.enabled();
        self.checkpoint_with(|c, step, snap| c.finish(step, || snap), saving)?;
        Ok(TrainSummary {
            steps: self.progress.step,
            tokens: self.progress.tokens,
            interrupted,
            losses: self.losses.clone(),
            seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    /// One training step, with libtorch failures (such as running out of memory) turned into an error
    /// naming the step instead of a panic.
    fn run_step(&mut self, batch: &crate::data::Batch, step: u64) -> Result<StepOutputs> {
        let module = &mut self.module;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| module.train_batch(batch)))
            .map_err(|e| {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
                Error::Training {
                    step,
                    reason: msg
                        .unwrap_or_else(|| "libtorch failed".into())
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                }
            })?
    }

    fn is_done(&self) -> bool {
        is_due(&self.opts.max_duration, &self.progress)
            || self
                .opts
                .hard_stop
                .as_ref()
                .is_some_and(|h| is_due(h, &self.progress))
    }

    /// Host-side throughput metrics of a step (OLMo-core's speed monitor names).
    fn throughput(
        &mut self,
        rank_tokens: u64,
        step_seconds: f64,
        data_seconds: f64,
    ) -> StepMetrics {
        let mut m = StepMetrics::new();
        m.insert(
            "throughput/total tokens".into(),
            self.progress.tokens as f64,
        );
        m.insert("throughput/device/data loading (s)".into(), data_seconds);
        m.insert(
            "throughput/device/data loading (%)".into(),
            100.0 * data_seconds / step_seconds.max(1e-9),
        );
        match self.first_step_end {
            None => self.first_step_end = Some(Instant::now()),
            Some(t0) => {
                self.tokens_after_first += rank_tokens;
                let avg_time = t0.elapsed().as_secs_f64().max(1e-9);
                m.insert(
                    "throughput/device/TPS".into(),
                    rank_tokens as f64 / step_seconds.max(1e-9),
                );
                m.insert("throughput/device/BPS".into(), 1.0 / step_seconds.max(1e-9));
                m.insert(
                    "throughput/device/TPS (actual avg)".into(),
                    self.tokens_after_first as f64 / avg_time,
                );
                m.insert(
                    "throughput/device/BPS (actual avg)".into(),
                    (self.progress.step - 1) as f64 / avg_time,
                );
            }
        }
        m
    }

    /// Brings the pending steps' device metrics to the host in one transfer, then logs them.
    fn collect(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let mut scalars: Vec<Tensor> = Vec::new();
        for p in &pending {
            scalars.push(p.out.ce_loss.to_kind(Kind::Float).view([1]));
            scalars.push(p.out.masked_labels.to_kind(Kind::Float).view([1]));
            if let Some(g) = &p.out.grad_norm {
                scalars.push(g.to_kind(Kind::Float).view([1]));
            }
            if let Some(z) = &p.out.z_loss {
                scalars.push(z.to_kind(Kind::Float).view([1]));
            }
            if let Some(m) = &p.out.masked_instances {
                scalars.push(m.to_kind(Kind::Float).view([1]));
            }
        }
        let mut all = Tensor::cat(&scalars, 0)
            .to_kind(Kind::Double)
            .to_device(Device::Cpu);
        if let Some(pg) = &self.dp {
            // OLMo-core's mean reduction of the collected metrics, one collective per collection.
            pg.all_reduce_sum(&[all.shallow_clone()])?;
            all /= pg.world_size as f64;
        }
        let values: Vec<f64> = Vec::<f64>::try_from(all).map_err(|e| Error::Training {
            step: self.progress.step,
            reason: e.to_string(),
        })?;
        let mut it = values.into_iter();
        for p in pending {
            let mut m = p.host;
            let ce = it.next().unwrap_or(f64::NAN);
            m.insert("train/CE loss".into(), ce);
            if ce < 10.0 {
                m.insert("train/PPL".into(), ce.exp());
            }
            m.insert(
                "train/masked labels (%)".into(),
                it.next().unwrap_or(f64::NAN),
            );
            if p.out.grad_norm.is_some() {
                m.insert(
                    "optim/total grad norm".into(),
                    it.next().unwrap_or(f64::NAN),
                );
            }
            if p.out.z_loss.is_some() {
                m.insert("train/Z loss".into(), it.next().unwrap_or(f64::NAN));
            }
            if p.out.masked_instances.is_some() {
                m.insert(
                    "train/masked instances (%)".into(),
                    it.next().unwrap_or(f64::NAN),
                );
            }
            for (i, lr) in p.out.lrs.iter().enumerate() {
                m.insert(format!("optim/LR (group {i})"), *lr);
            }
            self.log(p.step, p.epoch, &m)?;
            self.losses.push(ce);
            if !ce.is_finite() {
                return Err(Error::Training {
                    step: p.step,
                    reason: format!("{ce} loss encountered"),
                });
            }
        }
        Ok(())
    }

    fn log(&mut self, step: u64, epoch: u64, m: &StepMetrics) -> Result<()> {
        if !self.is_main {
            return Ok(());
        }
        for s in &mut self.sinks {
            s.log(step, m)?;
        }
        let line = jsonl_line(step, m);
        writeln!(self.metrics_file, "{line}")
            .map_err(|e| Error::io(self.opts.save_folder.join("metrics.jsonl"), e))?;
        if step == 1 || step % self.opts.console_log_interval.max(1) == 0 {
            let eta = (step > 1).then(|| {
                let per_step = self.started.elapsed().as_secs_f64() / step as f64;
                format!(
                    ",eta={}",
                    format_eta(per_step * self.max_steps.saturating_sub(step) as f64)
                )
            });
            let hard = if self.opts.hard_stop.is_some() && eta.is_some() {
                "(hard stop)"
            } else {
                ""
            };
            let header = format!(
                "[step={step}/{},epoch={epoch}{}{hard}]",
                self.max_steps,
                eta.unwrap_or_default()
            );
            tracing::info!("{}", console_block(&header, m, &self.opts.console_metrics));
        }
        Ok(())
    }
}

/// The metrics file of a save folder.
pub fn metrics_path(save_folder: &Path) -> PathBuf {
    save_folder.join("metrics.jsonl")
}

/// Keeps only the lines of steps up to `step` (atomically: temp file, then rename).
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
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
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, kept).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
