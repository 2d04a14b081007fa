//! Facts about a network interface, by name.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::syscall;

/// What l2vip needs to know about an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Kernel index.
    pub index: u32,
    /// Hardware address.
    pub mac: [u8; 6],
    /// IFF_UP.
    pub up: bool,
    /// IFF_RUNNING (carrier).
    pub running: bool,
    /// MTU in bytes.
    pub mtu: u32,
}

/// The index of interface `name`, or `None` if there is none.
pub fn index(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

fn request(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // SAFETY: ifreq is plain data; all zeros is a valid value.
    let mut request: libc::ifreq = unsafe { mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    Ok(request)
}

fn ioctl(fd: &OwnedFd, command: libc::c_ulong, request: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: every command used here reads ifr_name and writes one member
    // of the ifreq union, which `request` provides in full.
    syscall!(unsafe { libc::ioctl(fd.as_raw_fd(), command as _, request as *mut libc::ifreq) })?;
    Ok(())
}

/// Looks up `name`. Fails if it does not exist or is not Ethernet.
pub fn lookup(name: &str) -> io::Result<InterfaceInfo> {
    let kind = libc::SOCK_DGRAM | libc::SOCK_CLOEXEC;
    // SAFETY: socket() takes integers only.
    let raw = syscall!(unsafe { libc::socket(libc::AF_UNIX, kind, 0) })?;
    // SAFETY: `raw` is a descriptor socket() just returned; nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };

    let mut req = request(name)?;
    ioctl(&fd, libc::SIOCGIFINDEX as libc::c_ulong, &mut req)?;
    // SAFETY: SIOCGIFINDEX filled the ifindex member.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };

    let mut req = request(name)?;
    ioctl(&fd, libc::SIOCGIFHWADDR as libc::c_ulong, &mut req)?;
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member.
    let hwaddr = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hwaddr.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "not an Ethernet interface (hardware type {})",
                hwaddr.sa_family
            ),
        ));
    }
    let mut mac = [0u8; 6];
    for (slot, byte) in mac.iter_mut().zip(hwaddr.sa_data.iter()) {
        *slot = *byte as u8;
    }

    let mut req = request(name)?;
    ioctl(&fd, libc::SIOCGIFFLAGS as libc::c_ulong, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });

    let mut req = request(name)?;
    ioctl(&fd, libc::SIOCGIFMTU as libc::c_ulong, &mut req)?;
    // SAFETY: SIOCGIFMTU filled the mtu member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };

    Ok(InterfaceInfo {
        index: u32::try_from(index).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?,
        mac,
        up: flags & libc::IFF_UP != 0,
        running: flags & libc::IFF_RUNNING != 0,
        mtu: u32::try_from(mtu).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_not_ethernet_and_missing_is_missing() {
        assert!(index("lo").is_some());
        let error = lookup("lo").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
        assert!(index("l2vip-none0").is_none());
        assert!(lookup("l2vip-none0").is_err());
        assert!(lookup("a/b/c/d/e/f/g/h/i").is_err());
    }
}
