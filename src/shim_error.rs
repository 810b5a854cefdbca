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
