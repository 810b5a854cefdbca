//! `olmo-train launch` and data parallelism on Gloo (CPU): 2 processes give the 1-process losses and
//! weights and in-loop evaluation numbers for the same global batch; 2-process runs resume 1- and
//! 2-process checkpoints; a killed worker
//! brings the whole run down within 30 s with no process left; OLMo-core's tutorial command works; asking
//! for CUDA without a GPU fails with the reason instead of hanging.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tch::Tensor;

mod common;

fn data(dir: &Path) -> PathBuf {
    common::learnable_tokens(dir, 20_000)
}

fn train_args(run: &str, dir: &Path, save: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        run,
        "--model-factory=olmo2_1M",
        "--sequence-length=32",
        "--trainer.device=cpu",
        "--model.vocab_size=1024",
        "--dataset.tokenizer={vocab_size: 1000, eos_token_id: 0, pad_token_id: 999}",
        "--data_loader.global_batch_size=256",
        "--data_loader.num_workers=1",
        "--train_module.rank_microbatch_size=64",
        "--train_module.optim.lr=0.01",
        // DDP in fp32 (the example's default is OLMo-core's FSDP with bf16 parameters, whose rounding
        // a 1e-5 comparison of 1 and 2 processes cannot absorb); a test may name another after these.
        "--train_module.dp_config={name: ddp}",
        "--trainer.metrics_collect_interval=1",
        "--trainer.callbacks.lm_evaluator.enabled=false",
        "--trainer.callbacks.downstream_evaluator.enabled=false",
        "--trainer.callbacks.checkpointer={save_interval: 8, ephemeral_save_interval: null}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(format!("--dataset.paths=[{}]", data(dir).display()));
    a.push(format!("--save-folder={}", dir.join(save).display()));
    a.push(format!("--work-dir={}", dir.join("cache").display()));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn olmo_train(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap()
}

fn launch(n: u32, args: &[String]) -> Output {
    let mut a = vec![
        "launch".to_string(),
        format!("--nproc-per-node={n}"),
        format!("--master-port={}", common::free_port()),
    ];
    a.extend(args.iter().cloned());
    olmo_train(&a)
}

fn weights(dir: &Path) -> Vec<(String, Tensor)> {
    // Through the library: sharded runs write their checkpoints in parts.
    let mut w = olmo_train::checkpoint::read_model_tensors(dir).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

fn assert_close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * x.abs(),
            "step {}: {x} vs {y}",
            i + 1
        );
    }
}

/// The in-loop evaluators on: perplexity on the training file (labelled) and two downstream tasks from
/// the fixture folder, tokenized with the fixture BPE (ids below the tiny model's vocabulary).
fn eval_args(dir: &Path) -> Vec<String> {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    vec![
        format!(
            "--trainer.callbacks.lm_evaluator={{enabled: true, eval_interval: 10, eval_dataset: {{paths: [{}], metadata: [{{label: held}}], sequence_length: 32, tokenizer: {{vocab_size: 1000, eos_token_id: 0, pad_token_id: 999}}, work_dir: {}}}}}",
            data(dir).display(),
            dir.join("cache").display()
        ),
        format!(
            "--trainer.callbacks.downstream_evaluator={{enabled: true, tasks: [winogrande, arc_easy], eval_interval: 10, tokenizer: {{vocab_size: 1000, eos_token_id: 0, pad_token_id: 1, identifier: {fixtures}/tokenize/tiny-bpe/tokenizer.json}}}}"
        ),
    ]
}

/// Every `eval/...` value in a run's metrics file, with its step.
fn eval_metrics(save: &Path) -> Vec<(u64, String, f64)> {
    let mut out = Vec::new();
    for v in common::metrics_rows(save) {
        for (k, x) in v.as_object().unwrap() {
            if k.starts_with("eval/") {
                out.push((v["step"].as_u64().unwrap(), k.clone(), x.as_f64().unwrap()));
            }
        }
    }
    out
}

