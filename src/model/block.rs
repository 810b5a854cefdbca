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
    /// The biases of w1, w2, w3 (`bias: true`, or OLMo-core's `null`).
    pub biases: Option<[Tensor; 3]>,
}

/// How a feed-forward's parameters start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeedForwardInit {
    /// OLMo-core's `init_feed_forward`: w1, w3, w2 from a truncated normal of this std, biases zero.
    Normal(f64),
    /// `torch.nn.Linear`'s default (uniform in `±1/sqrt(fan_in)`, biases too): OLMo-core's
    /// `init_weights` leaves a shared expert so.
    LinearDefault,
}

impl FeedForward {
    /// `{prefix}.w1`, `w2`, `w3` (each `.weight`, and `.bias` with `bias`) for a hidden size of
    /// `hidden`, in OLMo-core's parameter order, queued for initialization in its order.
    pub fn new(
        p: &mut ParamBuilder,
        prefix: &str,
        (d_model, hidden): (i64, i64),
        bias: bool,
        init: FeedForwardInit,
    ) -> Self {
        let (w1, b1) = linear(p, &format!("{prefix}.w1"), hidden, d_model, bias);
        let (w2, b2) = linear(p, &format!("{prefix}.w2"), d_model, hidden, bias);
        let (w3, b3) = linear(p, &format!("{prefix}.w3"), hidden, d_model, bias);
        let layers = [(&w1, &b1, d_model), (&w2, &b2, hidden), (&w3, &b3, d_model)];
        match init {
            FeedForwardInit::Normal(std) => {
                for i in [0, 2, 1] {
                    let (w, b, _) = layers[i];
                    p.init(w, std);
                    if let Some(b) = b {
                        p.init_with(b, Draw::Zeros);
                    }
                }
            }
            FeedForwardInit::LinearDefault => {
                for (w, b, fan_in) in layers {
                    let bound = 1.0 / (fan_in as f64).sqrt();
                    p.init_with(w, Draw::Uniform(bound));
                    if let Some(b) = b {
                        p.init_with(b, Draw::Uniform(bound));
                    }
                }
            }
        }
        let biases = match (b1, b2, b3) {
            (Some(b1), Some(b2), Some(b3)) => Some([b1, b2, b3]),
            _ => None,
        };
        Self { w1, w2, w3, biases }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let b = |i: usize| self.biases.as_ref().map(|b| &b[i]);
        let gate = x.linear(&self.w1, b(0)).silu();
        (gate * x.linear(&self.w3, b(2))).linear(&self.w2, b(1))
    }
}

/// A `Linear`'s `{module}.weight` `[out, in]` and, with `bias`, `{module}.bias` `[out]`.
fn linear(
    p: &mut ParamBuilder,
    module: &str,
    out: i64,
    inp: i64,
    bias: bool,
) -> (Tensor, Option<Tensor>) {
    let w = p.param(module, "weight", &[out, inp]);
    let b = bias.then(|| p.param(module, "bias", &[out]));
    (w, b)
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
                (d, ff.hidden_size as i64),
                ff.has_bias(),
                FeedForwardInit::Normal(cfg.init_std),
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
