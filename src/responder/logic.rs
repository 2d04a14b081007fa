//! What to answer: pure, driven by frames and `now`. The `Responder`
//! also holds what the answers depend on (the owned VIPs and their MACs)
//! and hands the rest to the announcement schedule (`schedule`) and the
//! claims judged as conflicts (`conflicts`).

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::config::Announce;
use crate::wire::{arp, ethernet, icmpv6, ipv6, Error, EthernetAddress};

use super::conflicts::{Conflict, Conflicts};
use super::schedule::{Schedule, Sent};
use crate::counters::{Counters, DropReason};

/// Frames we build are at most this long (an NA with its option is 86).
pub const MAX_FRAME: usize = 128;
/// Shortest Ethernet frame without FCS; shorter ARP frames are padded.
const MIN_FRAME: usize = 60;

/// `sll_pkttype` of frames the responder must never act on.
const PACKET_OTHERHOST: u8 = 3;
const PACKET_OUTGOING: u8 = 4;

/// An interface the responder serves, by position ("slot").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Kernel name, for logs.
    pub name: String,
    /// Its MAC: the source of everything we send there.
    pub mac: EthernetAddress,
    /// Whether this node forwards IPv6 there: its Neighbor Advertisements
    /// then say so (R=1), as the kernel's do. A host that hears R=0 for
    /// its default router drops the route through it (RFC 4861 §7.2.5).
    pub router: bool,
}

/// A VIP this node owns now, on the interface at `slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnedVip {
    /// The address.
    pub ip: IpAddr,
    /// Index into the responder's interfaces.
    pub slot: usize,
    /// The MAC it is answered and announced with; `None`: the interface's.
    pub mac: Option<EthernetAddress>,
}

/// What the log says of claims on owned VIPs, now.
#[derive(Debug, Default)]
pub struct Claims {
    /// Conflicts to log, one line each.
    pub log: Vec<Conflict>,
    /// VIPs with how many more claimants claimed them in the period just
    /// ended, without a line of their own.
    pub unlogged: Vec<(IpAddr, u64)>,
}

/// The outcome of one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the first `len` bytes of the output buffer.
    Reply(usize),
    /// Nothing to send; counted under this reason.
    Drop(DropReason),
}

/// The responder's state: interfaces, owned VIPs, announcement schedule.
#[derive(Debug)]
pub struct Responder {
    interfaces: Vec<Interface>,
    /// (slot, VIP) pairs answered for, sorted (looked up per frame by
    /// binary search; a tenth of a hash set's memory with 1000 VIPs).
    owned: Vec<(usize, IpAddr)>,
    /// The VIPs answered with a MAC of their own (few): (slot, VIP, MAC).
    own_macs: Vec<(usize, IpAddr, EthernetAddress)>,
    schedule: Schedule,
    conflicts: Conflicts,
    /// Everything counted so far.
    pub counters: Counters,
}

impl Responder {
    /// A responder for `interfaces` that owns nothing yet.
    pub fn new(interfaces: Vec<Interface>, announce: Announce) -> Responder {
        Responder {
            interfaces,
            owned: Vec::new(),
            own_macs: Vec::new(),
            schedule: Schedule::new(announce),
            conflicts: Conflicts::new(),
            counters: Counters::default(),
        }
    }

    /// How long a claim on an owned VIP waits before it is judged: long
    /// enough for the election to hear a cluster node that claims it too.
    pub fn set_judge_after(&mut self, after: Duration) {
        self.conflicts.set_judge_after(after);
    }

    /// The owned VIPs another cluster node claims too.
    pub fn set_contested(&mut self, ips: Vec<IpAddr>) {
        self.conflicts.set_contested(ips);
    }

    /// The conflicts seen, the most recent last.
    pub fn conflicts(&self) -> &[Conflict] {
        self.conflicts.seen()
    }

    /// Judges the claims that have waited long enough (see `conflicts`),
    /// and asks the schedule for one round for each VIP to defend. Returns
    /// what to log now.
    pub fn judge_claims(&mut self, now: Instant) -> Claims {
        let owned = &self.owned;
        let owns = |slot, ip| owned.binary_search(&(slot, ip)).is_ok();
        let judged = self.conflicts.judge(now, owns, &mut self.counters);
        for ip in judged.defend {
            self.schedule.kick(now, ip);
        }
        Claims {
            log: judged.log,
            unlogged: judged.unlogged,
        }
    }

    /// The interfaces, by slot.
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Replaces the interface list; existing slots must keep their place.
    pub fn replace_interfaces(&mut self, interfaces: Vec<Interface>) {
        self.interfaces = interfaces;
    }

    /// Replaces the set of owned VIPs. Newly acquired ones start a burst
    /// at once; released ones are neither answered nor announced from now
    /// on; unchanged ones keep their schedule. Returns (acquired, released).
    pub fn set_owned(&mut self, now: Instant, vips: &[OwnedVip]) -> (usize, usize) {
        let mut wanted: Vec<(usize, IpAddr)> = vips
            .iter()
            .filter(|v| v.slot < self.interfaces.len())
            .map(|v| (v.slot, v.ip))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted.shrink_to_fit();
        let own_macs: Vec<(usize, IpAddr, EthernetAddress)> = vips
            .iter()
            .filter(|v| v.slot < self.interfaces.len())
            .filter_map(|v| v.mac.map(|mac| (v.slot, v.ip, mac)))
            .collect();
        // A VIP whose MAC changed is announced afresh, as if acquired.
        let macs_before = std::mem::replace(&mut self.own_macs, own_macs);
        let mac_of = |macs: &[(usize, IpAddr, EthernetAddress)], slot: usize, ip: IpAddr| {
            macs.iter()
                .find(|&&(s, i, _)| (s, i) == (slot, ip))
                .map(|&(_, _, mac)| mac)
        };
        let changed: Vec<(usize, IpAddr)> = self
            .owned
            .iter()
            .copied()
            .filter(|&(slot, ip)| {
                mac_of(&macs_before, slot, ip) != mac_of(&self.own_macs, slot, ip)
            })
            .collect();
        self.owned.retain(|pair| !changed.contains(pair));
        let released = self.schedule.retain(|vip| {
            wanted.binary_search(&(vip.slot, vip.ip)).is_ok()
                && !changed.contains(&(vip.slot, vip.ip))
        });
        let mut acquired = 0;
        for &(slot, ip) in &wanted {
            if self.owned.binary_search(&(slot, ip)).is_err() {
                acquired += 1;
                let mac = mac_of(&self.own_macs, slot, ip);
                self.schedule.start(now, OwnedVip { ip, slot, mac });
            }
        }
        self.owned = wanted;
        (acquired, released.saturating_sub(changed.len()))
    }

