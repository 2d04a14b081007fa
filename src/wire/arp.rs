//! ARP for IPv4 over Ethernet (RFC 826).

use std::net::Ipv4Addr;

use super::{read_u16, write_u16, Error, EthernetAddress, Result};

enum_with_unknown! {
    /// ARP hardware type.
    pub enum Hardware(u16) {
        /// Ethernet (10 Mb and every later speed).
        Ethernet = 1,
    }
}

enum_with_unknown! {
    /// ARP operation (RARP and friends are `Unknown`).
    pub enum Operation(u16) {
        /// A request.
        Request = 1,
        /// A reply.
        Reply = 2,
    }
}

mod field {
    use core::ops::Range;

    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;

    /// The variable part, laid out by the packet's own hlen and plen.
    pub fn sha(hlen: u8) -> Range<usize> {
        let start = super::FIXED_LEN;
        start..start + usize::from(hlen)
    }

    pub fn spa(hlen: u8, plen: u8) -> Range<usize> {
        let start = sha(hlen).end;
        start..start + usize::from(plen)
    }

    pub fn tha(hlen: u8, plen: u8) -> Range<usize> {
        let start = spa(hlen, plen).end;
        start..start + usize::from(hlen)
    }

    pub fn tpa(hlen: u8, plen: u8) -> Range<usize> {
        let start = tha(hlen, plen).end;
        start..start + usize::from(plen)
    }
}

/// The fixed part of an ARP header.
pub const FIXED_LEN: usize = 8;
/// The length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = FIXED_LEN + 2 * (6 + 4);
/// Where an Ethernet/IPv4 packet's hardware type (and, after it, the
/// protocol type) is, and its address lengths (for socket filters).
pub const HTYPE_OFFSET: usize = field::HTYPE;
/// Where the hardware address length is, and after it the protocol's.
pub const HLEN_OFFSET: usize = field::HLEN;
/// Where an Ethernet/IPv4 packet's sender IPv4 address is.
pub const SENDER_IPV4_OFFSET: usize = FIXED_LEN + 6;
/// Where an Ethernet/IPv4 packet's target IPv4 address is.
pub const TARGET_IPV4_OFFSET: usize = FIXED_LEN + 6 + 4 + 6;

const PROTOCOL_IPV4: u16 = 0x0800;

/// A view of an ARP packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer, checking it holds the fixed header and the addresses
    /// its `hlen` and `plen` announce: every accessor of a checked packet
    /// reads within the buffer, whatever those lengths are.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        let len = packet.buffer.as_ref().len();
        if len < FIXED_LEN {
            return Err(Error::Truncated);
        }
        if len < field::tpa(packet.hardware_len(), packet.protocol_len()).end {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// Hardware type.
    pub fn hardware_type(&self) -> Hardware {
        read_u16(self.buffer.as_ref(), field::HTYPE).into()
    }

    /// Protocol type (an EtherType).
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    pub fn operation(&self) -> Operation {
        read_u16(self.buffer.as_ref(), field::OPER).into()
    }

    /// Sender hardware address, `hlen` bytes.
    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::sha(self.hardware_len())]
    }

    /// Sender protocol address, `plen` bytes.
    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::spa(self.hardware_len(), self.protocol_len())]
    }

    /// Target hardware address, `hlen` bytes.
    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::tha(self.hardware_len(), self.protocol_len())]
    }

    /// Target protocol address, `plen` bytes.
    pub fn target_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::tpa(self.hardware_len(), self.protocol_len())]
    }
}

