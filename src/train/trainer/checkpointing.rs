//! The trainer's side of checkpointing: a snapshot of the whole state, taken only for a save the
//! checkpointer has planned, and resuming from a checkpoint's trainer state.
use super::Trainer;
use crate::checkpoint::{sharded, to_host, Snapshot, TrainerState};
use crate::data::LoaderState;
use crate::error::{Error, Result};
use crate::train::checkpointer::SavePlan;
use crate::train::metric_names as names;
use crate::train::train_module::StepOutputs;

impl Trainer {
    /// Carries out `plan`, if any: the snapshot is taken here and nowhere else, so a step with no save
    /// due copies nothing. Returns how long the step was held up.
    pub(super) fn save_if_planned(&mut self, plan: Option<SavePlan>) -> Result<Option<f64>> {
        // A background save that failed (a full disk) stops the run now, as OLMo-core does, not at
        // the next save due.
        self.checkpointer.check_background()?;
        let Some(plan) = plan else { return Ok(None) };
        let trainer = self.trainer_state()?;
        // Sharded over several ranks, each writes its own parts (and none holds the whole state);
        // sharded over one, the state is gathered unit by unit into the single-file layout.
        let shards = match self.module.checkpoint_parts() {
            Some((index, parts)) => {
                if let Some((rank, tensors)) = parts {
                    sharded::write_rank(
                        self.checkpointer.save_folder(),
                        plan.step,
                        rank,
                        &tensors,
                    )?;
                }
                if let Some(pg) = &self.dp {
                    // Every part is on disk before rank 0 moves them into the checkpoint.
                    pg.barrier()?;
                }
                Some(index)
            }
            None => None,
        };
        let (model, optim) = match (self.module.sharded(), &shards) {
            (Some(_), None) => (
                Some(self.module.full_parameters(self.is_main)?),
                Some(self.module.full_optim_state(self.is_main)?),
            ),
            (Some(_), Some(_)) => (Some(Vec::new()), Some(self.module.optim.state_dict())),
            (None, _) => (None, None),
        };
        let (module, opts, snapshots) = (&self.module, &self.opts, &mut self.snapshots);
        let seconds = self.checkpointer.save(plan, || {
            *snapshots += 1;
            // An asynchronous save writes while training goes on, so it needs copies even on the CPU.
            let mut optim = optim.unwrap_or_else(|| module.optim.state_dict());
            if shards.is_some() {
                // The moments are in the ranks' parts; only the JSON goes here.
                optim.tensors.clear();
            }
            let model = match &model {
                Some(gathered) => to_host(gathered, false),
                None => to_host(module.model.named_parameters(), plan.asynchronous),
            };
            Snapshot {
                model,
                optim_tensors: to_host(&optim.tensors, plan.asynchronous),
                optim_json: optim.json,
                trainer,
                config_json: opts.config_json.clone(),
                data_paths: opts.data_paths.clone(),
                shards,
            }
        })?;
        if let Some(pg) = &self.dp {
            // Nobody moves on (or reads the checkpoint) before rank 0 has written it.
            self.checkpointer.wait()?;
            pg.barrier()?;
        }
        Ok(Some(seconds))
    }

    /// Before a save: a non-finite loss in a step not yet collected stops the run here, naming the
    /// step, so that no checkpoint is ever written from weights trained past it and the last good
    /// one stays the newest. Reads the uncollected losses (and, with several ranks, agrees on the
    /// verdict), on save steps only.
    pub(super) fn check_losses_before_save(&self, step: u64, current: &StepOutputs) -> Result<()> {
        let steps = self
            .pending
            .iter()
            .map(|p| (p.step, &p.out))
            .chain(std::iter::once((step, current)));
        let mut first_bad = None;
        'steps: for (s, out) in steps {
            // The loss, and the gradient norm: an infinite gradient poisons the weights of its own
            // step, before any loss shows it.
            for name in [names::CE_LOSS, names::GRAD_NORM] {
                let Some(value) = out.metrics.get(name) else {
                    continue;
                };
                let value = crate::device::read_scalar(value);
                if !value.is_finite() {
                    first_bad = Some((s, format!("{value} {}", short_name(name))));
                    break 'steps;
                }
            }
        }
        let bad_anywhere = match &self.dp {
            Some(pg) => pg.max_over_ranks(u64::from(first_bad.is_some()))? > 0,
            None => first_bad.is_some(),
        };
        if !bad_anywhere {
            return Ok(());
        }
        Err(Error::Training {
            step: first_bad.as_ref().map_or(step, |b| b.0),
            reason: match first_bad {
                Some((_, what)) => {
                    format!("{what} encountered (no checkpoint was saved after it)")
                }
                None => {
                    "another rank's loss or gradient norm is not finite (no checkpoint was saved after it)"
                        .into()
                }
            },
        })
    }

    /// After a failure: a save still writing in the background was taken at a good step, so it is
    /// completed rather than cut off when the process exits.
    pub(super) fn finish_background_save(&mut self) {
        if let Err(e) = self.checkpointer.wait() {
            tracing::warn!("the checkpoint being written in the background failed too: {e}");
        }
    }

    /// OLMo-core's trainer state of the current step.
    fn trainer_state(&self) -> Result<TrainerState> {
        let mut callbacks = std::collections::BTreeMap::new();
        callbacks.insert("checkpointer".to_string(), self.checkpointer.state());
        let data_loader = serde_json::to_value(self.loader.state())
            .map_err(|e| Error::Internal(format!("the data loader's state is not JSON: {e}")))?;
        Ok(TrainerState {
            global_step: self.progress.step,
            global_train_tokens_seen: self.progress.tokens,
            max_steps: self.max_steps,
            epoch: self.progress.epoch,
            world_size: self.dp.as_ref().map_or(1, |g| g.world_size),
            data_loader,
            callbacks,
        })
    }

    /// Continues from a checkpoint: step, tokens, epoch and the exact data position.
    pub(super) fn resume(&mut self, point: &ResumePoint) -> Result<()> {
        self.loader.load_state(&point.loader)?;
        self.progress.step = point.step;
        self.progress.tokens = point.tokens;
        self.progress.epoch = point.epoch.max(1);
        tracing::info!(
            "resuming training from step {}, epoch {}",
            point.step,
            self.progress.epoch
        );
        Ok(())
    }
}

/// Where a resumed run continues: a checkpoint's step, tokens seen, epoch and data loader position.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePoint {
    pub step: u64,
    pub tokens: u64,
    pub epoch: u64,
    pub loader: LoaderState,
}

impl ResumePoint {
    /// From a checkpoint's trainer state; `Err` says what in it is not a data loader state.
    pub fn from_state(state: &TrainerState) -> std::result::Result<Self, String> {
        let loader = serde_json::from_value(state.data_loader.clone())
            .map_err(|e| format!("data_loader is not a data loader state: {e}"))?;
        Ok(Self {
            step: state.global_step,
            tokens: state.global_train_tokens_seen,
            epoch: state.epoch,
            loader,
        })
    }
}

/// `loss` or `grad norm`, for the error message.
fn short_name(metric: &str) -> &'static str {
    if metric == names::GRAD_NORM {
        "grad norm"
    } else {
        "loss"
    }
}