    /// The VIPs owned on `slot`.
    pub fn owned_on(&self, slot: usize) -> impl Iterator<Item = IpAddr> + '_ {
        self.owned
            .iter()
            .filter(move |(s, _)| *s == slot)
            .map(|(_, ip)| *ip)
    }

    /// Sends a new burst for every owned VIP on `slot` (link came back,
    /// MAC changed, split brain healed).
    pub fn reannounce(&mut self, now: Instant, slot: usize) {
        self.schedule.burst(now, |vip| vip.slot == slot);
    }

    /// Sends a new burst for the owned VIPs among `ips`.
    pub fn reannounce_ips(&mut self, now: Instant, ips: &[IpAddr]) {
        self.schedule.burst(now, |vip| ips.contains(&vip.ip));
    }

    /// When `announce_due` or `judge_claims` has work next.
    pub fn poll_at(&self) -> Option<Instant> {
        match (self.conflicts.poll_at(), self.schedule.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Emits every announcement round due at `now` through `send(slot, frame)`.
    /// A full send buffer pauses the rest (1000 VIPs are 3000 frames) and
    /// they go out after `SEND_BACKOFF`, none skipped.
    pub fn announce_due(&mut self, now: Instant, send: impl FnMut(usize, &[u8]) -> Sent) {
        self.schedule
            .due(now, &self.interfaces, &mut self.counters, send);
    }

    /// Handles a frame that arrived on the ARP socket of `slot`.
    pub fn process_arp(
        &mut self,
        slot: usize,
        pkttype: u8,
        frame: &[u8],
        out: &mut [u8; MAX_FRAME],
    ) -> Verdict {
        self.counters.arp_received += 1;
        let result = self.arp_verdict(slot, pkttype, frame, out);
        self.tally(result, true)
    }

    /// Handles a frame that arrived on the NDP socket of `slot`.
    pub fn process_ndp(
        &mut self,
        slot: usize,
        pkttype: u8,
        frame: &[u8],
        out: &mut [u8; MAX_FRAME],
    ) -> Verdict {
        self.counters.ns_received += 1;
        let result = self.ndp_verdict(slot, pkttype, frame, out);
        self.tally(result, false)
    }

    fn tally(&mut self, result: Result<usize, DropReason>, ipv4: bool) -> Verdict {
        match result {
            Ok(len) => {
                if ipv4 {
                    self.counters.arp_replies_sent += 1;
                } else {
                    self.counters.na_sent += 1;
                }
                Verdict::Reply(len)
            }
            Err(reason) => {
                self.counters.drop(reason);
                Verdict::Drop(reason)
            }
        }
    }

    /// The checks every received frame passes first; returns its header.
    fn ethernet<'f>(
        &self,
        slot: usize,
        pkttype: u8,
        frame: &'f [u8],
    ) -> Result<ethernet::Frame<&'f [u8]>, DropReason> {
        if pkttype == PACKET_OUTGOING || pkttype == PACKET_OTHERHOST {
            return Err(DropReason::NotForUs);
        }
        if slot >= self.interfaces.len() {
            return Err(DropReason::NotForUs);
        }
        let frame = ethernet::Frame::new_checked(frame).map_err(|_| DropReason::Truncated)?;
        if frame.vlan_id().is_some_and(|id| id != 0) {
            // A tag for a VLAN this interface is not: the VLAN's own
            // interface gets the frame untagged.
            return Err(DropReason::VlanTagged);
        }
        Ok(frame)
    }

    /// Whether `mac` is one this node answers with: a frame whose ARP
    /// sender or NDP link-layer address it is (what hosts learn, whatever
    /// the Ethernet source) is our own, never a claim.
    fn is_ours(&self, mac: EthernetAddress) -> Result<(), DropReason> {
        if self.interfaces.iter().any(|ours| ours.mac == mac)
            || self.own_macs.iter().any(|&(_, _, own)| own == mac)
        {
            return Err(DropReason::OwnFrame);
        }
        Ok(())
    }

    /// The MAC `ip` is answered with on `slot`.
    fn mac_of(&self, slot: usize, ip: IpAddr) -> EthernetAddress {
        self.own_macs
            .iter()
            .find(|&&(s, i, _)| (s, i) == (slot, ip))
            .map_or(self.interfaces[slot].mac, |&(_, _, mac)| mac)
    }

    fn owns_anywhere(&self, ip: IpAddr) -> bool {
        (0..self.interfaces.len()).any(|slot| self.owned.binary_search(&(slot, ip)).is_ok())
    }

    /// Whether `ip` is answered on `slot`, or why not.
    fn check_owned(&self, slot: usize, ip: IpAddr) -> Result<(), DropReason> {
        if self.owned.binary_search(&(slot, ip)).is_ok() {
            Ok(())
        } else if self.owns_anywhere(ip) {
            Err(DropReason::OtherInterface)
        } else {
            Err(DropReason::NotOwned)
        }
    }

    fn arp_verdict(
        &mut self,
        slot: usize,
        pkttype: u8,
        frame: &[u8],
        out: &mut [u8; MAX_FRAME],
    ) -> Result<usize, DropReason> {
        let frame = self.ethernet(slot, pkttype, frame)?;
        let packet =
            arp::Packet::new_checked(frame.payload()).map_err(|_| DropReason::Truncated)?;
        let request = arp::Repr::parse(&packet).map_err(|e| match e {
            Error::Unsupported => DropReason::ArpOperation,
            _ => DropReason::ArpFormat,
        })?;
        if !request.source_hardware_addr.is_unicast() {
            return Err(DropReason::BadSender);
        }
        self.is_ours(request.source_hardware_addr)?;
        // RFC 5227 §2.4: any ARP with a VIP we own as its sender address,
        // from another MAC (ours were dropped above), is a claim on it; so
        // is a probe for it (RFC 5227 §2.1.1: sender 0.0.0.0), which is
        // also answered. Judged after the election has had its say.
        let sender = IpAddr::V4(request.source_protocol_addr);
        let claimed = self.owned.binary_search(&(slot, sender)).is_ok();
        if claimed {
            self.conflicts
                .suspect(slot, sender, request.source_hardware_addr);
        }
        if request.operation == arp::Operation::Reply || request.is_gratuitous() {
            return Err(if claimed || self.owns_anywhere(sender) {
                DropReason::Conflict
            } else if request.operation == arp::Operation::Reply {
                DropReason::NotRequest
            } else {
                DropReason::NotOwned
            });
        }
        let target = request.target_protocol_addr;
        self.check_owned(slot, IpAddr::V4(target))?;
        if request.source_protocol_addr.is_unspecified() {
            self.conflicts
                .suspect(slot, IpAddr::V4(target), request.source_hardware_addr);
        }
        let mac = self.mac_of(slot, IpAddr::V4(target));
        let reply = arp::Repr {
            operation: arp::Operation::Reply,
            source_hardware_addr: mac,
            source_protocol_addr: target,
            target_hardware_addr: request.source_hardware_addr,
            target_protocol_addr: request.source_protocol_addr,
        };
        Ok(emit_arp(out, request.source_hardware_addr, &reply))
    }

    /// Another host advertises `target` with `mac`: on a VIP we own, a
    /// claim on it. The NA is dropped either way, for this reason.
    fn advertised(&mut self, slot: usize, target: Ipv6Addr, mac: EthernetAddress) -> DropReason {
        let ip = IpAddr::V6(target);
        if self.owned.binary_search(&(slot, ip)).is_err() {
            return DropReason::NotRequest;
        }
        if mac.is_unicast() {
            self.conflicts.suspect(slot, ip, mac);
        }
        DropReason::Conflict
    }

    /// The NA answering a solicitation for the owned `target` from
    /// `source` (link-layer address `solicitor`); `dad`: from ::.
    fn neighbor_advert(
        &self,
        out: &mut [u8; MAX_FRAME],
        slot: usize,
        target: Ipv6Addr,
        dad: bool,
        source: Ipv6Addr,
        solicitor: EthernetAddress,
    ) -> usize {
        let mac = self.mac_of(slot, IpAddr::V6(target));
        // RFC 4861 §7.2.4: to the solicitor with S=1; a DAD probe (from ::)
        // is answered to all nodes with S=0. O=1: the VIP is ours to claim.
        let (ip_destination, mac_destination, solicited) = if dad {
            (
                ipv6::ALL_NODES,
                EthernetAddress::ipv6_multicast(&ipv6::ALL_NODES.octets()),
                false,
            )
        } else {
            (source, solicitor, true)
        };
        let advert = icmpv6::Repr::NeighborAdvert {
            flags: icmpv6::AdvertFlags {
                router: self.interfaces[slot].router,
                solicited,
                override_: true,
            },
            target,
            target_lladdr: Some(mac),
        };
        emit_na(out, mac, mac_destination, target, ip_destination, &advert)
    }

    fn ndp_verdict(
        &mut self,
        slot: usize,
        pkttype: u8,
        frame: &[u8],
        out: &mut [u8; MAX_FRAME],
    ) -> Result<usize, DropReason> {
        let frame = self.ethernet(slot, pkttype, frame)?;
        let packet = match ipv6::Packet::new_checked(frame.payload()) {
            Ok(packet) => packet,
            Err(Error::Truncated) => return Err(DropReason::Truncated),
            Err(_) => return Err(DropReason::Ipv6Format),
        };
        if packet.next_header() != ipv6::NEXT_HEADER_ICMPV6 {
            return Err(DropReason::NotRequest);
        }
        // RFC 4861 §7.1.1: the hop limit proves the NS was not forwarded.
        if packet.hop_limit() != 255 {
            return Err(DropReason::HopLimit);
        }
        let (source, destination) = (packet.source(), packet.destination());
        let message = match icmpv6::Packet::new_checked(packet.payload()) {
            Ok(message) => message,
            Err(_) => return Err(DropReason::Truncated),
        };
        let (target, source_lladdr) = match icmpv6::Repr::parse(&source, &destination, &message) {
            Ok(icmpv6::Repr::NeighborSolicit {
                target,
                source_lladdr,
            }) => (target, source_lladdr),
            Ok(icmpv6::Repr::NeighborAdvert {
                target,
                target_lladdr,
                ..
            }) => {
                let mac = target_lladdr.unwrap_or_else(|| frame.source());
                self.is_ours(mac)?;
                return Err(self.advertised(slot, target, mac));
            }
            Err(Error::Unsupported) => return Err(DropReason::NotRequest),
            Err(Error::Checksum) => return Err(DropReason::Checksum),
            Err(Error::Truncated) => return Err(DropReason::Truncated),
            Err(Error::Malformed) => return Err(DropReason::NdpFormat),
        };
        let dad = source.is_unspecified();
        // RFC 4861 §7.1.1: from ::, only to the solicited-node group and
        // without a Source Link-Layer Address option.
        if dad && (destination != ipv6::solicited_node(&target) || source_lladdr.is_some()) {
            return Err(DropReason::NdpFormat);
        }
        if source_lladdr.is_some_and(|mac| !mac.is_unicast()) || !frame.source().is_unicast() {
            return Err(DropReason::BadSender);
        }
        // What the solicited host learns for the source address.
        let solicitor = source_lladdr.unwrap_or_else(|| frame.source());
        self.is_ours(solicitor)?;
        // An NS from a VIP we own (RFC 4861 §7.2.3: its receiver updates
        // its cache for the source) is a claim on it, as an ARP's sender.
        let from_vip = self
            .owned
            .binary_search(&(slot, IpAddr::V6(source)))
            .is_ok();
        if from_vip {
            self.conflicts.suspect(slot, IpAddr::V6(source), solicitor);
        }
        match self.check_owned(slot, IpAddr::V6(target)) {
            Err(_) if from_vip => return Err(DropReason::Conflict),
            other => other?,
        }
        if dad {
            // Someone's duplicate address detection for a VIP we own.
            self.conflicts.suspect(slot, IpAddr::V6(target), solicitor);
        }
        Ok(self.neighbor_advert(out, slot, target, dad, source, solicitor))
    }
}

