//! Multicast options std does not offer by interface index.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;

use super::syscall;

fn set<T>(socket: &UdpSocket, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live T and the length passed is its size.
    syscall!(setsockopt(
        socket.as_raw_fd(),
        level,
        name,
        (value as *const T).cast(),
        mem::size_of::<T>() as libc::socklen_t
    ))?;
    Ok(())
}

fn mreqn(group: Ipv4Addr, ifindex: u32) -> io::Result<libc::ip_mreqn> {
    Ok(libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from_ne_bytes(group.octets()),
        },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: i32::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
    })
}

/// Joins an IPv4 group on the interface `ifindex` (IP_ADD_MEMBERSHIP).
pub fn join_v4(socket: &UdpSocket, group: Ipv4Addr, ifindex: u32) -> io::Result<()> {
    set(
        socket,
        libc::IPPROTO_IP,
        libc::IP_ADD_MEMBERSHIP,
        &mreqn(group, ifindex)?,
    )
}

/// Sends IPv4 multicast out of interface `ifindex` (IP_MULTICAST_IF).
pub fn multicast_interface_v4(socket: &UdpSocket, ifindex: u32) -> io::Result<()> {
    set(
        socket,
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_IF,
        &mreqn(Ipv4Addr::UNSPECIFIED, ifindex)?,
    )
}

/// Sends IPv6 multicast out of interface `ifindex` (IPV6_MULTICAST_IF).
pub fn multicast_interface_v6(socket: &UdpSocket, ifindex: u32) -> io::Result<()> {
    let index =
        libc::c_int::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    set(socket, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &index)
}

/// Keeps IPv6 multicast on the link (IPV6_MULTICAST_HOPS = 1).
pub fn multicast_hops_v6(socket: &UdpSocket, hops: u8) -> io::Result<()> {
    set(
        socket,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_HOPS,
        &libc::c_int::from(hops),
    )
}
