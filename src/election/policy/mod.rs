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
//!
//! This file keeps this node's slots and their evaluation; the peers heard
//! are `peers`, ranking and the service-list digest `rank`, the heartbeat
//! this node sends `send`, and what every call returns `outputs`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Mode;
use crate::message::Unfit;
use crate::wire::heartbeat::{bit, name_hash, Repr};

mod outputs;
mod peers;
#[cfg(test)]
pub(crate) use peers::Rule;
mod rank;
mod send;
#[cfg(test)]
mod testing;

pub use outputs::{Change, HandoverError, Outputs, Reason};
use peers::Peers;
pub use peers::{PeerState, Reject, MAX_KNOWN_PEERS};
#[cfg(test)]
pub(crate) use rank::mix;
pub use rank::{digest, rank};
pub use send::Scratch;

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

impl ServiceSpec {
    /// Whether `node` may own it (its `nodes` list it, or are empty).
    pub fn allows(&self, node: &str) -> bool {
        self.nodes.is_empty() || self.nodes.iter().any(|n| n == node)
    }
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
    /// Some alive peer could own it now, whatever its rank.
    other_candidate: bool,
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
    /// This node's state of each service, in canonical order.
    slots: Vec<Slot>,
    draining: bool,
    leaving: bool,
    /// Quick repeats left after a state change.
    burst_left: u8,
    was_joining: bool,
    peers: Peers,
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

impl Policy {
    /// A new election state; `incarnation` orders this process's start
    /// after every earlier one of this node (`incarnation.rs`).
    pub fn new(
        settings: Settings,
        services: Vec<ServiceSpec>,
        incarnation: u64,
        now: Instant,
    ) -> Policy {
        let slots = services
            .iter()
            .map(|s| Slot::new(s.allows(&settings.node)))
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
            slots,
            draining: false,
            leaving: false,
            was_joining: true,
            burst_left: 0,
            peers: Peers::new(settings.lease),
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

    fn alive(&self, peer: &peers::Peer, now: Instant) -> bool {
        self.peers.alive(peer, now)
    }

    /// Still listening after start: claims nothing, is nobody's candidate.
    fn joining(&self, now: Instant) -> bool {
        now < self.hold_until || self.peers.unknown_may_hold(now)
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
        self.peers
            .expiries()
            .chain([self.hold_until, self.joining_until, self.booting_until()])
            .chain(self.peers.unknown_until())
            .chain(self.slots.iter().filter_map(|slot| slot.handing_over))
            .filter(|at| *at > now)
            .fold(self.next_send, Instant::min)
    }

    /// Takes in a parsed, authenticated heartbeat.
    pub fn on_heartbeat(&mut self, now: Instant, beat: &Repr<'_>) -> Result<Outputs, Reject> {
        let digest_ok = self.addressed(beat)?;
        let admitted = self.peers.admit(now, beat, digest_ok, &mut self.stale)?;
        let own_hash = name_hash(&self.settings.node);
        let mut stale_all = admitted.standing_changed;
        for witness in beat.witnesses() {
            stale_all |= self
                .peers
                .witness(now, beat.node, own_hash, witness, self.joining_until);
        }
        self.stale_all |= stale_all;
        self.evaluate(now);
        if admitted.revived {
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

    /// Whether `beat` is for this node to hear: of its cluster, from
    /// another node, and consistent; Ok says whether its service list is ours.
    fn addressed(&self, beat: &Repr<'_>) -> Result<bool, Reject> {
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
        Ok(digest_ok)
    }

    /// Advances time: expiries, the end of the hold, heartbeats due.
    pub fn on_tick(&mut self, now: Instant) -> Outputs {
        // A regular heartbeat is due: send it, with no burst after it.
        if now >= self.next_send {
            self.send_now = true;
        }
        if self.peers.forget_unknown(now) {
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
            other_candidate: false,
        };
        for (name, peer) in self.peers.iter() {
            if !self.alive(peer, now) || !peer.digest_ok {
                continue;
            }
            let better = rank(mode, name, peer.priority, service) > me;
            if bit(&peer.claims, index) {
                view.any_claimant = true;
                view.better_claimant |= better;
            }
            if !peer.draining && bit(&peer.eligible, index) {
                view.other_candidate |= !peer.joining;
                view.better_booting |= better && peer.joining && booting;
                view.better_candidate |= better && !peer.joining;
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
        passed(self.hold_until)
            || passed(self.joining_until)
            || passed(self.booting_until())
            || self.peers.expiries().any(passed)
            || self.peers.unknown_until().any(passed)
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
            // The planned move is over: another node took it, none is
            // left that could (it turned unfit or drained meanwhile), or
            // nobody did within a lease. A candidate again.
            if now >= until || view.any_claimant || !view.other_candidate {
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
                let eligible = service.allows(&self.settings.node);
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
        self.peers.forget_services();
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
        if !self.view(index, now).other_candidate {
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
        self.peers.states(now)
    }

    /// Still listening after its start: claims nothing, is nobody's
    /// candidate yet.
    #[cfg(test)]
    pub(crate) fn listening(&self, now: Instant) -> bool {
        self.joining(now)
    }

    /// Admits heartbeats by another rule than today's (see `peers::Rule`),
    /// to show what it lets happen.
    #[cfg(test)]
    pub(crate) fn with_rule(mut self, rule: peers::Rule) -> Policy {
        self.peers.set_rule(rule);
        self
    }

    /// Feeds this node's whole election state into `state`, every instant
    /// as its distance from `now` in milliseconds, clamped to `horizon`:
    /// two states that differ only by when they happened, or by how long
    /// ago something beyond the horizon happened, feed the same. Sound for
    /// a horizon longer than any span the policy adds to an instant or
    /// compares with one (lease, hold, two intervals): beyond it every
    /// comparison with `now` comes out alike. The model checker's state.
    #[cfg(test)]
    pub(crate) fn fingerprint<H: std::hash::Hasher>(
        &self,
        now: Instant,
        horizon: Duration,
        state: &mut H,
    ) {
        use std::hash::Hash;
        let at = |t: Instant| relative(t, now, horizon);
        let s = &self.settings;
        (
            s.priority,
            s.preempt,
            self.digest,
            self.incarnation,
            self.sequence,
        )
            .hash(state);
        (
            at(self.hold_until),
            at(self.joining_until),
            at(self.next_send),
        )
            .hash(state);
        (
            at(self.settled_at),
            self.send_now,
            self.stale_all,
            &self.stale,
        )
            .hash(state);
        (
            self.draining,
            self.leaving,
            self.burst_left,
            self.was_joining,
        )
            .hash(state);
        for slot in &self.slots {
            let unfit = slot.unfit.map(Unfit::as_str);
            (slot.eligible, unfit, slot.claimed, slot.contested).hash(state);
            (slot.handing_over.map(at), slot.acquired_at.is_some()).hash(state);
        }
        self.peers.fingerprint(now, horizon, state);
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
}

/// `t` as milliseconds from `now`, within plus or minus `horizon`.
#[cfg(test)]
fn relative(t: Instant, now: Instant, horizon: Duration) -> i64 {
    let limit = horizon.as_millis() as i64;
    let ms = if t >= now {
        (t - now).as_millis() as i64
    } else {
        -((now - t).as_millis() as i64)
    };
    ms.clamp(-limit, limit)
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

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
        exchange(&mut a, &mut b, t0 + LEASE, 20);
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

    /// Found by the model checker: the only candidate turns unfit just as
    /// the owner hands over to it. The owner used to stay out for a
    /// lease, with nobody serving; it takes the service back as soon as
    /// it hears that no candidate is left.
    #[test]
    fn a_hand_over_whose_candidate_turns_unfit_meanwhile_ends_at_once() {
        let (mut a, mut b, now) = settled(Instant::now());
        b.set_unfit(now, 0, Some(Unfit::HealthFailing));
        a.handover(now, 0).expect("b was a candidate when asked");
        assert_eq!(owned(&a), vec![1]);
        deliver(&mut b, &mut a, now).unwrap();
        assert_eq!(owned(&a), vec![0, 1], "taken back on b's heartbeat");
        assert!(owned(&b).is_empty());
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
