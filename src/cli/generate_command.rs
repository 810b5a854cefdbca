//! `olmo-train generate CHECKPOINT`: text from a trained (or converted) model, with the checkpoint's
//! own tokenizer. One prompt streams to the terminal as its tokens arrive; `--output` writes JSON
//! lines (prompt, completion, token ids, tokens/s) atomically.
use std::path::PathBuf;
use std::time::Instant;

use tch::Kind;

use super::tokenizer_flag::tokenizer_config;
use crate::checkpoint::load_trained_model;
use crate::config::data::TokenizerConfig;
use crate::device::{device_name, for_rank, RankSlot};
use crate::error::{Error, Result};
use crate::generate::{generate, Completion, Finish, GenerateOptions, Sampling};
use crate::tokenize::tokenizer::TextTokenizer;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "olmo-train generate",
    about = "Generate text from a checkpoint (greedy at temperature 0, else sampled)"
)]
pub struct GenerateArgs {
    /// A checkpoint folder, or a save folder (its latest checkpoint is used).
    pub checkpoint: PathBuf,
    /// A prompt (repeat for several; they run as one batch).
    #[arg(long = "prompt")]
    pub prompts: Vec<String>,
    /// A file with one prompt per line (empty lines skipped).
    #[arg(long = "prompts-file")]
    pub prompts_file: Option<PathBuf>,
    #[arg(long = "max-new-tokens", default_value_t = 64)]
    pub max_new_tokens: usize,
    /// 0 is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    #[arg(long = "top-k")]
    pub top_k: Option<usize>,
    #[arg(long = "top-p")]
    pub top_p: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop a completion where this text appears (repeatable; the text itself is left out).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Write JSON lines here instead of printing completions.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// The tokenizer (a preset or a local tokenizer.json), when the checkpoint's is not wanted or named.
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// cpu, cuda or cuda:N (default: CUDA when present).
    #[arg(long)]
    pub device: Option<String>,
    /// Run the weights and the cache in bfloat16.
    #[arg(long)]
    pub bf16: bool,
}

