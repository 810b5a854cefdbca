//! Model definitions: the factory table (`TransformerConfig` classmethods of OLMo-core).
pub mod factories;

pub use factories::{build_factory, factory_names};
