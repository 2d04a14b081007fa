//! Ethernet II frames (IEEE 802.3 with an EtherType), aware of one
//! IEEE 802.1Q tag.

use core::fmt;

use super::{read_u16, write_u16, Error, Result};

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// Reads an address from the first six bytes of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> EthernetAddress {
        let mut address = [0u8; 6];
        address.copy_from_slice(&bytes[..6]);
        EthernetAddress(address)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True for a unicast address (group bit clear) other than all zeros.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0 && self.0 != [0; 6]
    }

    /// True for the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The IPv6 multicast MAC for an IPv6 multicast group (RFC 2464 §7).
    pub fn ipv6_multicast(group: &[u8; 16]) -> EthernetAddress {
        EthernetAddress([0x33, 0x33, group[12], group[13], group[14], group[15]])
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

enum_with_unknown! {
    /// The EtherType of a frame's payload.
    pub enum EtherType(u16) {
        /// IPv4.
        Ipv4 = 0x0800,
        /// ARP.
        Arp = 0x0806,
        /// IPv6.
        Ipv6 = 0x86dd,
        /// An IEEE 802.1Q tag.
        Vlan = 0x8100,
    }
}

mod field {
    use core::ops::Range;

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
    /// With an 802.1Q tag: TCI after the 0x8100, then the inner EtherType.
    pub const VLAN_TCI: usize = 14;
    pub const VLAN_ETHERTYPE: usize = 16;
    pub const VLAN_PAYLOAD: usize = 18;
}

/// The length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Where an untagged frame's EtherType is (for socket filters).
pub const ETHERTYPE_OFFSET: usize = field::ETHERTYPE;

/// A view of an Ethernet II frame (without the FCS, as packet sockets give it).
#[derive(Debug, Clone, Copy)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer, checking that the header (and a tag, if any) fits.
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let frame = Frame::new_unchecked(buffer);
        let len = frame.buffer.as_ref().len();
        if len < field::PAYLOAD {
            return Err(Error::Truncated);
        }
        if frame.outer_ethertype() == EtherType::Vlan && len < field::VLAN_PAYLOAD {
            return Err(Error::Truncated);
        }
        Ok(frame)
    }

    /// The destination address.
    pub fn destination(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// The source address.
    pub fn source(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    fn outer_ethertype(&self) -> EtherType {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE).into()
    }

    /// The 802.1Q VLAN id, if the frame carries a tag (0 = priority tag only).
    pub fn vlan_id(&self) -> Option<u16> {
        match self.outer_ethertype() {
            EtherType::Vlan => Some(read_u16(self.buffer.as_ref(), field::VLAN_TCI) & 0x0fff),
            _ => None,
        }
    }

    /// The EtherType of the payload, looking past one 802.1Q tag.
    pub fn ethertype(&self) -> EtherType {
        match self.outer_ethertype() {
            EtherType::Vlan => read_u16(self.buffer.as_ref(), field::VLAN_ETHERTYPE).into(),
            other => other,
        }
    }

    /// The offset of the payload, after the tag if there is one.
    pub fn header_len(&self) -> usize {
        match self.outer_ethertype() {
            EtherType::Vlan => field::VLAN_PAYLOAD,
            _ => field::PAYLOAD,
        }
    }

    /// The payload, after the tag if there is one.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    pub fn set_destination(&mut self, address: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(address.as_bytes());
    }

    /// Sets the source address.
    pub fn set_source(&mut self, address: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(address.as_bytes());
    }

    /// Sets the EtherType of an untagged frame.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.into());
    }

    /// The payload of an untagged frame, for writing.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// The header of an untagged Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source MAC.
    pub source: EthernetAddress,
    /// Destination MAC.
    pub destination: EthernetAddress,
    /// Payload type.
    pub ethertype: EtherType,
}

impl Repr {
    /// Reads the header; a tagged frame is described by its inner EtherType.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        Ok(Repr {
            source: frame.source(),
            destination: frame.destination(),
            ethertype: frame.ethertype(),
        })
    }

    /// Bytes the header takes (always emitted untagged).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the untagged header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_destination(self.destination);
        frame.set_source(self.source);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The kernel's ARP request from the lab client (192.0.2.100 asks for
    // 192.0.2.11), captured with `tcpdump -xx` on the client's eth0.
    const ARP_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x4c, 0x32, 0x00, 0x00, 0x64, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x4c, 0x32, 0x00, 0x00, 0x64, 0xc0, 0x00,
        0x02, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x0b,
    ];

    #[test]
    fn deconstruct() {
        let frame = Frame::new_checked(&ARP_REQUEST[..]).unwrap();
        assert_eq!(frame.destination(), EthernetAddress::BROADCAST);
        assert_eq!(frame.source(), EthernetAddress([2, 0x4c, 0x32, 0, 0, 0x64]));
        assert_eq!(frame.ethertype(), EtherType::Arp);
        assert_eq!(frame.vlan_id(), None);
        assert_eq!(frame.payload().len(), 28);
    }

    #[test]
    fn construct() {
        let repr = Repr::parse(&Frame::new_checked(&ARP_REQUEST[..]).unwrap()).unwrap();
        let mut bytes = [0xa5u8; 14];
        repr.emit(&mut Frame::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..], ARP_REQUEST[..14]);
    }

    #[test]
    fn vlan_tag() {
        // The same request with an 802.1Q tag (VLAN 10, PCP 0) inserted.
        let mut tagged = [0u8; 46];
        tagged[..12].copy_from_slice(&ARP_REQUEST[..12]);
        tagged[12..16].copy_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        tagged[16..].copy_from_slice(&ARP_REQUEST[12..]);
        let frame = Frame::new_checked(&tagged[..]).unwrap();
        assert_eq!(frame.vlan_id(), Some(10));
        assert_eq!(frame.ethertype(), EtherType::Arp);
        assert_eq!(frame.payload(), &ARP_REQUEST[14..]);
        assert_eq!(
            Frame::new_checked(&tagged[..16]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Frame::new_checked(&[0u8; 1][..]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Frame::new_checked(&ARP_REQUEST[..13]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn address_kinds() {
        assert!(EthernetAddress([2, 0, 0, 0, 0, 1]).is_unicast());
        assert!(!EthernetAddress([0x33, 0x33, 0, 0, 0, 1]).is_unicast());
        assert!(!EthernetAddress([0; 6]).is_unicast());
        let group = "ff02::1:ff00:200"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        assert_eq!(
            EthernetAddress::ipv6_multicast(&group).to_string(),
            "33:33:ff:00:02:00"
        );
    }
}
