//! The heartbeat socket: opened (unicast peers, a multicast group),
//! read (each datagram checked, authenticated and handed to the policy, or
//! dropped and counted by reason) and written.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::UdpSocket;

use super::{ElectionThread, DATAGRAMS_PER_WAKE};
use crate::config::Config;
use crate::election::policy::{Outputs, Reject};
use crate::sys::{iface, udp};
use crate::wire::heartbeat::{self, Repr};
use crate::wire::Error as WireError;

reasons! {
    /// Why a received heartbeat was dropped.
    pub enum Rejection {
        /// Shorter than its headers say.
        Truncated = "truncated",
        /// A version this node does not speak.
        Version = "version",
        /// A field out of its range.
        Malformed = "malformed",
        /// Longer than any heartbeat.
        Oversized = "oversized",
        /// No MAC, though a key is configured.
        Unauthenticated = "unauthenticated",
        /// A MAC that does not verify.
        BadMac = "bad_mac",
        /// A MAC, though no key is configured.
        UnexpectedMac = "unexpected_mac",
        /// From another cluster.
        OtherCluster = "other_cluster",
        /// Our own (multicast loopback).
        Own = "own",
        /// Another process uses our node name.
        DuplicateNode = "duplicate_node",
        /// Not newer than what its sender sent before.
        Replay = "replay",
        /// Its digest matches ours but its service count does not.
        Inconsistent = "inconsistent",
        /// A new node while the peer table is full of live ones.
        TooManyPeers = "too_many_peers",
        /// From an address that is none of the configured peers' (a node
        /// without a multicast group hears its peers only).
        NotAPeer = "not_a_peer",
        /// Arrived with a TTL or hop limit under 255, so from beyond the
        /// link (GTSM, RFC 5082).
        OffLink = "off_link",
    }
}

impl From<WireError> for Rejection {
    fn from(error: WireError) -> Rejection {
        match error {
            WireError::Truncated => Rejection::Truncated,
            WireError::Unsupported => Rejection::Version,
            WireError::Malformed | WireError::Checksum => Rejection::Malformed,
        }
    }
}

impl From<Reject> for Rejection {
    fn from(reject: Reject) -> Rejection {
        match reject {
            Reject::Cluster => Rejection::OtherCluster,
            Reject::Own => Rejection::Own,
            Reject::DuplicateNode => Rejection::DuplicateNode,
            Reject::Replay => Rejection::Replay,
            Reject::Inconsistent => Rejection::Inconsistent,
            Reject::TooManyPeers => Rejection::TooManyPeers,
        }
    }
}

/// The election's counters (plain u64s owned by its thread).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) sent: u64,
    pub(super) received: u64,
    pub(super) send_errors: u64,
    pub(super) ownership_changes: u64,
    pub(super) rejected: [u64; Rejection::COUNT],
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "heartbeats_sent={} heartbeats_received={} heartbeat_send_errors={} ownership_changes={}",
            self.sent, self.received, self.send_errors, self.ownership_changes
        )?;
        for (reason, count) in Rejection::ALL.iter().zip(self.rejected) {
            write!(f, " heartbeat_rejected.{}={count}", reason.name())?;
        }
        Ok(())
    }
}

impl ElectionThread {
    /// Reads up to the per-wake cap; true when the socket is empty.
    pub(super) fn receive(&mut self, buffer: &mut [u8]) -> bool {
        let Some(socket) = self.socket.take() else {
            return true;
        };
        let mut outputs = Outputs::default();
        let drained = self.receive_from(&socket, buffer, &mut outputs);
        self.socket = Some(socket);
        self.carry_out(Instant::now(), outputs);
        drained
    }

