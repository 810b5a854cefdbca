//! Which device a run uses: `trainer.device` (`cpu`, `cuda`, `cuda:N`), else CUDA when present, and the
//! GPU of each rank's `LOCAL_RANK`. Training and evaluation both choose through here.
use tch::Device;

use crate::dist::DistEnv;
use crate::error::{Error, Result};

/// `trainer.device`, or CUDA when present, else CPU.
pub fn select_device(requested: Option<&str>) -> Result<Device> {
    match requested {
        None => Ok(Device::cuda_if_available()),
        Some("cpu") => Ok(Device::Cpu),
        Some(s) if s == "cuda" || s.starts_with("cuda:") => {
            let index = s
                .strip_prefix("cuda:")
                .map_or(Ok(0), |i| i.parse::<usize>())
                .map_err(|_| bad_device(s))?;
            if !tch::Cuda::is_available() || index >= tch::Cuda::device_count() as usize {
                return Err(Error::InvalidValue {
                    path: "trainer.device".into(),
                    reason: format!(
                        "'{s}' requested but this machine has {} CUDA device(s)",
                        tch::Cuda::device_count()
                    ),
                });
            }
            Ok(Device::Cuda(index))
        }
        Some(s) => Err(bad_device(s)),
    }
}

/// With several ranks on a GPU machine and no explicit `trainer.device`, each rank takes the GPU of its
/// `LOCAL_RANK` (as torchrun users expect), wrapping around when there are fewer GPUs than ranks.
pub fn rank_device(device: Device, automatic: bool, dist: &DistEnv) -> Device {
    match device {
        Device::Cuda(_) if automatic && dist.world_size > 1 => {
            let count = tch::Cuda::device_count().max(1) as u64;
            Device::Cuda((dist.local_rank % count) as usize)
        }
        d => d,
    }
}

fn bad_device(s: &str) -> Error {
    Error::InvalidValue {
        path: "trainer.device".into(),
        reason: format!("'{s}': expected cpu, cuda or cuda:N"),
    }
}
