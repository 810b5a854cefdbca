//! Checkpoints that never lose a run: a snapshot of the model, optimizer and trainer state is copied off
//! the device, written into a staging folder (safetensors plus JSON, each file fsynced) and renamed into
//! `step{N}` only when complete, with `.metadata.json` written last. Loading checks every tensor's name,
//! shape and dtype and names the file and tensor at fault.
pub mod hf;
mod hf_config;
mod hf_experts;
pub mod layout;
pub mod policy;
pub mod sharded;
mod state;
pub mod tensor_io;
mod trained_model;

pub use trained_model::{load_trained_model, read_config, TrainedModel};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

pub use state::TrainerState;

use crate::error::{Error, Result};

/// Everything a checkpoint holds, already on the host, so it can be written in the background: named
/// tensors (model, optimizer) and JSON (optimizer, trainer, config).
pub struct Snapshot {
    pub model: Vec<(String, Tensor)>,
    pub optim_tensors: Vec<(String, Tensor)>,
    pub optim_json: serde_json::Value,
    pub trainer: TrainerState,
    pub config_json: String,
    pub data_paths: Vec<String>,
    /// The sharded layout: the ranks have written their parts into `sharded::staging_dir` (and
    /// `model`/`optim_tensors` are empty); this is their index.
    pub shards: Option<sharded::ShardIndex>,
}

/// `tensors` on the CPU, contiguous. With `copy` (asynchronous saves, where training goes on while the
/// files are written) CPU tensors are copied too; otherwise they are shared, not copied.
pub fn to_host(tensors: &[(String, Tensor)], copy: bool) -> Vec<(String, Tensor)> {
    let host = |t: &Tensor| {
        let t = t.detach();
        if t.device() != Device::Cpu {
            crate::device::host_copy(&t)
        } else if copy || !t.is_contiguous() {
            t.copy().contiguous()
        } else {
            t
        }
    };
    tensors.iter().map(|(n, t)| (n.clone(), host(t))).collect()
}

