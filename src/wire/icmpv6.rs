//! ICMPv6 Neighbor Solicitation and Advertisement (RFC 4861 §4.3, §4.4)
//! with their link-layer address options (§4.6.1).

use std::net::Ipv6Addr;

use super::ipv6::{pseudo_header_sum, NEXT_HEADER_ICMPV6};
use super::{checksum, read_u16, write_u16, Error, EthernetAddress, Result};

enum_with_unknown! {
    /// ICMPv6 message type.
    pub enum Message(u8) {
        /// Neighbor Solicitation.
        NeighborSolicit = 135,
        /// Neighbor Advertisement.
        NeighborAdvert = 136,
    }
}

/// Neighbor Advertisement flags (RFC 4861 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdvertFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a solicitation.
    pub solicited: bool,
    /// O: override an existing cache entry.
    pub override_: bool,
}

impl AdvertFlags {
    fn from_byte(byte: u8) -> AdvertFlags {
        AdvertFlags {
            router: byte & 0x80 != 0,
            solicited: byte & 0x40 != 0,
            override_: byte & 0x20 != 0,
        }
    }

    fn to_byte(self) -> u8 {
        (u8::from(self.router) << 7)
            | (u8::from(self.solicited) << 6)
            | (u8::from(self.override_) << 5)
    }
}

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// Reserved in NS; R, S, O flags then reserved in NA.
    pub const FLAGS: usize = 4;
    pub const TARGET: Range<usize> = 8..24;
    pub const OPTIONS: usize = 24;
}

/// The length of an NS or NA without options (RFC 4861 §7.1.1: "24 or more").
pub const MESSAGE_LEN: usize = field::OPTIONS;
/// Where the message type is (for socket filters).
pub const TYPE_OFFSET: usize = field::TYPE;
/// Where an NS's or NA's target address starts.
pub const TARGET_OFFSET: usize = field::TARGET.start;
/// Source Link-Layer Address option type.
const OPTION_SOURCE_LLADDR: u8 = 1;
/// Target Link-Layer Address option type.
const OPTION_TARGET_LLADDR: u8 = 2;
/// A link-layer address option for Ethernet: type, length 1, six bytes.
pub const LLADDR_OPTION_LEN: usize = 8;

/// A view of an ICMPv6 NS or NA message.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer, checking it holds at least the fixed NS/NA part.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        if buffer.as_ref().len() < MESSAGE_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet::new_unchecked(buffer))
    }

    /// Message type.
    pub fn message(&self) -> Message {
        self.buffer.as_ref()[field::TYPE].into()
    }

    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// NA flags (meaningless in an NS).
    pub fn advert_flags(&self) -> AdvertFlags {
        AdvertFlags::from_byte(self.buffer.as_ref()[field::FLAGS])
    }

    /// Target address.
    pub fn target(&self) -> Ipv6Addr {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&self.buffer.as_ref()[field::TARGET]);
        Ipv6Addr::from(octets)
    }

    /// The options area.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..]
    }

    /// True when the checksum over the pseudo-header and message is right.
    pub fn verify_checksum(&self, source: &Ipv6Addr, destination: &Ipv6Addr) -> bool {
        let data = self.buffer.as_ref();
        let Ok(length) = u32::try_from(data.len()) else {
            return false;
        };
        let sum = pseudo_header_sum(source, destination, NEXT_HEADER_ICMPV6, length);
        checksum::finish(checksum::accumulate(sum, data)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes and stores the checksum.
    pub fn fill_checksum(&mut self, source: &Ipv6Addr, destination: &Ipv6Addr) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let data = self.buffer.as_ref();
        // An NS/NA is at most a few dozen bytes: the length always fits.
        let length = data.len() as u32;
        let sum = pseudo_header_sum(source, destination, NEXT_HEADER_ICMPV6, length);
        let value = checksum::finish(checksum::accumulate(sum, data));
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }
}

/// The link-layer address options found in an NS or NA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Options {
    source_lladdr: Option<EthernetAddress>,
    target_lladdr: Option<EthernetAddress>,
}

