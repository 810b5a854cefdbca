//! `olmo-train generate`: greedy decoding equals transformers' `generate(do_sample=False)` on the tiny
//! Olmo2 and Llama (GQA) models of tests/fixtures/hf (fixture from scripts/reference/generate_fixtures.py),
//! one prompt at a time and batched with left padding; cached decoding gives the logits of a full
//! forward (also with sliding windows); and the command's output and errors.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use olmo_train::checkpoint::{hf::from_hf, load_trained_model};
use olmo_train::config::factories::build_factory;
use olmo_train::config::model::SlidingWindowAttentionConfig;
use olmo_train::generate::cached_forward::forward_step;
use olmo_train::generate::kv_cache::KvCache;
use olmo_train::generate::{generate, GenerateOptions, Sampling};
use olmo_train::model::transformer::Transformer;
use tch::{Device, Kind, Tensor};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn converted(name: &str, dir: &Path) -> PathBuf {
    let out = dir.join(name);
    from_hf(
        &Path::new(ROOT).join("tests/fixtures/hf").join(name),
        &out,
        None,
    )
    .unwrap()
}

fn greedy(n: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: n,
        sampling: Sampling::GREEDY,
        seed: 0,
        eos_token_id: None,
        kind: Kind::Float,
    }
}

#[test]
fn greedy_generation_equals_transformers_one_at_a_time_and_batched() {
    tch::set_num_threads(1);
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/tests/fixtures/generate/expected.json")).unwrap(),
    )
    .unwrap();
    let n = expected["max_new_tokens"].as_u64().unwrap() as usize;
    let dir = tempfile::tempdir().unwrap();
    for name in ["olmo2", "llama2"] {
        let trained = load_trained_model(&converted(name, dir.path()), Device::Cpu).unwrap();
        let rows = expected["models"][name].as_array().unwrap();
        let ids = |v: &serde_json::Value| -> Vec<i64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect()
        };
        let prompts: Vec<Vec<i64>> = rows.iter().map(|r| ids(&r["prompt"])).collect();
        let want: Vec<Vec<i64>> = rows.iter().map(|r| ids(&r["completion"])).collect();
        for (p, w) in prompts.iter().zip(&want) {
            let got = generate(
                &trained.model,
                Device::Cpu,
                std::slice::from_ref(p),
                &greedy(n),
                &mut |_, _| false,
            )
            .unwrap();
            assert_eq!(&got[0].tokens, w, "{name}, prompt {p:?}");
        }
        let batched = generate(
            &trained.model,
            Device::Cpu,
            &prompts,
            &greedy(n),
            &mut |_, _| false,
        )
        .unwrap();
        let got: Vec<Vec<i64>> = batched.into_iter().map(|c| c.tokens).collect();
        assert_eq!(got, want, "{name}, all prompts in one left-padded batch");
    }
}

/// Logits of a prefill of `split` tokens followed by one-token steps, against one full forward.
fn max_cached_vs_full_diff(model: &Transformer, tokens: &[i64], split: usize) -> f64 {
    tch::no_grad(|| {
        let t = tokens.len() as i64;
        let full = model.forward(&Tensor::from_slice(tokens).view([1, t]), None);
        let mut cache = KvCache::new(model, 1, t, Kind::Float, Device::Cpu);
        let mut parts = vec![forward_step(
            model,
            &mut cache,
            &Tensor::from_slice(&tokens[..split]).view([1, split as i64]),
            &Tensor::arange(split as i64, (Kind::Int64, Device::Cpu)).view([1, split as i64]),
            &Tensor::ones([1, split as i64], (Kind::Bool, Device::Cpu)),
        )];
        for i in split..tokens.len() {
            parts.push(forward_step(
                model,
                &mut cache,
                &Tensor::from_slice(&tokens[i..=i]).view([1, 1]),
                &Tensor::from_slice(&[i as i64]).view([1, 1]),
                &Tensor::ones([1, i as i64 + 1], (Kind::Bool, Device::Cpu)),
            ));
        }
        let cached = Tensor::cat(&parts, 1);
        (cached - full).abs().max().double_value(&[])
    })
}

