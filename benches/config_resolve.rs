//! How long resolving a config takes (defaults + 10 overrides + typed deserialization): the part of
//! `--dry-run` that is ours rather than process start-up. `cargo bench --bench config_resolve`.
mod support;

use std::time::Instant;

use olmo_train::config::overrides::Override;
use olmo_train::config::resolve::resolve_config;
use olmo_train::config::ExampleOptions;

fn main() {
    let opts = ExampleOptions {
        model_factory: "olmo2_7B".into(),
        ..ExampleOptions::new("bench")
    };
    let overrides: Vec<Override> = [
        "--data_loader.prefetch_factor=4",
        "--trainer.callbacks.wandb.enabled=true",
        "--trainer.hard_stop={value: 100, unit: steps}",
        "--dataset.paths=[/a.npy, /b.npy]",
        "--train_module.optim.lr=3e-4",
        "--train_module.scheduler.warmup=7",
        "--trainer.no_checkpoints",
        "--data_loader.global-batch-size=131072",
        "--trainer.callbacks.lm_evaluator.eval_dataset.paths.0=/c.npy",
        "--load-trainer-state",
    ]
    .iter()
    .map(|a| Override::parse(a).expect("valid override"))
    .collect();
    // Under `cargo test` one short pass checks the bench still runs; `cargo bench` measures.
    let iters = if support::positional_args_when_benchmarking().is_some() {
        2000
    } else {
        10
    };
    let start = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(resolve_config(&opts, None, &overrides).expect("resolves"));
    }
    let per = start.elapsed().as_secs_f64() / iters as f64;
    println!(
        "config_resolve: {:.1} µs per resolve ({iters} iterations)",
        per * 1e6
    );
}
