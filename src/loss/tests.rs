//! The chunked loss against autograd on whole logits, values and gradients.
use tch::Device;

use super::chunked::{chunk_rows, GPU_CHUNK_ELEMENTS, MAX_CHUNK_ELEMENTS};
use super::*;

/// Narrow models keep cache-sized chunks, wide ones the largest allowed; a vocabulary wider than
/// the cap still gets one row a chunk.
#[test]
fn chunk_rows_follow_the_cache_and_the_cap() {
    assert_eq!(chunk_rows(12, 100_352, Device::Cpu), 24);
    assert_eq!(
        chunk_rows(128, 100_352, Device::Cpu),
        MAX_CHUNK_ELEMENTS / 100_352
    );
    assert_eq!(
        chunk_rows(2048, 100_352, Device::Cpu),
        MAX_CHUNK_ELEMENTS / 100_352
    );
    assert_eq!(chunk_rows(4, 1000, Device::Cpu), 16);
    assert_eq!(chunk_rows(8, 1 << 30, Device::Cpu), 1);
    // A GPU takes large chunks whatever the width: 2,674 rows of the dolma2 vocabulary.
    for d in [12, 2048] {
        assert_eq!(
            chunk_rows(d, 100_352, Device::Cuda(0)),
            GPU_CHUNK_ELEMENTS / 100_352
        );
    }
    assert_eq!(chunk_rows(8, 1 << 30, Device::Cuda(0)), 1);
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
        assert!(
            tokens * vocab > AUTOGRAD_MAX_ELEMENTS && chunk_rows(8, vocab, Device::Cpu) < tokens
        );
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
    let buffer = scratch.buffer_size();
    assert_eq!(buffer, Some(vec![chunk_rows(8, vocab, Device::Cpu), vocab]));
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

/// Evaluation's per-token losses: a vocabulary too large for whole logits goes a chunk of rows at a
/// time and gives the whole-logits values; under bf16 the head's products stay close to fp32.
#[test]
fn eval_token_losses_chunked_equal_whole_logits() {
    tch::manual_seed(6);
    let vocab = 100_352;
    let (b, t) = (2, 100);
    assert!(b * t * vocab > AUTOGRAD_MAX_ELEMENTS && chunk_rows(8, vocab, Device::Cpu) < b * t);
    let w = Tensor::randn([vocab, 8], (Kind::Float, Device::Cpu)) * 0.5;
    let h = Tensor::randn([b, t, 8], (Kind::Float, Device::Cpu));
    let lab = Tensor::randint(vocab, [b, t], (Kind::Int64, Device::Cpu));
    let _ = lab.get(1).get(3).fill_(-100);
    let whole = token_losses(&h.linear::<Tensor>(&w, None), &lab, -100);
    let chunked = eval_token_losses(&h, &w, &lab, -100, None);
    assert_eq!(chunked.size(), vec![b, t]);
    assert!(chunked.allclose(&whole, 1e-5, 1e-5, false));
    assert_eq!(chunked.double_value(&[1, 3]), 0.0);
    let bf16 = eval_token_losses(&h, &w, &lab, -100, Some(Kind::BFloat16));
    assert_eq!(bf16.kind(), Kind::Float);
    let rel =
        ((&bf16 - &whole).abs().sum(Kind::Float) / whole.abs().sum(Kind::Float)).double_value(&[]);
    assert!(
        rel > 0.0 && rel < 1e-2,
        "bf16 vs fp32 relative difference {rel}"
    );
}
