//! Beyond one segment: l2vip exports VIPs as routes into a kernel table,
//! BIRD 2 (n1, n2) and FRR (n3) beside it announce them over BGP with BFD
//! to a router running BIRD 2, and a far client behind the router reaches
//! the VIPs. The configurations are docs/bgp.md's (`tests/bgp/`).
//!
//! Timers: heartbeat interval 200 ms, lease 1000 ms; BGP hold 3 s,
//! keepalive 1 s; BFD 100 ms × 3, so a dead node's routes go after 300 ms.

mod lab;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use lab::{Daemon, Lab};

const INTERVAL_MS: u64 = 200;
const LEASE_MS: u64 = 1000;
/// BFD: 100 ms × 3.
const BFD_DETECT_MS: u64 = 300;
/// Routed-only VIPs, beyond the LAN's prefix.
const FAR: &str = "198.51.100.7";
const OTHER: &str = "198.51.100.9";
const FAR6: &str = "2001:db8:100::7";
/// A withdrawal reaches the router's FIB within this (the issue's bound):
/// l2vip's netlink change, the node's BIRD or zebra, one BGP UPDATE, the
/// router's BIRD and its kernel route.
const WITHDRAW_LIMIT: Duration = Duration::from_secs(1);

fn config_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bgp")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The routing daemons of the lab, ended by PID on drop.
struct Routing {
    children: Vec<(String, Child)>,
}

impl Routing {
    fn spawn(lab: &Lab, host: &str, label: &str, args: &[&str]) -> (String, Child) {
        let child = lab.spawn(host, args, &format!("{label}.out"));
        (label.to_string(), child)
    }

    /// BIRD with `config` in `host`, in the foreground.
    fn bird(lab: &Lab, host: &str, config: &str) -> (String, Child) {
        let conf = lab.write(&format!("{host}-bird.conf"), config, 0o644);
        let ctl = lab.dir.join(format!("{host}-bird.ctl"));
        Routing::spawn(
            lab,
            host,
            &format!("{host}-bird"),
            &[
                "bird",
                "-f",
                "-c",
                &conf.display().to_string(),
                "-s",
                &ctl.display().to_string(),
            ],
        )
    }

    /// FRR's zebra, bfdd and bgpd with `config` in `host`, in the
    /// foreground, as the frr user, with every path in the lab directory.
    fn frr(lab: &Lab, host: &str, config: &str) -> Vec<(String, Child)> {
        use std::os::unix::fs::PermissionsExt;
        let dir = lab.dir.join(format!("{host}-frr"));
        fs::create_dir_all(&dir).expect("frr dir");
        // The daemons drop to the frr user, which writes its sockets here.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        let conf = dir.join("frr.conf");
        fs::write(&conf, config).expect("frr.conf");
        let path = |name: &str| dir.join(name).display().to_string();
        let mut children = Vec::new();
        for daemon in ["zebra", "bfdd", "bgpd"] {
            let binary = format!("/usr/lib/frr/{daemon}");
            let (conf, pid, zserv, vty) = (
                conf.display().to_string(),
                path(&format!("{daemon}.pid")),
                path("zserv.api"),
                dir.display().to_string(),
            );
            let mut args = vec![
                binary.as_str(),
                "-f",
                &conf,
                "-i",
                &pid,
                "-z",
                &zserv,
                "--vty_socket",
                &vty,
                "-P",
                "0",
            ];
            let control = path("bfdd.sock");
            if daemon == "bfdd" {
                args.extend(["--bfdctl", control.as_str()]);
            }
            children.push(Routing::spawn(
                lab,
                host,
                &format!("{host}-{daemon}"),
                &args,
            ));
            // bfdd and bgpd connect to zebra's socket.
            if daemon == "zebra" {
                let zserv = dir.join("zserv.api");
                Lab::wait_until(Duration::from_secs(5), || zserv.exists());
            }
        }
        children
    }

