//! The transformer on libtorch, built from a `TransformerConfig` (the factory table that makes those
//! configs lives in `config::factories`).
pub mod attention;
pub mod autocast;
pub mod block;
pub mod norm;
pub mod rope;
pub mod transformer;

pub use transformer::Transformer;
