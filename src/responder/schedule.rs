//! The announcement schedule: a burst of gratuitous ARP / unsolicited NA
//! rounds when a VIP is taken, a refresh round now and then, and extra
//! rounds on request (a link came back, a conflict to defend), paced so a
//! thousand VIPs never overflow a send buffer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::logic::{emit_arp, emit_na, Interface, OwnedVip, MAX_FRAME};
use crate::config::Announce;
use crate::counters::Counters;
use crate::wire::{arp, icmpv6, ipv6, EthernetAddress};

/// What became of one announcement frame handed to the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// On its way.
    Ok,
    /// Failed for good (counted); the round goes on.
    Failed,
    /// The socket's send buffer is full: the round stops here and goes on
    /// after `SEND_BACKOFF`, where it stopped.
    Full,
}

/// How long a full send buffer, or a full batch, pauses announcements.
pub const SEND_BACKOFF: Duration = Duration::from_millis(1);
/// Announcement frames sent back to back before `SEND_BACKOFF`: a burst
/// for 1000 VIPs (3000 frames) is paced over ~25 ms instead of
/// overflowing the queues between here and the clients (the same frames
/// would be lost in every round).
pub const FRAMES_PER_BATCH: usize = 128;

#[derive(Debug, Clone, Copy)]
struct Announcing {
    vip: OwnedVip,
    /// Rounds of the current burst still to send.
    rounds_left: u32,
    /// When the next round (burst or refresh) is due; `None`: nothing more.
    next_at: Option<Instant>,
}

/// The rounds due for every owned VIP.
#[derive(Debug)]
pub(super) struct Schedule {
    announce: Announce,
    entries: Vec<Announcing>,
    /// A send buffer was full: no announcement before this instant.
    blocked_until: Option<Instant>,
}

impl Schedule {
    pub(super) fn new(announce: Announce) -> Schedule {
        Schedule {
            announce,
            entries: Vec::new(),
            blocked_until: None,
        }
    }

    /// Keeps the VIPs `keep` says yes to; returns how many went.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&OwnedVip) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|entry| keep(&entry.vip));
        self.entries.shrink_to_fit();
        before - self.entries.len()
    }

    /// A newly owned VIP: its burst starts now (or, with no burst, its
    /// first refresh is scheduled).
    pub(super) fn start(&mut self, now: Instant, vip: OwnedVip) {
        let count = self.announce.count;
        self.entries.push(Announcing {
            vip,
            rounds_left: count,
            next_at: (count > 0)
                .then_some(now)
                .or_else(|| self.announce.refresh().map(|r| now + r)),
        });
    }

    /// A new burst for every VIP `which` says yes to.
    pub(super) fn burst(&mut self, now: Instant, which: impl Fn(&OwnedVip) -> bool) {
        let count = self.announce.count;
        for entry in self.entries.iter_mut().filter(|a| which(&a.vip)) {
            entry.rounds_left = count;
            entry.next_at = Some(now);
        }
    }

    /// One round for `ip` now, on top of whatever is scheduled.
    pub(super) fn kick(&mut self, now: Instant, ip: IpAddr) {
        for entry in self.entries.iter_mut().filter(|a| a.vip.ip == ip) {
            entry.rounds_left = entry.rounds_left.max(1);
            entry.next_at = Some(now);
        }
    }

    /// When the next round is due.
    pub(super) fn poll_at(&self) -> Option<Instant> {
        let due = self.entries.iter().filter_map(|a| a.next_at).min()?;
        Some(self.blocked_until.map_or(due, |until| due.max(until)))
    }

    /// Emits every round due at `now` through `send(slot, frame)`,
    /// counting each frame. A full send buffer or batch pauses the rest,
    /// and they go out after `SEND_BACKOFF`, none skipped.
    pub(super) fn due(
        &mut self,
        now: Instant,
        interfaces: &[Interface],
        counters: &mut Counters,
        mut send: impl FnMut(usize, &[u8]) -> Sent,
    ) {
        if self.blocked_until.is_some_and(|until| now < until) {
            return;
        }
        self.blocked_until = None;
        let mut buffer = [0u8; MAX_FRAME];
        let mut frames = 0;
        for index in 0..self.entries.len() {
            let entry = self.entries[index];
            if !entry.next_at.is_some_and(|at| at <= now) {
                continue;
            }
            if frames >= FRAMES_PER_BATCH {
                self.blocked_until = Some(later(now, SEND_BACKOFF));
                return;
            }
            frames += if entry.vip.ip.is_ipv4() { 2 } else { 1 };
            let Some(interface) = interfaces.get(entry.vip.slot) else {
                continue;
            };
            let mac = entry.vip.mac.unwrap_or(interface.mac);
            let slot = entry.vip.slot;
            let full = match entry.vip.ip {
                IpAddr::V4(ip) => [arp::Operation::Request, arp::Operation::Reply]
                    .into_iter()
                    .any(|operation| {
                        let len = gratuitous_arp(&mut buffer, mac, ip, operation);
                        count_sent(counters, send(slot, &buffer[..len]), true)
                    }),
                IpAddr::V6(ip) => {
                    let len = unsolicited_na(&mut buffer, mac, ip, interface.router);
                    count_sent(counters, send(slot, &buffer[..len]), false)
                }
            };
            if full {
                // This entry stays due; it and the rest go out shortly.
                self.blocked_until = Some(later(now, SEND_BACKOFF));
                return;
            }
            self.advance(index, now);
        }
    }

    /// A round of entry `index` went out at `now`: schedule the next.
    fn advance(&mut self, index: usize, now: Instant) {
        let interval = self.announce.interval();
        let refresh = self.announce.refresh();
        let entry = &mut self.entries[index];
        entry.rounds_left = entry.rounds_left.saturating_sub(1);
        entry.next_at = if entry.rounds_left > 0 {
            Some(later(now, interval))
        } else {
            refresh.map(|r| later(now, r))
        };
    }
}

