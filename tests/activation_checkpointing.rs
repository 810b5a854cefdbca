//! OLMo-core's `train_module.ac_config` end to end: checkpointing every block, or every other block,
//! trains exactly as without it (losses, grad norms and final weights bit for bit, over micro-batches),
//! in one process and in two under DDP; modes that are not built are refused by name.
use std::path::Path;
use std::process::Output;

use tch::Tensor;

mod common;

fn run(dir: &Path, name: &str, ranks: u32, extra: &[&str]) -> Output {
    common::tiny_run(dir, name, ranks, 5, extra)
}

/// Per step: CE loss and total grad norm, as logged.
fn trajectory(dir: &Path, name: &str) -> Vec<(f64, f64)> {
    std::fs::read_to_string(dir.join(name).join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["train/CE loss"].as_f64().unwrap(),
                v["optim/total grad norm"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn final_weights(dir: &Path, name: &str) -> Vec<(String, Tensor)> {
    // Through the library: a sharded run writes its checkpoint in parts.
    let mut w = olmo_train::checkpoint::read_model_tensors(&dir.join(name).join("step5")).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

fn assert_same_training(dir: &Path, a: &str, b: &str) {
    let (ta, tb) = (trajectory(dir, a), trajectory(dir, b));
    assert_eq!(ta.len(), 5);
    assert_eq!(ta, tb, "{a} vs {b}");
    for ((na, wa), (nb, wb)) in final_weights(dir, a).iter().zip(final_weights(dir, b)) {
        assert_eq!(na, &nb);
        assert!(wa.equal(&wb), "{na} differs between {a} and {b}");
    }
}

#[test]
fn checkpointed_blocks_train_bit_for_bit_as_plain_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, extra) in [
        ("plain", None),
        ("full", Some("--train_module.ac_config={mode: full}")),
        (
            "every-other",
            Some("--train_module.ac_config={mode: selected_blocks, block_interval: 2}"),
        ),
    ] {
        let out = run(d, name, 1, extra.as_slice());
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_same_training(d, "plain", "full");
    assert_same_training(d, "plain", "every-other");
}

#[test]
fn checkpointing_under_ddp_trains_as_ddp_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ddp = "--train_module.dp_config={name: ddp}";
    for (name, extra) in [
        ("ddp-plain", vec![ddp]),
        (
            "ddp-full",
            vec![ddp, "--train_module.ac_config={mode: full}"],
        ),
    ] {
        let out = run(d, name, 2, &extra);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_same_training(d, "ddp-plain", "ddp-full");
}

#[test]
fn modes_that_are_not_built_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        "budget",
        1,
        &["--train_module.ac_config={mode: budget, activation_memory_budget: 0.5}"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("train_module.ac_config.mode")
            && stderr.contains("only 'full' and 'selected_blocks'"),
        "{stderr}"
    );
}
