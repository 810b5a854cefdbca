//! The library's error type. Every variant renders as one line that names the file, key or value at
//! fault and says what was expected; `is_usage` separates bad input (exit code 2) from run failures.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line (unknown flag, missing value, stray argument).
    #[error("{0}")]
    Usage(String),

    /// An override value that is not valid YAML.
    #[error("override {arg}: value is not valid YAML: {reason}")]
    OverrideYaml { arg: String, reason: String },

    /// An override or config-file key that names nothing in the config tree.
    #[error("unknown config key '{path}'{}", suggestion_suffix(.suggestion))]
    UnknownKey {
        path: String,
        suggestion: Option<String>,
    },

    /// A value of the wrong type or out of range for its key.
    #[error("config key '{path}': {reason}")]
    InvalidValue { path: String, reason: String },

    /// Several values that do not fit together or with the world size (`validate`), each by its key.
    #[error("the config has {} problems:{}", .0.len(), list_problems(.0))]
    InvalidConfig(Vec<(String, String)>),

    /// A torchrun-style environment variable (`RANK`, `WORLD_SIZE`, `MASTER_PORT`, ...) with a bad value.
    #[error("environment variable {name}: {reason}")]
    Environment { name: String, reason: String },

    /// A `--config` file that cannot be read or parsed.
    #[error("config file {}: {reason}", .path.display())]
    ConfigFile { path: PathBuf, reason: String },

    #[error("unknown model factory '{name}'; valid factories: {valid}")]
    UnknownFactory { name: String, valid: String },

    /// A setting that OLMo-core accepts and olmo-train does not honour yet.
    #[error("config key '{path}' = {value}: not supported yet by olmo-train ({hint})")]
    NotSupported {
        path: String,
        value: String,
        hint: String,
    },

    /// An input file that cannot be used (wrong kind, truncated, corrupt, bad line in strict mode).
    #[error("{}: {reason}", .path.display())]
    Input { path: PathBuf, reason: String },

    /// A failure while training (a non-finite loss, a libtorch error), naming the step.
    #[error("training stopped at step {step}: {reason}")]
    Training { step: u64, reason: String },

    /// A collective or rendezvous failure (a rank that never arrived, a peer that died).
    #[error("distributed: {0}")]
    Distributed(String),

    /// A broken internal invariant: a bug in olmo-train, not in the input.
    #[error("internal error (please report it): {0}")]
    Internal(String),

    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn list_problems(problems: &[(String, String)]) -> String {
    problems
        .iter()
        .map(|(path, reason)| format!("\n  config key '{path}': {reason}"))
        .collect()
}

fn suggestion_suffix(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; did you mean '{s}'?"))
        .unwrap_or_default()
}

impl Error {
    /// True when the user's input is at fault (exit code 2); false for failures while running.
    pub fn is_usage(&self) -> bool {
        self.exit_code() == 2
    }

    /// The process exit code for this error: 2 for bad input (command line, config, input files), 1 for a
    /// run that failed (training, collectives), 74 for an I/O failure (sysexits' EX_IOERR), 70 for an
    /// internal error (EX_SOFTWARE).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Training { .. } | Error::Distributed(_) => 1,
            Error::Io { .. } => 74,
            Error::Internal(_) => 70,
            _ => 2,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
