//! Labels and the language-modeling loss as OLMo-core computes them (`get_labels`, the LM head's
//! `cross_entropy_loss`): next-token labels with masked positions at the ignore index, cross-entropy on
//! fp32 logits summed over tokens, optional z-loss, both divided by the rank batch's loss-token count.
//! Training (the train module) and evaluation (the evaluators) both use it, so it sits below both.
//!
//! Training computes it in chunks of rows ([`chunked`], "fused linear cross-entropy"): for each chunk the
//! logits are formed, reduced to the loss, and turned into their gradient at once, so the
//! `[tokens, vocab]` logits (800 MiB for 2048 tokens of a 100k vocabulary) never exist whole. The value
//! is the same sum.
mod chunked;
#[cfg(test)]
mod tests;

use tch::{Kind, Reduction, Tensor};

use chunked::chunk_rows;
pub use chunked::{lm_loss_chunked, HeadScratch};

/// Up to this many logits the loss goes through autograd on whole logits, as OLMo-core's graph does.
const AUTOGRAD_MAX_ELEMENTS: i64 = 16 << 20;

/// `get_labels`: copy the ids, blank out masked tokens and masked instances, shift left by one.
pub fn labels(
    input_ids: &Tensor,
    label_mask: Option<&Tensor>,
    instance_mask: Option<&Tensor>,
    ignore: i64,
) -> Tensor {
    let mut labels = input_ids.copy();
    if let Some(m) = label_mask {
        labels = labels.masked_fill(&m.logical_not(), ignore);
    }
    if let Some(m) = instance_mask {
        labels = labels.masked_fill(&m.logical_not().unsqueeze(-1), ignore);
    }
    let b = labels.size()[0];
    let pad = Tensor::full([b, 1], ignore, (Kind::Int64, labels.device()));
    Tensor::cat(&[&labels.narrow(1, 1, labels.size()[1] - 1), &pad], 1)
}

pub struct LossParts {
    /// Back-propagating this gives the loss's gradients (it is not the loss value).
    pub backward: Tensor,
    /// Cross-entropy, detached, already divided.
    pub ce: Tensor,
    /// Z-loss, detached, already divided (when enabled).
    pub z: Option<Tensor>,
}

/// How the LM loss is computed: the label to skip, the z-loss weight, and the dtype of the LM head's
/// matrix products (`Some(BFloat16)` under bf16 autocast; fp32 otherwise).
#[derive(Debug, Clone, Copy)]
pub struct LossSettings {
    pub ignore: i64,
    pub z_loss_multiplier: Option<f64>,
    pub head_kind: Option<Kind>,
}

/// Summed CE (and `z_loss_multiplier * logsumexp^2`) over `labels != ignore`, divided by `div`, for
/// hidden states `h` `[B, T, d]` and the LM head weight `w` `[vocab, d]`. Small enough logits go
/// through autograd exactly as OLMo-core's graph does; larger ones are chunked through `scratch`.
pub fn lm_loss(
    h: &Tensor,
    w: &Tensor,
    labels: &Tensor,
    div: &Tensor,
    s: &LossSettings,
    scratch: &mut HeadScratch,
) -> LossParts {
    let tokens = labels.numel() as i64;
    if tokens * w.size()[0] <= AUTOGRAD_MAX_ELEMENTS {
        return lm_loss_autograd(h, w, labels, s.ignore, s.z_loss_multiplier, div);
    }
    let rows = chunk_rows(h.size()[2], w.size()[0], h.device());
    lm_loss_chunked(h, w, labels, div, rows, s, scratch)
}

/// The loss through autograd on full logits (OLMo-core's computation graph).
fn lm_loss_autograd(
    h: &Tensor,
    w: &Tensor,
    labels: &Tensor,
    ignore: i64,
    z_loss_multiplier: Option<f64>,
    div: &Tensor,
) -> LossParts {
    let logits = h.linear::<Tensor>(w, None);
    let vocab = logits.size()[2];
    let flat_logits = logits.to_kind(Kind::Float).view([-1, vocab]);
    let flat_labels = labels.view([-1]);
    let ce =
        flat_logits.cross_entropy_loss::<Tensor>(&flat_labels, None, Reduction::Sum, ignore, 0.0)
            / div;
    let z = z_loss_multiplier.map(|m| {
        let valid = flat_labels.ne(ignore).to_kind(Kind::Float);
        (flat_logits.logsumexp([-1], false).square() * valid).sum(Kind::Float) * m / div
    });
    let backward = match &z {
        Some(z) => &ce + z,
        None => ce.shallow_clone(),
    };
    LossParts {
        backward,
        ce: ce.detach(),
        z: z.map(|z| z.detach()),
    }
}

/// Per-token CE `[B, T]` (0 where ignored) for evaluation from the final hidden states `h` `[B, T, d]`
/// and the head `w`, with the head's products in `head_kind` (bf16 under the run's autocast, as
/// OLMo-core evaluates inside its train module's autocast). Small fp32 logits are formed whole, as the
/// model's forward would; otherwise a chunk of rows at a time (the training chunk size), so the
/// `[B, T, vocab]` logits never exist whole.
pub fn eval_token_losses(
    h: &Tensor,
    w: &Tensor,
    labels: &Tensor,
    ignore: i64,
    head_kind: Option<Kind>,
) -> Tensor {
    let kind = head_kind.unwrap_or(Kind::Float);
    let (d, vocab) = (h.size()[2], w.size()[0]);
    if kind == Kind::Float && labels.numel() as i64 * vocab <= AUTOGRAD_MAX_ELEMENTS {
        return token_losses(&h.linear::<Tensor>(w, None), labels, ignore);
    }
    let hf = h.view([-1, d]);
    let flat_labels = labels.view([-1]);
    let n = hf.size()[0];
    let rows = chunk_rows(d, vocab, h.device()).min(n.max(1));
    let wt = w.to_kind(kind).tr();
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = rows.min(n - start);
        let hc = hf.narrow(0, start, len).to_kind(kind);
        // torch's fp32-output products of bf16 operands exist for CUDA only.
        let logits = match kind != Kind::Float && h.device().is_cuda() {
            true => hc.mm_dtype(&wt, Kind::Float),
            false => hc.mm(&wt).to_kind(Kind::Float),
        };
        let lab = flat_labels.narrow(0, start, len);
        out.push(logits.cross_entropy_loss::<Tensor>(&lab, None, Reduction::None, ignore, 0.0));
        start += len;
    }
    Tensor::cat(&out, 0).view_as(labels)
}

/// Per-token CE `[B, T]` (0 where ignored) for evaluation, from full logits.
pub fn token_losses(logits: &Tensor, labels: &Tensor, ignore: i64) -> Tensor {
    let vocab = logits.size()[2];
    let flat = logits.to_kind(Kind::Float).view([-1, vocab]);
    flat.cross_entropy_loss::<Tensor>(&labels.view([-1]), None, Reduction::None, ignore, 0.0)
        .view_as(labels)
}
