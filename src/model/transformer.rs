//! OLMo-core's `Transformer` for the dense factories: embeddings, blocks, final RMSNorm and an untied
//! LM head, with OLMo-core's state-dict names (`blocks.0.attention.w_q.weight`, ...) and parameter order,
//! fp32 master weights, and its `normal` initialization.
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use super::attention::{Attention, AttentionContext};
use super::block::{Block, FeedForward, NormPlacement};
use super::norm::RmsNorm;
use super::rope::Rope;
use crate::config::model::{BlockName, TransformerConfig};
use crate::error::{Error, Result};

pub struct Transformer {
    pub vs: nn::VarStore,
    embeddings: Tensor,
    blocks: Vec<Block>,
    head_norm: RmsNorm,
    w_out: Tensor,
    rope: Rope,
    /// Parameters in OLMo-core's `named_parameters()` order.
    params: Vec<(String, Tensor)>,
    /// Weights in initialization order with their std (OLMo-core's `init_weights`).
    init_order: Vec<(Tensor, f64)>,
}

impl Transformer {
    /// Builds the model on `device` with all weights zero (call `init_weights` or load a state).
    pub fn new(cfg: &TransformerConfig, device: Device) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let d = cfg.d_model as i64;
        let vocab = cfg.vocab_size as i64;
        let att_cfg = &cfg.block.sequence_mixer;
        let n_heads = att_cfg.n_heads as i64;
        let n_kv = att_cfg.n_kv_heads() as i64;
        let hd = att_cfg.head_dim(cfg.d_model) as i64;
        let ff_cfg = cfg
            .block
            .feed_forward
            .as_ref()
            .ok_or_else(|| Error::InvalidValue {
                path: "model.block.feed_forward".into(),
                reason: "a dense feed-forward is required".into(),
            })?;
        let hidden = ff_cfg.hidden_size as i64;
        let eps = |n: &Option<crate::config::model::LayerNormConfig>| {
            n.as_ref().and_then(|n| n.eps).unwrap_or(1e-5)
        };
        let block_eps = eps(&cfg.block.layer_norm);
        let qk_eps = eps(&att_cfg.qk_norm);
        let placement = match cfg.block.name {
            BlockName::Default => NormPlacement::Pre,
            BlockName::ReorderedNorm => NormPlacement::Reordered,
            other => {
                return Err(Error::NotSupported {
                    path: "model.block.name".into(),
                    value: format!("{other:?}"),
                    hint: "block kinds built: default, reordered_norm".into(),
                })
            }
        };
        let theta = att_cfg.rope.as_ref().map_or(500_000, |r| r.theta) as f64;
        let std = cfg.init_std;
        let emb_std = cfg.embedding_init_std.unwrap_or(std);

