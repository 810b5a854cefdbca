//! Sharded data parallelism (OLMo-core's `dp_config.name: fsdp | hsdp`), after `shared/SHARDING.md`:
//! each unit (the embeddings, each block, the LM head) is one flat buffer sharded over the shard
//! group; a driver gathers a unit just before it runs (the next one's all-gather already issued),
//! frees it after, runs backward unit by unit with the gradients of the next unit's input, and
//! reduce-scatters each unit's gradients into fp32 shards (and, under HSDP, averages those over the
//! replicas on a rank batch's last micro-batch). No rank ever holds the whole model.
pub mod checkpoint;
pub mod clip;
pub mod executor;
pub mod layout;
pub mod unit;

use std::sync::{Arc, Mutex, MutexGuard};

use tch::{Device, Kind, Tensor};

use crate::dist::mesh::DpMesh;
use crate::dist::ProcessGroup;
use crate::error::{Error, Result};
use crate::model::transformer::UnitGate;
use crate::model::{Transformer, Unit};
use unit::ShardedUnit;

/// The settings of a sharded run, from `dp_config`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShardingSettings {
    pub mesh: DpMesh,
    /// Gathered weights and their gradients (`param_dtype`, fp32 by default).
    pub param_kind: Kind,
    /// Gradients are reduced in this dtype (`reduce_dtype`).
    pub reduce_kind: Kind,
    /// Units whose all-gather the forward issues ahead (at least one).
    pub prefetch: usize,
}

pub struct ShardedModel {
    units: Vec<ShardedUnit>,
    shard_group: Option<Arc<ProcessGroup>>,
    replica_group: Option<Arc<ProcessGroup>>,
    settings: ShardingSettings,
    /// The most units gathered at once so far (at most `1 + prefetch`, checked in debug builds).
    pub peak_gathered: usize,
    /// The most gathered bytes at once since the last `take_peak_unsharded_bytes`.
    peak_unsharded_bytes: i64,
    /// The first failure of a forward outside training (the gate cannot return it).
    gate_error: Option<Error>,
}

