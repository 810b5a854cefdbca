//! Sharded weights and optimizer state in the existing single-file checkpoint layout: saving gathers
//! one unit at a time over the shard group (every rank takes part; the rank that writes keeps each
//! unit as a host copy, so the device never holds more than one whole unit), and loading keeps
//! each rank's part of every stored tensor without any collective, so a checkpoint saved at one
//! world size loads at any other, and HF conversion and evaluation read it as they read any.
use std::collections::BTreeMap;
use std::path::Path;

use tch::{Kind, Tensor};

use super::ShardedModel;
use crate::checkpoint;
use crate::checkpoint::sharded::{ShardIndex, ShardedParam};
use crate::device::host_copy;
use crate::error::Result;
use crate::optim::{AdamW, OptimStateDict};

impl ShardedModel {
    /// Every parameter's whole fp32 value, by name, in model order, as host copies when `keep` (the
    /// writing rank), else nothing: the other ranks only take part in the gathers.
    pub fn full_parameters(&self, keep: bool) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for u in &self.units {
            let full = u.gather_full(&u.master_views, self.shard())?;
            if keep {
                out.extend(u.names.iter().cloned().zip(full.iter().map(host_copy)));
            }
        }
        Ok(out)
    }

    /// The optimizer's state with every moment whole (host copies when `keep`, as above; the JSON
    /// part is the same on every rank).
    pub fn full_optim_state(&self, optim: &AdamW, keep: bool) -> Result<OptimStateDict> {
        let local = optim.state_dict();
        let by_name: BTreeMap<&str, &Tensor> =
            local.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut tensors = Vec::new();
        for suffix in ["exp_avg", "exp_avg_sq"] {
            for u in &self.units {
                let keys: Vec<String> = u.names.iter().map(|n| format!("{n}.{suffix}")).collect();
                // All ranks step every parameter together, so the moments exist everywhere or nowhere.
                if keys.iter().any(|k| !by_name.contains_key(k.as_str())) {
                    continue;
                }
                let parts: Vec<Tensor> = keys
                    .iter()
                    .map(|k| by_name[k.as_str()].shallow_clone())
                    .collect();
                let full = u.gather_full(&parts, self.shard())?;
                if keep {
                    tensors.extend(keys.into_iter().zip(full.iter().map(host_copy)));
                }
            }
        }
        // Parameter order, as the unsharded optimizer lists them.
        let order: BTreeMap<String, usize> = local
            .tensors
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        tensors.sort_by_key(|(n, _)| order.get(n).copied().unwrap_or(usize::MAX));
        Ok(OptimStateDict {
            tensors,
            json: local.json,
        })
    }

    /// The sharded layout's index when the model is sharded over more than one rank (checkpoints are
    /// then written in parts, one file per shard rank), else None (one file, as unsharded).
    pub fn shard_index(&self) -> Option<ShardIndex> {
        let world = self.settings.mesh.shard;
        (world > 1).then(|| ShardIndex {
            world,
            params: self
                .units
                .iter()
                .flat_map(|u| {
                    u.names
                        .iter()
                        .zip(u.params())
                        .enumerate()
                        .map(move |(i, (name, p))| ShardedParam {
                            name: name.clone(),
                            shape: p.size(),
                            parts: (0..world as i64)
                                .map(|r| (r, u.layout.local(i, r)))
                                .filter(|(_, s)| s.len > 0)
                                .map(|(r, s)| (r as u64, s.param_start, s.len))
                                .collect(),
                        })
                })
                .collect(),
        })
    }

    /// This rank's parts for the sharded layout (host copies of its slice of every weight and moment),
    /// with its shard rank; None on replicas after the first, which hold the same parts.
    pub fn local_parts(&self, optim: &AdamW) -> Option<(u64, Vec<(String, Tensor)>)> {
        if self.settings.mesh.replica_index() != 0 {
            return None;
        }
        let moments = optim.state_dict();
        let by_name: BTreeMap<&str, &Tensor> = moments
            .tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t))
            .collect();
        let mut out = Vec::new();
        for u in &self.units {
            for (name, view) in u.names.iter().zip(&u.master_views) {
                if view.numel() == 0 {
                    continue;
                }
                out.push((name.clone(), host_copy(view)));
                for suffix in ["exp_avg", "exp_avg_sq"] {
                    let key = format!("{name}.{suffix}");
                    if let Some(t) = by_name.get(key.as_str()) {
                        out.push((key, host_copy(t)));
                    }
                }
            }
        }
        Some((self.settings.mesh.shard_rank(), out))
    }

    /// Loads the checkpoint's weights in `dir`: each rank copies its part of every tensor into its
    /// shard; the names, shapes and dtypes are checked as for an unsharded model.
    pub fn load_model(&self, dir: &Path) -> Result<()> {
        let mut expected = Vec::new();
        let mut targets = Vec::new();
        for (ui, u) in self.units.iter().enumerate() {
            for (i, (name, p)) in u.names.iter().zip(u.params()).enumerate() {
                expected.push((name.clone(), p.size(), Kind::Float));
                targets.push((ui, i));
            }
        }
        checkpoint::load_model_with(dir, &expected, |k, stored| {
            let (ui, i) = targets[k];
            let u = &self.units[ui];
            let part = u.local_part(i, &stored.to_tensor());
            tch::no_grad(|| u.master_views[i].shallow_clone().copy_(&part));
            Ok(())
        })
    }

    /// This rank's parts of whole optimizer moments (as a checkpoint stores them), for
    /// `AdamW::load_state_dict`; other tensors pass through.
    pub fn local_optim_tensors(
        &self,
        whole: &BTreeMap<String, Tensor>,
    ) -> BTreeMap<String, Tensor> {
        let mut out: BTreeMap<String, Tensor> = whole
            .iter()
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect();
        for u in &self.units {
            for (i, name) in u.names.iter().enumerate() {
                for suffix in ["exp_avg", "exp_avg_sq"] {
                    let key = format!("{name}.{suffix}");
                    if let Some(t) = whole.get(&key) {
                        if t.numel() as i64 == u.layout.numels[i] {
                            out.insert(key, u.local_part(i, t).copy());
                        }
                    }
                }
            }
        }
        out
    }
}
