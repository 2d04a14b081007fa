//! Taking the traffic, in the lab: the owner's kernel answers the client's
//! pings to the VIPs through l2vip's local routes, the old owner lingers for
//! clients with stale caches after a planned move, a link that goes down
//! moves its VIPs, health checks decide who may serve, hooks run.
//! Timers: interval 100 ms, lease 500 ms unless a test says otherwise.

#[path = "lab/mod.rs"]
mod lab;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use lab::{
    arp_answerers, cache_moves_to, epoch_now, first_gratuitous, nd_answerers, neighbour_mac,
    node_mac, peers, vip_link_mac, Daemon, Lab, Start,
};

const VIP4: &str = "192.0.2.200";
const VIP6: &str = "2001:db8::200";
const INTERVAL_MS: u64 = 100;
const LEASE_MS: u64 = 500;
/// Start-up: the hold (max(3 x interval, lease / 2)) plus slack.
const START_BOUND: Duration = Duration::from_secs(5);
/// A crash: the lease, the first burst round, a second of slack.
const FAILOVER_BOUND: Duration = Duration::from_millis(LEASE_MS + 1000);

/// Node `node`'s config: priority 200 - 50 x node (n1 ranks best), the
/// two VIPs on `interface`, `extra` top-level keys and `service_extra`
/// keys in each service.
fn config(node: usize, nodes: usize, interface: &str, extra: &str, service_extra: &str) -> String {
    format!(
        r#"{{
  "node": "n{node}", "priority": {priority}{extra},
  "heartbeat": {{"interval_ms": {INTERVAL_MS}, "lease_ms": {LEASE_MS}, "peers": [{peers}]}},
  "services": [
    {{"name": "web", "ip": "{VIP4}", "interface": "{interface}"{service_extra}}},
    {{"name": "web6", "ip": "{VIP6}", "interface": "{interface}"{service_extra}}}
  ]
}}"#,
        priority = 200 - 50 * node,
        peers = peers(node, nodes),
    )
}

/// Starts nodes 1..=`count`; n1 takes the VIPs.
fn start(lab: &Lab, count: usize, configure: impl Fn(usize) -> String) -> Vec<Daemon> {
    let daemons: Vec<Daemon> = (1..=count).map(|i| lab.daemon(i, &configure(i))).collect();
    assert!(
        daemons[0].wait_for_log("acquired web6", START_BOUND),
        "n1 did not take the VIPs:\n{}",
        daemons[0].log()
    );
    daemons
}

/// Pings `ip` from `host` `count` times, 200 ms apart; returns the replies.
fn pings(lab: &Lab, host: &str, ip: &str, count: u32) -> u32 {
    let count = count.to_string();
    let out = lab.text(
        host,
        &["ping", "-n", "-c", &count, "-i", "0.2", "-W", "1", ip],
    );
    out.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once(" packets transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no ping summary: {out}"))
}

/// l2vip's routes in `host`'s namespace (both families).
fn l2vip_routes(lab: &Lab, host: &str) -> String {
    let v4 = lab.text(
        host,
        &["ip", "-4", "route", "show", "table", "local", "proto", "76"],
    );
    let v6 = lab.text(
        host,
        &["ip", "-6", "route", "show", "table", "local", "proto", "76"],
    );
    format!("{v4}{v6}").trim().to_string()
}

fn only(mac: &str) -> BTreeSet<String> {
    BTreeSet::from([mac.to_string()])
}

fn sysctl(lab: &Lab, host: &str, key: &str) -> String {
    lab.text(host, &["sysctl", "-n", key]).trim().to_string()
}

