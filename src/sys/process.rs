//! Ending a child's whole process group (a hook's shell and whatever it
//! started).

use std::io;

use super::syscall;

/// Sends SIGKILL to process group `pgid` (a child started with
/// `process_group(0)`, so its group id is its PID).
pub fn kill_group(pgid: u32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill takes plain integers; a negative PID names a group.
    syscall!(unsafe { libc::kill(-pgid, libc::SIGKILL) })?;
    Ok(())
}

/// Runs `create` with the file mode creation mask set to `mask`, then puts
/// the old one back: what `create` makes has its final mode from the start.
/// The mask is the process's: call this before other threads exist.
pub fn with_umask<T>(mask: u32, create: impl FnOnce() -> T) -> T {
    // SAFETY: umask only swaps an integer in the process and cannot fail.
    let old = unsafe { libc::umask(mask as libc::mode_t) };
    let result = create();
    // SAFETY: as above, restoring the value umask returned.
    unsafe { libc::umask(old) };
    result
}
