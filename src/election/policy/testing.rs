//! Helpers for the policy's tests: nodes with test timers, heartbeats
//! through the real wire format, and the outputs of every call gathered.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::wire::heartbeat;

/// A policy with what its calls returned, gathered for the assertions.
#[derive(Debug)]
pub(super) struct Tested {
    pub(super) policy: Policy,
    pub(super) outputs: Outputs,
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
    pub(super) fn new(policy: Policy) -> Tested {
        Tested {
            policy,
            outputs: Outputs::default(),
        }
    }

    /// Keeps every change; `send` is the last call's.
    pub(super) fn gather(&mut self, outputs: Outputs) {
        let send = outputs.send;
        self.outputs.absorb(outputs);
        self.outputs.send = send;
    }

    pub(super) fn on_tick(&mut self, now: Instant) {
        let outputs = self.policy.on_tick(now);
        self.gather(outputs);
    }

    pub(super) fn on_heartbeat(&mut self, now: Instant, beat: &Repr<'_>) -> Result<(), Reject> {
        let outputs = self.policy.on_heartbeat(now, beat)?;
        self.gather(outputs);
        Ok(())
    }

    pub(super) fn set_draining(&mut self, now: Instant, draining: bool) {
        let outputs = self.policy.set_draining(now, draining);
        self.gather(outputs);
    }

    pub(super) fn set_unfit(&mut self, now: Instant, index: usize, reason: Option<Unfit>) {
        let outputs = self.policy.set_unfit(now, index, reason);
        self.gather(outputs);
    }

    pub(super) fn leave(&mut self, now: Instant) {
        let outputs = self.policy.leave(now);
        self.gather(outputs);
    }

    pub(super) fn set_services(
        &mut self,
        now: Instant,
        services: Vec<ServiceSpec>,
        unfit: Vec<Option<Unfit>>,
    ) {
        let outputs = self.policy.set_services(now, services, unfit);
        self.gather(outputs);
    }

    pub(super) fn handover(&mut self, now: Instant, index: usize) -> Result<(), HandoverError> {
        let outputs = self.policy.handover(now, index)?;
        self.gather(outputs);
        Ok(())
    }

    pub(super) fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.outputs.changes)
    }

    /// Whether the last call asked for a heartbeat.
    pub(super) fn wants_send(&self, _now: Instant) -> bool {
        self.outputs.send
    }
}

pub(super) const INTERVAL: Duration = Duration::from_millis(100);
pub(super) const LEASE: Duration = Duration::from_millis(500);

pub(super) fn services() -> Vec<ServiceSpec> {
    ["a", "b"]
        .iter()
        .map(|name| ServiceSpec {
            name: Arc::from(*name),
            ip: IpAddr::from([192, 0, 2, name.len() as u8]),
            nodes: Vec::new(),
        })
        .collect()
}

pub(super) fn policy(
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

pub(super) fn node(name: &str, priority: u8, alone: bool, now: Instant) -> Tested {
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
pub(super) fn beat(from: &mut Tested, now: Instant) -> Vec<u8> {
    let mut scratch = Scratch::default();
    let mut bytes = [0u8; heartbeat::MAX_LEN];
    let len = from
        .heartbeat(now, &mut scratch)
        .emit(&mut bytes, None)
        .unwrap();
    bytes[..len].to_vec()
}

/// Delivers `from`'s next heartbeat to `to`.
pub(super) fn deliver(from: &mut Tested, to: &mut Tested, now: Instant) -> Result<(), Reject> {
    to.on_heartbeat(now, &Repr::parse(&beat(from, now)).unwrap())
}

pub(super) fn owned(policy: &Policy) -> Vec<usize> {
    policy.owned().collect()
}

/// `a` and `b` hear each other every interval for `rounds` intervals
/// after `from`; returns the last instant.
pub(super) fn exchange(a: &mut Tested, b: &mut Tested, from: Instant, rounds: u32) -> Instant {
    let mut now = from;
    for _ in 0..rounds {
        now += INTERVAL;
        deliver(a, b, now).unwrap();
        deliver(b, a, now).unwrap();
        a.on_tick(now);
        b.on_tick(now);
    }
    now
}

/// Two nodes that have heard each other for a while; `a` owns both.
pub(super) fn settled(t0: Instant) -> (Tested, Tested, Instant) {
    let mut a = node("a", 200, false, t0);
    let mut b = node("b", 50, false, t0);
    let rounds = (LEASE * 2).as_millis().div_ceil(INTERVAL.as_millis()) as u32;
    let now = exchange(&mut a, &mut b, t0, rounds);
    assert_eq!(owned(&a), vec![0, 1]);
    a.take_changes();
    b.take_changes();
    (a, b, now)
}
