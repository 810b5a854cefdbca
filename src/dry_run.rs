//! What `--dry-run` prints: the resolved config as YAML, then a summary as YAML comments (so the whole
//! output still parses as YAML), then notes on settings olmo-train would refuse to run with.
use std::fmt::Write;

use crate::config::support::{compile_model_note, unsupported_settings};
use crate::config::ExperimentConfig;
use crate::eval::task_file::{available_tasks, default_tasks_dir};

/// The full `--dry-run` text for `config`, built by `model_factory`.
pub fn render(config: &ExperimentConfig, model_factory: &str) -> String {
    let mut out = config.to_yaml();
    out.push_str(&summary(config, model_factory));
    for task in missing_downstream_tasks(config) {
        let _ = writeln!(
            out,
            "# note: downstream task '{task}' is not in the task folder {}; a run would stop here (scripts/get-eval-tasks.sh {task})",
            default_tasks_dir().display()
        );
    }
    if let Some(note) = compile_model_note(config) {
        let _ = writeln!(out, "# note: {note}");
    }
    for u in unsupported_settings(config) {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# note: {} = {} is not supported yet ({}); a run would stop here",
            u.path, u.value, u.hint
        );
    }
    out
}

/// The enabled downstream callback's tasks that the task folder lacks.
fn missing_downstream_tasks(config: &ExperimentConfig) -> Vec<String> {
    let Some(cb) = config
        .trainer
        .callbacks
        .downstream_evaluator
        .as_ref()
        .filter(|c| c.enabled && !config.trainer.no_evals)
    else {
        return Vec::new();
    };
    let available = available_tasks(&default_tasks_dir());
    cb.tasks
        .iter()
        .filter(|t| !available.contains(t))
        .cloned()
        .collect()
}

/// The summary lines: factory, parameter counts (plain integers), tokenizer and batch geometry.
pub fn summary(config: &ExperimentConfig, model_factory: &str) -> String {
    let m = &config.model;
    let tok = &config.dataset.tokenizer;
    let seq = config.dataset.sequence_length;
    let mut s = String::new();
    let _ = writeln!(s, "# model factory: {model_factory}");
    let _ = writeln!(s, "# parameters: {}", m.num_params());
    let _ = writeln!(
        s,
        "# non-embedding parameters: {}",
        m.num_non_embedding_params()
    );
    if m.num_active_params() != m.num_params() {
        let _ = writeln!(s, "# active parameters: {}", m.num_active_params());
    }
    let _ = writeln!(
        s,
        "# tokenizer: {} (vocab {})",
        tok.identifier.as_deref().unwrap_or("(unnamed)"),
        tok.vocab_size
    );
    let _ = writeln!(s, "# padded vocab size: {}", m.vocab_size);
    let _ = writeln!(
        s,
        "# global batch: {} tokens = {} instances",
        config.data_loader.global_batch_size,
        config.global_batch_instances()
    );
    let _ = writeln!(s, "# sequence length: {seq}");
    s
}
