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
    syscall!(kill(-pgid, libc::SIGKILL))?;
    Ok(())
}
