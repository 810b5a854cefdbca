//! olmo-train: OLMo-core's pretraining recipe as one Rust binary on libtorch.
//!
//! The library holds all logic; `main.rs` only parses argv, sets up logging and signals, and maps errors
//! to exit codes. Dependencies point one way, each layer using only the ones above it:
//!
//! 1. `error`, `token_dtype`, `shim_error`, `loss`, `logging`, `process_setup`
//! 2. `config` (the config tree, the factory table), `tokenize` (then `progress`), `device`
//! 3. `model`, `data`, `optim`, `dist`, `checkpoint`
//! 4. `validate` (config + optim's schedulers), `eval` (model, data, checkpoint, dist, loss)
//!    `generate` (model) and `plot` (metrics files)
//! 5. `train` (everything above, `eval` included; nothing imports it but the commands)
//! 6. `dry_run`, `launch`, `cli` (the commands)
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
pub mod fsdp;
pub mod generate;
pub mod launch;
pub mod logging;
pub mod loss;
pub mod model;
pub mod optim;
pub mod plot;
pub mod process_setup;
pub mod progress;
mod shim_error;
pub mod token_dtype;
pub mod tokenize;
pub mod train;
pub mod validate;

pub use error::{Error, Result};
