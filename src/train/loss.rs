//! Labels and the language-modeling loss as OLMo-core computes them (`get_labels`, the LM head's
//! `cross_entropy_loss`): next-token labels with masked positions at the ignore index, cross-entropy on
//! fp32 logits summed over tokens, optional z-loss, both divided by the rank batch's loss-token count.
//!
//! Training computes it in chunks of rows ("fused linear cross-entropy"): for each chunk the logits are
//! formed, reduced to the loss, and turned into their gradient at once, so the `[tokens, vocab]` logits
//! (800 MiB for 2048 tokens of a 100k vocabulary) never exist whole. The value is the same sum.
use tch::{Kind, Reduction, Tensor};

/// Rows per chunk: about 16 M logits (64 MiB of fp32) at a time.
const CHUNK_ELEMENTS: i64 = 1 << 24;

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
/// through autograd exactly as OLMo-core's graph does; larger ones are chunked.
pub fn lm_loss(
    h: &Tensor,
    w: &Tensor,
    labels: &Tensor,
    div: &Tensor,
    s: &LossSettings,
) -> LossParts {
    let tokens = labels.numel() as i64;
    if tokens * w.size()[0] <= CHUNK_ELEMENTS {
        return lm_loss_autograd(h, w, labels, s.ignore, s.z_loss_multiplier, div);
    }
    lm_loss_chunked(h, w, labels, div, CHUNK_ELEMENTS, s)
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

/// The same loss and gradients, `chunk_elements` logits at a time.
pub fn lm_loss_chunked(
    h: &Tensor,
    w: &Tensor,
    labels: &Tensor,
    div: &Tensor,
    chunk_elements: i64,
    s: &LossSettings,
) -> LossParts {
    let (ignore, z_loss_multiplier, head_kind) = (s.ignore, s.z_loss_multiplier, s.head_kind);
    let d = h.size()[2];
    let vocab = w.size()[0];
    let hf = h.view([-1, d]);
    let flat_labels = labels.view([-1]);
    let n = hf.size()[0];
    let rows = (chunk_elements / vocab).max(1);
    let device = h.device();
    let mut ce = Tensor::zeros([], (Kind::Float, device));
    let mut z = Tensor::zeros([], (Kind::Float, device));
    let mut grad_h = Vec::new();
    let mut grad_w = Tensor::zeros_like(w);
    // Under bf16 autocast the head's three products run in bf16 (as autocast would run them) while the
    // softmax, the loss and the accumulated gradients stay fp32.
    let mm = head_kind.unwrap_or(Kind::Float);
    tch::no_grad(|| {
        let hd = hf.detach();
        let wd = w.detach();
        let wf = wd.to_kind(Kind::Float);
        let wm = wd.to_kind(mm);
        let mut start = 0;
        while start < n {
            let len = rows.min(n - start);
            let hc = hd.narrow(0, start, len);
            let lab = flat_labels.narrow(0, start, len);
            let valid = lab.ne(ignore);
            let validf = valid.to_kind(Kind::Float);
            // One logits-sized buffer per chunk, transformed in place into the gradient: every extra
            // temporary of this size costs a pass over memory and, with its odd neighbours, heap
            // fragmentation that showed up as 1 GiB of extra peak RSS on olmo2_14M.
            let hm = hc.to_kind(mm);
            let mut logits = hm.linear::<Tensor>(&wm, None).to_kind(Kind::Float);
            let lse = logits.logsumexp([-1], false);
            // CE as F.cross_entropy(reduction="sum", ignore_index) computes it: lse - x_y per valid row.
            let target = lab.clamp_min(0).unsqueeze(1);
            let picked = logits.gather(1, &target, false).squeeze_dim(1);
            ce += ((&lse - picked) * &validf).sum(Kind::Float);
            // d(lse - x_y)/dx = softmax - onehot(y); d(m lse^2)/dx = 2 m lse softmax; rows of ignored labels get 0.
            let mut scale = validf.shallow_clone();
            if let Some(m) = z_loss_multiplier {
                z += (lse.square() * &validf).sum(Kind::Float);
                scale = &scale * (lse.g_mul_scalar(2.0 * m) + 1.0);
            }
            let _ = logits.g_sub_(&lse.unsqueeze(1));
            let _ = logits.exp_();
            let _ = logits.g_mul_(&(scale / div).unsqueeze(1));
            let _ = logits.scatter_add_(1, &target, &(-(&validf / div)).unsqueeze(1));
            let g = logits;
            if mm != Kind::Float {
                let gm = g.to_kind(mm);
                grad_h.push(gm.matmul(&wm).to_kind(hd.kind()));
                grad_w += gm.transpose(0, 1).matmul(&hm).to_kind(wd.kind());
            } else if wd.kind() == Kind::Float {
                grad_h.push(g.matmul(&wf).to_kind(hd.kind()));
                let _ = grad_w.addmm_(&g.transpose(0, 1), &hc);
            } else {
                grad_h.push(g.matmul(&wf).to_kind(hd.kind()));
                grad_w += g
                    .transpose(0, 1)
                    .matmul(&hc.to_kind(Kind::Float))
                    .to_kind(wd.kind());
            }
            start += len;
        }
    });
    let grad_h = Tensor::cat(&grad_h, 0).view_as(h);
    // Backward of sum(h * G) + sum(w * Gw) puts exactly G into h's graph and Gw into w.grad.
    let backward = (h * &grad_h).sum(Kind::Float) + (w * &grad_w).sum(Kind::Float);
    let z = z_loss_multiplier.map(|m| z * m / div);
    LossParts {
        backward,
        ce: ce / div,
        z,
    }
}

/// Per-token CE `[B, T]` (0 where ignored) for evaluation, from full logits.
pub fn token_losses(logits: &Tensor, labels: &Tensor, ignore: i64) -> Tensor {
    let vocab = logits.size()[2];
    let flat = logits.to_kind(Kind::Float).view([-1, vocab]);
    flat.cross_entropy_loss::<Tensor>(&labels.view([-1]), None, Reduction::None, ignore, 0.0)
        .view_as(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunked loss gives the autograd loss's value and gradients.
    #[test]
    fn chunked_equals_autograd() {
        tch::manual_seed(3);
        for z in [None, Some(1e-2)] {
            let h0 = Tensor::randn([2, 5, 8], (Kind::Float, tch::Device::Cpu));
            let w0 = Tensor::randn([37, 8], (Kind::Float, tch::Device::Cpu));
            let lab = Tensor::randint(37, [2, 5], (Kind::Int64, tch::Device::Cpu));
            let _ = lab.get(0).get(2).fill_(-100);
            let div = lab.ne(-100).sum(Kind::Float);
            let run = |chunked: bool| {
                let h = h0.copy().set_requires_grad(true);
                let w = w0.copy().set_requires_grad(true);
                let parts = if chunked {
                    lm_loss_chunked(
                        &h,
                        &w,
                        &lab,
                        &div,
                        37 * 3,
                        &LossSettings {
                            ignore: -100,
                            z_loss_multiplier: z,
                            head_kind: None,
                        },
                    )
                } else {
                    lm_loss_autograd(&h, &w, &lab, -100, z, &div)
                };
                parts.backward.backward();
                (parts.ce, parts.z, h.grad(), w.grad())
            };
            let (ce_a, z_a, gh_a, gw_a) = run(false);
            let (ce_c, z_c, gh_c, gw_c) = run(true);
            // Only the summation order differs: a few ulps of a value near 8.
            assert!((ce_a - ce_c).abs().double_value(&[]) < 1e-5);
            if let (Some(a), Some(c)) = (z_a, z_c) {
                assert!((a - c).abs().double_value(&[]) < 1e-6);
            }
            assert!(gh_a.allclose(&gh_c, 1e-5, 1e-7, false));
            assert!(gw_a.allclose(&gw_c, 1e-5, 1e-7, false));
        }
    }

    #[test]
    fn bf16_head_products_stay_close_to_fp32_and_keep_fp32_gradients() {
        tch::manual_seed(4);
        let h0 = Tensor::randn([2, 6, 16], (Kind::Float, tch::Device::Cpu));
        let w0 = Tensor::randn([64, 16], (Kind::Float, tch::Device::Cpu)) * 0.1;
        let lab = Tensor::randint(64, [2, 6], (Kind::Int64, tch::Device::Cpu));
        let div = lab.ne(-100).sum(Kind::Float);
        let run = |kind: Option<Kind>| {
            let h = h0.copy().set_requires_grad(true);
            let w = w0.copy().set_requires_grad(true);
            let settings = LossSettings {
                ignore: -100,
                z_loss_multiplier: Some(1e-4),
                head_kind: kind,
            };
            let parts = lm_loss_chunked(&h, &w, &lab, &div, 64 * 5, &settings);
            parts.backward.backward();
            (parts.ce.double_value(&[]), h.grad(), w.grad())
        };
        let (ce32, gh32, gw32) = run(None);
        let (ce16, gh16, gw16) = run(Some(Kind::BFloat16));
        assert_eq!((gh16.kind(), gw16.kind()), (Kind::Float, Kind::Float));
        assert!((ce32 - ce16).abs() < 1e-2 * ce32, "{ce32} vs {ce16}");
        assert!(gh32.allclose(&gh16, 5e-2, 1e-3, false));
        assert!(gw32.allclose(&gw16, 5e-2, 1e-3, false));
        // bf16 really was used: the results are not bit-identical.
        assert!(!gw32.equal(&gw16));
    }
}