/// Runs the command; `print` receives the text for the terminal as it is produced.
pub fn run(args: &GenerateArgs, print: &mut dyn FnMut(&str)) -> Result<()> {
    check_sampling(args)?;
    let prompts = read_prompts(args)?;
    let (device, why) = for_rank("--device", args.device.as_deref(), RankSlot::SINGLE)?;
    tracing::info!("generating on {}: {why}", device_name(device));
    let trained = load_trained_model(&args.checkpoint, device)?;
    // --tokenizer, else a tokenizer.json saved beside the weights (`convert from-hf` copies the Hugging
    // Face folder's), else the one the run's config names.
    let beside = trained.dir.join("tokenizer.json");
    let tok_cfg = match &args.tokenizer {
        Some(name) => tokenizer_config(name)?,
        None if beside.is_file() => tokenizer_config(&beside.to_string_lossy())?,
        None => trained.config.dataset.tokenizer.clone(),
    };
    let tokenizer = load_tokenizer(&tok_cfg)?;
    let context = trained.config.dataset.sequence_length as usize;
    let vocab = trained.config.model.vocab_size as i64;
    let encoded = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| encode_prompt(&tokenizer, &tok_cfg, p, i, context, vocab))
        .collect::<Result<Vec<_>>>()?;
    if encoded
        .iter()
        .any(|e| e.len() + args.max_new_tokens > context)
    {
        tracing::warn!(
            "prompt plus --max-new-tokens exceeds the {context} tokens the model was trained on (dataset.sequence_length): positions past it were never seen in training"
        );
    }
    let kind = if args.bf16 {
        Kind::BFloat16
    } else {
        Kind::Float
    };
    let mut model = trained.model;
    if args.bf16 {
        model.vs.bfloat16();
    }
    let opts = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling: Sampling {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
        },
        seed: args.seed,
        eos_token_id: Some(tok_cfg.eos_token_id as i64),
        kind,
    };
    let stream = encoded.len() == 1 && args.output.is_none();
    let mut streamed = Streamer::default();
    if stream {
        print(&prompts[0]);
    }
    let start = Instant::now();
    let completions = generate(&model, device, &encoded, &opts, &mut |_, tokens| {
        // The text is needed only to stream it or to look for a stop string.
        if !stream && args.stop.is_empty() {
            return false;
        }
        let text = decode(&tokenizer, tokens, opts.eos_token_id);
        let stop_at = first_stop(&text, &args.stop);
        if stream {
            streamed.show(&text, stop_at, &args.stop, print);
        }
        stop_at.is_some()
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let rows: Vec<serde_json::Value> = completions
        .iter()
        .zip(prompts.iter().zip(&encoded))
        .map(|(c, (p, ids))| row(&tokenizer, &opts, &args.stop, (p, ids), c, seconds))
        .collect();
    match &args.output {
        Some(path) => {
            let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
            crate::data::cache_file::write_atomically(path, text.as_bytes())?;
            print(&format!(
                "wrote {} completions to {}\n",
                rows.len(),
                path.display()
            ));
        }
        None if stream => {
            let completion = rows[0]["completion"].as_str().unwrap_or_default();
            print(&format!(
                "{}\n",
                &completion[streamed.shown.min(completion.len())..]
            ));
        }
        None => {
            for r in &rows {
                print(&format!(
                    "{}{}\n\n",
                    r["prompt"].as_str().unwrap_or_default(),
                    r["completion"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

fn check_sampling(args: &GenerateArgs) -> Result<()> {
    let bad = |flag: &str, why: &str| Err(Error::Usage(format!("{flag}: {why}")));
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        return bad("--temperature", "must be 0 (greedy) or positive");
    }
    if args.top_k == Some(0) {
        return bad("--top-k", "must be at least 1");
    }
    if args.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
        return bad("--top-p", "must be in (0, 1]");
    }
    if args.max_new_tokens == 0 {
        return bad("--max-new-tokens", "must be at least 1");
    }
    Ok(())
}

fn read_prompts(args: &GenerateArgs) -> Result<Vec<String>> {
    let mut prompts = args.prompts.clone();
    if let Some(path) = &args.prompts_file {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        prompts.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from),
        );
    }
    if prompts.is_empty() {
        return Err(Error::Usage(
            "no prompt: pass --prompt TEXT (repeatable) or --prompts-file FILE".into(),
        ));
    }
    if let Some(i) = prompts.iter().position(String::is_empty) {
        return Err(Error::Usage(format!(
            "prompt {} is empty: generation needs text to start from",
            i + 1
        )));
    }
    Ok(prompts)
}

fn load_tokenizer(cfg: &TokenizerConfig) -> Result<TextTokenizer> {
    match &cfg.identifier {
        Some(name) => TextTokenizer::load(name),
        None => Err(Error::Usage(
            "the checkpoint's config names no tokenizer (dataset.tokenizer.identifier is null); pass --tokenizer NAME (dolma2, gpt2 or a tokenizer.json)".into(),
        )),
    }
}

/// The prompt's ids, with the tokenizer config's BOS first when it has one; refused when longer than
/// the model's context or holding an id the model's embedding does not have (another tokenizer's).
fn encode_prompt(
    tok: &TextTokenizer,
    cfg: &TokenizerConfig,
    prompt: &str,
    index: usize,
    context: usize,
    vocab: i64,
) -> Result<Vec<i64>> {
    let mut ids: Vec<i64> = tok
        .encode(prompt, false)?
        .into_iter()
        .map(i64::from)
        .collect();
    if let Some(bos) = cfg.bos_token_id {
        if ids.first() != Some(&(bos as i64)) {
            ids.insert(0, bos as i64);
        }
    }
    if let Some(&id) = ids.iter().find(|&&id| id >= vocab) {
        return Err(Error::Usage(format!(
            "prompt {}: the tokenizer gave token id {id}, but the model's vocabulary has {vocab} entries; pass the model's own tokenizer with --tokenizer",
            index + 1
        )));
    }
    if ids.len() > context {
        return Err(Error::Usage(format!(
            "prompt {} is {} tokens, longer than the model's context of {context} (dataset.sequence_length of the checkpoint); shorten it (olmo-train does not truncate prompts)",
            index + 1,
            ids.len()
        )));
    }
    Ok(ids)
}

/// The text of a completion's tokens, EOS left out.
fn decode(tok: &TextTokenizer, tokens: &[i64], eos: Option<i64>) -> String {
    let ids: Vec<u32> = tokens
        .iter()
        .filter(|&&t| Some(t) != eos)
        .map(|&t| t as u32)
        .collect();
    tok.decode(&ids)
}

/// Where the first stop string starts in `text`.
fn first_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

fn row(
    tok: &TextTokenizer,
    opts: &GenerateOptions,
    stops: &[String],
    (prompt, prompt_ids): (&str, &[i64]),
    c: &Completion,
    seconds: f64,
) -> serde_json::Value {
    let mut text = decode(tok, &c.tokens, opts.eos_token_id);
    if let Some(at) = first_stop(&text, stops) {
        text.truncate(at);
    }
    serde_json::json!({
        "prompt": prompt,
        "prompt_token_ids": prompt_ids,
        "completion": text,
        "token_ids": c.tokens,
        "finish": match c.finish { Finish::Length => "length", Finish::Eos => "eos", Finish::Stopped => "stop" },
        // Over the whole batch's generation (prefill included): rows share the time.
        "tokens_per_second": c.tokens.len() as f64 / seconds.max(1e-9),
        "seconds": seconds,
    })
}

/// Streams one completion: prints what is settled, holding back a character still being decoded and
/// anything that may turn out to begin a stop string.
#[derive(Default)]
struct Streamer {
    /// Bytes of the completion already printed.
    shown: usize,
}

impl Streamer {
    fn show(
        &mut self,
        text: &str,
        stop_at: Option<usize>,
        stops: &[String],
        print: &mut dyn FnMut(&str),
    ) {
        let hold = stops
            .iter()
            .map(|s| s.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        let mut end = match stop_at {
            Some(at) => at,
            None => text.len().saturating_sub(hold),
        };
        if let Some(bad) = text.find('\u{FFFD}') {
            end = end.min(bad);
        }
        while end > self.shown && !text.is_char_boundary(end) {
            end -= 1;
        }
        if end > self.shown {
            print(&text[self.shown..end]);
            self.shown = end;
        }
    }
}
