//! The command line. The default command mirrors OLMo-core's `src/examples/llm/train.py`
//! (`parse_known_args`: known flags, with argparse's unique-prefix abbreviations, and every other
//! `--a.b.c=<yaml>` is a config override, so clap's fixed flag sets do not fit it). Subcommands get
//! their own word (`launch`, `tokenize`, `convert`, `eval`, `generate`, `plot`, `list-models`) and their own clap parsers.
mod execute;
mod generate_command;
mod plot_command;
mod tokenizer_flag;

pub use generate_command::GenerateArgs;
pub use plot_command::PlotArgs;

use std::path::PathBuf;

use crate::config::overrides::Override;
use crate::config::ExampleOptions;
use crate::error::{Error, Result};
use crate::tokenize::TokenizeArgs;

pub use execute::{execute, list_models, Outcome};

pub const USAGE: &str = "\
usage: olmo-train RUN_NAME [OPTIONS...] [CONFIG_OVERRIDES...]
       olmo-train launch --nproc-per-node=N RUN_NAME [OPTIONS...] [CONFIG_OVERRIDES...]
       olmo-train tokenize --documents GLOB... --destination DIR --tokenizer.name_or_path NAME [...]
       olmo-train convert {from-hf|to-hf|unshard} INPUT OUTPUT [...]
       olmo-train eval CHECKPOINT [--lm-sets LABEL=PATH...] [--output FILE]
       olmo-train generate CHECKPOINT --prompt TEXT... [--max-new-tokens N] [--temperature T] [...]
       olmo-train plot RUN_DIR|metrics.jsonl... [--metrics PATTERN]... [--output FILE.svg|.png]
       olmo-train list-models