#[test]
fn the_owners_kernel_answers_pings_before_and_after_a_failover() {
    if !lab::available("the_owners_kernel_answers_pings_before_and_after_a_failover") {
        return;
    }
    let lab = Lab::up(2, false);
    // A route a crashed run left behind: removed when l2vip starts.
    let stale = lab.run(
        "n1",
        &[
            "ip",
            "route",
            "add",
            "local",
            "192.0.2.250",
            "dev",
            "eth0",
            "table",
            "local",
            "proto",
            "76",
        ],
    );
    assert!(stale.status.success(), "{stale:?}");
    let mut daemons = start(&lab, 2, |i| config(i, 2, "eth0", "", ""));
    let n1_log = daemons[0].log();
    assert!(
        n1_log.contains("removed a stale l2vip route for 192.0.2.250"),
        "{n1_log}"
    );
    assert!(
        n1_log.contains("set net.ipv4.conf.all.arp_ignore 0 -> 1"),
        "{n1_log}"
    );
    assert_eq!(sysctl(&lab, "n1", "net.ipv4.conf.all.arp_ignore"), "1");
    assert_eq!(sysctl(&lab, "n1", "net.ipv4.conf.all.arp_announce"), "2");

    for vip in [VIP4, VIP6] {
        assert_eq!(
            pings(&lab, "c", vip, 3),
            3,
            "ping {vip} before the failover"
        );
    }
    let routes = l2vip_routes(&lab, "n1");
    assert!(
        routes.contains("local 192.0.2.200 dev eth0")
            && routes.contains("local 2001:db8::200 dev eth0"),
        "{routes}"
    );
    assert!(!routes.contains("192.0.2.250"), "{routes}");
    assert_eq!(l2vip_routes(&lab, "n2"), "", "the standby routes nothing");
    // Only l2vip answers ARP/NS for the VIPs: n2's kernel, too, stays quiet.
    assert_eq!(arp_answerers(&lab, VIP4), only(&node_mac(1)));
    assert_eq!(nd_answerers(&lab, VIP6), only(&node_mac(1)));

    // A crash: n2 takes over after the lease and its kernel answers.
    daemons[0].stop_with("KILL", Duration::from_secs(2));
    cache_moves_to(
        &lab,
        VIP4,
        &node_mac(2),
        FAILOVER_BOUND + Duration::from_secs(2),
    );
    for vip in [VIP4, VIP6] {
        assert_eq!(pings(&lab, "c", vip, 3), 3, "ping {vip} after the failover");
    }
    assert!(l2vip_routes(&lab, "n2").contains("local 192.0.2.200"));
    // The crashed node's namespace still holds its routes: it removes them
    // when it starts again.
    assert!(l2vip_routes(&lab, "n1").contains("local 192.0.2.200"));
    let restarted = lab.daemon(1, &config(1, 2, "eth0", "", ""));
    assert!(
        restarted.wait_for_log("l2vip routes left by an earlier run", START_BOUND),
        "{}",
        restarted.log()
    );
    std::thread::sleep(Duration::from_millis(LEASE_MS * 2));
    assert_eq!(l2vip_routes(&lab, "n1"), "", "sticky: n2 keeps the VIPs");
    assert_eq!(pings(&lab, "c", VIP4, 2), 2);

    // SIGTERM: nothing of l2vip is left in the routing table, and the ARP
    // settings l2vip changed are back to what they were, n1's too (changed
    // by the run that crashed, whose record the restarted run found).
    let mut restarted = restarted;
    for daemon in [&mut daemons[1], &mut restarted] {
        let stopped = daemon.stop_with("TERM", Duration::from_secs(3));
        assert!(stopped.is_some_and(|(status, _)| status.success()));
    }
    for host in ["n1", "n2"] {
        assert_eq!(l2vip_routes(&lab, host), "", "{host}");
    }
    for host in ["n1", "n2"] {
        assert_eq!(sysctl(&lab, host, "net.ipv4.conf.all.arp_ignore"), "0");
        assert_eq!(sysctl(&lab, host, "net.ipv4.conf.all.arp_announce"), "0");
    }
    assert_eq!(
        pings(&lab, "c", VIP4, 2),
        0,
        "nobody accepts the VIP any more"
    );
}

