//! The sharded forward and backward of one micro-batch, unit by unit (`shared/SHARDING.md` §5.5).
//! Forward: wait for a unit's all-gather, issue the next ones', run the unit on a detached copy of
//! its input, free it (the LM head stays, for the loss). Backward, after the loss's: the head's
//! gradients are reduced; then each unit in reverse is gathered (the one before it already on its
//! way), back-propagated from the gradient of the next unit's input, and its gradients reduced
//! while the next backward computes.
use std::ffi::c_int;

use tch::Tensor;

use super::ShardedModel;
use crate::error::{Error, Result};
use crate::model::checkpointing::Recomputes;
use crate::model::{DocLens, Transformer, Unit};
use crate::shim_error::last_shim_error;

extern "C" {
    fn shim_backward(
        outs: *mut *mut torch_sys::C_tensor,
        grads: *mut *mut torch_sys::C_tensor,
        n: c_int,
    ) -> c_int;
}

/// What the forward leaves for the backward: per unit, its input (a leaf, except the token ids), its
/// output, and the auxiliary loss it produced (a mixture of experts' router losses), which must be
/// back-propagated together with the output since both share the unit's graph.
pub struct Tape {
    entries: Vec<(Unit, Tensor, Tensor, Option<Tensor>)>,
}

fn training_error(reason: String) -> Error {
    Error::Training { step: 0, reason }
}

impl ShardedModel {
    /// The final-norm hidden states of `ids` (the LM head's weights stay gathered for the loss);
    /// blocks marked in `checkpointed` are recomputed in backward. `aux_loss(unit)`, called after each
    /// unit ran, gives the auxiliary loss that unit added, if any.
    pub fn forward(
        &mut self,
        model: &Transformer,
        ids: &Tensor,
        docs: Option<&DocLens>,
        checkpointed: &[bool],
        keep: &mut Recomputes,
        aux_loss: &mut dyn FnMut(Unit) -> Option<Tensor>,
    ) -> Result<(Tensor, Tape)> {
        let ctx = keep.keep_context(model.context(ids, docs));
        let units = model.units();
        let ahead = self.settings.prefetch;
        self.gather(0)?;
        let mut entries = Vec::with_capacity(units.len());
        let mut h = ids.shallow_clone();
        for (k, &unit) in units.iter().enumerate() {
            self.wait(k)?;
            for next in k + 1..(k + 1 + ahead).min(units.len()) {
                self.gather(next)?;
            }
            let x = match unit {
                Unit::Embeddings => h,
                _ => h.detach().set_requires_grad(true),
            };
            let y = model
                .run_unit_maybe_checkpointed(unit, &x, ctx, checkpointed, keep)
                .map_err(training_error)?;
            if unit != Unit::Head {
                self.units[k].reshard()?;
            }
            entries.push((unit, x, y.shallow_clone(), aux_loss(unit)));
            h = y;
        }
        Ok((h, Tape { entries }))
    }

    /// The backward of every unit but the head's projection and norm (which the loss's backward has
    /// run): gradients end up reduced into the shards. `last_microbatch` of the rank batch also
    /// averages over HSDP's replicas.
    pub fn backward(&mut self, tape: Tape, last_microbatch: bool) -> Result<()> {
        let n = tape.entries.len();
        let head = n - 1;
        self.reduce(head, last_microbatch)?;
        self.units[head].reshard()?;
        let mut grad = tape.entries[head].1.grad();
        for k in (0..head).rev() {
            let (unit, x, y, aux) = &tape.entries[k];
            // The embedding's backward needs only the token ids, never the weights.
            if *unit != Unit::Embeddings {
                self.gather(k)?;
                if k > 1 {
                    self.gather(k - 1)?;
                }
                self.wait(k)?;
            }
            let mut outs = Vec::new();
            if grad.defined() {
                outs.push((y.shallow_clone(), grad.shallow_clone()));
            }
            if let Some(aux) = aux {
                outs.push((aux.shallow_clone(), aux.ones_like()));
            }
            if !outs.is_empty() {
                backward_from(&outs).map_err(|e| training_error(format!("{unit:?}: {e}")))?;
            }
            self.reduce(k, last_microbatch)?;
            self.units[k].reshard()?;
            if *unit != Unit::Embeddings {
                grad = x.grad();
            }
        }
        self.finish_reductions()
    }