    fn receive_from(
        &mut self,
        socket: &UdpSocket,
        buffer: &mut [u8],
        outputs: &mut Outputs,
    ) -> bool {
        for _ in 0..DATAGRAMS_PER_WAKE {
            let datagram = match udp::receive(socket, buffer) {
                Ok(datagram) => datagram,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("heartbeat receive failed: {e}");
                    return true;
                }
            };
            let from = datagram.from;
            let verdict = if datagram.hops != Some(udp::LINK_HOPS) {
                Err(Rejection::OffLink)
            } else if !self.may_hear(from.ip()) {
                Err(Rejection::NotAPeer)
            } else if datagram.truncated || datagram.len >= buffer.len() {
                Err(Rejection::Oversized)
            } else {
                self.accept(&buffer[..datagram.len])
            };
            match verdict {
                Ok(accepted) => {
                    self.counters.received += 1;
                    outputs.absorb(accepted);
                }
                Err(rejection) => {
                    self.counters.rejected[rejection.index()] += 1;
                    if rejection != Rejection::Own {
                        self.log_rejection(from, rejection);
                    }
                }
            }
        }
        false
    }

    fn accept(&mut self, datagram: &[u8]) -> Result<Outputs, Rejection> {
        let beat = Repr::parse(datagram)?;
        match &self.key {
            Some(_) if !heartbeat::is_authenticated(datagram) => {
                return Err(Rejection::Unauthenticated)
            }
            Some(key) if !heartbeat::verify(datagram, key) => return Err(Rejection::BadMac),
            None if heartbeat::is_authenticated(datagram) => return Err(Rejection::UnexpectedMac),
            _ => {}
        }
        let now = Instant::now();
        let outputs = self.policy.on_heartbeat(now, &beat)?;
        let mismatched: BTreeSet<String> = self
            .policy
            .digest_mismatches()
            .map(str::to_string)
            .collect();
        for peer in mismatched.difference(&self.mismatched) {
            warn!(
                "{peer}: its service list differs from ours (digest); no new claims while it is alive: \
                 give every node the same services"
            );
        }
        self.mismatched = mismatched;
        Ok(outputs)
    }

    /// Whether a heartbeat from `source` is heard at all: from a configured
    /// peer's address, or from anyone on the link with a multicast group.
    fn may_hear(&self, source: IpAddr) -> bool {
        match &self.heard_from {
            None => true,
            Some(peers) => peers.contains(&plain(source)),
        }
    }

    fn log_rejection(&mut self, from: SocketAddr, rejection: Rejection) {
        let now = Instant::now();
        match self.last_log {
            Some(last) if now.saturating_duration_since(last) < Duration::from_secs(10) => {
                self.suppressed += 1
            }
            _ => {
                let more = std::mem::take(&mut self.suppressed);
                let more = if more > 0 {
                    format!(" ({more} more drops since the last report)")
                } else {
                    String::new()
                };
                warn!(
                    "dropped a heartbeat from {from}: {}{more}",
                    rejection.name()
                );
                self.last_log = Some(now);
            }
        }
    }

    pub(super) fn send(&mut self, now: Instant) {
        let key = self.key.as_deref();
        let beat = self.policy.heartbeat(now, &mut self.scratch);
        let out = &mut self.out;
        let len = match beat.emit(out, key) {
            Ok(len) => len,
            Err(e) => {
                warn!("cannot build a heartbeat: {e}");
                return;
            }
        };
        let Some(socket) = self.socket.as_ref() else {
            return;
        };
        for destination in &self.destinations {
            match socket.send_to(&out[..len], *destination) {
                Ok(_) => self.counters.sent += 1,
                Err(e) => {
                    self.counters.send_errors += 1;
                    debug!("heartbeat to {destination} failed: {e}");
                }
            }
        }
    }
}

/// Opens the heartbeat socket: bound to the port, joined to the group if
/// any. Returns it with the destinations of every heartbeat.
pub(super) fn open_socket(config: &Config) -> io::Result<(StdUdpSocket, Vec<SocketAddr>)> {
    let heartbeat = &config.heartbeat;
    let context = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("heartbeat socket: {what}: {e}"))
    };
    let v6 = match (&heartbeat.multicast, heartbeat.bind) {
        (_, Some(bind)) => bind.is_ipv6(),
        (Some(multicast), None) => multicast.group.is_ipv6(),
        (None, None) => heartbeat.peers.iter().any(|p| p.is_ipv6()),
    };
    let bind = heartbeat.bind.unwrap_or(if v6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    });
    let socket = StdUdpSocket::bind(SocketAddr::new(bind, heartbeat.port))
        .map_err(|e| context("bind", e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| context("non-blocking", e))?;
    udp::link_only(&socket, v6).map_err(|e| context("TTL 255 (GTSM)", e))?;
    let mut destinations = Vec::new();
    for peer in &heartbeat.peers {
        destinations.push(match (v6, peer) {
            (true, SocketAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
            (false, SocketAddr::V6(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("heartbeat peer {peer}: IPv6 peer on an IPv4 socket; set heartbeat.bind to an IPv6 address"),
                ))
            }
            _ => *peer,
        });
    }
    if let Some(multicast) = &heartbeat.multicast {
        let ifindex = iface::index(&multicast.interface).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface named {:?}", multicast.interface),
            )
        })?;
        match multicast.group {
            IpAddr::V4(group) => {
                udp::join_v4(&socket, group, ifindex).map_err(|e| context("join group", e))?;
                udp::multicast_interface_v4(&socket, ifindex)
                    .map_err(|e| context("multicast interface", e))?;
                socket
                    .set_multicast_loop_v4(false)
                    .map_err(|e| context("multicast loop", e))?;
            }
            IpAddr::V6(group) => {
                socket
                    .join_multicast_v6(&group, ifindex)
                    .map_err(|e| context("join group", e))?;
                udp::multicast_interface_v6(&socket, ifindex)
                    .map_err(|e| context("multicast interface", e))?;
                socket
                    .set_multicast_loop_v6(false)
                    .map_err(|e| context("multicast loop", e))?;
            }
        }
        destinations.push(SocketAddr::new(multicast.group, heartbeat.port));
    }
    Ok((socket, destinations))
}

/// `ip` with an IPv4-mapped IPv6 address (an IPv4 peer on an IPv6 socket)
/// written as the IPv4 address it is.
pub(super) fn plain(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses heartbeats are heard from: the unicast peers', or any
/// (`None`) when a multicast group brings heartbeats from the whole link.
pub(super) fn heard_from(config: &Config) -> Option<Vec<IpAddr>> {
    let heartbeat = &config.heartbeat;
    if heartbeat.multicast.is_some() {
        return None;
    }
    Some(
        heartbeat
            .peers
            .iter()
            .map(|peer| plain(peer.ip()))
            .collect(),
    )
}
