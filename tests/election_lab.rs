//! The election in the lab: real daemons on three nodes, the client's
//! Linux stack watching who answers for the VIPs. Short timers (interval
//! 100 ms, lease 500 ms) unless a test says otherwise; every bound follows
//! from them: lease + one interval + slack.

#[path = "lab/mod.rs"]
mod lab;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use lab::{
    arp_answerers, epoch_now, first_gratuitous, nd_answerers, neighbour_mac, node_mac, peers,
    Daemon, Lab,
};

const VIP4: &str = "192.0.2.200";
const VIP6: &str = "2001:db8::200";
const INTERVAL_MS: u64 = 100;
const LEASE_MS: u64 = 500;
/// Failover after a crash: the lease, then the new owner's first burst
/// round reaches the client; a second of slack for a loaded machine.
const FAILOVER_BOUND: Duration = Duration::from_millis(LEASE_MS + 1000);
/// Start-up: the hold (max(3 x interval, lease / 2)) plus slack.
const START_BOUND: Duration = Duration::from_secs(5);

/// A node's config: priority 200 - 50 x node (n1 ranks best), the two VIPs.
fn config(node: usize, nodes: usize, extra: &str) -> String {
    format!(
        r#"{{
  "node": "n{node}", "priority": {priority}{extra},
  "heartbeat": {{"interval_ms": {INTERVAL_MS}, "lease_ms": {LEASE_MS}, "peers": [{peers}]}},
  "services": [
    {{"name": "web", "ip": "{VIP4}", "interface": "eth0"}},
    {{"name": "web6", "ip": "{VIP6}", "interface": "eth0"}}
  ]
}}"#,
        priority = 200 - 50 * node,
        peers = peers(node, nodes),
    )
}

fn start_cluster(lab: &Lab, extra: &str) -> Vec<Daemon> {
    let daemons: Vec<Daemon> = (1..=3)
        .map(|i| lab.daemon(i, &config(i, 3, extra)))
        .collect();
    assert!(
        daemons[0].wait_for_log("acquired web6", START_BOUND),
        "n1 did not take the VIPs:\n{}",
        daemons[0].log()
    );
    daemons
}

fn only(mac: &str) -> BTreeSet<String> {
    BTreeSet::from([mac.to_string()])
}

/// Node `node`, and only it, answers ARP for VIP4 and NS for VIP6.
fn assert_sole_owner(lab: &Lab, node: usize) {
    assert_eq!(
        arp_answerers(lab, VIP4),
        only(&node_mac(node)),
        "ARP for {VIP4}"
    );
    assert_eq!(
        nd_answerers(lab, VIP6),
        only(&node_mac(node)),
        "NS for {VIP6}"
    );
}

/// Waits until the client's cache holds `mac` for both VIPs.
fn cache_moves_to(lab: &Lab, mac: &str, limit: Duration) -> bool {
    Lab::wait_until(limit, || {
        neighbour_mac(lab, VIP4).as_deref() == Some(mac)
            && neighbour_mac(lab, VIP6).as_deref() == Some(mac)
    })
}

/// Fills the client's cache for both VIPs with ordinary traffic.
fn use_vips(lab: &Lab) {
    for vip in [VIP4, VIP6] {
        lab.run("c", &["ping", "-c", "1", "-W", "1", vip]);
    }
}

#[test]
fn three_nodes_elect_one_owner_and_fail_over_when_it_is_killed() {
    if !lab::available("three_nodes_elect_one_owner_and_fail_over_when_it_is_killed") {
        return;
    }
    let lab = Lab::up(3, false);
    let mut daemons = start_cluster(&lab, "");
    std::thread::sleep(Duration::from_millis(LEASE_MS));
    assert_sole_owner(&lab, 1);
    use_vips(&lab);
    assert_eq!(neighbour_mac(&lab, VIP4), Some(node_mac(1)));
    assert_eq!(neighbour_mac(&lab, VIP6), Some(node_mac(1)));

    let killed = Instant::now();
    daemons[0]
        .stop_with("KILL", Duration::from_secs(2))
        .expect("n1 dies");
    // No flush: the gratuitous burst of the new owner moves the cache.
    assert!(
        cache_moves_to(&lab, &node_mac(2), FAILOVER_BOUND),
        "client cache after {:?}: {:?} / {:?}\n{}",
        killed.elapsed(),
        neighbour_mac(&lab, VIP4),
        neighbour_mac(&lab, VIP6),
        daemons[1].log()
    );
    eprintln!(
        "SIGKILL failover (interval {INTERVAL_MS} ms, lease {LEASE_MS} ms): client cache on the new owner after {:.0} ms",
        killed.elapsed().as_secs_f64() * 1000.0
    );
    assert_sole_owner(&lab, 2);
    assert!(
        !daemons[2].log().contains("acquired"),
        "n3 stays out: {}",
        daemons[2].log()
    );
}

