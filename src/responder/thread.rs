//! The responder thread: one ARP and one NDP packet socket per interface,
//! a mio loop, and the pure `Responder` deciding what to send.

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::conflicts::DEFEND_EVERY;
use super::logic::{Interface, OwnedVip, Responder, Verdict, MAX_FRAME};
use super::schedule::Sent;
use crate::channel::{mailbox, wait, Inbox, Mailbox};
use crate::config::Announce;
use crate::counters::{DropReason, LogLimit};
use crate::message::{ConflictView, ControlEvent, LinkState, ResponderCommand as Command};
use crate::ownership::Ownership;
use crate::sys::bpf;
use crate::sys::iface;
use crate::sys::packet::{PacketSocket, Received, ETH_P_ARP, ETH_P_IPV6};
use crate::wire::ipv6::solicited_node;
use crate::wire::EthernetAddress;

const WAKER: Token = Token(0);
/// Frames read from one socket before the loop looks at other sources;
/// a flood on one interface cannot starve commands or announcements.
const FRAMES_PER_WAKE: usize = 64;
/// Frames read (and answers sent) per system call: 32 KiB of buffers.
const BATCH: usize = 16;
/// A received frame larger than this was cut; ARP and NS are far smaller.
const RECEIVE_BUFFER: usize = bpf::SNAP_LEN as usize;
/// One log line per drop reason per period.
const LOG_PERIOD: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Arp,
    Ndp,
}

/// An interface's sockets and the solicited-node MACs joined on it.
#[derive(Debug)]
struct Port {
    name: String,
    index: u32,
    usable: bool,
    arp: PacketSocket,
    ndp: PacketSocket,
    joined: HashSet<EthernetAddress>,
    /// The addresses the sockets' filters pass (IPv4, and the last four
    /// bytes of IPv6), as last set; `None` before the first narrowing.
    listed: Option<(Vec<u32>, Vec<u32>)>,
}

impl Port {
    fn socket(&self, kind: Kind) -> &PacketSocket {
        match kind {
            Kind::Arp => &self.arp,
            Kind::Ndp => &self.ndp,
        }
    }
}

fn token(slot: usize, kind: Kind) -> Token {
    Token(1 + slot * 2 + usize::from(kind == Kind::Ndp))
}

fn from_token(token: Token) -> Option<(usize, Kind)> {
    let raw = token.0.checked_sub(1)?;
    Some((raw / 2, if raw % 2 == 0 { Kind::Arp } else { Kind::Ndp }))
}

/// The responder thread's state, built (sockets opened) before it runs.
pub struct ResponderThread {
    poll: Poll,
    commands: Inbox<Command>,
    ports: Vec<Port>,
    responder: Responder,
    limit: LogLimit,
    /// Frames read by one `recv_batch`.
    buffers: Box<[[u8; RECEIVE_BUFFER]; BATCH]>,
    /// Answers to one batch, sent with one `send_batch`.
    answers: Box<[[u8; MAX_FRAME]; BATCH]>,
    answer_lens: [usize; BATCH],
}

impl ResponderThread {
    /// Opens sockets on `interfaces` and returns the thread state and the
    /// mailbox that drives it.
    /// Claims on owned VIPs are judged after `judge_after` (the election's
    /// time to hear another node claiming them too).
    pub fn new(
        interfaces: &[String],
        announce: Announce,
        judge_after: Duration,
    ) -> io::Result<(ResponderThread, Mailbox<Command>)> {
        let poll = Poll::new()?;
        let (mailbox, commands) = mailbox(poll.registry(), WAKER)?;
        let mut thread = ResponderThread {
            poll,
            commands,
            ports: Vec::new(),
            responder: Responder::new(Vec::new(), announce),
            limit: LogLimit::new(LOG_PERIOD),
            buffers: Box::new([[0u8; RECEIVE_BUFFER]; BATCH]),
            answers: Box::new([[0u8; MAX_FRAME]; BATCH]),
            answer_lens: [0; BATCH],
        };
        thread.responder.set_judge_after(judge_after);
        for name in interfaces {
            thread.open_port(name)?;
        }
        Ok((thread, mailbox))
    }

