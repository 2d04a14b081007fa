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

/// Evaluates a libc call and turns -1 into `io::Error::last_os_error()`.
/// The call is written at the call site as `unsafe { libc::f(...) }`, under
/// its own `// SAFETY:` comment saying why its arguments are sound.
macro_rules! syscall {
    ($call:expr) => {{
        let result = $call;
        if result == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(result)
        }
    }};
}
pub(crate) use syscall;
