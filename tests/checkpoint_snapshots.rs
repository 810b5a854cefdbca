//! The checkpointer decides before anything is copied: a run takes a snapshot of the whole state (every
//! parameter and both AdamW moments) only for a save that is due, never once per step. With OLMo-core's
//! default checkpointer settings (`save_interval: 1000`, `ephemeral_save_interval: 100`,
//! `save_async: true`) a 12-step run saves, and snapshots, twice: step 0 and the final step.
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use olmo_train::config::overrides::Override;
use olmo_train::config::resolve::resolve_config;
use olmo_train::config::ExampleOptions;

mod common;

fn run(dir: &std::path::Path, checkpointer: &str) -> olmo_train::train::TrainSummary {
    let data = common::learnable_tokens(dir, 20_000);
    let mut opts = ExampleOptions::new("snapshots");
    opts.model_factory = "olmo2_1M".into();
    opts.sequence_length = 32;
    let args = [
        "--trainer.device=cpu".to_string(),
        "--model.vocab_size=1024".into(),
        "--dataset.tokenizer={vocab_size: 1000, eos_token_id: 0, pad_token_id: 999}".into(),
        format!("--dataset.paths=[{}]", data.display()),
        format!("--dataset.work_dir={}", dir.join("cache").display()),
        format!("--trainer.save_folder={}", dir.join("run").display()),
        "--data_loader.global_batch_size=128".into(),
        "--data_loader.num_workers=1".into(),
        "--train_module.rank_microbatch_size=128".into(),
        "--trainer.max_duration={value: 12, unit: steps}".into(),
        "--trainer.callbacks.lm_evaluator.enabled=false".into(),
        "--trainer.callbacks.downstream_evaluator.enabled=false".into(),
        format!("--trainer.callbacks.checkpointer={checkpointer}"),
    ];
    let overrides: Vec<Override> = args.iter().map(|a| Override::parse(a).unwrap()).collect();
    let config = resolve_config(&opts, None, &overrides).unwrap();
    olmo_train::train::train(&config, Arc::new(AtomicBool::new(false))).unwrap()
}

fn saved_steps(dir: &std::path::Path) -> Vec<u64> {
    let mut steps: Vec<u64> = std::fs::read_dir(dir.join("run"))
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_prefix("step")?
                .parse()
                .ok()
        })
        .collect();
    steps.sort_unstable();
    steps
}

#[test]
fn olmo_cores_default_checkpointer_snapshots_only_for_due_saves() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(
        dir.path(),
        "{save_interval: 1000, ephemeral_save_interval: 100, save_async: true}",
    );
    assert_eq!(summary.steps, 12);
    assert_eq!(summary.snapshots, 2, "step 0 and the final step only");
    assert_eq!(saved_steps(dir.path()), vec![0, 12]);
}

#[test]
fn every_due_save_takes_exactly_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    // Ephemeral saves at 5 and 10 (5 is removed once 10 is written), the final one at 12.
    let summary = run(
        dir.path(),
        "{save_interval: 1000, ephemeral_save_interval: 5, save_async: true}",
    );
    assert_eq!(summary.snapshots, 4, "steps 0, 5, 10 and 12");
    assert_eq!(saved_steps(dir.path()), vec![0, 10, 12]);
}
