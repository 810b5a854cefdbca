//! The LM loss and its gradients a chunk of rows at a time, through one reused logits buffer: the
//! `[tokens, vocab]` logits and their gradient never exist whole.
use tch::{Device, Kind, Tensor};

use super::{LossParts, LossSettings};

/// Rows per chunk. On a GPU, as many as `GPU_CHUNK_ELEMENTS` logits allow: the chunk's products are then
/// large enough to keep the GPU's tensor cores busy and the loop launches few kernels. On a CPU, two
/// regimes (measured on 2 cores at the dolma2 vocabulary). While twice the
/// model width in rows fits in `CACHED_CHUNK_BYTES`, the chunk stays that small, so the softmax and the
/// two products that follow the one writing it re-read it from cache: olmo2_1M (d 12) runs 24 rows,
/// 10% faster than 48 and 40% faster than 167. Wider models' chunks stream from memory whatever their
/// size, so they take the largest chunk allowed, which spreads the per-call packing of `W` in the
/// matrix products over more rows: olmo2_14M (d 128) trained 2-6% faster at ~500 rows than at 256 in
/// two interleaved A/B runs (the head's loop alone, replayed in torch: 0.99 s -> 0.92 s a step), for
/// about 50-150 MB more peak memory. Between d 20 and d 128 the boundary is unmeasured.
pub(super) fn chunk_rows(d_model: i64, vocab: i64, device: Device) -> i64 {
    if device.is_cuda() {
        return (GPU_CHUNK_ELEMENTS / vocab).max(1);
    }
    let cached = (2 * d_model).max(16);
    let rows = if cached * vocab * 4 <= CACHED_CHUNK_BYTES {
        cached
    } else {
        MAX_CHUNK_ELEMENTS / vocab
    };
    rows.min(MAX_CHUNK_ELEMENTS / vocab).max(1)
}

/// Logits a chunk may hold: 48 M (192 MiB of fp32; ~500 rows at a 100k vocabulary).
pub(super) const MAX_CHUNK_ELEMENTS: i64 = 48 << 20;

/// Logits a chunk may hold on a GPU: 256 M (1 GiB of fp32; ~2,600 rows at a 100k vocabulary).
pub(super) const GPU_CHUNK_ELEMENTS: i64 = 256 << 20;

/// A chunk this small (half this machine's L3) stays in cache between the passes over it.
const CACHED_CHUNK_BYTES: i64 = 16 << 20;

/// The chunk-sized buffer the chunked loss writes each chunk's logits into and turns, in place, into
/// probabilities; kept across chunks and steps, so no chunk allocates and faults in a fresh block (with
/// 64 MiB chunks that was a quarter of the head's time in a torch experiment; at today's cache-sized
/// chunks it matters less, but costs nothing).
#[derive(Default)]
pub struct HeadScratch {
    logits: Option<Tensor>,
}

impl HeadScratch {
    /// The buffer's `[rows, vocab]` shape, once allocated.
    pub fn buffer_size(&self) -> Option<Vec<i64>> {
        self.logits.as_ref().map(|t| t.size())
    }

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

/// The same loss and gradients, `chunk_rows` rows of logits at a time.
///
/// Per chunk of rows with logits `x`, `P = softmax(x)`, one-hot labels `E` and the row weight
/// `a = valid (1 + 2 m lse) / div`, the logits' gradient is `G = diag(a) (P - diag(c) E)` with
/// `c = 1 / (1 + 2 m lse)` (1 without z-loss: torch's `softmax - onehot`). `P - diag(c) E` is made in
/// place (one element a row) and `a` is applied to the small operands: `G W = a * (P' W)` and
/// `G^T h = P'^T (a * h)`. So the `[rows, vocab]` block sees the product that writes `x`, a max, one
/// in-place softmax, a max of that and the two products that read it, and every reduction is a matrix
/// product (deterministic on GPUs too, unlike a scatter-add of rows into the weight's gradient). On a
/// GPU under bf16 the products write fp32 directly (cuBLAS accumulates in fp32 and the weight's gradient
/// is summed in place), so no bf16 `[rows, vocab]` or `[vocab, d]` intermediate is made and converted.
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
    // torch has the mixed-precision products (`out_dtype`) for CUDA only.
    let gpu = device.is_cuda();
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
                (Some(wm), Some(k)) if gpu => {
                    let _ = hc.to_kind(k).mm_dtype_out(&x, &wm.tr(), Kind::Float);
                }
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
                (Some(wm), Some(k)) if gpu => {
                    let pm = p.to_kind(k);
                    grad_h.push(pm.mm_dtype(wm, Kind::Float) * &a_col);
                    let _ = grad_w.addmm_dtype_out(&grad_w, &pm.tr(), &ah.to_kind(k), Kind::Float);
                }
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
