//! The peers this node hears: which heartbeats are admitted (in order
//! within an incarnation, incarnations ordered, a bounded table), what each
//! peer says, the witnesses heartbeats carry, and the nodes only witnessed
//! so far.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::wire::heartbeat::{self, bitmap_len, name_hash, Repr, Witness, WITNESS_LEN};

/// Why a heartbeat was not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// From another cluster.
    Cluster,
    /// Our own heartbeat (multicast loopback).
    Own,
    /// Another process uses our node name.
    DuplicateNode,
    /// Sequence not newer than what was heard of its incarnation, or an
    /// older incarnation never heard while the newer one is alive.
    Replay,
    /// Digest matches but the service count does not.
    Inconsistent,
    /// A new node while `MAX_KNOWN_PEERS` others are alive.
    TooManyPeers,
}

/// The most peers remembered at once (a cluster is ~16 nodes): more, with
/// all of them alive, are refused, so forged names cannot grow the table.
/// The same bound holds for nodes only witnessed.
pub const MAX_KNOWN_PEERS: usize = 64;

/// Earlier incarnations remembered per peer, each with the last sequence
/// heard of it, so what was heard of them never counts again.
const EARLIER: usize = 8;

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

/// What this node knows of one peer, from its last admitted heartbeat.
#[derive(Debug, Clone)]
pub(super) struct Peer {
    /// `name_hash` of its name, as witnesses name it.
    pub(super) hash: u32,
    pub(super) incarnation: u64,
    sequence: u64,
    pub(super) priority: u8,
    /// Last valid heartbeat received directly.
    pub(super) heard: Instant,
    /// Last sign of life, direct or through a witness.
    pub(super) seen: Instant,
    /// Services it claims, as a bitmap over our list (when `digest_ok`).
    pub(super) claims: Vec<u8>,
    /// Services it may serve now, likewise.
    pub(super) eligible: Vec<u8>,
    /// Its service list is ours.
    pub(super) digest_ok: bool,
    pub(super) draining: bool,
    pub(super) leaving: bool,
    pub(super) joining: bool,
    /// Its earlier incarnations and the last sequence heard of each, the
    /// most recently left last.
    earlier: Vec<(u64, u64)>,
    /// How it admits other heartbeats (`Peers::rule`).
    #[cfg(test)]
    rule: Rule,
}

/// For the model checker: how peers admit a heartbeat, today's rule or a
/// rule this code had or could have, to show what that rule lets happen.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Rule {
    #[default]
    Today,
    /// 0.1.0's: an incarnation another replaced never counts again, and
    /// no sequence is kept of earlier runs.
    Retired,
    /// No replay memory: no sequence is kept, of this run or earlier ones.
    Forgetful,
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

/// What an admitted heartbeat changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Admitted {
    /// Heard again after its lease ran out, without a restart: a partition
    /// healed, and it may have claimed this node's VIPs meanwhile.
    pub(super) revived: bool,
    /// New, restarted, or changed in what counts for every service.
    pub(super) standing_changed: bool,
}

/// Every peer heard, and every node only witnessed; both bounded.
#[derive(Debug, Clone)]
pub(super) struct Peers {
    lease: Duration,
    by_name: BTreeMap<String, Peer>,
    /// Witnessed nodes not heard ourselves, by name hash: until when such
    /// a node may hold services.
    unknown: Vec<(u32, Instant)>,
    /// For the model checker: another rule than today's (`Rule`).
    #[cfg(test)]
    rule: Rule,
}

impl Peers {
    pub(super) fn new(lease: Duration) -> Peers {
        Peers {
            lease,
            by_name: BTreeMap::new(),
            unknown: Vec::new(),
            #[cfg(test)]
            rule: Rule::Today,
        }
    }

    /// Heard (directly or through a witness) within the lease, not leaving.
    pub(super) fn alive(&self, peer: &Peer, now: Instant) -> bool {
        !peer.leaving && now < peer.seen + self.lease
    }

