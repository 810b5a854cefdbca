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

/// What the forward leaves for the backward: per unit, its input (a leaf, except the token ids) and
/// its output.
pub struct Tape {
    entries: Vec<(Unit, Tensor, Tensor)>,
}

fn training_error(reason: String) -> Error {
    Error::Training { step: 0, reason }
}

impl ShardedModel {
    /// The final-norm hidden states of `ids` (the LM head's weights stay gathered for the loss);
    /// blocks marked in `checkpointed` are recomputed in backward.
    pub fn forward(
        &mut self,
        model: &Transformer,
        ids: &Tensor,
        docs: Option<&DocLens>,
        checkpointed: &[bool],
        keep: &mut Recomputes,
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
            entries.push((unit, x, y.shallow_clone()));
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
            let (unit, x, y) = &tape.entries[k];
            // The embedding's backward needs only the token ids, never the weights.
            if *unit != Unit::Embeddings {
                self.gather(k)?;
                if k > 1 {
                    self.gather(k - 1)?;
                }
                self.wait(k)?;
            }
            if grad.defined() {
                backward_from(y, &grad).map_err(|e| training_error(format!("{unit:?}: {e}")))?;
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

/// `torch.autograd.backward(y, grad)`.
fn backward_from(y: &Tensor, grad: &Tensor) -> std::result::Result<(), String> {
    let mut outs = [y.as_ptr() as *mut torch_sys::C_tensor];
    let mut grads = [grad.as_ptr() as *mut torch_sys::C_tensor];
    // SAFETY: live tensor handles for the duration of the call.
    match unsafe { shim_backward(outs.as_mut_ptr(), grads.as_mut_ptr(), 1) } {
        0 => Ok(()),
        _ => Err(last_shim_error()),
    }
}