#[test]
fn two_processes_match_one_process() {
    two_processes_match_one_process_with(&[]);
}

/// The same under sharded data parallelism: the in-loop evaluators gather the shards forward by
/// forward on every rank (a rank with fewer downstream batches runs empty forwards).
#[test]
fn two_sharded_processes_match_one_process() {
    two_processes_match_one_process_with(&["--train_module.dp_config={name: fsdp}"]);
}

/// olmo2_1M with its feed-forward routed through 4 dropless experts (top-2, both auxiliary losses),
/// under DDP. The load-balancing loss is computed per micro-batch (OLMo-core's `local_batch`), which
/// makes it depend on which instances share a micro-batch: with one instance per micro-batch both runs
/// form the same ones, and each rank divides by its half of the tokens, so they agree.
const TINY_MOE: [&str; 5] = [
    "--train_module.rank_microbatch_size=32",
    "--model.name=moe",
    "--model.block.name=moe_reordered_norm",
    "--model.block.feed_forward=null",
    "--model.block.feed_forward_moe={name: dropless, num_experts: 4, hidden_size: 8, router: {top_k: 2}, z_loss_weight: 0.001}",
];

#[test]
fn two_processes_match_one_process_for_a_mixture_of_experts() {
    two_processes_match_one_process_with(&TINY_MOE);
}

/// The same with the experts sharded like every other parameter.
#[test]
fn two_sharded_processes_match_one_process_for_a_mixture_of_experts() {
    let mut extra = TINY_MOE.to_vec();
    extra.push("--train_module.dp_config={name: fsdp}");
    two_processes_match_one_process_with(&extra);
}

fn two_processes_match_one_process_with(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let max = "--trainer.max_duration={value: 20, unit: steps}";
    let evals = eval_args(dir.path());
    let with_evals = |run: &str| {
        let mut a = train_args(run, dir.path(), run, &[max]);
        a.extend(evals.iter().cloned());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let tasks = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/downstream/tasks"
    );
    let one = Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(with_evals("one"))
        .env("OMP_NUM_THREADS", "1")
        .env("OLMO_TRAIN_EVAL_TASKS", tasks)
        .output()
        .unwrap();
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let two = {
        let mut a = vec![
            "launch".to_string(),
            "--nproc-per-node=2".to_string(),
            format!("--master-port={}", common::free_port()),
        ];
        a.extend(with_evals("two"));
        Command::new(env!("CARGO_BIN_EXE_olmo-train"))
            .args(a)
            .env("OMP_NUM_THREADS", "1")
            .env("OLMO_TRAIN_EVAL_TASKS", tasks)
            // After every step all ranks compare parameter digests with rank 0's; a mismatch fails the run.
            .env("OLMO_TRAIN_CHECK_REPLICAS", "1")
            .output()
            .unwrap()
    };
    let err = String::from_utf8_lossy(&two.stderr);
    assert!(two.status.success(), "{err}");
    assert!(
        err.contains("[rank 1]") && err.contains("[rank 0]"),
        "output is prefixed with the rank"
    );
    assert!(err.contains("comparing every rank's parameters"), "{err}");
    assert_close(
        &common::losses(&dir.path().join("one")),
        &common::losses(&dir.path().join("two")),
    );
    // In-loop evaluations (steps 10 and 20): each rank scores its share; the reduced numbers equal
    // the one-process ones.
    let (e1, e2) = (
        eval_metrics(&dir.path().join("one")),
        eval_metrics(&dir.path().join("two")),
    );
    assert!(
        e1.iter()
            .any(|(s, k, _)| *s == 10 && k == "eval/lm/held/CE loss"),
        "{e1:?}"
    );
    assert!(
        e1.iter()
            .any(|(s, k, _)| *s == 20 && k == "eval/downstream/arc_easy (accuracy)"),
        "{e1:?}"
    );
    assert_eq!(e1.len(), e2.len());
    for ((s1, k1, a), (s2, k2, b)) in e1.iter().zip(&e2) {
        assert_eq!((s1, k1), (s2, k2));
        assert!(
            (a - b).abs() <= 1e-5 * a.abs().max(1.0),
            "step {s1} {k1}: {a} vs {b}"
        );
    }
    for ((n, a), (_, b)) in weights(&dir.path().join("one/step20"))
        .iter()
        .zip(weights(&dir.path().join("two/step20")))
    {
        assert!(
            a.allclose(&b, 1e-5, 1e-6, false),
            "{n} differs after 20 steps"
        );
    }
}