    /// Every peer heard, by name.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &Peer)> {
        self.by_name.iter()
    }

    /// Every peer heard.
    pub(super) fn values(&self) -> impl Iterator<Item = &Peer> {
        self.by_name.values()
    }

    /// When each peer that is not leaving expires, unless heard again.
    pub(super) fn expiries(&self) -> impl Iterator<Item = Instant> + '_ {
        self.values()
            .filter(|p| !p.leaving)
            .map(move |p| p.seen + self.lease)
    }

    /// Until when each node only witnessed may hold services.
    pub(super) fn unknown_until(&self) -> impl Iterator<Item = Instant> + '_ {
        self.unknown.iter().map(|(_, until)| *until)
    }

    /// A node others witness, and we have not heard, may hold services now.
    pub(super) fn unknown_may_hold(&self, now: Instant) -> bool {
        self.unknown.iter().any(|(hash, until)| {
            // Once heard directly it is no longer unknown.
            now < *until && !self.values().any(|peer| peer.hash == *hash)
        })
    }

    /// Forgets the witnessed nodes whose time is over; true when any was.
    pub(super) fn forget_unknown(&mut self, now: Instant) -> bool {
        let before = self.unknown.len();
        self.unknown.retain(|(_, until)| now < *until);
        self.unknown.len() != before
    }

    /// Our service list changed: what peers said of the old one no longer
    /// counts, until their next heartbeat with the new digest.
    pub(super) fn forget_services(&mut self) {
        for peer in self.by_name.values_mut() {
            peer.digest_ok = false;
            peer.claims.clear();
            peer.eligible.clear();
        }
    }

    /// Admits `beat` (of this cluster, not ours) or says why not, and takes
    /// in what it says. Services whose claim or eligibility bit of the peer
    /// changed go onto `stale`.
    pub(super) fn admit(
        &mut self,
        now: Instant,
        beat: &Repr<'_>,
        digest_ok: bool,
        stale: &mut Vec<usize>,
    ) -> Result<Admitted, Reject> {
        // How this incarnation of the peer stood before: None when it is
        // new to us, or restarted.
        let before = self
            .by_name
            .get(beat.node)
            .filter(|peer| peer.incarnation == beat.incarnation)
            .map(|peer| Standing::of(peer, self.alive(peer, now)));
        let lease = self.lease;
        let revived = match self.by_name.get_mut(beat.node) {
            Some(peer) => peer.order(now, beat, lease)?,
            None => {
                self.make_room(now)?;
                self.by_name
                    .insert(beat.node.to_string(), Peer::new(now, beat, digest_ok));
                #[cfg(test)]
                {
                    let rule = self.rule;
                    if let Some(peer) = self.by_name.get_mut(beat.node) {
                        peer.rule = rule;
                    }
                }
                false
            }
        };
        let mut standing_changed = false;
        if let Some(peer) = self.by_name.get_mut(beat.node) {
            // Which services it claims or may own differently than before:
            // the ones to evaluate again, when nothing else changed.
            if before.is_some_and(|b| b.digest_ok && b.claims_len == beat.claims.len()) {
                peer.changed_bits(beat, stale);
            }
            peer.take(now, beat, digest_ok);
            standing_changed = before != Some(Standing::of(peer, !beat.leaving));
        }
        Ok(Admitted {
            revived,
            standing_changed,
        })
    }

    /// Room for one more peer: the longest-silent peer whose lease is over
    /// is forgotten when the table is full; with every one alive, none.
    fn make_room(&mut self, now: Instant) -> Result<(), Reject> {
        if self.by_name.len() < MAX_KNOWN_PEERS {
            return Ok(());
        }
        let forgotten = self
            .by_name
            .iter()
            .filter(|(_, p)| !self.alive(p, now))
            .min_by_key(|(_, p)| p.heard)
            .map(|(name, _)| name.clone());
        match forgotten {
            Some(name) => {
                self.by_name.remove(&name);
                Ok(())
            }
            None => Err(Reject::TooManyPeers),
        }
    }

    /// Takes in one witness entry of `sender`'s heartbeat; true when it
    /// changed what every service sees (a peer we had given up on is alive
    /// again, or a node we have not heard may hold services). Unheard
    /// nodes are noted only while this node is joining (`joining_until`).
    pub(super) fn witness(
        &mut self,
        now: Instant,
        sender: &str,
        own_hash: u32,
        witness: Witness,
        joining_until: Instant,
    ) -> bool {
        if witness.node == own_hash {
            return false;
        }
        let age = Duration::from_millis(u64::from(witness.age_ms));
        let lease = self.lease;
        if age >= lease {
            return false;
        }
        let at = now.checked_sub(age).unwrap_or(now);
        let known = self
            .by_name
            .iter_mut()
            .find(|(name, peer)| peer.hash == witness.node && name.as_str() != sender);
        match known {
            Some((_, peer)) if !peer.leaving && peer.incarnation as u32 == witness.incarnation => {
                let was_alive = now < peer.seen + lease;
                peer.seen = peer.seen.max(at);
                !was_alive && now < peer.seen + lease
            }
            Some(_) => false,
            None if now < joining_until => {
                self.note_unknown(witness.node, (at + lease).min(joining_until))
            }
            None => false,
        }
    }

    /// Notes that the unheard node `hash` may hold services until `until`;
    /// true when that is news.
    fn note_unknown(&mut self, hash: u32, until: Instant) -> bool {
        let room = self.unknown.len() < MAX_KNOWN_PEERS;
        match self.unknown.iter_mut().find(|(known, _)| *known == hash) {
            Some((_, known_until)) if *known_until < until => {
                *known_until = until;
                true
            }
            Some(_) => false,
            // Bounded like the peer table: forged witnesses cannot grow it,
            // nor the cost of each heartbeat.
            None if room => {
                self.unknown.push((hash, until));
                true
            }
            None => false,
        }
    }

    /// The witness entries of this node's next heartbeat: every peer heard
    /// directly within the lease, with its age, up to the most that fit.
    pub(super) fn witness_entries(&self, now: Instant, out: &mut Vec<u8>) {
        out.clear();
        for peer in self
            .values()
            .filter(|p| !p.leaving && now < p.heard + self.lease)
        {
            if out.len() / WITNESS_LEN >= heartbeat::MAX_WITNESSES {
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
            out.extend_from_slice(&entry);
        }
    }

    /// What this node knows of each peer it has heard.
    pub(super) fn states(&self, now: Instant) -> Vec<PeerState> {
        self.iter()
            .map(|(name, p)| PeerState {
                node: name.clone(),
                priority: p.priority,
                alive: self.alive(p, now),
                last_heard: now.saturating_duration_since(p.heard),
                lease_left: (p.seen + self.lease).saturating_duration_since(now),
                draining: p.draining,
                joining: p.joining,
                leaving: p.leaving,
                same_services: p.digest_ok,
            })
            .collect()
    }
}

