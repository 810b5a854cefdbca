//! Helpers shared by the end-to-end tests (each test binary uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A learnable raw uint16 token file (vocab < 100): a repeating "text" with EOS (0) every 50 tokens.
pub fn learnable_tokens(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("tokens.npy");
    let ids: Vec<u8> = (0..n)
        .map(|i| {
            if i % 50 == 49 {
                0u16
            } else {
                1 + ((i * 7 + i / 300) % 97) as u16
            }
        })
        .flat_map(|t| t.to_le_bytes())
        .collect();
    std::fs::write(&path, ids).unwrap();
    path
}

/// Every row of a run's `metrics.jsonl` in `save`, in order.
pub fn metrics_rows(save: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(save.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `train/CE loss` of every row of a run's `metrics.jsonl` in `save`.
pub fn losses(save: &Path) -> Vec<f64> {
    metrics_rows(save)
        .iter()
        .map(|r| r["train/CE loss"].as_f64().unwrap())
        .collect()
}

pub mod pinned;
pub mod range_server;

/// A TCP port free on this machine right now, for a rendezvous.
pub fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string()
}

/// A run of olmo2_1M (vocabulary 1024) on `learnable_tokens` for `steps` steps, on `ranks` processes
/// (through `launch` when more than one), checkpoints every 5 steps, evaluators off; `extra` last, so it
/// overrides. Saves to `dir/name`.
pub fn tiny_run(
    dir: &Path,
    name: &str,
    ranks: u32,
    steps: u32,
    extra: &[&str],
) -> std::process::Output {
    tiny_run_command(dir, name, ranks, steps, extra)
        .output()
        .unwrap()
}

/// The command `tiny_run` runs, for a caller that sets limits on it first.
pub fn tiny_run_command(
    dir: &Path,
    name: &str,
    ranks: u32,
    steps: u32,
    extra: &[&str],
) -> std::process::Command {
    let data = learnable_tokens(dir, 20_000);
    let mut args: Vec<String> = Vec::new();
    if ranks > 1 {
        args.extend([
            "launch".to_string(),
            format!("--nproc-per-node={ranks}"),
            format!("--master-port={}", free_port()),
        ]);
    }
    args.extend(
        [
            name,
            "--model-factory=olmo2_1M",
            "--sequence-length=32",
            "--trainer.device=cpu",
            "--model.vocab_size=1024",
            "--dataset.tokenizer={vocab_size: 1000, eos_token_id: 0, pad_token_id: 999}",
            "--data_loader.global_batch_size=256",
            "--data_loader.num_workers=1",
            "--train_module.rank_microbatch_size=64",
            "--train_module.optim.lr=0.01",
            "--trainer.metrics_collect_interval=1",
            "--trainer.callbacks.lm_evaluator.enabled=false",
            "--trainer.callbacks.downstream_evaluator.enabled=false",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.push(format!(
        "--trainer.max_duration={{value: {steps}, unit: steps}}"
    ));
    args.push(
        "--trainer.callbacks.checkpointer={save_interval: 5, ephemeral_save_interval: null}".into(),
    );
    args.push(format!("--dataset.paths=[{}]", data.display()));
    args.push(format!("--save-folder={}", dir.join(name).display()));
    args.push(format!("--work-dir={}", dir.join("cache").display()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_olmo-train"));
    command.args(&args).env("OMP_NUM_THREADS", "1");
    command
}

/// A batch of token rows, each `seq` long, with no masks or documents (the parity tests' batches).
pub fn token_batch(rows: &[Vec<i64>], seq: i64) -> olmo_train::data::Batch {
    olmo_train::data::Batch {
        input_ids: tch::Tensor::from_slice(&rows.concat()).view([rows.len() as i64, seq]),
        label_mask: None,
        instance_mask: None,
        doc_lens: None,
        max_doc_lens: None,
        index: Vec::new(),
        files: Vec::new(),
    }
}

/// OLMo-core's example group override: no weight decay on the embeddings.
pub fn no_embedding_decay() -> Option<Vec<olmo_train::config::train_module::OptimGroupOverride>> {
    Some(vec![olmo_train::config::train_module::OptimGroupOverride {
        params: vec!["embeddings.weight".into()],
        opts: [("weight_decay".into(), serde_yaml::Value::from(0.0))]
            .into_iter()
            .collect(),
    }])
}
