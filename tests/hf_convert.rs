//! `olmo-train convert`: Hugging Face OLMo 2, Llama and OLMoE folders (fixtures from
//! `scripts/reference/hf_fixtures.py`, built by transformers from OLMo-core-initialized weights, and for
//! OLMoE from random ones, with and without `norm_topk_prob`) become
//! checkpoints whose logits equal transformers' (1e-5), go back to HF byte-identical, load in transformers
//! (when the reference venv is present), and fine-tune with `--load-path`.
use std::path::Path;
use std::process::Command;

use olmo_train::checkpoint;
use olmo_train::config::ExperimentConfig;
use olmo_train::model::Transformer;
use tch::{Device, Tensor};

mod common;

const MODELS: [&str; 4] = ["olmo2", "llama2", "olmoe", "olmoe-norm"];

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hf");

fn olmo_train(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap()
}

fn convert_from_hf(name: &str, out: &Path) {
    let o = olmo_train(&[
        "convert",
        "from-hf",
        &format!("{FIX}/{name}"),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn sorted(path: &Path) -> Vec<(String, Tensor)> {
    let mut v = Tensor::read_safetensors(path).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn converted_models_give_transformers_logits() {
    if !common::pinned::in_pinned_child() {
        return;
    }
    for name in MODELS {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("ckpt");
        convert_from_hf(name, &ckpt);
        let config: ExperimentConfig =
            serde_json::from_str(&std::fs::read_to_string(ckpt.join("config.json")).unwrap())
                .unwrap();
        let model = Transformer::new(&config.model, Device::Cpu).unwrap();
        checkpoint::load_model(&ckpt, model.named_parameters()).unwrap();
        let fixture = Tensor::read_safetensors(format!("{FIX}/{name}-logits.safetensors")).unwrap();
        let get = |k: &str| {
            fixture
                .iter()
                .find(|(n, _)| n == k)
                .unwrap()
                .1
                .shallow_clone()
        };
        let logits = tch::no_grad(|| model.forward(&get("input_ids"), None));
        assert!(
            logits.allclose(&get("logits"), 1e-5, 1e-6, false),
            "{name}: logits differ from transformers'"
        );
    }
}

#[test]
fn hf_to_checkpoint_to_hf_is_byte_identical_and_loads_in_transformers() {
    if !common::pinned::in_pinned_child() {
        return;
    }
    for name in MODELS {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("ckpt");
        let back = dir.path().join("hf");
        convert_from_hf(name, &ckpt);
        let o = olmo_train(&[
            "convert",
            "to-hf",
            ckpt.to_str().unwrap(),
            back.to_str().unwrap(),
            "--dtype",
            "float32",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (a, b) = (
            sorted(&Path::new(FIX).join(name).join("model.safetensors")),
            sorted(&back.join("model.safetensors")),
        );
        assert_eq!(a.len(), b.len());
        for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            assert!(ta.equal(tb), "{name}: {na} changed in the round trip");
        }
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-ref/bin/python");
        if python.exists() {
            let check = Command::new(python)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .args([
                    "scripts/reference/hf_fixtures.py",
                    "check",
                    back.to_str().unwrap(),
                ])
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "{}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
}

#[test]
fn fine_tune_from_a_converted_checkpoint_with_load_path() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    convert_from_hf("olmo2", &ckpt);
    let data = dir.path().join("tokens.npy");
    let ids: Vec<u8> = (0..8000usize)
        .map(|i| {
            if i % 40 == 39 {
                0u16
            } else {
                1 + (i % 211) as u16
            }
        })
        .flat_map(|t| t.to_le_bytes())
        .collect();
    std::fs::write(&data, ids).unwrap();
    let save = dir.path().join("run");
    let o = olmo_train(&[
        "ft",
        "--config",
        ckpt.join("config.json").to_str().unwrap(),
        &format!("--load-path={}", ckpt.display()),
        "--trainer.device=cpu",
        "--dataset.tokenizer={vocab_size: 500, eos_token_id: 0, pad_token_id: 499}",
        &format!("--dataset.paths=[{}]", data.display()),
        "--dataset.sequence_length=32",
        "--train_module.max_sequence_length=32",
        "--train_module.rank_microbatch_size=128",
        "--data_loader.global_batch_size=128",
        "--trainer.max_duration={value: 3, unit: steps}",
        "--trainer.callbacks.lm_evaluator.enabled=false",
        "--trainer.callbacks.downstream_evaluator.enabled=false",
        &format!("--save-folder={}", save.display()),
        &format!("--work-dir={}", dir.path().join("cache").display()),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("loading checkpoint from") && err.contains("no checkpoint in the save folder"),
        "{err}"
    );
    assert!(save.join("step3/.metadata.json").exists());
}
