//! Data parallelism's replicas: joining a process group with DDP's reducer, and checking that every
//! rank holds the same weights.
use std::sync::Arc;

use tch::Tensor;

use super::TrainModule;
use crate::dist::reducer::{Reducer, DEFAULT_BUCKET_BYTES};
use crate::dist::ProcessGroup;
use crate::error::{Error, Result};

impl TrainModule {
    /// Joins `group` as DDP does: torch's `c10d::Reducer` over the trainable parameters, 25 MiB buckets.
    pub fn with_data_parallel(&mut self, group: Arc<ProcessGroup>) -> Result<()> {
        if self.sharded.is_some() {
            // Sharded training reduces its gradients itself.
            self.dp = Some(group);
            return Ok(());
        }
        let params: Vec<Tensor> = self
            .optim
            .params()
            .iter()
            .map(|(_, p)| p.shallow_clone())
            .collect();
        self.reducer = Some(Reducer::new(group.clone(), &params, DEFAULT_BUCKET_BYTES)?);
        self.dp = Some(group);
        Ok(())
    }

    /// Checks that every rank holds bit-identical parameters (rank 0's digests broadcast, each rank
    /// compares its own, all ranks agree on the outcome). `OLMO_TRAIN_CHECK_REPLICAS=1` runs it after every
    /// step: a debugging aid for data-parallel runs, and what the launch tests use.
    pub fn check_replicas_identical(&self, step: u64) -> Result<()> {
        let Some(pg) = &self.dp else { return Ok(()) };
        // Sharded: the gathered weights (each rank's shards differ by design).
        let params = self.full_parameters(true)?;
        let digests: Vec<i64> = params.iter().map(|(_, p)| digest(p)).collect();
        match pg.compare_with_root(&digests)? {
            (Some(i), _) => Err(Error::Distributed(format!(
                "after step {step}, rank {}'s parameter {} differs from rank 0's",
                pg.rank, params[i].0
            ))),
            (None, n) if n > 0 => Err(Error::Distributed(format!(
                "after step {step}, {n} rank(s) hold parameters that differ from rank 0's"
            ))),
            _ => Ok(()),
        }
    }
}

/// A digest of a tensor's exact bytes (std's SipHash with its fixed keys: the same on every process).
fn digest(t: &Tensor) -> i64 {
    use std::hash::{Hash, Hasher};
    let host = crate::device::host_copy(t);
    let n = host.numel() * host.kind().elt_size_in_bytes();
    // SAFETY: `host` is a contiguous CPU tensor of exactly `n` bytes, alive for this borrow.
    let bytes = unsafe { std::slice::from_raw_parts(host.data_ptr() as *const u8, n) };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish() as i64
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    #[test]
    fn digests_see_one_flipped_bit() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let b = Tensor::from_slice(&[1.0f32, 2.0, f32::from_bits(3.0f32.to_bits() ^ 1)]);
        assert_eq!(digest(&a), digest(&a.copy()));
        assert_ne!(digest(&a), digest(&b));
    }
}
