//! Checkpoints that never lose a run: stopping at any moment (a hard stop, SIGKILL between saves, SIGKILL
//! during an asynchronous save) and starting the same command again gives, on CPU, bit-identical losses
//! at every step and bit-identical final weights; `--load-path` fine-tunes from a checkpoint with and
//! without its trainer state; corrupt or mismatched checkpoints are named errors.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tch::Tensor;

mod common;

fn write_data(dir: &Path) -> String {
    common::learnable_tokens(dir, 20_000).display().to_string()
}

fn args(save: &Path, data: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "ckpt-run",
        "--model-factory=olmo2_1M",
        "--sequence-length=32",
        "--trainer.device=cpu",
        "--model.vocab_size=1024",
        "--dataset.tokenizer={vocab_size: 1000, eos_token_id: 0, pad_token_id: 999}",
        "--data_loader.global_batch_size=256",
        "--data_loader.num_workers=2",
        "--train_module.rank_microbatch_size=128",
        "--train_module.optim.lr=0.01",
        "--train_module.scheduler={type: cos_with_warmup, warmup: 3}",
        "--trainer.max_duration={value: 16, unit: steps}",
        "--trainer.metrics_collect_interval=1",
        "--trainer.callbacks.lm_evaluator.enabled=false",
        "--trainer.callbacks.downstream_evaluator.enabled=false",
        "--trainer.callbacks.checkpointer={save_interval: 4, ephemeral_save_interval: 2, save_async: false}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(format!("--dataset.paths=[{data}]"));
    a.push(format!("--save-folder={}", save.display()));
    a.push(format!("--work-dir={}", save.join("cache").display()));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn command(a: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_olmo-train"));
    c.args(a).env("OMP_NUM_THREADS", "1");
    c
}

fn run(a: &[String]) -> Output {
    command(a).output().unwrap()
}

fn losses(save: &Path) -> Vec<(u64, f64)> {
    common::metrics_rows(save)
        .iter()
        .map(|v| {
            (
                v["step"].as_u64().unwrap(),
                v["train/CE loss"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn weights(dir: &Path) -> Vec<(String, Tensor)> {
    let mut w = Tensor::read_safetensors(dir.join("model_and_optim/model.safetensors")).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

fn assert_same_weights(a: &Path, b: &Path) {
    let (wa, wb) = (weights(a), weights(b));
    assert_eq!(wa.len(), wb.len());
    for ((na, ta), (nb, tb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        assert!(
            ta.equal(tb),
            "{na} differs bit-wise between {} and {}",
            a.display(),
            b.display()
        );
    }
}

fn uninterrupted(root: &Path, data: &str) -> PathBuf {
    let save = root.join("uninterrupted");
    let o = run(&args(&save, data, &[]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    save
}

/// Kills the run with SIGKILL as soon as `ready` holds (checked every few ms), or fails after 60 s.
fn kill_when(a: &[String], envs: &[(&str, &str)], ready: impl Fn() -> bool) {
    let mut c = command(a);
    for (k, v) in envs {
        c.env(k, v);
    }
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "the run never reached the kill point"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill point"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn checkpoints(save: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(save)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("step"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn hard_stop_then_resume_is_bit_identical() {
    let root = tempfile::tempdir().unwrap();
    let data = write_data(root.path());
    let reference = uninterrupted(root.path(), &data);
    // Permanent every 4 (and step 0), at most 3 kept (OLMo-core's max_checkpoints); ephemeral every 2,
    // only the latest kept (step 14: the permanent step 16 does not remove it).
    assert_eq!(
        checkpoints(&reference),
        ["step12", "step14", "step16", "step8"]
    );

    let save = root.path().join("stopped");
    let o = run(&args(
        &save,
        &data,
        &["--trainer.hard_stop={value: 7, unit: steps}"],
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        save.join("step7").join(".metadata.json").exists(),
        "a final checkpoint at the hard stop"
    );
    let o = run(&args(&save, &data, &[]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("resuming training from step 7"));
    assert_eq!(
        losses(&save),
        losses(&reference),
        "every step's loss, bit for bit"
    );
    assert_same_weights(&save.join("step16"), &reference.join("step16"));
}

#[test]
fn sigkill_at_random_moments_then_resume_is_bit_identical() {
    let root = tempfile::tempdir().unwrap();
    let data = write_data(root.path());
    let reference = uninterrupted(root.path(), &data);
    let save = root.path().join("killed");
    // Kill once a given number of steps have been logged (a few seeds of "random" moments).
    for after_steps in [3usize, 6, 11] {
        let metrics = save.join("metrics.jsonl");
        kill_when(&args(&save, &data, &[]), &[], || {
            std::fs::read_to_string(&metrics)
                .map(|t| t.lines().count() >= after_steps)
                .unwrap_or(false)
        });
    }
    let o = run(&args(&save, &data, &[]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(losses(&save), losses(&reference));
    assert_same_weights(&save.join("step16"), &reference.join("step16"));
}

#[test]
fn sigkill_during_an_asynchronous_save_is_recovered() {
    let root = tempfile::tempdir().unwrap();
    let data = write_data(root.path());
    let reference = uninterrupted(root.path(), &data);
    let save = root.path().join("async");
    let a = args(
        &save,
        &data,
        &["--trainer.callbacks.checkpointer.save_async=true"],
    );
    // Hold each save open for a while and kill while the step-4 checkpoint is being written.
    let saving = save.clone();
    kill_when(&a, &[("OLMO_TRAIN_TEST_SAVE_DELAY_MS", "300")], || {
        std::fs::read_dir(&saving).is_ok_and(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with(".step4.tmp-"))
        })
    });
    assert!(
        !save.join("step4").exists(),
        "the interrupted save never appears under its final name"
    );
    let o = run(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(checkpoints(&save).iter().all(|n| !n.contains("tmp")));
    assert_eq!(losses(&save), losses(&reference));
    assert_same_weights(&save.join("step16"), &reference.join("step16"));
}

#[test]
fn load_path_with_and_without_trainer_state() {
    let root = tempfile::tempdir().unwrap();
    let data = write_data(root.path());
    let source = uninterrupted(root.path(), &data);
    let step8 = source.join("step8");

    // Weights (and optimizer) only: a fresh run from step 1.
    let fine = root.path().join("finetune");
    let o = run(&args(
        &fine,
        &data,
        &[
            &format!("--load-path={}", step8.display()),
            "--trainer.max_duration={value: 3, unit: steps}",
        ],
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let l = losses(&fine);
    assert_eq!(l.first().unwrap().0, 1);
    let fresh = root.path().join("fresh");
    run(&args(
        &fresh,
        &data,
        &["--trainer.max_duration={value: 3, unit: steps}"],
    ));
    assert!(
        l[0].1 < losses(&fresh)[0].1 - 0.1,
        "starting from trained weights gives a lower first loss"
    );

    // With trainer state: continues at step 9 with the source's data position, exactly as the source did.
    let cont = root.path().join("continue");
    let o = run(&args(
        &cont,
        &data,
        &[
            &format!("--load-path={}", step8.display()),
            "--load-trainer-state",
        ],
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let source_tail: Vec<(u64, f64)> = losses(&source)
        .into_iter()
        .filter(|(s, _)| *s > 8)
        .collect();
    assert_eq!(losses(&cont), source_tail);
}

#[test]
fn corrupt_or_mismatched_checkpoints_are_named_errors() {
    let root = tempfile::tempdir().unwrap();
    let data = write_data(root.path());
    let source = uninterrupted(root.path(), &data);
    // Another architecture: the differing shapes are listed.
    let o = run(&args(
        &root.path().join("other"),
        &data,
        &[
            &format!("--load-path={}", source.join("step8").display()),
            "--model.n_layers=2",
        ],
    ));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("model.safetensors")
            && err.contains("unexpected blocks.2"),
        "{err}"
    );
    // A truncated weights file: named, the run does not start.
    let broken = root.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    copy_dir(&source.join("step8"), &broken.join("step8"));
    let model = broken.join("step8/model_and_optim/model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let o = run(&args(&broken, &data, &[]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("model.safetensors"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}
