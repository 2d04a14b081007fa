//! rtnetlink messages (RFC 3549, `linux/rtnetlink.h`): the requests l2vip
//! sends to install and remove local routes and to dump links and routes,
//! and a checked reader for what the kernel sends back.
//!
//! Netlink is host byte order. Every length the kernel gives is checked
//! against the buffer; a message that does not fit ends the walk with
//! `Error::Truncated` instead of reading past it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Error, EthernetAddress};

/// `NLMSG_ERROR`: an acknowledgement (error 0) or a failure.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// `RTM_NEWLINK`.
pub const RTM_NEWLINK: u16 = 16;
/// `RTM_DELLINK`.
pub const RTM_DELLINK: u16 = 17;
/// `RTM_GETLINK`.
pub const RTM_GETLINK: u16 = 18;
/// `RTM_NEWADDR`.
pub const RTM_NEWADDR: u16 = 20;
/// `RTM_DELADDR`.
pub const RTM_DELADDR: u16 = 21;
/// `RTM_NEWROUTE`.
pub const RTM_NEWROUTE: u16 = 24;
/// `RTM_DELROUTE`.
pub const RTM_DELROUTE: u16 = 25;
/// `RTM_GETROUTE`.
pub const RTM_GETROUTE: u16 = 26;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

/// Multicast group of link changes (`RTMGRP_LINK`).
pub const GROUP_LINK: u32 = 0x1;
/// Multicast group of IPv4 address changes (`RTMGRP_IPV4_IFADDR`).
pub const GROUP_IPV4_ADDRESS: u32 = 0x10;
/// Multicast group of IPv6 address changes (`RTMGRP_IPV6_IFADDR`).
pub const GROUP_IPV6_ADDRESS: u32 = 0x100;

/// `AF_INET`.
pub const AF_INET: u8 = 2;
/// `AF_INET6`.
pub const AF_INET6: u8 = 10;
/// `AF_UNSPEC`.
pub const AF_UNSPEC: u8 = 0;

/// The `local` routing table.
pub const TABLE_LOCAL: u8 = 255;
/// Route type `local`: delivered to this host.
pub const RTN_LOCAL: u8 = 2;
/// Route type `unicast`.
pub const RTN_UNICAST: u8 = 1;
/// Route scope `link`.
pub const SCOPE_LINK: u8 = 253;
/// Route scope `host`.
pub const SCOPE_HOST: u8 = 254;
/// The route protocol that marks l2vip's routes (`ip route show proto 76`);
/// no other routing daemon in iproute2's `rt_protos` uses it.
pub const PROTOCOL: u8 = 76;

/// `IFF_UP`: administratively up.
pub const IFF_UP: u32 = 0x1;
/// `IFF_LOWER_UP`: the driver signals carrier.
pub const IFF_LOWER_UP: u32 = 0x1_0000;

const HEADER_LEN: usize = 16;
const IFINFO_LEN: usize = 16;
const IFADDR_LEN: usize = 8;
const RTMSG_LEN: usize = 12;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_IFALIAS: u16 = 20;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_MACVLAN_MODE: u16 = 1;
const MACVLAN_MODE_PRIVATE: u32 = 1;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
/// In `IFLA_AF_SPEC`'s `AF_INET`: the IPv4 settings (`net.ipv4.conf.X`).
const IFLA_INET_CONF: u16 = 1;
const IPV4_DEVCONF_RP_FILTER: u16 = 8;
const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
const NLA_F_NESTED: u16 = 0x8000;
/// `IFF_NOARP`: the kernel does no ARP or neighbour discovery on the link.
pub const IFF_NOARP: u32 = 0x80;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Builds one request into `out` (cleared first): header, fixed part,
/// attributes. The length is filled in at the end.
struct Builder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Builder<'a> {
    fn new(out: &'a mut Vec<u8>, kind: u16, flags: u16, seq: u32) -> Builder<'a> {
        out.clear();
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        Builder { out }
    }

    fn bytes(self, bytes: &[u8]) -> Self {
        self.out.extend_from_slice(bytes);
        self
    }

    fn attribute(self, kind: u16, value: &[u8]) -> Self {
        let len = 4 + value.len();
        self.out.extend_from_slice(&(len as u16).to_ne_bytes());
        self.out.extend_from_slice(&kind.to_ne_bytes());
        self.out.extend_from_slice(value);
        self.out.resize(align(self.out.len()), 0);
        self
    }

    fn finish(self) {
        let len = self.out.len() as u32;
        self.out[..4].copy_from_slice(&len.to_ne_bytes());
    }
}