#[test]
fn link_down_fails_over_and_the_heal_leaves_one_owner() {
    if !lab::available("link_down_fails_over_and_the_heal_leaves_one_owner") {
        return;
    }
    let lab = Lab::up(3, false);
    let daemons = start_cluster(&lab, "");
    std::thread::sleep(Duration::from_millis(LEASE_MS));
    use_vips(&lab);
    assert_eq!(neighbour_mac(&lab, VIP4), Some(node_mac(1)));

    lab.run("n1", &["ip", "link", "set", "eth0", "down"]);
    assert!(
        cache_moves_to(&lab, &node_mac(2), FAILOVER_BOUND),
        "{:?}\n{}",
        neighbour_mac(&lab, VIP4),
        daemons[1].log()
    );
    assert_eq!(arp_answerers(&lab, VIP4), only(&node_mac(2)));

    // Back up: n1 and n2 both claim for a moment; the better ranked (n1)
    // keeps the VIPs and announces them again, n2 lets go.
    lab.run("n1", &["ip", "link", "set", "eth0", "up"]);
    assert!(
        cache_moves_to(&lab, &node_mac(1), FAILOVER_BOUND * 2),
        "{:?}\n{}\n{}",
        neighbour_mac(&lab, VIP4),
        daemons[0].log(),
        daemons[1].log()
    );
    // n2 lets go once it hears n1's claim: within the lease and a heartbeat.
    let released = Lab::wait_until(FAILOVER_BOUND, || {
        let log = daemons[1].log();
        log.contains("released web (") && log.contains("released web6 (")
    });
    assert!(released, "{}", daemons[1].log());
    assert_sole_owner(&lab, 1);
}

#[test]
fn sigterm_hands_over_in_under_200_ms() {
    if !lab::available("sigterm_hands_over_in_under_200_ms") {
        return;
    }
    let lab = Lab::up(3, false);
    let mut daemons = start_cluster(&lab, "");
    std::thread::sleep(Duration::from_millis(LEASE_MS));
    let capture = lab.capture("c", "eth0", &format!("arp and ether src {}", node_mac(2)));
    let sent = epoch_now();
    let (status, _) = daemons[0]
        .stop_with("TERM", Duration::from_secs(2))
        .expect("n1 stops");
    assert!(status.success());
    assert!(
        daemons[1].wait_for_log("acquired web6", Duration::from_secs(2)),
        "{}",
        daemons[1].log()
    );
    let decoded = capture.stop();
    let first =
        first_gratuitous(&decoded, VIP4).unwrap_or_else(|| panic!("no burst from n2:\n{decoded}"));
    let took = first - sent;
    eprintln!(
        "SIGTERM hand-over: first gratuitous ARP from the new owner {:.1} ms after the signal",
        took * 1000.0
    );
    assert!(
        took < 0.2,
        "planned move took {took:.3} s\n{}",
        daemons[1].log()
    );
    assert!(
        daemons[0]
            .log()
            .contains("released web (192.0.2.200 on eth0): leaving"),
        "{}",
        daemons[0].log()
    );
}

#[test]
fn a_restarted_owner_does_not_take_the_vips_back() {
    if !lab::available("a_restarted_owner_does_not_take_the_vips_back") {
        return;
    }
    let lab = Lab::up(3, false);
    let mut daemons = start_cluster(&lab, "");
    daemons[0]
        .stop_with("KILL", Duration::from_secs(2))
        .expect("n1 dies");
    assert!(
        daemons[1].wait_for_log("acquired web6", FAILOVER_BOUND),
        "{}",
        daemons[1].log()
    );
    let restarted = lab.daemon(1, &config(1, 3, ""));
    assert!(restarted.wait_for_log("heartbeats every", START_BOUND));
    // Its hold, then several leases: it stays a candidate, not the owner.
    std::thread::sleep(Duration::from_millis(LEASE_MS * 4));
    assert!(
        !restarted.log().contains("acquired"),
        "sticky: {}",
        restarted.log()
    );
    assert_sole_owner(&lab, 2);
}

