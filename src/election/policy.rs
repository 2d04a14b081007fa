//! The election as a pure state machine: heartbeats and `now` in; claims,
//! heartbeats to send and ownership changes out. No I/O, no clock.
//!
//! Per service, the candidates are the alive nodes eligible for it; they
//! are ranked the same way on every node (`rank`). A node claims a service
//! only when no alive node claims it and it is the best candidate; a holder
//! keeps it while it stays a candidate (sticky), unless `preempt` and a
//! better candidate is ready, in which case it releases first so the other
//! claims without a double claim. Two claimants (a healed partition) settle
//! on the better ranked one.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Mode;
use crate::message::Unfit;
use crate::wire::heartbeat::{
    self, bit, bitmap_len, name_hash, set_bit, Repr, Witness, WITNESS_LEN,
};

/// Settings of the local node that the election needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// This node's name.
    pub node: String,
    /// The cluster name; heartbeats of other clusters are dropped.
    pub cluster: String,
    /// 1..=255, higher wins.
    pub priority: u8,
    /// Single leader or spread.
    pub mode: Mode,
    /// Whether a better candidate takes services back.
    pub preempt: bool,
    /// Time between heartbeats.
    pub interval: Duration,
    /// A peer is alive while heard within this.
    pub lease: Duration,
    /// No peers configured: a one-node cluster, no start-up hold.
    pub alone: bool,
}

/// One service of the cluster, in canonical (name) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Service name (shared with the service's `Vip`).
    pub name: Arc<str>,
    /// The address, part of the digest.
    pub ip: IpAddr,
    /// Nodes allowed to own it; empty: all.
    pub nodes: Vec<String>,
}

/// Why a heartbeat was not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// From another cluster.
    Cluster,
    /// Our own heartbeat (multicast loopback).
    Own,
    /// Another process uses our node name.
    DuplicateNode,
    /// Sequence not newer within its incarnation, or a retired incarnation.
    Replay,
    /// Digest matches but the service count does not.
    Inconsistent,
    /// A new node while `MAX_KNOWN_PEERS` others are alive.
    TooManyPeers,
}

/// The most peers remembered at once (a cluster is ~16 nodes): more, with
/// all of them alive, are refused, so forged names cannot grow the table.
pub const MAX_KNOWN_PEERS: usize = 64;

/// Why ownership changed, or why an owned VIP is announced again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// This node stops (SIGTERM).
    Leaving,
    /// This node drains.
    Draining,
    /// This node cannot serve it now.
    Unfit(Unfit),
    /// The service's `nodes` leave this node out.
    NotEligible,
    /// A better ranked node claims it too (a healed partition).
    BetterClaimant,
    /// A better ranked candidate takes it back (`preempt`).
    Preempted,
    /// Taken: this node is the best candidate and nobody claims it.
    BestCandidate,
    /// A planned hand-over.
    HandedOver,
    /// Kept against a worse claimant.
    AnotherClaim,
    /// A peer heard again after its lease ran out.
    PartitionHealed,
}

impl Reason {
    /// The reason as the log writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Leaving => "leaving",
            Reason::Draining => "draining",
            Reason::Unfit(unfit) => unfit.as_str(),
            Reason::NotEligible => "not eligible",
            Reason::BetterClaimant => "a better ranked node claims it too",
            Reason::Preempted => "preempted by a better ranked node",
            Reason::BestCandidate => "best candidate and nobody claims it",
            Reason::HandedOver => "handed over",
            Reason::AnotherClaim => "another node claimed it too",
            Reason::PartitionHealed => "a partition healed",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a call into the policy asks of its shell: every call that can
/// change something returns these, so none can be forgotten.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "ownership changes, re-announcements and heartbeats must be carried out"]
pub struct Outputs {
    /// Ownership changes, in order.
    pub changes: Vec<Change>,
    /// Owned services to announce again, by index, with why.
    pub reannounce: Vec<(usize, Reason)>,
    /// Names of owned services that a new service list removed.
    pub removed: Vec<Arc<str>>,
    /// A heartbeat is due now (`heartbeat` builds it).
    pub send: bool,
}

impl Outputs {
    /// Adds `later`'s outputs after these (for callers that batch calls).
    pub fn absorb(&mut self, later: Outputs) {
        self.changes.extend(later.changes);
        for (index, reason) in later.reannounce {
            if !self.reannounce.iter().any(|(i, _)| *i == index) {
                self.reannounce.push((index, reason));
            }
        }
        self.removed.extend(later.removed);
        self.send |= later.send;
    }
}

/// An ownership change of one service, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Index into the canonical service list.
    pub service: usize,
    /// Acquired (true) or released (false).
    pub acquired: bool,
    /// Why.
    pub reason: Reason,
    /// A planned move (drain, hand-over, preemption): the new owner takes
    /// over at once, and the old one may linger for stale clients.
    pub planned: bool,
}

/// Why a planned move was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoverError {
    /// This node does not own the service.
    NotOwner,
    /// No other node could take it.
    NoCandidate,
}

/// A peer as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    /// Node name.
    pub node: String,
    /// Its priority.
    pub priority: u8,
    /// Heard within the lease and not leaving.
    pub alive: bool,
    /// Since its last heartbeat reached us.
    pub last_heard: Duration,
    /// Until it expires, counting witnesses.
    pub lease_left: Duration,
    /// It is draining.
    pub draining: bool,
    /// It is still listening after its start.
    pub joining: bool,
    /// It said goodbye.
    pub leaving: bool,
    /// Its service list digest equals ours.
    pub same_services: bool,
}

/// What one node sees of one service.
#[derive(Debug, Clone, Copy)]
struct View {
    /// Some alive peer claims it.
    any_claimant: bool,
    /// A better ranked alive peer claims it.
    better_claimant: bool,
    /// A better ranked peer could own it now.
    better_candidate: bool,
    /// A better ranked peer that booted with us is still listening.
    better_booting: bool,
}

/// Heartbeats repeated a quarter interval apart after a state change, so
/// one lost datagram does not delay a hand-over by a whole interval.
const BURST: u8 = 3;

/// Old incarnations remembered per peer, so their heartbeats never count again.
const RETIRED: usize = 8;

#[derive(Debug, Clone)]
struct Peer {
    /// `name_hash` of its name, as witnesses name it.
    hash: u32,
    incarnation: u64,
    sequence: u64,
    priority: u8,
    /// Last valid heartbeat received directly.
    heard: Instant,
    /// Last sign of life, direct or through a witness.
    seen: Instant,
    claims: Vec<u8>,
    eligible: Vec<u8>,
    digest_ok: bool,
    draining: bool,
    leaving: bool,
    joining: bool,
    retired: Vec<u64>,
}

/// What of a peer counts for every service at once: when any of it
/// changes, every service is evaluated again; otherwise only those whose
/// claim or eligibility bit of the peer changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Standing {
    alive: bool,
    priority: u8,
    digest_ok: bool,
    draining: bool,
    joining: bool,
    claims_len: usize,
}

impl Standing {
    fn of(peer: &Peer, alive: bool) -> Standing {
        Standing {
            alive,
            priority: peer.priority,
            digest_ok: peer.digest_ok,
            draining: peer.draining,
            joining: peer.joining,
            claims_len: peer.claims.len(),
        }
    }
}

