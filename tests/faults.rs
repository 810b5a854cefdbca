//! Faults a long run meets, and what each leaves behind.
//!
//! A disk that fills up: `RLIMIT_FSIZE` (`ulimit -f`) gives EFBIG on the first write past the limit,
//! which takes the same error path as ENOSPC without needing a small filesystem. The previous outputs
//! stay usable, no staging folder is left, and the error names the file that could not be written.
//!
//! A poisoned step (a non-finite loss or gradient norm): the run stops naming the step, and no
//! checkpoint is written from weights trained past it.
//!
//! Small evaluation sets: standalone `eval` reads every document; the in-loop evaluator keeps
//! OLMo-core's numbers and says what it leaves out.
mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `command` with files limited to `bytes`.
fn with_file_size_limit(mut command: Command, bytes: u64) -> Output {
    // SAFETY: setrlimit is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Hidden entries (staging folders) left in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str().map(String::from))
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// The model file of the tiny olmo2_1M (260 KB) does not fit under 128 KiB; everything else a run writes
/// does.
const BELOW_A_CHECKPOINT: u64 = 128 << 10;

fn a_failed_save_keeps_the_previous_checkpoint(name: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let first = common::tiny_run(dir.path(), name, 1, 5, extra);
    assert!(first.status.success(), "{}", stderr(&first));
    let save = dir.path().join(name);
    assert!(save.join("step5").is_dir());

    let cut = with_file_size_limit(
        common::tiny_run_command(dir.path(), name, 1, 10, extra),
        BELOW_A_CHECKPOINT,
    );
    let err = stderr(&cut);
    assert!(!cut.status.success(), "the save past the limit must fail");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("model.safetensors"),
        "the file is named: {err}"
    );
    assert!(err.contains("File too large"), "the reason is given: {err}");
    assert!(!save.join("step10").exists());
    assert!(leftovers(&save).is_empty(), "{:?}", leftovers(&save));
    // Every line of metrics.jsonl is whole (step 10's is written only when its save succeeds, in
    // the background case before it fails).
    let rows = common::metrics_rows(&save).len();
    assert!((9..=10).contains(&rows), "{rows} rows");

    // The previous checkpoint is the one the next run resumes from, and it finishes.
    let again = common::tiny_run(dir.path(), name, 1, 10, extra);
    let err = stderr(&again);
    assert!(again.status.success(), "{err}");
    assert!(err.contains("step5"), "resumes from step5: {err}");
    assert!(save.join("step10").is_dir());
}

#[test]
fn a_checkpoint_save_past_a_file_size_limit_keeps_the_previous_checkpoint() {
    a_failed_save_keeps_the_previous_checkpoint("sync", &[]);
}

#[test]
fn an_asynchronous_save_past_a_file_size_limit_keeps_the_previous_checkpoint() {
    a_failed_save_keeps_the_previous_checkpoint(
        "async",
        &["--trainer.callbacks.checkpointer.save_async=true"],
    );
}

#[test]
fn metrics_jsonl_past_a_file_size_limit_stops_the_run_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // Data and the dataset's index are written before the limit applies.
    let warm = common::tiny_run(dir.path(), "warm", 1, 1, &["--trainer.no_checkpoints"]);
    assert!(warm.status.success(), "{}", stderr(&warm));
    let out = with_file_size_limit(
        common::tiny_run_command(dir.path(), "metrics", 1, 200, &["--trainer.no_checkpoints"]),
        // Past the run's config.json, reached by metrics.jsonl after some 50 steps.
        32 << 10,
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("metrics.jsonl"), "{err}");
    assert!(err.contains("File too large"), "{err}");
    // At most the last line is cut; every whole line parses.
    let text = std::fs::read_to_string(dir.path().join("metrics/metrics.jsonl")).unwrap();
    let whole: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    assert!(whole.len() > 3);
    for line in whole {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
}

#[test]
fn tokenizing_past_a_file_size_limit_keeps_the_previous_output() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let tokenize = |documents: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_olmo-train"));
        c.args([
            "tokenize",
            "--documents",
            documents,
            "--destination",
            dest.to_str().unwrap(),
            "--tokenizer.name_or_path",
            "gpt2",
            "--tokenizer.eos_token_id",
            "50256",
            "--dtype",
            "uint32",
        ]);
        c
    };
    let small = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tokenize/hard_cases.jsonl"
    );
    let first = tokenize(small).output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    let before: Vec<(String, Vec<u8>)> = outputs(&dest);
    assert!(!before.is_empty());

    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/kjv-*.jsonl.gz");
    let cut = with_file_size_limit(tokenize(corpus), 64 * 1024);
    let err = stderr(&cut);
    assert!(!cut.status.success());
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(".npy"), "the file is named: {err}");
    assert!(err.contains("File too large"), "{err}");
    assert_eq!(outputs(&dest), before, "the previous output is untouched");
    assert!(leftovers(&dest).is_empty(), "{:?}", leftovers(&dest));
}

