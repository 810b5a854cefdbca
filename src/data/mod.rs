//! Token data at memory speed: memory-mapped token files, OLMo-core's datasets and data order, and a
//! resumable prefetching loader. The API the trainer and evaluators use:
//!
//! - [`build::build_fsl_dataset`] / [`build::build_padded_dataset`]: a dataset from its config section;
//! - [`loader::DataLoader`]: `reshuffle(epoch)`, `next_batch()`, `state()` / `load_state()`;
//! - [`batch::Batch`]: one rank's batch as tensors.
pub mod batch;
pub mod build;
pub(crate) mod cache_file;
pub mod dataset;
pub mod documents;
pub mod loader;
pub mod numpy_rng;
pub mod remote;
pub mod repetition;
pub mod token_file;

pub use batch::Batch;
pub use dataset::{DatasetSpec, FslDataset, Instance};
pub use loader::{DataLoader, LoaderOptions, LoaderState};