#[test]
fn with_preempt_a_restarted_owner_takes_the_vips_back_in_one_hand_over() {
    if !lab::available("with_preempt_a_restarted_owner_takes_the_vips_back_in_one_hand_over") {
        return;
    }
    let lab = Lab::up(3, false);
    let preempt = r#", "preempt": true"#;
    let mut daemons = start_cluster(&lab, preempt);
    daemons[0]
        .stop_with("KILL", Duration::from_secs(2))
        .expect("n1 dies");
    assert!(
        daemons[1].wait_for_log("acquired web6", FAILOVER_BOUND),
        "{}",
        daemons[1].log()
    );
    let restarted = lab.daemon(1, &config(1, 3, preempt));
    assert!(
        restarted.wait_for_log("acquired web6", START_BOUND),
        "{}",
        restarted.log()
    );
    std::thread::sleep(Duration::from_millis(LEASE_MS * 2));
    let n2 = daemons[1].log();
    assert_eq!(
        n2.matches("released web (").count(),
        1,
        "one hand-over: {n2}"
    );
    assert!(
        n2.contains("released web (192.0.2.200 on eth0): preempted"),
        "{n2}"
    );
    assert_eq!(
        restarted.log().matches("acquired web (").count(),
        1,
        "{}",
        restarted.log()
    );
    assert_sole_owner(&lab, 1);
}

/// Blackhole routes stop heartbeats between n1 and the others (ARP, being
/// link-layer, still flows).
fn partition(lab: &Lab, apply: bool) {
    let verb = if apply { "add" } else { "del" };
    for other in [2, 3] {
        lab.run(
            "n1",
            &[
                "ip",
                "route",
                verb,
                "blackhole",
                &format!("192.0.2.{}/32", 10 + other),
            ],
        );
        lab.run(
            &format!("n{other}"),
            &["ip", "route", verb, "blackhole", "192.0.2.11/32"],
        );
    }
}

#[test]
fn a_healed_partition_settles_on_one_owner() {
    if !lab::available("a_healed_partition_settles_on_one_owner") {
        return;
    }
    let lab = Lab::up(3, false);
    let daemons = start_cluster(&lab, "");
    std::thread::sleep(Duration::from_millis(LEASE_MS));
    use_vips(&lab);
    partition(&lab, true);
    // Each side elects its own owner: the split brain the heal must end.
    assert!(
        daemons[1].wait_for_log("acquired web6", FAILOVER_BOUND),
        "{}",
        daemons[1].log()
    );
    let split = arp_answerers(&lab, VIP4);
    assert_eq!(
        split,
        BTreeSet::from([node_mac(1), node_mac(2)]),
        "both sides answer"
    );
    // n2's burst pulled the client over to its side.
    assert!(
        cache_moves_to(&lab, &node_mac(2), FAILOVER_BOUND),
        "{:?}",
        neighbour_mac(&lab, VIP4)
    );

    partition(&lab, false);
    let settled = Lab::wait_until(FAILOVER_BOUND, || {
        daemons[1].log().contains("released web6")
    });
    assert!(settled, "{}", daemons[1].log());
    assert_sole_owner(&lab, 1);
    // n1 announced again, so the client ends on n1 without asking.
    assert!(
        cache_moves_to(&lab, &node_mac(1), FAILOVER_BOUND),
        "{:?}",
        neighbour_mac(&lab, VIP4)
    );
    assert!(
        daemons[0].log().contains("keeping it and announcing again"),
        "{}",
        daemons[0].log()
    );
}

/// Who owns what, from each node's log of acquisitions and releases.
fn owners(daemons: &[Daemon], services: &[String]) -> BTreeMap<String, Vec<usize>> {
    let mut map = BTreeMap::new();
    for service in services {
        let holders: Vec<usize> = daemons
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                let log = d.log();
                log.matches(&format!("acquired {service} (")).count()
                    > log.matches(&format!("released {service} (")).count()
            })
            .map(|(i, _)| i + 1)
            .collect();
        map.insert(service.clone(), holders);
    }
    map
}

