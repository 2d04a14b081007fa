//! NETLINK_ROUTE sockets: one for requests (routes, dumps) and one that
//! listens to link and address events. Message formats are in
//! `wire::netlink`; this file only moves bytes.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::syscall;

/// A NETLINK_ROUTE socket.
#[derive(Debug)]
pub struct NetlinkSocket {
    fd: OwnedFd,
}

fn kernel() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain data; all zeros is a valid value.
    let mut address: libc::sockaddr_nl = unsafe { mem::zeroed() };
    address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    address
}

impl NetlinkSocket {
    /// Opens a socket subscribed to `groups` (`RTMGRP_*` bits; 0 for none).
    /// A non-blocking socket is for a mio loop; a blocking one waits at
    /// most `timeout` for each answer.
    pub fn open(groups: u32, nonblocking: bool, timeout: Duration) -> io::Result<NetlinkSocket> {
        let mut kind = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
        if nonblocking {
            kind |= libc::SOCK_NONBLOCK;
        }
        // SAFETY: socket() takes integers only.
        let raw = syscall!(unsafe { libc::socket(libc::AF_NETLINK, kind, libc::NETLINK_ROUTE) })?;
        // SAFETY: `raw` is a descriptor socket() just returned; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let socket = NetlinkSocket { fd };
        let mut address = kernel();
        address.nl_groups = groups;
        // SAFETY: `address` is a live sockaddr_nl and the length passed is its size.
        syscall!(unsafe {
            libc::bind(
                socket.fd.as_raw_fd(),
                (&address as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        if !nonblocking {
            let timeout = libc::timeval {
                // Both fit every width of time_t and suseconds_t (32-bit musl too).
                tv_sec: timeout.as_secs().min(i32::MAX as u64) as _,
                tv_usec: timeout.subsec_micros() as _,
            };
            socket.set(libc::SO_RCVTIMEO, &timeout)?;
        }
        Ok(socket)
    }

    fn set<T>(&self, name: libc::c_int, value: &T) -> io::Result<()> {
        // SAFETY: `value` is a live T and the length passed is its size.
        syscall!(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                (value as *const T).cast(),
                mem::size_of::<T>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// Asks for a receive buffer of `bytes` (events come in bursts when
    /// many links change at once).
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        self.set(libc::SO_RCVBUF, &bytes)
    }

    /// Sends one request to the kernel.
    pub fn send(&self, message: &[u8]) -> io::Result<()> {
        let address = kernel();
        // SAFETY: `message` and `address` are live for the call and the
        // lengths passed are theirs.
        syscall!(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                (&address as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// Receives one datagram; `Ok(None)` when nothing is waiting (or the
    /// blocking wait timed out). `ENOBUFS` (events were lost) is an error
    /// the caller answers with a new dump.
    pub fn recv(&self, buffer: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: `buffer` is live and writable for its whole length.
            let result = syscall!(unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    libc::MSG_TRUNC,
                )
            });
            return match result {
                Ok(len) if len as usize > buffer.len() => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "netlink message larger than the buffer",
                )),
                Ok(len) => Ok(Some(len as usize)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) => Err(e),
            };
        }
    }
}

impl AsRawFd for NetlinkSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