/// Counts one send; true when the socket was full.
fn count_sent(counters: &mut Counters, sent: Sent, ipv4: bool) -> bool {
    match (sent, ipv4) {
        (Sent::Full, _) => return true,
        (Sent::Failed, _) => counters.send_errors += 1,
        (Sent::Ok, true) => counters.gratuitous_arp_sent += 1,
        (Sent::Ok, false) => counters.unsolicited_na_sent += 1,
    }
    false
}

/// `now + after`, or `now` where that does not fit.
pub(super) fn later(now: Instant, after: Duration) -> Instant {
    now.checked_add(after).unwrap_or(now)
}

/// A gratuitous ARP for `ip` in request or reply form (RFC 5227 §3,
/// RFC 5944 §4.6): sender and target address both `ip`, broadcast.
pub fn gratuitous_arp(
    out: &mut [u8; MAX_FRAME],
    mac: EthernetAddress,
    ip: Ipv4Addr,
    operation: arp::Operation,
) -> usize {
    let repr = arp::Repr {
        operation,
        source_hardware_addr: mac,
        source_protocol_addr: ip,
        target_hardware_addr: match operation {
            arp::Operation::Reply => mac,
            _ => EthernetAddress::default(),
        },
        target_protocol_addr: ip,
    };
    emit_arp(out, EthernetAddress::BROADCAST, &repr)
}

/// An unsolicited NA for `ip` to all nodes, O=1 (RFC 4861 §7.2.6); R=1
/// from a `router`.
pub fn unsolicited_na(
    out: &mut [u8; MAX_FRAME],
    mac: EthernetAddress,
    ip: Ipv6Addr,
    router: bool,
) -> usize {
    let advert = icmpv6::Repr::NeighborAdvert {
        flags: icmpv6::AdvertFlags {
            router,
            solicited: false,
            override_: true,
        },
        target: ip,
        target_lladdr: Some(mac),
    };
    let group = EthernetAddress::ipv6_multicast(&ipv6::ALL_NODES.octets());
    emit_na(out, mac, group, ip, ipv6::ALL_NODES, &advert)
}
