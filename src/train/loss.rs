//! Labels and the language-modeling loss as OLMo-core computes them (`get_labels`, the LM head's
//! `cross_entropy_loss`): next-token labels with masked positions at the ignore index, cross-entropy on
//! fp32 logits summed over tokens, optional z-loss, both divided by the rank batch's loss-token count.
//!
//! Training computes it in chunks of rows ("fused linear cross-entropy"): for each chunk the logits are
//! formed, reduced to the loss, and turned into their gradient at once, so the `[tokens, vocab]` logits
//! (800 MiB for 2048 tokens of a 100k vocabulary) never exist whole. The value is the same sum.
use tch::{Device, Kind, Reduction, Tensor};

/// Rows per chunk, in two regimes (measured on 2 cores at the dolma2 vocabulary). While twice the
/// model width in rows fits in `CACHED_CHUNK_BYTES`, the chunk stays that small, so the softmax and the
/// two products that follow the one writing it re-read it from cache: olmo2_1M (d 12) runs 24 rows,
/// 10% faster than 48 and 40% faster than 167. Wider models' chunks stream from memory whatever their
/// size, so they take the largest chunk allowed, which spreads the per-call packing of `W` in the
/// matrix products over more rows: olmo2_14M (d 128) trained 2-6% faster at ~500 rows than at 256 in
/// two interleaved A/B runs (the head's loop alone, replayed in torch: 0.99 s -> 0.92 s a step), for
/// about 50-150 MB more peak memory. Between d 20 and d 128 the boundary is unmeasured.
fn chunk_rows(d_model: i64, vocab: i64) -> i64 {
    let cached = (2 * d_model).max(16);
    let rows = if cached * vocab * 4 <= CACHED_CHUNK_BYTES {
        cached
    } else {
        MAX_CHUNK_ELEMENTS / vocab
    };
    rows.min(MAX_CHUNK_ELEMENTS / vocab).max(1)
}

/// Logits a chunk may hold: 48 M (192 MiB of fp32; ~500 rows at a 100k vocabulary).
const MAX_CHUNK_ELEMENTS: i64 = 48 << 20;

/// A chunk this small (half this machine's L3) stays in cache between the passes over it.
const CACHED_CHUNK_BYTES: i64 = 16 << 20;

/// Up to this many logits the loss goes through autograd on whole logits, as OLMo-core's graph does.
const AUTOGRAD_MAX_ELEMENTS: i64 = 16 << 20;

/// The chunk-sized buffer the chunked loss writes each chunk's logits into and turns, in place, into
/// probabilities; kept across chunks and steps, so no chunk allocates and faults in a fresh block (with
/// 64 MiB chunks that was a quarter of the head's time in a torch experiment; at today's cache-sized
/// chunks it matters less, but costs nothing).
#[derive(Default)]
pub struct HeadScratch {
    logits: Option<Tensor>,
}

impl HeadScratch {
    /// A `[rows, vocab]` fp32 view of the buffer, (re)allocated only when too small or elsewhere.
    fn buffer(&mut self, rows: i64, vocab: i64, device: Device) -> Tensor {
        match &self.logits {
            Some(t) if t.device() == device && t.size()[0] >= rows && t.size()[1] == vocab => {
                t.narrow(0, 0, rows)
            }
            _ => {
                let t = Tensor::empty([rows, vocab], (Kind::Float, device));
                self.logits = Some(t.shallow_clone());
                t
            }
        }
    }
}

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
    let rows = chunk_rows(h.size()[2], w.size()[0]);
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