/// Writes `snap` as `save_folder/step{step}`, atomically. An existing `step{step}` is replaced only with
/// `overwrite` (it is moved aside first, so a crash leaves either the old or the new one).
pub fn write(
    snap: &Snapshot,
    save_folder: &Path,
    step: u64,
    ephemeral: bool,
    overwrite: bool,
) -> Result<PathBuf> {
    let final_dir = layout::step_dir(save_folder, step);
    if final_dir.exists() && !overwrite {
        return Err(Error::InvalidValue {
            path: "trainer.save_overwrite".into(),
            reason: format!(
                "{} already exists; set --trainer.save_overwrite=true to replace it",
                final_dir.display()
            ),
        });
    }
    let tmp = save_folder.join(format!(".step{step}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    // A failed save (a full disk, a file-size limit) leaves no staging folder behind: the previous
    // checkpoint stays the newest one and the error names the file that could not be written.
    write_staged(snap, save_folder, &tmp, step, ephemeral).inspect_err(|_| {
        if let Err(e) = std::fs::remove_dir_all(&tmp) {
            tracing::warn!("could not remove the staging folder {}: {e}", tmp.display());
        }
    })?;
    if final_dir.exists() {
        let old = save_folder.join(format!(".step{step}.tmp-{}-old", std::process::id()));
        std::fs::rename(&final_dir, &old).map_err(|e| Error::io(&final_dir, e))?;
        std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    } else {
        std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    }
    sync_dir(save_folder)?;
    Ok(final_dir)
}

/// Fills the staging folder `tmp` with every file of the checkpoint, each fsynced.
fn write_staged(
    snap: &Snapshot,
    save_folder: &Path,
    tmp: &Path,
    step: u64,
    ephemeral: bool,
) -> Result<()> {
    for sub in ["train", "model_and_optim"] {
        std::fs::create_dir_all(tmp.join(sub)).map_err(|e| Error::io(tmp.join(sub), e))?;
    }
    fault_injection_delay();
    match &snap.shards {
        Some(index) => {
            let parts = sharded::staging_dir(save_folder, step);
            let into = tmp.join(sharded::SHARDS);
            std::fs::rename(&parts, &into).map_err(|e| Error::io(&parts, e))?;
            write_file(&tmp.join(sharded::INDEX), &to_json(index)?)?;
        }
        None => {
            write_tensors(&tmp.join(layout::MODEL), &snap.model)?;
            write_tensors(&tmp.join(layout::OPTIM_TENSORS), &snap.optim_tensors)?;
        }
    }
    write_file(&tmp.join(layout::OPTIM_STATE), &to_json(&snap.optim_json)?)?;
    write_file(&tmp.join(layout::TRAINER_STATE), &to_json(&snap.trainer)?)?;
    write_file(&tmp.join(layout::CONFIG), snap.config_json.as_bytes())?;
    write_file(
        &tmp.join(layout::DATA_PATHS),
        format!("{}\n", snap.data_paths.join("\n")).as_bytes(),
    )?;
    let meta = serde_json::json!({"ephemeral": ephemeral, "version": env!("CARGO_PKG_VERSION"), "format": "olmo-train/1"});
    write_file(&tmp.join(layout::METADATA), meta.to_string().as_bytes())?;
    sync_dir(tmp)
}

/// Deletes a checkpoint: its metadata first, so a crash halfway leaves a folder that is never loaded.
pub fn remove(dir: &Path) -> Result<()> {
    let meta = dir.join(layout::METADATA);
    if meta.exists() {
        std::fs::remove_file(&meta).map_err(|e| Error::io(&meta, e))?;
    }
    std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(v)
        .map_err(|e| Error::Internal(format!("cannot serialize checkpoint state: {e}")))
}

fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    tensor_io::write(path, tensors)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Copies the checkpoint's weights into `params`; any missing, extra or differently shaped tensor is
/// an error listing them.
pub fn load_model(dir: &Path, params: &[(String, Tensor)]) -> Result<()> {
    let expected: Vec<(String, Vec<i64>, Kind)> = params
        .iter()
        .map(|(n, p)| (n.clone(), p.size(), p.kind()))
        .collect();
    load_model_with(dir, &expected, |i, stored| {
        stored.copy_into(&params[i].1);
        Ok(())
    })
}

/// Checks the checkpoint's weights against `expected` (name, shape, dtype: every problem at once),
/// then hands each stored tensor to `put` with its index in `expected`: sharded training keeps only
/// its own part of each.
pub fn load_model_with(
    dir: &Path,
    expected: &[(String, Vec<i64>, Kind)],
    mut put: impl FnMut(usize, &tensor_io::Stored<'_>) -> Result<()>,
) -> Result<()> {
    if sharded::is_sharded(dir) {
        return load_sharded_model(dir, expected, put);
    }
    let path = dir.join(layout::MODEL);
    let file = tensor_io::TensorFile::open(&path)?;
    let stored: BTreeMap<String, tensor_io::Stored<'_>> = file.tensors()?.into_iter().collect();
    let mut problems = Vec::new();
    for (name, shape, kind) in expected {
        match stored.get(name) {
            None => problems.push(format!("missing {name}")),
            Some(t) if &t.shape != shape => problems.push(format!(
                "{name}: shape {:?} in the checkpoint, {:?} in the model",
                t.shape, shape
            )),
            Some(t) if t.kind != *kind => problems.push(format!(
                "{name}: dtype {:?} in the checkpoint, {:?} in the model",
                t.kind, kind
            )),
            Some(_) => {}
        }
    }
    for name in stored
        .keys()
        .filter(|n| !expected.iter().any(|(p, _, _)| p == *n))
    {
        problems.push(format!("unexpected {name}"));
    }
    if !problems.is_empty() {
        let shown = problems
            .iter()
            .take(6)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        let more = problems.len().saturating_sub(6);
        let tail = if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        };
        return Err(Error::Input {
            path,
            reason: format!("does not match the model (another architecture?): {shown}{tail}"),
        });
    }
    for (i, (name, _, _)) in expected.iter().enumerate() {
        if let Some(t) = stored.get(name) {
            put(i, t)?;
        }
    }
    Ok(())
}

/// `load_model_with` for the sharded layout: each whole tensor assembled from the ranks' parts.
fn load_sharded_model(
    dir: &Path,
    expected: &[(String, Vec<i64>, Kind)],
    mut put: impl FnMut(usize, &tensor_io::Stored<'_>) -> Result<()>,
) -> Result<()> {
    let reader = sharded::ShardedReader::open(dir)?;
    let stored: BTreeMap<&str, &sharded::ShardedParam> = reader
        .params()
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let mut problems = Vec::new();
    for (name, shape, kind) in expected {
        match stored.get(name.as_str()) {
            None => problems.push(format!("missing {name}")),
            Some(p) if &p.shape != shape => problems.push(format!(
                "{name}: shape {:?} in the checkpoint, {shape:?} in the model",
                p.shape
            )),
            Some(_) if *kind != Kind::Float => problems.push(format!(
                "{name}: dtype Float in the checkpoint, {kind:?} in the model"
            )),
            Some(_) => {}
        }
    }
    for name in stored
        .keys()
        .filter(|n| !expected.iter().any(|(p, _, _)| p == *n))
    {
        problems.push(format!("unexpected {name}"));
    }
    if let Some(first) = problems.first() {
        return Err(Error::Input {
            path: dir.join(sharded::INDEX),
            reason: format!(
                "does not match the model (another architecture?): {first}{}",
                match problems.len() {
                    1 => String::new(),
                    n => format!("; and {} more", n - 1),
                }
            ),
        });
    }
    for (i, (name, _, _)) in expected.iter().enumerate() {
        let whole = reader
            .whole(stored[name.as_str()], "")?
            .ok_or_else(|| Error::Input {
                path: dir.join(sharded::SHARDS),
                reason: format!("{name} is in the index but in no rank's file"),
            })?;
        put(i, &sharded::as_stored(&whole))?;
    }
    Ok(())
}

/// Every weight of a checkpoint as a whole host tensor, by name, in either layout (for tools and tests).
pub fn read_model_tensors(dir: &Path) -> Result<Vec<(String, Tensor)>> {
    if sharded::is_sharded(dir) {
        return sharded::ShardedReader::open(dir)?.all("");
    }
    let file = tensor_io::TensorFile::open(&dir.join(layout::MODEL))?;
    Ok(file
        .tensors()?
        .into_iter()
        .map(|(n, s)| (n, s.to_tensor()))
        .collect())
}

/// A checkpoint's optimizer state as stored: its named tensors and its JSON (for
/// `AdamW::load_state_dict`), with the folder, so a mismatch can name the files.
pub struct StoredOptim {
    pub tensors: BTreeMap<String, Tensor>,
    pub json: serde_json::Value,
    pub dir: PathBuf,
}

impl StoredOptim {
    /// The error for a state that does not fit the optimizer, naming the checkpoint's optimizer files.
    pub fn mismatch(&self, reason: String) -> Error {
        Error::Input {
            path: self.dir.join(layout::OPTIM_TENSORS),
            reason,
        }
    }
}

pub fn read_optim(dir: &Path) -> Result<StoredOptim> {
    let state_path = dir.join(layout::OPTIM_STATE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let json = serde_json::from_str(&text).map_err(|e| Error::Input {
        path: state_path.clone(),
        reason: format!("not valid JSON: {e}"),
    })?;
    let tensors = match sharded::is_sharded(dir) {
        true => sharded::optim_tensors(&sharded::ShardedReader::open(dir)?)?,
        false => tensor_io::TensorFile::open(&dir.join(layout::OPTIM_TENSORS))?
            .tensors()?
            .into_iter()
            .map(|(n, s)| (n, s.to_tensor()))
            .collect(),
    };
    Ok(StoredOptim {
        tensors,
        json,
        dir: dir.to_path_buf(),
    })
}

pub fn load_trainer_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join(layout::TRAINER_STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Input {
        path,
        reason: format!("not a valid trainer state: {e}"),
    })
}

/// Tests of crash safety set `OLMO_TRAIN_TEST_SAVE_DELAY_MS` to hold a save open long enough to kill
/// the process in the middle of it. Unset (always, in real runs) it costs nothing.
fn fault_injection_delay() {
    if let Some(ms) = std::env::var("OLMO_TRAIN_TEST_SAVE_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
