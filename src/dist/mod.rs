//! Data parallelism over torch's own c10d (BUILD-NOTES.md §3): the process environment torchrun and
//! `olmo-train launch` set, and a process group (TCPStore rendezvous + ProcessGroupGloo) reached through
//! the small C++ shim in `cpp/c10d_shim.cpp`.
pub mod c10d;
pub mod env;
pub mod reducer;

pub use c10d::ProcessGroup;
pub use env::DistEnv;
