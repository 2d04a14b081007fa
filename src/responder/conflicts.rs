//! Claims on the VIPs this node owns, by hosts that are not this node:
//! each waits until the election could have heard a cluster node that
//! claims the VIP too (a split brain, not a conflict); then it is judged,
//! counted, kept for `status`, logged at most every `DEFEND_EVERY`, and
//! defended with one announcement round at most that often (RFC 5227
//! §2.4 (b): never a loop with another claimant).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::schedule::later;
use crate::counters::Counters;
use crate::wire::EthernetAddress;

/// Claims on one VIP are defended with at most one announcement this
/// often, and a conflict is logged at most this often.
pub const DEFEND_EVERY: Duration = Duration::from_secs(10);
/// Claimants (VIP and MAC) waiting to be judged, and conflicts kept for
/// `status`: bounded, the oldest go first. Claims by one claimant merge, so
/// a host that claims hard is one entry however fast it claims.
const MAX_SUSPECTS: usize = 64;
const MAX_CONFLICTS: usize = 32;
/// Conflict log lines per `DEFEND_EVERY`, whatever the claimants: fresh MACs
/// by the thousand must not fill the log (OpenWrt keeps a small ring). The
/// rest are summed up per VIP when the period ends.
const MAX_LOGGED: usize = 4;

/// Claims on an owned VIP from a MAC that is not ours, waiting for the
/// election to say whether another cluster node claims the VIP too.
#[derive(Debug, Clone, Copy)]
struct Suspect {
    slot: usize,
    ip: IpAddr,
    mac: EthernetAddress,
    /// Claims merged into this entry.
    claims: u64,
    /// When the loop first saw it (stamped by `judge`).
    seen: Option<Instant>,
}

/// Another host claiming a VIP this node owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// The VIP.
    pub ip: IpAddr,
    /// The claimant's MAC.
    pub mac: EthernetAddress,
    /// Claims seen.
    pub count: u64,
    /// The last one.
    pub last_seen: Instant,
    /// When it was last logged.
    logged: Option<Instant>,
}

/// What `judge` found: conflicts to log now, VIPs to defend now, and how
/// many more claimants (MACs) claimed each VIP in the period just ended
/// without a line of their own.
#[derive(Debug, Default)]
pub(super) struct Judged {
    pub(super) log: Vec<Conflict>,
    pub(super) defend: Vec<IpAddr>,
    pub(super) unlogged: Vec<(IpAddr, u64)>,
}

/// The claims waiting, the conflicts seen, and when each VIP was defended.
#[derive(Debug)]
pub(super) struct Conflicts {
    /// VIPs another cluster node claims too: a split brain, not a conflict.
    contested: Vec<IpAddr>,
    /// Claims waiting to be judged.
    suspects: Vec<Suspect>,
    /// Confirmed conflicts, the most recent last.
    seen: Vec<Conflict>,
    /// When each VIP was last defended.
    defended: Vec<(IpAddr, Instant)>,
    /// How long a claim waits for the election (two heartbeat intervals).
    judge_after: Duration,
    /// The log period: when it began, and the lines written in it.
    period: Option<(Instant, usize)>,
    /// Claimants of each VIP not logged in this period.
    unlogged: Vec<(IpAddr, u64)>,
}

impl Conflicts {
    pub(super) fn new() -> Conflicts {
        Conflicts {
            contested: Vec::new(),
            suspects: Vec::new(),
            seen: Vec::new(),
            defended: Vec::new(),
            judge_after: Duration::from_secs(2),
            period: None,
            unlogged: Vec::new(),
        }
    }

    pub(super) fn set_judge_after(&mut self, after: Duration) {
        self.judge_after = after;
    }

    pub(super) fn set_contested(&mut self, ips: Vec<IpAddr>) {
        self.contested = ips;
    }

    /// The conflicts seen, the most recent last.
    pub(super) fn seen(&self) -> &[Conflict] {
        &self.seen
    }

