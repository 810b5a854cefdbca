//! Mixed precision as OLMo-core's `train_module.autocast_precision: bfloat16` does it: parameters and
//! optimizer state stay fp32, the forward pass runs under `torch.autocast(dtype=bfloat16)` (matrix
//! products in bf16, norms and the loss in fp32). `cpp/autocast_shim.cpp` sets libtorch's autocast state.
use std::ffi::c_int;

use tch::Device;

extern "C" {
    fn shim_autocast_enter(cuda: c_int, prev_enabled: *mut c_int, prev_dtype: *mut c_int);
    fn shim_autocast_exit(cuda: c_int, prev_enabled: c_int, prev_dtype: c_int);
    fn shim_autocast_active(cuda: c_int) -> c_int;
}

/// Whether (our bf16) autocast is on for `device` on this thread.
pub fn active(device: Device) -> bool {
    let cuda = c_int::from(matches!(device, Device::Cuda(_)));
    // SAFETY: a plain getter of libtorch's thread-local autocast state.
    unsafe { shim_autocast_active(cuda) != 0 }
}

/// bf16 autocast on `device` for as long as the guard lives (on this thread).
pub struct AutocastGuard {
    cuda: c_int,
    prev_enabled: c_int,
    prev_dtype: c_int,
    /// The state is per thread: the guard must be dropped where it was made.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl AutocastGuard {
    pub fn bf16(device: Device) -> Self {
        let cuda = c_int::from(matches!(device, Device::Cuda(_)));
        let (mut prev_enabled, mut prev_dtype) = (0, 0);
        // SAFETY: plain setters of libtorch's thread-local autocast state; the pointers are valid.
        unsafe { shim_autocast_enter(cuda, &mut prev_enabled, &mut prev_dtype) };
        Self {
            cuda,
            prev_enabled,
            prev_dtype,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // SAFETY: restores the state saved by the matching enter, on the same thread.
        unsafe { shim_autocast_exit(self.cuda, self.prev_enabled, self.prev_dtype) };
    }
}
