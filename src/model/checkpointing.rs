//! Activation checkpointing (OLMo-core's `ac_config`): a checkpointed block runs its forward without
//! keeping its graph and runs it again in backward (cpp/checkpoint_shim.cpp, an autograd function that
//! calls back into `run_unit`). Only the block's input is kept. The recomputation happens under the
//! autocast state the forward had, so it rebuilds exactly the activations the forward made.
use std::ffi::{c_int, c_void};

use tch::{Device, Tensor};

use super::autocast::{self, AutocastGuard};
use super::context::{DocLens, ForwardContext};
use super::transformer::Transformer;
use super::units::Unit;
use crate::shim_error::take_tensor;

type UnitFn = extern "C" fn(*mut c_void, *mut torch_sys::C_tensor) -> *mut torch_sys::C_tensor;

extern "C" {
    fn shim_checkpointed_unit(
        x: *mut torch_sys::C_tensor,
        unit_fn: UnitFn,
        data: *mut c_void,
        out: *mut *mut torch_sys::C_tensor,
    ) -> c_int;
}

/// What the backward of checkpointed units needs again: the forward's context and, per unit, where to
/// find it. The owner keeps this until that backward has run (then `clear`s it); the model must not
/// move meanwhile.
#[derive(Default)]
// Boxed: the shim holds their addresses, which must not move when the vectors grow.
#[allow(clippy::vec_box)]
pub struct Recomputes {
    contexts: Vec<Box<ForwardContext>>,
    calls: Vec<Box<UnitCall>>,
}

impl Recomputes {
    /// Drops what the finished backward needed.
    pub fn clear(&mut self) {
        self.calls.clear();
        self.contexts.clear();
    }
}

struct UnitCall {
    model: *const Transformer,
    unit: Unit,
    ctx: *const ForwardContext,
    /// The device whose bf16 autocast was on during the forward.
    autocast: Option<Device>,
}

extern "C" fn run_unit_again(
    data: *mut c_void,
    x: *mut torch_sys::C_tensor,
) -> *mut torch_sys::C_tensor {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `data` is a `UnitCall` kept alive by `Recomputes` until this backward has run, and
        // its model and context outlive it there; `x` is a new tensor handed over by the shim.
        let call = unsafe { &*(data as *const UnitCall) };
        let x = unsafe { Tensor::from_ptr(x) };
        let _autocast = call.autocast.map(AutocastGuard::bf16);
        let (model, ctx) = unsafe { (&*call.model, &*call.ctx) };
        let y = model.run_unit(call.unit, &x, ctx);
        let ptr = y.as_ptr() as *mut torch_sys::C_tensor;
        // The shim takes ownership of the tensor (and deletes it).
        std::mem::forget(y);
        ptr
    }));
    result.unwrap_or(std::ptr::null_mut())
}

impl Recomputes {
    /// Keeps `ctx` until `clear`: the context of a forward whose checkpointed units will run again.
    pub fn keep_context(&mut self, ctx: ForwardContext) -> KeptContext {
        let ctx = Box::new(ctx);
        let ptr: *const ForwardContext = &*ctx;
        self.contexts.push(ctx);
        KeptContext(ptr)
    }
}

/// A context that `Recomputes` keeps alive (valid until its `clear`).
#[derive(Clone, Copy)]
pub struct KeptContext(*const ForwardContext);

impl KeptContext {
    pub fn get(&self) -> &ForwardContext {
        // SAFETY: the context is boxed in the `Recomputes` that made this, which is cleared only
        // after the backward that could use it has run.
        unsafe { &*self.0 }
    }
}

impl Transformer {
    /// The final-norm hidden states, with the blocks marked in `checkpointed` (one flag per block)
    /// recomputed in backward; `keep` holds what that backward needs.
    pub fn forward_hidden_checkpointed(
        &self,
        input_ids: &Tensor,
        doc_lens: Option<&DocLens>,
        checkpointed: &[bool],
        keep: &mut Recomputes,
    ) -> Result<Tensor, String> {
        let ctx = keep.keep_context(self.context(input_ids, doc_lens));
        let mut x = input_ids.shallow_clone();
        for unit in self.units() {
            x = self.run_unit_maybe_checkpointed(unit, &x, ctx, checkpointed, keep)?;
        }
        Ok(x)
    }

