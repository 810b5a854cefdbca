//! torch's own Gloo process group through the shim: two processes rendezvous over TCPStore and
//! all-reduce, broadcast and barrier; a rank that never arrives times out with an error.
use std::process::Command;

use olmo_train::dist::{DistEnv, ProcessGroup};
use tch::Tensor;

/// A free TCP port on loopback (bound then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The child side: RANK/WORLD_SIZE/MASTER_PORT come from the environment (set by the parent test).
#[test]
fn child_rank_body() {
    let Ok(env) = DistEnv::from_process_env() else {
        return;
    };
    if std::env::var("OLMO_TRAIN_C10D_CHILD").is_err() || env.world_size < 2 {
        return; // only meaningful when spawned by two_processes_all_reduce_and_broadcast
    }
    let pg = ProcessGroup::new(&env, 30).unwrap();
    let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]) * (env.rank as f64 + 1.0);
    pg.all_reduce_sum(&[t.shallow_clone()]).unwrap();
    assert_eq!(Vec::<f32>::try_from(&t).unwrap(), vec![3.0, 6.0, 9.0]);
    let b = Tensor::from_slice(&[env.rank as f32 + 10.0]);
    pg.broadcast(&[b.shallow_clone()], 0).unwrap();
    assert_eq!(Vec::<f32>::try_from(&b).unwrap(), vec![10.0]);
    pg.barrier().unwrap();
}

#[test]
fn two_processes_all_reduce_and_broadcast() {
    let port = free_port();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_rank_body",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("OLMO_TRAIN_C10D_CHILD", "1")
                .spawn()
                .unwrap()
        })
        .collect();
    for (rank, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "rank {rank} failed");
    }
}

#[test]
fn a_rank_that_never_arrives_times_out_with_an_error() {
    let env = DistEnv {
        rank: 0,
        world_size: 2,
        local_rank: 0,
        local_world_size: 2,
        master_addr: "127.0.0.1".into(),
        master_port: free_port(),
    };
    let started = std::time::Instant::now();
    let err = ProcessGroup::new(&env, 2)
        .err()
        .expect("rank 1 never comes")
        .to_string();
    assert!(started.elapsed().as_secs() < 30, "bounded wait");
    assert!(err.contains("rendezvous of rank 0 of 2"), "{err}");
}
