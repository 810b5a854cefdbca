//! `olmo-train tokenize`: the Dolma toolkit's `dolma tokens` step (same flags, same output layout).
//!
//! One reader thread decompresses and splits lines in input order; batches of `--batch_size` lines are
//! parsed and tokenized in parallel on `--processes` threads (order kept), shuffled within the batch
//! with a generator seeded by `--seed` and the batch number (as dolma's local shuffle), and written in
//! that order. The output is therefore the same for any `--processes`.
mod args;
pub mod documents;
pub mod tokenizer;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::token_dtype::TokenDType;
pub use args::TokenizeArgs;
use documents::{expand_document_globs, parse_document, python_strip, LineReader};
use tokenizer::TextTokenizer;
use writer::{publish, PartWriter};

/// Lines reported in full before the rest of the skipped lines are only counted.
const SKIPS_REPORTED_IN_FULL: u64 = 5;

/// Observes progress; the binary draws a bar, tests and the library default draw nothing.
pub trait Progress: Sync {
    fn start(&self, _total_input_bytes: u64) {}
    fn advance(&self, _documents: u64, _tokens: u64, _input_bytes_read: u64) {}
    fn finish(&self) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizeSummary {
    pub input_files: Vec<PathBuf>,
    pub documents: u64,
    pub tokens: u64,
    /// Lines that were not valid documents.
    pub skipped_lines: u64,
    /// Documents whose text was empty after stripping (dolma skips them too).
    pub empty_documents: u64,
    pub output_files: Vec<PathBuf>,
    pub seconds: f64,
}

struct RawLine {
    file: usize,
    line: u64,
    bytes: Vec<u8>,
}

enum Encoded {
    Doc {
        file: usize,
        line: u64,
        id: String,
        tokens: Vec<u32>,
    },
    Empty,
    Skip {
        file: usize,
        line: u64,
        reason: String,
    },
}

/// Runs `tokenize`. Nothing appears under `--destination` unless the whole run succeeds.
pub fn run(args: &TokenizeArgs, progress: &dyn Progress) -> Result<TokenizeSummary> {
    let started = Instant::now();
    if args.segment_before_tokenization && !args.no_segment_before_tokenization {
        return Err(Error::Usage(
            "--tokenizer.segment_before_tokenization is not supported yet".into(),
        ));
    }
    let files = expand_document_globs(&args.documents)?;
    let mut tokenizer = TextTokenizer::load(&args.tokenizer)?;
    let encode_special = args.encode_special_tokens && !args.no_encode_special_tokens;
    tokenizer.set_encode_special_tokens(encode_special);
    check_width(&tokenizer, args)?;
    if args.eos_token_id.is_none() {
        tracing::warn!("no --tokenizer.eos_token_id given: documents will not be separated by EOS");
    }
    let mut summary = TokenizeSummary {
        input_files: files.clone(),
        ..Default::default()
    };
    if args.dryrun {
        return Ok(summary);
    }
    let destination = args
        .destination
        .clone()
        .ok_or_else(|| Error::Usage("--destination is required (unless --dryrun)".into()))?;
    std::fs::create_dir_all(&destination).map_err(|e| Error::io(&destination, e))?;
    let staging = destination.join(format!(".olmo-train-tokenize-{}", std::process::id()));
    std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;

    let result = tokenize_into(
        args,
        &files,
        &tokenizer,
        encode_special,
        &staging,
        progress,
        &mut summary,
    )
    .and_then(|stems| publish(&staging, &destination, &stems));
    match result {
        Ok(outputs) => summary.output_files = outputs,
        Err(e) => {
            // Best effort: the error itself is what the user needs to see.
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    }
    progress.finish();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Token ids that do not fit `--dtype` are an error before anything is written.
fn check_width(tokenizer: &TextTokenizer, args: &TokenizeArgs) -> Result<()> {
    let largest = [
        Some(tokenizer.vocab_size().saturating_sub(1)),
        args.eos_token_id.map(u64::from),
        args.bos_token_id.map(u64::from),
        args.pad_token_id.map(u64::from),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0);
    if largest > args.dtype.max_id() {
        let fits = TokenDType::for_vocab(largest.saturating_add(1));
        return Err(Error::Usage(format!(
            "--dtype {}: token ids of '{}' go up to {largest}, which does not fit; use --dtype {}",
            args.dtype.name(),
            args.tokenizer,
            fits.name()
        )));
    }
    Ok(())
}

fn tokenize_into(
    args: &TokenizeArgs,
    files: &[PathBuf],
    tokenizer: &TextTokenizer,
    encode_special: bool,
    staging: &Path,
    progress: &dyn Progress,
    summary: &mut TokenizeSummary,
) -> Result<Vec<String>> {
    let total_bytes = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    progress.start(total_bytes);
    let bytes_read = Arc::new(AtomicU64::new(0));
    let (batches, reader) = spawn_reader(
        files.to_vec(),
        args.batch_size.max(1) as usize,
        bytes_read.clone(),
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.processes.max(1))
        .build()
        .map_err(|e| {
            Error::Usage(format!(
                "cannot start {} worker threads: {e}",
                args.processes
            ))
        })?;
    let mut writer = PartWriter::new(staging, "part-0", args.dtype, args.max_size);
    let sources: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();

    for (batch_no, batch) in batches.iter().enumerate() {
        let batch = batch?;
        let encoded: Vec<Encoded> = pool.install(|| {
            batch
                .into_par_iter()
                .map(|l| encode_line(l, tokenizer, encode_special, args))
                .collect()
        });
        let mut docs = Vec::with_capacity(encoded.len());
        for e in encoded {
            match e {
                Encoded::Doc {
                    file,
                    line,
                    id,
                    tokens,
                } => docs.push((file, line, id, tokens)),
                Encoded::Empty => summary.empty_documents += 1,
                Encoded::Skip { file, line, reason } => {
                    if args.strict {
                        return Err(Error::Input {
                            path: files[file].clone(),
                            reason: format!("line {line}: {reason}"),
                        });
                    }
                    summary.skipped_lines += 1;
                    if summary.skipped_lines <= SKIPS_REPORTED_IN_FULL {
                        tracing::warn!("skipped {}:{line}: {reason}", files[file].display());
                    }
                }
            }
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ batch_no as u64,
        );
        docs.shuffle(&mut rng);
        for (file, line, id, tokens) in &docs {
            writer.write_document(tokens, id, &sources[*file], *line)?;
            summary.tokens += tokens.len() as u64;
        }
        summary.documents += docs.len() as u64;
        progress.advance(
            summary.documents,
            summary.tokens,
            bytes_read.load(Ordering::Relaxed),
        );
    }
    reader
        .join()
        .map_err(|_| Error::Internal("the reader thread panicked".into()))?;
    if summary.skipped_lines > SKIPS_REPORTED_IN_FULL {
        tracing::warn!(
            "skipped {} more lines (not shown)",
            summary.skipped_lines - SKIPS_REPORTED_IN_FULL
        );
    }
    writer.finish()
}

fn encode_line(
    l: RawLine,
    tokenizer: &TextTokenizer,
    encode_special: bool,
    args: &TokenizeArgs,
) -> Encoded {
    let doc = match parse_document(&l.bytes) {
        Ok(doc) => doc,
        Err(reason) => {
            return Encoded::Skip {
                file: l.file,
                line: l.line,
                reason,
            }
        }
    };
    let text = python_strip(&doc.text);
    if text.is_empty() {
        return Encoded::Empty;
    }
    let mut tokens = match tokenizer.encode(text, encode_special) {
        Ok(t) => t,
        Err(e) => {
            return Encoded::Skip {
                file: l.file,
                line: l.line,
                reason: e.to_string(),
            }
        }
    };
    // dolma's `add_special_tokens`: only when not already present.
    if let Some(bos) = args.bos_token_id {
        if tokens.first() != Some(&bos) {
            tokens.insert(0, bos);
        }
    }
    if let Some(eos) = args.eos_token_id {
        if tokens.last() != Some(&eos) {
            tokens.push(eos);
        }
    }
    Encoded::Doc {
        file: l.file,
        line: l.line,
        id: doc.id,
        tokens,
    }
}

/// Reads every file in order on its own thread, handing over batches of raw lines.
fn spawn_reader(
    files: Vec<PathBuf>,
    batch_size: usize,
    bytes_read: Arc<AtomicU64>,
) -> (Receiver<Result<Vec<RawLine>>>, std::thread::JoinHandle<()>) {
    let (tx, rx) = sync_channel::<Result<Vec<RawLine>>>(2);
    let handle = std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(batch_size);
        for (file, path) in files.iter().enumerate() {
            let mut reader = match LineReader::open(path, bytes_read.clone()) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            loop {
                match reader.next_line() {
                    Ok(Some((line, bytes))) => {
                        batch.push(RawLine { file, line, bytes });
                        if batch.len() == batch_size
                            && tx.send(Ok(std::mem::take(&mut batch))).is_err()
                        {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.send(Ok(batch));
        }
    });
    (rx, handle)
}