#[test]
fn spread_puts_vips_on_every_node_and_moves_only_the_dead_nodes_share() {
    if !lab::available("spread_puts_vips_on_every_node_and_moves_only_the_dead_nodes_share") {
        return;
    }
    let lab = Lab::up(3, false);
    let names: Vec<String> = (0..8).map(|i| format!("vip{i}")).collect();
    let services: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            format!(
                r#"{{"name": "{name}", "ip": "192.0.2.{}", "interface": "eth0"}}"#,
                200 + i
            )
        })
        .collect();
    let config = |node: usize| {
        format!(
            r#"{{"node": "n{node}", "mode": "spread",
  "heartbeat": {{"interval_ms": {INTERVAL_MS}, "lease_ms": {LEASE_MS}, "peers": [{}]}},
  "services": [{}]}}"#,
            peers(node, 3),
            services.join(", ")
        )
    };
    let mut daemons: Vec<Daemon> = (1..=3).map(|i| lab.daemon(i, &config(i))).collect();
    let all_owned = || owners(&daemons, &names).values().all(|h| h.len() == 1);
    assert!(
        Lab::wait_until(START_BOUND, all_owned),
        "{:?}",
        owners(&daemons, &names)
    );
    std::thread::sleep(Duration::from_millis(LEASE_MS));
    let before = owners(&daemons, &names);
    for node in 1..=3 {
        assert!(
            before.values().any(|h| h == &vec![node]),
            "n{node} owns nothing: {before:?}"
        );
    }
    // What the client sees agrees with the logs.
    for (i, name) in names.iter().enumerate() {
        let answerers = arp_answerers(&lab, &format!("192.0.2.{}", 200 + i));
        assert_eq!(answerers, only(&node_mac(before[name][0])), "{name}");
    }

    daemons[0]
        .stop_with("KILL", Duration::from_secs(2))
        .expect("n1 dies");
    let survivors = &daemons[1..];
    let moved = Lab::wait_until(FAILOVER_BOUND, || {
        owners(survivors, &names).values().all(|h| h.len() == 1)
    });
    assert!(moved, "{:?}", owners(survivors, &names));
    let after = owners(survivors, &names);
    for name in &names {
        if before[name] != vec![1] {
            // Survivors' own VIPs stayed put: never released.
            assert_eq!(
                after[name].iter().map(|i| i + 1).collect::<Vec<_>>(),
                before[name],
                "{name} moved"
            );
            let holder = &survivors[before[name][0] - 2];
            assert!(
                !holder.log().contains(&format!("released {name} (")),
                "{name}"
            );
        }
    }
}

const GROUP: &str = "239.255.76.47";

/// Node `node`'s config for a cluster on the multicast group with the key
/// file `key` (priority 200 - 50 x node, the two VIPs).
fn keyed_config(node: usize, key: &std::path::Path, extra: &str) -> String {
    format!(
        r#"{{"node": "n{node}", "priority": {}{extra},
  "heartbeat": {{"interval_ms": {INTERVAL_MS}, "lease_ms": {LEASE_MS}, "key_file": "{}",
                 "multicast": {{"group": "{GROUP}", "interface": "eth0"}}}},
  "services": [{{"name": "web", "ip": "{VIP4}", "interface": "eth0"}},
               {{"name": "web6", "ip": "{VIP6}", "interface": "eth0"}}]}}"#,
        200 - 50 * node,
        key.display()
    )
}

