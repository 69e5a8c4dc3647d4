//! The cluster side: object kinds, sources (API server watchers, manifest files), the store and
//! the index that `k8s_gateway` answers from.

pub mod client;
pub mod crds;
pub mod index;
pub mod kinds;
pub mod manifests;
pub mod metrics;
pub mod model;
pub mod selector;
pub mod snapshot;
pub mod source;
pub mod watch;

/// Hands the heap's free pages back to the system after a large load. glibc's allocator keeps
/// them otherwise: the transient trees of a 10k-object list (parsed files, API pages) are freed
/// but stay resident. A no-op with other allocators.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only returns glibc's own free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}
