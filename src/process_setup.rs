//! Process-wide settings the binary (and benchmarks) apply once at start-up.

/// Keeps large allocations on glibc's heap instead of a fresh `mmap` each time. Training allocates the
/// same big buffers every step (a 2048 x 100352 fp32 logits tensor is 800 MiB; a 64 x 4096 int64 batch
/// 2 MiB); as separate mappings each was page-faulted in anew on every step, which cost more system time
/// than the math took. On the heap, freed buffers are reused without faults; the peak footprint is
/// unchanged (the heap is not trimmed below its peak, which is what a training process wants).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts glibc's allocator parameters; it is called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Ends the process with `code` once the command has finished, skipping C++ static destructors.
/// libtorch's destructors deregister its ~2,000 operators one by one at exit, 0.1 s of every command
/// (a third of `--dry-run`). Nothing is lost by skipping them: every file the command wrote was closed
/// (and checkpoints synced) before it returned; the standard streams are flushed here.
pub fn exit_now(code: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: fflush(NULL) flushes C stdio buffers (anything libtorch printed); _exit ends the process
    // without running atexit handlers, which is the point.
    unsafe {
        libc::fflush(std::ptr::null_mut());
        libc::_exit(i32::from(code))
    }
}

/// Turns a file-size limit (`ulimit -f`, a quota enforced that way) into a write error instead of a
/// kill: by default SIGXFSZ ends the process mid-write, before it can say which file, remove its
/// staging folder or keep the previous checkpoint as the newest. Ignored, the write returns EFBIG and
/// takes the same path as a full disk (ENOSPC).
pub fn report_file_size_limit_as_error() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code; called at start-up.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
