//! `olmo-train launch`: torchrun for olmo-train. Spawns `--nproc-per-node` copies of this binary with
//! torch's variables (`RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`,
//! `MASTER_PORT`), prefixes each line of their output with the rank, forwards SIGINT/SIGTERM, and if a
//! worker fails stops the others (SIGTERM, then SIGKILL after a grace period) and exits with the failed
//! worker's code. Workers die with the launcher (`PR_SET_PDEATHSIG`), so nothing is left behind.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "olmo-train launch",
    about = "Run olmo-train on several processes (as torchrun)"
)]
pub struct LaunchArgs {
    #[arg(long = "nproc-per-node", alias = "nproc_per_node", default_value_t = 1)]
    pub nproc_per_node: u64,
    #[arg(long, default_value_t = 1)]
    pub nnodes: u64,
    #[arg(long = "node-rank", alias = "node_rank", default_value_t = 0)]
    pub node_rank: u64,
    #[arg(
        long = "master-addr",
        alias = "master_addr",
        default_value = "127.0.0.1"
    )]
    pub master_addr: String,
    #[arg(long = "master-port", alias = "master_port", default_value_t = 29500)]
    pub master_port: u16,
    /// How long a failed run's other workers get to stop after SIGTERM.
    #[arg(long = "grace-seconds", default_value_t = 10)]
    pub grace_seconds: u64,
    /// The training command line (run name, options, overrides).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// Copies a worker's output line by line with its rank in front.
fn relay(
    reader: impl std::io::Read + Send + 'static,
    rank: u64,
    to_stderr: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(|l| l.ok()) {
            if to_stderr {
                let _ = writeln!(std::io::stderr().lock(), "[rank {rank}] {line}");
            } else {
                let _ = writeln!(std::io::stdout().lock(), "[rank {rank}] {line}");
            }
        }
    })
}

/// Runs the workers; returns the launcher's exit code.
pub fn run(args: &LaunchArgs, stop: Arc<AtomicBool>) -> Result<i32> {
    if args.nproc_per_node == 0 || args.nnodes == 0 || args.node_rank >= args.nnodes {
        return Err(Error::Usage(
            "launch: --nproc-per-node and --nnodes must be positive and --node-rank below --nnodes"
                .into(),
        ));
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    let world = args.nnodes * args.nproc_per_node;
    let mut children = Vec::new();
    let mut relays = Vec::new();
    // As torchrun: several workers each taking every core oversubscribe the node; one thread each
    // unless the user chose.
    let omp_threads = (args.nproc_per_node > 1 && std::env::var_os("OMP_NUM_THREADS").is_none())
        .then(|| {
            tracing::warn!(
                "setting OMP_NUM_THREADS=1 for each worker (as torchrun does); set it to tune"
            );
            "1"
        });
    for local in 0..args.nproc_per_node {
        let rank = args.node_rank * args.nproc_per_node + local;
        let mut cmd = Command::new(&exe);
        cmd.args(&args.command)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", local.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_WORLD_SIZE", args.nproc_per_node.to_string())
            .env("GROUP_RANK", args.node_rank.to_string())
            .env("MASTER_ADDR", &args.master_addr)
            .env("MASTER_PORT", args.master_port.to_string())
            .envs(omp_threads.map(|n| ("OMP_NUM_THREADS", n)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; the worker is killed if the launcher dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| Error::io(&exe, e))?;
        if let Some(out) = child.stdout.take() {
            relays.push(relay(out, rank, false));
        }
        if let Some(err) = child.stderr.take() {
            relays.push(relay(err, rank, true));
        }
        children.push((rank, child));
    }
    let code = supervise(
        &mut children,
        &stop,
        Duration::from_secs(args.grace_seconds),
    );
    for r in relays {
        let _ = r.join();
    }
    Ok(code)
}

/// Waits for the workers; on the first failure stops the rest. Returns the exit code to use.
fn supervise(children: &mut [(u64, Child)], stop: &AtomicBool, grace: Duration) -> i32 {
    let mut done = vec![None; children.len()];
    let mut forwarded = false;
    let mut failure: Option<(u64, i32)> = None;
    let mut kill_deadline: Option<Instant> = None;
    loop {
        for (i, (rank, child)) in children.iter_mut().enumerate() {
            if done[i].is_none() {
                if let Ok(Some(status)) = child.try_wait() {
                    let code = status.code().unwrap_or(1);
                    done[i] = Some(code);
                    if code != 0 && failure.is_none() && !forwarded {
                        failure = Some((*rank, code));
                        tracing::error!(
                            "rank {rank} exited with code {code}; stopping the other ranks"
                        );
                    }
                }
            }
        }
        if done.iter().all(Option::is_some) {
            break;
        }
        let stopping = failure.is_some() || stop.load(Ordering::Relaxed);
        if stopping && !forwarded {
            forwarded = true;
            kill_deadline = Some(Instant::now() + grace);
            for (i, (_, child)) in children.iter().enumerate() {
                if done[i].is_none() {
                    signal(child, libc::SIGTERM);
                    // A stopped worker (SIGSTOP, a debugger let go) acts on SIGTERM only once it runs.
                    signal(child, libc::SIGCONT);
                }
            }
        }
        if kill_deadline.is_some_and(|d| Instant::now() > d) {
            for (i, (_, child)) in children.iter_mut().enumerate() {
                if done[i].is_none() {
                    let _ = child.kill();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match failure {
        Some((rank, code)) => {
            tracing::error!("launch failed: rank {rank} exited with code {code}");
            code
        }
        None => done
            .iter()
            .flatten()
            .copied()
            .find(|&c| c != 0)
            .unwrap_or(0),
    }
}
