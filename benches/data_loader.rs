//! Data-loader throughput (instances/s) against a raw memory-mapped read of the same instances.
//! `cargo bench --bench data_loader -- DIR SEQ_LEN [BATCHES] [http]` over the uint32 token files in DIR
//! (scripts/bench-data.sh makes them and runs OLMo-core's loader on the same files); with `http`, the
//! loader reads the same files from a local HTTP server (in this process) by byte range.
#[path = "../tests/common/range_server.rs"]
mod range_server;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use olmo_train::config::data::{NumpyDataLoaderConfig, NumpyFSLDatasetConfig, TokenizerConfig};
use olmo_train::data::build::{build_fsl_dataset, build_loader};
use olmo_train::data::token_file::TokenFile;
use olmo_train::token_dtype::TokenDType;

const INSTANCES_PER_BATCH: u64 = 64;

/// The loader's settings default to OLMo-core's example (`num_workers=4`); WORKERS/THREADS override.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    olmo_train::process_setup::tune_allocator();
    let Some(args) = support::positional_args_when_benchmarking() else {
        println!("data_loader: run by cargo test, not cargo bench; nothing to measure");
        return;
    };
    let (Some(dir), Some(seq)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        println!(
            "data_loader bench: pass DIR SEQ_LEN (see scripts/bench-data.sh); nothing to measure"
        );
        return;
    };
    let batches: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let over_http = args.get(3).is_some_and(|a| a == "http");
    // Kept alive for the whole measurement.
    let server = over_http.then(|| range_server::RangeServer::start(Path::new(dir), None));
    let paths = match &server {
        Some(server) => {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .expect("read DIR")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".npy"))
                .collect();
            names.sort();
            names
                .iter()
                .map(|n| format!("{}/{n}", server.url))
                .collect()
        }
        None => vec![format!("{dir}/*.npy")],
    };
    let cfg = NumpyFSLDatasetConfig {
        tokenizer: TokenizerConfig::dolma2(),
        paths: Some(paths),
        sequence_length: seq,
        work_dir: Some(format!("{dir}/work")),
        ..Default::default()
    };
    let (ds, _) = build_fsl_dataset(&cfg).expect("dataset");
    let ds = Arc::new(ds);
    let loader_cfg = NumpyDataLoaderConfig {
        global_batch_size: seq * INSTANCES_PER_BATCH,
        seed: 0,
        num_workers: env_or("WORKERS", 4),
        num_threads: std::env::var("THREADS").ok().and_then(|t| t.parse().ok()),
        ..Default::default()
    };
    let mut loader = build_loader(&loader_cfg, ds.clone(), 0, 1).expect("loader");
    loader.reshuffle(Some(1)).expect("reshuffle");
    let batches = batches.min(loader.total_batches());

    // Raw read: the same instances, straight from the memory maps into i64 buffers.
    let mut local_paths: Vec<std::path::PathBuf> = glob::glob(&format!("{dir}/*.npy"))
        .expect("glob")
        .flatten()
        .collect();
    local_paths.sort();
    let files: Vec<TokenFile> = local_paths
        .iter()
        .map(|p| TokenFile::open(p, TokenDType::Uint32).expect("open"))
        .collect();
    let per_file: Vec<u64> = files.iter().map(|f| f.len() / seq).collect();
    let order: Vec<u64> = (0..batches)
        .flat_map(|b| loader.rank_batch_indices(b).expect("indices"))
        .collect();
    let start = Instant::now();
    let mut sink = 0i64;
    let mut buf = vec![0i64; (seq * INSTANCES_PER_BATCH) as usize];
    for chunk in order.chunks(INSTANCES_PER_BATCH as usize) {
        for (out, &idx) in buf.chunks_mut(seq as usize).zip(chunk) {
            let (mut f, mut local) = (0, idx);
            while local >= per_file[f] {
                local -= per_file[f];
                f += 1;
            }
            let bytes = files[f]
                .bytes(local * seq, (local + 1) * seq)
                .expect("read");
            TokenDType::Uint32.widen_into(&bytes, out);
        }
        sink ^= buf[buf.len() / 2];
    }
    let raw = order.len() as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut n = 0u64;
    for _ in 0..batches {
        let b = loader.next_batch().expect("batch").expect("ok");
        n += b.num_instances() as u64;
        sink ^= b.index[0] as i64;
    }
    let ours = n as f64 / start.elapsed().as_secs_f64();
    let source = if over_http { " over local HTTP" } else { "" };
    println!("seq {seq}: olmo-train loader{source} {ours:.0} instances/s, raw memmap read (one thread) {raw:.0} instances/s ({} batches of {INSTANCES_PER_BATCH}; {sink})", batches);
}
