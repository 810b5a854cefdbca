//! Devices: which one a rank uses (placement.rs, with what CUDA offers from cuda.rs), batches going up
//! to it without a wait, and reading tensor values back to the host, which training and evaluation both
//! do only through here.
mod cuda;
mod placement;
pub mod storage;

use tch::{Device, Tensor};

pub use cuda::{capability, memory_peaks, Gpus, MemoryPeaks};
pub use placement::{place, DeviceRequest, RankSlot};

use crate::error::{Error, Result};

/// This rank's device for the setting `value` of config key `key`, and why (for the run's first lines);
/// a GPU becomes the current device, as OLMo-core's `torch.cuda.set_device`.
pub fn for_rank(key: &str, value: Option<&str>, slot: RankSlot) -> Result<(Device, String)> {
    let request = DeviceRequest::parse(key, value)?;
    let gpus = match request {
        DeviceRequest::Cpu => Gpus::none("not asked for".into()),
        _ => Gpus::probe(),
    };
    let (device, why) = place(key, request, &gpus, slot)?;
    if let Device::Cuda(i) = device {
        cuda::set_current(i).map_err(|e| Error::InvalidValue {
            path: key.into(),
            reason: format!("cannot use cuda:{i}: {e}"),
        })?;
    }
    Ok((device, why))
}

/// `cpu` or `cuda:N`, as torch writes devices.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Cpu => "cpu".into(),
        d => format!("{d:?}").to_lowercase(),
    }
}

/// `t` on `device` for a step: from the host through pinned memory without waiting (the copy is queued
/// on the current stream, as OLMo-core's `pin_memory` + `non_blocking=True`); no copy when `t` is there.
pub fn upload(t: &Tensor, device: Device) -> Tensor {
    if t.device() == device {
        return t.shallow_clone();
    }
    match (t.device(), device) {
        (Device::Cpu, Device::Cuda(_)) => match cuda::pinned(t) {
            Some(p) => p.to_device_(device, t.kind(), true, false),
            None => t.to_device(device),
        },
        _ => t.to_device(device),
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
