//! Transformer blocks: `default` (pre-norm, Llama: `h = x + attn(norm(x)); out = h + ff(norm(h))`) and
//! `reordered_norm` (OLMo 2/3: `h = x + norm(attn(x)); out = h + norm(ff(h))`), with the SwiGLU
//! feed-forward `w2(silu(w1(x)) * w3(x))`.
use tch::Tensor;

use super::attention::Attention;
use super::context::ForwardContext;
use super::norm::RmsNorm;
use super::params::ParamBuilder;
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

pub struct Block {
    pub attention: Attention,
    pub attention_norm: RmsNorm,
    pub feed_forward: FeedForward,
    pub feed_forward_norm: RmsNorm,
    pub placement: NormPlacement,
}

impl Block {
    /// Block `index` of the model `cfg` describes, under `blocks.{index}`.
    pub fn new(p: &mut ParamBuilder, cfg: &TransformerConfig, index: usize) -> Result<Self> {
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
        let ff = cfg
            .block
            .feed_forward
            .as_ref()
            .ok_or_else(|| Error::NotSupported {
                path: "model.block.feed_forward".into(),
                value: "null".into(),
                hint: "a dense feed-forward is required".into(),
            })?;
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
        let feed_forward = FeedForward::new(
            p,
            &format!("{prefix}.feed_forward"),
            d,
            ff.hidden_size as i64,
            cfg.init_std,
        );
        let feed_forward_norm = RmsNorm {
            weight: p.weight(&prefix, "feed_forward_norm", &[d]),
            eps,
        };
        Ok(Self {
            attention,
            attention_norm,
            feed_forward,
            feed_forward_norm,
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
        match self.placement {
            NormPlacement::Pre => {
                let h = x + attend(&self.attention, &self.attention_norm.forward(x));
                let ff = self
                    .feed_forward
                    .forward(&self.feed_forward_norm.forward(&h));
                h + ff
            }
            NormPlacement::Reordered => {
                let h = x + self.attention_norm.forward(&attend(&self.attention, x));
                let ff = self
                    .feed_forward_norm
                    .forward(&self.feed_forward.forward(&h));
                h + ff
            }
        }
    }
}
