//! torchrun's environment: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`,
//! `MASTER_PORT`. Without them the process runs alone (world size 1).
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistEnv {
    pub rank: u64,
    pub world_size: u64,
    pub local_rank: u64,
    /// Ranks on this node (`LOCAL_WORLD_SIZE`): the GPUs this node needs.
    pub local_world_size: u64,
    pub master_addr: String,
    pub master_port: u16,
}

impl DistEnv {
    pub fn single() -> Self {
        Self {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            local_world_size: 1,
            master_addr: "127.0.0.1".into(),
            master_port: 29500,
        }
    }

    /// Reads the variables through `get` (the binary passes `std::env::var`).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let (Some(rank), Some(world)) = (get("RANK"), get("WORLD_SIZE")) else {
            return Ok(Self::single());
        };
        let num = |name: &str, v: &str| -> Result<u64> {
            v.trim().parse().map_err(|_| Error::Environment {
                name: name.into(),
                reason: format!("{v:?} is not a non-negative integer"),
            })
        };
        let rank = num("RANK", &rank)?;
        let world_size = num("WORLD_SIZE", &world)?;
        if world_size == 0 || rank >= world_size {
            return Err(Error::Environment {
                name: "RANK".into(),
                reason: format!("{rank} must be below WORLD_SIZE={world_size}"),
            });
        }
        let given_local_rank = get("LOCAL_RANK")
            .map(|v| num("LOCAL_RANK", &v))
            .transpose()?;
        let local_rank = given_local_rank.unwrap_or(rank);
        // Without LOCAL_WORLD_SIZE: every rank on this node when no LOCAL_RANK says otherwise, else at
        // least the ranks up to this one.
        let local_world_size = get("LOCAL_WORLD_SIZE")
            .map(|v| num("LOCAL_WORLD_SIZE", &v))
            .transpose()?
            .unwrap_or(if given_local_rank.is_some() {
                local_rank + 1
            } else {
                world_size
            });
        let master_addr = get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let master_port = match get("MASTER_PORT") {
            Some(p) => p.trim().parse().map_err(|_| Error::Environment {
                name: "MASTER_PORT".into(),
                reason: format!("{p:?} is not a port number"),
            })?,
            None if world_size == 1 => 29500,
            None => {
                return Err(Error::Environment {
                    name: "MASTER_PORT".into(),
                    reason: "is not set (torchrun and olmo-train launch set it)".into(),
                })
            }
        };
        Ok(Self {
            rank,
            world_size,
            local_rank,
            local_world_size,
            master_addr,
            master_port,
        })
    }

    pub fn from_process_env() -> Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_variables_mean_one_process_and_bad_ones_are_named() {
        assert_eq!(DistEnv::from_vars(|_| None).unwrap(), DistEnv::single());
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
        };
        let e = DistEnv::from_vars(vars(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("MASTER_PORT", "1234"),
        ]))
        .unwrap();
        assert_eq!((e.rank, e.world_size, e.master_port), (1, 2, 1234));
        assert!(DistEnv::from_vars(vars(&[
            ("RANK", "2"),
            ("WORLD_SIZE", "2"),
            ("MASTER_PORT", "1")
        ]))
        .is_err());
        let err = DistEnv::from_vars(vars(&[("RANK", "x"), ("WORLD_SIZE", "2")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("RANK"), "{err}");
    }
}
