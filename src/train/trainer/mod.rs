//! OLMo-core's `Trainer.fit` for one rank: epochs of batches, `max_duration` and `hard_stop`, the
//! checkpointer's saves, the evaluator callbacks, and metrics collected on step 1 and every
//! `metrics_collect_interval` steps (one host sync each time) and handed to every metric sink. The
//! trainer owns time, data and dispatch; the train module owns the model, optimizer and gradient sync.
mod checkpointing;
mod collect;

pub use checkpointing::ResumePoint;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tch::Tensor;

use super::checkpointer::Checkpointer;
use super::duration::{is_due, max_steps, Progress};
use super::gpu_memory::GpuMemoryMonitor;
use super::metric_names as names;
use super::metrics::{console_block, StepMetrics};
use super::throughput::SpeedMonitor;
use super::train_module::{StepOutputs, TrainModule};
use crate::config::trainer::Duration;
use crate::data::{Batch, DataLoader};
use crate::dist::ProcessGroup;
use crate::error::{Error, Result};
use crate::eval::in_loop::EvalSchedule;
use crate::logging::MetricSink;

/// The trainer's settings, from `trainer`.
pub struct TrainerOptions {
    pub max_duration: Duration,
    pub hard_stop: Option<Duration>,
    pub metrics_collect_interval: u64,
    /// The resolved config and the dataset's files, stored with every checkpoint.
    pub config_json: String,
    pub data_paths: Vec<String>,
    /// `OLMO_TRAIN_CHECK_REPLICAS=1`: after every step, check that all ranks hold the same weights.
    pub check_replicas: bool,
    /// `callbacks.gpu_monitor` is configured (it reports on GPUs only).
    pub gpu_monitor: bool,
}

/// Everything a trainer is made of; `train::run` builds each part with a named builder.
pub struct TrainerParts {
    pub opts: TrainerOptions,
    pub module: TrainModule,
    pub loader: DataLoader,
    pub checkpointer: Checkpointer,
    pub evals: Vec<EvalSchedule>,
    /// Every metric destination (console, `metrics.jsonl`, W&B, TensorBoard); only rank 0 logs.
    pub sinks: Vec<Box<dyn MetricSink>>,
    /// The data-parallel group, when there are several ranks.
    pub group: Option<Arc<ProcessGroup>>,
    /// Where to continue from, when resuming.
    pub resume: Option<ResumePoint>,
    /// Raised by SIGINT/SIGTERM.
    pub stop: Arc<AtomicBool>,
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
    /// How many times the whole state was snapshotted for a checkpoint (once per save, never per step).
    pub snapshots: u64,
}

/// A step whose device metrics wait for the next collection.
struct Pending {
    step: u64,
    epoch: u64,
    out: StepOutputs,
    host: StepMetrics,
}

/// Why an epoch's loop ended.
enum EpochEnd {
    Exhausted,
    Done,
    Stopped,
}

pub struct Trainer {
    opts: TrainerOptions,
    module: TrainModule,
    loader: DataLoader,
    progress: Progress,
    max_steps: u64,
    stop: Arc<AtomicBool>,
    pending: Vec<Pending>,
    losses: Vec<f64>,
    started: Instant,
    speed: SpeedMonitor,
    gpu_memory: Option<GpuMemoryMonitor>,
    checkpointer: Checkpointer,
    snapshots: u64,
    evals: Vec<EvalSchedule>,
    sinks: Vec<Box<dyn MetricSink>>,
    dp: Option<Arc<ProcessGroup>>,
    /// Rank 0: the one that logs and writes.
    is_main: bool,
}

impl Trainer {
    pub fn new(parts: TrainerParts) -> Result<Self> {
        let TrainerParts {
            opts,
            mut module,
            loader,
            mut checkpointer,
            evals,
            sinks,
            group,
            resume,
            stop,
        } = parts;
        let max_steps = max_steps(
            &opts.max_duration,
            loader.global_batch_size(),
            loader.total_batches(),
        );
        let is_main = group.as_ref().is_none_or(|g| g.rank == 0);
        if let Some(g) = &group {
            if !is_main {
                checkpointer.read_only();
            }
            module.with_data_parallel(g.clone())?;
        }
        let gpu_memory = GpuMemoryMonitor::start(module.device(), opts.gpu_monitor);
        let mut trainer = Self {
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
            losses: Vec::new(),
            started: Instant::now(),
            speed: SpeedMonitor::default(),
            gpu_memory,
            checkpointer,
            snapshots: 0,
            evals,
            sinks,
            dp: group,
            is_main,
        };
        if let Some(state) = resume {
            trainer.resume(&state)?;
        }
        for s in trainer.sinks.iter().map(|s| s.describe()) {
            if !s.is_empty() {
                tracing::info!("{s}");
            }
        }
        Ok(trainer)
    }

    pub fn max_steps(&self) -> u64 {
        self.max_steps
    }

    pub fn module(&self) -> &TrainModule {
        &self.module
    }

    /// Trains until `max_duration`, `hard_stop` or a stop request.
    pub fn fit(&mut self) -> Result<TrainSummary> {
        self.start()?;
        let interrupted = self
            .train_epochs()
            .inspect_err(|_| self.finish_background_save())?;
        self.collect()?;
        self.save_if_planned(self.checkpointer.plan_final(self.progress.step))?;
        self.checkpointer.wait()?;
        Ok(TrainSummary {
            steps: self.progress.step,
            tokens: self.progress.tokens,
            interrupted,
            losses: self.losses.clone(),
            seconds: self.started.elapsed().as_secs_f64(),
            snapshots: self.snapshots,
        })
    }

