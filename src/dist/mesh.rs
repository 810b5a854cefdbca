//! The data-parallel mesh of sharded training: `replicas` x `shard` ranks, row-major as torch's
//! `init_device_mesh((R, S), ("dp_replicate", "dp_shard"))` lays it out, so a shard group is `S`
//! consecutive ranks (one node by default) and a replica group takes every `S`-th rank. FSDP is the
//! mesh with one replica.
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpMesh {
    pub rank: u64,
    pub replicas: u64,
    pub shard: u64,
}

impl DpMesh {
    /// FSDP: every rank in one shard group.
    pub fn fsdp(rank: u64, world: u64) -> Self {
        Self {
            rank,
            replicas: 1,
            shard: world,
        }
    }

    /// HSDP's degrees as OLMo-core's `get_replicate_and_shard_degree` picks them: one replica per node
    /// (`nodes`) when neither is given, else the one given and the quotient. Errors name the key.
    pub fn hsdp(
        rank: u64,
        world: u64,
        nodes: u64,
        num_replicas: Option<u64>,
        shard_degree: Option<u64>,
    ) -> Result<Self> {
        if world < 2 {
            return Err(Error::InvalidValue {
                path: "train_module.dp_config.name".into(),
                reason: "hsdp needs at least 2 processes (launch with --nproc-per-node=N); use fsdp on one"
                    .into(),
            });
        }
        let divides = |key: &str, d: u64| -> Result<u64> {
            if d == 0 || world % d != 0 {
                return Err(Error::InvalidValue {
                    path: format!("train_module.dp_config.{key}"),
                    reason: format!("{d} does not divide the data-parallel world size ({world})"),
                });
            }
            Ok(d)
        };
        let (replicas, shard) = match (num_replicas, shard_degree) {
            (None, None) => {
                let nodes = divides("num_replicas (the number of nodes)", nodes.max(1))?;
                (nodes, world / nodes)
            }
            (Some(r), Some(s)) => (divides("num_replicas", r)?, divides("shard_degree", s)?),
            (Some(r), None) => (divides("num_replicas", r)?, world / r),
            (None, Some(s)) => (world / divides("shard_degree", s)?, s),
        };
        if replicas * shard != world {
            return Err(Error::InvalidValue {
                path: "train_module.dp_config".into(),
                reason: format!(
                    "num_replicas ({replicas}) x shard_degree ({shard}) must equal the world size ({world})"
                ),
            });
        }
        Ok(Self {
            rank,
            replicas,
            shard,
        })
    }

    /// This rank's place within its shard group.
    pub fn shard_rank(&self) -> u64 {
        self.rank % self.shard
    }

    /// Which replica (shard group) this rank belongs to.
    pub fn replica_index(&self) -> u64 {
        self.rank / self.shard
    }

    /// The global ranks of this rank's shard group, in group order.
    pub fn shard_group(&self) -> Vec<u64> {
        let first = self.replica_index() * self.shard;
        (first..first + self.shard).collect()
    }

    /// The global ranks holding the same shard as this one, one per replica.
    pub fn replica_group(&self) -> Vec<u64> {
        (0..self.replicas)
            .map(|j| self.shard_rank() + j * self.shard)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_row_major() {
        let m = DpMesh::hsdp(5, 8, 1, Some(2), None).unwrap();
        assert_eq!((m.replicas, m.shard), (2, 4));
        assert_eq!(m.shard_group(), vec![4, 5, 6, 7]);
        assert_eq!(m.replica_group(), vec![1, 5]);
        assert_eq!((m.shard_rank(), m.replica_index()), (1, 1));
    }

    #[test]
    fn degrees_default_to_nodes_and_refuse_non_divisors() {
        let m = DpMesh::hsdp(0, 8, 2, None, None).unwrap();
        assert_eq!((m.replicas, m.shard), (2, 4));
        assert_eq!(DpMesh::hsdp(0, 4, 1, None, Some(2)).unwrap().replicas, 2);
        let e = DpMesh::hsdp(0, 6, 1, None, Some(4))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("shard_degree") && e.contains("does not divide"),
            "{e}"
        );
        let e = DpMesh::hsdp(0, 4, 1, Some(2), Some(4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("must equal the world size"), "{e}");
        let e = DpMesh::hsdp(0, 1, 1, None, None).unwrap_err().to_string();
        assert!(e.contains("at least 2 processes"), "{e}");
        assert_eq!(DpMesh::fsdp(3, 4).shard_group(), vec![0, 1, 2, 3]);
    }
}
