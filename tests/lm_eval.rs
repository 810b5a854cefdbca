//! The LM evaluator against OLMo-core's own `LMEvaluator` (fixture from
//! `scripts/reference/olmo_core_lm_eval.py`): same weights, same held-out files, same CE and PPL per label.
use olmo_train::config::callbacks::LMEvaluatorCallbackConfig;
use olmo_train::config::data::{NumpyPaddedFSLDatasetConfig, TokenizerConfig};
use olmo_train::config::factories::build_factory;
use olmo_train::eval::lm::PartialBatch;
use olmo_train::eval::{InLoopEvaluator, LmEvaluator};
use olmo_train::model::Transformer;
use tch::{Device, Tensor};

mod common;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

pub fn eval_config(work: &std::path::Path) -> LMEvaluatorCallbackConfig {
    LMEvaluatorCallbackConfig {
        eval_dataset: Some(NumpyPaddedFSLDatasetConfig {
            tokenizer: TokenizerConfig {
                vocab_size: 500,
                eos_token_id: 0,
                pad_token_id: 499,
                bos_token_id: None,
                identifier: None,
            },
            paths: Some(vec![
                format!("{DIR}/eval/alpha.npy"),
                format!("{DIR}/eval/beta.npy"),
            ]),
            metadata: Some(vec![
                serde_yaml::from_str("{label: alpha}").unwrap(),
                serde_yaml::from_str("{label: beta}").unwrap(),
            ]),
            sequence_length: 64,
            work_dir: Some(work.display().to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn perplexity_matches_olmo_cores_evaluator() {
    if !common::pinned::in_pinned_child() {
        return;
    }
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DIR}/eval/expected.json")).unwrap(),
    )
    .unwrap();
    let model = Transformer::new(&build_factory("olmo2_1M", 512).unwrap(), Device::Cpu).unwrap();
    let weights = Tensor::read_safetensors(format!("{DIR}/train/olmo2-init.safetensors")).unwrap();
    tch::no_grad(|| {
        for (name, p) in model.named_parameters() {
            p.shallow_clone()
                .copy_(&weights.iter().find(|(n, _)| n == name).unwrap().1);
        }
    });
    let work = tempfile::tempdir().unwrap();
    let mut ev =
        LmEvaluator::new(&eval_config(work.path()), 4 * 64, 0, 1, PartialBatch::Drop).unwrap();
    let got = ev.run(&model, Device::Cpu, None).unwrap();
    for label in ["alpha", "beta"] {
        for metric in ["CE loss", "PPL"] {
            let ours = got[&format!("eval/lm/{label}/{metric}")];
            let theirs = want["metrics"][format!("{label}/{metric}")]
                .as_f64()
                .unwrap();
            assert!(
                (ours - theirs).abs() <= 1e-5 * theirs.abs(),
                "{label}/{metric}: {ours} vs {theirs}"
            );
        }
    }
    // The same numbers on every pass.
    assert_eq!(ev.run(&model, Device::Cpu, None).unwrap(), got);
}

#[test]
fn an_eval_dataset_without_labels_is_an_error() {
    let work = tempfile::tempdir().unwrap();
    let mut cfg = eval_config(work.path());
    cfg.eval_dataset.as_mut().unwrap().metadata = None;
    let err = LmEvaluator::new(&cfg, 256, 0, 1, PartialBatch::Drop)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("label"), "{err}");
}

const TASKS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/downstream/tasks"
);

/// In-loop perplexity and downstream metrics at a step equal `olmo-train eval` on that step's checkpoint.
#[test]
fn in_loop_equals_standalone_eval() {
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("run");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args([
            "eval-run",
            "--model-factory=olmo2_1M",
            "--sequence-length=64",
            "--trainer.device=cpu",
            "--model.vocab_size=1024",
            // One tokenizer for the data and both evaluators (the downstream one's, tiny-bpe, 1000 ids).
            "--dataset.tokenizer={vocab_size: 1000, eos_token_id: 0, pad_token_id: 499}",
            &format!("--dataset.paths=[{DIR}/eval/alpha.npy]"),
            // Evaluation batches of 3 documents, which divide the 81 of the evaluation set.
            "--data_loader.global_batch_size=576",
            "--train_module.rank_microbatch_size=192",
            // Sharded in fp32: the in-loop evaluators gather the shards; the standalone evaluation
            // reads the saved fp32 weights.
            "--train_module.dp_config={name: fsdp}",
            "--trainer.max_duration={value: 4, unit: steps}",
            "--trainer.callbacks.lm_evaluator.eval_interval=4",
            "--trainer.callbacks.lm_evaluator.eval_duration={value: 1, unit: epochs}",
            &format!("--trainer.callbacks.lm_evaluator.eval_dataset.paths=[{DIR}/eval/alpha.npy, {DIR}/eval/beta.npy]"),
            "--trainer.callbacks.lm_evaluator.eval_dataset.metadata=[{label: alpha}, {label: beta}]",
            "--trainer.callbacks.lm_evaluator.eval_dataset.tokenizer={vocab_size: 1000, eos_token_id: 0, pad_token_id: 499}",
            &format!("--trainer.callbacks.downstream_evaluator={{tasks: [arc_easy], eval_interval: 4, tokenizer: {{vocab_size: 1000, eos_token_id: 0, pad_token_id: 1, identifier: {DIR}/tokenize/tiny-bpe/tokenizer.json}}}}"),
            &format!("--save-folder={}", save.display()),
            &format!("--work-dir={}", dir.path().join("cache").display()),
        ])
        .env("OMP_NUM_THREADS", "1")
        .env("OLMO_TRAIN_EVAL_TASKS", TASKS)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rows = common::metrics_rows(&save);
    let in_loop = rows[3]["eval/lm/beta/CE loss"]
        .as_f64()
        .expect("eval metrics at step 4");
    assert!(rows[3]["throughput/in-loop eval time (s)"].is_number());
    let out = dir.path().join("eval.json");
    let ev = std::process::Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args([
            "eval",
            save.join("step4").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--device",
            "cpu",
            "--task-dir",
            TASKS,
        ])
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        ev.status.success(),
        "{}",
        String::from_utf8_lossy(&ev.stderr)
    );
    assert!(String::from_utf8_lossy(&ev.stdout).contains("eval/lm/beta/PPL"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let standalone = report["metrics"]["eval/lm/beta/CE loss"].as_f64().unwrap();
    // Standalone evaluation reads every document; the in-loop one only whole batches, which here
    // hold them all (81 documents, 3 a batch).
    assert_eq!(
        report["lm_documents"]["alpha"].as_u64().unwrap()
            + report["lm_documents"]["beta"].as_u64().unwrap(),
        81
    );
    assert!(
        (in_loop - standalone).abs() <= 1e-5 * standalone,
        "{in_loop} vs {standalone}"
    );
    for key in [
        "eval/downstream/arc_easy (accuracy)",
        "eval/downstream/arc_easy (CE loss)",
        "eval/downstream/arc_easy (BPB v2)",
    ] {
        let a = rows[3][key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} at step 4"));
        let b = report["metrics"][key].as_f64().unwrap();
        assert!(
            (a - b).abs() <= 1e-5 * a.abs().max(1.0),
            "{key}: {a} vs {b}"
        );
    }
    // Tasks named on the command line replace the config's; an unknown one lists what the folder has.
    let eval_tasks = |tasks: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_olmo-train"))
            .args([
                "eval",
                save.join("step4").to_str().unwrap(),
                "--device",
                "cpu",
                "--task-dir",
                TASKS,
            ])
            .args(["--output", out.to_str().unwrap(), "--tasks", tasks])
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap()
    };
    let o = eval_tasks("winogrande");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("eval/downstream/winogrande (accuracy)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("arc_easy") && !stdout.contains("eval/lm/"),
        "{stdout}"
    );
    let o = eval_tasks("hellaswag_rc_5shot");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("available in") && err.contains("arc_easy, hellaswag, winogrande"),
        "{err}"
    );
}
