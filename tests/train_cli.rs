//! Training through the binary on a tiny model and the fixture token files: the loss falls, the
//! console shows OLMo-core's metric lines, metrics.jsonl has one object per step, hard stops and
//! signals stop cleanly, and a diverging run stops with an error naming the step.
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

/// Learnable token files: a short repeating "text" with an EOS every 50 tokens (uint16, vocab 1000).
fn write_data(dir: &Path) -> [String; 2] {
    let names = [dir.join("a.npy"), dir.join("b.npy")];
    for (f, n) in names.iter().zip([5000usize, 7001]) {
        let ids: Vec<u8> = (0..n)
            .map(|i| {
                if i % 50 == 49 {
                    0u16
                } else {
                    1 + ((i * 7) % 31) as u16
                }
            })
            .flat_map(|t| t.to_le_bytes())
            .collect();
        std::fs::write(f, ids).unwrap();
    }
    names.map(|p| p.display().to_string())
}

fn train_args(save: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "test-run",
        "--model-factory=olmo2_1M",
        "--sequence-length=32",
        "--trainer.device=cpu",
        "--model.vocab_size=1024",
        "--dataset.tokenizer={vocab_size: 1000, eos_token_id: 0, pad_token_id: 999}",
        "--data_loader.global_batch_size=256",
        "--data_loader.num_workers=1",
        "--train_module.rank_microbatch_size=128",
        "--train_module.optim.lr=0.01",
        "--train_module.scheduler={type: cos_with_warmup, warmup: 3}",
        // One fp32 model (no sharding): these tests compare fp32 with bf16 autocast.
        "--train_module.dp_config=null",
        "--trainer.max_duration={value: 30, unit: steps}",
        "--trainer.metrics_collect_interval=4",
        "--trainer.callbacks.lm_evaluator.enabled=false",
        "--trainer.callbacks.downstream_evaluator.enabled=false",
        "--trainer.no_checkpoints",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let [a, b] = write_data(save);
    args.push(format!("--dataset.paths=[{a}, {b}]"));
    args.push(format!("--save-folder={}", save.display()));
    args.push(format!("--work-dir={}", save.join("cache").display()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("run")
}

#[test]
fn loss_falls_and_metrics_are_logged_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&train_args(dir.path(), &[]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("trained 30 steps"));
    let rows = common::metrics_rows(dir.path());
    assert_eq!(rows.len(), 30);
    assert!(rows
        .iter()
        .enumerate()
        .all(|(i, r)| r["step"] == i as u64 + 1));
    let loss = |i: usize| rows[i]["train/CE loss"].as_f64().unwrap();
    assert!(
        loss(29) < loss(0) - 0.5,
        "loss must fall: {} -> {}",
        loss(0),
        loss(29)
    );
    for key in [
        "optim/total grad norm",
        "optim/LR (group 0)",
        "optim/LR (group 1)",
        "throughput/total tokens",
    ] {
        assert!(rows[5][key].is_number(), "{key} missing");
    }
    assert!(rows[1]["throughput/device/TPS"].as_f64().unwrap() > 0.0);
    // OLMo-core's console format.
    assert!(err.contains("[step=1/30,epoch=1]"), "{err}");
    assert!(err.contains("    train/CE loss="), "{err}");
    assert!(err.contains("[step=30/30,epoch=1,eta="), "{err}");
}

#[test]
fn hard_stop_ends_early_and_the_schedule_still_uses_max_duration() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&train_args(
        dir.path(),
        &["--trainer.hard_stop={value: 5, unit: steps}"],
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = common::metrics_rows(dir.path());
    assert_eq!(rows.len(), 5);
    assert!(String::from_utf8_lossy(&o.stderr).contains("[step=5/30,epoch=1,eta="));
}

#[test]
fn epochs_and_token_durations() {
    let dir = tempfile::tempdir().unwrap();
    // 5000 + 7001 tokens / 32 = 156 + 218 instances, 8 a batch: 46 batches per epoch.
    let o = run(&train_args(
        dir.path(),
        &["--trainer.max_duration={value: 1, unit: epochs}"],
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(common::metrics_rows(dir.path()).len(), 46);
    let dir = tempfile::tempdir().unwrap();
    let o = run(&train_args(
        dir.path(),
        &["--trainer.max_duration={value: 2000, unit: tokens}"],
    ));
    assert!(o.status.success());
    assert_eq!(
        common::metrics_rows(dir.path()).len(),
        8,
        "ceil(2000 / 256) steps"
    );
}

#[test]
fn a_diverging_run_names_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&train_args(
        dir.path(),
        &[
            "--train_module.optim.lr=1e12",
            "--train_module.max_grad_norm=null",
            "--train_module.scheduler=null",
        ],
    ));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("error: training stopped at step ") && last.contains("loss encountered"),
        "{last}"
    );
}