/// The election state of one node.
#[derive(Debug, Clone)]
pub struct Policy {
    settings: Settings,
    services: Vec<ServiceSpec>,
    digest: u64,
    incarnation: u64,
    sequence: u64,
    hold_until: Instant,
    /// End of the joining phase (start + lease): while joining, a node that
    /// others witness but we have not heard may hold services, so we wait.
    joining_until: Instant,
    /// A witnessed node we have not heard ourselves may hold services.
    /// Until when, per name hash, such an unheard node may hold services.
    unknown: Vec<(u32, Instant)>,
    /// This node's state of each service, in canonical order.
    slots: Vec<Slot>,
    draining: bool,
    leaving: bool,
    /// Quick repeats left after a state change.
    burst_left: u8,
    was_joining: bool,
    peers: BTreeMap<String, Peer>,
    next_send: Instant,
    send_now: bool,
    /// What the current call has to return.
    pending: Outputs,
    /// Services whose view may have changed since they were evaluated.
    stale: Vec<usize>,
    /// Every service's view may have changed: a peer came, went, restarted
    /// or changed its priority or flags, or this node's state changed.
    stale_all: bool,
    /// When every service was last evaluated. A deadline passed since
    /// (a peer's lease, the end of the hold) makes the next evaluation
    /// whole: time changes what every service sees.
    settled_at: Instant,
}

/// This node's state of one service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    /// Configured for this node (the service's `nodes`).
    eligible: bool,
    /// Why this node cannot serve it now (link down, health check
    /// failing), if it cannot.
    unfit: Option<Unfit>,
    /// This node claims it.
    claimed: bool,
    /// Another, worse ranked node claims it too; it was announced again.
    contested: bool,
    /// A planned move in progress: not a candidate until this instant or
    /// until another node claims the service.
    handing_over: Option<Instant>,
    /// When this node acquired it.
    acquired_at: Option<Instant>,
}

impl Slot {
    fn new(eligible: bool) -> Slot {
        Slot {
            eligible,
            ..Slot::default()
        }
    }
}

/// Mixes 64 bits well (splitmix64's finaliser).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The digest of a canonical service list: names and addresses.
pub fn digest(services: &[ServiceSpec]) -> u64 {
    let mut hash = 0u64;
    let mut ip = String::with_capacity(48);
    for service in services {
        ip.clear();
        // Writing to a String cannot fail.
        let _ = write!(ip, "{}", service.ip);
        hash = mix(hash ^ fnv64(&[service.name.as_bytes(), ip.as_bytes()]));
    }
    hash
}

/// How `node` (with `priority`) ranks for `service`: higher wins.
/// Integer only, so every architecture agrees.
pub fn rank<'n>(
    mode: Mode,
    node: &'n str,
    priority: u8,
    service: &str,
) -> (u128, std::cmp::Reverse<&'n str>) {
    let score = match mode {
        Mode::Single => u128::from(priority),
        // Rendezvous hashing weighted by priority: each (node, service)
        // draws a number; the highest weighted draw wins.
        Mode::Spread => {
            u128::from(mix(fnv64(&[node.as_bytes(), service.as_bytes()]))) * u128::from(priority)
        }
    };
    (score, std::cmp::Reverse(node))
}

impl Policy {
    /// A new election state; `incarnation` must be random per process start.
    pub fn new(
        settings: Settings,
        services: Vec<ServiceSpec>,
        incarnation: u64,
        now: Instant,
    ) -> Policy {
        let slots = services
            .iter()
            .map(|s| Slot::new(s.nodes.is_empty() || s.nodes.contains(&settings.node)))
            .collect();
        // Listen before claiming: long enough to hear every live peer.
        let hold = if settings.alone {
            Duration::ZERO
        } else {
            (settings.interval * 3)
                .max(settings.lease / 2)
                .min(settings.lease)
        };
        Policy {
            digest: digest(&services),
            hold_until: now + hold,
            joining_until: now + settings.lease,
            unknown: Vec::new(),
            slots,
            draining: false,
            leaving: false,
            was_joining: true,
            burst_left: 0,
            peers: BTreeMap::new(),
            next_send: now,
            send_now: true,
            pending: Outputs::default(),
            stale: Vec::new(),
            stale_all: true,
            settled_at: now,
            incarnation,
            sequence: 0,
            services,
            settings,
        }
    }

    /// The canonical service list.
    pub fn services(&self) -> &[ServiceSpec] {
        &self.services
    }