/// Every file in `dir` (not hidden) with its bytes, by name.
fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_str()?.to_string();
            (!name.starts_with('.')).then(|| (name, std::fs::read(e.path()).unwrap()))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_diverging_run_leaves_its_last_good_checkpoint_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::tiny_run(
        dir.path(),
        "diverge",
        1,
        20,
        &[
            "--train_module.optim.lr=1e12",
            "--train_module.max_grad_norm=null",
            "--train_module.scheduler=null",
            // Losses are read only every 50 steps, but a save is due every step.
            "--trainer.metrics_collect_interval=50",
            "--trainer.callbacks.checkpointer={save_interval: 1, ephemeral_save_interval: null}",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let last = err.lines().last().unwrap();
    let bad_step: u64 = last
        .strip_prefix("error: training stopped at step ")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{last}"));
    assert!(last.contains("no checkpoint was saved after it"), "{last}");
    let save = dir.path().join("diverge");
    let newest = (0..=20u64)
        .filter(|s| save.join(format!("step{s}")).is_dir())
        .max()
        .expect("the step-0 checkpoint at least");
    assert!(
        newest < bad_step,
        "step{newest} was saved at or after the bad step {bad_step}"
    );
    let weights = tch::Tensor::read_safetensors(
        save.join(format!("step{newest}/model_and_optim/model.safetensors")),
    )
    .unwrap();
    for (name, t) in weights {
        let finite = t
            .to_kind(tch::Kind::Float)
            .isfinite()
            .all()
            .int64_value(&[])
            == 1;
        assert!(finite, "step{newest}'s {name} is not finite");
    }
}

/// Token files of whole documents (each ends with EOS 0), as uint16.
fn documents_file(path: &Path, docs: &[&[u16]]) -> String {
    let bytes: Vec<u8> = docs
        .iter()
        .flat_map(|d| d.iter().copied().chain([0u16]))
        .flat_map(u16::to_le_bytes)
        .collect();
    std::fs::write(path, bytes).unwrap();
    path.display().to_string()
}

fn eval_report(checkpoint: &Path, out: &Path, sets: &[String]) -> (Output, serde_json::Value) {
    let o = Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(["eval", checkpoint.to_str().unwrap(), "--device", "cpu"])
        .args(["--output", out.to_str().unwrap(), "--lm-sets"])
        .args(sets)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    (o, report)
}

/// Standalone `eval` reads every document of a set, the partial last batch and a set smaller than
/// one batch included, and says how many; the in-loop evaluator leaves the partial batch out, as
/// OLMo-core does, and warns.
#[test]
fn small_evaluation_sets() {
    let dir = tempfile::tempdir().unwrap();
    let a: Vec<u16> = (1..=20).collect();
    let b: Vec<u16> = (30..=49).collect();
    let all3 = documents_file(&dir.path().join("all3.npy"), &[&a, &a, &b]);
    let only_a = documents_file(&dir.path().join("a.npy"), &[&a]);
    let only_b = documents_file(&dir.path().join("b.npy"), &[&b]);
    // olmo2_1M at 32 tokens with 64-token micro-batches: 2 documents an evaluation batch.
    let in_loop = |name: &str, steps: u32, set: &str| {
        let out = common::tiny_run(
            dir.path(),
            name,
            1,
            steps,
            &[
                "--trainer.callbacks.lm_evaluator.enabled=true",
                &format!("--trainer.callbacks.lm_evaluator.eval_interval={steps}"),
                &format!("--trainer.callbacks.lm_evaluator.eval_dataset.paths=[{set}]"),
                "--trainer.callbacks.lm_evaluator.eval_dataset.metadata=[{label: set}]",
                "--trainer.callbacks.lm_evaluator.eval_dataset.tokenizer={vocab_size: 1000, eos_token_id: 0, pad_token_id: 999}",
            ],
        );
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        let rows = common::metrics_rows(&dir.path().join(name));
        (err, rows[steps as usize - 1]["eval/lm/set/CE loss"].clone())
    };
    let (err, ce) = in_loop("small", 5, &all3);
    assert!(err.contains("1 of 3 documents are left out"), "{err}");
    assert!(ce.is_number(), "{ce}");
    let (err, ce) = in_loop("tiny", 2, &only_a);
    assert!(
        err.contains("1 documents, fewer than one evaluation batch of 2"),
        "{err}"
    );
    assert_eq!(
        ce, "NaN",
        "OLMo-core logs NaN for a set smaller than a batch"
    );

    let checkpoint = dir.path().join("small/step5");
    let out = dir.path().join("eval.json");
    let (o, report) = eval_report(
        &checkpoint,
        &out,
        &[
            format!("three={all3}"),
            format!("a={only_a}"),
            format!("b={only_b}"),
        ],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("lm set three: 3 documents read"),
        "{stdout}"
    );
    assert!(stdout.contains("lm set a: 1 documents read"), "{stdout}");
    assert_eq!(report["lm_documents"]["three"], 3);
    let ce = |label: &str| {
        report["metrics"][format!("eval/lm/{label}/CE loss")]
            .as_f64()
            .unwrap_or_else(|| panic!("{label}: {report}"))
    };
    // Documents of equal length weigh the same: every one of the three was read.
    let want = (2.0 * ce("a") + ce("b")) / 3.0;
    assert!(
        (ce("three") - want).abs() < 1e-5 * want,
        "{} vs {want}",
        ce("three")
    );
}
