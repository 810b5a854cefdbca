//! What `--dry-run` prints: the resolved config as YAML, then a summary as YAML comments (so the whole
//! output still parses as YAML), then notes on settings olmo-train would refuse to run with.
use std::fmt::Write;

use crate::config::support::unsupported_settings;
use crate::config::ExperimentConfig;

/// The full `--dry-run` text for `config`, built by `model_factory`.
pub fn render(config: &ExperimentConfig, model_factory: &str) -> String {
    let mut out = config.to_yaml();
    out.push_str(&summary(config, model_factory));
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