/// Writes an ARP frame to `destination`, padded to the Ethernet minimum.
pub(super) fn emit_arp(
    out: &mut [u8; MAX_FRAME],
    destination: EthernetAddress,
    repr: &arp::Repr,
) -> usize {
    let header = ethernet::Repr {
        source: repr.source_hardware_addr,
        destination,
        ethertype: ethernet::EtherType::Arp,
    };
    let end = header.buffer_len() + repr.buffer_len();
    let len = end.max(MIN_FRAME);
    out[..len].fill(0);
    let mut frame = ethernet::Frame::new_unchecked(&mut out[..len]);
    header.emit(&mut frame);
    repr.emit(&mut arp::Packet::new_unchecked(
        &mut frame.payload_mut()[..repr.buffer_len()],
    ));
    len
}

/// Writes an IPv6 frame carrying the NA `repr`.
pub(super) fn emit_na(
    out: &mut [u8; MAX_FRAME],
    source_mac: EthernetAddress,
    destination_mac: EthernetAddress,
    source: Ipv6Addr,
    destination: Ipv6Addr,
    repr: &icmpv6::Repr,
) -> usize {
    let header = ethernet::Repr {
        source: source_mac,
        destination: destination_mac,
        ethertype: ethernet::EtherType::Ipv6,
    };
    let icmp_len = repr.buffer_len();
    let ip = ipv6::Repr {
        source,
        destination,
        next_header: ipv6::NEXT_HEADER_ICMPV6,
        // NS/NA are a few dozen bytes: always fits.
        payload_len: icmp_len as u16,
        hop_limit: 255,
    };
    let len = header.buffer_len() + ip.buffer_len() + icmp_len;
    let mut frame = ethernet::Frame::new_unchecked(&mut out[..len]);
    header.emit(&mut frame);
    let mut packet = ipv6::Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet);
    repr.emit(
        &source,
        &destination,
        &mut icmpv6::Packet::new_unchecked(packet.payload_mut()),
    );
    len
}

