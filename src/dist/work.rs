//! An asynchronous c10d collective in flight (`c10d::Work`): `wait` blocks until its result is in
//! the output tensor (on a GPU, until the current stream is ordered after it); dropping it without a
//! wait frees the handle only. The tensors the collective reads and writes must outlive the wait: the
//! caller keeps them beside the `Work`.
use std::ffi::{c_int, c_void};

use super::c10d::check;
use crate::error::Result;

extern "C" {
    fn shim_work_wait(work: *mut c_void) -> c_int;
    fn shim_work_free(work: *mut c_void);
}

pub struct Work {
    handle: *mut c_void,
    what: &'static str,
}

// SAFETY: a c10d Work may be waited on from any thread; ours stays with the trainer's thread.
unsafe impl Send for Work {}

impl Work {
    /// Takes over a handle the shim made; `what` names the collective in errors.
    pub(super) fn new(handle: *mut c_void, what: &'static str) -> Self {
        Self { handle, what }
    }

    pub fn wait(self) -> Result<()> {
        // SAFETY: a live Work handle, freed by Drop after this.
        check(unsafe { shim_work_wait(self.handle) }, self.what)
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        // SAFETY: the handle came from the shim and is freed once.
        unsafe { shim_work_free(self.handle) }
    }
}
