//! Checkpoint write/read throughput for a model-sized state against a plain copy of the same bytes.
//! `cargo bench --bench checkpoint_io -- DIR [PARAMS]` (scripts/bench-checkpoint.sh runs it for 1B).
mod support;

use std::time::Instant;

use olmo_train::checkpoint::{self, layout};
use olmo_train::data::LoaderState;
use tch::{Device, Kind, Tensor};

fn main() {
    let Some(args) = support::positional_args_when_benchmarking() else {
        println!("checkpoint_io: run by cargo test, not cargo bench; nothing to measure");
        return;
    };
    let Some(dir) = args.first() else {
        println!("checkpoint_io bench: pass DIR [PARAMS] (see scripts/bench-checkpoint.sh); nothing to measure");
        return;
    };
    let params: i64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000_000);
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).expect("dir");
    // 2048 x 2048 matrices (4 MiB fp32 each), like a 1B model's projections.
    let n = (params / (2048 * 2048)).max(1);
    let tensors: Vec<(String, Tensor)> = (0..n)
        .map(|i| {
            (
                format!("blocks.{i}.w"),
                Tensor::randn([2048, 2048], (Kind::Float, Device::Cpu)),
            )
        })
        .collect();
    let trainer = checkpoint::TrainerState {
        global_step: 1,
        global_train_tokens_seen: 0,
        max_steps: 1,
        epoch: 1,
        world_size: 1,
        data_loader: serde_json::to_value(LoaderState {
            dataset_fingerprint_version: "v2.0".into(),
            dataset_fingerprint: String::new(),
            batches_processed: 0,
            tokens_processed: 0,
            seed: 0,
            epoch: Some(1),
            dataset_type: "fsl".into(),
            sequence_length: 1,
            max_target_sequence_length: None,
        })
        .expect("json"),
        callbacks: Default::default(),
    };
    let bytes = (n * 2048 * 2048 * 4) as f64;
    // Rounds alternate save, load and copy; before each timed part the disk catches up with earlier
    // writes (`sync`), so neither side pays for the other's dirty pages. Medians of ROUNDS.
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let (mut saves, mut loads, mut copies) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        settle();
        let t = Instant::now();
        let snap = checkpoint::Snapshot {
            model: checkpoint::to_host(&tensors, false),
            optim_tensors: Vec::new(),
            optim_json: serde_json::json!({"param_groups": [], "steps": {}}),
            trainer: trainer.clone(),
            config_json: "{}".into(),
            data_paths: Vec::new(),
            shards: None,
        };
        let written = checkpoint::write(&snap, dir, round as u64 + 1, false, true).expect("write");
        drop(snap);
        saves.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        checkpoint::load_model(&written, &tensors).expect("load");
        loads.push(t.elapsed().as_secs_f64());
        let file = written.join(layout::MODEL);
        settle();
        let t = Instant::now();
        std::fs::copy(&file, dir.join("copy.bin")).expect("copy");
        std::fs::File::open(dir.join("copy.bin"))
            .and_then(|f| f.sync_all())
            .expect("sync");
        copies.push(t.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(dir.join("copy.bin"));
        let _ = std::fs::remove_dir_all(&written);
    }
    let (save, load, copy) = (median(&mut saves), median(&mut loads), median(&mut copies));
    let gb = bytes / 1e9;
    println!(
        "{} parameters ({gb:.2} GB), median of {rounds}: save {save:.2} s ({:.2} GB/s), load {load:.2} s ({:.2} GB/s), plain copy + fsync {copy:.2} s ({:.2} GB/s)",
        n * 2048 * 2048,
        gb / save,
        gb / load,
        gb / copy
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Waits until the system's dirty pages are on disk.
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