/// The same loss and gradients, `chunk_rows` rows of logits at a time.
///
/// Per chunk of rows with logits `x`, `P = softmax(x)`, one-hot labels `E` and the row weight
/// `a = valid (1 + 2 m lse) / div`, the logits' gradient is `G = diag(a) (P - diag(c) E)` with
/// `c = 1 / (1 + 2 m lse)` (1 without z-loss: torch's `softmax - onehot`). `P - diag(c) E` is made in
/// place (one element a row) and `a` is applied to the small operands: `G W = a * (P' W)` and
/// `G^T h = P'^T (a * h)`. So the `[rows, vocab]` block sees the product that writes `x`, a max, one
/// in-place softmax, a max of that and the two products that read it, and every reduction is a matrix
/// product (deterministic on GPUs too, unlike a scatter-add of rows into the weight's gradient).
pub fn lm_loss_chunked(
    h: &Tensor,
    w: &Tensor,
    labels: &Tensor,
    div: &Tensor,
    chunk_rows: i64,
    s: &LossSettings,
    scratch: &mut HeadScratch,
) -> LossParts {
    let (ignore, z_loss_multiplier) = (s.ignore, s.z_loss_multiplier);
    let d = h.size()[2];
    let vocab = w.size()[0];
    let hf = h.view([-1, d]);
    let flat_labels = labels.view([-1]);
    let n = hf.size()[0];
    let rows = chunk_rows.max(1).min(n);
    let device = h.device();
    let mut ce = Tensor::zeros([], (Kind::Float, device));
    let mut z = Tensor::zeros([], (Kind::Float, device));
    let mut grad_h = Vec::new();
    let mut grad_w = Tensor::zeros([vocab, d], (Kind::Float, device));
    // Under bf16 autocast the head's three products run in bf16 (as autocast would run them) while the
    // softmax, the loss and the accumulated gradients stay fp32.
    let bf16 = s.head_kind.filter(|k| *k != Kind::Float);
    tch::no_grad(|| {
        let hd = hf.detach().to_kind(Kind::Float);
        let wf = w.detach().to_kind(Kind::Float);
        let wm = bf16.map(|k| wf.to_kind(k));
        let buf = scratch.buffer(rows, vocab, device);
        let mut start = 0;
        while start < n {
            let len = rows.min(n - start);
            let hc = hd.narrow(0, start, len);
            let lab = flat_labels.narrow(0, start, len);
            let target = lab.clamp_min(0);
            let validf = lab.ne(ignore).to_kind(Kind::Float);
            let mut x = buf.narrow(0, 0, len);
            match (&wm, bf16) {
                (Some(wm), Some(k)) => {
                    x.copy_(&hc.to_kind(k).mm(&wm.tr()));
                }
                _ => {
                    let _ = hc.mm_out(&x, &wf.tr());
                }
            }
            let x_y = x.gather(1, &target.unsqueeze(1), false).squeeze_dim(1);
            let x_max = x.amax([-1], false);
            // In place: torch's softmax reads each element before it writes it (the row's max, then
            // exp and sum into the output, then the scale). It costs a third of a log-softmax + exp.
            let mut p = x.softmax_int_out(&x, -1, None);
            // The row's largest probability is exp(0) / sum, so logsumexp = max - log(that): exact to
            // rounding, and unlike -log(p_y) it cannot underflow for a label far below the max.
            let lse = &x_max - p.amax([-1], false).log();
            // CE as F.cross_entropy(reduction="sum", ignore_index) computes it: lse - x_y.
            ce += ((&lse - x_y) * &validf).sum(Kind::Float);
            // Row weight `a` and the share `c` of it that the label's one-hot carries.
            let (a, c) = match z_loss_multiplier {
                Some(m) => {
                    z += (lse.square() * &validf).sum(Kind::Float);
                    let factor = lse * (2.0 * m) + 1.0;
                    (&validf * &factor / div, &validf / factor)
                }
                None => (&validf / div, validf.shallow_clone()),
            };
            let _ = p.scatter_add_(1, &target.unsqueeze(1), &(-c).unsqueeze(1));
            let a_col = a.unsqueeze(1);
            let ah = &hc * &a_col;
            match (&wm, bf16) {
                (Some(wm), Some(k)) => {
                    let pm = p.to_kind(k);
                    grad_h.push(pm.mm(wm).to_kind(Kind::Float) * &a_col);
                    grad_w += pm.tr().mm(&ah.to_kind(k)).to_kind(Kind::Float);
                }
                _ => {
                    grad_h.push(p.mm(&wf) * &a_col);
                    let _ = grad_w.addmm_(&p.tr(), &ah);
                }
            }
            start += len;
        }
    });
    let grad_h = Tensor::cat(&grad_h, 0).view_as(h).to_kind(h.kind());
    let grad_w = grad_w.to_kind(w.kind());
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

    /// Narrow models keep cache-sized chunks, wide ones the largest allowed; a vocabulary wider than
    /// the cap still gets one row a chunk.
    #[test]
    fn chunk_rows_follow_the_cache_and_the_cap() {
        assert_eq!(chunk_rows(12, 100_352), 24);
        assert_eq!(chunk_rows(128, 100_352), MAX_CHUNK_ELEMENTS / 100_352);
        assert_eq!(chunk_rows(2048, 100_352), MAX_CHUNK_ELEMENTS / 100_352);
        assert_eq!(chunk_rows(4, 1000), 16);
        assert_eq!(chunk_rows(8, 1 << 30), 1);
    }

    /// Which implementation a test runs.
    enum Path<'a> {
        Autograd,
        Chunked(i64),
        /// `lm_loss`, which picks the path and chunk size itself.
        Entry(&'a mut HeadScratch),
    }

    /// Runs the loss on fresh leaf copies of `h0` and `w0` and back-propagates it: CE, z-loss and the
    /// gradients of h and w.
    fn loss_and_grads(
        h0: &Tensor,
        w0: &Tensor,
        lab: &Tensor,
        div: &Tensor,
        s: &LossSettings,
        path: Path,
    ) -> (f64, Option<f64>, Tensor, Tensor) {
        let h = h0.copy().set_requires_grad(true);
        let w = w0.copy().set_requires_grad(true);
        let parts = match path {
            Path::Autograd => lm_loss_autograd(&h, &w, lab, s.ignore, s.z_loss_multiplier, div),
            Path::Chunked(rows) => {
                lm_loss_chunked(&h, &w, lab, div, rows, s, &mut HeadScratch::default())
            }
            Path::Entry(scratch) => lm_loss(&h, &w, lab, div, s, scratch),
        };
        parts.backward.backward();
        let value = |t: &Tensor| t.double_value(&[]);
        (
            value(&parts.ce),
            parts.z.as_ref().map(value),
            h.grad(),
            w.grad(),
        )
    }

    fn fp32(z_loss_multiplier: Option<f64>) -> LossSettings {
        LossSettings {
            ignore: -100,
            z_loss_multiplier,
            head_kind: None,
        }
    }

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
            let run = |path| loss_and_grads(&h0, &w0, &lab, &div, &fp32(z), path);
            let (ce_a, z_a, gh_a, gw_a) = run(Path::Autograd);
            let (ce_c, z_c, gh_c, gw_c) = run(Path::Chunked(3));
            // Only the summation order differs: a few ulps of a value near 8.
            assert!((ce_a - ce_c).abs() < 1e-5);
            if let (Some(a), Some(c)) = (z_a, z_c) {
                assert!((a - c).abs() < 1e-6);
            }
            assert!(gh_a.allclose(&gh_c, 1e-5, 1e-7, false));
            assert!(gw_a.allclose(&gw_c, 1e-5, 1e-7, false));
        }
    }

    /// A label whose logit lies far below the row's max (its probability underflows fp32) still gets
    /// the exact cross-entropy and gradients, not an infinity.
    #[test]
    fn labels_with_underflowing_probabilities_keep_a_finite_exact_loss() {
        let h0 = Tensor::ones([1, 4, 8], (Kind::Float, tch::Device::Cpu));
        let w0 = Tensor::randn([37, 8], (Kind::Float, tch::Device::Cpu));
        let _ = w0.get(0).fill_(30.0); // token 0's logit is 240, about 240 above the others
        let lab = Tensor::from_slice(&[3i64, 5, 0, 7]).view([1, 4]);
        let div = Tensor::from(4.0f32);
        let run = |path| loss_and_grads(&h0, &w0, &lab, &div, &fp32(None), path);
        let (ce_a, _, gh_a, gw_a) = run(Path::Autograd);
        let (ce_c, _, gh_c, gw_c) = run(Path::Chunked(3));
        assert!(
            ce_a > 150.0 && (ce_a - ce_c).abs() < 1e-3 * ce_a,
            "{ce_a} vs {ce_c}"
        );
        assert!(gh_a.allclose(&gh_c, 1e-5, 1e-6, false));
        assert!(gw_a.allclose(&gw_c, 1e-5, 1e-6, false));
    }

    /// Through the public entry: a dolma2-sized vocabulary is chunked (rows from the model width), one
    /// buffer serves consecutive calls of different lengths, and values and gradients equal autograd's.
    #[test]
    fn large_vocabularies_are_chunked_with_one_reused_buffer() {
        tch::manual_seed(5);
        let vocab = 100_352;
        let settings = fp32(Some(1e-4));
        let mut scratch = HeadScratch::default();
        let w0 = Tensor::randn([vocab, 8], (Kind::Float, tch::Device::Cpu)) * 0.5;
        for tokens in [200, 170] {
            assert!(tokens * vocab > AUTOGRAD_MAX_ELEMENTS && chunk_rows(8, vocab) < tokens);
            let h0 = Tensor::randn([1, tokens, 8], (Kind::Float, tch::Device::Cpu));
            let lab = Tensor::randint(vocab, [1, tokens], (Kind::Int64, tch::Device::Cpu));
            let _ = lab.get(0).get(7).fill_(-100);
            let div = lab.ne(-100).sum(Kind::Float);
            let run = |path| loss_and_grads(&h0, &w0, &lab, &div, &settings, path);
            let (ce_a, z_a, gh_a, gw_a) = run(Path::Autograd);
            let (ce_c, z_c, gh_c, gw_c) = run(Path::Entry(&mut scratch));
            assert!((ce_a - ce_c).abs() < 1e-5);
            assert!((z_a.unwrap() - z_c.unwrap()).abs() < 1e-8);
            assert!(gh_a.allclose(&gh_c, 1e-4, 1e-7, false));
            assert!(gw_a.allclose(&gw_c, 1e-4, 1e-9, false));
        }
        let buffer = scratch.logits.as_ref().map(|t| t.size());
        assert_eq!(buffer, Some(vec![chunk_rows(8, vocab), vocab]));
    }

    #[test]
    fn bf16_head_products_stay_close_to_fp32_and_keep_fp32_gradients() {
        tch::manual_seed(4);
        let h0 = Tensor::randn([2, 6, 16], (Kind::Float, tch::Device::Cpu));
        let w0 = Tensor::randn([64, 16], (Kind::Float, tch::Device::Cpu)) * 0.1;
        let lab = Tensor::randint(64, [2, 6], (Kind::Int64, tch::Device::Cpu));
        let div = lab.ne(-100).sum(Kind::Float);
        let run = |kind: Option<Kind>| {
            let settings = LossSettings {
                head_kind: kind,
                ..fp32(Some(1e-4))
            };
            let (ce, _, gh, gw) = loss_and_grads(&h0, &w0, &lab, &div, &settings, Path::Chunked(5));
            (ce, gh, gw)
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