#[test]
fn two_processes_resume_one_and_two_process_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let max = "--trainer.max_duration={value: 24, unit: steps}";
    let reference = olmo_train(&train_args("r", dir.path(), "reference", &[max]));
    assert!(reference.status.success());
    // Steps 1-8 on one process, 9-16 on two (from the one-process checkpoint), 17-24 on two (from the
    // two-process checkpoint).
    let first = olmo_train(&train_args(
        "r",
        dir.path(),
        "mixed",
        &[max, "--trainer.hard_stop={value: 8, unit: steps}"],
    ));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    for stop in [
        "--trainer.hard_stop={value: 16, unit: steps}",
        "--trainer.hard_stop=null",
    ] {
        let next = launch(2, &train_args("r", dir.path(), "mixed", &[max, stop]));
        assert!(
            next.status.success(),
            "{}",
            String::from_utf8_lossy(&next.stderr)
        );
    }
    assert_close(
        &common::losses(&dir.path().join("reference")),
        &common::losses(&dir.path().join("mixed")),
    );
}

fn pids_of(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

fn rank_of(pid: i32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0).find_map(|kv| {
        String::from_utf8_lossy(kv)
            .strip_prefix("RANK=")
            .map(String::from)
    })
}

#[test]
fn a_killed_worker_stops_the_run_within_30_seconds_leaving_nothing() {
    let err = faulty_worker_stops_the_run("killtest", &[], Fault::KillInTraining, 30);
    // Whichever the launcher sees first: rank 1 killed, or rank 0 failing in the all-reduce.
    assert!(err.contains("exited with code"), "{err}");
}

/// Under sharding the survivor is inside an all-gather or reduce-scatter when its peer dies.
#[test]
fn a_killed_sharded_worker_stops_the_run_within_30_seconds_leaving_nothing() {
    faulty_worker_stops_the_run(
        "killfsdp",
        &["--train_module.dp_config={name: fsdp}"],
        Fault::KillInTraining,
        30,
    );
}

/// A frozen (not dead) rank: rank 0 waits in the gradient all-reduce only until `dist_timeout`.
#[test]
fn a_worker_stopped_in_training_ends_the_run_within_dist_timeout() {
    let err = faulty_worker_stops_the_run(
        "stoptrain",
        &["--dist_timeout=10"],
        Fault::StopInTraining,
        10 + 30,
    );
    assert!(
        err.contains("did not complete within dist_timeout"),
        "{err}"
    );
}

/// A rank frozen before it reaches the rendezvous: rank 0's store gives up after `dist_timeout`.
#[test]
fn a_worker_stopped_before_rendezvous_ends_the_run_within_dist_timeout() {
    let err = faulty_worker_stops_the_run(
        "stoprdzv",
        &["--dist_timeout=10"],
        Fault::StopAtStart,
        10 + 30,
    );
    assert!(err.contains("rendezvous of rank 0 of 2"), "{err}");
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// SIGKILL rank 1 once training has logged a few steps.
    KillInTraining,
    /// SIGSTOP rank 1 once training has logged a few steps.
    StopInTraining,
    /// SIGSTOP rank 1 as soon as it exists.
    StopAtStart,
}

