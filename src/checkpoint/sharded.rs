//! The sharded checkpoint layout, for sharded training on more than one rank: each rank of the shard
//! group writes its own part of every parameter and AdamW moment, no gather and no single writer, and
//! an index records where each part lies:
//!
//! ```text
//! step{N}/model_and_optim/shards/index.json           world size; per parameter its shape and parts
//! step{N}/model_and_optim/shards/rank-{r}.safetensors  rank r's parts: `<name>`, `<name>.exp_avg`, ...
//! ```
//! (instead of `model.safetensors` and `optim.safetensors`; `optim.json` stays). Ranks write their
//! files into `save_folder/.step{N}.shards/` first; rank 0 moves that folder into the checkpoint's
//! staging folder before the metadata goes in, so the checkpoint stays atomic. Readers assemble whole
//! tensors, so resuming at another world size, HF conversion and evaluation read it as any checkpoint.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::tensor_io::{self, Stored, TensorFile};
use crate::error::{Error, Result};

pub const SHARDS: &str = "model_and_optim/shards";
pub const INDEX: &str = "model_and_optim/shards/index.json";

/// Where every parameter's parts lie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardIndex {
    pub world: u64,
    pub params: Vec<ShardedParam>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardedParam {
    pub name: String,
    pub shape: Vec<i64>,
    /// `(rank, first element, elements)` of each non-empty part, in order.
    pub parts: Vec<(u64, i64, i64)>,
}

pub fn rank_file(rank: u64) -> String {
    format!("rank-{rank:05}.safetensors")
}

/// Where the ranks put their files before rank 0 moves them into the checkpoint.
pub fn staging_dir(save_folder: &Path, step: u64) -> PathBuf {
    save_folder.join(format!(".step{step}.shards"))
}

/// Writes this rank's parts (`tensors`: 1-D, named as in the layout) for the checkpoint of `step`.
pub fn write_rank(
    save_folder: &Path,
    step: u64,
    rank: u64,
    tensors: &[(String, Tensor)],
) -> Result<()> {
    let dir = staging_dir(save_folder, step);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    tensor_io::write(&dir.join(rank_file(rank)), tensors)
}

/// Whether `dir` (a checkpoint) is in the sharded layout.
pub fn is_sharded(dir: &Path) -> bool {
    dir.join(INDEX).is_file()
}

/// Reads a sharded checkpoint's parts back into whole tensors.
pub struct ShardedReader {
    index: ShardIndex,
    files: Vec<TensorFile>,
    dir: PathBuf,
}

impl ShardedReader {
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(INDEX);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let index: ShardIndex = serde_json::from_str(&text).map_err(|e| Error::Input {
            path: path.clone(),
            reason: format!("not a shard index: {e}"),
        })?;
        let files = (0..index.world)
            .map(|r| TensorFile::open(&dir.join(SHARDS).join(rank_file(r))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            index,
            files,
            dir: dir.to_path_buf(),
        })
    }

    pub fn params(&self) -> &[ShardedParam] {
        &self.index.params
    }

    /// The whole fp32 tensor `<param><suffix>` (suffix "" for the weight, ".exp_avg", ...), or None
    /// when the ranks' files do not hold it (no optimizer step yet).
    pub fn whole(&self, param: &ShardedParam, suffix: &str) -> Result<Option<Tensor>> {
        let key = format!("{}{suffix}", param.name);
        let numel: i64 = param.shape.iter().product();
        let out = Tensor::zeros([numel], (Kind::Float, tch::Device::Cpu));
        for &(rank, start, len) in &param.parts {
            let file = self
                .files
                .get(rank as usize)
                .ok_or_else(|| self.bad(format!("{key}: rank {rank} beyond the index's world")))?;
            let stored = file.tensors()?;
            let Some((_, part)) = stored.iter().find(|(n, _)| *n == key) else {
                return Ok(None);
            };
            if part.shape != [len] || part.kind != Kind::Float {
                return Err(self.bad(format!(
                    "{key} in {}: shape {:?}, the index says [{len}]",
                    rank_file(rank),
                    part.shape
                )));
            }
            tch::no_grad(|| out.narrow(0, start, len).copy_(&part.to_tensor()));
        }
        Ok(Some(out.view(param.shape.as_slice())))
    }

    /// Every whole tensor with `suffix`, by name.
    pub fn all(&self, suffix: &str) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for p in &self.index.params {
            if let Some(t) = self.whole(p, suffix)? {
                out.push((format!("{}{suffix}", p.name), t));
            }
        }
        Ok(out)
    }

    fn bad(&self, reason: String) -> Error {
        Error::Input {
            path: self.dir.join(SHARDS),
            reason,
        }
    }
}

/// A whole tensor as `Stored` bytes (for checks written against single files).
pub fn as_stored(t: &Tensor) -> Stored<'_> {
    Stored {
        kind: t.kind(),
        shape: t.size(),
        data: tensor_io::bytes(t),
    }
}

/// The moments' names by parameter, as a checkpoint's optimizer tensors map them.
pub fn optim_tensors(reader: &ShardedReader) -> Result<BTreeMap<String, Tensor>> {
    let mut out = BTreeMap::new();
    for suffix in [".exp_avg", ".exp_avg_sq"] {
        out.extend(reader.all(suffix)?);
    }
    Ok(out)
}

/// A sharded checkpoint (or the latest in a save folder) rewritten in the single-file layout, as
/// OLMo-core's `unshard_checkpoint` does: the same files, with the parts assembled into
/// `model.safetensors` and `optim.safetensors`. Written into a staging folder and renamed to `out`.
pub fn unshard(ckpt: &Path, out: &Path) -> Result<PathBuf> {
    let dir = super::layout::resolve(ckpt).ok_or_else(|| Error::Input {
        path: ckpt.to_path_buf(),
        reason: "not a checkpoint and holds none".into(),
    })?;
    if !is_sharded(&dir) {
        return Err(Error::Input {
            path: dir,
            reason: "is already in the single-file layout (model_and_optim/model.safetensors)"
                .into(),
        });
    }
    let reader = ShardedReader::open(&dir)?;
    super::hf::write_folder(out, |tmp| {
        use super::layout::{
            CONFIG, DATA_PATHS, METADATA, MODEL, OPTIM_STATE, OPTIM_TENSORS, TRAINER_STATE,
        };
        for sub in ["train", "model_and_optim"] {
            std::fs::create_dir_all(tmp.join(sub)).map_err(|e| Error::io(tmp.join(sub), e))?;
        }
        tensor_io::write(&tmp.join(MODEL), &reader.all("")?)?;
        let moments: Vec<(String, Tensor)> = optim_tensors(&reader)?.into_iter().collect();
        tensor_io::write(&tmp.join(OPTIM_TENSORS), &moments)?;
        // The metadata last, as every checkpoint writes it.
        for file in [OPTIM_STATE, TRAINER_STATE, CONFIG, DATA_PATHS, METADATA] {
            if dir.join(file).is_file() {
                std::fs::copy(dir.join(file), tmp.join(file))
                    .map_err(|e| Error::io(dir.join(file), e))?;
            }
        }
        Ok(())
    })
}
