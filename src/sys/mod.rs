//! The only place with `unsafe`: thin, checked wrappers around the Linux
//! system calls l2vip needs. Everything returns `io::Result` and owns its
//! descriptors as `OwnedFd`.

pub mod bpf;
pub mod cred;
pub mod iface;
pub mod memory;
pub mod netlink;
pub mod packet;
pub mod privilege;
pub mod process;
pub mod sched;
pub mod signal;
pub mod udp;

/// Calls a libc function and turns -1 into `io::Error::last_os_error()`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each caller passes pointers to live, correctly sized
        // values owned by the calling frame, as its own comment states.
        let result = unsafe { libc::$fn($($arg),*) };
        if result == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(result)
        }
    }};
}
pub(crate) use syscall;