#[test]
fn sigterm_stops_after_the_current_step() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(train_args(
            dir.path(),
            &["--trainer.max_duration={value: 100000, unit: steps}"],
        ))
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training has started.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !dir.path().join("metrics.jsonl").exists() || common::metrics_rows(dir.path()).is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "training did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("stopped by a signal after"));
    // Every step that ran was logged before exiting.
    let rows = common::metrics_rows(dir.path());
    assert!(rows
        .iter()
        .enumerate()
        .all(|(i, r)| r["step"] == i as u64 + 1));
}

/// `train_module.autocast_precision: bfloat16` (OLMo-core's bf16 autocast): the forward runs in bf16 while
/// weights and optimizer state stay fp32, so the losses follow the fp32 run's closely.
#[test]
fn bf16_autocast_follows_the_fp32_losses() {
    let dir = tempfile::tempdir().unwrap();
    let fp32 = dir.path().join("fp32");
    let bf16 = dir.path().join("bf16");
    std::fs::create_dir_all(&fp32).unwrap();
    std::fs::create_dir_all(&bf16).unwrap();
    let steps = "--trainer.max_duration={value: 12, unit: steps}";
    let o = run(&train_args(
        &fp32,
        &[steps, "--trainer.metrics_collect_interval=1"],
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&train_args(
        &bf16,
        &[
            steps,
            "--trainer.metrics_collect_interval=1",
            "--train_module.autocast_precision=bfloat16",
        ],
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let loss = |save: &Path| -> Vec<f64> {
        common::metrics_rows(save)
            .iter()
            .map(|m| m["train/CE loss"].as_f64().unwrap())
            .collect()
    };
    let (a, b) = (loss(&fp32), loss(&bf16));
    assert_eq!(a.len(), 12);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 2e-2 * x, "fp32 {x} vs bf16 {y}");
    }
    assert!(b[11] < b[0] - 0.5, "{b:?}");
    assert_ne!(a, b, "the bf16 run computed in bf16");
}

/// Data tokenized with dolma2 (ids past gpt2's 50,257) under the example's default tokenizer (gpt2, as
/// OLMo-core's): one line naming the file, the id and `--tokenizer`; with `--tokenizer dolma2` it trains.
#[test]
fn data_from_another_tokenizer_is_caught_and_the_flag_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dolma2.npy");
    let ids: Vec<u8> = (0..4096u32)
        .map(|i| {
            if i % 50 == 49 {
                100_257
            } else {
                1000 + i % 300
            }
        })
        .flat_map(|t| t.to_le_bytes())
        .collect();
    std::fs::write(&data, ids).unwrap();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "tok",
            "--model-factory=olmo2_1M",
            "--sequence-length=32",
            "--trainer.device=cpu",
            "--dataset.dtype=uint32",
            "--data_loader.global_batch_size=128",
            "--train_module.rank_microbatch_size=128",
            "--train_module.dp_config=null",
            "--trainer.max_duration={value: 2, unit: steps}",
            "--trainer.callbacks.lm_evaluator.enabled=false",
            "--trainer.callbacks.downstream_evaluator.enabled=false",
            "--trainer.no_checkpoints",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(format!("--dataset.paths=[{}]", data.display()));
        a.push(format!(
            "--save-folder={}",
            dir.path().join("run").display()
        ));
        a.push(format!("--work-dir={}", dir.path().join("cache").display()));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_olmo-train"))
            .args(args(extra))
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap()
    };
    let wrong = run(&[]);
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert!(
        err.contains("dolma2.npy") && err.contains("100257") && err.contains("--tokenizer"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let right = run(&["--tokenizer=dolma2"]);
    assert!(
        right.status.success(),
        "{}",
        String::from_utf8_lossy(&right.stderr)
    );
}