/// MetalLB's scenario: a client that ignores gratuitous ARP keeps reaching
/// the VIP on the old owner after a planned hand-over, for the linger
/// period; the normal client moves at once; only the new owner answers
/// ARP/NS. Node 3 plays the client with the pinned (permanent) entries.
#[test]
fn linger_serves_clients_with_stale_caches_until_it_ends() {
    if !lab::available("linger_serves_clients_with_stale_caches_until_it_ends") {
        return;
    }
    const LINGER_S: u64 = 6;
    let lab = Lab::up(3, false);
    let extra = format!(r#", "linger_s": {LINGER_S}"#);
    let daemons = start(&lab, 2, |i| config(i, 2, "eth0", &extra, ""));
    for (vip, family) in [(VIP4, "-4"), (VIP6, "-6")] {
        let pin = lab.run(
            "n3",
            &[
                "ip",
                family,
                "neigh",
                "replace",
                vip,
                "lladdr",
                &node_mac(1),
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        );
        assert!(pin.status.success(), "{pin:?}");
        assert_eq!(pings(&lab, "n3", vip, 2), 2, "pinned client, before");
        assert_eq!(pings(&lab, "c", vip, 1), 1, "normal client, before");
    }

    let drained_at = Instant::now();
    let (code, _, stderr) = daemons[0].cli(&["drain"]);
    assert_eq!(code, Some(0), "{stderr}");
    cache_moves_to(&lab, VIP4, &node_mac(2), Duration::from_secs(1));
    // During linger: both nodes route the VIPs, only n2 answers ARP/NS,
    // the pinned client still reaches n1 and the normal one reaches n2.
    assert!(l2vip_routes(&lab, "n1").contains("local 192.0.2.200"));
    assert!(l2vip_routes(&lab, "n2").contains("local 192.0.2.200"));
    let capture = lab.capture("c", "eth0", "arp or (icmp6 and ip6[40] == 136)");
    assert_eq!(arp_answerers(&lab, VIP4), only(&node_mac(2)));
    assert_eq!(nd_answerers(&lab, VIP6), only(&node_mac(2)));
    for vip in [VIP4, VIP6] {
        assert_eq!(pings(&lab, "n3", vip, 2), 2, "pinned client during linger");
        assert_eq!(pings(&lab, "c", vip, 2), 2, "normal client during linger");
    }
    // The capture: every ARP reply and NA for a VIP on the wire came from n2.
    let decoded = capture.stop();
    let answers: Vec<&str> = decoded
        .lines()
        .filter(|l| {
            l.contains(&format!("Reply {VIP4} is-at"))
                || (l.contains("neighbor advertisement") && l.contains(&format!("tgt is {VIP6}")))
        })
        .collect();
    let senders: BTreeSet<String> = answers
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    assert!(answers.len() >= 4, "{decoded}");
    assert_eq!(senders, only(&node_mac(2)), "{decoded}");
    let (_, status, _) = daemons[0].cli(&["status"]);
    assert!(status.contains("lingering"), "{status}");
    assert!(
        drained_at.elapsed() < Duration::from_secs(LINGER_S),
        "the checks took longer than the linger period; nothing was proven"
    );

    // Linger over: n1 drops its routes, the pinned client gets nothing.
    assert!(
        daemons[0].wait_for_log("web: linger over", Duration::from_secs(LINGER_S + 2)),
        "{}",
        daemons[0].log()
    );
    assert!(drained_at.elapsed() >= Duration::from_secs(LINGER_S));
    assert!(
        Lab::wait_until(Duration::from_secs(1), || l2vip_routes(&lab, "n1")
            .is_empty()),
        "{}",
        l2vip_routes(&lab, "n1")
    );
    for vip in [VIP4, VIP6] {
        assert_eq!(pings(&lab, "n3", vip, 2), 0, "pinned client after linger");
        assert_eq!(pings(&lab, "c", vip, 2), 2, "normal client after linger");
    }
}

/// Heartbeats on eth0, VIPs on eth1: eth1 losing its link moves the VIPs
/// within an interval (+ 200 ms); its return moves nothing back (sticky),
/// but makes n1 a candidate again.
#[test]
fn a_vip_link_going_down_moves_its_vips_within_an_interval() {
    if !lab::available("a_vip_link_going_down_moves_its_vips_within_an_interval") {
        return;
    }
    let lab = Lab::up_vip_link(2);
    let daemons = start(&lab, 2, |i| config(i, 2, "eth1", "", ""));
    for vip in [VIP4, VIP6] {
        assert_eq!(pings(&lab, "c", vip, 1), 1, "{vip}");
    }
    assert_eq!(neighbour_mac(&lab, VIP4), Some(vip_link_mac(1)));
    let capture = lab.capture(
        "c",
        "eth0",
        &format!("arp and ether src {}", vip_link_mac(2)),
    );
    let downed = epoch_now();
    let out = lab.run("n1", &["ip", "link", "set", "eth1", "down"]);
    assert!(out.status.success());
    assert!(
        daemons[1].wait_for_log("acquired web6", Duration::from_secs(2)),
        "{}\n{}",
        daemons[0].log(),
        daemons[1].log()
    );
    std::thread::sleep(Duration::from_millis(300));
    let decoded = capture.stop();
    let first = first_gratuitous(&decoded, VIP4).unwrap_or_else(|| panic!("no burst:\n{decoded}"));
    let took = first - downed;
    eprintln!(
        "link down: n2's first gratuitous ARP {:.1} ms later",
        took * 1000.0
    );
    assert!(
        took < (INTERVAL_MS + 200) as f64 / 1000.0,
        "{took:.3} s\n{}",
        daemons[0].log()
    );
    assert!(daemons[0]
        .log()
        .contains("released web (192.0.2.200 on eth1): link down"));
    assert!(
        l2vip_routes(&lab, "n1").is_empty(),
        "{}",
        l2vip_routes(&lab, "n1")
    );
    assert_eq!(pings(&lab, "c", VIP4, 2), 2);

    // Link back: no move back, but n1 is a candidate again.
    let out = lab.run("n1", &["ip", "link", "set", "eth1", "up"]);
    assert!(out.status.success());
    assert!(daemons[0].wait_for_log("eth1: up", Duration::from_secs(2)));
    std::thread::sleep(Duration::from_millis(LEASE_MS * 2));
    assert_eq!(
        arp_answerers(&lab, VIP4),
        only(&vip_link_mac(2)),
        "{}\n{}",
        daemons[0].log(),
        daemons[1].log()
    );
    assert_eq!(nd_answerers(&lab, VIP6), only(&vip_link_mac(2)));
    let (code, _, stderr) = daemons[1].cli(&["handover"]);
    assert_eq!(code, Some(0), "n1 is no candidate again: {stderr}");
    assert!(
        daemons[0].wait_for_log("acquired web6", Duration::from_secs(1)),
        "{}",
        daemons[0].log()
    );
    cache_moves_to(&lab, VIP4, &vip_link_mac(1), Duration::from_secs(2));
    assert_eq!(pings(&lab, "c", VIP6, 2), 2);
}

/// The VIP interface deleted and re-created with another MAC (a new
/// ifindex): the node reopens its sockets, routes the VIP again and
/// announces the new MAC; a later MAC change is announced too.
#[test]
fn a_recreated_interface_gets_its_vips_back() {
    if !lab::available("a_recreated_interface_gets_its_vips_back") {
        return;
    }
    let lab = Lab::up_vip_link(1);
    // A one-node cluster (no peers) owns everything it can.
    let daemon = lab.daemon(
        1,
        &format!(
            r#"{{"node": "n1", "services": [
                {{"name": "web", "ip": "{VIP4}", "interface": "eth1"}},
                {{"name": "web6", "ip": "{VIP6}", "interface": "eth1"}}]}}"#
        ),
    );
    assert!(
        daemon.wait_for_log("acquired web6", START_BOUND),
        "{}",
        daemon.log()
    );
    assert_eq!(pings(&lab, "c", VIP4, 1), 1);

    let bridge = lab.ns("br");
    let node = lab.ns("n1");
    let out = lab.run("n1", &["ip", "link", "del", "eth1"]);
    assert!(out.status.success());
    assert!(
        daemon.wait_for_log("eth1: deleted", Duration::from_secs(2)),
        "{}",
        daemon.log()
    );
    let new_mac = "02:4c:32:00:03:01";
    for args in [
        vec![
            "ip", "-n", &node, "link", "add", "eth1", "address", new_mac, "type", "veth", "peer",
            "name", "q1", "netns", &bridge,
        ],
        vec![
            "ip", "-n", &bridge, "link", "set", "q1", "master", "br0", "up",
        ],
        vec!["ip", "-n", &node, "link", "set", "eth1", "up"],
    ] {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect("ip");
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    assert!(
        daemon.wait_for_log("sockets reopened", Duration::from_secs(3)),
        "{}",
        daemon.log()
    );
    assert!(
        Lab::wait_until(Duration::from_secs(3), || arp_answerers(&lab, VIP4)
            == only(new_mac)),
        "{:?}\n{}",
        arp_answerers(&lab, VIP4),
        daemon.log()
    );
    assert_eq!(nd_answerers(&lab, VIP6), only(new_mac));
    assert!(l2vip_routes(&lab, "n1").contains("local 192.0.2.200 dev eth1"));
    assert_eq!(pings(&lab, "c", VIP4, 2), 2);
    assert_eq!(pings(&lab, "c", VIP6, 2), 2);

    // A MAC change while owning: announced, so the client follows at once.
    let newer_mac = "02:4c:32:00:04:01";
    let out = lab.run("n1", &["ip", "link", "set", "eth1", "address", newer_mac]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        daemon.wait_for_log("MAC changed", Duration::from_secs(2)),
        "{}",
        daemon.log()
    );
    cache_moves_to(&lab, VIP4, newer_mac, Duration::from_secs(2));
    cache_moves_to(&lab, VIP6, newer_mac, Duration::from_secs(2));
    assert_eq!(arp_answerers(&lab, VIP4), only(newer_mac));
}

