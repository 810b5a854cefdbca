//! Sharded data parallelism (`dp_config.name: fsdp | hsdp`) end to end on CPU with Gloo: on one
//! process it trains bit for bit as the plain path (with and without activation checkpointing); on
//! 2 and 4 processes, and as HSDP 2 x 2, it trains as one process does up to the reduction order;
//! each rank keeps 1/W of the state; checkpoints resume bit for bit at the same world size and
//! closely at another; bad meshes are refused by key.
use std::path::Path;
use std::process::{Command, Output};

use tch::Tensor;

mod common;

const FSDP: &str = "--train_module.dp_config={name: fsdp}";
/// Over 20 steps at the default test LR (0.01) this tiny model turns chaotic enough that 2- and
/// 4-process DDP's grad norms drift 1.7e-5 from one process's; at 0.002 every run stays within 3e-7.
const SLOW_LR: &str = "--train_module.optim.lr=0.002";

fn run(dir: &Path, name: &str, ranks: u32, steps: u32, extra: &[&str]) -> Output {
    common::tiny_run(dir, name, ranks, steps, extra)
}

fn run_ok(dir: &Path, name: &str, ranks: u32, steps: u32, extra: &[&str]) {
    let out = run(dir, name, ranks, steps, extra);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Per logged step: CE loss and total grad norm.
fn trajectory(dir: &Path, name: &str) -> Vec<(f64, f64)> {
    common::metrics_rows(&dir.join(name))
        .iter()
        .map(|v| {
            (
                v["train/CE loss"].as_f64().unwrap(),
                v["optim/total grad norm"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// A checkpoint's weights and optimizer moments, sorted by name.
fn state(dir: &Path, name: &str, step: u32) -> Vec<(String, Tensor)> {
    let mut w = weights(dir, name, step, "model.safetensors");
    w.extend(weights(dir, name, step, "optim.safetensors"));
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

/// One file of a checkpoint ("model.safetensors" or "optim.safetensors"), sorted by name, read through
/// the library in either layout (sharded runs write one part per rank).
fn weights(dir: &Path, name: &str, step: u32, file: &str) -> Vec<(String, Tensor)> {
    let ckpt = dir.join(name).join(format!("step{step}"));
    let mut w: Vec<(String, Tensor)> = match file {
        "model.safetensors" => olmo_train::checkpoint::read_model_tensors(&ckpt).unwrap(),
        _ => olmo_train::checkpoint::read_optim(&ckpt)
            .unwrap()
            .tensors
            .into_iter()
            .collect(),
    };
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

fn assert_same_state(dir: &Path, a: &str, b: &str, step: u32) {
    let (sa, sb) = (state(dir, a, step), state(dir, b, step));
    assert_eq!(sa.len(), sb.len());
    for ((na, ta), (nb, tb)) in sa.iter().zip(&sb) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs between {a} and {b}");
    }
}

/// The largest difference between two runs' tensors in `file`, relative to the tensor's largest
/// magnitude.
fn difference(dir: &Path, a: &str, b: &str, step: u32, file: &str) -> f64 {
    let (sa, sb) = (weights(dir, a, step, file), weights(dir, b, step, file));
    assert_eq!(sa.len(), sb.len());
    sa.iter()
        .zip(&sb)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            let scale = ta.abs().max().double_value(&[]).max(1e-12);
            (ta - tb).abs().max().double_value(&[]) / scale
        })
        .fold(0.0, f64::max)
}

fn assert_close_trajectories(a: &[(f64, f64)], b: &[(f64, f64)], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, ((la, ga), (lb, gb))) in a.iter().zip(b).enumerate() {
        assert!(
            (la - lb).abs() / la.abs() <= tol,
            "{what} step {}: loss {la} vs {lb}",
            i + 1
        );
        assert!(
            (ga - gb).abs() / ga.abs() <= tol,
            "{what} step {}: grad norm {ga} vs {gb}",
            i + 1
        );
    }
}

fn last_metric(dir: &Path, name: &str, key: &str) -> f64 {
    common::metrics_rows(&dir.join(name))
        .last()
        .and_then(|r| r[key].as_f64())
        .unwrap_or_else(|| panic!("{name} logged no {key}"))
}

#[test]
fn fsdp_on_one_process_trains_bit_for_bit_as_the_plain_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(d, "plain", 1, 5, &["--train_module.dp_config=null"]);
    run_ok(d, "fsdp", 1, 5, &[FSDP]);
    run_ok(
        d,
        "fsdp-ac",
        1,
        5,
        &[FSDP, "--train_module.ac_config={mode: full}"],
    );
    let plain = trajectory(d, "plain");
    assert_eq!(plain.len(), 5);
    for other in ["fsdp", "fsdp-ac"] {
        assert_eq!(plain, trajectory(d, other), "{other}");
        assert_same_state(d, "plain", other, 5);
    }
}

#[test]
fn fsdp_and_hsdp_on_several_processes_train_as_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(d, "one", 1, 20, &[FSDP, SLOW_LR]);
    run_ok(d, "fsdp2", 2, 20, &[FSDP, SLOW_LR]);
    run_ok(d, "fsdp4", 4, 20, &[FSDP, SLOW_LR]);
    run_ok(
        d,
        "hsdp2x2",
        4,
        20,
        &[
            "--train_module.dp_config={name: hsdp, num_replicas: 2}",
            SLOW_LR,
        ],
    );
    run_ok(
        d,
        "fsdp2-ac",
        2,
        20,
        &[FSDP, SLOW_LR, "--train_module.ac_config={mode: full}"],
    );
    let one = trajectory(d, "one");
    assert_eq!(one.len(), 20);
    for other in ["fsdp2", "fsdp4", "hsdp2x2"] {
        assert_close_trajectories(&one, &trajectory(d, other), 1e-5, other);
        let diff = difference(d, "one", other, 20, "model.safetensors");
        assert!(diff <= 1e-5, "{other}: final weights differ by {diff:e}");
        // AdamW's first moments average gradients that nearly cancel: relative to their largest
        // entry they move more (2-process DDP: 1.3e-4 here).
        let diff = difference(d, "one", other, 20, "optim.safetensors");
        assert!(diff <= 1e-3, "{other}: final moments differ by {diff:e}");
    }
    // Activation checkpointing changes nothing under sharding either.
    assert_eq!(trajectory(d, "fsdp2"), trajectory(d, "fsdp2-ac"));
    assert_same_state(d, "fsdp2", "fsdp2-ac", 20);
    // Each rank keeps its 1/W share of the shards, gradients and moments (plus under a block of
    // padding per unit).
    let key = "fsdp/persistent shards (MiB)";
    let whole = last_metric(d, "one", key);
    for (name, w, shards) in [
        ("fsdp2", 2.0, 2.0),
        ("fsdp4", 4.0, 4.0),
        ("hsdp2x2", 4.0, 2.0),
    ] {
        let per_rank = last_metric(d, name, key);
        let padding = 16.0 * 8.0 * w / (1 << 20) as f64;
        assert!(
            per_rank <= whole / shards + padding,
            "{name}: {per_rank} MiB per rank, {whole} MiB on one process"
        );
    }
}

/// Copies `from`'s checkpoint of `step` alone into a fresh save folder `to`.
fn seed_from(dir: &Path, from: &str, step: u32, to: &str) {
    let src = dir.join(from).join(format!("step{step}"));
    let dst = dir.join(to).join(format!("step{step}"));
    copy_dir(&src, &dst);
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        match e.file_type().unwrap().is_dir() {
            true => copy_dir(&e.path(), &to),
            false => {
                std::fs::copy(e.path(), to).unwrap();
            }
        }
    }
}

#[test]
fn sharded_checkpoints_resume_at_any_world_size() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(d, "straight", 2, 10, &[FSDP]);
    for (name, ranks) in [("again2", 2), ("at1", 1), ("at4", 4)] {
        seed_from(d, "straight", 5, name);
        run_ok(d, name, ranks, 10, &[FSDP]);
    }
    let straight = trajectory(d, "straight");
    assert_eq!(straight.len(), 10);
    // Same world size: bit for bit.
    assert_eq!(straight[5..], trajectory(d, "again2")[..]);
    assert_same_state(d, "straight", "again2", 10);
    // Another world size: the reductions add in another order.
    for name in ["at1", "at4"] {
        assert_close_trajectories(&straight[5..], &trajectory(d, name), 1e-6, name);
        let diff = difference(d, "straight", name, 10, "model.safetensors");
        assert!(diff <= 1e-6, "{name}: final weights differ by {diff:e}");
    }
    // Two ranks wrote parts; `convert unshard` makes the single-file layout with the same tensors.
    let sharded = d.join("straight/step10");
    assert!(sharded.join("model_and_optim/shards/index.json").is_file());
    let out = Command::new(env!("CARGO_BIN_EXE_olmo-train"))
        .args(["convert", "unshard"])
        .arg(&sharded)
        .arg(d.join("unsharded/step10"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(d
        .join("unsharded/step10/model_and_optim/model.safetensors")
        .is_file());
    for file in ["model.safetensors", "optim.safetensors"] {
        assert_eq!(
            difference(d, "straight", "unsharded", 10, file),
            0.0,
            "{file}"
        );
    }
}

#[test]
fn bad_meshes_and_dtypes_are_refused_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (ranks, setting, key, says) in [
        (
            1,
            "{name: hsdp}",
            "train_module.dp_config.name",
            "at least 2 processes",
        ),
        (
            2,
            "{name: hsdp, shard_degree: 3}",
            "train_module.dp_config.shard_degree",
            "does not divide",
        ),
        (
            1,
            "{name: fsdp, param_dtype: float16}",
            "train_module.dp_config.param_dtype",
            "bfloat16",
        ),
        (
            1,
            "{name: fsdp, wrapping_strategy: fine_grained}",
            "train_module.dp_config.wrapping_strategy",
            "fine_grained",
        ),
    ] {
        let arg = format!("--train_module.dp_config={setting}");
        let out = run(d, "bad", ranks, 2, &[&arg]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{setting} was accepted");
        assert!(
            stderr.contains(key) && stderr.contains(says),
            "{setting}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{setting}: {stderr}");
    }
}

/// Three ranks: every unit's flat buffer is padded to a multiple of 3, and parameters straddle the
/// shard boundaries. Still one process's training, and a third of its state per rank.
#[test]
fn three_processes_with_padded_shards_train_as_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let batch = "--data_loader.global_batch_size=192";
    run_ok(d, "one", 1, 10, &[FSDP, SLOW_LR, batch]);
    run_ok(d, "three", 3, 10, &[FSDP, SLOW_LR, batch]);
    assert_close_trajectories(
        &trajectory(d, "one"),
        &trajectory(d, "three"),
        1e-5,
        "three",
    );
    let diff = difference(d, "one", "three", 10, "model.safetensors");
    assert!(diff <= 1e-5, "final weights differ by {diff:e}");
    let key = "fsdp/persistent shards (MiB)";
    let (whole, third) = (last_metric(d, "one", key), last_metric(d, "three", key));
    assert!(
        third > whole / 3.0 && third <= whole / 3.0 + 16.0 * 8.0 * 3.0 / (1 << 20) as f64,
        "{third} MiB per rank, {whole} MiB on one process"
    );
}
