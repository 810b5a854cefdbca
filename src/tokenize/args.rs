//! `olmo-train tokenize`'s flags: `dolma tokens`' own, with its names and defaults.
use std::path::PathBuf;

use crate::token_dtype::TokenDType;

/// `dolma tokens`' flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "olmo-train tokenize",
    about = "Tokenize Dolma JSONL documents into token files (as `dolma tokens`)"
)]
pub struct TokenizeArgs {
    /// One or more globs of .jsonl/.json files, plain, .gz or .zst.
    #[arg(long, num_args = 1.., required = true)]
    pub documents: Vec<String>,
    /// Output folder for part-*.npy and part-*.csv.gz.
    #[arg(long)]
    pub destination: Option<PathBuf>,
    /// A built-in preset (allenai/dolma2-tokenizer, gpt2) or a local tokenizer.json (or folder holding one).
    #[arg(long = "tokenizer.name_or_path")]
    pub tokenizer: String,
    /// Appended to every document (unless it already ends with it).
    #[arg(long = "tokenizer.eos_token_id")]
    pub eos_token_id: Option<u32>,
    /// Prepended to every document (unless it already starts with it).
    #[arg(long = "tokenizer.bos_token_id")]
    pub bos_token_id: Option<u32>,
    /// Recorded for completeness (defaults to the EOS id, as dolma); padding is the reader's business.
    #[arg(long = "tokenizer.pad_token_id")]
    pub pad_token_id: Option<u32>,
    /// Split special-token text (e.g. `<|endoftext|>`) into ordinary tokens instead of mapping it to the special id.
    #[arg(
        long = "tokenizer.encode_special_tokens",
        overrides_with = "no_encode_special_tokens"
    )]
    pub encode_special_tokens: bool,
    #[arg(long = "no-tokenizer.encode_special_tokens", hide = true)]
    pub no_encode_special_tokens: bool,
    /// Accepted for dolma compatibility; only the default (off) is supported.
    #[arg(long = "tokenizer.segment_before_tokenization", hide = true)]
    pub segment_before_tokenization: bool,
    #[arg(long = "no-tokenizer.segment_before_tokenization", hide = true)]
    pub no_segment_before_tokenization: bool,
    /// Worker threads for parsing and tokenizing.
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Width of every token id in the output.
    #[arg(long, value_enum, default_value = "uint16")]
    pub dtype: TokenDType,
    /// Largest .npy file in bytes before a new part starts (underscores allowed: 100_000_000).
    #[arg(long = "max_size", alias = "max-size", default_value = "1073741824", value_parser = parse_count)]
    pub max_size: u64,
    /// Seed of the within-batch shuffle.
    #[arg(long, default_value_t = 3920)]
    pub seed: u64,
    /// Documents per batch (the unit of parallel work and of shuffling).
    #[arg(long = "batch_size", alias = "batch-size", default_value = "10000", value_parser = parse_count)]
    pub batch_size: u64,
    /// Accepted for dolma compatibility; the output order does not depend on them.
    #[arg(long = "ring_size", alias = "ring-size", hide = true, value_parser = parse_count)]
    pub ring_size: Option<u64>,
    #[arg(long = "sample_ring_prop", alias = "sample-ring-prop", hide = true)]
    pub sample_ring_prop: bool,
    #[arg(long = "files_per_process", alias = "files-per-process", hide = true, value_parser = parse_count)]
    pub files_per_process: Option<u64>,
    /// Print the configuration and the matched files, then exit.
    #[arg(long)]
    pub dryrun: bool,
    /// Fail on the first bad line instead of skipping it.
    #[arg(long)]
    pub strict: bool,
}

/// Integers as Python's `int()` reads them, underscores included (`100_000_000`).
fn parse_count(s: &str) -> std::result::Result<u64, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| format!("expected a non-negative integer, got '{s}'"))
}