        let mut params = Vec::new();
        let mut init_order = Vec::new();
        // `prefix` is the module path of `name` (OLMo-core's dotted state-dict prefix).
        let mut weight = |prefix: &str, name: &str, dims: &[i64]| -> Tensor {
            let path = prefix
                .split('.')
                .filter(|p| !p.is_empty())
                .fold(root.clone(), |p, c| p.sub(c));
            let t = path.sub(name).var("weight", dims, Init::Const(0.0));
            let full = if prefix.is_empty() {
                format!("{name}.weight")
            } else {
                format!("{prefix}.{name}.weight")
            };
            params.push((full, t.shallow_clone()));
            t
        };
        let embeddings = weight("", "embeddings", &[vocab, d]);
        init_order.push((embeddings.shallow_clone(), emb_std));
        let mut blocks = Vec::with_capacity(cfg.n_layers as usize);
        for i in 0..cfg.n_layers as usize {
            let bp = format!("blocks.{i}");
            let ap = format!("{bp}.attention");
            let fp = format!("{bp}.feed_forward");
            let w_q = weight(&ap, "w_q", &[n_heads * hd, d]);
            let w_k = weight(&ap, "w_k", &[n_kv * hd, d]);
            let w_v = weight(&ap, "w_v", &[n_kv * hd, d]);
            let w_out = weight(&ap, "w_out", &[d, n_heads * hd]);
            let (q_norm, k_norm) = if att_cfg.qk_norm.is_some() {
                let q = weight(&ap, "q_norm", &[n_heads * hd]);
                let k = weight(&ap, "k_norm", &[n_kv * hd]);
                (
                    Some(RmsNorm {
                        weight: q,
                        eps: qk_eps,
                    }),
                    Some(RmsNorm {
                        weight: k,
                        eps: qk_eps,
                    }),
                )
            } else {
                (None, None)
            };
            let attention_norm = RmsNorm {
                weight: weight(&bp, "attention_norm", &[d]),
                eps: block_eps,
            };
            let w1 = weight(&fp, "w1", &[hidden, d]);
            let w2 = weight(&fp, "w2", &[d, hidden]);
            let w3 = weight(&fp, "w3", &[hidden, d]);
            let feed_forward_norm = RmsNorm {
                weight: weight(&bp, "feed_forward_norm", &[d]),
                eps: block_eps,
            };
            for w in [&w_q, &w_k, &w_v, &w_out, &w1, &w3, &w2] {
                init_order.push((w.shallow_clone(), std));
            }
            let window = cfg.layer_window(i).map(|w| w as i64);
            blocks.push(Block {
                attention: Attention {
                    w_q,
                    w_k,
                    w_v,
                    w_out,
                    q_norm,
                    k_norm,
                    n_heads,
                    n_kv_heads: n_kv,
                    head_dim: hd,
                    window,
                },
                attention_norm,
                feed_forward: FeedForward { w1, w2, w3 },
                feed_forward_norm,
                placement,
            });
        }
        let head_norm = RmsNorm {
            weight: weight("lm_head", "norm", &[d]),
            eps: eps(&cfg.lm_head.layer_norm),
        };
        let w_out = weight("lm_head", "w_out", &[vocab, d]);
        init_order.push((w_out.shallow_clone(), std));
        let model = Self {
            vs,
            embeddings,
            blocks,
            head_norm,
            w_out,
            rope: Rope::new(hd, theta),
            params,
            init_order,
        };
        model.reset_norms();
        Ok(model)
    }

    /// RMSNorm weights start at 1 (`reset_parameters`).
    fn reset_norms(&self) {
        tch::no_grad(|| {
            for (name, t) in &self.params {
                if name.ends_with("norm.weight") {
                    let _ = t.shallow_clone().fill_(1.0);
                }
            }
        });
    }

    /// OLMo-core's `normal` init: one generator seeded with `seed`, consumed in module order
    /// (embeddings; per block w_q, w_k, w_v, w_out, w1, w3, w2; the LM head), each weight drawn from a
    /// normal truncated at ±3σ exactly as `torch.nn.init.trunc_normal_` does.
    pub fn init_weights(&self, seed: u64) {
        // libtorch's default generator is process-wide: hold it for the whole sequence of draws.
        static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        self.reset_norms();
        tch::manual_seed(seed as i64);
        tch::no_grad(|| {
            for (t, std) in &self.init_order {
                trunc_normal(t, *std);
            }
        });
    }

    /// Parameters in OLMo-core's order, under OLMo-core's names.
    pub fn named_parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    pub fn num_params(&self) -> i64 {
        self.params.iter().map(|(_, t)| t.numel() as i64).sum()
    }

    /// Logits `[B, T, vocab]` for token ids `[B, T]`; with `doc_lens`, attention stays within documents
    /// and RoPE positions restart per document.
    pub fn forward(&self, input_ids: &Tensor, doc_lens: Option<&Tensor>) -> Tensor {
        self.forward_hidden(input_ids, doc_lens)
            .linear::<Tensor>(&self.w_out, None)
    }

    /// The final-norm hidden states `[B, T, d_model]`: everything but the LM head's projection, so
    /// training can compute the loss in chunks without materializing all logits.
    pub fn forward_hidden(&self, input_ids: &Tensor, doc_lens: Option<&Tensor>) -> Tensor {
        let (b, t) = input_ids.size2().unwrap_or((0, 0));
        let ctx = AttentionContext::new(b, t, doc_lens, input_ids.device(), &self.rope);
        self.hidden_in(input_ids, &ctx)
    }

    /// The final-norm hidden states for packed sequences with explicit RoPE `positions` (`[B, T]`) and
    /// an attention `mask` (`[B, 1, T, T]` bool, true where allowed): downstream evaluation packs one
    /// context with all its continuations this way, each continuation seeing only the context and itself.
    pub fn forward_hidden_masked(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
    ) -> Tensor {
        let ctx = AttentionContext::with_mask(positions, mask.shallow_clone(), &self.rope);
        self.hidden_in(input_ids, &ctx)
    }

    /// Embeddings, every block under `ctx`, then the final norm.
    fn hidden_in(&self, input_ids: &Tensor, ctx: &AttentionContext) -> Tensor {
        let mut h = Tensor::embedding(&self.embeddings, input_ids, -1, false, false);
        for block in &self.blocks {
            h = block.forward(&h, ctx);
        }
        self.head_norm.forward(&h)
    }

    /// Whether any layer uses sliding-window attention (whose window follows sequence order, so packed
    /// sequences with their own positions cannot use it).
    pub fn has_sliding_window(&self) -> bool {
        self.blocks.iter().any(|b| b.attention.window.is_some())
    }

    /// The LM head's projection `[vocab, d_model]` (`lm_head.w_out.weight`).
    pub fn lm_head_weight(&self) -> &Tensor {
        &self.w_out
    }
}

/// `torch.nn.init.trunc_normal_(t, mean=0, std, a=-3std, b=3std)`, step for step, drawing from
/// libtorch's default CPU generator.
fn trunc_normal(t: &Tensor, std: f64) {
    let norm_cdf = |x: f64| (1.0 + libm_erf(x / std::f64::consts::SQRT_2)) / 2.0;
    let (a, b) = (-3.0 * std, 3.0 * std);
    let l = norm_cdf(a / std);
    let u = norm_cdf(b / std);
    let mut t = t.shallow_clone();
    let _ = t.uniform_(2.0 * l - 1.0, 2.0 * u - 1.0);
    let _ = t.erfinv_();
    let _ = t.g_mul_scalar_(std * std::f64::consts::SQRT_2);
    let _ = t.g_add_scalar_(0.0);
    let _ = t.clamp_(a, b);
}

/// Python's `math.erf` (IEEE double; the same value CPython's libm gives).
fn libm_erf(x: f64) -> f64 {
    Tensor::from(x)
        .to_kind(Kind::Double)
        .erf()
        .double_value(&[])
}