    /// The digest of our service list.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Services this node owns now, by index.
    pub fn owned(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.claimed)
            .map(|(i, _)| i)
    }

    /// The services this node owns while a worse-ranked node claims them
    /// too (a split brain the election is settling).
    pub fn contested(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.claimed && slot.contested)
            .map(|(i, _)| i)
    }

    /// Whether this node owns service `index`.
    pub fn owns(&self, index: usize) -> bool {
        self.slots.get(index).is_some_and(|slot| slot.claimed)
    }

    /// What the call that ends here has to return: the changes it made,
    /// and whether a heartbeat is due.
    fn outputs(&mut self, now: Instant) -> Outputs {
        let mut outputs = std::mem::take(&mut self.pending);
        outputs.send = self.send_now || now >= self.next_send;
        outputs
    }

    /// Names of peers whose service list differs from ours.
    pub fn digest_mismatches(&self) -> impl Iterator<Item = &str> {
        self.peers
            .iter()
            .filter(|(_, p)| !p.digest_ok)
            .map(|(n, _)| n.as_str())
    }

    /// Alive peers with the age of their last sign of life.
    pub fn alive_peers(&self, now: Instant) -> impl Iterator<Item = (&str, Duration)> {
        self.peers
            .iter()
            .filter(move |(_, p)| self.alive(p, now))
            .map(move |(n, p)| (n.as_str(), now.saturating_duration_since(p.seen)))
    }

    fn alive(&self, peer: &Peer, now: Instant) -> bool {
        !peer.leaving && now < peer.seen + self.settings.lease
    }

    /// Still listening after start: claims nothing, is nobody's candidate.
    fn joining(&self, now: Instant) -> bool {
        now < self.hold_until
            || self.unknown.iter().any(|(hash, until)| {
                // Once heard directly it is no longer unknown.
                now < *until && !self.peers.values().any(|peer| peer.hash == *hash)
            })
    }

    fn me_candidate(&self, index: usize) -> bool {
        self.may_serve(index) && self.slots[index].handing_over.is_none()
    }

    /// Whether this node may serve service `index` now: configured for it,
    /// fit (link up, health check passing), neither draining nor leaving.
    pub fn may_serve(&self, index: usize) -> bool {
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        !self.leaving && !self.draining && slot.eligible && slot.unfit.is_none()
    }

    /// The next instant after `now` something is due: a heartbeat, a
    /// peer's expiry, the end of the start-up hold or of an unknown node's
    /// witnessed lease.
    pub fn poll_at(&self, now: Instant) -> Instant {
        let lease = self.settings.lease;
        let expiries = self
            .peers
            .values()
            .filter(|p| !p.leaving)
            .map(|p| p.seen + lease);
        expiries
            .chain([self.hold_until, self.joining_until, self.booting_until()])
            .chain(self.unknown.iter().map(|(_, until)| *until))
            .chain(self.slots.iter().filter_map(|slot| slot.handing_over))
            .filter(|at| *at > now)
            .fold(self.next_send, Instant::min)
    }

    /// Takes in a parsed, authenticated heartbeat.
    pub fn on_heartbeat(&mut self, now: Instant, beat: &Repr<'_>) -> Result<Outputs, Reject> {
        if beat.cluster != self.settings.cluster {
            return Err(Reject::Cluster);
        }
        if beat.node == self.settings.node {
            return Err(if beat.incarnation == self.incarnation {
                Reject::Own
            } else {
                Reject::DuplicateNode
            });
        }
        let digest_ok = beat.digest == self.digest;
        if digest_ok && usize::from(beat.service_count) != self.services.len() {
            return Err(Reject::Inconsistent);
        }
        let bitmap = bitmap_len(beat.service_count);
        let lease = self.settings.lease;
        let mut revived = false;
        // How this incarnation of the peer stood before: None when it is
        // new to us, or restarted.
        let before = self
            .peers
            .get(beat.node)
            .filter(|peer| peer.incarnation == beat.incarnation)
            .map(|peer| Standing::of(peer, self.alive(peer, now)));
        match self.peers.get_mut(beat.node) {
            Some(peer) if peer.incarnation == beat.incarnation => {
                if beat.sequence <= peer.sequence {
                    return Err(Reject::Replay);
                }
                // Heard again after its lease ran out, without a restart:
                // a partition healed, and it may have claimed our VIPs.
                revived = !peer.leaving && now >= peer.seen + lease;
            }
            Some(peer) => {
                // Incarnations are ordered (the start counter and clock of
                // `incarnation.rs`): an older one while the newer is alive
                // is a replay from an earlier run, and never retires it.
                let live = !peer.leaving && now < peer.seen + lease;
                let older = beat.incarnation < peer.incarnation;
                if peer.retired.contains(&beat.incarnation) || (older && live) {
                    return Err(Reject::Replay);
                }
                // A later incarnation: the peer restarted, and the old one
                // never counts again. An older one, after a lease of silence:
                // a restart whose counter and clock went back, or a replay
                // while the live process is cut off; the newer one is not
                // retired, so it is heard again the moment it speaks.
                if !older {
                    if peer.retired.len() == RETIRED {
                        peer.retired.remove(0);
                    }
                    peer.retired.push(peer.incarnation);
                }
                peer.incarnation = beat.incarnation;
                peer.sequence = 0;
            }
            None => {
                if self.peers.len() >= MAX_KNOWN_PEERS {
                    // Forget the longest-silent peer whose lease is over.
                    let forgotten = self
                        .peers
                        .iter()
                        .filter(|(_, p)| !self.alive(p, now))
                        .min_by_key(|(_, p)| p.heard)
                        .map(|(name, _)| name.clone());
                    match forgotten {
                        Some(name) => {
                            self.peers.remove(&name);
                        }
                        None => return Err(Reject::TooManyPeers),
                    }
                }
                self.peers.insert(
                    beat.node.to_string(),
                    Peer {
                        hash: name_hash(beat.node),
                        incarnation: beat.incarnation,
                        sequence: 0,
                        priority: beat.priority,
                        heard: now,
                        seen: now,
                        claims: vec![0; bitmap],
                        eligible: vec![0; bitmap],
                        digest_ok,
                        draining: false,
                        leaving: false,
                        joining: true,
                        retired: Vec::new(),
                    },
                );
            }
        }
        let own_hash = name_hash(&self.settings.node);
        if let Some(peer) = self.peers.get_mut(beat.node) {
            // Which services it claims or may own differently than before:
            // the ones to evaluate again, when nothing else changed.
            if before.is_some_and(|b| b.digest_ok && b.claims_len == beat.claims.len()) {
                for (old, new) in [(&peer.claims, beat.claims), (&peer.eligible, beat.eligible)] {
                    for (byte, (a, b)) in old.iter().zip(new).enumerate() {
                        let mut differ = a ^ b;
                        while differ != 0 {
                            let bit = differ.leading_zeros() as usize;
                            differ &= !(0x80 >> bit);
                            self.stale.push(byte * 8 + bit);
                        }
                    }
                }
            }
            peer.sequence = beat.sequence;
            peer.priority = beat.priority;
            peer.heard = now;
            peer.seen = peer.seen.max(now);
            peer.claims.clear();
            peer.claims.extend_from_slice(beat.claims);
            peer.eligible.clear();
            peer.eligible.extend_from_slice(beat.eligible);
            peer.digest_ok = digest_ok;
            peer.draining = beat.draining;
            peer.leaving = beat.leaving;
            peer.joining = beat.joining;
            if before != Some(Standing::of(peer, !beat.leaving)) {
                self.stale_all = true;
            }
        }
        for witness in beat.witnesses() {
            if self.on_witness(now, beat.node, own_hash, witness) {
                self.stale_all = true;
            }
        }
        self.evaluate(now);
        if revived {
            // Clients on the other side may have followed its announcements.
            for index in 0..self.slots.len() {
                let listed = self.pending.reannounce.iter().any(|(i, _)| *i == index);
                if self.slots[index].claimed && !listed {
                    self.pending
                        .reannounce
                        .push((index, Reason::PartitionHealed));
                }
            }
        }
        Ok(self.outputs(now))
    }

    /// Takes in one witness entry of `sender`'s heartbeat; true when it
    /// changed what every service sees (a peer we had given up on is alive
    /// again, or a node we have not heard may hold services).
    fn on_witness(&mut self, now: Instant, sender: &str, own_hash: u32, witness: Witness) -> bool {
        if witness.node == own_hash {
            return false;
        }
        let age = Duration::from_millis(u64::from(witness.age_ms));
        let lease = self.settings.lease;
        if age >= lease {
            return false;
        }
        let at = now.checked_sub(age).unwrap_or(now);
        let known = self
            .peers
            .iter_mut()
            .find(|(name, peer)| peer.hash == witness.node && name.as_str() != sender);
        match known {
            Some((_, peer)) if !peer.leaving && peer.incarnation as u32 == witness.incarnation => {
                let was_alive = now < peer.seen + lease;
                peer.seen = peer.seen.max(at);
                !was_alive && now < peer.seen + lease
            }
            Some(_) => false,
            None if now < self.joining_until => {
                let until = (at + lease).min(self.joining_until);
                let room = self.unknown.len() < MAX_KNOWN_PEERS;
                match self
                    .unknown
                    .iter_mut()
                    .find(|(hash, _)| *hash == witness.node)
                {
                    Some((_, known_until)) if *known_until < until => {
                        *known_until = until;
                        true
                    }
                    Some(_) => false,
                    // Bounded like the peer table: forged witnesses cannot
                    // grow it, nor the cost of each heartbeat.
                    None if room => {
                        self.unknown.push((witness.node, until));
                        true
                    }
                    None => false,
                }
            }
            None => false,
        }
    }

    /// Advances time: expiries, the end of the hold, heartbeats due.
    pub fn on_tick(&mut self, now: Instant) -> Outputs {
        // A regular heartbeat is due: send it, with no burst after it.
        if now >= self.next_send {
            self.send_now = true;
        }
        let unknown = self.unknown.len();
        self.unknown.retain(|(_, until)| now < *until);
        if self.unknown.len() != unknown {
            // A node we never heard no longer keeps us listening.
            self.stale_all = true;
        }
        self.evaluate(now);
        self.outputs(now)
    }

    /// Stops claiming anything (drain) or claims again (undrain).
    pub fn set_draining(&mut self, now: Instant, draining: bool) -> Outputs {
        if self.draining != draining {
            self.draining = draining;
            self.stale_all = true;
            self.changed();
            self.evaluate(now);
        }
        self.outputs(now)
    }

    /// Says why this node cannot serve service `index` now (its link is
    /// down, its health check fails), or `None` when it can. An owned
    /// service is released at once with that reason.
    pub fn set_unfit(&mut self, now: Instant, index: usize, reason: Option<Unfit>) -> Outputs {
        if let Some(slot) = self.slots.get_mut(index) {
            if slot.unfit != reason {
                slot.unfit = reason;
                self.stale.push(index);
                self.changed();
                self.evaluate(now);
            }
        }
        self.outputs(now)
    }

    /// Why this node cannot serve service `index` now, if it cannot.
    pub fn unfit(&self, index: usize) -> Option<Unfit> {
        self.slots.get(index).and_then(|slot| slot.unfit)
    }

    /// Releases everything for good: the next heartbeat says "leaving".
    pub fn leave(&mut self, now: Instant) -> Outputs {
        self.leaving = true;
        self.stale_all = true;
        self.changed();
        self.evaluate(now);
        self.outputs(now)
    }

    /// What this node sees of service `index` now.
    fn view(&self, index: usize, now: Instant) -> View {
        let service = &self.services[index].name;
        let mode = self.settings.mode;
        let me = rank(mode, &self.settings.node, self.settings.priority, service);
        // Nodes that booted with us are still finishing their own listening:
        // wait for a better one rather than claim and hand back. A node that
        // restarts into an established cluster gets no such wait.
        let booting = now < self.booting_until();
        let mut view = View {
            any_claimant: false,
            better_claimant: false,
            better_candidate: false,
            better_booting: false,
        };
        for (name, peer) in &self.peers {
            if !self.alive(peer, now) || !peer.digest_ok {
                continue;
            }
            let better = rank(mode, name, peer.priority, service) > me;
            if bit(&peer.claims, index) {
                view.any_claimant = true;
                view.better_claimant |= better;
            }
            if better && !peer.draining && bit(&peer.eligible, index) {
                if peer.joining {
                    view.better_booting |= booting;
                } else {
                    view.better_candidate = true;
                }
            }
        }
        view
    }

    /// Until when peers that booted with us count as still listening.
    fn booting_until(&self) -> Instant {
        self.joining_until
            .min(self.hold_until + self.settings.interval * 2)
    }

    /// Whether a deadline fell after the last whole evaluation, up to
    /// `now`: then what every service sees may have changed.
    fn deadline_passed(&self, now: Instant) -> bool {
        let since = self.settled_at;
        let passed = |at: Instant| since < at && at <= now;
        let lease = self.settings.lease;
        passed(self.hold_until)
            || passed(self.joining_until)
            || passed(self.booting_until())
            || self
                .peers
                .values()
                .any(|peer| !peer.leaving && passed(peer.seen + lease))
            || self.unknown.iter().any(|(_, until)| passed(*until))
            || self
                .slots
                .iter()
                .any(|slot| slot.handing_over.is_some_and(passed))
    }

    /// Evaluates every service whose view may have changed: all of them
    /// after a change that concerns all (a peer came, went or changed its
    /// standing; a deadline passed; this node's own state), otherwise only
    /// those whose claims or eligibility changed. A steady heartbeat, the
    /// common case, evaluates nothing.
    fn evaluate(&mut self, now: Instant) {
        let joining = self.joining(now);
        if self.was_joining && !joining {
            // Tell the others at once that we are a candidate now.
            self.was_joining = false;
            self.changed();
        }
        let opaque = self
            .peers
            .values()
            .any(|p| !p.digest_ok && self.alive(p, now));
        let mut stale = std::mem::take(&mut self.stale);
        if self.stale_all || self.deadline_passed(now) {
            self.stale_all = false;
            self.settled_at = now;
            for index in 0..self.services.len() {
                self.evaluate_one(now, index, joining, opaque);
            }
        } else {
            stale.sort_unstable();
            stale.dedup();
            let count = self.services.len();
            for &index in stale.iter().filter(|&&i| i < count) {
                self.evaluate_one(now, index, joining, opaque);
            }
        }
        stale.clear();
        self.stale = stale;
    }

    /// Claims, keeps or releases service `index` by what this node sees.
    fn evaluate_one(&mut self, now: Instant, index: usize, joining: bool, opaque: bool) {
        let view = self.view(index, now);
        if let Some(until) = self.slots[index].handing_over {
            // The planned move is over: another node took it, or
            // nobody did within a lease. A candidate again.
            if now >= until || view.any_claimant {
                self.slots[index].handing_over = None;
                self.changed();
            }
        }
        let slot = self.slots[index];
        if slot.claimed {
            let release = if !self.me_candidate(index) {
                Some(if self.leaving {
                    Reason::Leaving
                } else if self.draining {
                    Reason::Draining
                } else {
                    slot.unfit.map_or(Reason::NotEligible, Reason::Unfit)
                })
            } else if view.better_claimant {
                Some(Reason::BetterClaimant)
            } else if self.settings.preempt && view.better_candidate {
                // The better node is past its listening: it claims as
                // soon as it hears we let go.
                Some(Reason::Preempted)
            } else {
                None
            };
            if let Some(reason) = release {
                let planned = !self.leaving
                    && slot.unfit.is_none()
                    && slot.eligible
                    && (self.draining || view.better_candidate && !view.better_claimant);
                let slot = &mut self.slots[index];
                slot.claimed = false;
                slot.acquired_at = None;
                slot.contested = false;
                self.changed();
                self.pending.changes.push(Change {
                    service: index,
                    acquired: false,
                    reason,
                    planned,
                });
            } else if view.any_claimant {
                if !slot.contested {
                    // We keep it against a worse claimant: re-announce
                    // so clients that followed the other one come back.
                    self.slots[index].contested = true;
                    self.pending.reannounce.push((index, Reason::AnotherClaim));
                    self.changed();
                }
            } else {
                self.slots[index].contested = false;
            }
        } else if !joining
            && !opaque
            && !view.any_claimant
            && !view.better_candidate
            && !view.better_booting
            && self.me_candidate(index)
        {
            let slot = &mut self.slots[index];
            slot.claimed = true;
            slot.acquired_at = Some(now);
            self.changed();
            self.pending.changes.push(Change {
                service: index,
                acquired: true,
                reason: Reason::BestCandidate,
                planned: false,
            });
        }
    }

    /// Replaces the service list (reload, add, remove). Services whose name
    /// and address are unchanged keep their state: an owned one stays owned
    /// and is not announced again. Removed ones are released. Peers' bitmaps
    /// describe the old list, so they count again only from their next
    /// heartbeat that carries the new digest.
    /// `unfit` says, per new service, why this node cannot serve it now.
    pub fn set_services(
        &mut self,
        now: Instant,
        services: Vec<ServiceSpec>,
        unfit: Vec<Option<Unfit>>,
    ) -> Outputs {
        let old = std::mem::take(&mut self.services);
        let slots = services
            .iter()
            .enumerate()
            .map(|(index, service)| {
                let eligible =
                    service.nodes.is_empty() || service.nodes.contains(&self.settings.node);
                let same = old
                    .iter()
                    .position(|o| o.name == service.name && o.ip == service.ip);
                let mut slot = match same {
                    Some(before) => Slot {
                        eligible,
                        ..self.slots[before]
                    },
                    None => Slot::new(eligible),
                };
                slot.unfit = unfit.get(index).copied().flatten();
                slot
            })
            .collect();
        for (before, service) in old.iter().enumerate() {
            let kept = services
                .iter()
                .any(|s| s.name == service.name && s.ip == service.ip);
            if self.slots[before].claimed && !kept {
                self.pending.removed.push(service.name.clone());
            }
        }
        self.slots = slots;
        self.digest = digest(&services);
        self.services = services;
        self.stale_all = true;
        for peer in self.peers.values_mut() {
            peer.digest_ok = false;
            peer.claims.clear();
            peer.eligible.clear();
        }
        self.changed();
        self.evaluate(now);
        self.outputs(now)
    }

    /// Changes this node's priority and preempt setting.
    pub fn set_priority(&mut self, now: Instant, priority: u8, preempt: bool) -> Outputs {
        if (self.settings.priority, self.settings.preempt) != (priority, preempt) {
            self.settings.priority = priority;
            self.settings.preempt = preempt;
            self.stale_all = true;
            self.changed();
            self.evaluate(now);
        }
        self.outputs(now)
    }

    /// A planned move of service `index` to the next candidate: release it
    /// now and stay out until another node claims it (or a lease passes).
    pub fn handover(&mut self, now: Instant, index: usize) -> Result<Outputs, HandoverError> {
        if !self.owns(index) {
            return Err(HandoverError::NotOwner);
        }
        let other = self.peers.values().any(|p| {
            self.alive(p, now)
                && p.digest_ok
                && !p.draining
                && !p.joining
                && bit(&p.eligible, index)
        });
        if !other {
            return Err(HandoverError::NoCandidate);
        }
        self.slots[index] = Slot {
            handing_over: Some(now + self.settings.lease),
            claimed: false,
            acquired_at: None,
            contested: false,
            ..self.slots[index]
        };
        self.changed();
        self.pending.changes.push(Change {
            service: index,
            acquired: false,
            reason: Reason::HandedOver,
            planned: true,
        });
        Ok(self.outputs(now))
    }

    /// Whether this node is draining.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Who owns service `index` as far as this node knows.
    pub fn owner(&self, index: usize, now: Instant) -> Option<&str> {
        if self.owns(index) {
            return Some(&self.settings.node);
        }
        self.peers
            .iter()
            .find(|(_, p)| self.alive(p, now) && p.digest_ok && bit(&p.claims, index))
            .map(|(name, _)| name.as_str())
    }

    /// Since when this node owns service `index`.
    pub fn acquired_at(&self, index: usize) -> Option<Instant> {
        self.slots.get(index).and_then(|slot| slot.acquired_at)
    }

    /// What this node knows of each peer it has heard.
    pub fn peer_states(&self, now: Instant) -> Vec<PeerState> {
        self.peers
            .iter()
            .map(|(name, p)| PeerState {
                node: name.clone(),
                priority: p.priority,
                alive: self.alive(p, now),
                last_heard: now.saturating_duration_since(p.heard),
                lease_left: (p.seen + self.settings.lease).saturating_duration_since(now),
                draining: p.draining,
                joining: p.joining,
                leaving: p.leaving,
                same_services: p.digest_ok,
            })
            .collect()
    }

    /// Checks that evaluating only what changed left nothing undone: a
    /// whole evaluation now, on a copy, changes nothing. For tests.
    #[cfg(test)]
    pub(crate) fn check_settled(&self, now: Instant) -> Result<(), String> {
        let mut whole = self.clone();
        whole.pending = Outputs::default();
        whole.stale_all = true;
        whole.evaluate(now);
        let Outputs {
            changes,
            reannounce,
            ..
        } = whole.pending;
        if changes.is_empty() && reannounce.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}: a whole evaluation would change {changes:?} and announce {reannounce:?}",
                self.settings.node
            ))
        }
    }

    /// Something others must learn changed: send now, then repeat quickly.
    fn changed(&mut self) {
        self.send_now = true;
        self.burst_left = BURST;
    }

    /// Builds the next heartbeat into `scratch` (claims, eligibility and
    /// witnesses) and returns it; schedules the one after.
    pub fn heartbeat<'s>(&'s mut self, now: Instant, scratch: &'s mut Scratch) -> Repr<'s> {
        self.sequence += 1;
        self.send_now = false;
        self.next_send = if self.burst_left > 0 {
            self.burst_left -= 1;
            now + self.settings.interval / 4
        } else {
            now + self.settings.interval
        };
        let count = self.services.len().min(heartbeat::MAX_SERVICES);
        let bitmap = bitmap_len(count as u16);
        scratch.claims.clear();
        scratch.claims.resize(bitmap, 0);
        scratch.eligible.clear();
        scratch.eligible.resize(bitmap, 0);
        for index in 0..count {
            set_bit(&mut scratch.claims, index, self.slots[index].claimed);
            set_bit(&mut scratch.eligible, index, self.me_candidate(index));
        }
        scratch.witnesses.clear();
        let lease = self.settings.lease;
        for peer in self
            .peers
            .values()
            .filter(|p| !p.leaving && now < p.heard + lease)
        {
            if scratch.witnesses.len() / WITNESS_LEN >= heartbeat::MAX_WITNESSES {
                break;
            }
            let age = now
                .saturating_duration_since(peer.heard)
                .as_millis()
                .min(u128::from(u16::MAX)) as u16;
            let mut entry = [0u8; WITNESS_LEN];
            heartbeat::emit_witness(
                &mut entry,
                Witness {
                    node: peer.hash,
                    incarnation: peer.incarnation as u32,
                    age_ms: age,
                },
            );
            scratch.witnesses.extend_from_slice(&entry);
        }
        Repr {
            draining: self.draining,
            leaving: self.leaving,
            joining: self.joining(now),
            priority: self.settings.priority,
            incarnation: self.incarnation,
            sequence: self.sequence,
            digest: self.digest,
            service_count: count as u16,
            cluster: &self.settings.cluster,
            node: &self.settings.node,
            claims: &scratch.claims,
            eligible: &scratch.eligible,
            witnesses: &scratch.witnesses,
        }
    }
}