    /// Runs `unit` on `x`, recomputed in backward when it is a block marked in `checkpointed`.
    pub fn run_unit_maybe_checkpointed(
        &self,
        unit: Unit,
        x: &Tensor,
        ctx: KeptContext,
        checkpointed: &[bool],
        keep: &mut Recomputes,
    ) -> Result<Tensor, String> {
        match unit {
            Unit::Block(i) if checkpointed.get(i).copied().unwrap_or(false) => {
                let autocast = autocast::active(x.device()).then_some(x.device());
                let call = Box::new(UnitCall {
                    model: self,
                    unit,
                    ctx: ctx.0,
                    autocast,
                });
                let data = &*call as *const UnitCall as *mut c_void;
                keep.calls.push(call);
                self.checkpointed_unit(unit, x, data)
            }
            _ => Ok(self.run_unit(unit, x, ctx.get())),
        }
    }

    fn checkpointed_unit(
        &self,
        unit: Unit,
        x: &Tensor,
        data: *mut c_void,
    ) -> Result<Tensor, String> {
        let mut out: *mut torch_sys::C_tensor = std::ptr::null_mut();
        // SAFETY: live tensor handles for the call; `data` stays valid as `forward_hidden_checkpointed`
        // documents; on success the shim hands over a new tensor.
        let code = unsafe {
            shim_checkpointed_unit(
                x.as_ptr() as *mut torch_sys::C_tensor,
                run_unit_again,
                data,
                &mut out,
            )
        };
        take_tensor(code, out).map_err(|e| format!("activation checkpointing of {unit:?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::factories::build_factory;
    use tch::Kind;

    /// The defined gradients (the head's projection takes no part in this test's loss).
    fn grads(model: &Transformer) -> Vec<Tensor> {
        model
            .named_parameters()
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .map(|g| g.copy())
            .collect()
    }

    /// Checkpointing every block, or every other, gives the plain forward's values and gradients bit
    /// for bit, twice in a row (gradients accumulating as over micro-batches), in fp32 and under bf16
    /// autocast (where the recomputation must not share one cached bf16 copy of the block's input).
    #[test]
    fn checkpointed_blocks_give_the_plain_gradients_bit_for_bit() {
        for bf16 in [false, true] {
            let model =
                Transformer::new(&build_factory("olmo2_1M", 64).unwrap(), Device::Cpu).unwrap();
            model.init_weights(7);
            let ids = Tensor::randint(64, [2, 16], (Kind::Int64, Device::Cpu));
            let w = Tensor::randn([64, 12], (Kind::Float, Device::Cpu));
            let n = model.n_blocks();
            let mut plain: Option<(Vec<Tensor>, Vec<Tensor>)> = None;
            for flags in [
                vec![false; n],
                vec![true; n],
                (0..n).map(|i| i % 2 == 0).collect(),
            ] {
                for (_, p) in model.named_parameters() {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.zero_();
                    }
                }
                let mut keep = Recomputes::default();
                let mut out = Vec::new();
                for _ in 0..2 {
                    let guard = bf16.then(|| AutocastGuard::bf16(Device::Cpu));
                    let h = model
                        .forward_hidden_checkpointed(&ids, None, &flags, &mut keep)
                        .unwrap();
                    let loss = h.linear::<Tensor>(&w, None).square().mean(Kind::Float);
                    drop(guard);
                    loss.backward();
                    out.push(h.detach());
                }
                keep.clear();
                let got = (out, grads(&model));
                match &plain {
                    None => plain = Some(got),
                    Some((h0, g0)) => {
                        assert!(got.0.iter().zip(h0).all(|(a, b)| a.equal(b)), "{flags:?}");
                        assert_eq!(got.1.len(), g0.len());
                        assert!(
                            got.1.iter().zip(g0).all(|(a, b)| a.equal(b)),
                            "bf16 {bf16}, {flags:?}"
                        );
                    }
                }
            }
        }
    }
}
