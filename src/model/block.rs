//! Transformer blocks: `default` (pre-norm, Llama: `h = x + attn(norm(x)); out = h + ff(norm(h))`) and
//! `reordered_norm` (OLMo 2/3: `h = x + norm(attn(x)); out = h + norm(ff(h))`), with the SwiGLU
//! feed-forward `w2(silu(w1(x)) * w3(x))`; their mixture-of-experts twins `moe` and
//! `moe_reordered_norm` (the experts in place of the feed-forward), and the hybrids
//! `moe_hybrid[_reordered_norm]`, which add the experts on the block input beside the dense block:
//! `out = dense_block(x) + moe(norm(x))` (pre-norm) or `+ norm(moe(x))` (reordered).
use tch::Tensor;

use super::attention::Attention;
use super::context::ForwardContext;
use super::moe::MoE;
use super::norm::RmsNorm;
use super::params::{Draw, ParamBuilder};
use crate::config::model::{BlockName, LayerNormConfig, TransformerConfig};
use crate::error::{Error, Result};

pub struct FeedForward {
    pub w1: Tensor,
    pub w2: Tensor,
    pub w3: Tensor,
}

impl FeedForward {
    /// `{prefix}.w1`, `w2`, `w3` for a hidden size of `hidden`, queued for initialization in OLMo-core's
    /// order (w1, w3, w2).
    pub fn new(p: &mut ParamBuilder, prefix: &str, d_model: i64, hidden: i64, std: f64) -> Self {
        let w1 = p.weight(prefix, "w1", &[hidden, d_model]);
        let w2 = p.weight(prefix, "w2", &[d_model, hidden]);
        let w3 = p.weight(prefix, "w3", &[hidden, d_model]);
        for w in [&w1, &w3, &w2] {
            p.init(w, std);
        }
        Self { w1, w2, w3 }
    }

