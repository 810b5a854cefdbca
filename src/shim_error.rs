//! The message of the last C++ exception one of the shims (cpp/) caught on this thread: each shim
//! function returns nonzero instead of throwing and leaves the message here (cpp/shim_guard.h).
use std::ffi::{c_char, CStr};

extern "C" {
    fn shim_last_error() -> *const c_char;
}

/// The first line of the message (libtorch appends a C++ backtrace below it).
pub(crate) fn last_shim_error() -> String {
    // SAFETY: the shim returns a pointer to its thread-local, NUL-terminated error string.
    unsafe { CStr::from_ptr(shim_last_error()) }
        .to_string_lossy()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The tensor a shim handed over through its out-pointer (a heap `at::Tensor` made for the caller
/// alone), or the shim's error when it returned nonzero or no tensor.
pub(crate) fn take_tensor(code: i32, out: *mut torch_sys::C_tensor) -> Result<tch::Tensor, String> {
    if code != 0 || out.is_null() {
        return Err(last_shim_error());
    }
    // SAFETY: on success the shim's out-pointer holds a new `at::Tensor` nobody else owns.
    Ok(unsafe { tch::Tensor::from_ptr(out) })
}
