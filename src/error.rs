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

    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
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
        !matches!(
            self,
            Error::Io { .. } | Error::Training { .. } | Error::Distributed(_)
        )
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