    /// `{prefix}.w1`, `w2`, `w3` with `torch.nn.Linear`'s default initialization (uniform in
    /// `±1/sqrt(fan_in)`): OLMo-core's `init_weights` leaves the shared expert's weights so.
    pub fn with_linear_default_init(
        p: &mut ParamBuilder,
        prefix: &str,
        d_model: i64,
        hidden: i64,
    ) -> Self {
        let w1 = p.weight(prefix, "w1", &[hidden, d_model]);
        let w2 = p.weight(prefix, "w2", &[d_model, hidden]);
        let w3 = p.weight(prefix, "w3", &[hidden, d_model]);
        for (w, fan_in) in [(&w1, d_model), (&w2, hidden), (&w3, d_model)] {
            p.init_with(w, Draw::Uniform(1.0 / (fan_in as f64).sqrt()));
        }
        Self { w1, w2, w3 }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let gate = x.linear::<Tensor>(&self.w1, None).silu();
        (gate * x.linear::<Tensor>(&self.w3, None)).linear::<Tensor>(&self.w2, None)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormPlacement {
    /// Norm on the block input of each branch (Llama).
    Pre,
    /// Norm on each branch's output (OLMo 2's reordered norm).
    Reordered,
}

/// What a block's feed-forward branch is.
pub enum FeedForwardBranch {
    Dense(FeedForward),
    Experts(MoE),
    /// The dense feed-forward in the block, the experts beside it on the block input, with their
    /// own norm (`feed_forward_moe_norm`).
    Hybrid {
        dense: FeedForward,
        experts: MoE,
        experts_norm: RmsNorm,
    },
}

impl FeedForwardBranch {
    /// The mixture of experts, if the branch has one.
    pub fn experts(&self) -> Option<&MoE> {
        match self {
            Self::Dense(_) => None,
            Self::Experts(m) | Self::Hybrid { experts: m, .. } => Some(m),
        }
    }
}

pub struct Block {
    pub attention: Attention,
    pub attention_norm: RmsNorm,
    pub feed_forward: FeedForwardBranch,
    pub feed_forward_norm: RmsNorm,
    pub placement: NormPlacement,
}

impl Block {
    /// Block `index` of the model `cfg` describes, under `blocks.{index}`, with its parameters in
    /// OLMo-core's order (attention, its norm, the experts, the feed-forward norm, then a hybrid's
    /// dense feed-forward and experts norm) and its weights queued in OLMo-core's initialization order
    /// (attention, dense feed-forward, experts).
    pub fn new(p: &mut ParamBuilder, cfg: &TransformerConfig, index: usize) -> Result<Self> {
        let placement = match cfg.block.name {
            BlockName::Default | BlockName::Moe | BlockName::MoeHybrid => NormPlacement::Pre,
            BlockName::ReorderedNorm
            | BlockName::MoeReorderedNorm
            | BlockName::MoeHybridReorderedNorm => NormPlacement::Reordered,
            other => {
                return Err(Error::NotSupported {
                    path: "model.block.name".into(),
                    value: format!("{other:?}"),
                    hint: "block kinds built: default, reordered_norm, moe, moe_reordered_norm, moe_hybrid, moe_hybrid_reordered_norm".into(),
                })
            }
        };
        let missing = |path: &str, hint: &str| Error::NotSupported {
            path: path.into(),
            value: "null".into(),
            hint: hint.into(),
        };
        let prefix = format!("blocks.{index}");
        let d = cfg.d_model as i64;
        let eps = LayerNormConfig::eps_of(cfg.block.layer_norm.as_ref());
        let window = cfg.layer_window(index).map(|w| w as i64);
        let attention = Attention::new(
            p,
            &format!("{prefix}.attention"),
            &cfg.block.sequence_mixer,
            cfg.d_model,
            cfg.init_std,
            window,
        );
        let attention_norm = RmsNorm {
            weight: p.weight(&prefix, "attention_norm", &[d]),
            eps,
        };
        let dense = |p: &mut ParamBuilder| -> Result<FeedForward> {
            let ff = cfg.block.feed_forward.as_ref().ok_or_else(|| {
                missing(
                    "model.block.feed_forward",
                    "this block kind needs a dense feed-forward",
                )
            })?;
            Ok(FeedForward::new(
                p,
                &format!("{prefix}.feed_forward"),
                d,
                ff.hidden_size as i64,
                cfg.init_std,
            ))
        };
        let experts = |p: &mut ParamBuilder| -> Result<MoE> {
            let moe = cfg.block.feed_forward_moe.as_ref().ok_or_else(|| {
                missing(
                    "model.block.feed_forward_moe",
                    "a mixture-of-experts block needs its experts",
                )
            })?;
            Ok(MoE::new(
                p,
                &format!("{prefix}.feed_forward_moe"),
                moe,
                (d, cfg.n_layers),
                cfg.init_std,
            ))
        };
        let (feed_forward, feed_forward_norm) = if !cfg.block.name.is_moe() {
            let ff = dense(p)?;
            let norm = p.weight(&prefix, "feed_forward_norm", &[d]);
            (FeedForwardBranch::Dense(ff), norm)
        } else if !cfg.block.name.is_hybrid() {
            let moe = experts(p)?;
            let norm = p.weight(&prefix, "feed_forward_norm", &[d]);
            (FeedForwardBranch::Experts(moe), norm)
        } else {
            // OLMo-core's hybrid block builds the experts (with the feed-forward norm) first and the
            // dense feed-forward after, but initializes the dense one first.
            let mark = p.init_order.len();
            let moe = experts(p)?;
            let norm = p.weight(&prefix, "feed_forward_norm", &[d]);
            let moe_draws: Vec<_> = p.init_order.drain(mark..).collect();
            let ff = dense(p)?;
            p.init_order.extend(moe_draws);
            let experts_norm = RmsNorm {
                weight: p.weight(&prefix, "feed_forward_moe_norm", &[d]),
                eps,
            };
            (
                FeedForwardBranch::Hybrid {
                    dense: ff,
                    experts: moe,
                    experts_norm,
                },
                norm,
            )
        };
        Ok(Self {
            attention,
            attention_norm,
            feed_forward,
            feed_forward_norm: RmsNorm {
                weight: feed_forward_norm,
                eps,
            },
            placement,
        })
    }

    pub fn forward(&self, x: &Tensor, ctx: &ForwardContext) -> Tensor {
        self.forward_with(x, |attention, h| attention.forward(h, ctx))
    }

    /// The block with `attend(attention, input)` as its attention branch: training attends over the
    /// forward's context, generation over its key/value cache.
    pub fn forward_with(
        &self,
        x: &Tensor,
        attend: impl FnOnce(&Attention, &Tensor) -> Tensor,
    ) -> Tensor {
        let feed_forward = |h: &Tensor| match &self.feed_forward {
            FeedForwardBranch::Dense(ff) | FeedForwardBranch::Hybrid { dense: ff, .. } => {
                ff.forward(h)
            }
            FeedForwardBranch::Experts(moe) => moe.forward(h),
        };
        let dense = match self.placement {
            NormPlacement::Pre => {
                let h = x + attend(&self.attention, &self.attention_norm.forward(x));
                let ff = feed_forward(&self.feed_forward_norm.forward(&h));
                h + ff
            }
            NormPlacement::Reordered => {
                let h = x + self.attention_norm.forward(&attend(&self.attention, x));
                let ff = self.feed_forward_norm.forward(&feed_forward(&h));
                h + ff
            }
        };
        match &self.feed_forward {
            FeedForwardBranch::Hybrid {
                experts,
                experts_norm,
                ..
            } => {
                let sparse = match self.placement {
                    NormPlacement::Pre => experts.forward(&experts_norm.forward(x)),
                    NormPlacement::Reordered => experts_norm.forward(&experts.forward(x)),
                };
                sparse + dense
            }
            _ => dense,
        }
    }
}
