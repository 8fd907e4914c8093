//! The process's heap (glibc malloc): tuned for transfers, given back between them.
//!
//! hyper reads a body into fresh buffers of up to ~400 KiB while the `.part` pipeline
//! still holds the previous ones (a few MiB in flight). With glibc's defaults the top of
//! the heap is given back to the kernel and faulted in again over and over: ~30,000 page
//! faults per GiB. Serving such buffers from the heap (not mmap) and keeping up to 16
//! MiB of it free brings that to ~2,500 and saves ~0.07 CPU-s per GiB (issue 5's
//! benchmark).
//!
//! The cost of that, found by bench/soak.py (a 16 MiB download every 30 s): the buffers
//! are allocated by several threads (the runtime's workers, the pipeline's hasher and
//! writer), so glibc served them from several arenas, and each arena but the main one
//! keeps its free top (up to the 16 MiB threshold) for good: `malloc_trim` releases
//! free chunks in every arena but shrinks only the main arena's top. `serve` sat at
//! ~13 MiB of heap with 0.45 MiB in use, idle. So there is one arena (the threads take
//! turns on its lock: a few allocations per received chunk), and once no transfer runs,
//! its free memory goes back to the kernel (`give_back`).

/// How long after a transfer's end the heap is given back: its connection's task, and
/// the buffers it holds, end on the runtime's own time, after the transfer has returned.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Sets the allocator up; call before any other thread exists.
pub fn tune() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes glibc's allocator; called before any other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 1 << 20);
        nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, 16 << 20);
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
}

/// Returns the heap's free memory to the kernel (`malloc_trim(3)`); well under a
/// millisecond.
pub fn give_back() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases memory that is free; it is thread-safe.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