#[test]
fn cached_decoding_gives_the_logits_of_a_full_forward() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let tokens: Vec<i64> = (0..40).map(|i| (i * 37 + 11) % 500).collect();
    for name in ["olmo2", "llama2"] {
        let trained = load_trained_model(&converted(name, dir.path()), Device::Cpu).unwrap();
        let d = max_cached_vs_full_diff(&trained.model, &tokens, 7);
        assert!(d < 1e-5, "{name}: max |cached - full| = {d}");
    }
    // Sliding windows of 6 tokens on the middle layers (olmo3's pattern), over a longer sequence.
    let mut cfg = build_factory("olmo2_1M", 512).unwrap();
    cfg.block.sequence_mixer.sliding_window = Some(SlidingWindowAttentionConfig {
        pattern: vec![6, 6, 6, -1],
        ..Default::default()
    });
    let model = Transformer::new(&cfg, Device::Cpu).unwrap();
    model.init_weights(3);
    assert!(model.has_sliding_window());
    let d = max_cached_vs_full_diff(&model, &tokens, 3);
    assert!(d < 1e-5, "sliding window: max |cached - full| = {d}");
}

fn olmo_train(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap()
}

#[test]
fn the_command_streams_writes_json_lines_and_names_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = format!("{ROOT}/tests/fixtures/tokenize/tiny-bpe/tokenizer.json");
    let run = common::tiny_run(
        dir.path(),
        "run",
        1,
        10,
        &[&format!("--dataset.tokenizer={{vocab_size: 1000, eos_token_id: 0, pad_token_id: 1, identifier: {tokenizer}}}")],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let ckpt = dir.path().join("run");
    let ckpt = ckpt.to_str().unwrap();

    let streamed = olmo_train(&[
        "generate",
        ckpt,
        "--prompt",
        "the cat",
        "--max-new-tokens",
        "12",
    ]);
    assert!(
        streamed.status.success(),
        "{}",
        String::from_utf8_lossy(&streamed.stderr)
    );
    let out = dir.path().join("gen.jsonl");
    let jsonl = olmo_train(&[
        "generate",
        ckpt,
        "--prompt",
        "the cat",
        "--prompt",
        "a much longer prompt than the first one",
        "--max-new-tokens",
        "12",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(
        jsonl.status.success(),
        "{}",
        String::from_utf8_lossy(&jsonl.stderr)
    );
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["prompt"], "the cat");
    let ids = rows[0]["token_ids"].as_array().unwrap();
    assert!(!ids.is_empty() && ids.len() <= 12);
    assert!(rows[0]["tokens_per_second"].as_f64().unwrap() > 0.0);
    // The streamed text is the prompt and the batched run's first completion (greedy; batching does
    // not change it).
    let printed = String::from_utf8_lossy(&streamed.stdout);
    assert_eq!(
        printed.trim_end_matches('\n'),
        format!("the cat{}", rows[0]["completion"].as_str().unwrap())
    );

    // Sampling with a seed is reproducible.
    let sample = |seed: &str| {
        let o = olmo_train(&[
            "generate",
            ckpt,
            "--prompt",
            "the cat",
            "--temperature",
            "1.0",
            "--top-k",
            "50",
            "--seed",
            seed,
            "--max-new-tokens",
            "16",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(sample("7"), sample("7"));
    // bfloat16 weights and cache run too.
    let bf16 = olmo_train(&[
        "generate",
        ckpt,
        "--prompt",
        "the cat",
        "--bf16",
        "--max-new-tokens",
        "8",
    ]);
    assert!(
        bf16.status.success(),
        "{}",
        String::from_utf8_lossy(&bf16.stderr)
    );
    assert!(String::from_utf8_lossy(&bf16.stdout).starts_with("the cat"));

    let long = "word ".repeat(200);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["generate", ckpt, "--prompt", ""], "prompt 1 is empty"),
        (
            vec!["generate", ckpt, "--prompt", &long],
            "longer than the model's context of 32",
        ),
        (
            vec!["generate", ckpt, "--prompt", "x", "--top-p", "1.5"],
            "--top-p",
        ),
        (
            vec!["generate", ckpt, "--prompt", "x", "--tokenizer", "gpt2"],
            "vocabulary has 1024 entries",
        ),
        (
            vec!["generate", "/nonexistent/ckpt", "--prompt", "x"],
            "/nonexistent/ckpt",
        ),
    ];
    for (args, want) in cases {
        let o = olmo_train(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.contains(want) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
    // A converted Hugging Face model with no tokenizer.json: its config names gpt2, whose ids the
    // 512-entry model does not have, and the error says to pass the model's own tokenizer.
    let hf = converted("olmo2", dir.path());
    let o = olmo_train(&["generate", hf.to_str().unwrap(), "--prompt", "hello"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("--tokenizer"),
        "{stderr}"
    );
}
