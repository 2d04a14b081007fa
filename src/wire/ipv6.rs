//! The fixed IPv6 header (RFC 8200 §3).

use std::net::Ipv6Addr;

use super::{checksum, read_u16, write_u16, Error, Result};

/// Next Header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;

mod field {
    use core::ops::Range;

    pub const VERSION_CLASS_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SOURCE: Range<usize> = 8..24;
    pub const DESTINATION: Range<usize> = 24..40;
}

/// The length of the fixed header.
pub const HEADER_LEN: usize = field::DESTINATION.end;
/// Where the Next Header field is (for socket filters).
pub const NEXT_HEADER_OFFSET: usize = field::NEXT_HEADER;
/// Where the source address ends (for socket filters).
pub const SOURCE_END: usize = field::SOURCE.end;

/// A view of an IPv6 packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer, checking the version and that the announced payload
    /// fits (trailing Ethernet padding is allowed and ignored).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        let len = packet.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 6 {
            return Err(Error::Malformed);
        }
        if len < HEADER_LEN + usize::from(packet.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// The version field (6).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Payload length.
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// Next header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn source(&self) -> Ipv6Addr {
        address(&self.buffer.as_ref()[field::SOURCE])
    }

    /// Destination address.
    pub fn destination(&self) -> Ipv6Addr {
        address(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// The payload, as long as the header announces.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

fn address(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(bytes);
    Ipv6Addr::from(octets)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// The payload, for writing.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The fixed IPv6 header, traffic class and flow label zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub source: Ipv6Addr,
    /// Destination address.
    pub destination: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Payload length.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Repr {
    /// Reads the header.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        Ok(Repr {
            source: packet.source(),
            destination: packet.destination(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
        })
    }

    /// Bytes the header takes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let buffer = packet.buffer.as_mut();
        buffer[field::VERSION_CLASS_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
        write_u16(buffer, field::PAYLOAD_LEN, self.payload_len);
        buffer[field::NEXT_HEADER] = self.next_header;
        buffer[field::HOP_LIMIT] = self.hop_limit;
        buffer[field::SOURCE].copy_from_slice(&self.source.octets());
        buffer[field::DESTINATION].copy_from_slice(&self.destination.octets());
    }
}

/// The running sum of the upper-layer pseudo-header (RFC 8200 §8.1).
pub fn pseudo_header_sum(
    source: &Ipv6Addr,
    destination: &Ipv6Addr,
    next_header: u8,
    length: u32,
) -> u32 {
    let mut sum = checksum::accumulate(0, &source.octets());
    sum = checksum::accumulate(sum, &destination.octets());
    sum = checksum::accumulate(sum, &length.to_be_bytes());
    checksum::accumulate(sum, &[0, 0, 0, next_header])
}

/// The solicited-node multicast group of `address` (RFC 4291 §2.7.1).
pub fn solicited_node(address: &Ipv6Addr) -> Ipv6Addr {
    let o = address.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// ff02::1, all nodes on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

#[cfg(test)]
mod tests {
    use super::*;

    // The IPv6 header of the Neighbor Advertisement node 1 sent to the lab
    // client (2001:db8::11 -> fe80::4c:32ff:fe00:64), from `tcpdump -xx`.
    const HEADER: [u8; 40] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x4c, 0x32, 0xff, 0xfe, 0x00, 0x00, 0x64,
    ];

    fn repr() -> Repr {
        Repr {
            source: "2001:db8::11".parse().unwrap(),
            destination: "fe80::4c:32ff:fe00:64".parse().unwrap(),
            next_header: NEXT_HEADER_ICMPV6,
            payload_len: 32,
            hop_limit: 255,
        }
    }

    #[test]
    fn deconstruct_and_round_trip() {
        let mut bytes = [0u8; 72];
        bytes[..40].copy_from_slice(&HEADER);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), repr());
        assert_eq!(packet.payload().len(), 32);

        let mut out = [0xa5u8; 40];
        repr().emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, HEADER);
    }

    #[test]
    fn rejects() {
        assert_eq!(
            Packet::new_checked(&HEADER[..39]).err(),
            Some(Error::Truncated)
        );
        // Payload length 32 announced, none present.
        assert_eq!(
            Packet::new_checked(&HEADER[..]).err(),
            Some(Error::Truncated)
        );
        let mut v4 = [0u8; 72];
        v4[..40].copy_from_slice(&HEADER);
        v4[0] = 0x45;
        assert_eq!(Packet::new_checked(&v4[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn solicited_node_group() {
        let vip: Ipv6Addr = "2001:db8::1:200".parse().unwrap();
        assert_eq!(
            solicited_node(&vip),
            "ff02::1:ff01:200".parse::<Ipv6Addr>().unwrap()
        );
    }
}
