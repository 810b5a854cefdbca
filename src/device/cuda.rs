//! The GPUs this process can use, as libtorch sees them (cpp/cuda_shim.cpp), and the current device.
use std::ffi::c_int;

use crate::shim_error::last_shim_error;

extern "C" {
    fn shim_cuda_probe(count: *mut c_int) -> c_int;
    fn shim_cuda_set_device(index: c_int) -> c_int;
    fn shim_cuda_capability(index: c_int, major: *mut c_int, minor: *mut c_int) -> c_int;
    fn shim_pin_memory(t: *mut torch_sys::C_tensor, out: *mut *mut torch_sys::C_tensor) -> c_int;
    fn shim_cuda_memory_stats(index: c_int, out: *mut i64) -> c_int;
}

/// The caching allocator's peaks since the previous call (which resets them), in bytes.
#[derive(Debug, Clone, Copy)]
pub struct MemoryPeaks {
    pub active: i64,
    pub reserved: i64,
    /// Allocations that had to free cached blocks and retry, since the start.
    pub alloc_retries: i64,
    pub ooms: i64,
    /// The GPU's memory.
    pub total: i64,
}

/// GPU `index`'s allocator peaks (host-side counters: no GPU sync), then a fresh start for them.
pub fn memory_peaks(index: usize) -> Option<MemoryPeaks> {
    let mut v = [0i64; 5];
    // SAFETY: `v` holds the five values the shim writes; it catches every C++ exception.
    (unsafe { shim_cuda_memory_stats(index as c_int, v.as_mut_ptr()) } == 0).then_some(
        MemoryPeaks {
            active: v[0],
            reserved: v[1],
            alloc_retries: v[2],
            ooms: v[3],
            total: v[4],
        },
    )
}

/// A page-locked copy of host tensor `t`, from which a copy to a GPU need not wait; `None` when
/// pinning fails (no CUDA).
pub fn pinned(t: &tch::Tensor) -> Option<tch::Tensor> {
    let mut out: *mut torch_sys::C_tensor = std::ptr::null_mut();
    // SAFETY: a live tensor handle for the call; on success the shim hands over a new tensor.
    let code = unsafe { shim_pin_memory(t.as_ptr() as *mut torch_sys::C_tensor, &mut out) };
    crate::shim_error::take_tensor(code, out).ok()
}

/// The compute capability (major, minor) of GPU `index`, `None` when CUDA cannot say.
pub fn capability(index: usize) -> Option<(i32, i32)> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: valid out-pointers; the shim catches every C++ exception.
    (unsafe { shim_cuda_capability(index as c_int, &mut major, &mut minor) } == 0)
        .then_some((major, minor))
}

/// What CUDA offers this process: `count` GPUs, or none and libtorch's reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpus {
    pub count: usize,
    /// Why there is no GPU (no driver, a driver too old for the wheel's CUDA, no device, ...).
    pub unusable: Option<String>,
}

impl Gpus {
    pub fn probe() -> Self {
        let mut count: c_int = 0;
        // SAFETY: a valid out-pointer; the shim catches every C++ exception.
        match unsafe { shim_cuda_probe(&mut count) } {
            0 if count > 0 => Self {
                count: count as usize,
                unusable: None,
            },
            0 => Self::none("no CUDA GPUs are available".into()),
            _ => Self::none(last_shim_error()),
        }
    }

    pub fn none(reason: String) -> Self {
        Self {
            count: 0,
            unusable: Some(reason),
        }
    }
}

/// Makes `index` the current CUDA device of this thread (as `torch.cuda.set_device`).
pub fn set_current(index: usize) -> Result<(), String> {
    // SAFETY: plain integer argument; the shim catches every C++ exception.
    match unsafe { shim_cuda_set_device(index as c_int) } {
        0 => Ok(()),
        _ => Err(last_shim_error()),
    }
}