Train a transformer language model (OLMo-core's src/examples/llm/train.py).

options:
  --model-factory NAME     TransformerConfig factory (default: llama2_271M; see `olmo-train list-models`)
  --sequence-length N      train and eval sequence length (default: 2048)
  --tokenizer NAME         dolma2, gpt2 (default, as OLMo-core's example), another preset or a local
                           tokenizer.json: the dataset's, both evaluators' and the model's vocabulary
  --save-folder DIR        checkpoint folder (default: /tmp/RUN_NAME)
  --work-dir DIR           dataset cache folder (default: /tmp/dataset-cache)
  --load-path DIR          checkpoint to start from when save-folder has none
  --config FILE            YAML/JSON config tree (whole or partial), merged before overrides
  --dry-run                print the resolved config and a summary, then exit
  -h, --help               show this help

config overrides (OLMo-core syntax): --a.b.c=<yaml>, e.g.
  --data_loader.prefetch_factor=4   --trainer.no_checkpoints   --dataset.paths='[\"/data/*.npy\"]'
  --trainer.hard_stop='{value: 100, unit: steps}'   --train_module.scheduler=null
";

/// Words that select a subcommand instead of naming a run.
const RESERVED: &[&str] = &[];

#[derive(Debug, Clone)]
pub enum Command {
    Train(TrainArgs),
    Tokenize(Box<TokenizeArgs>),
    Convert(ConvertArgs),
    Eval(crate::eval::standalone::EvalArgs),
    Generate(Box<GenerateArgs>),
    Plot(PlotArgs),
    Launch(crate::launch::LaunchArgs),
    ListModels,
    Help,
    /// Text a subcommand's parser produced (its --help).
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrainArgs {
    pub opts: ExampleOptions,
    pub config_file: Option<PathBuf>,
    pub overrides: Vec<Override>,
    pub dry_run: bool,
}

/// The example's own flags, as argparse spells them.
const VALUE_FLAGS: &[&str] = &[
    "--model-factory",
    "--sequence-length",
    "--tokenizer",
    "--save-folder",
    "--work-dir",
    "--load-path",
    "--config",
];
const SWITCH_FLAGS: &[&str] = &["--dry-run", "--help"];

/// Parses `args` (without the program name). `data_root` is `OLMO_DATA_ROOT` when set.
pub fn parse_args(args: &[String], data_root: Option<String>) -> Result<Command> {
    let Some(first) = args.first() else {
        return Err(missing_run_name());
    };
    match first.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "list-models" => return Ok(Command::ListModels),
        "launch" => {
            return parse_subcommand::<crate::launch::LaunchArgs>(args)
                .map(|r| r.map_or_else(Command::Text, Command::Launch))
        }
        "eval" => {
            return parse_subcommand::<crate::eval::standalone::EvalArgs>(args)
                .map(|r| r.map_or_else(Command::Text, Command::Eval))
        }
        "generate" => {
            return parse_subcommand::<GenerateArgs>(args)
                .map(|r| r.map_or_else(Command::Text, |a| Command::Generate(Box::new(a))))
        }
        "plot" => {
            return parse_subcommand::<PlotArgs>(args)
                .map(|r| r.map_or_else(Command::Text, Command::Plot))
        }
        "convert" => {
            return parse_subcommand::<ConvertArgs>(args)
                .map(|r| r.map_or_else(Command::Text, Command::Convert))
        }
        "tokenize" => {
            return parse_subcommand::<TokenizeArgs>(args)
                .map(|r| r.map_or_else(Command::Text, |a| Command::Tokenize(Box::new(a))))
        }
        w if RESERVED.contains(&w) => {
            return Err(Error::Usage(format!(
                "subcommand '{w}' is not built yet in this version of olmo-train"
            )))
        }
        _ => {}
    }
    let mut run_name: Option<String> = None;
    let mut train = TrainArgs {
        opts: ExampleOptions {
            data_root,
            ..ExampleOptions::new("")
        },
        config_file: None,
        overrides: Vec::new(),
        dry_run: false,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "-h" {
            return Ok(Command::Help);
        }
        if !arg.starts_with("--") {
            if run_name.is_some() {
                return Err(Error::Usage(format!(
                    "unexpected argument '{arg}': the run name is already given; overrides take the form --a.b.c=<value>"
                )));
            }
            run_name = Some(arg.clone());
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        match known_flag(name) {
            Some(flag) if SWITCH_FLAGS.contains(&flag) => {
                if inline.is_some() {
                    return Err(Error::Usage(format!("{flag} takes no value (got '{arg}')")));
                }
                if flag == "--help" {
                    return Ok(Command::Help);
                }
                train.dry_run = true;
            }
            Some(flag) => {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        let v = args
                            .get(i)
                            .ok_or_else(|| Error::Usage(format!("{flag} expects a value")))?;
                        i += 1;
                        v.clone()
                    }
                };
                apply_value_flag(&mut train, flag, value)?;
            }
            None => train.overrides.push(Override::parse(arg)?),
        }
    }
    let run_name = run_name.ok_or_else(missing_run_name)?;
    train.opts.run_name = run_name;
    Ok(Command::Train(train))
}

/// A clap-parsed subcommand: `Ok(Err(text))` is help text to print; clap's multi-line errors are
/// reduced to their first line.
fn parse_subcommand<T: clap::Parser>(args: &[String]) -> Result<std::result::Result<T, String>> {
    let argv = std::iter::once(format!("olmo-train {}", args[0])).chain(args[1..].iter().cloned());
    match T::try_parse_from(argv) {
        Ok(parsed) => Ok(Ok(parsed)),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            Ok(Err(e.to_string()))
        }
        Err(e) => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            Err(Error::Usage(format!("{} {first}", args[0])))
        }
    }
}

fn missing_run_name() -> Error {
    Error::Usage("missing RUN_NAME (usage: olmo-train RUN_NAME [OPTIONS...] [CONFIG_OVERRIDES...]; see --help)".into())
}

