//! Gloo all-reduce bandwidth between two processes on this machine, through the same c10d shim training
//! uses. `cargo bench --bench allreduce` starts two copies of itself as ranks 0 and 1 (loopback TCPStore),
//! each all-reduces fp32 buffers from 1 MiB to 256 MiB; rank 0 prints time per call and bus bandwidth
//! (`2 (n-1)/n x bytes / time`, NCCL-tests' convention).
mod support;

use std::process::Command;
use std::time::Instant;

use olmo_train::dist::{DistEnv, ProcessGroup};
use tch::{Device, Kind, Tensor};

fn rank_body(env: &DistEnv) {
    let pg = ProcessGroup::new(env, 60).expect("process group");
    for mib in [1i64, 4, 16, 64, 256] {
        let n = mib * (1 << 20) / 4;
        let t = Tensor::ones([n], (Kind::Float, Device::Cpu));
        pg.all_reduce_sum(&[t.shallow_clone()]).expect("warm-up");
        let reps = (512 / mib).clamp(3, 50);
        pg.barrier().expect("barrier");
        let start = Instant::now();
        for _ in 0..reps {
            pg.all_reduce_sum(&[t.shallow_clone()]).expect("all-reduce");
        }
        let per = start.elapsed().as_secs_f64() / reps as f64;
        if env.rank == 0 {
            let w = env.world_size as f64;
            let bus = 2.0 * (w - 1.0) / w * (n * 4) as f64 / per / 1e9;
            println!(
                "all-reduce {mib:>3} MiB fp32, {} ranks: {:.2} ms, bus bandwidth {bus:.2} GB/s",
                env.world_size,
                per * 1e3
            );
        }
    }
}

fn main() {
    if std::env::var_os("OLMO_TRAIN_ALLREDUCE_CHILD").is_some() {
        let env = DistEnv::from_process_env().expect("RANK/WORLD_SIZE");
        rank_body(&env);
        return;
    }
    if support::positional_args_when_benchmarking().is_none() {
        println!("allreduce: run by cargo test, not cargo bench; nothing to measure");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let exe = std::env::current_exe().expect("own path");
    let children: Vec<_> = (0..2)
        .map(|rank| {
            Command::new(&exe)
                .env("OLMO_TRAIN_ALLREDUCE_CHILD", "1")
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .spawn()
                .expect("spawn rank")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success(), "a rank failed");
    }
}