#[test]
fn wrong_keys_and_replayed_heartbeats_never_move_a_vip() {
    if !lab::available("wrong_keys_and_replayed_heartbeats_never_move_a_vip") {
        return;
    }
    use l2vip::wire::heartbeat::{self, Repr};
    let lab = Lab::up(2, false);
    let key = lab.write("key", "lab-secret-0123456789abcdef\n", 0o600);
    // Preempt on: a heartbeat from n1 that got through would make n2 hand
    // the VIPs to a dead node.
    let config = |node: usize| keyed_config(node, &key, r#", "preempt": true"#);
    let mut n1 = lab.daemon(1, &config(1));
    let n2 = lab.daemon(2, &config(2));
    assert!(
        n1.wait_for_log("acquired web6", START_BOUND),
        "{}",
        n1.log()
    );
    let captured: Vec<Vec<u8>> = lab
        .listen_heartbeats(GROUP, 0.5)
        .into_iter()
        .filter(|(source, _)| source == "192.0.2.11")
        .map(|(_, datagram)| datagram)
        .collect();
    assert!(
        captured.len() >= 3,
        "captured {} heartbeats of n1",
        captured.len()
    );

    n1.stop_with("KILL", Duration::from_secs(2))
        .expect("n1 dies");
    assert!(
        n2.wait_for_log("acquired web6", FAILOVER_BOUND),
        "{}",
        n2.log()
    );
    let before = n2.counters();

    // 1. A replay of n1's own, correctly signed heartbeats.
    lab.send_heartbeats(GROUP, &captured);
    // 2. n1's last heartbeat, made newer, signed with another key.
    let last = captured.last().expect("a heartbeat");
    let mut forged = Vec::new();
    for (i, key) in [Some(&b"not-the-cluster-key-000"[..]), None]
        .iter()
        .enumerate()
    {
        for n in 0..5u64 {
            let mut beat = Repr::parse(last).expect("captured heartbeat parses");
            beat.sequence += 1000 + 10 * i as u64 + n;
            let mut out = vec![0u8; heartbeat::MAX_LEN];
            let len = beat.emit(&mut out, *key).expect("emit");
            out.truncate(len);
            forged.push(out);
        }
    }
    lab.send_heartbeats(GROUP, &forged);
    std::thread::sleep(Duration::from_millis(LEASE_MS));

    let after = n2.counters();
    let grew = |key: &str| after[key] - before[key];
    assert!(
        grew("heartbeat_rejected.replay") >= captured.len() as u64 - 1,
        "{after:?}"
    );
    assert_eq!(grew("heartbeat_rejected.bad_mac"), 5, "{after:?}");
    assert_eq!(grew("heartbeat_rejected.unauthenticated"), 5, "{after:?}");
    assert!(!n2.log().contains("released web"), "{}", n2.log());
    assert_sole_owner(&lab, 2);
}

#[test]
fn default_timers_fail_over_after_the_ten_second_lease() {
    if !lab::available("default_timers_fail_over_after_the_ten_second_lease") {
        return;
    }
    let lab = Lab::up(2, false);
    // Default interval (1 s) and lease (10 s): no heartbeat timers set.
    let config = |node: usize| {
        format!(
            r#"{{"node": "n{node}", "priority": {}, "heartbeat": {{"peers": [{}]}},
  "services": [{{"name": "web", "ip": "{VIP4}", "interface": "eth0"}}]}}"#,
            200 - 50 * node,
            peers(node, 2)
        )
    };
    let mut n1 = lab.daemon(1, &config(1));
    let n2 = lab.daemon(2, &config(2));
    // The start-up hold with default timers is 5 s.
    assert!(
        n1.wait_for_log("acquired web", Duration::from_secs(8)),
        "{}",
        n1.log()
    );
    let burst = lab.capture("c", "eth0", &format!("arp and ether src {}", node_mac(2)));
    let beats = lab.capture("n2", "eth0", "udp port 7947 and src host 192.0.2.11");
    assert!(
        Lab::wait_until(Duration::from_secs(3), || beats.text().lines().count() > 0),
        "no heartbeat from n1 seen on n2"
    );
    let killed = epoch_now();
    n1.stop_with("KILL", Duration::from_secs(2))
        .expect("n1 dies");
    assert!(
        n2.wait_for_log("acquired web", Duration::from_secs(14)),
        "{}",
        n2.log()
    );
    let decoded = burst.stop();
    let last_beat: f64 = beats
        .stop()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .fold(0.0, f64::max);
    let first =
        first_gratuitous(&decoded, VIP4).unwrap_or_else(|| panic!("no burst from n2:\n{decoded}"));
    // The lease runs from the last heartbeat n2 received, which the kill
    // follows by less than one interval.
    let from_kill = first - killed;
    let from_last_beat = first - last_beat;
    assert!(from_kill <= 12.0, "failover {from_kill:.3} s after SIGKILL");
    assert!(
        (10.0..11.0).contains(&from_last_beat),
        "failover {from_last_beat:.3} s after n1's last heartbeat ({from_kill:.3} s after SIGKILL)"
    );
    eprintln!("default timers: failover {from_kill:.3} s after SIGKILL, {from_last_beat:.3} s after the last heartbeat");
}

