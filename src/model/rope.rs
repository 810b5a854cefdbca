//! Rotary position embeddings as OLMo-core's `RotaryEmbedding` (`name: default`): NeoX/HF
//! "rotate half" layout, sin/cos of `cat(freqs, freqs)` built in fp32, applied in fp32
//! (`full_precision`) and cast back. The positions come from the forward's context (restarting at 0 for
//! every document under intra-document masking).
use tch::{Device, Kind, Tensor};

pub struct Rope {
    head_dim: i64,
    theta: f64,
}

impl Rope {
    pub fn new(head_dim: i64, theta: f64) -> Self {
        Self { head_dim, theta }
    }

    /// `inv_freq = 1 / theta ** (arange(0, dim, 2) / dim)` in fp32, as `compute_inv_freqs`.
    fn inv_freq(&self, device: Device) -> Tensor {
        let exponents = Tensor::arange_start_step(0, self.head_dim, 2, (Kind::Float, device))
            / (self.head_dim as f64);
        Tensor::pow_scalar(self.theta, &exponents).reciprocal()
    }

    /// `(sin, cos)` of shape `[positions, head_dim]` for the given float positions.
    fn tables(&self, positions: &Tensor) -> (Tensor, Tensor) {
        let freqs = positions.unsqueeze(1) * self.inv_freq(positions.device()).unsqueeze(0);
        let emb = Tensor::cat(&[&freqs, &freqs], -1);
        (emb.sin(), emb.cos())
    }

    /// The sin/cos tables for `positions` (`[B or 1, T]`), built once per forward and shared by
    /// every layer's queries and keys.
    pub fn tables_at(&self, positions: &Tensor) -> RopeTables {
        let (b, t) = (positions.size()[0], positions.size()[1]);
        let (sin, cos) = self.tables(&positions.reshape([-1]));
        RopeTables {
            sin: sin.view([b, t, 1, self.head_dim]),
            cos: cos.view([b, t, 1, self.head_dim]),
        }
    }
}

/// RoPE's sin/cos for one forward, shaped `[B or 1, T, 1, head_dim]`.
pub struct RopeTables {
    sin: Tensor,
    cos: Tensor,
}

impl RopeTables {
    /// Applies RoPE to `x` of shape `[B, T, H, head_dim]` in fp32 and casts back.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let dtype = x.kind();
        let xf = x.to_kind(Kind::Float);
        let halves = xf.chunk(2, -1);
        let rotated = Tensor::cat(&[&(-&halves[1]), &halves[0]], -1);
        (&xf * &self.cos + rotated * &self.sin).to_kind(dtype)
    }
}