/// Walks the options: every option needs a non-zero length (RFC 4861
/// §4.6, §7.1.1) and must fit; unknown ones are skipped (§4.6).
fn parse_options(mut data: &[u8]) -> Result<Options> {
    let mut options = Options::default();
    while !data.is_empty() {
        if data.len() < 2 {
            return Err(Error::Truncated);
        }
        let len = usize::from(data[1]) * 8;
        if len == 0 {
            return Err(Error::Malformed);
        }
        if data.len() < len {
            return Err(Error::Truncated);
        }
        match data[0] {
            OPTION_SOURCE_LLADDR | OPTION_TARGET_LLADDR if len != LLADDR_OPTION_LEN => {
                // An Ethernet address option is exactly 8 bytes (RFC 2464 §8).
                return Err(Error::Malformed);
            }
            OPTION_SOURCE_LLADDR => {
                options.source_lladdr = Some(EthernetAddress::from_bytes(&data[2..8]))
            }
            OPTION_TARGET_LLADDR => {
                options.target_lladdr = Some(EthernetAddress::from_bytes(&data[2..8]))
            }
            _ => {}
        }
        data = &data[len..];
    }
    Ok(options)
}

/// A Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    /// NS: who has `target`?
    NeighborSolicit {
        /// The address being resolved.
        target: Ipv6Addr,
        /// The solicitor's MAC, if it sent one.
        source_lladdr: Option<EthernetAddress>,
    },
    /// NA: `target` is at `target_lladdr`.
    NeighborAdvert {
        /// R, S, O.
        flags: AdvertFlags,
        /// The address being advertised.
        target: Ipv6Addr,
        /// Its MAC.
        target_lladdr: Option<EthernetAddress>,
    },
}

impl Repr {
    /// Reads an NS or NA carried from `source` to `destination`, checking
    /// what RFC 4861 §7.1.1 / §7.1.2 ask of the ICMPv6 message itself:
    /// checksum, code 0, length, a unicast target, sound options. The
    /// IP-level checks (hop limit, addresses) belong to the caller.
    pub fn parse<T: AsRef<[u8]>>(
        source: &Ipv6Addr,
        destination: &Ipv6Addr,
        packet: &Packet<T>,
    ) -> Result<Repr> {
        let message = packet.message();
        if let Message::Unknown(_) = message {
            return Err(Error::Unsupported);
        }
        if !packet.verify_checksum(source, destination) {
            return Err(Error::Checksum);
        }
        if packet.code() != 0 {
            return Err(Error::Malformed);
        }
        let target = packet.target();
        if target.is_multicast() {
            return Err(Error::Malformed);
        }
        let options = parse_options(packet.options())?;
        Ok(match message {
            Message::NeighborSolicit => Repr::NeighborSolicit {
                target,
                source_lladdr: options.source_lladdr,
            },
            _ => Repr::NeighborAdvert {
                flags: packet.advert_flags(),
                target,
                target_lladdr: options.target_lladdr,
            },
        })
    }

