//! What the responder counts (it sends copies to the control thread, so
//! this sits at the bottom of the house, beside the messages), and a
//! per-reason log rate limit.
//!
//! Counters are plain `u64`s owned by the responder thread (no atomics:
//! 32-bit MIPS and ARMv5 have no 64-bit ones); others get copies.

use std::fmt;
use std::time::{Duration, Instant};

reasons! {
    /// Why a received frame got no answer.
    pub enum DropReason {
        /// Shorter than its headers or lengths say.
        Truncated = "truncated",
        /// ARP that is not Ethernet/IPv4 (htype, ptype, hlen, plen).
        ArpFormat = "arp_format",
        /// ARP operation other than request or reply.
        ArpOperation = "arp_operation",
        /// IPv6 header that is not version 6.
        Ipv6Format = "ipv6_format",
        /// NS with a hop limit other than 255 (RFC 4861 §7.1.1).
        HopLimit = "hop_limit",
        /// ICMPv6 checksum wrong.
        Checksum = "checksum",
        /// NS failing RFC 4861 §7.1.1 otherwise: code, options, target, DAD form.
        NdpFormat = "ndp_format",
        /// Sender MAC that is multicast, broadcast or zero.
        BadSender = "bad_sender",
        /// A reply or advertisement: nothing to answer.
        NotRequest = "not_request",
        /// For an address this node does not own.
        NotOwned = "not_owned",
        /// For a VIP this node owns on another interface.
        OtherInterface = "other_interface",
        /// Sent by this node.
        OwnFrame = "own_frame",
        /// Tagged for a VLAN.
        VlanTagged = "vlan_tagged",
        /// Outgoing or for another host (should not pass the socket filter).
        NotForUs = "not_for_us",
        /// Another MAC claims a VIP this node owns.
        Conflict = "conflict",
    }
}

impl DropReason {
    /// True for reasons worth a log line: damaged or hostile input and
    /// conflicts, not the everyday traffic for other hosts.
    pub fn is_notable(self) -> bool {
        !matches!(
            self,
            DropReason::NotRequest
                | DropReason::NotOwned
                | DropReason::OwnFrame
                | DropReason::NotForUs
        )
    }
}

/// The responder's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// ARP frames read.
    pub arp_received: u64,
    /// ARP replies sent.
    pub arp_replies_sent: u64,
    /// NS frames read.
    pub ns_received: u64,
    /// NA sent in answer.
    pub na_sent: u64,
    /// Gratuitous ARP frames sent (each round sends two per IPv4 VIP).
    pub gratuitous_arp_sent: u64,
    /// Unsolicited NA sent.
    pub unsolicited_na_sent: u64,
    /// Frames the kernel refused to send.
    pub send_errors: u64,
    /// Claims on owned VIPs by other hosts (judged conflicts).
    pub conflicts: u64,
    /// Announcement rounds sent to defend a VIP (at most one per VIP per 10 s).
    pub conflict_defences: u64,
    /// Claims on owned VIPs by another cluster node (a split brain the
    /// election settles).
    pub split_brain_claims: u64,
    /// Frames received and not answered, by reason.
    pub drops: [u64; DropReason::ALL.len()],
}

impl Counters {
    /// Counts one drop.
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }

    /// Drops counted for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }
}

impl Counters {
    /// The counters as a JSON object, drops by reason in `drops`.
    pub fn json(&self) -> serde_json::Value {
        let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), self.dropped(*r).into()))
            .collect();
        serde_json::json!({
            "arp_received": self.arp_received,
            "arp_replies_sent": self.arp_replies_sent,
            "ns_received": self.ns_received,
            "na_sent": self.na_sent,
            "gratuitous_arp_sent": self.gratuitous_arp_sent,
            "unsolicited_na_sent": self.unsolicited_na_sent,
            "send_errors": self.send_errors,
            "conflicts": self.conflicts,
            "conflict_defences": self.conflict_defences,
            "split_brain_claims": self.split_brain_claims,
            "drops": drops,
        })
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arp_received={} arp_replies_sent={} ns_received={} na_sent={} gratuitous_arp_sent={} \
             unsolicited_na_sent={} send_errors={} conflicts={} conflict_defences={} \
             split_brain_claims={}",
            self.arp_received,
            self.arp_replies_sent,
            self.ns_received,
            self.na_sent,
            self.gratuitous_arp_sent,
            self.unsolicited_na_sent,
            self.send_errors,
            self.conflicts,
            self.conflict_defences,
            self.split_brain_claims
        )?;
        for reason in DropReason::ALL {
            write!(f, " drop.{}={}", reason.name(), self.dropped(reason))?;
        }
        Ok(())
    }
}

/// At most one log line per reason per period; the rest are counted and
/// reported with the next line that gets through.
#[derive(Debug)]
pub struct LogLimit {
    period: Duration,
    last: [Option<Instant>; DropReason::ALL.len()],
    suppressed: [u64; DropReason::ALL.len()],
}

impl LogLimit {
    /// A limit of one line per `period` per reason.
    pub fn new(period: Duration) -> LogLimit {
        LogLimit {
            period,
            last: [None; DropReason::ALL.len()],
            suppressed: [0; DropReason::ALL.len()],
        }
    }

    /// `Some(lines suppressed since the last one)` if a line may be logged now.
    pub fn allow(&mut self, reason: DropReason, now: Instant) -> Option<u64> {
        let index = reason.index();
        match self.last[index] {
            Some(last) if now.saturating_duration_since(last) < self.period => {
                self.suppressed[index] += 1;
                None
            }
            _ => {
                self.last[index] = Some(now);
                Some(std::mem::take(&mut self.suppressed[index]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexed() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::ALL.len());
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
    }

    #[test]
    fn display_lists_every_reason() {
        let mut counters = Counters::default();
        counters.drop(DropReason::HopLimit);
        counters.drop(DropReason::HopLimit);
        let text = counters.to_string();
        assert!(text.contains("drop.hop_limit=2"), "{text}");
        assert!(text.contains("drop.checksum=0"), "{text}");
    }

    #[test]
    fn log_limit() {
        let start = Instant::now();
        let mut limit = LogLimit::new(Duration::from_secs(10));
        assert_eq!(limit.allow(DropReason::Checksum, start), Some(0));
        assert_eq!(
            limit.allow(DropReason::Checksum, start + Duration::from_secs(1)),
            None
        );
        assert_eq!(
            limit.allow(DropReason::Checksum, start + Duration::from_secs(2)),
            None
        );
        assert_eq!(
            limit.allow(DropReason::HopLimit, start + Duration::from_secs(2)),
            Some(0)
        );
        assert_eq!(
            limit.allow(DropReason::Checksum, start + Duration::from_secs(10)),
            Some(2)
        );
    }
}
