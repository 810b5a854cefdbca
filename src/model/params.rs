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
    /// Weights in initialization order (as indices into `params`) with their draw.
    pub init_order: Vec<(usize, Draw)>,
}

/// How `init_weights` draws one weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Draw {
    /// A normal of this std truncated at ±3 std (OLMo-core's `normal` init).
    TruncNormal(f64),
    /// Uniform in ±bound (`torch.nn.Linear`'s default, `1/sqrt(fan_in)`).
    Uniform(f64),
    /// Zeros (OLMo-core's `init_linear` for biases): no draw.
    Zeros,
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
        let module = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        self.param(&module, "weight", dims)
    }

    /// The parameter `{module}.{leaf}` of shape `dims`, zero-filled (OLMo-core's experts are bare
    /// parameters such as `experts.mlp.w1`, not `Linear` weights).
    pub fn param(&mut self, module: &str, leaf: &str, dims: &[i64]) -> Tensor {
        let path = module
            .split('.')
            .filter(|p| !p.is_empty())
            .fold(self.root.clone(), |p, c| p.sub(c));
        let t = match self.deferred {
            true => self.deferred_weight(dims),
            false => path.var(leaf, dims, Init::Const(0.0)),
        };
        self.params
            .push((format!("{module}.{leaf}"), t.shallow_clone()));
        t
    }

    /// Queues `weight` for `init_weights`, drawn from a truncated normal of `std` after those queued
    /// before it.
    pub fn init(&mut self, weight: &Tensor, std: f64) {
        self.init_with(weight, Draw::TruncNormal(std));
    }

    /// Queues `weight` for `init_weights` with `draw`, after those queued before it.
    pub fn init_with(&mut self, weight: &Tensor, draw: Draw) {
        if let Some(i) = self.params.iter().rposition(|(_, t)| t.is_set_to(weight)) {
            self.init_order.push((i, draw));
        }
    }
}
