//! The on-disk layout of a checkpoint and how complete ones are found:
//!
//! ```text
//! save_folder/step{N}/
//!     config.json                          the resolved config
//!     data_paths.txt                       the dataset's files, one a line
//!     train/rank0.json                     trainer state (step, tokens, epoch, data loader, callbacks)
//!     model_and_optim/model.safetensors    weights under OLMo-core's names
//!     model_and_optim/optim.safetensors    AdamW moments: `<name>.exp_avg`, `<name>.exp_avg_sq`
//!     model_and_optim/optim.json           parameter groups and per-parameter step counts
//!     model_and_optim/shards/              instead of the two files, after sharded training on several
//!                                          ranks: each rank's parts and an index (`sharded.rs`)
//!     .metadata.json                       written last: a folder without it is never loaded
//! ```
//! A checkpoint is written in `save_folder/.step{N}.tmp-{pid}` and renamed to `step{N}` when complete.
use std::path::{Path, PathBuf};

pub const METADATA: &str = ".metadata.json";
pub const MODEL: &str = "model_and_optim/model.safetensors";
pub const OPTIM_TENSORS: &str = "model_and_optim/optim.safetensors";
pub const OPTIM_STATE: &str = "model_and_optim/optim.json";
pub const TRAINER_STATE: &str = "train/rank0.json";
pub const CONFIG: &str = "config.json";
pub const DATA_PATHS: &str = "data_paths.txt";

pub fn step_dir(save_folder: &Path, step: u64) -> PathBuf {
    save_folder.join(format!("step{step}"))
}

/// A complete checkpoint: its metadata (written last) and the model weights (one file, or the sharded
/// layout's index) exist.
pub fn is_checkpoint(dir: &Path) -> bool {
    dir.join(METADATA).is_file()
        && (dir.join(MODEL).is_file() || dir.join(super::sharded::INDEX).is_file())
}

/// Every complete `step{N}` checkpoint in `folder`, by step.
pub fn find_checkpoints(folder: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step")?.parse::<u64>().ok()?;
            is_checkpoint(&e.path()).then(|| (step, e.path()))
        })
        .collect();
    found.sort();
    found
}

pub fn latest_checkpoint(folder: &Path) -> Option<(u64, PathBuf)> {
    find_checkpoints(folder).pop()
}

/// A checkpoint directory given by the user: itself, or the latest inside it.
pub fn resolve(path: &Path) -> Option<PathBuf> {
    if is_checkpoint(path) {
        return Some(path.to_path_buf());
    }
    latest_checkpoint(path).map(|(_, p)| p)
}

/// Staging folders left by a save that was killed; removed on the next start.
pub fn stale_temp_dirs(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(".step") && (n.contains(".tmp-") || n.ends_with(".shards"))
        })
        .map(|e| e.path())
        .collect()
}
