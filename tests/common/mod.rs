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

/// A TCP port free on this machine right now, for a rendezvous.
pub fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string()
}
