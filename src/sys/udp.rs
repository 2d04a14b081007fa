//! What std does not offer for the heartbeat socket: multicast options by
//! interface index, TTL / hop limit 255 on every datagram sent, and each
//! received datagram's TTL or hop limit (GTSM).

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

use super::syscall;

fn set<T>(socket: &UdpSocket, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live T and the length passed is its size.
    syscall!(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })?;
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

/// Sets the hop limit of IPv6 multicast (IPV6_MULTICAST_HOPS).
fn multicast_hops_v6(socket: &UdpSocket, hops: u8) -> io::Result<()> {
    set(
        socket,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_HOPS,
        &libc::c_int::from(hops),
    )
}

/// The TTL and hop limit every heartbeat leaves with, and the least one
/// is accepted with (GTSM, RFC 5082): a router on the way takes one off,
/// so nothing sent from beyond the link arrives with 255.
pub const LINK_HOPS: u8 = 255;

/// Sends with TTL / hop limit 255, unicast and multicast, and has the
/// kernel report each received datagram's TTL or hop limit. On an IPv6
/// socket the IPv4 options cover IPv4-mapped peers too.
pub fn link_only(socket: &UdpSocket, v6: bool) -> io::Result<()> {
    let hops = libc::c_int::from(LINK_HOPS);
    let on: libc::c_int = 1;
    set(socket, libc::IPPROTO_IP, libc::IP_TTL, &hops)?;
    set(socket, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &hops)?;
    set(socket, libc::IPPROTO_IP, libc::IP_RECVTTL, &on)?;
    if v6 {
        set(socket, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &hops)?;
        multicast_hops_v6(socket, LINK_HOPS)?;
        set(socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &on)?;
    }
    Ok(())
}

/// One datagram read by [`receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Bytes placed in the buffer.
    pub len: usize,
    /// The datagram was longer than the buffer (the rest is lost).
    pub truncated: bool,
    /// Its source.
    pub from: SocketAddr,
    /// Its TTL or hop limit on arrival, when the kernel reported one.
    pub hops: Option<u8>,
}

/// Control-message space for one TTL or hop-limit report (an int each),
/// with room to spare; u64s keep it aligned for `cmsghdr`.
const CONTROL_WORDS: usize = 16;

/// Reads one datagram with its source and its TTL / hop limit (the socket
/// must have gone through [`link_only`]). `WouldBlock` when none is queued.
pub fn receive(socket: &impl AsRawFd, buffer: &mut [u8]) -> io::Result<Datagram> {
    // SAFETY: sockaddr_storage is plain data; all zeros is a valid value.
    let mut source: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: msghdr is plain data; all zeros is a valid value.
    let mut message: libc::msghdr = unsafe { mem::zeroed() };
    message.msg_name = (&mut source as *mut libc::sockaddr_storage).cast();
    message.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `message` points at a live value of this
    // frame (the source, one iovec over `buffer`, the control words), each
    // length is that value's size, and they outlive the call.
    let len = syscall!(unsafe { libc::recvmsg(socket.as_raw_fd(), &mut message, 0) })?;
    let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    let from = socket_address(&source, message.msg_namelen)?;
    let mut hops = None;
    // SAFETY: `message` is the header recvmsg just filled: its control
    // pointer and length describe the `control` words, which the kernel
    // wrote whole control messages into.
    let mut header = unsafe { libc::CMSG_FIRSTHDR(&message) };
    while !header.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return null or a pointer to a
        // whole cmsghdr inside `control`.
        let cmsg = unsafe { &*header };
        let reports_hops = (cmsg.cmsg_level == libc::IPPROTO_IP && cmsg.cmsg_type == libc::IP_TTL)
            || (cmsg.cmsg_level == libc::IPPROTO_IPV6 && cmsg.cmsg_type == libc::IPV6_HOPLIMIT);
        // SAFETY: CMSG_LEN is arithmetic on its argument.
        let int_len = unsafe { libc::CMSG_LEN(mem::size_of::<libc::c_int>() as u32) } as usize;
        if reports_hops && cmsg.cmsg_len as usize >= int_len {
            // SAFETY: the message holds at least one int of data (checked
            // just above) starting at CMSG_DATA, which may be unaligned.
            let value = unsafe {
                libc::CMSG_DATA(header)
                    .cast::<libc::c_int>()
                    .read_unaligned()
            };
            hops = u8::try_from(value).ok();
        }
        // SAFETY: `header` is a control message inside `message`'s buffer.
        header = unsafe { libc::CMSG_NXTHDR(&message, header) };
    }
    Ok(Datagram {
        len: len.min(buffer.len()),
        truncated: message.msg_flags & libc::MSG_TRUNC != 0,
        from,
        hops,
    })
}