/// The flag `name` stands for: an exact match, or (as argparse's `allow_abbrev`) a unique prefix.
fn known_flag(name: &str) -> Option<&'static str> {
    let all = VALUE_FLAGS.iter().chain(SWITCH_FLAGS).copied();
    if let Some(exact) = all.clone().find(|f| *f == name) {
        return Some(exact);
    }
    if name.contains('.') || name.len() < 4 {
        return None;
    }
    let mut matches = all.filter(|f| f.starts_with(name));
    match (matches.next(), matches.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

fn apply_value_flag(train: &mut TrainArgs, flag: &str, value: String) -> Result<()> {
    match flag {
        "--model-factory" => train.opts.model_factory = value,
        "--sequence-length" => {
            train.opts.sequence_length = value.parse().map_err(|_| {
                Error::Usage(format!(
                    "--sequence-length expects a positive integer, got '{value}'"
                ))
            })?;
        }
        "--tokenizer" => train.opts.tokenizer = tokenizer_flag::tokenizer_config(&value)?,
        "--save-folder" => train.opts.save_folder = Some(value),
        "--work-dir" => train.opts.work_dir = Some(value),
        "--config" => train.config_file = Some(PathBuf::from(value)),
        // OLMo-core has no such flag: `--load-path=X` reaches it as the override of `load_path`.
        "--load-path" => train.overrides.push(Override {
            arg: format!("--load-path={value}"),
            path: vec!["load_path".into()],
            value: serde_yaml::Value::String(value),
        }),
        _ => return Err(Error::Usage(format!("unhandled flag {flag}"))),
    }
    Ok(())
}

/// `olmo-train convert`: Hugging Face folders to and from olmo-train checkpoints.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "olmo-train convert",
    about = "Convert between Hugging Face folders and olmo-train checkpoints"
)]
pub struct ConvertArgs {
    #[command(subcommand)]
    pub direction: Direction,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Direction {
    /// A Hugging Face Llama / OLMo 2 / OLMo 3 folder (config.json + safetensors) to a checkpoint.
    FromHf {
        input: PathBuf,
        output: PathBuf,
        /// Check that the folder holds this factory's architecture.
        #[arg(long = "model-factory")]
        model_factory: Option<String>,
    },
    /// A checkpoint (or the latest in a save folder) to a Hugging Face folder.
    ToHf {
        input: PathBuf,
        output: PathBuf,
        /// float32 or bfloat16 (OLMo-core's default).
        #[arg(long, default_value = "bfloat16")]
        dtype: String,
    },
    /// A checkpoint of sharded training (parts per rank) as one in the single-file layout.
    Unshard { input: PathBuf, output: PathBuf },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    fn train(s: &[&str]) -> TrainArgs {
        match parse_args(&args(s), None).unwrap() {
            Command::Train(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn known_flags_with_equals_space_and_abbreviation() {
        let t = train(&[
            "run",
            "--save=/q",
            "--seq",
            "128",
            "--dry-run",
            "--model-factory=olmo2_1M",
        ]);
        assert_eq!(t.opts.run_name, "run");
        assert_eq!(t.opts.save_folder.as_deref(), Some("/q"));
        assert_eq!(t.opts.sequence_length, 128);
        assert_eq!(t.opts.model_factory, "olmo2_1M");
        assert!(t.dry_run);
    }

    #[test]
    fn unknown_flags_become_overrides_in_order() {
        let t = train(&[
            "run",
            "--trainer.no_checkpoints",
            "--load-path=/ckpt",
            "--load-trainer-state",
        ]);
        let paths: Vec<String> = t.overrides.iter().map(|o| o.dotted()).collect();
        assert_eq!(
            paths,
            ["trainer.no_checkpoints", "load_path", "load_trainer_state"]
        );
    }

    #[test]
    fn stray_positional_and_missing_values_are_usage_errors() {
        assert!(parse_args(&args(&["run", "{value: 1}"]), None).is_err());
        assert!(parse_args(&args(&["run", "--save-folder"]), None).is_err());
        assert!(parse_args(&args(&["run", "--sequence-length=abc"]), None).is_err());
        assert!(parse_args(&args(&[]), None).is_err());
    }
}
