//! OLMo-core's `gpu_monitor` callback (`GPUMemoryMonitorCallback`): after every step on a GPU, the
//! caching allocator's peak active and reserved memory during that step, in GiB and as a share of the
//! GPU, and a warning when allocations had to be retried or ran out of memory. The allocator keeps these
//! counters on the host, so reading them waits for nothing.
use tch::Device;

use super::metric_names as names;
use crate::device::{memory_peaks, MemoryPeaks};

pub struct GpuMemoryMonitor {
    index: usize,
    alloc_retries: i64,
}

impl GpuMemoryMonitor {
    /// On a GPU with the callback configured: starts the peaks afresh and logs the GPU's capacity.
    pub fn start(device: Device, configured: bool) -> Option<Self> {
        let Device::Cuda(index) = device else {
            return None;
        };
        let first = memory_peaks(index).filter(|_| configured)?;
        tracing::info!(
            "GPU capacity: cuda:{index} with {:.2}GiB memory, of which {:.2}GiB is reserved so far",
            gib(first.total),
            gib(first.reserved)
        );
        Some(Self {
            index,
            alloc_retries: 0,
        })
    }

    /// The step's peaks as OLMo-core names them.
    pub fn step(&mut self) -> Vec<(String, f64)> {
        match memory_peaks(self.index) {
            Some(p) => {
                self.warn(&p);
                metrics(&p)
            }
            None => Vec::new(),
        }
    }

    fn warn(&mut self, p: &MemoryPeaks) {
        if p.alloc_retries > self.alloc_retries {
            tracing::warn!("{} CUDA memory allocation retries.", p.alloc_retries);
            self.alloc_retries = p.alloc_retries;
        }
        if p.ooms > 0 {
            tracing::warn!("{} CUDA OOM errors thrown.", p.ooms);
        }
    }
}

fn metrics(p: &MemoryPeaks) -> Vec<(String, f64)> {
    let pct = |b: i64| 100.0 * b as f64 / p.total.max(1) as f64;
    vec![
        (names::GPU_ACTIVE_GIB.into(), gib(p.active)),
        (names::GPU_ACTIVE_PCT.into(), pct(p.active)),
        (names::GPU_RESERVED_GIB.into(), gib(p.reserved)),
        (names::GPU_RESERVED_PCT.into(), pct(p.reserved)),
    ]
}

fn gib(bytes: i64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_become_olmo_cores_metrics() {
        let p = MemoryPeaks {
            active: 3 << 30,
            reserved: 4 << 30,
            alloc_retries: 0,
            ooms: 0,
            total: 16 << 30,
        };
        let m = metrics(&p);
        let get = |n: &str| m.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(get("gpu_memory/GPU active mem (GiB)"), Some(3.0));
        assert_eq!(get("gpu_memory/GPU active mem (%)"), Some(18.75));
        assert_eq!(get("gpu_memory/GPU reserved mem (GiB)"), Some(4.0));
        assert_eq!(get("gpu_memory/GPU reserved mem (%)"), Some(25.0));
        assert!(GpuMemoryMonitor::start(Device::Cpu, true).is_none());
    }
}
