//! Optimization: AdamW over our own (checkpointable) state, OLMo-core's LR schedulers, and
//! gradient-norm clipping.
pub mod adamw;
pub mod clip;
pub mod fused_adamw;
pub mod grads;
pub mod scheduler;
pub mod skip_step;
pub mod state_dict;

pub use adamw::AdamW;
pub use state_dict::OptimStateDict;
