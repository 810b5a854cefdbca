//! Data parallelism over torch's own c10d (BUILD-NOTES.md §3): the process environment torchrun and
//! `olmo-train launch` set, and a process group (TCPStore rendezvous + ProcessGroupGloo) reached through
//! the small C++ shim in `cpp/c10d_shim.cpp`.
pub mod c10d;
pub mod env;
pub mod mesh;
pub mod reducer;
pub mod work;

pub use c10d::{ProcessGroup, ReduceOp};
pub use env::DistEnv;
pub use work::Work;
