//! DDP's gradient synchronisation: torch's own `c10d::Reducer` through the shim. It registers autograd
//! hooks on the parameters; once armed for a backward pass, it averages each bucket of gradients over
//! the ranks as soon as the bucket is complete, while backward goes on with earlier layers, and the end
//! of backward waits for the last bucket. Buckets as DDP makes them: 1 MiB first, then `bucket_cap`.
use std::ffi::{c_int, c_void};

use tch::Tensor;

use super::c10d::{check, ProcessGroup};
use crate::error::Result;

extern "C" {
    fn shim_reducer_new(
        g: *mut c_void,
        ts: *mut *mut torch_sys::C_tensor,
        n: c_int,
        bucket_cap: i64,
        out: *mut *mut c_void,
    ) -> c_int;
    fn shim_reducer_prepare(r: *mut c_void) -> c_int;
    fn shim_reducer_free(r: *mut c_void);
}

/// DDP's default bucket size (`bucket_cap_mb=25`).
pub const DEFAULT_BUCKET_BYTES: i64 = 25 * 1024 * 1024;

pub struct Reducer {
    handle: *mut c_void,
    /// The group the Reducer's collectives run on; kept alive at least as long as the Reducer.
    _group: std::sync::Arc<ProcessGroup>,
}

// SAFETY: used from the trainer's thread only; the Reducer's own threads are c10d's.
unsafe impl Send for Reducer {}

impl Reducer {
    /// A Reducer over `params` (leaf tensors that require grad, in model order).
    pub fn new(
        group: std::sync::Arc<ProcessGroup>,
        params: &[Tensor],
        bucket_bytes: i64,
    ) -> Result<Self> {
        let mut ptrs = ProcessGroup::pointers(params);
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: live group handle, live tensor handles for the call, valid out-pointer.
        let code = unsafe {
            shim_reducer_new(
                group.handle,
                ptrs.as_mut_ptr(),
                ptrs.len() as c_int,
                bucket_bytes,
                &mut handle,
            )
        };
        check(code, "building the gradient reducer")?;
        Ok(Self {
            handle,
            _group: group,
        })
    }

    /// Arms the hooks for the next backward: its gradients (plus any accumulated since the last sync)
    /// are averaged over the ranks by the time `backward()` returns.
    pub fn prepare_for_backward(&self) -> Result<()> {
        // SAFETY: a live Reducer handle.
        check(
            unsafe { shim_reducer_prepare(self.handle) },
            "arming the gradient reducer",
        )
    }
}

impl Drop for Reducer {
    fn drop(&mut self) {
        // SAFETY: the handle came from shim_reducer_new and is freed once.
        unsafe { shim_reducer_free(self.handle) }
    }
}
