//! Devices: which one a run uses (`trainer.device`: `cpu`, `cuda`, `cuda:N`, else CUDA when present, and
//! the GPU of each rank's `LOCAL_RANK`), and reading tensor values back to the host, which training and
//! evaluation both do only through here.
use tch::{Device, Tensor};

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
pub fn rank_device(device: Device, automatic: bool, local_rank: u64, world_size: u64) -> Device {
    match device {
        Device::Cuda(_) if automatic && world_size > 1 => {
            let count = tch::Cuda::device_count().max(1) as u64;
            Device::Cuda((local_rank % count) as usize)
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

thread_local! {
    /// Debug builds: the host reads this thread has made (see `read_back`).
    static HOST_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Brings a tensor's values to the host: the way library code reads tensor values. On a GPU each read
/// waits for every kernel queued before it, so the training step makes none (its metrics stay on the
/// device until the trainer collects them); debug builds count the reads per thread, and a test asserts
/// that a training step adds none.
pub fn read_back<T>(t: &Tensor) -> std::result::Result<T, tch::TchError>
where
    T: TryFrom<Tensor, Error = tch::TchError>,
{
    count_host_read();
    T::try_from(t.to_device(Device::Cpu))
}

/// A scalar tensor's value on the host (a `read_back` of one number).
pub fn read_scalar(t: &Tensor) -> f64 {
    count_host_read();
    t.double_value(&[])
}

/// A copy of `t` on the host, contiguous (a `read_back` that keeps the tensor).
pub fn host_copy(t: &Tensor) -> Tensor {
    count_host_read();
    t.detach().to_device(Device::Cpu).contiguous()
}

fn count_host_read() {
    if cfg!(debug_assertions) {
        HOST_READS.with(|c| c.set(c.get() + 1));
    }
}

/// Debug builds: how many host reads this thread has made so far (always 0 in release builds).
pub fn host_reads() -> u64 {
    HOST_READS.with(|c| c.get())
}