/// One attribute, padded, as bytes (for nesting).
fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(align(4 + value.len()));
    out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(align(out.len()), 0);
    out
}

/// `struct ifinfomsg` for a link by name: no index, these flags.
fn ifinfo(flags: u32, change: u32) -> [u8; IFINFO_LEN] {
    let mut fixed = [0u8; IFINFO_LEN];
    fixed[8..12].copy_from_slice(&flags.to_ne_bytes());
    fixed[12..16].copy_from_slice(&change.to_ne_bytes());
    fixed
}

fn name_bytes(name: &str) -> Vec<u8> {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// `RTM_NEWLINK` creating macvlan `name` on `parent` (an index) with
/// `mac`, in private mode, down, with `IFF_NOARP`: the kernel accepts
/// frames to `mac` there and never answers or asks ARP/NDP on it.
/// Fails (`EEXIST`) if `name` exists.
pub fn macvlan_request(out: &mut Vec<u8>, name: &str, parent: u32, mac: EthernetAddress, seq: u32) {
    let data = tlv(IFLA_MACVLAN_MODE, &MACVLAN_MODE_PRIVATE.to_ne_bytes());
    let mut info = tlv(IFLA_INFO_KIND, b"macvlan");
    info.extend(tlv(IFLA_INFO_DATA | NLA_F_NESTED, &data));
    Builder::new(out, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq)
        .bytes(&ifinfo(IFF_NOARP, IFF_NOARP))
        .attribute(IFLA_IFNAME, &name_bytes(name))
        .attribute(IFLA_LINK, &parent.to_ne_bytes())
        .attribute(IFLA_ADDRESS, mac.as_bytes())
        .attribute(IFLA_LINKINFO | NLA_F_NESTED, &info)
        .finish();
}

/// The alias l2vip gives the links it makes (`ip link` shows it), so that
/// only those are ever removed as its own.
pub const MARK: &str = "l2vip";

/// `RTM_NEWLINK` changing link `name`: `IFF_UP` set (`up`) or not, and,
/// when `make_ours`, IPv6 address generation off (no link-local address,
/// so no DAD and no MLD from the link), no reverse-path filter of its own
/// (the VIP's traffic arrives on the link, which has no address, while
/// the route back leads out of its parent: the kernel drops it under any
/// filter, strict or loose, such as one inherited from `default`) and the
/// alias `MARK` (the kernel takes none of these when it creates a link).
pub fn link_change_request(out: &mut Vec<u8>, name: &str, up: bool, make_ours: bool, seq: u32) {
    let builder = Builder::new(out, RTM_NEWLINK, NLM_F_ACK, seq)
        .bytes(&ifinfo(if up { IFF_UP } else { 0 }, IFF_UP))
        .attribute(IFLA_IFNAME, &name_bytes(name));
    let builder = if make_ours {
        let inet6 = tlv(IFLA_INET6_ADDR_GEN_MODE, &[IN6_ADDR_GEN_MODE_NONE]);
        let mut spec = tlv(u16::from(AF_INET6) | NLA_F_NESTED, &inet6);
        let off = tlv(IPV4_DEVCONF_RP_FILTER, &0u32.to_ne_bytes());
        let inet = tlv(IFLA_INET_CONF | NLA_F_NESTED, &off);
        spec.extend(tlv(u16::from(AF_INET) | NLA_F_NESTED, &inet));
        builder
            .attribute(IFLA_AF_SPEC | NLA_F_NESTED, &spec)
            .attribute(IFLA_IFALIAS, MARK.as_bytes())
    } else {
        builder
    };
    builder.finish();
}

/// `RTM_DELLINK` for link `name`.
pub fn link_delete_request(out: &mut Vec<u8>, name: &str, seq: u32) {
    Builder::new(out, RTM_DELLINK, NLM_F_ACK, seq)
        .bytes(&ifinfo(0, 0))
        .attribute(IFLA_IFNAME, &name_bytes(name))
        .finish();
}

/// A route l2vip installs, always with its protocol number: in the
/// `local` table `local IP dev IF` (the VIP's traffic is accepted here);
/// in any other table `IP dev IF metric M scope link`, a unicast route for
/// a routing daemon to learn (an exported VIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipRoute {
    /// The VIP.
    pub ip: IpAddr,
    /// The interface the VIP lives on.
    pub ifindex: u32,
    /// The table: `TABLE_LOCAL`, or the export table.
    pub table: u32,
    /// The route's priority (0 in the `local` table).
    pub metric: u32,
}

