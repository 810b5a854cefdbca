//! Creating a model's parameters: each under its OLMo-core state-dict name, zero-filled in the var store
//! and recorded in OLMo-core's `named_parameters()` order; the weights `init_weights` draws are recorded
//! separately, with their std, in OLMo-core's initialization order (which differs: w1, w3, w2).
//! Deferred, a parameter gets its shape but no memory: sharded training places it in a unit's buffer
//! later, so no rank ever holds the whole model.
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use crate::device::storage;

pub struct ParamBuilder<'a> {
    root: nn::Path<'a>,
    deferred: bool,
    /// In OLMo-core's `named_parameters()` order.
    pub params: Vec<(String, Tensor)>,
    /// Weights in initialization order (as indices into `params`) with their std.
    pub init_order: Vec<(usize, f64)>,
}

impl<'a> ParamBuilder<'a> {
    pub fn new(vs: &'a nn::VarStore, deferred: bool) -> Self {
        Self {
            root: vs.root(),
            deferred,
            params: Vec::new(),
            init_order: Vec::new(),
        }
    }

    /// A deferred parameter: its shape, a gradient slot, no memory.
    fn deferred_weight(&self, dims: &[i64]) -> Tensor {
        let t = Tensor::empty(dims, (Kind::Float, self.root.device())).set_requires_grad(true);
        if let Err(e) = storage::free(&t) {
            // Correct either way: the memory goes when sharding places the parameter.
            tracing::warn!("could not free a deferred parameter's memory: {e}");
        }
        t
    }

    /// `{prefix}.{name}.weight` of shape `dims`, zero-filled.
    pub fn weight(&mut self, prefix: &str, name: &str, dims: &[i64]) -> Tensor {
        let path = prefix
            .split('.')
            .filter(|p| !p.is_empty())
            .fold(self.root.clone(), |p, c| p.sub(c));
        let t = match self.deferred {
            true => self.deferred_weight(dims),
            false => path.sub(name).var("weight", dims, Init::Const(0.0)),
        };
        let full = if prefix.is_empty() {
            format!("{name}.weight")
        } else {
            format!("{prefix}.{name}.weight")
        };
        self.params.push((full, t.shallow_clone()));
        t
    }

    /// Queues `weight` for `init_weights`, drawn from a truncated normal of `std` after those queued
    /// before it.
    pub fn init(&mut self, weight: &Tensor, std: f64) {
        if let Some(i) = self.params.iter().rposition(|(_, t)| t.is_set_to(weight)) {
            self.init_order.push((i, std));
        }
    }
}
