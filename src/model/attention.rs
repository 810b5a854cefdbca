//! Multi-head self-attention as OLMo-core's `Attention` (`name: default`): Q/K/V projections without
//! bias, QK-norm over the full projection (before splitting heads), RoPE, grouped-query attention,
//! causal SDPA through libtorch (flash / memory-efficient kernels where the device has them), optional
//! sliding window, and intra-document masking: on a GPU through variable-length flash attention
//! (flash.rs) where its kernels run, else as an exact boolean mask.
use tch::{Device, Kind, Tensor};

use super::autocast;
use super::context::ForwardContext;
use super::flash::{use_varlen_flash, varlen_flash, AttentionCase};
use super::norm::RmsNorm;
use super::params::ParamBuilder;
use super::rope::RopeTables;
use crate::config::model::{AttentionConfig, LayerNormConfig};

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
    /// `backend` of the attention config (`torch` keeps SDPA for masked attention).
    pub backend: Option<String>,
}

impl Attention {
    /// `{prefix}.w_q`, `w_k`, `w_v`, `w_out` (and `q_norm`, `k_norm` with QK-norm) for a model of
    /// width `d_model`, queued for initialization with `std`; `window` is this layer's sliding window.
    pub fn new(
        p: &mut ParamBuilder,
        prefix: &str,
        cfg: &AttentionConfig,
        d_model: u64,
        std: f64,
        window: Option<i64>,
    ) -> Self {
        let d = d_model as i64;
        let n_heads = cfg.n_heads as i64;
        let n_kv_heads = cfg.n_kv_heads() as i64;
        let head_dim = cfg.head_dim(d_model) as i64;
        let w_q = p.weight(prefix, "w_q", &[n_heads * head_dim, d]);
        let w_k = p.weight(prefix, "w_k", &[n_kv_heads * head_dim, d]);
        let w_v = p.weight(prefix, "w_v", &[n_kv_heads * head_dim, d]);
        let w_out = p.weight(prefix, "w_out", &[d, n_heads * head_dim]);
        for w in [&w_q, &w_k, &w_v, &w_out] {
            p.init(w, std);
        }
        let (q_norm, k_norm) = match &cfg.qk_norm {
            Some(norm) => {
                let eps = LayerNormConfig::eps_of(Some(norm));
                let q = p.weight(prefix, "q_norm", &[n_heads * head_dim]);
                let k = p.weight(prefix, "k_norm", &[n_kv_heads * head_dim]);
                (
                    Some(RmsNorm { weight: q, eps }),
                    Some(RmsNorm { weight: k, eps }),
                )
            }
            None => (None, None),
        };
        Self {
            w_q,
            w_k,
            w_v,
            w_out,
            q_norm,
            k_norm,
            n_heads,
            n_kv_heads,
            head_dim,
            window,
            backend: cfg.backend.clone(),
        }
    }

