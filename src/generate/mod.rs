//! Text generation from a trained model: a key/value cache beside the model's units (the training
//! path is unchanged), batched prompts of different lengths, greedy or sampled decoding.
pub mod cached_forward;
pub mod generation;
pub mod kv_cache;
pub mod sampling;

pub use generation::{generate, Completion, Finish, GenerateOptions};
pub use sampling::Sampling;
