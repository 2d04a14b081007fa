//! Dropping root: switch to an unprivileged user and keep only the
//! capabilities l2vip needs after start-up, CAP_NET_RAW (packet sockets,
//! reopened when an interface is re-created) and CAP_NET_ADMIN (routes,
//! ARP sysctls, multicast membership).
//!
//! Must run before any thread starts: capabilities are per thread, and new
//! threads inherit the creating thread's.

use std::io;
use std::ptr;

use super::syscall;

/// `CAP_NET_ADMIN`.
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_NET_RAW`.
pub const CAP_NET_RAW: u32 = 13;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// A user from /etc/passwd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Finds `name` in `passwd` text (the format of /etc/passwd).
pub fn find_user(passwd: &str, name: &str) -> Option<User> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(User {
            name: name.to_string(),
            uid,
            gid,
        })
    })
}

/// Becomes `user` (no supplementary groups) keeping exactly `caps` in the
/// effective and permitted sets; nothing inheritable or ambient, so child
/// processes (hooks, checks) get no capabilities.
pub fn drop_to(user: &User, caps: &[u32]) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    syscall!(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1 as libc::c_ulong, 0, 0, 0) })?;
    // SAFETY: a zero-length list; the pointer is never read.
    syscall!(unsafe { libc::setgroups(0, ptr::null()) })?;
    // SAFETY: integer arguments only. libc's wrappers apply these to every
    // thread, but none exists yet.
    syscall!(unsafe { libc::setresgid(user.gid, user.gid, user.gid) })?;
    // SAFETY: as above.
    syscall!(unsafe { libc::setresuid(user.uid, user.uid, user.uid) })?;
    keep_only(caps)?;
    // SAFETY: prctl with integer arguments only.
    syscall!(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0 as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// The real user and group IDs of this process.
pub fn ids() -> (u32, u32) {
    // SAFETY: getuid and getgid take nothing and cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Keeps exactly `caps` in the effective and permitted sets, none
/// inheritable or ambient (giving up capabilities needs none).
pub fn keep_only(caps: &[u32]) -> io::Result<()> {
    let mut mask = [0u32; 2];
    for cap in caps {
        let (word, bit) = ((*cap / 32) as usize, cap % 32);
        if let Some(slot) = mask.get_mut(word) {
            *slot |= 1 << bit;
        }
    }
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: mask[0],
            permitted: mask[0],
            inheritable: 0,
        },
        CapData {
            effective: mask[1],
            permitted: mask[1],
            inheritable: 0,
        },
    ];
    // SAFETY: `header` and the two-element `data` array are live, laid out
    // as struct __user_cap_header_struct and __user_cap_data_struct[2]
    // (version 3), and outlive the call.
    syscall!(unsafe {
        libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr())
    })?;
    clear_ambient()
}

/// Empties the ambient capability set, so that programs this process runs
/// (hooks, checks) inherit no capabilities from it, whatever started it
/// with (systemd's `AmbientCapabilities=`). Its own sets stay as they are.
/// A kernel older than 4.3 has no ambient set: nothing to clear.
pub fn clear_ambient() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only; clears the ambient set.
    let cleared = syscall!(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    });
    match cleared {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other.map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_users_in_passwd_text() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\n\
                      l2vip:x:497:495:l2vip daemon:/var/empty:/sbin/nologin\n\
                      broken:x:notanumber:1::/:/bin/sh\n";
        assert_eq!(
            find_user(passwd, "l2vip"),
            Some(User {
                name: "l2vip".into(),
                uid: 497,
                gid: 495
            })
        );
        assert_eq!(find_user(passwd, "nobody"), None);
        assert_eq!(find_user(passwd, "broken"), None);
        assert_eq!(find_user(passwd, "l2vi"), None);
    }
}