/// A TCP service for health checks to connect to; ended on drop.
struct Listener(std::process::Child);

impl Listener {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a TCP listener on 127.0.0.1:`port` inside `host`.
fn listener(lab: &Lab, host: &str, port: u16) -> Listener {
    let script = format!(
        "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('127.0.0.1',{port}))\ns.listen(64)\nprint('ready',flush=True)\n\
         end=time.time()+120\nwhile time.time()<end:\n  s.settimeout(1)\n  try:\n    c,_=s.accept();c.close()\n  except OSError:\n    pass\n"
    );
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.ns(host), "python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 listener");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("ready");
    assert_eq!(line.trim(), "ready");
    Listener(child)
}

#[test]
fn a_failing_tcp_health_check_moves_the_vips() {
    if !lab::available("a_failing_tcp_health_check_moves_the_vips") {
        return;
    }
    let lab = Lab::up(2, false);
    let mut n1_service = listener(&lab, "n1", 8080);
    let _n2_service = listener(&lab, "n2", 8080);
    let health = r#", "health": {"tcp": "127.0.0.1:8080", "interval_ms": 200, "timeout_ms": 100, "rise": 2, "fall": 2}"#;
    let daemons = start(&lab, 2, |i| config(i, 2, "eth0", "", health));
    let (_, status, _) = daemons[0].cli(&["status"]);
    assert!(status.contains("passing: connected"), "{status}");
    assert_eq!(pings(&lab, "c", VIP4, 1), 1);

    n1_service.stop();
    let stopped = Instant::now();
    assert!(
        daemons[1].wait_for_log("acquired web6", Duration::from_secs(3)),
        "{}\n{}",
        daemons[0].log(),
        daemons[1].log()
    );
    // fall (2) checks 200 ms apart, then a planned-speed move.
    eprintln!("health check failure to takeover: {:?}", stopped.elapsed());
    assert!(stopped.elapsed() < Duration::from_millis(2 * 200 + 100 + 500));
    assert!(
        daemons[0]
            .log()
            .contains("released web (192.0.2.200 on eth0): health check failing"),
        "{}",
        daemons[0].log()
    );
    let (_, status, _) = daemons[0].cli(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("JSON");
    let web = &status["data"]["services"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["health"]["state"], "failing", "{status}");
    assert!(
        web["health"]["last"]
            .as_str()
            .is_some_and(|l| l.contains("refused")),
        "{status}"
    );
    assert_eq!(web["unfit"], "health check failing");
    cache_moves_to(&lab, VIP4, &node_mac(2), Duration::from_secs(2));
    assert_eq!(pings(&lab, "c", VIP4, 2), 2);
}

/// Hooks: run with their environment, output in the log; one that hangs
/// is killed at its timeout and blocks nothing; an `exec` health check
/// that fails releases the VIPs.
#[test]
fn hooks_run_with_their_environment_and_a_hanging_one_is_killed() {
    if !lab::available("hooks_run_with_their_environment_and_a_hanging_one_is_killed") {
        return;
    }
    let lab = Lab::up(2, false);
    let dir = lab.dir.display().to_string();
    for i in 1..=2 {
        lab.write(&format!("n{i}.ok"), "", 0o644);
    }
    let configure = |i: usize| {
        let hooks = format!(
            r#", "hooks": {{"on_acquire": "f={dir}/n{i}-acquire-$L2VIP_SERVICE; env | grep ^L2VIP_ | sort > $f.new; mv $f.new $f; echo acquired-output; exec sleep 30",
                 "on_release": "f={dir}/n{i}-release-$L2VIP_SERVICE; env | grep ^L2VIP_ | sort > $f.new; mv $f.new $f", "timeout_ms": 400}}"#
        );
        let health = format!(
            r#", "health": {{"exec": "test -f {dir}/n{i}.ok", "interval_ms": 200, "timeout_ms": 150, "rise": 1, "fall": 1}}"#
        );
        config(i, 2, "eth0", &hooks, &health)
    };
    let daemons = start(&lab, 2, configure);
    assert_eq!(pings(&lab, "c", VIP4, 1), 1);
    let read = |name: &str| std::fs::read_to_string(lab.dir.join(name)).unwrap_or_default();
    assert!(
        Lab::wait_until(Duration::from_secs(2), || !read("n1-acquire-web")
            .is_empty()),
        "{}",
        daemons[0].log()
    );
    assert_eq!(
        read("n1-acquire-web"),
        "L2VIP_EVENT=acquire\nL2VIP_INTERFACE=eth0\nL2VIP_NODE=n1\nL2VIP_SERVICE=web\nL2VIP_VIP=192.0.2.200\n"
    );
    assert!(daemons[0].wait_for_log(
        "hook on_acquire for web: acquired-output",
        Duration::from_secs(1)
    ));
    assert!(
        daemons[0].wait_for_log("hook on_acquire for web: timed out", Duration::from_secs(2)),
        "{}",
        daemons[0].log()
    );

    // The exec check fails on n1: it releases, n2 takes over at once, and
    // the release hook runs.
    std::fs::remove_file(lab.dir.join("n1.ok")).expect("remove");
    let removed = Instant::now();
    assert!(
        daemons[1].wait_for_log("acquired web6", Duration::from_secs(3)),
        "{}\n{}",
        daemons[0].log(),
        daemons[1].log()
    );
    assert!(removed.elapsed() < Duration::from_millis(200 + 150 + 500));
    assert!(
        Lab::wait_until(Duration::from_secs(2), || !read("n1-release-web6")
            .is_empty()),
        "{}",
        daemons[0].log()
    );
    assert!(read("n1-release-web6").contains("L2VIP_EVENT=release\n"));
    assert!(read("n1-release-web6").contains("L2VIP_VIP=2001:db8::200\n"));
    cache_moves_to(&lab, VIP4, &node_mac(2), Duration::from_secs(2));
    assert_eq!(pings(&lab, "c", VIP4, 2), 2);
    let (_, status, _) = daemons[0].cli(&["status"]);
    assert!(status.contains("failing: exit 1"), "{status}");
}

