//! Multi-head self-attention as OLMo-core's `Attention` (`name: default`): Q/K/V projections without
//! bias, QK-norm over the full projection (before splitting heads), RoPE, grouped-query attention,
//! causal SDPA through libtorch (flash / memory-efficient kernels where the device has them), optional
//! sliding window, and intra-document masking as an exact boolean mask.
use tch::{Device, Kind, Tensor};

use super::norm::RmsNorm;
use super::rope::{Rope, RopeTables};

pub struct Attention {
    pub w_q: Tensor,
    pub w_k: Tensor,
    pub w_v: Tensor,
    pub w_out: Tensor,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    pub n_heads: i64,
    pub n_kv_heads: i64,
    pub head_dim: i64,
    /// Sliding-window size for this layer; `None` is full causal attention.
    pub window: Option<i64>,
}

/// Per-forward context shared by every layer: RoPE tables and the document mask, if any.
pub struct AttentionContext {
    pub rope: RopeTables,
    /// `[B, 1, T, T]` bool, true where attention is allowed (documents and causality), or `None`.
    pub doc_mask: Option<Tensor>,
}

impl AttentionContext {
    pub fn new(batch: i64, t: i64, doc_lens: Option<&Tensor>, device: Device, rope: &Rope) -> Self {
        let rope = rope.tables_at(&Rope::positions(t, doc_lens, device));
        let doc_mask = doc_lens.map(|lens| {
            let ids = document_ids(lens, t).to_device(device);
            let same_doc = ids.unsqueeze(2).eq_tensor(&ids.unsqueeze(1));
            let causal = Tensor::ones([t, t], (Kind::Bool, device)).tril(0);
            (same_doc.logical_and(&causal)).view([batch, 1, t, t])
        });
        Self { rope, doc_mask }
    }

    /// Explicit positions (`[B, T]`) and mask (`[B, 1, T, T]`), for packed sequences.
    pub fn with_mask(positions: &Tensor, mask: Tensor, rope: &Rope) -> Self {
        Self {
            rope: rope.tables_at(&positions.to_kind(Kind::Float)),
            doc_mask: Some(mask),
        }
    }
}

/// The document index of every token, `[B, T]`, from zero-padded document lengths.
fn document_ids(lens: &Tensor, t: i64) -> Tensor {
    let rows: Vec<Vec<i64>> =
        Vec::<Vec<i64>>::try_from(lens.to_device(Device::Cpu)).unwrap_or_default();
    let ids: Vec<i64> = rows
        .iter()
        .flat_map(|row| {
            row.iter()
                .filter(|&&l| l > 0)
                .enumerate()
                .flat_map(|(d, &l)| std::iter::repeat_n(d as i64, l as usize))
        })
        .collect();
    Tensor::from_slice(&ids).view([rows.len() as i64, t])
}

impl Attention {
    pub fn forward(&self, x: &Tensor, ctx: &AttentionContext) -> Tensor {
        let (b, t, _) = x.size3().unwrap_or((0, 0, 0));
        let mut q = x.linear::<Tensor>(&self.w_q, None);
        let mut k = x.linear::<Tensor>(&self.w_k, None);
        let v = x.linear::<Tensor>(&self.w_v, None);
        if let Some(n) = &self.q_norm {
            q = n.forward(&q);
        }
        if let Some(n) = &self.k_norm {
            k = n.forward(&k);
        }
        let q = ctx.rope.apply(&q.view([b, t, self.n_heads, self.head_dim]));
        let k = ctx
            .rope
            .apply(&k.view([b, t, self.n_kv_heads, self.head_dim]));
        let v = v.view([b, t, self.n_kv_heads, self.head_dim]);
        // SDPA takes (B, heads, T, head_dim).
        let (q, k, v) = (q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2));
        let mask = self.mask(t, ctx, x.device());
        let gqa = self.n_kv_heads != self.n_heads;
        let att = match &mask {
            Some(m) => {
                Tensor::scaled_dot_product_attention(&q, &k, &v, Some(m), 0.0, false, None, gqa)
            }
            None => Tensor::scaled_dot_product_attention::<Tensor>(
                &q, &k, &v, None, 0.0, true, None, gqa,
            ),
        };
        att.transpose(1, 2)
            .contiguous()
            .view([b, t, self.n_heads * self.head_dim])
            .linear::<Tensor>(&self.w_out, None)
    }

    /// The explicit mask when plain causal attention is not enough (documents or a short window).
    fn mask(&self, t: i64, ctx: &AttentionContext, device: Device) -> Option<Tensor> {
        let window = self.window.filter(|&w| w < t).map(|w| {
            // Keys j with i - (w - 1) <= j <= i: OLMo-core's window_size (w - 1, 0).
            let ones = Tensor::ones([t, t], (Kind::Bool, device));
            ones.tril(0).logical_and(&ones.triu(-(w - 1)))
        });
        match (&ctx.doc_mask, window) {
            (Some(d), Some(w)) => Some(d.logical_and(&w)),
            (Some(d), None) => Some(d.shallow_clone()),
            (None, w) => w,
        }
    }
}