#[cfg(test)]
mod tests {
    use super::super::conflicts::DEFEND_EVERY;
    use super::super::schedule::{gratuitous_arp, FRAMES_PER_BATCH, SEND_BACKOFF};
    use super::*;
    use crate::wire::captures::{ARP_REPLY, ARP_REQUEST, DAD_NS, NA, NS};
    use std::net::Ipv4Addr;

    const NODE: EthernetAddress = EthernetAddress([0x02, 0x4c, 0x32, 0x00, 0x00, 0x01]);
    const SIDE: EthernetAddress = EthernetAddress([0x02, 0x4c, 0x32, 0x00, 0x01, 0x01]);
    const HOST: u8 = 0;
    const BROADCAST: u8 = 1;
    const MULTICAST: u8 = 2;

    fn vip(text: &str, slot: usize) -> OwnedVip {
        OwnedVip {
            mac: None,
            ip: text.parse().unwrap(),
            slot,
        }
    }

    /// Node 1 of the lab: eth0 (slot 0) and eth1 (slot 1), owning
    /// 192.0.2.11 and 2001:db8::11 on eth0 (the addresses the captures ask for).
    fn responder(now: Instant) -> Responder {
        let interfaces = vec![
            Interface {
                name: "eth0".into(),
                mac: NODE,
                router: false,
            },
            Interface {
                name: "eth1".into(),
                mac: SIDE,
                router: true,
            },
        ];
        let mut responder = Responder::new(interfaces, Announce::default());
        responder.set_owned(now, &[vip("192.0.2.11", 0), vip("2001:db8::11", 0)]);
        responder
    }

    fn arp(responder: &mut Responder, slot: usize, frame: &[u8]) -> (Verdict, [u8; MAX_FRAME]) {
        let mut out = [0xa5u8; MAX_FRAME];
        (responder.process_arp(slot, BROADCAST, frame, &mut out), out)
    }

    fn ndp(responder: &mut Responder, slot: usize, frame: &[u8]) -> (Verdict, [u8; MAX_FRAME]) {
        let mut out = [0xa5u8; MAX_FRAME];
        (responder.process_ndp(slot, MULTICAST, frame, &mut out), out)
    }

    /// Recomputes the ICMPv6 checksum of an NS frame after an edit.
    fn refill(frame: &mut [u8]) {
        let packet = ipv6::Packet::new_checked(&frame[14..]).unwrap();
        let (source, destination) = (packet.source(), packet.destination());
        icmpv6::Packet::new_unchecked(&mut frame[54..]).fill_checksum(&source, &destination);
    }

    #[test]
    fn answers_arp_like_the_kernel() {
        let mut r = responder(Instant::now());
        let (verdict, out) = arp(&mut r, 0, &ARP_REQUEST);
        assert_eq!(verdict, Verdict::Reply(60));
        assert_eq!(out[..42], ARP_REPLY[..]);
        assert!(out[42..60].iter().all(|b| *b == 0), "padding is zeroed");
        assert_eq!(r.counters.arp_received, 1);
        assert_eq!(r.counters.arp_replies_sent, 1);
    }

