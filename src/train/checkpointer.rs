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

/// A save the checkpointer has decided on, before anything is copied: the caller builds the snapshot
/// only for a plan (a snapshot copies every parameter and both AdamW moments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavePlan {
    pub step: u64,
    pub ephemeral: bool,
    /// Written by a background thread while training goes on (the snapshot must then be a copy).
    pub asynchronous: bool,
}

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

    pub fn save_folder(&self) -> &std::path::Path {
        &self.save_folder
    }

    /// Makes this rank a non-writer (data-parallel ranks other than 0).
    pub fn read_only(&mut self) {
        self.writer = false;
    }

    pub fn enabled(&self) -> bool {
        self.cfg.as_ref().is_some_and(|c| c.enabled)
    }

    /// The state stored in checkpoints so a resumed run keeps managing the same files.
    pub fn state(&self) -> serde_json::Value {
        serde_json::json!({ "saved": self.saved })
    }

    /// Reads `state()` back: no state (a fresh run, or a fine-tuning start) is an empty list; a state
    /// that is not a list of saved steps is an error (the caller names the checkpoint).
    pub fn saved_from_state(v: Option<&serde_json::Value>) -> Result<Vec<(u64, bool)>, String> {
        let Some(v) = v else { return Ok(Vec::new()) };
        serde_json::from_value(v["saved"].clone()).map_err(|e| {
            format!("callbacks.checkpointer.saved is not a list of [step, ephemeral]: {e}")
        })
    }

    /// Before the first step of a fresh run: OLMo-core's `pre_train_checkpoint` (default: yes).
    pub fn plan_pre_train(&self, step: u64) -> Option<SavePlan> {
        let wanted = self
            .cfg
            .as_ref()
            .is_some_and(|c| c.enabled && c.pre_train_checkpoint.unwrap_or(step == 0));
        (wanted && self.last_saved_step != Some(step)).then_some(SavePlan {
            step,
            ephemeral: false,
            asynchronous: false,
        })
    }

    /// After a step: a save if the policy says one is due.
    pub fn plan_after_step(&self, step: u64) -> Option<SavePlan> {
        let cfg = self.cfg.as_ref()?;
        let kind = save_after_step(step, cfg)?;
        Some(SavePlan {
            step,
            ephemeral: kind == SaveKind::Ephemeral,
            asynchronous: cfg.save_async.unwrap_or(false),
        })
    }

    /// At the end of training (or after a stop request): a final, synchronous save if the last step was
    /// not saved. Call `wait` after it in any case.
    pub fn plan_final(&self, step: u64) -> Option<SavePlan> {
        let wanted = self.enabled() && step > 0 && self.last_saved_step.is_none_or(|s| s < step);
        wanted.then_some(SavePlan {
            step,
            ephemeral: false,
            asynchronous: false,
        })
    }

    /// Carries out `plan`: waits for any save in flight, then writes `snapshot()` (called only on the
    /// rank that writes) in the background or at once. Returns how long the caller was held up.
    pub fn save(&mut self, plan: SavePlan, snapshot: impl FnOnce() -> Snapshot) -> Result<f64> {
        let SavePlan {
            step,
            ephemeral,
            asynchronous,
        } = plan;
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
        if asynchronous {
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

    /// Collects a background save that has finished, so that its error is not held back until the
    /// next save; does not wait for one still writing.
    pub fn check_background(&mut self) -> Result<()> {
        match &self.in_flight {
            Some((_, _, handle)) if handle.is_finished() => self.wait(),
            _ => Ok(()),
        }
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