/// The address recvmsg wrote into `storage` (`len` bytes of it).
fn socket_address(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> io::Result<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is aligned and large enough for one.
            let v4 =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Ok(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(v4.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6, and
            // sockaddr_storage is aligned and large enough for one.
            let v6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                u32::from_be(v6.sin6_flowinfo),
                v6.sin6_scope_id,
            )))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a datagram without an IP source address",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends one datagram to `to` from a fresh socket with TTL / hop
    /// limit `hops`, and reads it with [`receive`] on `socket`.
    fn bounce(socket: &UdpSocket, to: SocketAddr, hops: u32) -> Datagram {
        let sender = UdpSocket::bind(match to {
            SocketAddr::V4(_) => "127.0.0.1:0",
            SocketAddr::V6(_) => "[::1]:0",
        })
        .expect("sender");
        match to {
            SocketAddr::V4(_) => sender.set_ttl(hops).expect("TTL"),
            SocketAddr::V6(_) => {
                let hops = libc::c_int::try_from(hops).expect("hops");
                set(&sender, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &hops).expect("hop limit")
            }
        }
        sender.send_to(b"beat", to).expect("send");
        let mut buffer = [0u8; 3];
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("timeout");
        let datagram = receive(socket, &mut buffer).expect("receive");
        assert_eq!(&buffer, b"bea");
        datagram
    }

    #[test]
    fn receive_reports_the_ttl_source_and_truncation() {
        let v4 = UdpSocket::bind("127.0.0.1:0").expect("bind");
        link_only(&v4, false).expect("link only");
        let to = v4.local_addr().expect("address");
        for hops in [255, 254, 1] {
            let datagram = bounce(&v4, to, hops);
            assert_eq!(datagram.hops, Some(hops as u8));
            assert_eq!(datagram.len, 3);
            assert!(datagram.truncated);
            assert_eq!(datagram.from.ip(), to.ip());
        }
    }

    #[test]
    fn an_ipv6_socket_reports_hop_limits_and_ipv4_mapped_ttls() {
        let Ok(v6) = UdpSocket::bind("[::]:0") else {
            eprintln!("no IPv6 on this host: skipped");
            return;
        };
        link_only(&v6, true).expect("link only");
        let port = v6.local_addr().expect("address").port();
        for hops in [255, 64] {
            let datagram = bounce(&v6, SocketAddr::from((Ipv6Addr::LOCALHOST, port)), hops);
            assert_eq!(datagram.hops, Some(hops as u8));
            let datagram = bounce(&v6, SocketAddr::from((Ipv4Addr::LOCALHOST, port)), hops);
            assert_eq!(datagram.hops, Some(hops as u8), "IPv4-mapped");
            assert_eq!(
                datagram.from.ip(),
                std::net::IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped())
            );
        }
        // What it sends leaves with 255, to IPv6 and IPv4-mapped peers.
        let v4 = UdpSocket::bind("127.0.0.1:0").expect("bind");
        link_only(&v4, false).expect("link only");
        let mapped = SocketAddr::from((
            Ipv4Addr::LOCALHOST.to_ipv6_mapped(),
            v4.local_addr().expect("address").port(),
        ));
        for (to, receiver) in [
            (SocketAddr::from((Ipv6Addr::LOCALHOST, port)), &v6),
            (mapped, &v4),
        ] {
            v6.send_to(b"beat", to).expect("send");
            receiver
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .expect("timeout");
            let mut buffer = [0u8; 16];
            let datagram = receive(receiver, &mut buffer).expect("receive");
            assert_eq!(
                (datagram.len, datagram.hops),
                (4, Some(LINK_HOPS)),
                "to {to}"
            );
        }
    }
}
