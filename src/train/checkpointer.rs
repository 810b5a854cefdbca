//! OLMo-core's `CheckpointerCallback` inside the trainer: the step-0 checkpoint before training, permanent
//! and ephemeral checkpoints on their intervals with old ones removed by policy, a final checkpoint at
//! the end (also after a stop signal), and asynchronous saves: the state is copied to the host, training
//! continues, and a background thread writes it; at most one save is in flight.
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::checkpoint::policy::{save_after_step, to_remove, SaveKind};
use crate::checkpoint::{self, layout, Snapshot};
use crate::config::callbacks::CheckpointerCallback;
use crate::error::{Error, Result};

pub struct Checkpointer {
    cfg: Option<CheckpointerCallback>,
    save_folder: PathBuf,
    overwrite: bool,
    /// Checkpoints this run (and the runs it resumed) saved: (step, ephemeral).
    saved: Vec<(u64, bool)>,
    last_saved_step: Option<u64>,
    in_flight: Option<(u64, bool, JoinHandle<Result<PathBuf>>)>,
    /// Only rank 0 writes and removes files; the other ranks keep the same bookkeeping.
    writer: bool,
}

impl Checkpointer {
    /// `cfg` is `None` when checkpointing is off (`trainer.no_checkpoints` or `enabled: false`).
    pub fn new(
        cfg: Option<CheckpointerCallback>,
        save_folder: PathBuf,
        overwrite: bool,
        saved: Vec<(u64, bool)>,
    ) -> Self {
        let last_saved_step = saved.iter().map(|s| s.0).max();
        Self {
            cfg,
            save_folder,
            overwrite,
            saved,
            last_saved_step,
            in_flight: None,
            writer: true,
        }
    }

    /// Makes this rank a non-writer (data-parallel ranks other than 0).
    pub fn read_only(&mut self) {
        self.writer = false;
    }

    /// Asynchronous saves need a copy of the state (training goes on); synchronous ones do not.
    pub fn copies_state(&self) -> bool {
        self.cfg
            .as_ref()
            .is_some_and(|c| c.save_async.unwrap_or(false))
    }

    pub fn enabled(&self) -> bool {
        self.cfg.as_ref().is_some_and(|c| c.enabled)
    }

    /// The state stored in checkpoints so a resumed run keeps managing the same files.
    pub fn state(&self) -> serde_json::Value {
        serde_json::json!({ "saved": self.saved })
    }

    /// Reads `state()` back.
    pub fn saved_from_state(v: Option<&serde_json::Value>) -> Vec<(u64, bool)> {
        v.and_then(|v| serde_json::from_value(v["saved"].clone()).ok())
            .unwrap_or_default()
    }

    /// Before the first step of a fresh run: OLMo-core's `pre_train_checkpoint` (default: yes).
    pub fn pre_train(
        &mut self,
        step: u64,
        snapshot: impl FnOnce() -> Snapshot,
    ) -> Result<Option<f64>> {
        let wanted = self
            .cfg
            .as_ref()
            .is_some_and(|c| c.enabled && c.pre_train_checkpoint.unwrap_or(step == 0));
        if !wanted || self.last_saved_step == Some(step) {
            return Ok(None);
        }
        self.save(step, false, false, snapshot).map(Some)
    }

    /// After a step: saves if the policy says so; returns how long the step was held up.
    pub fn after_step(
        &mut self,
        step: u64,
        snapshot: impl FnOnce() -> Snapshot,
    ) -> Result<Option<f64>> {
        let Some(kind) = self.cfg.as_ref().and_then(|c| save_after_step(step, c)) else {
            return Ok(None);
        };
        let is_async = self
            .cfg
            .as_ref()
            .is_some_and(|c| c.save_async.unwrap_or(false));
        self.save(step, kind == SaveKind::Ephemeral, is_async, snapshot)
            .map(Some)
    }

    /// At the end of training (or after a stop request): a final, synchronous checkpoint if the last
    /// step was not saved, then waits for any background save.
    pub fn finish(
        &mut self,
        step: u64,
        snapshot: impl FnOnce() -> Snapshot,
    ) -> Result<Option<f64>> {
        let wanted = self.enabled() && step > 0 && self.last_saved_step.is_none_or(|s| s < step);
        let d = if wanted {
            Some(self.save(step, false, false, snapshot)?)
        } else {
            None
        };
        self.wait()?;
        Ok(d)
    }

    fn save(
        &mut self,
        step: u64,
        ephemeral: bool,
        is_async: bool,
        snapshot: impl FnOnce() -> Snapshot,
    ) -> Result<f64> {
        let started = Instant::now();
        self.wait()?;
        if !self.writer {
            self.last_saved_step = Some(step);
            self.saved.retain(|s| s.0 != step);
            self.saved.push((step, ephemeral));
            if let Some(cfg) = &self.cfg {
                let gone = to_remove(&self.saved, (step, ephemeral), cfg);
                self.saved.retain(|s| !gone.contains(&s.0));
            }
            return Ok(started.elapsed().as_secs_f64());
        }
        let snap = snapshot();
        let (folder, overwrite) = (self.save_folder.clone(), self.overwrite);
        self.last_saved_step = Some(step);
        if is_async {
            let handle = std::thread::spawn(move || {
                checkpoint::write(&snap, &folder, step, ephemeral, overwrite)
            });
            self.in_flight = Some((step, ephemeral, handle));
        } else {
            checkpoint::write(&snap, &folder, step, ephemeral, overwrite)?;
            self.saved_one(step, ephemeral)?;
        }
        Ok(started.elapsed().as_secs_f64())
    }

    /// Waits for the background save, if any, and applies the removal policy after it.
    pub fn wait(&mut self) -> Result<()> {
        if let Some((step, ephemeral, handle)) = self.in_flight.take() {
            handle.join().map_err(|_| Error::Training {
                step,
                reason: "the checkpoint writer thread panicked".into(),
            })??;
            self.saved_one(step, ephemeral)?;
        }
        Ok(())
    }

    fn saved_one(&mut self, step: u64, ephemeral: bool) -> Result<()> {
        tracing::info!(
            "saved {}checkpoint {}",
            if ephemeral { "ephemeral " } else { "" },
            layout::step_dir(&self.save_folder, step).display()
        );
        self.saved.retain(|s| s.0 != step);
        self.saved.push((step, ephemeral));
        let Some(cfg) = &self.cfg else { return Ok(()) };
        for old in to_remove(&self.saved, (step, ephemeral), cfg) {
            let dir = layout::step_dir(&self.save_folder, old);
            if dir.exists() {
                checkpoint::remove(&dir)?;
            }
            self.saved.retain(|s| s.0 != old);
        }
        Ok(())
    }
}
