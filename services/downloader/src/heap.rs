//! The process's heap between transfers. A transfer's body buffers (hyper's reads, the
//! `.part` pipeline's batches) are allocated by several threads, so glibc serves them
//! from several arenas, and `main` asks glibc to keep up to 16 MiB free at the top of
//! each (`keep_heap_for_body_buffers`, a speed setting). Measured by bench/soak.py (a
//! 16 MiB download every 30 s): without giving it back, `serve`'s private memory went
//! from 2.7 MiB to 16 MiB after four transfers and stayed there while idle. So once no
//! transfer is running, the free heap of every arena goes back to the kernel.

/// Returns the free heap of every arena to the kernel (`malloc_trim(3)`: glibc 2.8+ trims
/// all arenas, not only the top of the main one). Costs well under a millisecond.
pub fn give_back() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases memory that is free; it is thread-safe.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