fn family_of(ip: &IpAddr) -> (u8, u8) {
    match ip {
        IpAddr::V4(_) => (AF_INET, 32),
        IpAddr::V6(_) => (AF_INET6, 128),
    }
}

fn address_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// `RTM_NEWROUTE` (or `RTM_DELROUTE` when `add` is false) for `route`,
/// asking for an acknowledgement. Adding never replaces a route someone
/// else made (`NLM_F_EXCL`); deleting names l2vip's protocol, so the
/// kernel only removes l2vip's own route.
pub fn route_request(out: &mut Vec<u8>, add: bool, route: VipRoute, seq: u32) {
    let (family, len) = family_of(&route.ip);
    let (kind, flags) = if add {
        (RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
    } else {
        (RTM_DELROUTE, NLM_F_ACK)
    };
    let (scope, kind_of_route) = if route.table == u32::from(TABLE_LOCAL) {
        (SCOPE_HOST, RTN_LOCAL)
    } else {
        (SCOPE_LINK, RTN_UNICAST)
    };
    // Tables past 255 are named by RTA_TABLE alone, as `ip route` does.
    let table = u8::try_from(route.table).unwrap_or(0);
    let rtmsg = [
        family,
        len,
        0,
        0,
        table,
        PROTOCOL,
        scope,
        kind_of_route,
        0,
        0,
        0,
        0,
    ];
    Builder::new(out, kind, flags, seq)
        .bytes(&rtmsg)
        .attribute(RTA_DST, &address_bytes(&route.ip))
        .attribute(RTA_OIF, &route.ifindex.to_ne_bytes())
        .attribute(RTA_TABLE, &route.table.to_ne_bytes())
        .attribute(RTA_PRIORITY, &route.metric.to_ne_bytes())
        .finish();
}

/// `IFA_FLAGS`: the address flags in 32 bits.
const IFA_FLAGS: u16 = 8;
/// No duplicate address detection: the address is usable at once.
const IFA_F_NODAD: u32 = 0x02;
/// No prefix route for it (the link's fe80::/64 route is there already).
const IFA_F_NOPREFIXROUTE: u32 = 0x200;

/// `RTM_NEWADDR` (or `RTM_DELADDR` when `add` is false) for the IPv6
/// link-local VIP `ip` on interface `ifindex`: `ip address add IP/64 dev
/// IF scope link nodad noprefixroute`. Adding never takes over an address
/// already there (`NLM_F_EXCL`).
pub fn address_request(out: &mut Vec<u8>, add: bool, ip: Ipv6Addr, ifindex: u32, seq: u32) {
    let (kind, flags) = if add {
        (RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
    } else {
        (RTM_DELADDR, NLM_F_ACK)
    };
    let index = ifindex.to_ne_bytes();
    let ifaddrmsg = [
        AF_INET6,
        64,
        IFA_F_NODAD as u8,
        SCOPE_LINK,
        index[0],
        index[1],
        index[2],
        index[3],
    ];
    Builder::new(out, kind, flags, seq)
        .bytes(&ifaddrmsg)
        .attribute(IFA_LOCAL, &ip.octets())
        .attribute(IFA_ADDRESS, &ip.octets())
        .attribute(
            IFA_FLAGS,
            &(IFA_F_NODAD | IFA_F_NOPREFIXROUTE).to_ne_bytes(),
        )
        .finish();
}

/// A dump request: `RTM_GETLINK` or `RTM_GETROUTE` for `family`.
pub fn dump_request(out: &mut Vec<u8>, kind: u16, family: u8, seq: u32) {
    let fixed: &[u8] = if kind == RTM_GETLINK {
        &[family, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    } else {
        &[family, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    };
    Builder::new(out, kind, NLM_F_DUMP, seq)
        .bytes(fixed)
        .finish();
}

/// A link as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface index.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// `IFF_*` flags.
    pub flags: u32,
    /// Its hardware address, when it has a 6-byte one.
    pub mac: Option<EthernetAddress>,
    /// When it is a macvlan that l2vip made (alias `MARK`): its parent's
    /// index.
    pub ours_on: Option<u32>,
}

impl Link {
    /// Administratively up with carrier: it can carry a VIP.
    pub fn usable(&self) -> bool {
        self.flags & (IFF_UP | IFF_LOWER_UP) == IFF_UP | IFF_LOWER_UP
    }
}

/// A route from a dump or an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The routing table.
    pub table: u32,
    /// Who made it.
    pub protocol: u8,
    /// `RTN_*` type.
    pub kind: u8,
    /// Destination with its prefix length.
    pub dst: Option<(IpAddr, u8)>,
    /// Output interface.
    pub oif: Option<u32>,
    /// Its priority (metric).
    pub metric: u32,
}

/// One message read from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A link exists or changed (`RTM_NEWLINK`).
    Link(Link),
    /// A link was deleted (`RTM_DELLINK`).
    LinkGone(Link),
    /// An address was added to (true) or removed from (false) an interface.
    Address {
        /// Added or removed.
        added: bool,
        /// The interface.
        index: u32,
        /// The address.
        ip: IpAddr,
    },
    /// A route (`RTM_NEWROUTE`).
    Route(Route),
    /// The answer to request `seq`: 0 is success, otherwise a positive errno.
    Ack {
        /// The request.
        seq: u32,
        /// 0 or an errno.
        errno: i32,
    },
    /// The end of the dump `seq`.
    Done {
        /// The request.
        seq: u32,
    },
    /// Something l2vip does not use.
    Other,
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, Error> {
    let raw = bytes.get(at..at + 2).ok_or(Error::Truncated)?;
    Ok(u16::from_ne_bytes([raw[0], raw[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, Error> {
    let raw = bytes.get(at..at + 4).ok_or(Error::Truncated)?;
    Ok(u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

/// The attributes after a fixed part: (type, value) pairs, checked.
fn attributes(mut bytes: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), Error>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        let item = (|| {
            let len = usize::from(u16_at(bytes, 0)?);
            let kind = u16_at(bytes, 2)? & 0x3fff;
            if len < 4 {
                return Err(Error::Malformed);
            }
            let value = bytes.get(4..len).ok_or(Error::Truncated)?;
            Ok((kind, value, align(len).min(bytes.len())))
        })();
        match item {
            Ok((kind, value, next)) => {
                bytes = &bytes[next..];
                Some(Ok((kind, value)))
            }
            Err(e) => {
                bytes = &[];
                Some(Err(e))
            }
        }
    })
}

fn ip_from(family: u8, value: &[u8]) -> Result<IpAddr, Error> {
    match (family, value.len()) {
        (AF_INET, 4) => Ok(IpAddr::V4(Ipv4Addr::new(
            value[0], value[1], value[2], value[3],
        ))),
        (AF_INET6, 16) => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(value);
            Ok(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => Err(Error::Malformed),
    }
}

/// A string attribute's bytes, up to its NUL.
fn text(value: &[u8]) -> &[u8] {
    value.split(|b| *b == 0).next().unwrap_or_default()
}

fn parse_link(body: &[u8]) -> Result<Link, Error> {
    let fixed = body.get(..IFINFO_LEN).ok_or(Error::Truncated)?;
    let index = u32_at(fixed, 4)?;
    let flags = u32_at(fixed, 8)?;
    let mut link = Link {
        index,
        name: String::new(),
        flags,
        mac: None,
        ours_on: None,
    };
    let (mut parent, mut macvlan, mut marked) = (None, false, false);
    for attribute in attributes(&body[IFINFO_LEN..]) {
        let (kind, value) = attribute?;
        match kind {
            IFLA_LINK => parent = Some(u32_at(value, 0)?),
            IFLA_IFALIAS => marked = text(value) == MARK.as_bytes(),
            IFLA_LINKINFO => {
                for info in attributes(value) {
                    let (kind, value) = info?;
                    macvlan |= kind == IFLA_INFO_KIND && text(value) == b"macvlan";
                }
            }
            IFLA_IFNAME => {
                link.name = std::str::from_utf8(text(value))
                    .map_err(|_| Error::Malformed)?
                    .to_string();
            }
            IFLA_ADDRESS => link.mac = <[u8; 6]>::try_from(value).ok().map(EthernetAddress),
            _ => {}
        }
    }
    if link.name.is_empty() {
        return Err(Error::Malformed);
    }
    link.ours_on = parent.filter(|_| macvlan && marked);
    Ok(link)
}

fn parse_address(body: &[u8], added: bool) -> Result<Message, Error> {
    let fixed = body.get(..IFADDR_LEN).ok_or(Error::Truncated)?;
    let family = fixed[0];
    let index = u32_at(fixed, 4)?;
    let mut address = None;
    let mut local = None;
    for attribute in attributes(&body[IFADDR_LEN..]) {
        let (kind, value) = attribute?;
        match kind {
            IFA_ADDRESS => address = Some(ip_from(family, value)?),
            IFA_LOCAL => local = Some(ip_from(family, value)?),
            _ => {}
        }
    }
    // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
    let ip = local.or(address).ok_or(Error::Malformed)?;
    Ok(Message::Address { added, index, ip })
}

fn parse_route(body: &[u8]) -> Result<Message, Error> {
    let fixed = body.get(..RTMSG_LEN).ok_or(Error::Truncated)?;
    let family = fixed[0];
    let mut route = Route {
        table: u32::from(fixed[4]),
        protocol: fixed[5],
        kind: fixed[7],
        dst: None,
        oif: None,
        metric: 0,
    };
    if family != AF_INET && family != AF_INET6 {
        return Ok(Message::Other);
    }
    for attribute in attributes(&body[RTMSG_LEN..]) {
        let (kind, value) = attribute?;
        match kind {
            RTA_DST => route.dst = Some((ip_from(family, value)?, fixed[1])),
            RTA_OIF => route.oif = Some(u32_at(value, 0)?),
            RTA_TABLE => route.table = u32_at(value, 0)?,
            RTA_PRIORITY => route.metric = u32_at(value, 0)?,
            _ => {}
        }
    }
    Ok(Message::Route(route))
}

/// Reads every message in one datagram from the kernel. A message whose
/// length does not fit ends the walk with an error.
pub fn messages(mut bytes: &[u8]) -> impl Iterator<Item = Result<Message, Error>> + '_ {
    std::iter::from_fn(move || {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        let step = (|| {
            let len = u32_at(bytes, 0)? as usize;
            if len < HEADER_LEN {
                return Err(Error::Malformed);
            }
            let message = bytes.get(..len).ok_or(Error::Truncated)?;
            let kind = u16_at(message, 4)?;
            let seq = u32_at(message, 8)?;
            let body = &message[HEADER_LEN..];
            let parsed = match kind {
                NLMSG_ERROR => {
                    let raw = body.get(..4).ok_or(Error::Truncated)?;
                    let error = i32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]);
                    Message::Ack {
                        seq,
                        errno: error.checked_neg().ok_or(Error::Malformed)?,
                    }
                }
                NLMSG_DONE => Message::Done { seq },
                RTM_NEWLINK => Message::Link(parse_link(body)?),
                RTM_DELLINK => Message::LinkGone(parse_link(body)?),
                RTM_NEWADDR => parse_address(body, true)?,
                RTM_DELADDR => parse_address(body, false)?,
                RTM_NEWROUTE => parse_route(body)?,
                _ => Message::Other,
            };
            Ok((parsed, align(len).min(bytes.len())))
        })();
        match step {
            Ok((message, next)) => {
                bytes = &bytes[next..];
                Some(Ok(message))
            }
            Err(e) => {
                bytes = &[];
                Some(Err(e))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((HEADER_LEN + body.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(body);
        out.resize(align(out.len()), 0);
        out
    }

    fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(align(out.len()), 0);
        out
    }

    #[test]
    fn address_requests_are_what_ip_address_sends() {
        let mut out = Vec::new();
        let ip: Ipv6Addr = "fe80::1".parse().unwrap();
        address_request(&mut out, true, ip, 7, 11);
        // Header, ifaddrmsg, IFA_LOCAL and IFA_ADDRESS (20 each), IFA_FLAGS (8).
        assert_eq!(out.len(), 16 + 8 + 20 + 20 + 8);
        assert_eq!(u32_at(&out, 0).unwrap() as usize, out.len());
        assert_eq!(u16_at(&out, 4).unwrap(), RTM_NEWADDR);
        assert_eq!(
            u16_at(&out, 6).unwrap(),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        assert_eq!(&out[16..20], &[10, 64, 2, 253]);
        assert_eq!(u32_at(&out, 20).unwrap(), 7);
        assert_eq!(&out[24..28], &[20, 0, 2, 0]);
        assert_eq!(&out[28..44], &ip.octets());
        assert_eq!(&out[44..48], &[20, 0, 1, 0]);
        assert_eq!(&out[64..68], &[8, 0, 8, 0]);
        assert_eq!(u32_at(&out, 68).unwrap(), 0x202);
        address_request(&mut out, false, ip, 7, 12);
        assert_eq!(u16_at(&out, 4).unwrap(), RTM_DELADDR);
        assert_eq!(u16_at(&out, 6).unwrap(), NLM_F_REQUEST | NLM_F_ACK);
    }

    #[test]
    fn route_requests_are_what_ip_route_sends() {
        let mut out = Vec::new();
        let route = VipRoute {
            ip: "192.0.2.200".parse().unwrap(),
            ifindex: 7,
            table: 255,
            metric: 0,
        };
        route_request(&mut out, true, route, 9);
        // Header, rtmsg, then RTA_DST, RTA_OIF, RTA_TABLE, RTA_PRIORITY (8 each).
        assert_eq!(out.len(), 16 + 12 + 32);
        assert_eq!(u32_at(&out, 0).unwrap() as usize, out.len());
        assert_eq!(u16_at(&out, 4).unwrap(), RTM_NEWROUTE);
        assert_eq!(
            u16_at(&out, 6).unwrap(),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        assert_eq!(u32_at(&out, 8).unwrap(), 9);
        assert_eq!(&out[16..24], &[2, 32, 0, 0, 255, 76, 254, 2]);
        assert_eq!(&out[28..36], &[8, 0, 1, 0, 192, 0, 2, 200]);
        assert_eq!(u32_at(&out, 40).unwrap(), 7);

        let v6 = VipRoute {
            ip: "2001:db8::200".parse().unwrap(),
            ifindex: 3,
            table: 255,
            metric: 0,
        };
        route_request(&mut out, false, v6, 10);
        assert_eq!(u16_at(&out, 4).unwrap(), RTM_DELROUTE);
        assert_eq!(u16_at(&out, 6).unwrap(), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(&out[16..18], &[10, 128]);
        assert_eq!(out.len(), 16 + 12 + 20 + 8 + 8 + 8);

        // Exported: `198.51.100.7 dev 7 table 100 metric 20 scope link proto 76`.
        let exported = VipRoute {
            ip: "198.51.100.7".parse().unwrap(),
            ifindex: 7,
            table: 100,
            metric: 20,
        };
        route_request(&mut out, true, exported, 11);
        assert_eq!(&out[16..24], &[2, 32, 0, 0, 100, 76, 253, 1]);
        assert_eq!(u32_at(&out, 48).unwrap(), 100);
        assert_eq!(u32_at(&out, 56).unwrap(), 20);
        // A table past 255: RTA_TABLE alone names it.
        let far = VipRoute {
            table: 1000,
            ..exported
        };
        route_request(&mut out, true, far, 12);
        assert_eq!(out[20], 0);
        assert_eq!(u32_at(&out, 48).unwrap(), 1000);
    }

    #[test]
    fn reads_links_addresses_routes_and_acks() {
        let mut link = vec![0u8; IFINFO_LEN];
        link[4..8].copy_from_slice(&5u32.to_ne_bytes());
        link[8..12].copy_from_slice(&(IFF_UP | IFF_LOWER_UP).to_ne_bytes());
        link.extend(attribute(IFLA_IFNAME, b"eth1\0"));
        link.extend(attribute(IFLA_ADDRESS, &[2, 0x4c, 0x32, 0, 1, 1]));
        let mut address = vec![AF_INET6, 64, 0, 0];
        address.extend_from_slice(&5u32.to_ne_bytes());
        address.extend(attribute(
            IFA_ADDRESS,
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0],
        ));
        let mut route = vec![
            AF_INET, 32, 0, 0, 255, PROTOCOL, SCOPE_HOST, RTN_LOCAL, 0, 0, 0, 0,
        ];
        route.extend(attribute(RTA_DST, &[192, 0, 2, 200]));
        route.extend(attribute(RTA_OIF, &5u32.to_ne_bytes()));
        let mut ack = (-17i32).to_ne_bytes().to_vec();
        ack.extend_from_slice(&[0; 16]);

        let mut datagram = header(RTM_NEWLINK, 0, &link);
        datagram.extend(header(RTM_DELADDR, 0, &address));
        datagram.extend(header(RTM_NEWROUTE, 4, &route));
        datagram.extend(header(NLMSG_ERROR, 4, &ack));
        datagram.extend(header(NLMSG_DONE, 4, &[0; 4]));
        let read: Vec<Message> = messages(&datagram).map(Result::unwrap).collect();
        assert_eq!(
            read,
            vec![
                Message::Link(Link {
                    index: 5,
                    name: "eth1".into(),
                    flags: IFF_UP | IFF_LOWER_UP,
                    mac: Some(EthernetAddress([2, 0x4c, 0x32, 0, 1, 1])),
                    ours_on: None,
                }),
                Message::Address {
                    added: false,
                    index: 5,
                    ip: "2001:db8::200".parse().unwrap()
                },
                Message::Route(Route {
                    table: 255,
                    protocol: PROTOCOL,
                    kind: RTN_LOCAL,
                    dst: Some(("192.0.2.200".parse().unwrap(), 32)),
                    oif: Some(5),
                    metric: 0,
                }),
                Message::Ack { seq: 4, errno: 17 },
                Message::Done { seq: 4 },
            ]
        );
        let Message::Link(link) = &read[0] else {
            unreachable!()
        };
        assert!(link.usable());
    }

    #[test]
    fn only_a_macvlan_with_l2vips_alias_is_l2vips() {
        let link = |kind: &[u8], alias: &[u8]| {
            let mut body = vec![0u8; IFINFO_LEN];
            body.extend(attribute(IFLA_IFNAME, b"l2v0200aabbccdd\0"));
            body.extend(attribute(IFLA_LINK, &7u32.to_ne_bytes()));
            body.extend(attribute(IFLA_IFALIAS, alias));
            let info = attribute(IFLA_INFO_KIND, kind);
            body.extend(attribute(IFLA_LINKINFO | NLA_F_NESTED, &info));
            parse_link(&body).unwrap().ours_on
        };
        assert_eq!(link(b"macvlan\0", b"l2vip\0"), Some(7));
        assert_eq!(link(b"macvlan", b"l2vip"), Some(7));
        // An administrator's dummy, bridge or unmarked macvlan of that name.
        assert_eq!(link(b"dummy\0", b"l2vip\0"), None);
        assert_eq!(link(b"macvlan\0", b"uplink\0"), None);
        assert_eq!(link(b"macvlan\0", b"l2vip2\0"), None);
    }

    #[test]
    fn lengths_that_lie_end_the_walk() {
        let mut link = vec![0u8; IFINFO_LEN];
        link.extend(attribute(IFLA_IFNAME, b"eth0\0"));
        let good = header(RTM_NEWLINK, 0, &link);
        for cut in 0..good.len() {
            // A prefix shorter than a header is nothing; a longer one is
            // one message that says it is longer than what arrived.
            let prefix: Vec<_> = messages(&good[..cut]).collect();
            if cut < HEADER_LEN {
                assert_eq!(prefix, vec![], "prefix of {cut} bytes");
            } else {
                assert_eq!(prefix, vec![Err(Error::Truncated)], "prefix of {cut} bytes");
            }
            // Any corrupted byte: never a panic, and at most one item.
            let mut bad = good.clone();
            bad[cut] ^= 0xff;
            let walked: Vec<_> = messages(&bad).collect();
            assert!(walked.len() <= 1, "byte {cut}: {walked:?}");
            // A corrupted length (too long, or shorter than a header) is an error.
            if cut < 4 {
                assert!(matches!(walked[..], [Err(_)]), "byte {cut}: {walked:?}");
            }
        }
        let mut long = good.clone();
        long[..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(
            messages(&long).collect::<Vec<_>>(),
            vec![Err(Error::Truncated)]
        );
        let mut attr_lies = good.clone();
        attr_lies[HEADER_LEN + IFINFO_LEN..HEADER_LEN + IFINFO_LEN + 2]
            .copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(
            messages(&attr_lies).collect::<Vec<_>>(),
            vec![Err(Error::Truncated)]
        );
        let mut nameless = vec![0u8; IFINFO_LEN];
        nameless.extend(attribute(IFLA_ADDRESS, &[0; 6]));
        assert_eq!(
            messages(&header(RTM_NEWLINK, 0, &nameless)).collect::<Vec<_>>(),
            vec![Err(Error::Malformed)]
        );
    }
}