/// Reusable buffers for building heartbeats without allocating each time.
#[derive(Debug, Default)]
pub struct Scratch {
    claims: Vec<u8>,
    eligible: Vec<u8>,
    witnesses: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy with what its calls returned, gathered for the assertions.
    #[derive(Debug)]
    struct Tested {
        policy: Policy,
        outputs: Outputs,
    }

    impl std::ops::Deref for Tested {
        type Target = Policy;
        fn deref(&self) -> &Policy {
            &self.policy
        }
    }

    impl std::ops::DerefMut for Tested {
        fn deref_mut(&mut self) -> &mut Policy {
            &mut self.policy
        }
    }

    impl Tested {
        fn new(policy: Policy) -> Tested {
            Tested {
                policy,
                outputs: Outputs::default(),
            }
        }

        /// Keeps every change; `send` is the last call's.
        fn gather(&mut self, outputs: Outputs) {
            let send = outputs.send;
            self.outputs.absorb(outputs);
            self.outputs.send = send;
        }

        fn on_tick(&mut self, now: Instant) {
            let outputs = self.policy.on_tick(now);
            self.gather(outputs);
        }

        fn on_heartbeat(&mut self, now: Instant, beat: &Repr<'_>) -> Result<(), Reject> {
            let outputs = self.policy.on_heartbeat(now, beat)?;
            self.gather(outputs);
            Ok(())
        }