/// The IPv4 address in `bytes`, which the caller has checked are 4.
fn ipv4(bytes: &[u8]) -> Ipv4Addr {
    let mut octets = [0u8; 4];
    octets.copy_from_slice(bytes);
    Ipv4Addr::from(octets)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16(&mut self, offset: usize, value: u16) {
        write_u16(self.buffer.as_mut(), offset, value);
    }

    /// Writes the fixed header for Ethernet/IPv4 with `operation`.
    pub fn set_header(&mut self, operation: Operation) {
        self.set_u16(field::HTYPE, 1);
        self.set_u16(field::PTYPE, PROTOCOL_IPV4);
        self.buffer.as_mut()[field::HLEN] = 6;
        self.buffer.as_mut()[field::PLEN] = 4;
        self.set_u16(field::OPER, operation.into());
    }

    /// Sets the sender hardware address (after `set_header`).
    pub fn set_source_hardware_addr(&mut self, address: EthernetAddress) {
        let range = field::sha(self.hardware_len());
        self.buffer.as_mut()[range].copy_from_slice(address.as_bytes());
    }

    /// Sets the sender protocol address (after `set_header`).
    pub fn set_source_protocol_addr(&mut self, address: Ipv4Addr) {
        let range = field::spa(self.hardware_len(), self.protocol_len());
        self.buffer.as_mut()[range].copy_from_slice(&address.octets());
    }

    /// Sets the target hardware address (after `set_header`).
    pub fn set_target_hardware_addr(&mut self, address: EthernetAddress) {
        let range = field::tha(self.hardware_len(), self.protocol_len());
        self.buffer.as_mut()[range].copy_from_slice(address.as_bytes());
    }

    /// Sets the target protocol address (after `set_header`).
    pub fn set_target_protocol_addr(&mut self, address: Ipv4Addr) {
        let range = field::tpa(self.hardware_len(), self.protocol_len());
        self.buffer.as_mut()[range].copy_from_slice(&address.octets());
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Request or reply.
    pub operation: Operation,
    /// Sender MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address (0.0.0.0 in an RFC 5227 probe).
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (ignored in requests).
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Reads an Ethernet/IPv4 ARP packet; any other hardware or protocol
    /// type or address length is `Malformed`, as no Ethernet host sends it.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        if packet.hardware_type() != Hardware::Ethernet
            || packet.protocol_type() != PROTOCOL_IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Malformed);
        }
        let operation = packet.operation();
        if let Operation::Unknown(_) = operation {
            return Err(Error::Unsupported);
        }
        // hlen 6 and plen 4: the addresses are a MAC and an IPv4 address.
        Ok(Repr {
            operation,
            source_hardware_addr: EthernetAddress::from_bytes(packet.source_hardware_addr()),
            source_protocol_addr: ipv4(packet.source_protocol_addr()),
            target_hardware_addr: EthernetAddress::from_bytes(packet.target_hardware_addr()),
            target_protocol_addr: ipv4(packet.target_protocol_addr()),
        })
    }

    /// Bytes the packet takes.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet; `packet` must hold `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_header(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }

    /// True for a gratuitous ARP (RFC 5227 §3 "ARP Announcement"): the
    /// sender announces its own address, as request or reply.
    pub fn is_gratuitous(&self) -> bool {
        self.source_protocol_addr == self.target_protocol_addr
            && !self.source_protocol_addr.is_unspecified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ARP payloads captured with `tcpdump -xx` on the lab client's eth0:
    // the kernel of 192.0.2.100 asks for 192.0.2.11, and node 1 replies.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x4c, 0x32, 0x00, 0x00, 0x64, 0xc0,
        0x00, 0x02, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x0b,
    ];
    const REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x4c, 0x32, 0x00, 0x00, 0x01, 0xc0,
        0x00, 0x02, 0x0b, 0x02, 0x4c, 0x32, 0x00, 0x00, 0x64, 0xc0, 0x00, 0x02, 0x64,
    ];
    const CLIENT: EthernetAddress = EthernetAddress([0x02, 0x4c, 0x32, 0x00, 0x00, 0x64]);
    const NODE: EthernetAddress = EthernetAddress([0x02, 0x4c, 0x32, 0x00, 0x00, 0x01]);

    fn reply_repr() -> Repr {
        Repr {
            operation: Operation::Reply,
            source_hardware_addr: NODE,
            source_protocol_addr: Ipv4Addr::new(192, 0, 2, 11),
            target_hardware_addr: CLIENT,
            target_protocol_addr: Ipv4Addr::new(192, 0, 2, 100),
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(packet.hardware_type(), Hardware::Ethernet);
        assert_eq!(packet.protocol_type(), 0x0800);
        assert_eq!(packet.operation(), Operation::Request);
        assert_eq!(packet.source_hardware_addr(), CLIENT.as_bytes());
        assert_eq!(packet.source_protocol_addr(), [192, 0, 2, 100]);
        assert_eq!(packet.target_hardware_addr(), [0; 6]);
        assert_eq!(packet.target_protocol_addr(), [192, 0, 2, 11]);
    }

    #[test]
    fn every_accessor_of_a_checked_packet_stays_in_its_buffer() {
        // hlen 0, plen 0: the fixed part alone is a whole packet.
        let empty = [0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x01];
        let packet = Packet::new_checked(&empty[..]).unwrap();
        assert!(packet.source_hardware_addr().is_empty());
        assert!(packet.source_protocol_addr().is_empty());
        assert!(packet.target_hardware_addr().is_empty());
        assert!(packet.target_protocol_addr().is_empty());
        assert_eq!(Repr::parse(&packet), Err(Error::Malformed));
        // hlen 8, plen 2 (28 bytes as for Ethernet/IPv4, laid out otherwise).
        let mut odd = REQUEST;
        odd[4] = 8;
        odd[5] = 2;
        let packet = Packet::new_checked(&odd[..]).unwrap();
        assert_eq!(packet.source_hardware_addr(), &REQUEST[8..16]);
        assert_eq!(packet.source_protocol_addr(), &REQUEST[16..18]);
        assert_eq!(packet.target_hardware_addr(), &REQUEST[18..26]);
        assert_eq!(packet.target_protocol_addr(), &REQUEST[26..28]);
        // Lengths that need more than the buffer holds: truncated.
        odd[4] = 255;
        assert_eq!(Packet::new_checked(&odd[..]).err(), Some(Error::Truncated));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 28];
        reply_repr().emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, REPLY);
    }

    #[test]
    fn parse_and_round_trip() {
        let repr = Repr::parse(&Packet::new_checked(&REPLY[..]).unwrap()).unwrap();
        assert_eq!(repr, reply_repr());
        assert!(!repr.is_gratuitous());
        let mut bytes = [0u8; 28];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, REPLY);
    }

    #[test]
    fn rejects_bad_layouts() {
        assert_eq!(
            Packet::new_checked(&REQUEST[..7]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).err(),
            Some(Error::Truncated)
        );

        let mut hlen8 = [0u8; 32];
        hlen8[..28].copy_from_slice(&REQUEST);
        hlen8[4] = 8;
        let packet = Packet::new_checked(&hlen8[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Malformed));

        let mut plen16 = [0u8; 52];
        plen16[..28].copy_from_slice(&REQUEST);
        plen16[5] = 16;
        let packet = Packet::new_checked(&plen16[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Malformed));
        // plen 16 announced but only the IPv4-sized body present.
        assert_eq!(
            Packet::new_checked(&plen16[..28]).err(),
            Some(Error::Truncated)
        );

        let mut rarp = REQUEST;
        rarp[7] = 3;
        let packet = Packet::new_checked(&rarp[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Unsupported));
    }

    #[test]
    fn gratuitous_and_probe() {
        let mut repr = reply_repr();
        repr.target_protocol_addr = repr.source_protocol_addr;
        assert!(repr.is_gratuitous());
        repr.source_protocol_addr = Ipv4Addr::UNSPECIFIED;
        repr.target_protocol_addr = Ipv4Addr::UNSPECIFIED;
        assert!(!repr.is_gratuitous());
    }
}