    /// The router's BIRD, BIRD on n1 and n2, FRR on n3.
    fn start(lab: &Lab) -> Routing {
        let node = config_file("node-bird.conf");
        let mut children = vec![
            Routing::bird(lab, "r", &config_file("router-bird.conf")),
            Routing::bird(lab, "n1", &node),
            Routing::bird(
                lab,
                "n2",
                &node
                    .replace("192.0.2.11", "192.0.2.12")
                    .replace("2001:db8::11", "2001:db8::12")
                    .replace("65011", "65012"),
            ),
        ];
        children.extend(Routing::frr(lab, "n3", &config_file("node-frr.conf")));
        Routing { children }
    }

    /// Ends the routing daemons of `host` at once (SIGKILL).
    fn kill(&mut self, host: &str) {
        for (label, child) in &mut self.children {
            if label.starts_with(&format!("{host}-")) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Routing {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Node `node`'s configuration: priority by number (n1 ranks first), the
/// services given, every other node a peer.
fn config(node: usize, services: &str) -> String {
    format!(
        r#"{{"node": "n{node}", "priority": {priority},
            "heartbeat": {{"peers": [{peers}], "interval_ms": {INTERVAL_MS}, "lease_ms": {LEASE_MS}}},
            "services": [{services}]}}"#,
        priority = 250 - 50 * node,
        peers = lab::peers(node, 3),
    )
}

/// The router's next hops for `vip` now (its FIB, as `ip route` shows it).
fn next_hops(lab: &Lab, vip: &str) -> BTreeSet<String> {
    let family = if vip.contains(':') { "-6" } else { "-4" };
    let text = lab.text("r", &["ip", family, "route", "show", vip]);
    text.split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_string())
        .collect()
}

/// The nodes' addresses, as next hops for a VIP of `vip`'s family.
fn hops(vip: &str, nodes: &[usize]) -> BTreeSet<String> {
    let prefix = if vip.contains(':') {
        "2001:db8::"
    } else {
        "192.0.2."
    };
    nodes
        .iter()
        .map(|i| format!("{prefix}{}", 10 + i))
        .collect()
}

/// Waits until the router's next hops for `vip` are `nodes`; how long it
/// took, or a failure naming what the router has.
fn wait_hops(lab: &Lab, vip: &str, nodes: &[usize], limit: Duration) -> Duration {
    let start = Instant::now();
    let wanted = hops(vip, nodes);
    let reached = Lab::wait_until_every(limit, Duration::from_millis(10), || {
        next_hops(lab, vip) == wanted
    });
    assert!(
        reached,
        "after {limit:?} the router routes {vip} via {:?}, not {wanted:?}; its BIRD: {}",
        next_hops(lab, vip),
        lab.text("r", &["ip", "route"])
    );
    start.elapsed()
}

/// The destinations of l2vip's routes (proto 76) in `table` of `host`
/// (none when the table does not exist).
fn exported(lab: &Lab, host: &str, family: &str, table: &str) -> BTreeSet<String> {
    let out = lab.run(
        host,
        &["ip", family, "route", "show", "table", table, "proto", "76"],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn far_reaches(lab: &Lab, vip: &str) -> bool {
    lab.run("f", &["ping", "-c", "1", "-W", "1", vip])
        .status
        .success()
}

/// Kills node `node` outright: l2vip and its routing daemons by SIGKILL,
/// its link down.
fn lose_node(lab: &Lab, routing: &mut Routing, daemon: &mut Daemon, node: usize) {
    let _ = daemon.stop_with("KILL", Duration::from_secs(2));
    routing.kill(&format!("n{node}"));
    let out = lab.run(&format!("n{node}"), &["ip", "link", "set", "eth0", "down"]);
    assert!(out.status.success());
}

/// Counts packets for `vip` matching `what` (an nft match, such as "udp
/// dport 9") arriving at `host`.
fn count_arrivals(lab: &Lab, host: &str, vip: &str, what: &str) {
    let rule = format!(
        "add table inet l2viptest\n\
         add chain inet l2viptest input {{ type filter hook input priority 0; }}\n\
         add rule inet l2viptest input ip daddr {vip} {what} counter\n"
    );
    let path = lab.write(&format!("{host}-count.nft"), &rule, 0o644);
    let out = lab.run(host, &["nft", "-f", &path.display().to_string()]);
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn arrivals(lab: &Lab, host: &str) -> u64 {
    let text = lab.text(
        host,
        &["nft", "list", "chain", "inet", "l2viptest", "input"],
    );
    text.split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[0] == "packets")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or_else(|| panic!("no counter on {host}: {text}"))
}

/// Starts l2vip on n1..n3 with `services` and the routing daemons; waits
/// until every node has heard the others.
fn cluster(lab: &Lab, services: &str) -> (Vec<Daemon>, Routing) {
    let routing = Routing::start(lab);
    let daemons: Vec<Daemon> = (1..=3)
        .map(|i| lab.daemon(i, &config(i, services)))
        .collect();
    for daemon in &daemons {
        assert!(
            Lab::wait_until(Duration::from_secs(5), || daemon.socket.exists()),
            "{}",
            daemon.log()
        );
    }
    // The router has a BGP session and a BFD session up with each node,
    // and over IPv6 with the BIRD nodes.
    let birdc = |what: &[&str]| {
        let ctl = lab.dir.join("r-bird.ctl").display().to_string();
        let mut args = vec!["birdc", "-s", ctl.as_str()];
        args.extend(what);
        lab.text("r", &args)
    };
    let up = Lab::wait_until(Duration::from_secs(20), || {
        birdc(&["show", "protocols"]).matches("Established").count() == 5
            && birdc(&["show", "bfd", "sessions"]).matches(" Up ").count() == 5
    });
    assert!(
        up,
        "{}{}",
        birdc(&["show", "protocols"]),
        birdc(&["show", "bfd", "sessions"])
    );
    std::thread::sleep(Duration::from_millis(LEASE_MS + INTERVAL_MS));
    (daemons, routing)
}

/// docs/bgp.md shows the configurations the lab runs, each whole, in a
/// code block of its own.
#[test]
fn the_docs_show_the_routing_configurations_the_lab_runs() {
    let docs = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/bgp.md"))
        .expect("docs/bgp.md");
    for name in ["router-bird.conf", "node-bird.conf", "node-frr.conf"] {
        let block = format!("```\n{}```\n", config_file(name));
        assert!(
            docs.contains(&block),
            "docs/bgp.md lacks tests/bgp/{name} as it is"
        );
    }
}

#[test]
fn owned_vips_are_routed_to_their_owner_and_withdrawn_on_drain_health_sigterm_and_loss() {
    if !lab::available("owned_vips_are_routed_to_their_owner") {
        return;
    }
    let lab = Lab::up_router(3);
    let sick = lab.dir.join("sick");
    let services = format!(
        r#"{{"name": "far", "ip": "{FAR}", "interface": "eth0", "answer": false,
             "export": {{"table": 100, "what": "owned"}},
             "health": {{"exec": "test ! -e {sick}-$L2VIP_NODE", "interval_ms": 100,
                         "timeout_ms": 80, "rise": 1, "fall": 1}}}},
           {{"name": "other", "ip": "{OTHER}", "interface": "eth0", "answer": false,
             "export": {{"table": 100, "what": "owned"}}}}"#,
        sick = sick.display()
    );
    let (mut daemons, mut routing) = cluster(&lab, &services);

    // n1 ranks first and owns both: the router sends their traffic to n1
    // alone, and the far client reaches them.
    wait_hops(&lab, FAR, &[1], Duration::from_secs(15));
    wait_hops(&lab, OTHER, &[1], Duration::from_secs(5));
    assert!(far_reaches(&lab, FAR) && far_reaches(&lab, OTHER));
    assert_eq!(exported(&lab, "n1", "-4", "100"), set(&[FAR, OTHER]));
    for (i, host) in [(1, "n2"), (2, "n3")] {
        let routes = exported(&lab, host, "-4", "100");
        assert!(
            routes.is_empty(),
            "{host}: {routes:?}\n{}",
            daemons[i].log()
        );
    }
    // `status` says where each VIP is exported.
    let exported_here = |daemon: &Daemon| -> Vec<serde_json::Value> {
        let (_, out, _) = daemon.cli(&["status", "--json"]);
        let status: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
        status["data"]["services"]
            .as_array()
            .expect("services")
            .iter()
            .map(|s| s["exported"].clone())
            .collect()
    };
    assert_eq!(exported_here(&daemons[0]), vec![100, 100]);
    assert_eq!(
        exported_here(&daemons[1]),
        vec![serde_json::Value::Null, serde_json::Value::Null]
    );
    // Routed only: nobody answers ARP for them.
    let arp = lab.text("c", &["arping", "-c", "2", "-w", "2", "-I", "eth0", FAR]);
    assert!(arp.contains("Received 0 response"), "{arp}");

    // Drain: n1 withdraws at once, n2 (next in rank) takes over.
    let (code, _, err) = daemons[0].cli(&["drain"]);
    assert_eq!(code, Some(0), "{err}");
    let drained = wait_hops(&lab, FAR, &[2], WITHDRAW_LIMIT);
    wait_hops(&lab, OTHER, &[2], WITHDRAW_LIMIT);
    assert!(exported(&lab, "n1", "-4", "100").is_empty());
    assert!(far_reaches(&lab, FAR));
    eprintln!("drain: the router's FIB moved in {drained:?}");
    let (code, _, _) = daemons[0].cli(&["undrain"]);
    assert_eq!(code, Some(0));

    // A failing health check on n2 withdraws that VIP only; n1 (a
    // candidate again) takes it.
    fs::write(format!("{}-n2", sick.display()), "").expect("sick");
    let failed = wait_hops(&lab, FAR, &[1], WITHDRAW_LIMIT + Duration::from_millis(200));
    assert_eq!(next_hops(&lab, OTHER), hops(OTHER, &[2]));
    assert_eq!(exported(&lab, "n2", "-4", "100"), set(&[OTHER]));
    eprintln!("failing check: the router's FIB moved in {failed:?}");

    // SIGTERM: n2 withdraws on its way out; n1 takes the other VIP.
    let (status, took) = daemons[1]
        .stop_with("TERM", Duration::from_secs(5))
        .expect("n2 stops");
    assert!(status.success(), "{status:?}");
    let left = wait_hops(&lab, OTHER, &[1], WITHDRAW_LIMIT);
    assert!(exported(&lab, "n2", "-4", "100").is_empty());
    assert!(!lab
        .text("n2", &["ip", "route", "show", "table", "local"])
        .contains("proto 76"));
    eprintln!("SIGTERM: exit in {took:?}, the router's FIB moved in {left:?}");

    // n1 lost outright: BFD takes its routes at once, n3 (FRR) announces
    // both after the lease. The far client's longest gap is bounded by the
    // lease, one interval, BFD's detection and a second of slack for BGP.
    let ping = lab::start_ping(&lab, "f", OTHER, 5);
    std::thread::sleep(Duration::from_millis(500));
    lose_node(&lab, &mut routing, &mut daemons[0], 1);
    let (gap, replies) = lab::longest_gap(ping);
    let bound = Duration::from_millis(LEASE_MS + INTERVAL_MS + BFD_DETECT_MS + 1000);
    eprintln!("node loss (owned): the far client's longest gap {gap:?} ({replies} replies)");
    assert!(gap <= bound, "gap {gap:?} over {bound:?}");
    wait_hops(&lab, OTHER, &[3], Duration::from_secs(3));
    wait_hops(&lab, FAR, &[3], Duration::from_secs(3));
    assert!(far_reaches(&lab, FAR));
}

#[test]
fn eligible_vips_are_routed_to_every_healthy_node_and_flows_spread() {
    if !lab::available("eligible_vips_are_routed_to_every_healthy_node") {
        return;
    }
    let lab = Lab::up_router(3);
    let services = format!(
        r#"{{"name": "far", "ip": "{FAR}", "interface": "eth0", "answer": false,
             "export": {{"table": 100, "what": "eligible"}}}},
           {{"name": "far6", "ip": "{FAR6}", "interface": "eth0", "answer": false,
             "export": {{"table": 100, "what": "eligible", "metric": 10}}}}"#
    );
    let (mut daemons, mut routing) = cluster(&lab, &services);
    wait_hops(&lab, FAR, &[1, 2, 3], Duration::from_secs(15));
    // IPv6 through the BIRD nodes (FRR 8.4 imports no IPv6 table).
    wait_hops(&lab, FAR6, &[1, 2], Duration::from_secs(5));
    assert!(far_reaches(&lab, FAR) && far_reaches(&lab, FAR6));
    // Every node exports both, owner or not (IPv6 with its metric).
    for host in ["n1", "n2", "n3"] {
        assert_eq!(exported(&lab, host, "-4", "100"), set(&[FAR]), "{host}");
        assert_eq!(exported(&lab, host, "-6", "100"), set(&[FAR6]), "{host}");
        let route = lab.text(host, &["ip", "-6", "route", "show", "table", "100"]);
        assert!(route.contains("metric 10"), "{host}: {route}");
    }

    // 90 UDP flows (each its own source port) from the far client: the
    // router spreads them over the three nodes.
    for host in ["n1", "n2", "n3"] {
        count_arrivals(&lab, host, FAR, "udp dport 9");
    }
    let flows = 90;
    let send = format!("for i in $(seq {flows}); do echo x >/dev/udp/{FAR}/9; done");
    let out = lab.run("f", &["bash", "-c", &send]);
    assert!(out.status.success());
    let counts: Vec<u64> = ["n1", "n2", "n3"]
        .iter()
        .map(|host| arrivals(&lab, host))
        .collect();
    eprintln!("{flows} flows over n1, n2, n3: {counts:?}");
    assert_eq!(counts.iter().sum::<u64>(), flows);
    assert!(counts.iter().all(|c| *c > 0), "{counts:?}");

    // Drain withdraws one node's route; undrain brings it back.
    let (code, _, _) = daemons[1].cli(&["drain"]);
    assert_eq!(code, Some(0));
    let drained = wait_hops(&lab, FAR, &[1, 3], WITHDRAW_LIMIT);
    wait_hops(&lab, FAR6, &[1], WITHDRAW_LIMIT);
    assert!(exported(&lab, "n2", "-4", "100").is_empty());
    let (code, _, _) = daemons[1].cli(&["undrain"]);
    assert_eq!(code, Some(0));
    let back = wait_hops(&lab, FAR, &[1, 2, 3], WITHDRAW_LIMIT);
    wait_hops(&lab, FAR6, &[1, 2], WITHDRAW_LIMIT);
    eprintln!("eligible: drain moved the FIB in {drained:?}, undrain in {back:?}");

    // Lose the node that carries the far client's pings: BFD takes its
    // route, the others already carry the VIP. Bound: BFD's detection and
    // 700 ms for the router's BIRD and kernel.
    for host in ["n1", "n2", "n3"] {
        let out = lab.run(host, &["nft", "delete", "table", "inet", "l2viptest"]);
        assert!(out.status.success());
        count_arrivals(&lab, host, FAR, "icmp type echo-request");
    }
    let ping = lab::start_ping(&lab, "f", FAR, 4);
    std::thread::sleep(Duration::from_millis(500));
    let carrier = (1..=3)
        .max_by_key(|i| arrivals(&lab, &format!("n{i}")))
        .expect("three nodes");
    lose_node(&lab, &mut routing, &mut daemons[carrier - 1], carrier);
    let (gap, replies) = lab::longest_gap(ping);
    let bound = Duration::from_millis(BFD_DETECT_MS + 700);
    eprintln!("node loss (eligible, n{carrier}): the far client's longest gap {gap:?} ({replies} replies)");
    assert!(gap <= bound, "gap {gap:?} over {bound:?}");
    let rest: Vec<usize> = (1..=3).filter(|i| *i != carrier).collect();
    wait_hops(&lab, FAR, &rest, Duration::from_secs(1));
}

