//! Process-wide settings the binary (and benchmarks) apply once at start-up.

/// Keeps batch-sized allocations (a 64 x 4096 int64 batch is 2 MiB) on glibc's heap instead of fresh
/// `mmap`s: every new mapping is page-faulted in again, which cost the data loader more than reading
/// the tokens. Freed memory stays mapped for reuse; the peak footprint is unchanged.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts glibc's allocator thresholds; it is called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}
