//! The C allocator's settings. Only glibc needs any: it gives every thread
//! an arena of its own and keeps freed pages resident. musl's allocator
//! has one heap and returns free memory by itself, so there these do
//! nothing.

/// One arena for all threads. l2vip's threads allocate only when the
/// configuration or ownership changes, never per frame, so they do not
/// contend; separate arenas would only hold their own free pages. Call it
/// before any thread starts.
pub fn one_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes a setting of the allocator; it is called
    // while this is the only thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives pages the allocator holds free back to the system (after start-up
/// parsed the configuration, after a reload or a burst of control clients).
pub fn release_free() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes the allocator's own locks; it may run while
    // other threads allocate.
    unsafe {
        libc::malloc_trim(0);
    }
}
