//! Heartbeats from the network: parse, verify with and without a key, and
//! feed whatever parses into an election policy. Nothing may panic.
#![no_main]

use std::time::{Duration, Instant};

use l2vip::config::Mode;
use l2vip::election::policy::{Policy, ServiceSpec, Settings};
use l2vip::wire::heartbeat::{self, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = heartbeat::verify(data, b"fuzz-key-0123456789abcdef");
    let Ok(beat) = Repr::parse(data) else { return };
    let _ = beat.witnesses().count();
    let mut out = vec![0u8; heartbeat::MAX_LEN];
    let len = beat.emit(&mut out, None).expect("a parsed heartbeat emits");
    assert_eq!(
        Repr::parse(&out[..len]).map(|b| b.sequence),
        Ok(beat.sequence)
    );

    let now = Instant::now();
    let settings = Settings {
        node: "fuzz".into(),
        cluster: beat.cluster.into(),
        priority: 100,
        mode: Mode::Spread,
        preempt: true,
        interval: Duration::from_millis(100),
        lease: Duration::from_millis(500),
        alone: false,
    };
    let services = (0..beat.service_count.min(64))
        .map(|i| ServiceSpec {
            name: format!("s{i}").into(),
            ip: std::net::IpAddr::from([192, 0, 2, (i % 250) as u8]),
            nodes: Vec::new(),
        })
        .collect();
    let mut policy = Policy::new(settings, services, 1, now);
    let _ = policy.on_heartbeat(now, &beat);
    policy.on_tick(now + Duration::from_secs(1));
});