    /// Closes every metric sink with the run's exit code (0 finished, 1 failed or stopped).
    pub fn close_sinks(&mut self, exit_code: i32) {
        for s in &mut self.sinks {
            if let Err(e) = s.finish(exit_code) {
                tracing::warn!("closing a metrics destination: {e}");
            }
            let where_ = s.describe();
            if !where_.is_empty() {
                tracing::info!("{where_}");
            }
        }
    }

    /// Before step 1: the sinks' clocks, the step-0 checkpoint of a fresh run, evaluation on startup.
    fn start(&mut self) -> Result<()> {
        self.started = Instant::now();
        self.sinks.iter_mut().for_each(|s| s.on_fit_start());
        if self.progress.step == 0 {
            self.save_if_planned(self.checkpointer.plan_pre_train(0))?;
        }
        if self.evals.iter().any(|e| e.on_startup) {
            let m = self.evaluate(|e| e.on_startup)?;
            let header = format!(
                "[step={}/{},eval on startup]",
                self.progress.step, self.max_steps
            );
            tracing::info!("{}", console_block(&header, &m, &["eval/*".to_string()]));
        }
        Ok(())
    }

    /// Epoch after epoch until the duration is reached or a stop is requested (then true).
    fn train_epochs(&mut self) -> Result<bool> {
        loop {
            self.loader.reshuffle(Some(self.progress.epoch))?;
            match self.train_epoch()? {
                EpochEnd::Stopped => return Ok(true),
                EpochEnd::Done => return Ok(false),
                EpochEnd::Exhausted => {}
            }
            self.progress.epoch += 1;
            self.loader.reset();
            if is_due(&self.opts.max_duration, &self.progress) {
                return Ok(false);
            }
        }
    }

    fn train_epoch(&mut self) -> Result<EpochEnd> {
        let mut step_start = Instant::now();
        loop {
            if self.stop_requested()? {
                return Ok(EpochEnd::Stopped);
            }
            let Some(batch) = self.loader.next_batch() else {
                return Ok(EpochEnd::Exhausted);
            };
            let batch = batch?;
            let data_seconds = step_start.elapsed().as_secs_f64();
            self.train_step(&batch, step_start, data_seconds)?;
            if self.is_done() {
                return Ok(EpochEnd::Done);
            }
            step_start = Instant::now();
        }
    }

    /// One step: forward/backward and the optimizer, then the checkpointer, throughput and evaluators;
    /// its metrics wait for the next collection.
    fn train_step(&mut self, batch: &Batch, step_start: Instant, data_seconds: f64) -> Result<()> {
        self.progress.step += 1;
        self.progress.tokens += self.loader.global_batch_size();
        let step = self.progress.step;
        let mut out = self.forward_backward(batch, step)?;
        let (current, total) = self.schedule_position();
        self.module.optim_step(&mut out, current, total)?;
        if self.opts.check_replicas {
            self.module.check_replicas_identical(step)?;
        }
        let plan = self.checkpointer.plan_after_step(step);
        if plan.is_some() {
            self.check_losses_before_save(step, &out)?;
        }
        let save_seconds = self.save_if_planned(plan)?;
        let mut host = self.speed.step(
            batch.input_ids.numel() as u64,
            self.progress.tokens,
            step_start.elapsed().as_secs_f64(),
            data_seconds,
        );
        if let Some(s) = save_seconds {
            host.insert(names::CHECKPOINT_SAVE_SECONDS.into(), s);
        }
        if let Some(m) = &mut self.gpu_memory {
            host.extend(m.step());
        }
        let finishing = self.is_done();
        host.extend(self.evaluate(|e| e.due(step) || (finishing && e.on_finish))?);
        self.pending.push(Pending {
            step,
            epoch: self.progress.epoch,
            out,
            host,
        });
        if step == 1 || step % self.opts.metrics_collect_interval.max(1) == 0 || finishing {
            self.collect()?;
        }
        Ok(())
    }

    /// Where the LR schedule stands: (step, max steps), or in tokens for `units: tokens`.
    fn schedule_position(&self) -> (u64, u64) {
        if self.module.schedule_in_tokens() {
            let gbs = self.loader.global_batch_size();
            (self.progress.tokens, self.max_steps * gbs)
        } else {
            (self.progress.step, self.max_steps)
        }
    }

    /// The train module's forward and backward, with libtorch failures (such as running out of memory)
    /// turned into an error naming the step instead of a panic.
    fn forward_backward(&mut self, batch: &Batch, step: u64) -> Result<StepOutputs> {
        let module = &mut self.module;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| module.train_batch(batch)))
            .map_err(|e| {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "libtorch failed".into());
                Error::Training {
                    step,
                    reason: msg.lines().next().unwrap_or("libtorch failed").to_string(),
                }
            })?
            .map_err(|e| match e {
                // The train module does not know the step.
                Error::Training { step: 0, reason } => Error::Training { step, reason },
                other => other,
            })
    }

    fn is_done(&self) -> bool {
        is_due(&self.opts.max_duration, &self.progress)
            || self
                .opts
                .hard_stop
                .as_ref()
                .is_some_and(|h| is_due(h, &self.progress))
    }

    /// Whether any rank asked to stop (one small collective per step with several ranks).
    fn stop_requested(&self) -> Result<bool> {
        let local = self.stop.load(Ordering::Relaxed);
        let Some(pg) = &self.dp else { return Ok(local) };
        let flag = Tensor::from_slice(&[f32::from(u8::from(local))]);
        pg.all_reduce_sum(&[flag.shallow_clone()])?;
        Ok(crate::device::read_scalar(&flag.get(0)) > 0.0)
    }

    /// Runs the evaluators `pick` selects now; their metrics plus the time they took.
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
        self.module.after_forwards()?;
        if ran {
            m.insert(names::EVAL_SECONDS.into(), started.elapsed().as_secs_f64());
        }
        Ok(m)
    }
}