impl ShardedModel {
    /// Shards `model` (built with `Transformer::new_deferred`), with its sub-groups of `group` (None
    /// on one process), and initializes it unit by unit with `init_seed`.
    pub fn new(
        model: &Transformer,
        group: Option<&Arc<ProcessGroup>>,
        settings: ShardingSettings,
        device: Device,
        init_seed: u64,
    ) -> Result<Self> {
        let mesh = settings.mesh;
        let (shard_group, replica_group) = match group {
            None => (None, None),
            Some(g) => {
                let shard = match mesh.replicas {
                    1 => g.clone(),
                    _ => Arc::new(g.sub_group(
                        &mesh.shard_group(),
                        &format!("shard-{}", mesh.replica_index()),
                    )?),
                };
                let replica = (mesh.replicas > 1)
                    .then(|| {
                        g.sub_group(
                            &mesh.replica_group(),
                            &format!("replica-{}", mesh.shard_rank()),
                        )
                    })
                    .transpose()?
                    .map(Arc::new);
                ((mesh.shard > 1).then_some(shard), replica)
            }
        };
        let units = model
            .units()
            .into_iter()
            .map(|u| {
                ShardedUnit::new(
                    u,
                    model.unit_parameters(u),
                    mesh.shard as i64,
                    mesh.shard_rank() as i64,
                    settings.param_kind,
                    settings.reduce_kind,
                    device,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mut sharded = Self {
            units,
            shard_group,
            replica_group,
            settings,
            peak_gathered: 0,
            peak_unsharded_bytes: 0,
            gate_error: None,
        };
        let units = &mut sharded.units;
        model.init_weights_by_unit(init_seed, |u, init| {
            let i = unit_index(u, units.len());
            units[i].fill_full(|| {
                init();
                Ok(())
            })
        })?;
        Ok(sharded)
    }

    pub fn settings(&self) -> &ShardingSettings {
        &self.settings
    }

    /// The optimizer's parameters: each model parameter's local part of its unit's fp32 shard, under
    /// the model's names, in model order.
    pub fn optimizer_params(&self) -> Vec<(String, Tensor)> {
        self.units
            .iter()
            .flat_map(|u| {
                u.names
                    .iter()
                    .cloned()
                    .zip(u.master_views.iter().map(Tensor::shallow_clone))
            })
            .collect()
    }

    fn shard(&self) -> Option<&ProcessGroup> {
        self.shard_group.as_deref()
    }

    fn index(&self, unit: Unit) -> usize {
        unit_index(unit, self.units.len())
    }

    fn gather(&mut self, i: usize) -> Result<()> {
        let group = self.shard_group.clone();
        self.units[i].gather(group.as_deref())?;
        self.note_gathered();
        Ok(())
    }

    fn wait(&mut self, i: usize) -> Result<()> {
        let group = self.shard_group.clone();
        self.units[i].wait(group.as_deref())?;
        self.note_gathered();
        Ok(())
    }

    fn note_gathered(&mut self) {
        let n = self.units.iter().filter(|u| u.is_gathered()).count();
        // Debug builds (every test run) check the bound on each gather: the unit running and the ones
        // issued ahead of it (2 + prefetch_factor, or 2 with OLMo-core's default 0).
        debug_assert!(
            n <= 1 + self.settings.prefetch,
            "{n} units gathered at once, more than 1 + {}",
            self.settings.prefetch
        );
        self.peak_gathered = self.peak_gathered.max(n);
        self.peak_unsharded_bytes = self.peak_unsharded_bytes.max(self.unsharded_bytes());
    }

    /// The peak of gathered bytes since the last call, restarting the count.
    pub fn take_peak_unsharded_bytes(&mut self) -> i64 {
        std::mem::take(&mut self.peak_unsharded_bytes)
    }

    /// Frees every gathered unit (after evaluation, before a checkpoint).
    pub fn reshard_all(&mut self) -> Result<()> {
        self.units.iter_mut().try_for_each(ShardedUnit::reshard)
    }

    pub fn zero_grad(&mut self) {
        self.units.iter_mut().for_each(ShardedUnit::zero_grad);
    }

    /// Bytes this rank keeps whatever runs: fp32 shards and their gradients.
    pub fn persistent_bytes(&self) -> i64 {
        self.units.iter().map(ShardedUnit::persistent_bytes).sum()
    }

    /// Bytes of the gathered units right now.
    pub fn unsharded_bytes(&self) -> i64 {
        self.units
            .iter()
            .filter(|u| u.is_gathered())
            .map(ShardedUnit::unsharded_bytes)
            .sum()
    }

    /// The first failure of a forward outside training, if any.
    pub fn take_gate_error(&mut self) -> Option<Error> {
        self.gate_error.take()
    }
}

fn unit_index(unit: Unit, n_units: usize) -> usize {
    match unit {
        Unit::Embeddings => 0,
        Unit::Block(i) => i + 1,
        Unit::Head => n_units - 1,
    }
}

/// A sharded model as the trainer shares it with the model's gate.
pub type SharedModel = Arc<Mutex<ShardedModel>>;

pub fn lock(m: &SharedModel) -> MutexGuard<'_, ShardedModel> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The gate a sharded model puts on the model for forwards outside training (evaluation): each unit
/// is gathered before it runs and freed after, except the LM head, which stays gathered for the loss
/// (as OLMo-core's head, `reshard_after_forward=False`) until the next forward starts.
pub struct Gate(pub SharedModel);

impl UnitGate for Gate {
    fn open(&self, unit: Unit) {
        let mut m = lock(&self.0);
        let i = m.index(unit);
        let result = (|| {
            if unit == Unit::Embeddings {
                m.reshard_all()?;
            }
            m.wait(i)
        })();
        if let (Err(e), None) = (result, &m.gate_error) {
            m.gate_error = Some(e);
        }
    }

    fn close(&self, unit: Unit) {
        if unit == Unit::Head {
            return;
        }
        let mut m = lock(&self.0);
        let i = m.index(unit);
        if let (Err(e), None) = (m.units[i].reshard(), &m.gate_error) {
            m.gate_error = Some(e);
        }
    }
}

impl ShardingSettings {
    /// From `dp_config` (fsdp or hsdp) for `rank` of `world` on `nodes` nodes.
    pub fn from_config(
        dp: &crate::config::train_module::DataParallelConfig,
        rank: u64,
        world: u64,
        nodes: u64,
    ) -> Result<Self> {
        use crate::config::train_module::DataParallelType;
        use crate::config::DType;
        let mesh = match dp.name {
            DataParallelType::Hsdp => {
                DpMesh::hsdp(rank, world, nodes, dp.num_replicas, dp.shard_degree)?
            }
            _ => DpMesh::fsdp(rank, world),
        };
        let kind = |key: &str, d: Option<DType>| -> Result<Kind> {
            match d {
                None | Some(DType::Float32) => Ok(Kind::Float),
                Some(DType::Bfloat16) => Ok(Kind::BFloat16),
                Some(other) => Err(Error::NotSupported {
                    path: format!("train_module.dp_config.{key}"),
                    value: format!("{other:?}"),
                    hint: "float32 or bfloat16".into(),
                }),
            }
        };
        // `blocks` leaves the LM head in the root: its weights are gathered from the forward through
        // the loss's backward either way, so the numbers and the peak are the same as `full`.
        match dp.wrapping_strategy.as_str() {
            "full" | "blocks" => {}
            other => {
                return Err(Error::NotSupported {
                    path: "train_module.dp_config.wrapping_strategy".into(),
                    value: other.into(),
                    hint: "full or blocks (fine_grained is not built)".into(),
                })
            }
        }
        Ok(Self {
            mesh,
            param_kind: kind("param_dtype", dp.param_dtype)?,
            reduce_kind: kind("reduce_dtype", Some(dp.reduce_dtype))?,
            prefetch: (dp.prefetch_factor as usize).max(1),
        })
    }
}
