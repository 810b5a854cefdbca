//! The training state as checkpoints see it: whole parameters and optimizer moments by name (gathered
//! when sharded), the sharded layout's parts, and loading them back.
use std::collections::BTreeMap;
use std::path::Path;

use tch::Tensor;

use super::TrainModule;
use crate::checkpoint::sharded::ShardIndex;
use crate::error::Result;
use crate::fsdp::lock;
use crate::optim::OptimStateDict;

impl TrainModule {
    /// Every parameter's whole value by name. Sharded, the units are gathered one by one over the shard
    /// group (every rank must call this together) and only a rank that `keep`s them gets host copies.
    pub fn full_parameters(&self, keep: bool) -> Result<Vec<(String, Tensor)>> {
        match &self.sharded {
            Some(s) => lock(s).full_parameters(keep),
            None => Ok(self
                .model
                .named_parameters()
                .iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect()),
        }
    }

    /// The optimizer state with whole moments (a collective when sharded, as above).
    pub fn full_optim_state(&self, keep: bool) -> Result<OptimStateDict> {
        match &self.sharded {
            Some(s) => lock(s).full_optim_state(&self.optim, keep),
            None => Ok(self.optim.state_dict()),
        }
    }

    /// Sharded over more than one rank: the sharded checkpoint layout's index, and this rank's parts
    /// (None on the replicas that do not write); None when checkpoints are single files.
    #[allow(clippy::type_complexity)]
    pub fn checkpoint_parts(&self) -> Option<(ShardIndex, Option<(u64, Vec<(String, Tensor)>)>)> {
        let m = lock(self.sharded.as_ref()?);
        let index = m.shard_index()?;
        Some((index, m.local_parts(&self.optim)))
    }

    /// Loads a checkpoint's weights (each rank its part, when sharded).
    pub fn load_model(&self, dir: &Path) -> Result<()> {
        match &self.sharded {
            Some(s) => lock(s).load_model(dir),
            None => crate::checkpoint::load_model(dir, self.model.named_parameters()),
        }
    }

    /// Restores the optimizer from whole moments as a checkpoint stores them.
    pub fn load_optim(
        &mut self,
        tensors: &BTreeMap<String, Tensor>,
        json: &serde_json::Value,
    ) -> std::result::Result<(), String> {
        match &self.sharded {
            Some(s) => {
                let local = lock(s).local_optim_tensors(tensors);
                self.optim.load_state_dict(&local, json)
            }
            None => self.optim.load_state_dict(tensors, json),
        }
    }
}
