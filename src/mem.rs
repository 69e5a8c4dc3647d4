//! Memory housekeeping shared by the cluster side and the server.

/// Hands the heap's free pages back to the system after a large load or a connection flood.
/// glibc's allocator keeps them otherwise: the transient trees of a 10k-object list (parsed files,
/// API pages) or the buffers of a thousand closed connections are freed but stay resident. A no-op with other allocators.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only returns glibc's own free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}
