//! W&B and TensorBoard output of a real training run, read by their own readers: wandb 0.31.0's
//! `wandb leet inspect` (the Go reader `wandb sync` uses) and tensorboard 2.21.0's EventAccumulator, both
//! installed into `.venv` by `make test` (scripts/setup.sh).
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn tool(name: &str) -> PathBuf {
    let p = Path::new(ROOT).join(".venv/bin").join(name);
    assert!(p.exists(), "{} is missing: run `make test`, which installs wandb==0.31.0 and tensorboard==2.21.0 into .venv", p.display());
    p
}

fn train(dir: &Path, extra: &[&str]) -> std::process::Output {
    let data = dir.join("t.npy");
    let ids: Vec<u8> = (0..8000usize)
        .map(|i| {
            if i % 50 == 49 {
                0u16
            } else {
                1 + ((i * 7) % 31) as u16
            }
        })
        .flat_map(|t| t.to_le_bytes())
        .collect();
    std::fs::write(&data, ids).unwrap();
    let mut args: Vec<String> = [
        "metrics-run",
        "--model-factory=olmo2_1M",
        "--sequence-length=32",
        "--trainer.device=cpu",
        "--model.vocab_size=1024",
        "--dataset.tokenizer={vocab_size: 1000, eos_token_id: 0, pad_token_id: 999}",
        "--data_loader.global_batch_size=256",
        "--train_module.rank_microbatch_size=256",
        "--trainer.max_duration={value: 8, unit: steps}",
        "--trainer.metrics_collect_interval=3",
        "--trainer.callbacks.lm_evaluator.enabled=false",
        "--trainer.callbacks.downstream_evaluator.enabled=false",
        "--trainer.no_checkpoints",
        "--trainer.callbacks.wandb.enabled=true",
        "--trainer.callbacks.wandb.project=olmo-train-test",
        "--trainer.callbacks.wandb.tags=[tiny, cpu]",
        "--trainer.callbacks.tensorboard.enabled=true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--dataset.paths=[{}]", data.display()));
    args.push(format!("--save-folder={}", dir.join("save").display()));
    args.extend(extra.iter().map(|s| s.to_string()));
    Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(&args)
        .env("OMP_NUM_THREADS", "1")
        .env_remove("WANDB_DIR")
        .output()
        .unwrap()
}

fn run_dir(dir: &Path) -> PathBuf {
    let wandb = dir.join("save/wandb");
    std::fs::read_dir(&wandb)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("offline-run-")
        })
        .unwrap()
}

#[test]
fn wandb_reads_a_finished_run_with_history_config_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(dir.path(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let run = run_dir(dir.path());
    assert!(
        err.contains(&format!("wandb sync {}", run.display())),
        "the console gives the sync command: {err}"
    );
    let summary = Command::new(tool("wandb"))
        .args(["leet", "inspect", "--summary", "--json"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        summary.status.success(),
        "{}",
        String::from_utf8_lossy(&summary.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&summary.stdout).unwrap();
    assert_eq!(s["state"], "finished");
    assert_eq!(s["exit_code"], 0);
    assert_eq!(s["step"], 8);
    assert_eq!(s["project"], "olmo-train-test");
    assert_eq!(s["run_id"], "metrics-run");
    assert_eq!(s["config"]["model"]["d_model"], 12);
    let last = *common::losses(&dir.path().join("save")).last().unwrap();
    assert!((s["summary"]["train/CE loss"].as_f64().unwrap() - last).abs() < 1e-12);

    let file = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wandb"))
        .unwrap();
    let records = Command::new(tool("wandb"))
        .args(["leet", "inspect", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(records.status.success());
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&records.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let history: Vec<&serde_json::Value> = rows.iter().filter(|r| r["type"] == "history").collect();
    assert_eq!(history.len(), 8, "one history row a step");
    assert_eq!(rows.iter().filter(|r| r["type"] == "exit").count(), 1);
}

#[test]
fn an_interrupted_run_is_marked_failed() {
    let dir = tempfile::tempdir().unwrap();
    // A diverging run stops with an error: the exit record says 1.
    let o = train(
        dir.path(),
        &[
            "--train_module.optim.lr=1e12",
            "--train_module.max_grad_norm=null",
            "--train_module.scheduler=null",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let summary = Command::new(tool("wandb"))
        .args(["leet", "inspect", "--summary", "--json"])
        .arg(run_dir(dir.path()))
        .output()
        .unwrap();
    let s: serde_json::Value = serde_json::from_slice(&summary.stdout).unwrap();
    assert_eq!(s["exit_code"], 1, "{s}");
}

#[test]
fn tensorboard_reads_every_scalar_of_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(dir.path(), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let script = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}))
"#;
    let out = Command::new(tool("python"))
        .args(["-c", script])
        .arg(dir.path().join("save/tb"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tags: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ce = tags["train/CE loss"].as_array().unwrap();
    assert_eq!(ce.len(), 8);
    for (i, (point, want)) in ce
        .iter()
        .zip(common::losses(&dir.path().join("save")))
        .enumerate()
    {
        assert_eq!(point[0], i as u64 + 1);
        assert!(
            (point[1].as_f64().unwrap() - want).abs() <= 1e-6 * want.abs(),
            "step {}",
            i + 1
        );
    }
    assert!(tags["optim/LR (group 0)"].as_array().unwrap().len() == 8);
}