        fn set_draining(&mut self, now: Instant, draining: bool) {
            let outputs = self.policy.set_draining(now, draining);
            self.gather(outputs);
        }

        fn set_unfit(&mut self, now: Instant, index: usize, reason: Option<Unfit>) {
            let outputs = self.policy.set_unfit(now, index, reason);
            self.gather(outputs);
        }

        fn leave(&mut self, now: Instant) {
            let outputs = self.policy.leave(now);
            self.gather(outputs);
        }

        fn set_services(
            &mut self,
            now: Instant,
            services: Vec<ServiceSpec>,
            unfit: Vec<Option<Unfit>>,
        ) {
            let outputs = self.policy.set_services(now, services, unfit);
            self.gather(outputs);
        }

        fn handover(&mut self, now: Instant, index: usize) -> Result<(), HandoverError> {
            let outputs = self.policy.handover(now, index)?;
            self.gather(outputs);
            Ok(())
        }

        fn take_changes(&mut self) -> Vec<Change> {
            std::mem::take(&mut self.outputs.changes)
        }

        /// Whether the last call asked for a heartbeat.
        fn wants_send(&self, _now: Instant) -> bool {
            self.outputs.send
        }
    }

    const INTERVAL: Duration = Duration::from_millis(100);
    const LEASE: Duration = Duration::from_millis(500);