    pub fn forward(&self, x: &Tensor, ctx: &ForwardContext) -> Tensor {
        let (b, t, _) = x.size3().unwrap_or((0, 0, 0));
        let (q, k, v) = self.project(x, &ctx.rope);
        let window_left = self.window.filter(|&w| w < t).map(|w| w - 1);
        if let Some(out) = self.try_varlen_flash(&q, &k, &v, ctx, window_left) {
            // Flash returns the tokens flattened: `[B * T, heads, head_dim]`.
            return self.output(&out.view([b, t, self.n_heads, self.head_dim]));
        }
        // SDPA takes (B, heads, T, head_dim).
        let (q, k, v) = (q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2));
        let mask = self.mask(t, ctx, x.device());
        let att = match &mask {
            Some(m) => Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                Some(m),
                0.0,
                false,
                None,
                self.is_gqa(),
            ),
            None => Tensor::scaled_dot_product_attention::<Tensor>(
                &q,
                &k,
                &v,
                None,
                0.0,
                true,
                None,
                self.is_gqa(),
            ),
        };
        self.output(&att.transpose(1, 2))
    }

    /// Queries, keys and values `[B, T, heads, head_dim]` of `x` (`[B, T, d_model]`): projections,
    /// QK-norm, and RoPE from `rope`. Generation's cached attention starts from the same projections.
    pub fn project(&self, x: &Tensor, rope: &RopeTables) -> (Tensor, Tensor, Tensor) {
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
        let q = rope.apply(&q.view([b, t, self.n_heads, self.head_dim]));
        let k = rope.apply(&k.view([b, t, self.n_kv_heads, self.head_dim]));
        (q, k, v.view([b, t, self.n_kv_heads, self.head_dim]))
    }

    /// The output projection of attention results `[B, T, heads, head_dim]`.
    pub fn output(&self, att: &Tensor) -> Tensor {
        let (b, t) = (att.size()[0], att.size()[1]);
        att.contiguous()
            .view([b, t, self.n_heads * self.head_dim])
            .linear::<Tensor>(&self.w_out, None)
    }

    /// Whether keys and values have fewer heads than queries (grouped-query attention).
    pub fn is_gqa(&self) -> bool {
        self.n_kv_heads != self.n_heads
    }

    /// Variable-length flash attention of `q`, `k`, `v` (`[B, T, heads, head_dim]`) when it applies
    /// (flash.rs); `None` sends the layer to SDPA. A kernel that refuses the call falls back too, with
    /// a warning, so a run never stops over the faster path.
    fn try_varlen_flash(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        ctx: &ForwardContext,
        window_left: Option<i64>,
    ) -> Option<Tensor> {
        let device = q.device();
        let half_kind = match q.kind() {
            Kind::BFloat16 | Kind::Half => Some(q.kind()),
            _ if autocast::active(device) => Some(Kind::BFloat16),
            _ => None,
        };
        let case = AttentionCase {
            backend: self.backend.as_deref(),
            needs_mask: ctx.has_documents() || window_left.is_some(),
            sm_major: match device {
                Device::Cuda(i) => crate::device::capability(i).map(|c| c.0),
                _ => None,
            },
            half: half_kind.is_some(),
            head_dim: self.head_dim,
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
        };
        if !use_varlen_flash(&case) {
            return None;
        }
        let varlen = ctx.varlen()?;
        let kind = half_kind?;
        let flat = |x: &Tensor, heads: i64| x.reshape([-1, heads, self.head_dim]).to_kind(kind);
        let (fq, fk, fv) = (
            flat(q, self.n_heads),
            flat(k, self.n_kv_heads),
            flat(v, self.n_kv_heads),
        );
        match varlen_flash(&fq, &fk, &fv, varlen, window_left) {
            Ok(out) => {
                static ANNOUNCED: std::sync::Once = std::sync::Once::new();
                ANNOUNCED.call_once(|| {
                    tracing::info!(
                        "attention: variable-length flash (documents or sliding windows)"
                    )
                });
                Some(out)
            }
            Err(e) => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(
                        "variable-length flash attention failed ({e}); using SDPA with a mask"
                    )
                });
                None
            }
        }
    }

    /// The explicit mask when plain causal attention is not enough (documents or a short window).
    fn mask(&self, t: i64, ctx: &ForwardContext, device: Device) -> Option<Tensor> {
        let window = self.window.filter(|&w| w < t).map(|w| {
            // Keys j with i - (w - 1) <= j <= i: OLMo-core's window_size (w - 1, 0).
            let ones = Tensor::ones([t, t], (Kind::Bool, device));
            ones.tril(0).logical_and(&ones.triu(-(w - 1)))
        });
        match (ctx.doc_mask(), window) {
            (Some(d), Some(w)) => Some(d.logical_and(&w)),
            (Some(d), None) => Some(d.shallow_clone()),
            (None, w) => w,
        }
    }
}
