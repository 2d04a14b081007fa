//! AF_PACKET sockets bound to one interface and one EtherType.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::bpf::{self, Instruction};
use super::syscall;

/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;

/// The most frames one `recv_batch` or `send_batch` call moves.
pub const MAX_BATCH: usize = 64;

/// A received frame's metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// The frame's full length (may exceed the buffer: then it was cut).
    pub len: usize,
    /// `sll_pkttype`: host, broadcast, multicast, other host, outgoing.
    pub pkttype: u8,
}

/// A raw packet socket, non-blocking, bound to an interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

fn sockaddr(ifindex: u32, protocol: u16) -> io::Result<libc::sockaddr_ll> {
    // SAFETY: sockaddr_ll is plain data; all zeros is a valid value.
    let mut address: libc::sockaddr_ll = unsafe { mem::zeroed() };
    address.sll_family = libc::AF_PACKET as libc::c_ushort;
    address.sll_protocol = protocol.to_be();
    address.sll_ifindex =
        i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(address)
}

impl PacketSocket {
    /// Opens a socket that receives `protocol` frames on `ifindex` through
    /// `filter`, race-free (odhcpd's way): the socket starts with protocol 0,
    /// so it hears nothing; a drop-all filter goes on before the bind, the
    /// queue is drained, and only then the real filter replaces it. No frame
    /// that the real filter would refuse is ever read.
    pub fn open(ifindex: u32, protocol: u16, filter: &[Instruction]) -> io::Result<PacketSocket> {
        let kind = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: socket() takes integers only.
        let raw = syscall!(unsafe { libc::socket(libc::AF_PACKET, kind, 0,) })?;
        // SAFETY: `raw` is a descriptor socket() just returned; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let socket = PacketSocket { fd, ifindex };
        socket.set_filter(&bpf::DROP_ALL)?;
        let address = sockaddr(ifindex, protocol)?;
        // SAFETY: `address` is a live sockaddr_ll and the length passed is its size.
        syscall!(unsafe {
            libc::bind(
                socket.fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        let mut scratch = [0u8; 64];
        while socket.recv(&mut scratch)?.is_some() {}
        socket.set_filter(filter)?;
        Ok(socket)
    }

    /// Sets the socket's filter; frames already queued stay queued.
    pub fn set_filter(&self, filter: &[Instruction]) -> io::Result<()> {
        let program = libc::sock_fprog {
            len: u16::try_from(filter.len())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            // The kernel copies the program and never writes through this pointer.
            filter: filter.as_ptr() as *mut Instruction,
        };
        // SAFETY: `program` points at `filter`, which outlives the call; the
        // kernel copies it during setsockopt.
        syscall!(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&program as *const libc::sock_fprog).cast(),
                mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// Reads one frame into `buffer`; `None` when no frame is waiting.
    pub fn recv(&self, buffer: &mut [u8]) -> io::Result<Option<Received>> {
        // SAFETY: sockaddr_ll is plain data; all zeros is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut from_len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        loop {
            // SAFETY: `buffer` and `from` are live and writable for the
            // lengths given; MSG_TRUNC makes the kernel report the full length
            // but still write at most `buffer.len()` bytes.
            let result = syscall!(unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut from_len,
                )
            });
            return match result {
                Ok(len) => Ok(Some(Received {
                    len: len as usize,
                    pkttype: from.sll_pkttype,
                })),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) => Err(e),
            };
        }
    }

    /// Sends one complete Ethernet frame out of the bound interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `frame` is live and readable for its length; with no
            // address the kernel uses the bound interface and protocol.
            match syscall!(unsafe {
                libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0)
            }) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads up to `buffers.len()` frames (at most [`MAX_BATCH`]) with one
    /// recvmmsg; `received[i]` describes `buffers[i]`. Returns how many were
    /// read, 0 when none was waiting. Fewer than asked means the queue was
    /// empty.
    pub fn recv_batch(
        &self,
        buffers: &mut [&mut [u8]],
        received: &mut [Received],
    ) -> io::Result<usize> {
        let count = buffers.len().min(received.len()).min(MAX_BATCH);
        if count == 0 {
            return Ok(0);
        }
        // SAFETY: sockaddr_ll, iovec and mmsghdr are plain data; all zeros
        // (null pointers, zero lengths) is a valid value for each.
        let mut from: [libc::sockaddr_ll; MAX_BATCH] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut iovecs: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut headers: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
        for i in 0..count {
            iovecs[i].iov_base = buffers[i].as_mut_ptr().cast();
            iovecs[i].iov_len = buffers[i].len();
            let header = &mut headers[i].msg_hdr;
            header.msg_name = (&mut from[i] as *mut libc::sockaddr_ll).cast();
            header.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            header.msg_iov = &mut iovecs[i];
            header.msg_iovlen = 1;
        }
        loop {
            // SAFETY: the first `count` headers point at live buffers,
            // iovecs and addresses of this frame, writable for the lengths
            // given; MSG_TRUNC makes each msg_len the frame's full length
            // while the kernel writes at most the buffer's length.
            let result = syscall!(unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    headers.as_mut_ptr(),
                    count as libc::c_uint,
                    (libc::MSG_TRUNC | libc::MSG_DONTWAIT) as _,
                    std::ptr::null_mut(),
                )
            });
            return match result {
                Ok(read) => {
                    let read = read as usize;
                    for i in 0..read {
                        received[i] = Received {
                            len: headers[i].msg_len as usize,
                            pkttype: from[i].sll_pkttype,
                        };
                    }
                    Ok(read)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                Err(e) => Err(e),
            };
        }
    }

    /// Sends complete Ethernet frames (at most [`MAX_BATCH`]) with one
    /// sendmmsg; returns how many the kernel took, in order. An error is
    /// returned only when not even the first one went.
    pub fn send_batch(&self, frames: &[&[u8]]) -> io::Result<usize> {
        let count = frames.len().min(MAX_BATCH);
        if count == 0 {
            return Ok(0);
        }
        // SAFETY: iovec and mmsghdr are plain data; all zeros is valid.
        let mut iovecs: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut headers: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
        for i in 0..count {
            // The kernel only reads through this pointer.
            iovecs[i].iov_base = frames[i].as_ptr() as *mut libc::c_void;
            iovecs[i].iov_len = frames[i].len();
            headers[i].msg_hdr.msg_iov = &mut iovecs[i];
            headers[i].msg_hdr.msg_iovlen = 1;
        }
        loop {
            // SAFETY: the first `count` headers point at live frames and
            // iovecs of this frame; with no address the kernel uses the
            // bound interface and protocol.
            match syscall!(unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    headers.as_mut_ptr(),
                    count as libc::c_uint,
                    0,
                )
            }) {
                Ok(sent) => return Ok(sent as usize),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes the interface deliver frames sent to the multicast `mac`
    /// (PACKET_ADD_MEMBERSHIP); the kernel counts joins and drops them when
    /// the socket closes.
    pub fn add_membership(&self, mac: crate::wire::EthernetAddress) -> io::Result<()> {
        let mut request = libc::packet_mreq {
            mr_ifindex: i32::try_from(self.ifindex)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            mr_type: libc::PACKET_MR_MULTICAST as libc::c_ushort,
            mr_alen: 6,
            mr_address: [0; 8],
        };
        request.mr_address[..6].copy_from_slice(mac.as_bytes());
        // SAFETY: `request` is a live packet_mreq and the length is its size.
        syscall!(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&request as *const libc::packet_mreq).cast(),
                mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