#[test]
fn heartbeats_over_ipv6_elect_one_owner() {
    if !lab::available("heartbeats_over_ipv6_elect_one_owner") {
        return;
    }
    let lab = Lab::up(2, false);
    let config = |node: usize, peer: usize| {
        format!(
            r#"{{"node": "n{node}", "priority": {},
  "heartbeat": {{"interval_ms": {INTERVAL_MS}, "lease_ms": {LEASE_MS}, "peers": ["[2001:db8::{}]:7947"]}},
  "services": [{{"name": "web6", "ip": "{VIP6}", "interface": "eth0"}}]}}"#,
            200 - 50 * node,
            10 + peer
        )
    };
    let mut n1 = lab.daemon(1, &config(1, 2));
    let n2 = lab.daemon(2, &config(2, 1));
    assert!(
        n1.wait_for_log("acquired web6", START_BOUND),
        "{}",
        n1.log()
    );
    std::thread::sleep(Duration::from_millis(LEASE_MS * 2));
    assert!(
        !n2.log().contains("acquired"),
        "n2 hears n1 over IPv6: {}",
        n2.log()
    );
    assert_eq!(nd_answerers(&lab, VIP6), only(&node_mac(1)));
    n1.stop_with("TERM", Duration::from_secs(2))
        .expect("n1 stops");
    assert!(
        n2.wait_for_log("acquired web6", Duration::from_millis(500)),
        "{}",
        n2.log()
    );
    assert_eq!(nd_answerers(&lab, VIP6), only(&node_mac(2)));
}

/// Sends `captured` once on the group and waits a lease and a failover:
/// `n2` counts exactly one more replay.
fn send_once_and_see_it_refused(lab: &Lab, n2: &Daemon, captured: Vec<u8>) {
    let before = n2.counters();
    lab.send_heartbeats(GROUP, &[captured]);
    std::thread::sleep(Duration::from_millis(LEASE_MS) + FAILOVER_BOUND);
    let after = n2.counters();
    assert_eq!(
        after["heartbeat_rejected.replay"] - before["heartbeat_rejected.replay"],
        1,
        "{after:?}"
    );
}