    fn services() -> Vec<ServiceSpec> {
        ["a", "b"]
            .iter()
            .map(|name| ServiceSpec {
                name: Arc::from(*name),
                ip: IpAddr::from([192, 0, 2, name.len() as u8]),
                nodes: Vec::new(),
            })
            .collect()
    }

    fn policy(
        name: &str,
        priority: u8,
        services: Vec<ServiceSpec>,
        interval: Duration,
        lease: Duration,
        now: Instant,
    ) -> Tested {
        let settings = Settings {
            node: name.into(),
            cluster: "test".into(),
            priority,
            mode: Mode::Single,
            preempt: false,
            interval,
            lease,
            alone: false,
        };
        Tested::new(Policy::new(
            settings,
            services,
            u64::from(priority) * 1000,
            now,
        ))
    }

    fn node(name: &str, priority: u8, alone: bool, now: Instant) -> Tested {
        let mut settings = policy(name, priority, services(), INTERVAL, LEASE, now)
            .policy
            .settings;
        settings.alone = alone;
        Tested::new(Policy::new(
            settings,
            services(),
            u64::from(priority) * 1000,
            now,
        ))
    }

    /// `from`'s next heartbeat, on the wire.
    fn beat(from: &mut Tested, now: Instant) -> Vec<u8> {
        let mut scratch = Scratch::default();
        let mut bytes = [0u8; heartbeat::MAX_LEN];
        let len = from
            .heartbeat(now, &mut scratch)
            .emit(&mut bytes, None)
            .unwrap();
        bytes[..len].to_vec()
    }

    /// Delivers `from`'s next heartbeat to `to`.
    fn deliver(from: &mut Tested, to: &mut Tested, now: Instant) -> Result<(), Reject> {
        to.on_heartbeat(now, &Repr::parse(&beat(from, now)).unwrap())
    }

    fn owned(policy: &Policy) -> Vec<usize> {
        policy.owned().collect()
    }

    #[test]
    fn a_lone_node_owns_everything_at_once() {
        let t0 = Instant::now();
        let mut alone = node("r1", 100, true, t0);
        alone.on_tick(t0);
        assert_eq!(owned(&alone), vec![0, 1]);
        assert_eq!(alone.take_changes().len(), 2);
    }

    #[test]
    fn listens_before_claiming_then_claims() {
        let t0 = Instant::now();
        let mut a = node("a", 100, false, t0);
        a.on_tick(t0 + INTERVAL);
        assert!(owned(&a).is_empty(), "still in its hold");
        let hold = (INTERVAL * 3).max(LEASE / 2);
        assert_eq!(a.poll_at(t0), t0, "first heartbeat at once");
        a.on_tick(t0 + hold);
        assert_eq!(owned(&a), vec![0, 1]);
    }

    #[test]
    fn sticky_unless_a_better_claimant_and_handover_on_leave() {
        let t0 = Instant::now();
        let mut b = node("b", 50, false, t0);
        let t1 = t0 + LEASE;
        b.on_tick(t1);
        assert_eq!(owned(&b), vec![0, 1]);
        // A better node joins the established cluster: it does not claim.
        let mut a = node("a", 200, false, t1);
        let mut now = t1;
        for _ in 0..20 {
            now += INTERVAL;
            deliver(&mut b, &mut a, now).unwrap();
            deliver(&mut a, &mut b, now).unwrap();
            a.on_tick(now);
            b.on_tick(now);
        }
        assert!(owned(&a).is_empty(), "sticky");
        assert_eq!(owned(&b), vec![0, 1]);
        // b leaves: a takes over on the leaving heartbeat, not after the lease.
        b.leave(now);
        assert!(owned(&b).is_empty());
        deliver(&mut b, &mut a, now).unwrap();
        assert_eq!(owned(&a), vec![0, 1]);
    }

    #[test]
    fn preempt_releases_to_a_ready_better_node() {
        let t0 = Instant::now();
        let mut b = node("b", 50, false, t0);
        b.settings.preempt = true;
        b.on_tick(t0 + LEASE);
        let mut a = node("a", 200, false, t0 + LEASE);
        let mut now = t0 + LEASE;
        for _ in 0..20 {
            now += INTERVAL;
            deliver(&mut a, &mut b, now).unwrap();
            deliver(&mut b, &mut a, now).unwrap();
            a.on_tick(now);
            b.on_tick(now);
        }
        assert_eq!(owned(&a), vec![0, 1]);
        assert!(owned(&b).is_empty());
        let released: Vec<_> = b
            .take_changes()
            .into_iter()
            .filter(|c| !c.acquired)
            .collect();
        assert_eq!(released.len(), 2, "{released:?}");
        assert!(released.iter().all(|c| c.reason == Reason::Preempted));
        assert!(released.iter().all(|c| c.planned), "a planned move");
    }

    /// Two nodes that have heard each other for a while; `a` owns both.
    fn settled(t0: Instant) -> (Tested, Tested, Instant) {
        let mut a = node("a", 200, false, t0);
        let mut b = node("b", 50, false, t0);
        let mut now = t0;
        while now < t0 + LEASE * 2 {
            now += INTERVAL;
            deliver(&mut a, &mut b, now).unwrap();
            deliver(&mut b, &mut a, now).unwrap();
            a.on_tick(now);
            b.on_tick(now);
        }
        assert_eq!(owned(&a), vec![0, 1]);
        a.take_changes();
        b.take_changes();
        (a, b, now)
    }

    #[test]
    fn forged_names_cannot_grow_the_peer_table() {
        let t0 = Instant::now();
        let mut a = node("a", 200, false, t0);
        let forged = |a: &mut Tested, name: String, now: Instant| {
            let mut other = node(&name, 50, false, now);
            deliver(&mut other, a, now)
        };
        for i in 0..MAX_KNOWN_PEERS {
            forged(&mut a, format!("f{i}"), t0).unwrap();
        }
        assert_eq!(
            forged(&mut a, "one-more".into(), t0),
            Err(Reject::TooManyPeers)
        );
        assert_eq!(a.peer_states(t0).len(), MAX_KNOWN_PEERS);
        // Once their leases are over, a newcomer takes a silent one's place.
        let later = t0 + LEASE;
        forged(&mut a, "newcomer".into(), later).unwrap();
        assert_eq!(a.peer_states(later).len(), MAX_KNOWN_PEERS);
        assert!(a.peer_states(later).iter().any(|p| p.node == "newcomer"));
    }

    #[test]
    fn forged_witnesses_cannot_grow_the_unknown_table() {
        let t0 = Instant::now();
        let mut a = node("a", 200, false, t0);
        let mut b = node("b", 50, false, t0);
        let captured = beat(&mut b, t0);
        // 200 heartbeats of b, each witnessing 32 nodes nobody has heard.
        for round in 0..200u32 {
            let mut witnesses = Vec::new();
            for i in 0..32u32 {
                let mut entry = [0u8; WITNESS_LEN];
                heartbeat::emit_witness(
                    &mut entry,
                    Witness {
                        node: round * 32 + i + 1,
                        incarnation: 1,
                        age_ms: 10,
                    },
                );
                witnesses.extend_from_slice(&entry);
            }
            let mut forged = Repr::parse(&captured).unwrap();
            forged.sequence = u64::from(round) + 10;
            forged.witnesses = &witnesses;
            let _ = a.on_heartbeat(t0, &forged);
        }
        assert_eq!(a.unknown.len(), MAX_KNOWN_PEERS);
    }