    /// Starts reducing unit `k`'s gradients once the previous reduction is done (one in flight).
    fn reduce(&mut self, k: usize, last_microbatch: bool) -> Result<()> {
        self.finish_reductions()?;
        let group = self.shard_group.clone();
        self.units[k].start_reduce(group.as_deref(), last_microbatch)
    }

    fn finish_reductions(&mut self) -> Result<()> {
        let replicas = self.replica_group.clone();
        for u in &mut self.units {
            u.finish_reduce(replicas.as_deref())?;
        }
        Ok(())
    }
}

/// `torch.autograd.backward(outputs, grads)` over `(output, grad)` pairs.
fn backward_from(pairs: &[(Tensor, Tensor)]) -> std::result::Result<(), String> {
    let mut outs: Vec<_> = pairs
        .iter()
        .map(|(y, _)| y.as_ptr() as *mut torch_sys::C_tensor)
        .collect();
    let mut grads: Vec<_> = pairs
        .iter()
        .map(|(_, g)| g.as_ptr() as *mut torch_sys::C_tensor)
        .collect();
    // SAFETY: live tensor handles for the duration of the call.
    match unsafe { shim_backward(outs.as_mut_ptr(), grads.as_mut_ptr(), pairs.len() as c_int) } {
        0 => Ok(()),
        _ => Err(last_shim_error()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tch::{Device, Kind};

    use super::*;
    use crate::config::factories::build_factory;
    use crate::dist::mesh::DpMesh;
    use crate::fsdp::{lock, Gate, ShardingSettings};

    fn sharded(prefetch: usize) -> (Transformer, ShardedModel) {
        let cfg = build_factory("olmo2_1M", 64).unwrap();
        let model = Transformer::new_deferred(&cfg, Device::Cpu).unwrap();
        let settings = ShardingSettings {
            mesh: DpMesh::fsdp(0, 1),
            // bf16: the gathered buffer is separate from the fp32 shard, so it is really freed.
            param_kind: Kind::BFloat16,
            reduce_kind: Kind::Float,
            prefetch,
        };
        let s = ShardedModel::new(&model, None, settings, Device::Cpu, 3).unwrap();
        (model, s)
    }

    /// At most 1 + prefetch units (2 + `prefetch_factor`) are gathered at any moment of a forward and
    /// backward, none after;
    /// every parameter gets a gradient in its shard.
    #[test]
    fn few_units_are_gathered_at_once() {
        for prefetch in [1, 2] {
            let (model, mut s) = sharded(prefetch);
            let ids = Tensor::randint(64, [2, 8], (Kind::Int64, Device::Cpu));
            let mut keep = Recomputes::default();
            let (h, tape) = s
                .forward(&model, &ids, None, &[], &mut keep, &mut |_| None)
                .unwrap();
            let loss = h
                .linear::<Tensor>(model.lm_head_weight(), None)
                .to_kind(Kind::Float)
                .square()
                .mean(Kind::Float);
            loss.backward();
            s.backward(tape, true).unwrap();
            assert_eq!(s.peak_gathered, 1 + prefetch);
            assert_eq!(s.unsharded_bytes(), 0);
            for (name, p) in s.optimizer_params() {
                assert!(p.grad().defined(), "{name} has no gradient");
                assert_eq!(p.grad().kind(), Kind::Float);
            }
        }
    }

    /// A forward outside training through the gate gives the driver's hidden states, frees every
    /// unit but the LM head (kept for the loss) and frees that at the next forward.
    #[test]
    fn gated_forwards_equal_the_driver_and_free_behind_them() {
        let (mut model, mut s) = sharded(1);
        let ids = Tensor::randint(64, [2, 8], (Kind::Int64, Device::Cpu));
        let mut keep = Recomputes::default();
        let (h, _) =
            tch::no_grad(|| s.forward(&model, &ids, None, &[], &mut keep, &mut |_| None)).unwrap();
        s.reshard_all().unwrap();
        let shared = Arc::new(Mutex::new(s));
        model.set_gate(Arc::new(Gate(shared.clone())));
        let gated = tch::no_grad(|| model.forward_hidden(&ids, None));
        assert!(gated.equal(&h));
        let head_only = lock(&shared).unsharded_bytes();
        assert!(head_only > 0);
        let _ = tch::no_grad(|| model.forward_hidden(&ids, None));
        assert_eq!(lock(&shared).unsharded_bytes(), head_only);
        assert!(lock(&shared).take_gate_error().is_none());
    }
}
