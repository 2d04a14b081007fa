//! What a call into the policy returns to its shell: ownership changes
//! with their reasons, re-announcements, and whether a heartbeat is due.

use std::sync::Arc;

use crate::message::Unfit;

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
