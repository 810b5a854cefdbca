//! The key/value cache of generation: every layer's keys and values of the tokens seen so far, in
//! buffers sized once for the longest sequence (prompt plus new tokens), so a decoding step writes one
//! column instead of copying the cache.
use tch::{Device, Kind, Tensor};

use crate::model::transformer::Transformer;

pub struct KvCache {
    /// Per layer: keys and values `[B, kv_heads, capacity, head_dim]`.
    layers: Vec<(Tensor, Tensor)>,
    /// Tokens (columns) already filled.
    len: i64,
}

impl KvCache {
    /// An empty cache for `batch` rows of up to `capacity` tokens.
    pub fn new(model: &Transformer, batch: i64, capacity: i64, kind: Kind, device: Device) -> Self {
        let layers = model
            .blocks()
            .iter()
            .map(|b| {
                let a = &b.attention;
                let shape = [batch, a.n_kv_heads, capacity, a.head_dim];
                (
                    Tensor::zeros(shape, (kind, device)),
                    Tensor::zeros(shape, (kind, device)),
                )
            })
            .collect();
        Self { layers, len: 0 }
    }

    /// Tokens already cached.
    pub fn len(&self) -> i64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `layer`'s keys and values of the step's new tokens (`[B, kv_heads, t, head_dim]`) after
    /// the cached ones and returns all of them (`[B, kv_heads, len + t, head_dim]`).
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let t = k.size()[2];
        let (kc, vc) = &self.layers[layer];
        kc.narrow(2, self.len, t).copy_(k);
        vc.narrow(2, self.len, t).copy_(v);
        (kc.narrow(2, 0, self.len + t), vc.narrow(2, 0, self.len + t))
    }

    /// Marks the step's `t` tokens as cached (after every layer appended them).
    pub fn advance(&mut self, t: i64) {
        self.len += t;
    }
}
