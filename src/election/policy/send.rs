//! The heartbeat this node sends: when (every interval, and a short burst
//! after a change) and what (its claims, what it may serve, its witnesses).

use std::time::Instant;

use super::Policy;
use crate::wire::heartbeat::{self, bitmap_len, set_bit, Repr};

/// Heartbeats repeated a quarter interval apart after a state change, so
/// one lost datagram does not delay a hand-over by a whole interval.
const BURST: u8 = 3;

/// Reusable buffers for building heartbeats without allocating each time.
#[derive(Debug, Default)]
pub struct Scratch {
    claims: Vec<u8>,
    eligible: Vec<u8>,
    witnesses: Vec<u8>,
}

impl Policy {
    /// Something others must learn changed: send now, then repeat quickly.
    pub(super) fn changed(&mut self) {
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
        self.peers.witness_entries(now, &mut scratch.witnesses);
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testing::*;
    use super::*;

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
}