    #[test]
    fn answers_arp_probe() {
        let mut r = responder(Instant::now());
        let mut probe = ARP_REQUEST;
        probe[28..32].copy_from_slice(&[0, 0, 0, 0]);
        let (verdict, out) = arp(&mut r, 0, &probe);
        assert_eq!(verdict, Verdict::Reply(60));
        let reply = arp::Repr::parse(&arp::Packet::new_checked(&out[14..60]).unwrap()).unwrap();
        assert_eq!(reply.target_protocol_addr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(&out[..6], &ARP_REQUEST[6..12], "unicast to the prober");
    }

    #[test]
    fn arp_drops() {
        let now = Instant::now();
        let mut r = responder(now);
        let mut check = |slot: usize, frame: &[u8], reason: DropReason| {
            let (verdict, _) = arp(&mut r, slot, frame);
            assert_eq!(verdict, Verdict::Drop(reason), "{reason:?}");
        };

        let mut other = ARP_REQUEST;
        other[41] = 12;
        check(0, &other, DropReason::NotOwned);
        check(1, &ARP_REQUEST, DropReason::OtherInterface);
        // Node 2's reply for its own address.
        let mut reply = ARP_REPLY;
        reply[11] = 2;
        reply[27] = 2;
        reply[31] = 12;
        check(0, &reply, DropReason::NotRequest);
        // The same reply claiming our VIP: a conflict.
        reply[31] = 11;
        check(0, &reply, DropReason::Conflict);
        check(0, &ARP_REQUEST[..1], DropReason::Truncated);
        check(0, &ARP_REQUEST[..30], DropReason::Truncated);

        let mut hlen8 = [0u8; 60];
        hlen8[..42].copy_from_slice(&ARP_REQUEST);
        hlen8[18] = 8;
        check(0, &hlen8, DropReason::ArpFormat);
        let mut plen16 = [0u8; 60];
        plen16[..42].copy_from_slice(&ARP_REQUEST);
        plen16[19] = 16;
        check(0, &plen16, DropReason::Truncated);
        let mut plen16_full = [0u8; 80];
        plen16_full[..42].copy_from_slice(&ARP_REQUEST);
        plen16_full[19] = 16;
        check(0, &plen16_full, DropReason::ArpFormat);

        // Our MAC as the ARP sender, whatever the Ethernet source.
        let mut own = ARP_REQUEST;
        own[22..28].copy_from_slice(NODE.as_bytes());
        check(0, &own, DropReason::OwnFrame);

        let mut multicast_sender = ARP_REQUEST;
        multicast_sender[22] = 0x01;
        check(0, &multicast_sender, DropReason::BadSender);

        let mut tagged = [0u8; 46];
        tagged[..12].copy_from_slice(&ARP_REQUEST[..12]);
        tagged[12..16].copy_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        tagged[16..].copy_from_slice(&ARP_REQUEST[12..]);
        check(0, &tagged, DropReason::VlanTagged);

        // A gratuitous ARP from another MAC for a VIP we own: a conflict.
        let mut foreign = [0u8; MAX_FRAME];
        let len = gratuitous_arp(
            &mut foreign,
            EthernetAddress([2, 0, 0, 0, 0, 9]),
            "192.0.2.11".parse().unwrap(),
            arp::Operation::Request,
        );
        check(0, &foreign[..len], DropReason::Conflict);

        let mut out = [0u8; MAX_FRAME];
        assert_eq!(
            r.process_arp(0, PACKET_OUTGOING, &ARP_REQUEST, &mut out),
            Verdict::Drop(DropReason::NotForUs)
        );
        assert_eq!(r.counters.dropped(DropReason::Truncated), 3);
        assert_eq!(r.counters.arp_replies_sent, 0);
        // Still answering afterwards.
        assert_eq!(arp(&mut r, 0, &ARP_REQUEST).0, Verdict::Reply(60));
    }

    #[test]
    fn answers_ns_like_the_kernel() {
        let mut r = responder(Instant::now());
        let (verdict, out) = ndp(&mut r, 0, &NS);
        assert_eq!(verdict, Verdict::Reply(86));
        assert_eq!(out[..86], NA[..]);
        assert_eq!(r.counters.na_sent, 1);

        // Unicast NUD (to the VIP itself, eth dst our MAC, no SLLA option).
        let mut nud = [0u8; 78];
        nud.copy_from_slice(&NS[..78]);
        nud[..6].copy_from_slice(NODE.as_bytes());
        nud[19] = 24;
        nud[38..54].copy_from_slice(&"2001:db8::11".parse::<Ipv6Addr>().unwrap().octets());
        refill(&mut nud);
        let mut out = [0u8; MAX_FRAME];
        assert_eq!(r.process_ndp(0, HOST, &nud, &mut out), Verdict::Reply(86));
        assert_eq!(&out[..6], &NS[6..12], "answered to the frame's source");
    }

    #[test]
    fn a_router_says_so_in_its_neighbor_advertisements() {
        let now = Instant::now();
        let router = Interface {
            name: "eth0".into(),
            mac: NODE,
            router: true,
        };
        let mut r = Responder::new(vec![router], Announce::default());
        r.set_owned(now, &[vip("2001:db8::11", 0)]);
        // The flags byte: Ethernet 14, IPv6 40, then ICMPv6 type, code,
        // checksum.
        let (verdict, out) = ndp(&mut r, 0, &NS);
        assert_eq!(verdict, Verdict::Reply(86));
        assert_eq!(out[58], 0xe0, "R, S and O");
        let mut flags = Vec::new();
        r.announce_due(now, |_, frame| {
            flags.push(frame[58]);
            Sent::Ok
        });
        assert_eq!(flags, [0xa0], "unsolicited: R and O");
        // A host's (the usual NA) says R=0.
        let mut host = responder(now);
        assert_eq!(ndp(&mut host, 0, &NS).1[58], 0x60);
    }

    #[test]
    fn a_vip_with_its_own_mac_is_answered_and_announced_with_it() {
        const VMAC: EthernetAddress = EthernetAddress([0x4a, 0xbf, 0x53, 0x03, 0xd7, 0xfd]);
        let now = Instant::now();
        let mut r = responder(now);
        let mut v4 = vip("192.0.2.11", 0);
        v4.mac = Some(VMAC);
        let v6 = vip("2001:db8::11", 0);
        // The MAC changed: a fresh burst, as if acquired.
        assert_eq!(r.set_owned(now, &[v4, v6]), (1, 0));
        let (verdict, out) = arp(&mut r, 0, &ARP_REQUEST);
        assert_eq!(verdict, Verdict::Reply(60));
        assert_eq!(&out[6..12], VMAC.as_bytes(), "Ethernet source");
        let reply = arp::Repr::parse(&arp::Packet::new_checked(&out[14..60]).unwrap()).unwrap();
        assert_eq!(reply.source_hardware_addr, VMAC);
        // The other VIP keeps the interface's MAC.
        let (_, out) = ndp(&mut r, 0, &NS);
        assert_eq!(out[..86], NA[..]);
        // Announcements: the VIP's MAC for web, the interface's for web6.
        let mut sources = Vec::new();
        r.announce_due(now, |_, frame| {
            sources.push((frame[12..14].to_vec(), frame[6..12].to_vec()));
            Sent::Ok
        });
        assert!(
            sources.contains(&(vec![0x08, 0x06], VMAC.as_bytes().to_vec())),
            "{sources:?}"
        );
        assert!(!sources
            .iter()
            .any(|(kind, mac)| kind == &[0x08, 0x06] && mac == NODE.as_bytes()));
        // A frame from that MAC is ours (a split brain's other half).
        let mut from_vmac = ARP_REQUEST;
        from_vmac[22..28].copy_from_slice(VMAC.as_bytes());
        assert_eq!(
            arp(&mut r, 0, &from_vmac).0,
            Verdict::Drop(DropReason::OwnFrame)
        );
        // Back to the interface's MAC: announced afresh, answered with it.
        assert_eq!(
            r.set_owned(now, &[vip("192.0.2.11", 0), vip("2001:db8::11", 0)]),
            (1, 0)
        );
        let (_, out) = arp(&mut r, 0, &ARP_REQUEST);
        assert_eq!(out[..42], ARP_REPLY[..]);
    }

    /// Node 2's gratuitous ARP (a reply) claiming 192.0.2.11, which is ours.
    fn node2_claims_our_vip() -> [u8; ARP_REPLY.len()] {
        let mut claim = ARP_REPLY;
        claim[11] = 2;
        claim[27] = 2;
        claim[31] = 11;
        claim[32..38].copy_from_slice(&[0xff; 6]);
        claim[38..42].copy_from_slice(&[192, 0, 2, 11]);
        claim
    }

    #[test]
    fn a_claim_is_judged_on_the_address_hosts_learn_not_the_ethernet_source() {
        let start = Instant::now();
        let mut r = responder(start);
        r.set_judge_after(Duration::from_millis(200));
        let rogue = EthernetAddress([0x02, 0x4c, 0x32, 0x00, 0x00, 0x09]);
        let drop = |reason| Verdict::Drop(reason);
        // Our Ethernet source, a foreign ARP sender claiming our VIP: hosts
        // learn the ARP sender, so it is a claim by it.
        let mut claim = node2_claims_our_vip();
        claim[6..12].copy_from_slice(NODE.as_bytes());
        claim[22..28].copy_from_slice(rogue.as_bytes());
        assert_eq!(arp(&mut r, 0, &claim).0, drop(DropReason::Conflict));
        // The reverse says the VIP is at our MAC: no claim.
        let mut ours = node2_claims_our_vip();
        ours[22..28].copy_from_slice(NODE.as_bytes());
        assert_eq!(arp(&mut r, 0, &ours).0, drop(DropReason::OwnFrame));
        // An NS sent from our IPv6 VIP for another address, its Source
        // Link-Layer Address foreign: its receiver learns the VIP there.
        let mut from_vip = NS;
        from_vip[22..38].copy_from_slice(&NS[62..78]);
        from_vip[77] = 0x99;
        from_vip[80..86].copy_from_slice(rogue.as_bytes());
        refill(&mut from_vip);
        assert_eq!(ndp(&mut r, 0, &from_vip).0, drop(DropReason::Conflict));
        let judged = start + Duration::from_millis(200);
        r.judge_claims(start);
        let logged = r.judge_claims(judged).log;
        let claimed: Vec<(String, EthernetAddress)> =
            logged.iter().map(|c| (c.ip.to_string(), c.mac)).collect();
        assert_eq!(
            claimed,
            [
                ("192.0.2.11".to_string(), rogue),
                ("2001:db8::11".to_string(), rogue)
            ]
        );
        assert_eq!(r.counters.conflicts, 2);
    }

    #[test]
    fn claims_on_owned_vips_are_judged_counted_and_defended_at_most_every_ten_seconds() {
        let start = Instant::now();
        let mut r = responder(start);
        r.set_judge_after(Duration::from_millis(200));
        let claim = node2_claims_our_vip();
        assert_eq!(
            arp(&mut r, 0, &claim).0,
            Verdict::Drop(DropReason::Conflict)
        );
        let claimant = EthernetAddress([0x02, 0x4c, 0x32, 0x00, 0x00, 0x02]);
        // Judged only after the election had its time.
        assert!(r.judge_claims(start).log.is_empty());
        assert_eq!(r.counters.conflicts, 0);
        // Drain the acquisition burst's first round, then see the defence alone.
        r.announce_due(start, |_, _| Sent::Ok);
        assert_eq!(r.poll_at(), Some(start + Duration::from_millis(200)));
        let judged = start + Duration::from_millis(200);
        let logged = r.judge_claims(judged).log;
        assert_eq!(logged.len(), 1);
        assert_eq!((logged[0].mac, logged[0].count), (claimant, 1));
        assert_eq!(r.counters.conflicts, 1);
        assert_eq!(r.counters.conflict_defences, 1);
        let mut frames = 0;
        r.announce_due(judged, |_, _| {
            frames += 1;
            Sent::Ok
        });
        assert_eq!(frames, 2, "one round: request and reply form");
        // Again within ten seconds: counted, not logged, not defended.
        let soon = judged + Duration::from_secs(3);
        arp(&mut r, 0, &claim);
        r.judge_claims(soon);
        assert!(r
            .judge_claims(soon + Duration::from_millis(200))
            .log
            .is_empty());
        assert_eq!((r.counters.conflicts, r.counters.conflict_defences), (2, 1));
        assert_eq!(r.conflicts().len(), 1);
        assert_eq!(r.conflicts()[0].count, 2);
        // Ten seconds after the defence: defended again.
        let later_on = judged + DEFEND_EVERY;
        arp(&mut r, 0, &claim);
        r.judge_claims(later_on);
        assert_eq!(
            r.judge_claims(later_on + Duration::from_millis(200))
                .log
                .len(),
            1
        );
        assert_eq!(r.counters.conflict_defences, 2);
        // A VIP another cluster node claims too: a split brain.
        r.set_contested(vec!["192.0.2.11".parse().unwrap()]);
        arp(&mut r, 0, &claim);
        let t = later_on + Duration::from_secs(1);
        r.judge_claims(t);
        r.judge_claims(t + Duration::from_millis(200));
        assert_eq!(
            (r.counters.conflicts, r.counters.split_brain_claims),
            (3, 1)
        );
        // An IPv4 probe and an IPv6 DAD for our VIPs are claims too.
        r.set_contested(Vec::new());
        let mut probe = ARP_REQUEST;
        probe[28..32].copy_from_slice(&[0, 0, 0, 0]);
        assert!(matches!(arp(&mut r, 0, &probe).0, Verdict::Reply(_)));
        let t = t + Duration::from_secs(1);
        r.judge_claims(t);
        r.judge_claims(t + Duration::from_millis(200));
        assert_eq!(r.counters.conflicts, 4);
        // Claims on a VIP released meanwhile are dropped unjudged.
        arp(&mut r, 0, &claim);
        r.judge_claims(t);
        r.set_owned(t, &[]);
        r.judge_claims(t + Duration::from_secs(1));
        assert_eq!(r.counters.conflicts, 4);
    }

    #[test]
    fn a_host_claiming_fifty_times_a_second_is_counted_logged_and_defended() {
        // One host poisoning caches: 1000 claims at 50 a second, the loop
        // judging every 20 ms, claims judged after two heartbeat intervals.
        let start = Instant::now();
        let mut r = responder(start);
        r.set_judge_after(Duration::from_secs(2));
        let claim = node2_claims_our_vip();
        let mut logged = 0;
        for tick in 0..1150u64 {
            let now = start + Duration::from_millis(20 * tick);
            if tick < 1000 {
                arp(&mut r, 0, &claim);
            }
            logged += r.judge_claims(now).log.len();
        }
        assert_eq!(r.counters.conflicts, 1000, "every claim counted");
        assert_eq!(r.conflicts()[0].count, 1000);
        // Logged and defended at most every ten seconds over 20 s of claims.
        assert!((2..=3).contains(&logged), "logged {logged} times");
        assert!(
            (2..=3).contains(&r.counters.conflict_defences),
            "defended {} times",
            r.counters.conflict_defences
        );
    }

    #[test]
    fn claims_from_a_thousand_macs_log_a_few_lines_and_a_sum() {
        let start = Instant::now();
        let mut r = responder(start);
        r.set_judge_after(Duration::from_millis(10));
        let mut claim = node2_claims_our_vip();
        let (mut lines, mut summed) = (0, 0);
        // A claim from a fresh MAC every 20 ms for 20 s, then quiet.
        for tick in 0..1500u64 {
            let now = start + Duration::from_millis(20 * tick);
            if tick < 1000 {
                let mac = [0x02, 0x99, 0, 0, (tick >> 8) as u8, tick as u8];
                claim[6..12].copy_from_slice(&mac);
                claim[22..28].copy_from_slice(&mac);
                arp(&mut r, 0, &claim);
            }
            let claims = r.judge_claims(now);
            lines += claims.log.len();
            summed += claims.unlogged.iter().map(|(_, n)| n).sum::<u64>();
            assert!(claims
                .unlogged
                .iter()
                .all(|(ip, _)| ip.to_string() == "192.0.2.11"));
        }
        assert_eq!(r.counters.conflicts, 1000, "every claim counted");
        // At most 4 lines per 10 s: 20 s of claims give 8, and the rest is
        // summed up, one line per VIP per period.
        assert!(lines <= 12, "{lines} lines");
        assert_eq!(lines as u64 + summed, 1000);
    }

    #[test]
    fn answers_dad_to_all_nodes() {
        let mut r = responder(Instant::now());
        r.set_owned(Instant::now(), &[vip("fe80::b07b:53ff:fe86:7ba9", 0)]);
        let (verdict, out) = ndp(&mut r, 0, &DAD_NS);
        assert_eq!(verdict, Verdict::Reply(86));
        assert_eq!(&out[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let packet = ipv6::Packet::new_checked(&out[14..86]).unwrap();
        assert_eq!(packet.destination(), ipv6::ALL_NODES);
        let message = icmpv6::Packet::new_checked(packet.payload()).unwrap();
        let flags = message.advert_flags();
        assert!(!flags.solicited && flags.override_ && !flags.router);
    }

    #[test]
    fn ndp_drops() {
        let mut r = responder(Instant::now());
        let mut check = |slot: usize, frame: &[u8], reason: DropReason| {
            let (verdict, _) = ndp(&mut r, slot, frame);
            assert_eq!(verdict, Verdict::Drop(reason), "{reason:?}");
        };
        let mut hop = NS;
        hop[21] = 64;
        check(0, &hop, DropReason::HopLimit);
        let mut sum = NS;
        sum[56] ^= 0xff;
        check(0, &sum, DropReason::Checksum);
        let mut zero_option = NS;
        zero_option[79] = 0;
        refill(&mut zero_option);
        check(0, &zero_option, DropReason::NdpFormat);
        let mut code = NS;
        code[55] = 3;
        refill(&mut code);
        check(0, &code, DropReason::NdpFormat);
        check(0, &NS[..60], DropReason::Truncated);
        check(0, &NS[..1], DropReason::Truncated);
        check(1, &NS, DropReason::OtherInterface);
        // Another host advertising our VIP: a claim.
        let mut advert = NA;
        advert[11] = 2;
        advert[85] = 2;
        refill(&mut advert);
        check(0, &advert, DropReason::Conflict);
        // Our own advertisement, looped back from a bridge: ours.
        check(0, &NA, DropReason::OwnFrame);
        // Advertising an address we do not own: nothing to do.
        check(1, &advert, DropReason::NotRequest);
        let mut version = NS;
        version[14] = 0x45;
        check(0, &version, DropReason::Ipv6Format);
        // DAD with a Source Link-Layer Address option is invalid.
        let mut dad_slla = NS;
        dad_slla[22..38].fill(0);
        refill(&mut dad_slla);
        check(0, &dad_slla, DropReason::NdpFormat);
        // Someone else's DAD (not a VIP).
        check(0, &DAD_NS, DropReason::NotOwned);
        assert_eq!(ndp(&mut r, 0, &NS).0, Verdict::Reply(86));
    }

    #[test]
    fn burst_then_refresh_then_release() {
        let t0 = Instant::now();
        let mut r = responder(t0);
        assert_eq!(r.poll_at(), Some(t0));
        let mut sent: Vec<(usize, Vec<u8>)> = Vec::new();
        let interval = Duration::from_millis(1100);
        let mut now = t0;
        for round in 0..5 {
            assert_eq!(r.poll_at(), Some(now), "round {round}");
            r.announce_due(now, |slot, frame| {
                sent.push((slot, frame.to_vec()));
                Sent::Ok
            });
            now += interval;
        }
        // Two ARP forms and one NA per round.
        assert_eq!(sent.len(), 15);
        assert_eq!(r.counters.gratuitous_arp_sent, 10);
        assert_eq!(r.counters.unsolicited_na_sent, 5);
        let last_round = t0 + interval * 4;
        assert_eq!(r.poll_at(), Some(last_round + Duration::from_secs(60)));

        let forms: Vec<_> = sent[..3]
            .iter()
            .filter_map(|(_, frame)| arp::Packet::new_checked(&frame[14..]).ok())
            .filter_map(|p| arp::Repr::parse(&p).ok())
            .map(|repr| {
                (
                    repr.operation,
                    repr.is_gratuitous(),
                    repr.source_hardware_addr,
                )
            })
            .collect();
        assert!(forms.contains(&(arp::Operation::Request, true, NODE)));
        assert!(forms.contains(&(arp::Operation::Reply, true, NODE)));
        let na = sent[..3]
            .iter()
            .find(|(_, f)| f[12..14] == [0x86, 0xdd])
            .unwrap();
        assert_eq!(&na.1[..6], &[0x33, 0x33, 0, 0, 0, 1]);

        // Nothing due early; unchanged ownership keeps its schedule.
        r.announce_due(now, |_, _| panic!("nothing is due"));
        r.set_owned(now, &[vip("192.0.2.11", 0), vip("2001:db8::11", 0)]);
        assert_eq!(r.poll_at(), Some(last_round + Duration::from_secs(60)));

        // Release: neither answered nor announced.
        assert_eq!(r.set_owned(now, &[]), (0, 2));
        assert_eq!(r.poll_at(), None);
        assert_eq!(
            arp(&mut r, 0, &ARP_REQUEST).0,
            Verdict::Drop(DropReason::NotOwned)
        );

        // Re-acquire: a new burst at once; a link coming back restarts it.
        assert_eq!(r.set_owned(now, &[vip("192.0.2.11", 0)]), (1, 0));
        assert_eq!(r.poll_at(), Some(now));
        r.announce_due(now, |_, _| Sent::Ok);
        r.reannounce(now + interval, 0);
        assert_eq!(r.poll_at(), Some(now + interval));
    }

    #[test]
    fn no_refresh_when_off() {
        let t0 = Instant::now();
        let announce = Announce {
            count: 1,
            interval_ms: 1100,
            refresh_s: 0,
        };
        let mut r = Responder::new(
            vec![Interface {
                name: "eth0".into(),
                mac: NODE,
                router: false,
            }],
            announce,
        );
        r.set_owned(t0, &[vip("192.0.2.11", 0)]);
        r.announce_due(t0, |_, _| Sent::Failed);
        assert_eq!(r.counters.send_errors, 2);
        assert_eq!(r.poll_at(), None);
    }

    #[test]
    fn big_bursts_are_paced() {
        let t0 = Instant::now();
        let mut r = responder(t0);
        let vips: Vec<OwnedVip> = (0..1000)
            .map(|i| vip(&format!("2001:db8::1:{i:x}"), 0))
            .collect();
        r.set_owned(t0, &vips);
        let mut batches = Vec::new();
        let mut now = t0;
        let mut last = t0;
        while r.counters.unsolicited_na_sent < 1000 && batches.len() < 100 {
            let mut count = 0;
            r.announce_due(now, |_, _| {
                count += 1;
                Sent::Ok
            });
            batches.push(count);
            last = now;
            now = r.poll_at().expect("more to send");
        }
        assert!(
            batches.iter().all(|b| *b <= FRAMES_PER_BATCH),
            "{batches:?}"
        );
        assert_eq!(batches.len(), 1000_usize.div_ceil(FRAMES_PER_BATCH));
        assert!(last - t0 <= SEND_BACKOFF * 8, "{:?}", last - t0);
    }

    #[test]
    fn a_full_send_buffer_delays_announcements_and_loses_none() {
        let t0 = Instant::now();
        let mut r = responder(t0);
        let vips: Vec<OwnedVip> = (0..100)
            .map(|i| vip(&format!("2001:db8::1:{i:x}"), 0))
            .collect();
        r.set_owned(t0, &vips);
        // The socket takes 30 frames, then is full.
        let mut room = 30;
        let mut sent = std::collections::HashSet::new();
        let mut feed = |r: &mut Responder, now: Instant, room: &mut usize| {
            r.announce_due(now, |_, frame| {
                if *room == 0 {
                    return Sent::Full;
                }
                *room -= 1;
                sent.insert(frame[62..78].to_vec());
                Sent::Ok
            });
        };
        feed(&mut r, t0, &mut room);
        assert_eq!(r.poll_at(), Some(t0 + SEND_BACKOFF), "paused, not spinning");
        feed(&mut r, t0, &mut room);
        assert_eq!(room, 0, "nothing more before the backoff");
        let mut now = t0;
        for _ in 0..10 {
            now += SEND_BACKOFF;
            room = 30;
            feed(&mut r, now, &mut room);
        }
        assert_eq!(sent.len(), 100, "every VIP announced once its turn came");
        assert_eq!(r.counters.send_errors, 0);
        assert_eq!(r.counters.unsolicited_na_sent, 100);
    }
}