#[cfg(test)]
impl Peers {
    /// Admits by `rule` from now on, for peers heard already too.
    pub(super) fn set_rule(&mut self, rule: Rule) {
        self.rule = rule;
        self.by_name.values_mut().for_each(|p| p.rule = rule);
    }

    /// Feeds what this table is into `state`, each instant as its distance
    /// from `now` clamped to `horizon` (see `Policy::fingerprint`).
    pub(super) fn fingerprint<H: std::hash::Hasher>(
        &self,
        now: Instant,
        horizon: Duration,
        state: &mut H,
    ) {
        use std::hash::Hash;
        let at = |t: Instant| super::relative(t, now, horizon);
        for (name, p) in &self.by_name {
            name.hash(state);
            (
                p.incarnation,
                p.sequence,
                p.priority,
                at(p.heard),
                at(p.seen),
            )
                .hash(state);
            (
                &p.claims,
                &p.eligible,
                p.digest_ok,
                p.draining,
                p.leaving,
                p.joining,
            )
                .hash(state);
            p.earlier.hash(state);
        }
        for (hash, until) in &self.unknown {
            (hash, at(*until)).hash(state);
        }
    }
}

impl Peer {
    /// A peer first heard now, through `beat`.
    fn new(now: Instant, beat: &Repr<'_>, digest_ok: bool) -> Peer {
        let bitmap = bitmap_len(beat.service_count);
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
            earlier: Vec::new(),
            #[cfg(test)]
            rule: Rule::Today,
        }
    }

    /// Whether `beat` comes after what this peer said last: a newer
    /// sequence of its incarnation, or another incarnation that may count.
    /// Ok(true): heard again after its lease ran out, without a restart.
    fn order(&mut self, now: Instant, beat: &Repr<'_>, lease: Duration) -> Result<bool, Reject> {
        let live = !self.leaving && now < self.seen + lease;
        #[cfg(test)]
        match self.rule {
            Rule::Today => {}
            Rule::Retired if self.incarnation != beat.incarnation => {
                return self.order_retired(beat, live);
            }
            Rule::Retired => {}
            Rule::Forgetful => return self.order_forgetful(beat, live),
        }
        if self.incarnation == beat.incarnation {
            if beat.sequence <= self.sequence {
                return Err(Reject::Replay);
            }
            return Ok(!self.leaving && !live);
        }
        if let Some(at) = self.earlier.iter().position(|e| e.0 == beat.incarnation) {
            // A run heard before, past the last sequence heard of it: that
            // process is alive (the one that took its place may have been
            // a replay, or an older run after a clock step), so it counts
            // again, and the other keeps its own last sequence.
            if beat.sequence <= self.earlier[at].1 {
                return Err(Reject::Replay);
            }
            self.earlier.remove(at);
        } else {
            // Incarnations are ordered (the start counter and clock of
            // `incarnation.rs`): an older one never heard, while the newer
            // is alive, is a replay from an earlier run. After a lease of
            // silence it is a restart whose counter and clock went back.
            if beat.incarnation < self.incarnation && live {
                return Err(Reject::Replay);
            }
            if self.earlier.len() == EARLIER {
                self.earlier.remove(0);
            }
        }
        self.earlier.push((self.incarnation, self.sequence));
        self.incarnation = beat.incarnation;
        self.sequence = 0;
        Ok(false)
    }

    /// 0.1.0's rule for another incarnation than the one heard: one that
    /// was replaced never counts again; an older one only after a lease of
    /// silence, and it replaces nothing.
    #[cfg(test)]
    fn order_retired(&mut self, beat: &Repr<'_>, live: bool) -> Result<bool, Reject> {
        let older = beat.incarnation < self.incarnation;
        if self.earlier.iter().any(|e| e.0 == beat.incarnation) || (older && live) {
            return Err(Reject::Replay);
        }
        if !older {
            if self.earlier.len() == EARLIER {
                self.earlier.remove(0);
            }
            self.earlier.push((self.incarnation, self.sequence));
        }
        self.incarnation = beat.incarnation;
        self.sequence = 0;
        Ok(false)
    }

    /// With no replay memory: any heartbeat of the run heard counts, and
    /// another run replaces it unless it is older while this one is alive.
    #[cfg(test)]
    fn order_forgetful(&mut self, beat: &Repr<'_>, live: bool) -> Result<bool, Reject> {
        if self.incarnation == beat.incarnation {
            return Ok(!self.leaving && !live);
        }
        if beat.incarnation < self.incarnation && live {
            return Err(Reject::Replay);
        }
        self.incarnation = beat.incarnation;
        self.sequence = 0;
        Ok(false)
    }

    /// Pushes onto `stale` the services whose claim or eligibility bit
    /// differs between what this peer said and what `beat` says.
    fn changed_bits(&self, beat: &Repr<'_>, stale: &mut Vec<usize>) {
        for (old, new) in [(&self.claims, beat.claims), (&self.eligible, beat.eligible)] {
            for (byte, (a, b)) in old.iter().zip(new).enumerate() {
                let mut differ = a ^ b;
                while differ != 0 {
                    let bit = differ.leading_zeros() as usize;
                    differ &= !(0x80 >> bit);
                    stale.push(byte * 8 + bit);
                }
            }
        }
    }

    /// Takes in what an admitted `beat` says.
    fn take(&mut self, now: Instant, beat: &Repr<'_>, digest_ok: bool) {
        self.sequence = beat.sequence;
        self.priority = beat.priority;
        self.heard = now;
        self.seen = self.seen.max(now);
        self.claims.clear();
        self.claims.extend_from_slice(beat.claims);
        self.eligible.clear();
        self.eligible.extend_from_slice(beat.eligible);
        self.digest_ok = digest_ok;
        self.draining = beat.draining;
        self.leaving = beat.leaving;
        self.joining = beat.joining;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testing::*;
    use super::super::{Scratch, ServiceSpec};
    use super::*;
    use crate::wire::heartbeat::{self, Repr, Witness, WITNESS_LEN};

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
        assert_eq!(a.peers.unknown.len(), MAX_KNOWN_PEERS);
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

        // a restarts: the new incarnation counts, and what b heard of the
        // old one never again.
        let mut a2 = node("a", 200, false, t0);
        a2.incarnation = a.incarnation + 77;
        deliver(&mut a2, &mut b, t0).unwrap();
        assert_eq!(
            b.on_heartbeat(t0, &Repr::parse(&first).unwrap()),
            Err(Reject::Replay)
        );

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
        let from_a3 = beat(&mut a3, silent);
        assert_eq!(
            b.on_heartbeat(silent, &Repr::parse(&from_a3).unwrap()),
            Ok(())
        );
        // ...but a2 is not forgotten: if a2 was only cut off (and a3 a
        // replay), a2 is heard again at its next heartbeat, and what b
        // heard of a3 never again.
        let back = silent + INTERVAL;
        assert_eq!(deliver(&mut a2, &mut b, back), Ok(()));
        let replayed = Repr::parse(&from_a3).unwrap();
        assert_eq!(b.on_heartbeat(back, &replayed), Err(Reject::Replay));
    }

    #[test]
    fn a_replay_of_the_newer_run_after_a_restart_with_the_clock_behind_is_refused() {
        let t0 = Instant::now();
        let (mut a1, mut b, last) = settled(t0);
        // One heartbeat of a's run that b heard, one that b missed.
        let heard = beat(&mut a1, last);
        b.on_heartbeat(last, &Repr::parse(&heard).unwrap()).unwrap();
        let missed = beat(&mut a1, last + INTERVAL);
        // a restarts with its clock behind and no counter: an older
        // incarnation, heard once the newer one was silent for a lease.
        let mut a2 = node("a", 200, false, t0);
        a2.incarnation = a1.incarnation - 1;
        let restarted = last + LEASE + INTERVAL;
        b.on_tick(restarted);
        let mut now = exchange(&mut a2, &mut b, restarted, 10);
        // The capture b heard is replayed: refused, and b keeps hearing
        // every heartbeat of the live run.
        let replayed = Repr::parse(&heard).unwrap();
        assert_eq!(b.on_heartbeat(now, &replayed), Err(Reject::Replay));
        now = exchange(&mut a2, &mut b, now, 30);
        // One b missed counts once, as a sign of life of that run, and the
        // live run's next heartbeat counts again.
        let unheard = Repr::parse(&missed).unwrap();
        assert_eq!(b.on_heartbeat(now, &unheard), Ok(()));
        assert_eq!(b.on_heartbeat(now, &unheard), Err(Reject::Replay));
        now = exchange(&mut a2, &mut b, now, 30);
        assert!(b.peer_states(now).iter().any(|p| p.node == "a" && p.alive));
        // One owner per service.
        let mut both = owned(&a2);
        both.extend(owned(&b));
        both.sort();
        assert_eq!(both, vec![0, 1]);
    }

    /// The model checker's counterexample to 0.1.0's rule, step by step:
    /// a node leaves and restarts at once with its clock behind, and its
    /// goodbye reaches a peer after the new run's first heartbeat. 0.1.0
    /// let the goodbye's (later) incarnation retire the new run for good;
    /// today the goodbye counts for its own run, the peer takes the node
    /// as leaving until the new run's next heartbeat, and hears it again.
    #[test]
    fn a_goodbye_overtaken_by_the_next_runs_first_heartbeat_leaves_that_run_heard() {
        let t0 = Instant::now();
        let mut b = node("b", 50, false, t0);
        let mut a1 = node("a", 200, false, t0);
        a1.leave(t0);
        let goodbye = beat(&mut a1, t0);
        assert!(Repr::parse(&goodbye).unwrap().leaving);
        let mut a2 = node("a", 200, false, t0);
        a2.incarnation = a1.incarnation - 1;
        deliver(&mut a2, &mut b, t0).unwrap();
        b.on_heartbeat(t0, &Repr::parse(&goodbye).unwrap()).unwrap();
        let alive = |b: &Tested, now| b.peer_states(now).iter().any(|p| p.node == "a" && p.alive);
        assert!(!alive(&b, t0), "a goodbye: leaving");
        let now = t0 + INTERVAL;
        deliver(&mut a2, &mut b, now).unwrap();
        assert!(alive(&b, now), "the new run is heard again");
        let now = exchange(&mut a2, &mut b, now, 30);
        assert!(alive(&b, now));
        let retired = super::super::Policy::new(b.settings.clone(), services(), 1, t0);
        let retired = retired.with_rule(Rule::Retired);
        let mut b = Tested::new(retired);
        let mut a2 = node("a", 200, false, t0);
        a2.incarnation = a1.incarnation - 1;
        deliver(&mut a2, &mut b, t0).unwrap();
        b.on_heartbeat(t0, &Repr::parse(&goodbye).unwrap()).unwrap();
        for round in 1..=30 {
            let now = t0 + INTERVAL * round;
            let heard = deliver(&mut a2, &mut b, now);
            assert_eq!(heard, Err(Reject::Replay), "0.1.0's rule: deaf to it");
            assert!(!alive(&b, now));
        }
    }

    /// The model checker's counterexample without replay memory: the
    /// owner crashes, and its last heartbeat, replayed to the survivor
    /// before the lease runs out, would make it alive for another lease,
    /// its services owned by nobody. Today the replay is refused and the
    /// survivor takes over a lease after the last heartbeat it heard.
    #[test]
    fn a_replay_of_a_crashed_owners_last_heartbeat_does_not_delay_the_takeover() {
        for rule in [Rule::Today, Rule::Forgetful] {
            let t0 = Instant::now();
            let (mut a, b, mut now) = settled(t0);
            let mut b = Tested::new(b.policy.clone().with_rule(rule));
            now += INTERVAL;
            let last = beat(&mut a, now);
            b.on_heartbeat(now, &Repr::parse(&last).unwrap()).unwrap();
            // a crashes; its last heartbeat comes again before the lease
            // runs out.
            let crashed = now;
            let replayed = b.on_heartbeat(crashed + LEASE / 2, &Repr::parse(&last).unwrap());
            while now < crashed + LEASE + INTERVAL {
                now += INTERVAL / 4;
                b.on_tick(now);
            }
            if rule == Rule::Today {
                assert_eq!(replayed, Err(Reject::Replay));
                assert_eq!(owned(&b), vec![0, 1], "taken over");
            } else {
                assert_eq!(replayed, Ok(()));
                assert!(owned(&b).is_empty(), "no replay memory: still waiting");
            }
        }
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
}
