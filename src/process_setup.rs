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