    /// Bytes the message takes.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Repr::NeighborSolicit {
                source_lladdr: Some(_),
                ..
            }
            | Repr::NeighborAdvert {
                target_lladdr: Some(_),
                ..
            } => MESSAGE_LEN + LLADDR_OPTION_LEN,
            _ => MESSAGE_LEN,
        }
    }

    /// Writes the message and its checksum; `packet` must hold exactly
    /// `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        source: &Ipv6Addr,
        destination: &Ipv6Addr,
        packet: &mut Packet<T>,
    ) {
        let (message, flags, target, option) = match *self {
            Repr::NeighborSolicit {
                target,
                source_lladdr,
            } => (
                Message::NeighborSolicit,
                0,
                target,
                source_lladdr.map(|mac| (OPTION_SOURCE_LLADDR, mac)),
            ),
            Repr::NeighborAdvert {
                flags,
                target,
                target_lladdr,
            } => (
                Message::NeighborAdvert,
                flags.to_byte(),
                target,
                target_lladdr.map(|mac| (OPTION_TARGET_LLADDR, mac)),
            ),
        };
        let buffer = packet.buffer.as_mut();
        buffer[field::TYPE] = message.into();
        buffer[field::CODE] = 0;
        buffer[field::FLAGS..field::TARGET.start].copy_from_slice(&[flags, 0, 0, 0]);
        buffer[field::TARGET].copy_from_slice(&target.octets());
        if let Some((kind, mac)) = option {
            let at = field::OPTIONS;
            buffer[at] = kind;
            buffer[at + 1] = 1;
            buffer[at + 2..at + LLADDR_OPTION_LEN].copy_from_slice(mac.as_bytes());
        }
        packet.fill_checksum(source, destination);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::captures::{DAD_NS, NA, NS};

    const ICMP: usize = 14 + 40;
    const CLIENT: EthernetAddress = EthernetAddress([0x02, 0x4c, 0x32, 0x00, 0x00, 0x64]);
    const NODE: EthernetAddress = EthernetAddress([0x02, 0x4c, 0x32, 0x00, 0x00, 0x01]);

    fn addr(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn deconstruct_solicit() {
        let packet = Packet::new_checked(&NS[ICMP..]).unwrap();
        assert_eq!(packet.message(), Message::NeighborSolicit);
        assert_eq!(packet.code(), 0);
        assert_eq!(packet.checksum(), 0xe6e2);
        assert_eq!(packet.target(), addr("2001:db8::11"));
        let repr = Repr::parse(
            &addr("fe80::4c:32ff:fe00:64"),
            &addr("ff02::1:ff00:11"),
            &packet,
        )
        .unwrap();
        assert_eq!(
            repr,
            Repr::NeighborSolicit {
                target: addr("2001:db8::11"),
                source_lladdr: Some(CLIENT)
            }
        );
    }

    #[test]
    fn construct_advert() {
        let repr = Repr::NeighborAdvert {
            flags: AdvertFlags {
                router: false,
                solicited: true,
                override_: true,
            },
            target: addr("2001:db8::11"),
            target_lladdr: Some(NODE),
        };
        assert_eq!(repr.buffer_len(), 32);
        let mut bytes = [0xa5u8; 32];
        let (source, destination) = (addr("2001:db8::11"), addr("fe80::4c:32ff:fe00:64"));
        repr.emit(
            &source,
            &destination,
            &mut Packet::new_unchecked(&mut bytes[..]),
        );
        assert_eq!(bytes[..], NA[ICMP..]);
        let parsed = Repr::parse(
            &source,
            &destination,
            &Packet::new_checked(&bytes[..]).unwrap(),
        )
        .unwrap();
        assert_eq!(parsed, repr);
    }

    #[test]
    fn dad_solicit_skips_unknown_options() {
        let packet = Packet::new_checked(&DAD_NS[ICMP..]).unwrap();
        let repr =
            Repr::parse(&Ipv6Addr::UNSPECIFIED, &addr("ff02::1:ff86:7ba9"), &packet).unwrap();
        assert_eq!(
            repr,
            Repr::NeighborSolicit {
                target: addr("fe80::b07b:53ff:fe86:7ba9"),
                source_lladdr: None
            }
        );
    }

    #[test]
    fn rejects() {
        let (source, destination) = (addr("fe80::4c:32ff:fe00:64"), addr("ff02::1:ff00:11"));
        let parse = |bytes: &[u8]| Repr::parse(&source, &destination, &Packet::new_checked(bytes)?);

        assert_eq!(parse(&NS[ICMP..ICMP + 23]), Err(Error::Truncated));
        // Wrong pseudo-header (another destination) and flipped payload bit.
        let packet = Packet::new_checked(&NS[ICMP..]).unwrap();
        assert_eq!(
            Repr::parse(&source, &addr("ff02::1"), &packet),
            Err(Error::Checksum)
        );
        let mut bad = NS;
        bad[ICMP + 20] ^= 1;
        assert_eq!(parse(&bad[ICMP..]), Err(Error::Checksum));

        // Each of these is re-checksummed so only the named fault remains.
        let refill = |mut bytes: [u8; 32]| {
            Packet::new_unchecked(&mut bytes[..]).fill_checksum(&source, &destination);
            bytes
        };
        let mut body = [0u8; 32];
        body.copy_from_slice(&NS[ICMP..]);

        let mut code = body;
        code[1] = 1;
        assert_eq!(parse(&refill(code)), Err(Error::Malformed));

        let mut zero_option = body;
        zero_option[25] = 0;
        assert_eq!(parse(&refill(zero_option)), Err(Error::Malformed));

        let mut long_option = body;
        long_option[25] = 2;
        assert_eq!(parse(&refill(long_option)), Err(Error::Truncated));

        let mut multicast_target = body;
        multicast_target[8] = 0xff;
        assert_eq!(parse(&refill(multicast_target)), Err(Error::Malformed));

        let mut echo = body;
        echo[0] = 128;
        assert_eq!(parse(&refill(echo)), Err(Error::Unsupported));
    }
}
