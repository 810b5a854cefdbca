//! What a run starts from (OLMo-core's `maybe_load_checkpoint`, then `load_path`): the latest checkpoint
//! in the save folder (weights, optimizer and trainer state), unless `load_strategy: never` or
//! `no_checkpoints`; else `load_path` (weights, and the optimizer state when present; the trainer state
//! only with `load_trainer_state`).
use std::path::{Path, PathBuf};

use super::checkpointer::Checkpointer;
use super::train_module::TrainModule;
use super::trainer::ResumePoint;
use crate::checkpoint::{self, layout, TrainerState};
use crate::config::trainer::LoadStrategy;
use crate::config::ExperimentConfig;
use crate::error::{Error, Result};

/// What was loaded besides the weights and optimizer state (which went into the train module).
#[derive(Default)]
pub struct StartState {
    /// Where training continues, when resuming.
    pub resume: Option<ResumePoint>,
    /// The checkpoints the checkpointer manages already (saved by the run being resumed).
    pub saved: Vec<(u64, bool)>,
}

/// Loads the start state into `module` and returns the rest. Only rank 0 (`is_main`) removes the
/// unfinished checkpoint folders an interrupted save left behind.
pub fn load_start_state(
    config: &ExperimentConfig,
    module: &mut TrainModule,
    is_main: bool,
) -> Result<StartState> {
    let t = &config.trainer;
    let save_folder = Path::new(&t.save_folder);
    if is_main {
        remove_unfinished_saves(save_folder);
    }
    let started = std::time::Instant::now();
    let latest = (!t.no_checkpoints && t.load_strategy != LoadStrategy::Never)
        .then(|| layout::latest_checkpoint(save_folder))
        .flatten();
    let state = if let Some((_, dir)) = latest {
        tracing::info!("loading checkpoint from {}", dir.display());
        load_weights_and_optim(&dir, module, true)?;
        let trainer = checkpoint::load_trainer_state(&dir)?;
        start_from(&dir, &trainer, true)?
    } else if let Some(load_path) = config.load_path.as_deref().or(t.load_path.as_deref()) {
        let dir = layout::resolve(Path::new(load_path)).ok_or_else(|| Error::InvalidValue {
            path: "load_path".into(),
            reason: format!("'{load_path}' is not a checkpoint (no .metadata.json and model weights) and holds none"),
        })?;
        tracing::info!(
            "loading checkpoint from {} (no checkpoint in the save folder)",
            dir.display()
        );
        load_weights_and_optim(&dir, module, t.load_optim_state.unwrap_or(true))?;
        let with_trainer = config.load_trainer_state || t.load_trainer_state.unwrap_or(false);
        match with_trainer && dir.join(layout::TRAINER_STATE).is_file() {
            // A fine-tuning run manages its own checkpoints: the source's list stays with the source.
            true => start_from(&dir, &checkpoint::load_trainer_state(&dir)?, false)?,
            false => StartState::default(),
        }
    } else if t.load_strategy == LoadStrategy::Always {
        return Err(Error::InvalidValue {
            path: "trainer.load_strategy".into(),
            reason: format!(
                "'always', but {} has no checkpoint and no load_path is set",
                save_folder.display()
            ),
        });
    } else {
        return Ok(StartState::default());
    };
    tracing::info!(
        "checkpoint/load_duration_s={:.3}",
        started.elapsed().as_secs_f64()
    );
    Ok(state)
}

fn remove_unfinished_saves(save_folder: &Path) {
    // Another rank's "stale" folder could be rank 0's save in progress, so only rank 0 gets here.
    for stale in layout::stale_temp_dirs(save_folder) {
        tracing::warn!(
            "removing the unfinished checkpoint {} (a save was interrupted)",
            stale.display()
        );
        if let Err(e) = std::fs::remove_dir_all(&stale) {
            tracing::warn!("could not remove {}: {e}", stale.display());
        }
    }
}

/// The weights, and with `optim` the optimizer state when the checkpoint has one.
fn load_weights_and_optim(dir: &Path, module: &mut TrainModule, optim: bool) -> Result<()> {
    module.load_model(dir)?;
    if optim && dir.join(layout::OPTIM_STATE).is_file() {
        let stored = checkpoint::read_optim(dir)?;
        module
            .load_optim(&stored.tensors, &stored.json)
            .map_err(|reason| stored.mismatch(reason))?;
    }
    Ok(())
}

/// The resume point of a checkpoint's trainer state, and (with `keep_saved`) its checkpointer's list.
fn start_from(dir: &Path, state: &TrainerState, keep_saved: bool) -> Result<StartState> {
    let bad = |reason: String| Error::Input {
        path: PathBuf::from(dir).join(layout::TRAINER_STATE),
        reason,
    };
    let saved = if keep_saved {
        Checkpointer::saved_from_state(state.callbacks.get("checkpointer")).map_err(bad)?
    } else {
        Vec::new()
    };
    Ok(StartState {
        resume: Some(ResumePoint::from_state(state).map_err(bad)?),
        saved,
    })
}