/// Runs 2 ranks, applies `fault` to rank 1, and checks that the launcher exits non-zero within
/// `within_s` seconds of the fault leaving no process of the run. Returns the launcher's stderr.
fn faulty_worker_stops_the_run(name: &str, extra: &[&str], fault: Fault, within_s: u64) -> String {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("{name}-{}", std::process::id());
    let mut args = vec![
        "launch".to_string(),
        "--nproc-per-node=2".into(),
        format!("--master-port={}", common::free_port()),
    ];
    args.extend(train_args(
        &marker,
        dir.path(),
        "save",
        &[
            &[
                "--trainer.max_duration={value: 1000000, unit: steps}",
                "--trainer.no_checkpoints",
            ][..],
            extra,
        ]
        .concat(),
    ));
    let err_path = dir.path().join("launcher.err");
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(&args)
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let metrics = dir.path().join("save/metrics.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    let rank1 = || {
        pids_of(&marker)
            .into_iter()
            .find(|&p| p != launcher.id() as i32 && rank_of(p).as_deref() == Some("1"))
    };
    let victim = loop {
        assert!(Instant::now() < deadline, "training never started");
        let started = fault == Fault::StopAtStart
            || std::fs::read_to_string(&metrics).is_ok_and(|t| t.lines().count() >= 3);
        if let Some(pid) = rank1().filter(|_| started) {
            break pid;
        }
        std::thread::sleep(Duration::from_millis(if started { 1 } else { 50 }));
    };
    let signal = match fault {
        Fault::KillInTraining => libc::SIGKILL,
        Fault::StopInTraining | Fault::StopAtStart => libc::SIGSTOP,
    };
    // SAFETY: signalling a process this test started (through the launcher).
    unsafe { libc::kill(victim, signal) };
    let faulted = Instant::now();
    let status = loop {
        if let Some(s) = launcher.try_wait().unwrap() {
            break s;
        }
        if faulted.elapsed() > Duration::from_secs(within_s) {
            for pid in pids_of(&marker) {
                // SAFETY: cleaning up this test's own processes before failing.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            panic!("the launcher did not exit within {within_s} s of the fault");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        pids_of(&marker).is_empty(),
        "processes of the run are left: {:?}",
        pids_of(&marker)
    );
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn olmo_cores_tutorial_command_runs_on_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "launch".to_string(),
        "--nproc-per-node=2".into(),
        format!("--master-port={}", common::free_port()),
    ];
    args.extend(
        [
            "tutorial-run-01".to_string(),
            format!(
                "--save-folder={}",
                dir.path().join("tutorial-run-01").display()
            ),
            format!("--work-dir={}", dir.path().join("dataset-cache").display()),
            "--trainer.callbacks.lm_evaluator.enabled=false".into(),
            "--trainer.callbacks.downstream_evaluator.enabled=false".into(),
            "--trainer.no_checkpoints".into(),
            "--trainer.hard_stop={value: 100, unit: steps}".into(),
        ]
        .into_iter()
        .chain(
            // Overrides that make the model tiny and point at local data.
            [
                "--model-factory=olmo2_1M",
                "--sequence-length=32",
                "--model.vocab_size=1024",
                "--dataset.tokenizer={vocab_size: 1000, eos_token_id: 0, pad_token_id: 999}",
                "--data_loader.global_batch_size=128",
                "--train_module.rank_microbatch_size=64",
                "--trainer.metrics_collect_interval=10",
            ]
            .iter()
            .map(|s| s.to_string()),
        ),
    );
    args.push(format!("--dataset.paths=[{}]", data(dir.path()).display()));
    let o = olmo_train(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        common::losses(&dir.path().join("tutorial-run-01")).len(),
        100
    );
}

#[test]
fn asking_for_cuda_without_a_gpu_fails_every_rank_with_the_reason() {
    if tch::Cuda::is_available() {
        return; // the request is valid on a GPU machine (scripts/gpu-check.sh covers that case)
    }
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = launch(
        2,
        &train_args("cuda-run", dir.path(), "run", &["--trainer.device=cuda"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("trainer.device")
            && stderr.contains("'cuda' requested, but CUDA is unusable"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
