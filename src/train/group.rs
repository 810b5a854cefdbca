//! Joining the data-parallel group, with the check that every rank resolved the same config.
use std::sync::Arc;

use tch::Device;

use crate::config::ExperimentConfig;
use crate::dist::{DistEnv, ProcessGroup};
use crate::error::{Error, Result};

/// Joins the data-parallel group and checks that every rank resolved the same config (a hash of it,
/// broadcast from rank 0, compared everywhere, and the verdict summed so all ranks agree).
pub fn join_group(
    env: &DistEnv,
    config: &ExperimentConfig,
    device: Device,
) -> Result<Arc<ProcessGroup>> {
    use sha2::{Digest, Sha256};
    tracing::info!(
        "rank {} of {}: joining the group at {}:{}",
        env.rank,
        env.world_size,
        env.master_addr,
        env.master_port
    );
    let cuda = match device {
        Device::Cuda(i) => Some(i),
        _ => None,
    };
    let pg = ProcessGroup::with_cuda(env, config.dist_timeout, cuda)?;
    let json = serde_json::to_vec(config)
        .map_err(|e| Error::Internal(format!("the config is not JSON: {e}")))?;
    let digest: [u8; 32] = Sha256::digest(json).into();
    let words: Vec<i64> = digest
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    let (_, differing) = pg.compare_with_root(&words)?;
    if differing > 0 {
        return Err(Error::Distributed(format!(
            "{differing} rank(s) resolved a different config than rank 0: give every rank the same command line and files"
        )));
    }
    Ok(Arc::new(pg))
}