/// The role events a hook and `--notify` recorded in `text` (each hook
/// writes "start ROLE" and "end ROLE", `--notify` "notify ROLE n1"),
/// checked to have run one at a time: start, end and notify of one role,
/// in turn, and never the same role twice in a row.
fn delivered_roles(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() % 3, 0, "{text}");
    let roles: Vec<String> = lines
        .chunks(3)
        .map(|event| {
            let role = event[0]
                .strip_prefix("start ")
                .unwrap_or_else(|| panic!("{text}"));
            assert_eq!(event[1], format!("end {role}"), "{text}");
            assert_eq!(event[2], format!("notify {role} n1"), "{text}");
            role.to_string()
        })
        .collect();
    assert!(roles.windows(2).all(|w| w[0] != w[1]), "{text}");
    roles
}

/// The role `status` shows for node n1.
fn role_in_status(n1: &Daemon) -> String {
    let (_, status, _) = n1.cli(&["status"]);
    ["primary", "backup", "fault"]
        .into_iter()
        .find(|r| status.starts_with(&format!("node n1 ({r}, ")))
        .unwrap_or_else(|| panic!("no role in status: {status}"))
        .to_string()
}

/// Node-level events: a node's first role, then primary once it owns the
/// VIPs, each event's hook then `--notify`, one at a time. Bursts while an
/// event runs deliver only the role they end in: a link that flaps while
/// the fault hook runs, and hand-overs and drains back and forth.
#[test]
fn role_events_run_in_order_one_at_a_time_and_bursts_coalesce() {
    if !lab::available("role_events_run_in_order_one_at_a_time_and_bursts_coalesce") {
        return;
    }
    let lab = Lab::up(2, false);
    let file = lab.dir.join("n1-roles").display().to_string();
    // Each hook takes two seconds: long enough for a burst to land meanwhile.
    let hook =
        format!("echo start $L2VIP_EVENT >> {file}; sleep 2; echo end $L2VIP_EVENT >> {file}");
    let hooks = format!(
        r#", "hooks": {{"on_primary": "{hook}", "on_backup": "{hook}", "on_fault": "{hook}"}}"#
    );
    let notify = Start {
        args: vec![
            "--notify".into(),
            format!("if [ -z \"$L2VIP_SERVICE\" ]; then echo notify $L2VIP_EVENT $L2VIP_NODE >> {file}; fi"),
        ],
        ..Start::default()
    };
    let n1 = lab.daemon_with(1, &config(1, 2, "eth0", &hooks, ""), &notify);
    let n2 = lab.daemon(2, &config(2, 2, "eth0", "", ""));
    assert!(
        n1.wait_for_log("acquired web6", START_BOUND),
        "{}",
        n1.log()
    );
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    let events = |text: &str| text.lines().filter(|l| l.starts_with("notify")).count();
    assert!(
        Lab::wait_until(Duration::from_secs(8), || events(&read()) == 2),
        "{}\n{}",
        read(),
        n1.log()
    );
    assert_eq!(
        read(),
        "start backup\nend backup\nnotify backup n1\nstart primary\nend primary\nnotify primary n1\n"
    );
    // Settled: n1's last role has had its event (a lease for n2 to take
    // over, then at most two events of two seconds each).
    let settled = Duration::from_millis(LEASE_MS + 2 * INTERVAL_MS) + Duration::from_secs(5);
    let changes = || n1.log().matches("this node is now").count();

    // The link flaps three times within a fifth of the fault hook's time.
    std::fs::write(&file, "").expect("truncate");
    let before = changes();
    for state in ["down", "up", "down", "up", "down", "up"] {
        let out = lab.run("n1", &["ip", "link", "set", "eth0", state]);
        assert!(out.status.success(), "{out:?}");
        std::thread::sleep(Duration::from_millis(80));
    }
    std::thread::sleep(settled);
    let role = role_in_status(&n1);
    let text = read();
    let delivered = delivered_roles(&text);
    let flaps = changes() - before;
    eprintln!("a flapping link: {flaps} role changes, events {delivered:?}");
    assert_eq!(
        delivered.first().map(String::as_str),
        Some("fault"),
        "{text}"
    );
    assert_eq!(delivered.last(), Some(&role), "{text}");
    assert!(flaps >= 4, "the flaps made {flaps} changes:\n{}", n1.log());
    assert!(
        delivered.len() < flaps,
        "{} events for {flaps} changes: nothing coalesced\n{text}",
        delivered.len()
    );

    // Planned moves back and forth: n1 primary, then a hand-over to n2,
    // n2 drained (n1 takes the VIPs back), n2 undrained and a hand-over
    // again, each move waited for; all within the backup event's run.
    if role != "primary" {
        let (code, _, stderr) = n2.cli(&["handover"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            Lab::wait_until(settled, || role_in_status(&n1) == "primary"),
            "{}",
            n1.log()
        );
        std::thread::sleep(settled);
    }
    std::fs::write(&file, "").expect("truncate");
    let before = changes();
    let moved = |log: &Daemon, count: usize| {
        assert!(
            Lab::wait_until(Duration::from_secs(1), || log
                .log()
                .matches("acquired web6")
                .count()
                >= count),
            "{}",
            log.log()
        );
    };
    let n2_taken = n2.log().matches("acquired web6").count();
    let n1_taken = n1.log().matches("acquired web6").count();
    let cli = |node: &Daemon, args: &[&str]| {
        let (code, _, stderr) = node.cli(args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
    };
    cli(&n1, &["handover"]);
    moved(&n2, n2_taken + 1);
    cli(&n2, &["drain"]);
    moved(&n1, n1_taken + 1);
    cli(&n2, &["undrain"]);
    cli(&n1, &["handover"]);
    moved(&n2, n2_taken + 2);
    std::thread::sleep(settled);
    let text = read();
    let delivered = delivered_roles(&text);
    let moves = changes() - before;
    eprintln!("hand-overs and a drain: {moves} role changes, events {delivered:?}");
    assert_eq!(moves, 3, "{}", n1.log());
    assert_eq!(delivered, ["backup"], "{text}");
    assert_eq!(role_in_status(&n1), "backup");
}

/// The VIP is also an address of the node (an administrator's): the
/// kernel's local route for it is left as it is, never counted as
/// l2vip's, and still there after l2vip stops; a route l2vip put in
/// place after its interface came back (protocol 76) stays l2vip's and
/// goes at exit.
#[test]
fn a_local_route_the_kernel_already_had_is_left_alone() {
    if !lab::available("a_local_route_the_kernel_already_had_is_left_alone") {
        return;
    }
    let lab = Lab::up(1, false);
    let out = lab.run(
        "n1",
        &["ip", "addr", "add", &format!("{VIP4}/32"), "dev", "eth0"],
    );
    assert!(out.status.success(), "{out:?}");
    let mut n1 = lab.daemon(
        1,
        &format!(
            r#"{{"node": "n1", "heartbeat": {{"interval_ms": {INTERVAL_MS}, "lease_ms": {LEASE_MS}}},
  "services": [{{"name": "web", "ip": "{VIP4}", "interface": "eth0"}},
               {{"name": "web6", "ip": "{VIP6}", "interface": "eth0"}}]}}"#
        ),
    );
    assert!(
        n1.wait_for_log(
            &format!("{VIP4}: the kernel already has a local route for it"),
            START_BOUND
        ),
        "{}",
        n1.log()
    );
    let routes = |proto: &str| {
        lab.text(
            "n1",
            &[
                "ip", "-4", "route", "show", "table", "local", "proto", proto,
            ],
        )
    };
    assert!(!routes("76").contains(VIP4), "{}", routes("76"));
    // The link goes down and up: l2vip's IPv6 route is added again as its
    // own; the address's route is not taken for one.
    for state in ["down", "up"] {
        let out = lab.run("n1", &["ip", "link", "set", "eth0", state]);
        assert!(out.status.success(), "{out:?}");
    }
    assert!(
        Lab::wait_until(START_BOUND, || {
            lab.text(
                "n1",
                &["ip", "-6", "route", "show", "table", "local", "proto", "76"],
            )
            .contains(VIP6)
        }),
        "{}",
        n1.log()
    );
    let stopped = n1.stop_with("TERM", Duration::from_secs(3));
    assert!(stopped.is_some_and(|(status, _)| status.success()));
    let log = n1.log();
    assert!(!log.contains("routes left in place"), "{log}");
    assert!(
        !log.contains(&format!("{VIP4}: local route removed")),
        "{log}"
    );
    assert!(routes("kernel").contains(VIP4), "{}", routes("kernel"));
    let left = lab.text(
        "n1",
        &["ip", "-6", "route", "show", "table", "local", "proto", "76"],
    );
    assert!(!left.contains(VIP6), "{left}");
}
