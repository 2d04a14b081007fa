//! Who is on the other end of a Unix socket (SO_PEERCRED).

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

use super::syscall;

/// The peer's user, primary group and process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Process id (when it connected or listened).
    pub pid: u32,
}

/// Reads the credentials of the process that connected `socket`.
pub fn peer(socket: &impl AsRawFd) -> io::Result<Credentials> {
    // SAFETY: ucred is plain data; all zeros is a valid value.
    let mut cred: libc::ucred = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is live and writable for `len` bytes, which the kernel
    // updates to what it wrote.
    syscall!(unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok(Credentials {
        uid: cred.uid,
        gid: cred.gid,
        pid: cred.pid as u32,
    })
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