    /// Notes a claim on `ip` (owned on `slot`) by `mac`: merged into the
    /// claimant's waiting entry, if it has one.
    pub(super) fn suspect(&mut self, slot: usize, ip: IpAddr, mac: EthernetAddress) {
        let same = |s: &&mut Suspect| (s.slot, s.ip, s.mac) == (slot, ip, mac);
        if let Some(waiting) = self.suspects.iter_mut().find(same) {
            waiting.claims = waiting.claims.saturating_add(1);
            return;
        }
        if self.suspects.len() >= MAX_SUSPECTS {
            self.suspects.remove(0);
        }
        self.suspects.push(Suspect {
            slot,
            ip,
            mac,
            claims: 1,
            seen: None,
        });
    }

    /// When the next waiting claim is due to be judged.
    pub(super) fn poll_at(&self) -> Option<Instant> {
        let judged = self
            .suspects
            .iter()
            .filter_map(|s| s.seen.map(|seen| later(seen, self.judge_after)));
        // The end of a period with claimants to sum up.
        let summary = self
            .period
            .filter(|_| !self.unlogged.is_empty())
            .map(|(began, _)| later(began, DEFEND_EVERY));
        judged.chain(summary).min()
    }

    /// Judges the claims that have waited long enough: on a VIP this node
    /// still owns (`owns(slot, ip)`) and no cluster node claims, a claim
    /// is a conflict.
    pub(super) fn judge(
        &mut self,
        now: Instant,
        owns: impl Fn(usize, IpAddr) -> bool,
        counters: &mut Counters,
    ) -> Judged {
        let mut judged = Judged::default();
        if self
            .period
            .is_some_and(|(began, _)| now.saturating_duration_since(began) >= DEFEND_EVERY)
        {
            self.period = None;
            judged.unlogged = std::mem::take(&mut self.unlogged);
        }
        let mut index = 0;
        while index < self.suspects.len() {
            let suspect = &mut self.suspects[index];
            let seen = *suspect.seen.get_or_insert(now);
            if now.saturating_duration_since(seen) < self.judge_after {
                index += 1;
                continue;
            }
            let suspect = self.suspects.remove(index);
            if !owns(suspect.slot, suspect.ip) {
                continue;
            }
            if self.contested.contains(&suspect.ip) {
                counters.split_brain_claims += suspect.claims;
                continue;
            }
            counters.conflicts += suspect.claims;
            if let Some(conflict) = self.record(now, suspect) {
                if self.may_log(now) {
                    judged.log.push(conflict);
                } else {
                    match self.unlogged.iter_mut().find(|(ip, _)| *ip == conflict.ip) {
                        Some((_, claimants)) => *claimants += 1,
                        None => self.unlogged.push((conflict.ip, 1)),
                    }
                }
            }
            if self.may_defend(now, suspect.ip) {
                counters.conflict_defences += 1;
                judged.defend.push(suspect.ip);
            }
        }
        judged
    }

    /// Counts a conflict; returns it when it is due to be logged.
    fn record(&mut self, now: Instant, suspect: Suspect) -> Option<Conflict> {
        let at = self
            .seen
            .iter()
            .position(|c| c.ip == suspect.ip && c.mac == suspect.mac);
        let mut conflict = match at {
            Some(at) => self.seen.remove(at),
            None => {
                if self.seen.len() >= MAX_CONFLICTS {
                    self.seen.remove(0);
                }
                Conflict {
                    ip: suspect.ip,
                    mac: suspect.mac,
                    count: 0,
                    last_seen: now,
                    logged: None,
                }
            }
        };
        conflict.count += suspect.claims;
        conflict.last_seen = now;
        let due = conflict
            .logged
            .map_or(true, |at| now.saturating_duration_since(at) >= DEFEND_EVERY);
        if due {
            conflict.logged = Some(now);
        }
        self.seen.push(conflict);
        due.then_some(conflict)
    }

    /// Whether one more conflict line fits this period (noted when it does).
    fn may_log(&mut self, now: Instant) -> bool {
        let (_, lines) = self.period.get_or_insert((now, 0));
        if *lines >= MAX_LOGGED {
            return false;
        }
        *lines += 1;
        true
    }

    /// Whether `ip` may be defended now: not within `DEFEND_EVERY` of the
    /// last defence (noted when it may).
    fn may_defend(&mut self, now: Instant, ip: IpAddr) -> bool {
        self.defended
            .retain(|(_, at)| now.saturating_duration_since(*at) < DEFEND_EVERY);
        if self.defended.iter().any(|(defended, _)| *defended == ip) {
            return false;
        }
        self.defended.push((ip, now));
        true
    }
}
