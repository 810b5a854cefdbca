//! olmo-train: OLMo-core's pretraining recipe as one Rust binary on libtorch.
//!
//! The library holds all logic; `main.rs` only parses argv, sets up logging and maps errors to exit
//! codes. Dependencies point one way: `error`, `config` ← `model`, `tokenize` ← `dry_run` ← `cli`.
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod dist;
pub mod dry_run;
pub mod error;
pub mod eval;
pub mod launch;
pub mod logging;
pub mod loss;
pub mod model;
pub mod optim;
pub mod process_setup;
pub mod progress;
mod shim_error;
pub mod token_dtype;
pub mod tokenize;
pub mod train;
pub mod validate;

pub use error::{Error, Result};
