//! Criterion micro-benchmarks of the hot paths: instance fetch and batch assembly from memory-mapped
//! token files, the epoch shuffle (numpy's PCG64 permutation), tokenization with the dolma2 preset, and
//! token record writing, and the chunked LM loss with its gradients (most of a tiny model's training step).
//! `cargo bench --bench hot_paths`; under `cargo test` each runs once as a check.
use std::hint::black_box;
use std::io::Read;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use olmo_train::data::batch::collate;
use olmo_train::data::dataset::{DatasetSpec, FslDataset};
use olmo_train::data::numpy_rng::shuffled_range;
use olmo_train::loss::{lm_loss, HeadScratch, LossSettings};
use olmo_train::token_dtype::TokenDType;
use olmo_train::tokenize::tokenizer::TextTokenizer;
use olmo_train::tokenize::writer::PartWriter;
use tch::{Device, Kind, Tensor};

const SEQ: u64 = 4096;
const INSTANCES: u64 = 64;

/// A token file of 256 instances of SEQ tokens in a temporary folder.
fn token_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("tokens.npy");
    let bytes: Vec<u8> = (0..256 * SEQ as u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761) % 100_000).to_le_bytes())
        .collect();
    std::fs::write(&path, bytes).expect("write token file");
    path
}

fn dataset(dir: &std::path::Path) -> FslDataset {
    let spec = DatasetSpec {
        paths: vec![token_file(dir)],
        label_mask_paths: None,
        dtype: TokenDType::Uint32,
        sequence_length: SEQ,
        vocab_size: 100_278,
        eos_token_id: 100_257,
        pad_token_id: 100_277,
        bos_token_id: None,
        instance_filter: None,
        generate_doc_lengths: false,
        work_dir: dir.join("work"),
    };
    FslDataset::fixed(spec, None).expect("dataset")
}

fn demo_text() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/kjv-validation.jsonl.gz"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("demo corpus"))
        .read_to_string(&mut text)
        .expect("gzip");
    text.chars().take(64 * 1024).collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ds = dataset(dir.path());
    let mut g = c.benchmark_group("data");
    g.throughput(Throughput::Elements(1));
    g.bench_function("instance fetch, seq 4096", |b| {
        let mut out = vec![0i64; SEQ as usize];
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 97) % ds.len();
            black_box(ds.read_into(i, &mut out).expect("read"));
        })
    });
    g.throughput(Throughput::Elements(INSTANCES));
    g.bench_function("batch assembly, 64 x 4096", |b| {
        let idx: Vec<u64> = (0..INSTANCES).map(|i| (i * 37) % ds.len()).collect();
        b.iter(|| black_box(collate(&ds, &idx).expect("collate")))
    });
    g.throughput(Throughput::Elements(1 << 20));
    g.bench_function("epoch shuffle, 1M instances", |b| {
        b.iter(|| black_box(shuffled_range(1 << 20, 1)))
    });
    g.finish();

    let text = demo_text();
    let tok = TextTokenizer::load("dolma2").expect("dolma2 preset");
    let mut g = c.benchmark_group("tokenize");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("dolma2 encode, 64 KiB", |b| {
        b.iter(|| black_box(tok.encode(&text, true).expect("encode")))
    });
    let tokens = tok.encode(&text, true).expect("encode");
    g.throughput(Throughput::Elements(tokens.len() as u64 * 16));
    g.bench_function("record writing, 16 documents", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("tempdir"),
            |staging| {
                let mut w = PartWriter::new(staging.path(), "part-0", TokenDType::Uint32, 1 << 30);
                for i in 0..16 {
                    w.write_document(&tokens, &format!("doc{i}"), "bench.jsonl", i)
                        .expect("write");
                }
                black_box(w.finish().expect("finish"));
                staging
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // The LM head's loss and gradients for one 2048-token micro-batch of a dolma2-vocabulary model, as
    // `train_batch` runs it (forward products, softmax, the two gradient products, and the
    // autograd step that hands the gradients over).
    let mut g = c.benchmark_group("train");
    g.sample_size(10);
    g.throughput(Throughput::Elements(2048));
    let vocab = 100_352;
    for d in [12, 128] {
        let h = Tensor::randn([8, 256, d], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let w =
            (Tensor::randn([vocab, d], (Kind::Float, Device::Cpu)) * 0.02).set_requires_grad(true);
        let labels = Tensor::randint(vocab, [8, 256], (Kind::Int64, Device::Cpu));
        let div = Tensor::from(2048f32);
        let settings = LossSettings {
            ignore: -100,
            z_loss_multiplier: Some(1e-5),
            head_kind: None,
        };
        let mut scratch = HeadScratch::default();
        g.bench_function(
            format!("LM loss + gradients, 2048 tokens, d_model {d}"),
            |b| {
                b.iter(|| {
                    let parts = lm_loss(&h, &w, &labels, &div, &settings, &mut scratch);
                    parts.backward.backward();
                    black_box(parts.ce)
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