    /// Counts the heartbeats `policy` sends over `span`, ticking every ms.
    fn sends_over(policy: &mut Tested, from: Instant, span: Duration) -> usize {
        let mut sent = 0;
        let mut scratch = Scratch::default();
        for ms in 0..span.as_millis() as u64 {
            let now = from + Duration::from_millis(ms);
            policy.on_tick(now);
            if policy.wants_send(now) {
                policy.heartbeat(now, &mut scratch);
                sent += 1;
            }
        }
        sent
    }

    #[test]
    fn steady_heartbeats_go_once_per_interval_and_a_change_adds_a_short_burst() {
        let (mut a, _b, now) = settled(Instant::now());
        a.heartbeat(now, &mut Scratch::default());
        let later = now + INTERVAL * 4;
        let steady = sends_over(&mut a, later, INTERVAL * 10);
        assert_eq!(steady, 10, "one per interval once nothing changes");
        let after = later + INTERVAL * 10;
        a.set_draining(after, true);
        let burst = sends_over(&mut a, after, INTERVAL);
        assert_eq!(
            burst,
            1 + BURST as usize,
            "the change, then its repeats at a quarter interval"
        );
    }

    #[test]
    fn unfit_releases_at_once_and_fit_again_moves_nothing_back() {
        let (mut a, mut b, now) = settled(Instant::now());
        a.set_unfit(now, 1, Some(Unfit::LinkDown));
        assert_eq!(owned(&a), vec![0], "only the unfit service goes");
        let changes = a.take_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0].service, changes[0].reason),
            (1, Reason::Unfit(Unfit::LinkDown))
        );
        assert!(!changes[0].planned, "a fault, not a planned move");
        assert!(a.wants_send(now), "the release goes out at once");
        deliver(&mut a, &mut b, now).unwrap();
        assert_eq!(owned(&b), vec![1], "b takes it on that heartbeat");
        assert_eq!(a.unfit(1), Some(Unfit::LinkDown));
        deliver(&mut b, &mut a, now).unwrap();

        let later = now + INTERVAL;
        a.set_unfit(later, 1, None);
        deliver(&mut a, &mut b, later).unwrap();
        deliver(&mut b, &mut a, later).unwrap();
        a.on_tick(later);
        assert_eq!(owned(&a), vec![0], "sticky: b keeps it");
        // a is a candidate again: a hand-over from b gives it back.
        b.handover(later, 0).expect_err("b does not own 0");
        b.handover(later, 1).expect("a is a candidate again");
        deliver(&mut b, &mut a, later).unwrap();
        assert_eq!(owned(&a), vec![0, 1]);
    }

    #[test]
    fn each_call_returns_what_it_changed() {
        let (mut a, mut b, now) = settled(Instant::now());
        // Nothing to do: nothing returned but the heartbeat schedule.
        let idle = a.policy.set_draining(now, false);
        assert_eq!((idle.changes.len(), idle.reannounce.len()), (0, 0));
        let unfit = a.policy.set_unfit(now, 0, Some(Unfit::HealthFailing));
        assert_eq!(
            unfit.changes,
            vec![Change {
                service: 0,
                acquired: false,
                reason: Reason::Unfit(Unfit::HealthFailing),
                planned: false,
            }]
        );
        assert!(unfit.send, "the release is told at once");
        // b hears it and takes the service in the call that delivers it.
        let beat = beat(&mut a, now);
        let taken = b
            .policy
            .on_heartbeat(now, &Repr::parse(&beat).unwrap())
            .unwrap();
        assert_eq!(taken.changes.len(), 1);
        assert_eq!(
            (taken.changes[0].acquired, taken.changes[0].reason),
            (true, Reason::BestCandidate)
        );
        // A hand-over is a planned release, returned by the hand-over.
        let moved = a.policy.handover(now, 1).expect("b is a candidate");
        assert_eq!(moved.changes.len(), 1);
        assert!(moved.changes[0].planned && moved.send);
        assert_eq!(moved.changes[0].reason, Reason::HandedOver);
        // A new list without b's service: its removal is returned.
        let removed = b
            .policy
            .set_services(now, vec![services()[1].clone()], vec![None]);
        assert_eq!(removed.removed, vec![Arc::<str>::from("a")]);
    }

    #[test]
    fn drain_is_planned_and_a_new_service_list_keeps_what_is_unfit() {
        let (mut a, _b, now) = settled(Instant::now());
        a.set_draining(now, true);
        let changes = a.take_changes();
        assert_eq!(changes.len(), 2);
        assert!(changes
            .iter()
            .all(|c| c.planned && c.reason == Reason::Draining));
        a.set_draining(now, false);

        let mut more = services();
        more.push(ServiceSpec {
            name: "c".into(),
            ip: "192.0.2.9".parse().unwrap(),
            nodes: Vec::new(),
        });
        a.set_services(now, more, vec![None, None, Some(Unfit::HealthPending)]);
        assert_eq!(a.unfit(2), Some(Unfit::HealthPending));
        assert!(!a.me_candidate(2));
    }

    #[test]
    fn after_a_hand_over_the_old_owner_is_a_candidate_again() {
        let (mut a, mut b, mut now) = settled(Instant::now());
        a.handover(now, 0).expect("b is a candidate");
        // b takes it; a stays out while b holds it.
        for _ in 0..3 {
            now += INTERVAL;
            deliver(&mut a, &mut b, now).unwrap();
            deliver(&mut b, &mut a, now).unwrap();
            a.on_tick(now);
            b.on_tick(now);
        }
        assert_eq!(owned(&b), vec![0]);
        assert_eq!(owned(&a), vec![1]);
        assert!(a.heartbeat(now, &mut Scratch::default()).eligible[0] & 0x80 != 0);
        // b dies: after its lease a takes the service back.
        let dead = now;
        while now < dead + LEASE + INTERVAL {
            now += INTERVAL;
            a.on_tick(now);
        }
        assert_eq!(owned(&a), vec![0, 1]);
    }

    #[test]
    fn a_dead_peer_expires_after_the_lease() {
        let (_a, mut b, last) = settled(Instant::now());
        // a goes silent: b waits exactly the lease.
        assert_eq!(b.poll_at(last).min(last + LEASE), b.poll_at(last));
        b.on_tick(last + LEASE - Duration::from_millis(1));
        assert!(owned(&b).is_empty());
        b.on_tick(last + LEASE);
        assert_eq!(owned(&b), vec![0, 1]);
    }

    #[test]
    fn rejects_replays_other_clusters_and_name_clashes() {
        let t0 = Instant::now();
        let mut a = node("a", 200, false, t0);
        let mut b = node("b", 50, false, t0);
        let mut scratch = Scratch::default();
        let mut bytes = [0u8; heartbeat::MAX_LEN];
        let len = a
            .heartbeat(t0, &mut scratch)
            .emit(&mut bytes, None)
            .unwrap();
        let first = bytes[..len].to_vec();
        assert_eq!(b.on_heartbeat(t0, &Repr::parse(&first).unwrap()), Ok(()));
        assert_eq!(
            b.on_heartbeat(t0, &Repr::parse(&first).unwrap()),
            Err(Reject::Replay)
        );

        // a restarts: the new incarnation counts, the old one never again.
        let mut a2 = node("a", 200, false, t0);
        a2.incarnation = a.incarnation + 77;
        deliver(&mut a2, &mut b, t0).unwrap();
        let mut later = Repr::parse(&first).unwrap();
        later.sequence = 1000;
        assert_eq!(b.on_heartbeat(t0, &later), Err(Reject::Replay));

        let mut other = Repr::parse(&first).unwrap();
        other.cluster = "elsewhere";
        assert_eq!(b.on_heartbeat(t0, &other), Err(Reject::Cluster));
        let mut clash = Repr::parse(&first).unwrap();
        clash.node = "b";
        assert_eq!(b.on_heartbeat(t0, &clash), Err(Reject::DuplicateNode));
        clash.incarnation = b.incarnation;
        assert_eq!(b.on_heartbeat(t0, &clash), Err(Reject::Own));
        let mut wrong_count = Repr::parse(&first).unwrap();
        wrong_count.sequence = 2000;
        wrong_count.incarnation = a2.incarnation;
        wrong_count.service_count = 9;
        assert_eq!(b.on_heartbeat(t0, &wrong_count), Err(Reject::Inconsistent));
    }

    #[test]
    fn a_heartbeat_of_an_earlier_run_never_makes_a_node_deaf_to_the_live_one() {
        let t0 = Instant::now();
        let mut b = node("b", 50, false, t0);
        // a's first run: one heartbeat captured on the way.
        let mut a1 = node("a", 200, false, t0);
        let captured = beat(&mut a1, t0);
        // a restarts (a later incarnation), and b hears the new run.
        let mut a2 = node("a", 200, false, t0);
        a2.incarnation = a1.incarnation + 1;
        deliver(&mut a2, &mut b, t0).unwrap();
        // The capture arrives: refused, the live incarnation stays.
        let replayed = Repr::parse(&captured).unwrap();
        assert_eq!(b.on_heartbeat(t0, &replayed), Err(Reject::Replay));
        let later = t0 + INTERVAL;
        assert_eq!(deliver(&mut a2, &mut b, later), Ok(()), "still hears a2");
        assert!(b
            .peer_states(later)
            .iter()
            .any(|p| p.node == "a" && p.alive));

        // A restart whose clock went back (an older incarnation) counts once
        // the newer one has been silent for a whole lease.
        let mut a3 = node("a", 200, false, t0);
        a3.incarnation = a1.incarnation - 1;
        assert_eq!(deliver(&mut a3, &mut b, later), Err(Reject::Replay));
        let silent = later + LEASE;
        assert_eq!(deliver(&mut a3, &mut b, silent), Ok(()));
        // ...but a2 is not retired by it: if a2 was only cut off (and a3 a
        // replay), a2 is heard again at its next heartbeat, and a3 never again.
        let back = silent + INTERVAL;
        assert_eq!(deliver(&mut a2, &mut b, back), Ok(()));
        assert_eq!(deliver(&mut a3, &mut b, back), Err(Reject::Replay));
    }

    #[test]
    fn the_digest_does_not_change_between_versions() {
        // Nodes running different versions must agree on it: names and
        // addresses in their text form ("2001:db8::53"), FNV-1a, mixed.
        let specs: Vec<ServiceSpec> = [("dns", "2001:db8::53"), ("web", "192.0.2.1")]
            .iter()
            .map(|(name, ip)| ServiceSpec {
                name: Arc::from(*name),
                ip: ip.parse().unwrap(),
                nodes: Vec::new(),
            })
            .collect();
        assert_eq!(digest(&specs), 0x8c27_4aa1_ae9a_8ed1);
    }

    #[test]
    fn a_peer_with_another_service_list_blocks_new_claims() {
        let t0 = Instant::now();
        let mut b = node("b", 50, false, t0);
        let mut odd = node("z", 10, false, t0);
        odd.services[0].ip = "192.0.2.99".parse().unwrap();
        odd.digest = digest(&odd.services);
        let mut now = t0;
        while now < t0 + LEASE * 2 {
            now += INTERVAL;
            deliver(&mut odd, &mut b, now).unwrap();
            b.on_tick(now);
        }
        assert!(
            owned(&b).is_empty(),
            "no claims while the odd peer is alive"
        );
        assert_eq!(b.digest_mismatches().collect::<Vec<_>>(), vec!["z"]);
        b.on_tick(now + LEASE);
        assert_eq!(owned(&b), vec![0, 1], "it expired: claims resume");
    }

    #[test]
    fn spread_ranks_differ_per_service_and_priority_weighs() {
        let names = ["n1", "n2", "n3"];
        let winners: BTreeMap<String, &str> = (0..32)
            .map(|i| {
                let service = format!("vip{i}");
                let best = names
                    .iter()
                    .max_by_key(|n| rank(Mode::Spread, n, 100, &service))
                    .unwrap();
                (service, *best)
            })
            .collect();
        for name in names {
            assert!(
                winners.values().any(|w| *w == name),
                "{name} wins nothing: {winners:?}"
            );
        }
        let heavy = (0..32)
            .filter(|i| {
                let service = format!("vip{i}");
                rank(Mode::Spread, "n1", 255, &service) > rank(Mode::Spread, "n2", 1, &service)
            })
            .count();
        assert!(
            heavy >= 30,
            "priority 255 beats priority 1 almost always: {heavy}"
        );
    }

    #[test]
    fn a_witness_of_a_node_heard_later_does_not_keep_us_listening() {
        let t0 = Instant::now();
        let slow = |name: &str, priority| {
            let web = ServiceSpec {
                name: "web".into(),
                ip: "192.0.2.1".parse().unwrap(),
                nodes: Vec::new(),
            };
            policy(
                name,
                priority,
                vec![web],
                Duration::from_secs(1),
                Duration::from_secs(10),
                t0,
            )
        };
        let (mut a, mut b, mut c) = (slow("a", 200), slow("b", 100), slow("c", 50));
        // b hears c, then a hears b (witnessing c) before it hears c itself.
        let from_c = beat(&mut c, t0);
        b.on_heartbeat(t0, &Repr::parse(&from_c).unwrap()).unwrap();
        let from_b = beat(&mut b, t0);
        a.on_heartbeat(t0, &Repr::parse(&from_b).unwrap()).unwrap();
        a.on_heartbeat(t0, &Repr::parse(&from_c).unwrap()).unwrap();
        // At the end of its hold (5 s), a claims: it knows everybody.
        a.on_tick(t0 + Duration::from_secs(5));
        assert_eq!(a.owned().collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn three_nodes_booting_together_elect_the_best() {
        let t0 = Instant::now();
        let services: Vec<ServiceSpec> = [
            ("dns", vec!["r2".to_string(), "r3".to_string()]),
            ("web", vec![]),
            ("web6", vec![]),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (name, nodes))| ServiceSpec {
            name: name.into(),
            ip: IpAddr::from([192, 0, 2, 1 + i as u8]),
            nodes,
        })
        .collect();
        let mut nodes: Vec<Tested> = (1..=3u8)
            .map(|i| {
                let (interval, lease) = (Duration::from_secs(1), Duration::from_secs(10));
                policy(
                    &format!("r{i}"),
                    200 - 50 * i,
                    services.clone(),
                    interval,
                    lease,
                    t0,
                )
            })
            .collect();
        let mut now = t0;
        while now < t0 + Duration::from_secs(12) {
            for from in 0..3 {
                nodes[from].on_tick(now);
                if nodes[from].wants_send(now) {
                    let bytes = beat(&mut nodes[from], now);
                    for (to, node) in nodes.iter_mut().enumerate() {
                        if to != from {
                            node.on_heartbeat(now, &Repr::parse(&bytes).unwrap())
                                .unwrap();
                        }
                    }
                }
            }
            now += Duration::from_millis(10);
        }
        let owned: Vec<Vec<usize>> = nodes.iter().map(|n| n.owned().collect()).collect();
        assert_eq!(owned, vec![vec![1, 2], vec![0], vec![]], "{:#?}", nodes[0]);
    }
}
