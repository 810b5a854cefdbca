//! Transformer blocks: `default` (pre-norm, Llama: `h = x + attn(norm(x)); out = h + ff(norm(h))`) and
//! `reordered_norm` (OLMo 2/3: `h = x + norm(attn(x)); out = h + norm(ff(h))`), with the SwiGLU
//! feed-forward `w2(silu(w1(x)) * w3(x))`.
use tch::Tensor;

use super::attention::{Attention, AttentionContext};
use super::norm::RmsNorm;

pub struct FeedForward {
    pub w1: Tensor,
    pub w2: Tensor,
    pub w3: Tensor,
}

impl FeedForward {
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
    pub fn forward(&self, x: &Tensor, ctx: &AttentionContext) -> Tensor {
        match self.placement {
            NormPlacement::Pre => {
                let h = x + self.attention.forward(&self.attention_norm.forward(x), ctx);
                let ff = self
                    .feed_forward
                    .forward(&self.feed_forward_norm.forward(&h));
                h + ff
            }
            NormPlacement::Reordered => {
                let h = x + self.attention_norm.forward(&self.attention.forward(x, ctx));
                let ff = self
                    .feed_forward_norm
                    .forward(&self.feed_forward.forward(&h));
                h + ff
            }
        }
    }
}