/// A signed heartbeat captured in an earlier run of n1, sent once after both
/// nodes restarted, must not make n2 take it for a newer n1: n2 would stop
/// hearing the live n1 and both would own the VIPs.
#[test]
fn a_heartbeat_replayed_from_an_earlier_run_moves_nothing() {
    if !lab::available("a_heartbeat_replayed_from_an_earlier_run_moves_nothing") {
        return;
    }
    let lab = Lab::up(2, false);
    let key = lab.write("key", "lab-secret-0123456789abcdef\n", 0o600);
    let config = |node: usize| keyed_config(node, &key, "");
    let mut n1 = lab.daemon(1, &config(1));
    let mut n2 = lab.daemon(2, &config(2));
    assert!(
        n1.wait_for_log("acquired web6", START_BOUND),
        "{}",
        n1.log()
    );
    // The earlier run: one of n1's heartbeats, captured.
    let earlier: Vec<Vec<u8>> = lab
        .listen_heartbeats(GROUP, 0.5)
        .into_iter()
        .filter(|(source, _)| source == "192.0.2.11")
        .map(|(_, datagram)| datagram)
        .collect();
    let earlier = earlier.last().expect("a heartbeat of n1").clone();

    // n1 restarts (n2 takes the VIPs), then n2 does (n1 takes them back).
    n1.stop_with("TERM", Duration::from_secs(2))
        .expect("n1 stops");
    assert!(
        n2.wait_for_log("acquired web6", FAILOVER_BOUND),
        "{}",
        n2.log()
    );
    let n1 = lab.daemon(1, &config(1));
    assert!(
        n1.wait_for_log("heartbeats every", START_BOUND),
        "{}",
        n1.log()
    );
    std::thread::sleep(START_BOUND);
    n2.stop_with("TERM", Duration::from_secs(2))
        .expect("n2 stops");
    assert!(
        n1.wait_for_log("acquired web6", FAILOVER_BOUND),
        "{}",
        n1.log()
    );
    let n2 = lab.daemon(2, &config(2));
    assert!(
        Lab::wait_until(START_BOUND, || {
            let (_, out, _) = n2.cli(&["status", "--json"]);
            out.contains("\"alive\": true")
        }),
        "n2 never heard n1:\n{}",
        n2.log()
    );
    std::thread::sleep(START_BOUND);
    assert_sole_owner(&lab, 1);

    // The capture, once: n2 knows n1's live, later incarnation and refuses it.
    send_once_and_see_it_refused(&lab, &n2, earlier);
    let (_, status, _) = n2.cli(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    let n1_seen = status["data"]["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|peer| peer["node"] == "n1")
        .cloned()
        .unwrap_or_default();
    assert_eq!(n1_seen["alive"], true, "n2 no longer hears n1: {status}");
    assert!(!n2.log().contains("acquired web"), "{}", n2.log());
    assert_sole_owner(&lab, 1);
}

/// What n2 would take from its peers, forged by the client: "n1" leaving,
/// and a better "n3" claiming both VIPs (ten of each, no key). Without the
/// checks they move the VIPs to nobody.
fn forged_takeover(n2: &Daemon) -> Vec<Vec<u8>> {
    use l2vip::wire::heartbeat::{self, Repr};
    let status: serde_json::Value =
        serde_json::from_str(&n2.cli(&["status", "--json"]).1).expect("status");
    let digest =
        u64::from_str_radix(status["data"]["digest"].as_str().unwrap_or("0"), 16).expect("digest");
    let mut forged = Vec::new();
    for (i, node) in ["n1", "n3"].iter().enumerate() {
        let claims = [0b1100_0000u8];
        let beat = Repr {
            draining: false,
            leaving: *node == "n1",
            joining: false,
            priority: 255,
            incarnation: u64::MAX - i as u64,
            sequence: 1,
            digest,
            service_count: 2,
            cluster: "l2vip",
            node,
            claims: &claims,
            eligible: &claims,
            witnesses: &[],
        };
        for n in 0..10 {
            let mut beat = beat;
            beat.sequence += n;
            let mut out = vec![0u8; heartbeat::MAX_LEN];
            let len = beat.emit(&mut out, None).expect("emit");
            out.truncate(len);
            forged.push(out);
        }
    }
    forged
}

/// Sends `forged` with `send`, waits a lease and a failover, and checks
/// that n1 still owns everything and n2 counted each as `reason`.
fn assert_forgeries_move_nothing(
    lab: &Lab,
    n1: &Daemon,
    n2: &Daemon,
    reason: &str,
    send: impl FnOnce(&[Vec<u8>]),
) {
    let forged = forged_takeover(n2);
    let before = n2.counters();
    send(&forged);
    std::thread::sleep(Duration::from_millis(LEASE_MS) + FAILOVER_BOUND);
    let after = n2.counters();
    assert!(!n2.log().contains("acquired web"), "{}", n2.log());
    assert!(!n1.log().contains("released web"), "{}", n1.log());
    assert_eq!(
        after["ownership_changes"], before["ownership_changes"],
        "{after:?}"
    );
    assert_sole_owner(lab, 1);
    let key = format!("heartbeat_rejected.{reason}");
    assert_eq!(after[&key] - before[&key], forged.len() as u64, "{after:?}");
}

/// With unicast peers, heartbeats are heard from the peers' addresses only:
/// the client, forging n1 at priority 255 and claiming everything, moves
/// nothing, and each forgery is counted as `not_a_peer`.
#[test]
fn heartbeats_from_a_host_that_is_no_peer_move_nothing() {
    if !lab::available("heartbeats_from_a_host_that_is_no_peer_move_nothing") {
        return;
    }
    let lab = Lab::up(2, false);
    let n1 = lab.daemon(1, &config(1, 2, r#", "preempt": true"#));
    let n2 = lab.daemon(2, &config(2, 2, r#", "preempt": true"#));
    assert!(
        n1.wait_for_log("acquired web6", START_BOUND),
        "{}",
        n1.log()
    );
    std::thread::sleep(Duration::from_millis(LEASE_MS));
    // Without a key (the lab's configs say insecure), every start and
    // every status says so.
    assert!(
        n2.log().contains("heartbeats are not authenticated"),
        "{}",
        n2.log()
    );
    let (_, table, _) = n2.cli(&["status"]);
    assert!(
        table.contains("WARNING: heartbeats are not authenticated"),
        "{table}"
    );
    // From the link (TTL 255), so only the source address gives them away.
    assert_forgeries_move_nothing(&lab, &n1, &n2, "not_a_peer", |forged| {
        lab.send_heartbeats("192.0.2.12", forged)
    });
}

/// Heartbeats leave with TTL 255 and are heard only with TTL 255 (GTSM,
/// RFC 5082): on a multicast group, which hears the whole link, forgeries
/// that crossed a router (TTL 254 on arrival) move nothing, key or not,
/// and each is counted as `off_link`.
#[test]
fn heartbeats_from_beyond_the_link_move_nothing() {
    if !lab::available("heartbeats_from_beyond_the_link_move_nothing") {
        return;
    }
    let lab = Lab::up(2, false);
    let config = |node: usize| {
        format!(
            r#"{{"node": "n{node}", "priority": {}, "preempt": true,
  "heartbeat": {{"interval_ms": {INTERVAL_MS}, "lease_ms": {LEASE_MS},
                 "multicast": {{"group": "{GROUP}", "interface": "eth0"}}}},
  "services": [{{"name": "web", "ip": "{VIP4}", "interface": "eth0"}},
               {{"name": "web6", "ip": "{VIP6}", "interface": "eth0"}}]}}"#,
            200 - 50 * node
        )
    };
    let n1 = lab.daemon(1, &config(1));
    let n2 = lab.daemon(2, &config(2));
    assert!(
        n1.wait_for_log("acquired web6", START_BOUND),
        "{}",
        n1.log()
    );
    std::thread::sleep(Duration::from_millis(LEASE_MS));
    // What the nodes send leaves with TTL 255.
    let ttls = lab.text(
        "c",
        &[
            "timeout", "3", "tcpdump", "-c", "2", "-i", "eth0", "-nv", "udp", "port", "7947",
        ],
    );
    assert!(ttls.matches("ttl 255").count() >= 2, "{ttls}");
    assert_forgeries_move_nothing(&lab, &n1, &n2, "off_link", |forged| {
        lab.send_heartbeats_with_ttl(GROUP, 254, forged)
    });
    // And n2 still hears n1.
    let (_, status, _) = n2.cli(&["status", "--json"]);
    assert!(status.contains("\"alive\": true"), "{status}");
}

/// n1 keeps no start counter (`state_file` null, and the file beside its
/// control socket cannot be written) and restarts with its clock an hour
/// behind: its new run is an older incarnation, which n2 hears once the
/// newer one has been silent for a lease. One heartbeat of the newer run,
/// captured on the multicast group before the restart and sent again once,
/// must not make n2 take the dead run for the live one: n2 would refuse
/// every heartbeat of n1, take the VIPs after a lease, and both would own
/// them (preempt brings them back to n1).
#[test]
fn a_replay_after_a_restart_with_the_clock_behind_never_cuts_off_the_node() {
    if !lab::available("a_replay_after_a_restart_with_the_clock_behind_never_cuts_off_the_node") {
        return;
    }
    let lab = Lab::up(2, false);
    let key = lab.write("key", "lab-secret-0123456789abcdef\n", 0o600);
    // n1's counter beside its socket is a directory: it cannot be kept.
    let n1_dir = lab.dir.join("n1-run");
    std::fs::create_dir_all(n1_dir.join("l2vip.incarnation")).expect("n1's run directory");
    let n1_config = keyed_config(
        1,
        &key,
        &format!(
            r#", "preempt": true, "state_file": null, "control": {{"socket": "{}"}}"#,
            n1_dir.join("control.sock").display()
        ),
    );
    let mut n1 = lab.daemon(1, &n1_config);
    let n2 = lab.daemon(2, &keyed_config(2, &key, r#", "preempt": true"#));
    assert!(
        n1.wait_for_log("acquired web6", START_BOUND),
        "{}",
        n1.log()
    );
    assert!(
        n1.log().contains("CANNOT KEEP THE START COUNTER"),
        "{}",
        n1.log()
    );
    let captured: Vec<Vec<u8>> = lab
        .listen_heartbeats(GROUP, 0.5)
        .into_iter()
        .filter(|(source, _)| source == "192.0.2.11")
        .map(|(_, datagram)| datagram)
        .collect();
    let captured = captured.first().expect("a heartbeat of n1").clone();

    // n1 crashes; n2 takes the VIPs; n1 comes back an hour behind.
    let _ = n1.stop_with("KILL", Duration::from_secs(2));
    assert!(
        n2.wait_for_log("acquired web6", FAILOVER_BOUND),
        "{}",
        n2.log()
    );
    let behind = lab::Start {
        wrapper: vec!["faketime".into(), "-f".into(), "-1h".into()],
        env: vec![("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into())],
        ..lab::Start::default()
    };
    let n1 = lab.daemon_with(1, &n1_config, &behind);
    assert!(
        n1.wait_for_log("acquired web6", START_BOUND + FAILOVER_BOUND),
        "n1 did not take the VIPs back:\n{}\n{}",
        n1.log(),
        n2.log()
    );
    std::thread::sleep(Duration::from_millis(LEASE_MS));
    assert_sole_owner(&lab, 1);

    // The capture, once: refused, and n2 goes on hearing n1.
    send_once_and_see_it_refused(&lab, &n2, captured);
    let (_, status, _) = n2.cli(&["status", "--json"]);
    assert!(
        status.contains("\"alive\": true"),
        "n2 no longer hears n1: {status}\n{}",
        n2.log()
    );
    assert_sole_owner(&lab, 1);
}
