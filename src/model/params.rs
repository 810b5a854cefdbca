//! Creating a model's parameters: each under its OLMo-core state-dict name, zero-filled in the var store
//! and recorded in OLMo-core's `named_parameters()` order; the weights `init_weights` draws are recorded
//! separately, with their std, in OLMo-core's initialization order (which differs: w1, w3, w2).
use tch::nn::{self, Init};
use tch::Tensor;

pub struct ParamBuilder<'a> {
    root: nn::Path<'a>,
    /// In OLMo-core's `named_parameters()` order.
    pub params: Vec<(String, Tensor)>,
    /// Weights in initialization order with their std.
    pub init_order: Vec<(Tensor, f64)>,
}

impl<'a> ParamBuilder<'a> {
    pub fn new(vs: &'a nn::VarStore) -> Self {
        Self {
            root: vs.root(),
            params: Vec::new(),
            init_order: Vec::new(),
        }
    }

    /// `{prefix}.{name}.weight` of shape `dims`, zero-filled.
    pub fn weight(&mut self, prefix: &str, name: &str, dims: &[i64]) -> Tensor {
        let path = prefix
            .split('.')
            .filter(|p| !p.is_empty())
            .fold(self.root.clone(), |p, c| p.sub(c));
        let t = path.sub(name).var("weight", dims, Init::Const(0.0));
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
        self.init_order.push((weight.shallow_clone(), std));
    }
}
