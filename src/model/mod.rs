//! Model definitions: the factory table (`TransformerConfig` classmethods of OLMo-core) and the
//! transformer itself on libtorch.
pub mod attention;
pub mod autocast;
pub mod block;
pub mod factories;
pub mod norm;
pub mod rope;
pub mod transformer;

pub use factories::{build_factory, factory_names};
pub use transformer::Transformer;
