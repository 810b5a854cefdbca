//! Running a parsed command: training (or its dry run), launch, tokenize, convert, eval, list-models,
//! and the text each one prints when it is done.
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::{Command, Direction, USAGE};
use crate::config::factories::{build_factory, factory_names};
use crate::config::resolve::resolve_config;
use crate::config::TokenizerConfig;
use crate::dry_run;
use crate::error::{Error, Result};
use crate::progress::TerminalProgress;
use crate::tokenize::{self, TokenizeArgs, TokenizeSummary};

/// What a command reports back to the binary beyond success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// A stop request (SIGINT/SIGTERM) ended the run early but cleanly.
    Interrupted,
    /// `launch`: the workers' exit code.
    Exit(i32),
}

/// Runs a parsed command, writing what it prints to `out`; `stop` is raised by SIGINT/SIGTERM.
pub fn execute(command: Command, out: &mut dyn Write, stop: Arc<AtomicBool>) -> Result<Outcome> {
    let write_err = |e: std::io::Error| Error::io("<stdout>", e);
    let text = match command {
        Command::Help => USAGE.to_string(),
        Command::ListModels => list_models(),
        Command::Text(text) => text,
        Command::Tokenize(args) => {
            let summary = tokenize::run(&args, &TerminalProgress::new())?;
            if args.dryrun {
                tokenize_dryrun_text(&args, &summary)
            } else {
                tokenize_summary_text(&summary)
            }
        }
        Command::Launch(args) => return crate::launch::run(&args, stop).map(Outcome::Exit),
        Command::Generate(args) => {
            let mut stdout = std::io::stdout();
            super::generate_command::run(&args, &mut |text| {
                use std::io::Write;
                let _ = stdout.write_all(text.as_bytes());
                let _ = stdout.flush();
            })?;
            String::new()
        }
        Command::Plot(args) => super::plot_command::run(&args)?,
        Command::Eval(args) => {
            let report = crate::eval::standalone::run(&args)?;
            format!(
                "{}results: {}\n",
                crate::eval::standalone::table(&report),
                args.output.display()
            )
        }
        Command::Convert(c) => match c.direction {
            Direction::FromHf {
                input,
                output,
                model_factory,
            } => {
                let out =
                    crate::checkpoint::hf::from_hf(&input, &output, model_factory.as_deref())?;
                format!(
                    "wrote checkpoint {} (weights only; use it with --load-path)\n",
                    out.display()
                )
            }
            Direction::ToHf {
                input,
                output,
                dtype,
            } => {
                let kind = match dtype.as_str() {
                    "float32" => tch::Kind::Float,
                    "bfloat16" => tch::Kind::BFloat16,
                    other => {
                        return Err(Error::Usage(format!(
                            "--dtype {other}: expected float32 or bfloat16"
                        )))
                    }
                };
                let out = crate::checkpoint::hf::to_hf(&input, &output, kind)?;
                format!("wrote Hugging Face folder {}\n", out.display())
            }
            Direction::Unshard { input, output } => {
                let out = crate::checkpoint::sharded::unshard(&input, &output)?;
                format!("wrote checkpoint {} (single-file layout)\n", out.display())
            }
        },
        Command::Train(train) => {
            let config =
                resolve_config(&train.opts, train.config_file.as_deref(), &train.overrides)?;
            if train.dry_run {
                // The problems a run would meet, for the world size torchrun / launch would give it.
                let world = crate::dist::DistEnv::from_process_env()?.world_size;
                crate::validate::validate(&config, world)?;
                dry_run::render(&config, &train.opts.model_factory)
            } else {
                let summary = crate::train::train(&config, stop)?;
                let text = train_summary_text(&summary);
                out.write_all(text.as_bytes()).map_err(write_err)?;
                return Ok(if summary.interrupted {
                    Outcome::Interrupted
                } else {
                    Outcome::Done
                });
            }
        }
    };
    out.write_all(text.as_bytes()).map_err(write_err)?;
    Ok(Outcome::Done)
}

fn train_summary_text(s: &crate::train::TrainSummary) -> String {
    let last = s.losses.last().copied().unwrap_or(f64::NAN);
    format!(
        "{} {} steps ({} tokens) in {:.1} s; last train/CE loss {last:.4}\n",
        if s.interrupted {
            "stopped by a signal after"
        } else {
            "trained"
        },
        s.steps,
        s.tokens,
        s.seconds
    )
}

fn tokenize_dryrun_text(args: &TokenizeArgs, summary: &TokenizeSummary) -> String {
    let mut s = format!(
        "{args:#?}\nmatched files ({}):\n",
        summary.input_files.len()
    );
    for f in &summary.input_files {
        s.push_str(&format!("  {}\n", f.display()));
    }
    s
}

fn tokenize_summary_text(s: &TokenizeSummary) -> String {
    let rate = s.tokens as f64 / s.seconds.max(1e-9);
    let mut text = format!(
        "tokenized {} documents, {} tokens from {} input files in {:.2} s ({:.0} tokens/s)\n\
         skipped lines: {}; empty documents: {}\noutput files ({}):\n",
        s.documents,
        s.tokens,
        s.input_files.len(),
        s.seconds,
        rate,
        s.skipped_lines,
        s.empty_documents,
        s.output_files.len()
    );
    for f in &s.output_files {
        text.push_str(&format!("  {}\n", f.display()));
    }
    text
}

/// `olmo-train list-models`: every factory with its parameter counts (total, without the embeddings,
/// and active per token, which differs for mixtures of experts) for the default (dolma2) tokenizer.
pub fn list_models() -> String {
    let vocab = TokenizerConfig::dolma2().padded_vocab_size();
    let mut s = format!(
        "{:<16} {:>16} {:>16} {:>16}   (vocab {vocab}, dolma2 padded)\n",
        "factory", "parameters", "non-embedding", "active"
    );
    for name in factory_names() {
        if let Ok(c) = build_factory(name, vocab) {
            s.push_str(&format!(
                "{name:<16} {:>16} {:>16} {:>16}\n",
                c.num_params(),
                c.num_non_embedding_params(),
                c.num_active_params()
            ));
        }
    }
    s
}