    fn slot_of(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|port| port.name == name)
    }

    fn open_port(&mut self, name: &str) -> io::Result<usize> {
        if let Some(slot) = self.slot_of(name) {
            return Ok(slot);
        }
        let context =
            |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{name}: {what}: {e}"));
        let info = iface::lookup(name).map_err(|e| context("interface", e))?;
        let slot = self.ports.len();
        let (arp, ndp) = self
            .open_sockets(info.index, slot)
            .map_err(|e| context("packet socket", e))?;
        let mac = EthernetAddress(info.mac);
        info!(
            "{name}: answering on ifindex {} with MAC {mac}{}",
            info.index,
            if info.running { "" } else { " (no carrier)" }
        );
        self.ports.push(Port {
            name: name.to_string(),
            index: info.index,
            usable: info.up && info.running,
            arp,
            ndp,
            joined: HashSet::new(),
            listed: None,
        });
        self.narrow(slot);
        let mut interfaces = self.responder.interfaces().to_vec();
        interfaces.push(Interface {
            name: name.to_string(),
            mac,
            router: forwards_ipv6(name),
        });
        self.responder.replace_interfaces(interfaces);
        Ok(slot)
    }

    /// Opens and registers the ARP and NDP sockets of `slot` on `index`.
    fn open_sockets(&self, index: u32, slot: usize) -> io::Result<(PacketSocket, PacketSocket)> {
        let arp = PacketSocket::open(index, ETH_P_ARP, &bpf::ARP)?;
        let ndp = PacketSocket::open(index, ETH_P_IPV6, &bpf::NEIGHBOR_SOLICIT)?;
        let registry = self.poll.registry();
        registry.register(
            &mut SourceFd(&arp.as_raw_fd()),
            token(slot, Kind::Arp),
            Interest::READABLE,
        )?;
        registry.register(
            &mut SourceFd(&ndp.as_raw_fd()),
            token(slot, Kind::Ndp),
            Interest::READABLE,
        )?;
        Ok((arp, ndp))
    }

    fn link(&mut self, state: &LinkState) {
        let Some(slot) = self.slot_of(&state.name) else {
            return;
        };
        let now = Instant::now();
        if !state.present {
            self.ports[slot].usable = false;
            return;
        }
        if self.ports[slot].index != state.index {
            // Deleted and re-created: the old sockets are bound to a dead index.
            let port = &self.ports[slot];
            let registry = self.poll.registry();
            let _ = registry.deregister(&mut SourceFd(&port.arp.as_raw_fd()));
            let _ = registry.deregister(&mut SourceFd(&port.ndp.as_raw_fd()));
            match self.open_sockets(state.index, slot) {
                Ok((arp, ndp)) => {
                    let port = &mut self.ports[slot];
                    port.arp = arp;
                    port.ndp = ndp;
                    port.index = state.index;
                    port.listed = None;
                    let groups = std::mem::take(&mut port.joined);
                    info!(
                        "{}: re-created (index {}); sockets reopened",
                        state.name, state.index
                    );
                    for mac in groups {
                        self.join_mac(slot, mac);
                    }
                    self.narrow(slot);
                    self.responder.reannounce(now, slot);
                }
                Err(e) => error!("{}: cannot reopen its sockets: {e}", state.name),
            }
        }
        if let Some(mac) = state.mac {
            let mut interfaces = self.responder.interfaces().to_vec();
            if interfaces[slot].mac != mac {
                info!(
                    "{}: MAC changed {} -> {}; announcing again",
                    state.name, interfaces[slot].mac, mac
                );
                interfaces[slot].mac = mac;
                self.responder.replace_interfaces(interfaces);
                self.responder.reannounce(now, slot);
            }
        }
        let port = &mut self.ports[slot];
        if state.usable && !port.usable {
            debug!("{}: link up; announcing owned VIPs again", state.name);
            self.responder.reannounce(now, slot);
        }
        self.ports[slot].usable = state.usable;
    }

    /// Runs until `Shutdown` arrives or the loop fails.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        // Sockets that may still hold frames after their per-wake cap.
        let mut busy: BTreeSet<(usize, Kind)> = BTreeSet::new();
        loop {
            let timeout = if busy.is_empty() {
                self.responder
                    .poll_at()
                    .map(|at| at.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            wait(&mut self.poll, &mut events, timeout)?;
            for event in events.iter() {
                if event.token() != WAKER {
                    if let Some(source) = from_token(event.token()) {
                        busy.insert(source);
                    }
                }
            }
            // Commands first: a release must take effect before the next answer.
            while let Some(command) = self.commands.try_recv() {
                match command {
                    Command::Own(ownership) => self.own(&ownership),
                    Command::Reannounce(ips) => self.responder.reannounce_ips(Instant::now(), &ips),
                    Command::Link(state) => self.link(&state),
                    Command::LogCounters => info!("counters: {}", self.responder.counters),
                    Command::Contested(ips) => self.responder.set_contested(ips),
                    Command::Counters { id, reply_to } => {
                        let counters = Box::new(self.responder.counters);
                        let now = Instant::now();
                        let conflicts = self
                            .responder
                            .conflicts()
                            .iter()
                            .map(|c| ConflictView {
                                ip: c.ip,
                                mac: c.mac.to_string(),
                                count: c.count,
                                last_seen_s: now.saturating_duration_since(c.last_seen).as_secs(),
                            })
                            .collect();
                        let _ = reply_to.send(ControlEvent::Counters {
                            id,
                            counters,
                            conflicts,
                        });
                    }
                    Command::Shutdown => {
                        info!("responder stopping; counters: {}", self.responder.counters);
                        return Ok(());
                    }
                }
            }
            let sources: Vec<(usize, Kind)> = busy.iter().copied().collect();
            for source in sources {
                if self.drain(source.0, source.1) {
                    busy.remove(&source);
                }
            }
            let now = Instant::now();
            let claims = self.responder.judge_claims(now);
            for (ip, claimants) in claims.unlogged {
                warn!(
                    "conflict: {claimants} more MACs claimed {ip} in the last {} s (see status)",
                    DEFEND_EVERY.as_secs()
                );
            }
            for conflict in claims.log {
                warn!(
                    "conflict: {} claims {}, which this node owns ({} claims so far); \
                     defending it with at most one announcement every {} s",
                    conflict.mac,
                    conflict.ip,
                    conflict.count,
                    DEFEND_EVERY.as_secs()
                );
            }
            self.announce(now);
        }
    }

    fn own(&mut self, ownership: &Ownership) {
        let mut vips = Vec::with_capacity(ownership.vips.len());
        // Routed-only VIPs ("answer": false) are none of the responder's business.
        for vip in ownership.vips.iter().filter(|vip| vip.answer) {
            let slot = match self.open_port(&vip.interface) {
                Ok(slot) => slot,
                Err(e) => {
                    error!(
                        "{}: cannot answer for {} ({}): {e}",
                        vip.interface, vip.ip, vip.name
                    );
                    continue;
                }
            };
            if let IpAddr::V6(ip) = vip.ip {
                self.join(slot, solicited_node(&ip).octets());
            }
            vips.push(OwnedVip {
                ip: vip.ip,
                slot,
                mac: vip.mac,
            });
        }
        // The filters change before the loop reads or announces again.
        let (acquired, released) = self.responder.set_owned(Instant::now(), &vips);
        for slot in 0..self.ports.len() {
            self.narrow(slot);
        }
        if acquired + released > 0 {
            info!(
                "answering for {} VIPs ({acquired} acquired, {released} released)",
                vips.len()
            );
        }
    }

    /// Narrows `slot`'s socket filters to the addresses owned there, so
    /// requests for anything else (a flood against a VIP another node
    /// owns) never leave the kernel. More than `bpf::MAX_LISTED` of a
    /// family: that socket keeps the plain filter.
    fn narrow(&mut self, slot: usize) {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for ip in self.responder.owned_on(slot) {
            match ip {
                IpAddr::V4(ip) => v4.push(u32::from_be_bytes(ip.octets())),
                IpAddr::V6(ip) => {
                    let o = ip.octets();
                    v6.push(u32::from_be_bytes([o[12], o[13], o[14], o[15]]));
                }
            }
        }
        v4.sort_unstable();
        v4.dedup();
        v6.sort_unstable();
        v6.dedup();
        let port = &mut self.ports[slot];
        if port
            .listed
            .as_ref()
            .is_some_and(|(a, b)| *a == v4 && *b == v6)
        {
            return;
        }
        let arp = bpf::arp_for(&v4);
        let ndp = bpf::neighbor_solicit_for(&v6);
        let arp_result = port.arp.set_filter(arp.as_deref().unwrap_or(&bpf::ARP));
        let ndp_result = port
            .ndp
            .set_filter(ndp.as_deref().unwrap_or(&bpf::NEIGHBOR_SOLICIT));
        match arp_result.and(ndp_result) {
            Ok(()) => port.listed = Some((v4, v6)),
            Err(e) => warn!("{}: cannot narrow the socket filters: {e}", port.name),
        }
    }

    /// Joins the solicited-node group's MAC so the NIC delivers its NS.
    fn join(&mut self, slot: usize, group: [u8; 16]) {
        self.join_mac(slot, EthernetAddress::ipv6_multicast(&group));
    }

    fn join_mac(&mut self, slot: usize, mac: EthernetAddress) {
        let port = &mut self.ports[slot];
        if port.joined.contains(&mac) {
            return;
        }
        match port.ndp.add_membership(mac) {
            Ok(()) => {
                debug!("{}: joined {mac}", port.name);
                port.joined.insert(mac);
            }
            Err(e) => warn!("{}: cannot join {mac}: {e}", port.name),
        }
    }

    /// Reads up to the per-wake cap, a batch per system call, and sends
    /// each batch's answers with one more; true when the socket is empty.
    fn drain(&mut self, slot: usize, kind: Kind) -> bool {
        let mut read_total = 0;
        while read_total < FRAMES_PER_WAKE {
            let port = &self.ports[slot];
            let socket = port.socket(kind);
            let mut received = [Received::default(); BATCH];
            let read = {
                let mut each = self.buffers.iter_mut();
                let mut buffers: [&mut [u8]; BATCH] =
                    std::array::from_fn(|_| each.next().map_or(&mut [][..], |b| &mut b[..]));
                match socket.recv_batch(&mut buffers, &mut received) {
                    Ok(read) => read,
                    // The interface went away; the link thread reports it.
                    Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => {
                        debug!("{}: receive failed: {e}", port.name);
                        return true;
                    }
                    Err(e) => {
                        warn!("{}: receive failed: {e}", port.name);
                        return true;
                    }
                }
            };
            read_total += read;
            let mut answers = 0;
            for (index, meta) in received.iter().take(read).enumerate() {
                let len = meta.len.min(RECEIVE_BUFFER);
                let frame = &self.buffers[index][..len];
                let out = &mut self.answers[answers];
                let verdict = if meta.len > RECEIVE_BUFFER {
                    self.responder.counters.drop(DropReason::Truncated);
                    Verdict::Drop(DropReason::Truncated)
                } else {
                    match kind {
                        Kind::Arp => self.responder.process_arp(slot, meta.pkttype, frame, out),
                        Kind::Ndp => self.responder.process_ndp(slot, meta.pkttype, frame, out),
                    }
                };
                match verdict {
                    Verdict::Reply(reply_len) => {
                        self.answer_lens[answers] = reply_len;
                        answers += 1;
                    }
                    Verdict::Drop(reason) if reason.is_notable() => {
                        if let Some(suppressed) = self.limit.allow(reason, Instant::now()) {
                            let source = frame.get(6..12).map(EthernetAddress::from_bytes);
                            let from = source.map(|mac| format!(" from {mac}")).unwrap_or_default();
                            let more = if suppressed > 0 {
                                format!(" ({suppressed} more since the last report)")
                            } else {
                                String::new()
                            };
                            warn!(
                                "{}: dropped a {len}-byte frame{from}: {}{more}",
                                self.ports[slot].name,
                                reason.name()
                            );
                        }
                    }
                    Verdict::Drop(_) => {}
                }
            }
            self.send_answers(slot, kind, answers);
            if read < BATCH {
                return true;
            }
        }
        false
    }

    /// Sends the first `count` prepared answers; what the kernel does not
    /// take is counted as a send error.
    fn send_answers(&mut self, slot: usize, kind: Kind, count: usize) {
        let port = &self.ports[slot];
        let socket = port.socket(kind);
        let mut frames: [&[u8]; BATCH] = [&[]; BATCH];
        for (i, frame) in frames.iter_mut().enumerate().take(count) {
            *frame = &self.answers[i][..self.answer_lens[i]];
        }
        let mut done = 0;
        while done < count {
            match socket.send_batch(&frames[done..count]) {
                Ok(sent) if sent > 0 => done += sent,
                Ok(_) => break,
                Err(e) => {
                    // This answer is lost; the next ones may still go.
                    self.responder.counters.send_errors += 1;
                    warn!("{}: sending an answer failed: {e}", port.name);
                    done += 1;
                }
            }
        }
        self.responder.counters.send_errors += (count - done) as u64;
    }

    fn announce(&mut self, now: Instant) {
        let ports = &self.ports;
        self.responder.announce_due(now, |slot, frame| {
            let port = &ports[slot];
            let socket = if frame.get(12..14) == Some(&[0x08, 0x06]) {
                &port.arp
            } else {
                &port.ndp
            };
            match socket.send(frame) {
                Ok(()) => Sent::Ok,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    Sent::Full
                }
                Err(e) => {
                    debug!("{}: sending an announcement failed: {e}", port.name);
                    Sent::Failed
                }
            }
        });
    }
}

/// Whether the kernel forwards IPv6 on interface `name`
/// (`net.ipv6.conf.NAME.forwarding`).
fn forwards_ipv6(name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{name}/forwarding"))
        .is_ok_and(|value| value.trim() == "1")
}
