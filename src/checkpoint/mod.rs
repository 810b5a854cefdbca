//! Checkpoints that never lose a run: a snapshot of the model, optimizer and trainer state is copied off
//! the device, written into a staging folder (safetensors plus JSON, each file fsynced) and renamed into
//! `step{N}` only when complete, with `.metadata.json` written last. Loading checks every tensor's name,
//! shape and dtype and names the file and tensor at fault.
pub mod hf;
pub mod layout;
pub mod policy;
mod state;
pub mod tensor_io;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use tch::{Device, Tensor};

pub use state::{GroupState, OptimState, TrainerState};

use crate::error::{Error, Result};
use crate::optim::adamw::ParamState;
use crate::optim::AdamW;

/// Everything a checkpoint holds, already on the host, so it can be written in the background.
pub struct Snapshot {
    pub model: Vec<(String, Tensor)>,
    pub optim_tensors: Vec<(String, Tensor)>,
    pub optim: OptimState,
    pub trainer: TrainerState,
    pub config_json: String,
    pub data_paths: Vec<String>,
}

/// The model and optimizer state on the CPU. With `copy` (asynchronous saves, where training goes on
/// while the files are written) CPU tensors are copied too; otherwise they are shared, not copied.
pub fn snapshot(
    params: &[(String, Tensor)],
    optim: &AdamW,
    trainer: TrainerState,
    config_json: String,
    data_paths: Vec<String>,
    copy: bool,
) -> Snapshot {
    let host = |t: &Tensor| {
        let t = t.detach();
        if t.device() != Device::Cpu {
            t.to_device(Device::Cpu).contiguous()
        } else if copy || !t.is_contiguous() {
            t.copy().contiguous()
        } else {
            t
        }
    };
    let model = params.iter().map(|(n, t)| (n.clone(), host(t))).collect();
    let mut optim_tensors = Vec::new();
    let mut steps = BTreeMap::new();
    for ((name, _), st) in optim.params.iter().zip(&optim.state) {
        if let Some(st) = st {
            optim_tensors.push((format!("{name}.exp_avg"), host(&st.exp_avg)));
            optim_tensors.push((format!("{name}.exp_avg_sq"), host(&st.exp_avg_sq)));
            steps.insert(name.clone(), st.step);
        }
    }
    let param_groups = optim
        .groups
        .iter()
        .map(|g| GroupState {
            params: g
                .params
                .iter()
                .map(|&i| optim.params[i].0.clone())
                .collect(),
            lr: g.lr,
            initial_lr: g.initial_lr,
            weight_decay: g.weight_decay,
            betas: g.betas,
            eps: g.eps,
        })
        .collect();
    Snapshot {
        model,
        optim_tensors,
        optim: OptimState {
            param_groups,
            steps,
        },
        trainer,
        config_json,
        data_paths,
    }
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
        return Err(Error::Usage(format!(
            "{} already exists; set --trainer.save_overwrite=true to replace it",
            final_dir.display()
        )));
    }
    let tmp = save_folder.join(format!(".step{step}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    for sub in ["train", "model_and_optim"] {
        std::fs::create_dir_all(tmp.join(sub)).map_err(|e| Error::io(tmp.join(sub), e))?;
    }
    fault_injection_delay();
    write_tensors(&tmp.join(layout::MODEL), &snap.model)?;
    write_tensors(&tmp.join(layout::OPTIM_TENSORS), &snap.optim_tensors)?;
    write_file(&tmp.join(layout::OPTIM_STATE), &to_json(&snap.optim)?)?;
    write_file(&tmp.join(layout::TRAINER_STATE), &to_json(&snap.trainer)?)?;
    write_file(&tmp.join(layout::CONFIG), snap.config_json.as_bytes())?;
    write_file(
        &tmp.join(layout::DATA_PATHS),
        format!("{}\n", snap.data_paths.join("\n")).as_bytes(),
    )?;
    let meta = serde_json::json!({"ephemeral": ephemeral, "version": env!("CARGO_PKG_VERSION"), "format": "olmo-train/1"});
    write_file(&tmp.join(layout::METADATA), meta.to_string().as_bytes())?;
    sync_dir(&tmp)?;
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
        .map_err(|e| Error::Usage(format!("cannot serialize checkpoint state: {e}")))
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
    let path = dir.join(layout::MODEL);
    let file = tensor_io::TensorFile::open(&path)?;
    let stored: BTreeMap<String, tensor_io::Stored<'_>> = file.tensors()?.into_iter().collect();
    let mut problems = Vec::new();
    for (name, p) in params {
        match stored.get(name) {
            None => problems.push(format!("missing {name}")),
            Some(t) if t.shape != p.size() => problems.push(format!(
                "{name}: shape {:?} in the checkpoint, {:?} in the model",
                t.shape,
                p.size()
            )),
            Some(t) if t.kind != p.kind() => problems.push(format!(
                "{name}: dtype {:?} in the checkpoint, {:?} in the model",
                t.kind,
                p.kind()
            )),
            Some(_) => {}
        }
    }
    for name in stored
        .keys()
        .filter(|n| !params.iter().any(|(p, _)| p == *n))
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
    for (name, p) in params {
        if let Some(t) = stored.get(name) {
            t.copy_into(p);
        }
    }
    Ok(())
}

/// Restores AdamW's moments and step counts; the LRs come from the config and schedule
/// (OLMo-core's `fixed_fields = ("initial_lr",)`).
pub fn load_optim(dir: &Path, optim: &mut AdamW) -> Result<()> {
    let state_path = dir.join(layout::OPTIM_STATE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state: OptimState = serde_json::from_str(&text).map_err(|e| Error::Input {
        path: state_path.clone(),
        reason: format!("not a valid optimizer state: {e}"),
    })?;
    let path = dir.join(layout::OPTIM_TENSORS);
    let file = tensor_io::TensorFile::open(&path)?;
    let stored: BTreeMap<String, Tensor> = file
        .tensors()?
        .into_iter()
        .map(|(n, s)| (n, s.to_tensor()))
        .collect();
    for (i, (name, p)) in optim.params.iter().enumerate() {
        let Some(&step) = state.steps.get(name) else {
            optim.state[i] = None;
            continue;
        };
        let get = |suffix: &str| -> Result<Tensor> {
            let key = format!("{name}.{suffix}");
            let t = stored.get(&key).ok_or_else(|| Error::Input {
                path: path.clone(),
                reason: format!("missing tensor {key}"),
            })?;
            if t.size() != p.size() {
                return Err(Error::Input {
                    path: path.clone(),
                    reason: format!(
                        "{key}: shape {:?}, the parameter has {:?}",
                        t.size(),
                        p.size()
                    ),
                });
            }
            Ok(t.to_device(p.device()).to_kind(p.kind()))
        };
        optim.state[i] = Some(ParamState {
            step,
            exp_avg: get("exp_avg")?,
            exp_avg_sq: get("exp_avg_sq")?,
        });
    }
    Ok(())
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
