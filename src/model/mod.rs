//! The transformer on libtorch, built from a `TransformerConfig` (the factory table that makes those
//! configs lives in `config::factories`).
pub mod attention;
pub mod autocast;
pub mod block;
pub mod checkpointing;
pub mod context;
pub mod flash;
pub mod moe;
pub mod norm;
pub mod params;
pub mod rope;
pub mod transformer;
pub mod units;

pub use context::DocLens;
pub use transformer::Transformer;
pub use units::Unit;
