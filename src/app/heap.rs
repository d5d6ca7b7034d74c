//! Handing freed heap back to the system.
//!
//! glibc's malloc keeps memory a program freed for its next allocations: after a view build
//! (the previous view's parts, the build's temporary buffers) or a GC mark (its object list)
//! the process would keep its peak size for good. Trimming after those makes the resident
//! size what is live, which is what an operator of a small host reads.

/// Returns the free memory at the top of every malloc arena, and whole free pages inside
/// them, to the system. Does nothing where the C library is not glibc.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes only an integer and works on glibc's own arenas under their
    // locks; it may be called from any thread at any time, and frees nothing in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