#[test]
fn exported_routes_follow_the_link_and_none_outlive_the_daemon() {
    if !lab::available("exported_routes_follow_the_link") {
        return;
    }
    let lab = Lab::up(1, false);
    let services = |table: u32| {
        format!(
            r#"{{"node": "n1", "export": {{"table": {table}, "what": "eligible"}}, "services": [
                {{"name": "far", "ip": "{FAR}", "interface": "eth0", "answer": false}},
                {{"name": "far6", "ip": "{FAR6}", "interface": "eth0", "answer": false}},
                {{"name": "lan", "ip": "192.0.2.200", "interface": "eth0",
                  "export": {{"table": {table}, "what": "owned", "metric": 5}}}}]}}"#
        )
    };
    let mut n1 = lab.daemon(1, &services(100));
    assert!(
        n1.wait_for_log("acquired lan", Duration::from_secs(5)),
        "{}",
        n1.log()
    );
    let all4 = set(&[FAR, "192.0.2.200"]);
    let all6 = set(&[FAR6]);
    assert!(Lab::wait_until(Duration::from_secs(2), || exported(
        &lab, "n1", "-4", "100"
    ) == all4));
    assert_eq!(exported(&lab, "n1", "-6", "100"), all6);
    // Answered only where it should be.
    let lan = lab.text(
        "c",
        &["arping", "-c", "1", "-w", "2", "-I", "eth0", "192.0.2.200"],
    );
    assert!(lan.contains("Received 1 response"), "{lan}");

    // Link loss: nothing exported; back: everything again.
    lab.run("n1", &["ip", "link", "set", "eth0", "down"]);
    assert!(
        Lab::wait_until(Duration::from_secs(2), || exported(&lab, "n1", "-4", "100")
            .is_empty()
            && exported(&lab, "n1", "-6", "100").is_empty()),
        "{}",
        n1.log()
    );
    lab.run("n1", &["ip", "link", "set", "eth0", "up"]);
    assert!(
        Lab::wait_until(Duration::from_secs(3), || exported(&lab, "n1", "-4", "100")
            == all4
            && exported(&lab, "n1", "-6", "100") == all6),
        "{}",
        n1.log()
    );

    // A crash leaves them; the next start, exporting to table 200 now,
    // removes the ones in table 100 and puts its own in 200.
    let _ = n1.stop_with("KILL", Duration::from_secs(2));
    assert_eq!(exported(&lab, "n1", "-4", "100"), all4);
    let mut again = lab.daemon(1, &services(200));
    assert!(
        again.wait_for_log("acquired lan", Duration::from_secs(5)),
        "{}",
        again.log()
    );
    assert!(Lab::wait_until(Duration::from_secs(2), || exported(
        &lab, "n1", "-4", "200"
    ) == all4));
    assert!(exported(&lab, "n1", "-4", "100").is_empty());
    assert!(exported(&lab, "n1", "-6", "100").is_empty());
    assert!(again
        .log()
        .contains("removed a stale l2vip route for 198.51.100.7 (table 100)"));

    // A reload that drops the export withdraws the routes and keeps the VIPs.
    lab.rewrite_config(
        1,
        &services(200).replace(r#""export": {"table": 200, "what": "eligible"}, "#, ""),
    );
    again.signal("HUP");
    assert!(Lab::wait_until(Duration::from_secs(2), || exported(
        &lab, "n1", "-4", "200"
    ) == set(&[
        "192.0.2.200"
    ])));

    // SIGTERM: none left, in any table.
    let (status, _) = again
        .stop_with("TERM", Duration::from_secs(5))
        .expect("stops");
    assert!(status.success());
    for family in ["-4", "-6"] {
        let left = lab.text(
            "n1",
            &["ip", family, "route", "show", "table", "all", "proto", "76"],
        );
        assert!(left.trim().is_empty(), "{left}");
    }
}
