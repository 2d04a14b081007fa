//! A pair of routers between a LAN client and a WAN server (lab.sh
//! `--router-pair`): a stateful firewall and NAT to the WAN VIP on each,
//! l2vip holding the LAN gateway VIP and the WAN VIP together, and
//! conntrackd syncing the connection tracking over a link of the pair's
//! own, driven by the shipped hook on the node-level events. A long-lived
//! TCP stream from the server to the client survives the active router's
//! failure (l2vip killed, links down) and a drain; without conntrackd it
//! does not.

mod lab;

use std::path::PathBuf;
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lab::{Daemon, Lab};

const GATEWAY: &str = "192.0.2.1";
const WAN_VIP: &str = "198.51.100.1";
const SERVER: &str = "198.51.100.100";
const SERVER6: &str = "2001:db8:2::100";
const INTERVAL_MS: u64 = 100;
const LEASE_MS: u64 = 1000;
/// How long the stream runs before the failover, and after it.
const BEFORE: Duration = Duration::from_secs(2);
const AFTER: Duration = Duration::from_secs(10);
/// The longest stall a failover may cause: the takeover (a lease, an
/// interval and 500 ms for the hooks and the announcement), and TCP's next
/// retransmission, which backoff puts at most as far again.
const STALL_BOUND: Duration = Duration::from_millis(2 * (LEASE_MS + INTERVAL_MS + 500));

/// radvd on each router's LAN side: advertisements only from fe80::1, so
/// only the router that owns it (has it as an address) sends them.
const RADVD_CONF: &str = "interface eth0 {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 10;
	AdvDefaultLifetime 1800;
	AdvRASrcAddress {
		fe80::1;
	};
	prefix 2001:db8::/64 {
		AdvAutonomous off;
	};
};
";

/// The stall figures depend on the CPU: one test of this file at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// conntrackd's configuration for router `i`: FTFW over the pair's own
/// link (eth2), the routers' own traffic ignored; its socket, lock and
/// log in the lab's directory.
fn conntrackd_conf(lab: &Lab, i: usize) -> PathBuf {
    let dir = lab.dir.display();
    let text = format!(
        "Sync {{
	Mode FTFW {{
		DisableExternalCache Off
	}}
	UDP {{
		IPv4_address 203.0.113.{i}
		IPv4_Destination_Address 203.0.113.{peer}
		Port 3780
		Interface eth2
		Checksum on
	}}
}}
General {{
	HashSize 8192
	HashLimit 65535
	LogFile {dir}/n{i}-conntrackd.log
	Syslog off
	LockFile {dir}/n{i}-conntrackd.lock
	UNIX {{
		Path {dir}/n{i}-conntrackd.ctl
	}}
	Filter From Userspace {{
		Protocol Accept {{
			TCP
			UDP
			ICMP
		}}
		Address Ignore {{
			IPv4_address 127.0.0.1
			IPv4_address 192.0.2.11
			IPv4_address 192.0.2.12
			IPv4_address 198.51.100.11
			IPv4_address 198.51.100.12
			IPv4_address 203.0.113.0/24
			IPv6_address 2001:db8::11
			IPv6_address 2001:db8::12
			IPv6_address 2001:db8:2::11
			IPv6_address 2001:db8:2::12
		}}
	}}
}}
",
        peer = 3 - i
    );
    lab.write(&format!("n{i}-conntrackd.conf"), &text, 0o644)
}

/// A process in a lab namespace, ended by PID on drop.
struct Running(Option<Child>);

impl Running {
    fn start(lab: &Lab, host: &str, args: &[&str], output: &str) -> Running {
        Running(Some(lab.spawn(host, args, output)))
    }

    /// Waits up to `limit` for it to end by itself.
    fn wait(&mut self, limit: Duration) -> bool {
        let Some(child) = self.0.as_mut() else {
            return true;
        };
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                self.0 = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            lab::signal(child.id(), "TERM");
            if !Lab::wait_until(Duration::from_secs(2), || {
                matches!(child.try_wait(), Ok(Some(_)))
            }) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// The pair: the lab, conntrackd on each router (when asked for) and l2vip,
/// r1 (n1) the primary.
struct Pair {
    daemons: Vec<Daemon>,
    _conntrackd: Vec<Running>,
    lab: Lab,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Pair {
    /// With `ipv6`, the routers also hold the link-local VIP fe80::1 on
    /// the LAN and on the WAN, and run radvd on the LAN, advertising from it.
    fn up(conntrack: bool, ipv6: bool) -> Pair {
        let lab = Lab::up_router_pair();
        let hook = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/rootfs/usr/libexec/l2vip/conntrackd"
        );
        let mut running = Vec::new();
        if conntrack {
            for i in 1..=2 {
                let conf = conntrackd_conf(&lab, i).display().to_string();
                running.push(Running::start(
                    &lab,
                    &format!("n{i}"),
                    &["conntrackd", "-C", &conf],
                    &format!("n{i}-conntrackd.out"),
                ));
            }
        }
        if ipv6 {
            let conf = lab
                .write("radvd.conf", RADVD_CONF, 0o644)
                .display()
                .to_string();
            for i in 1..=2 {
                let pid = lab
                    .dir
                    .join(format!("n{i}-radvd.pid"))
                    .display()
                    .to_string();
                running.push(Running::start(
                    &lab,
                    &format!("n{i}"),
                    &["radvd", "-n", "-C", &conf, "-p", &pid, "-m", "stderr"],
                    &format!("n{i}-radvd.out"),
                ));
            }
            // The client takes its default route from advertisements.
            let out = lab.run("c", &["sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=1"]);
            assert!(out.status.success(), "{out:?}");
        }
        let link_local = if ipv6 {
            r#",
               {"name": "lan6", "ip": "fe80::1", "interface": "eth0"},
               {"name": "wan6", "ip": "fe80::1", "interface": "eth1"}"#
        } else {
            ""
        };
        let daemons = (1..=2)
            .map(|i| {
                let hooks = if conntrack {
                    let command = format!(
                        "CONNTRACKD_CONFIG={} {hook}",
                        lab.dir.join(format!("n{i}-conntrackd.conf")).display()
                    );
                    format!(
                        r#""hooks": {{"on_primary": "{command}", "on_backup": "{command}", "on_fault": "{command}"}},"#
                    )
                } else {
                    String::new()
                };
                let config = format!(
                    r#"{{"node": "n{i}", "priority": {priority}, {hooks}
  "heartbeat": {{"interval_ms": {INTERVAL_MS}, "lease_ms": {LEASE_MS}, "peers": ["192.0.2.{peer}"]}},
  "services": [{{"name": "lan", "ip": "{GATEWAY}", "interface": "eth0"}},
               {{"name": "wan", "ip": "{WAN_VIP}", "interface": "eth1", "bind": "none"}}{link_local}]}}"#,
                    priority = 200 - 50 * i,
                    peer = 13 - i,
                );
                lab.daemon(i, &config)
            })
            .collect::<Vec<_>>();
        assert!(
            daemons[0].wait_for_log("acquired wan", Duration::from_secs(5)),
            "{}",
            daemons[0].log()
        );
        // The primary's event (its hook) has run; r2's first role, backup,
        // asked for a resync.
        assert!(
            daemons[0].wait_for_log("this node is now primary", Duration::from_secs(5)),
            "{}",
            daemons[0].log()
        );
        std::thread::sleep(Duration::from_millis(500));
        Pair {
            daemons,
            _conntrackd: running,
            lab,
        }
    }

    /// Runs the stream, does `failover` after `BEFORE`, and returns what
    /// the client read: (epoch ms, bytes) per read, how it ended, and when
    /// the failover began.
    fn stream(&mut self, failover: impl FnOnce(&mut Pair)) -> Stream {
        self.stream_from(SERVER, failover)
    }

    /// `stream`, from the server's address `server`.
    fn stream_from(&mut self, server: &str, failover: impl FnOnce(&mut Pair)) -> Stream {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/stream.py");
        let seconds = (BEFORE + AFTER + Duration::from_secs(2))
            .as_secs()
            .to_string();
        let mut listener = Running::start(
            &self.lab,
            "s",
            &["python3", script, "serve", server, "5001", &seconds],
            "server.out",
        );
        let ready = Lab::wait_until(Duration::from_secs(5), || {
            self.lab
                .text("s", &["ss", "-Htln", "sport", "= :5001"])
                .contains("5001")
        });
        assert!(ready, "the server does not listen");
        let client_seconds = (BEFORE + AFTER).as_secs().to_string();
        let mut client = Running::start(
            &self.lab,
            "c",
            &["python3", script, "fetch", server, "5001", &client_seconds],
            "client.out",
        );
        std::thread::sleep(BEFORE);
        let at = now_ms();
        failover(self);
        assert!(
            client.wait(AFTER + Duration::from_secs(5)),
            "the client did not end"
        );
        let _ = listener.wait(Duration::from_secs(1));
        let text = std::fs::read_to_string(self.lab.dir.join("client.out")).unwrap_or_default();
        let mut reads = Vec::new();
        let mut end = String::new();
        for line in text.lines() {
            if let Some(reason) = line.strip_prefix("end ") {
                end = reason.to_string();
            } else if let Some((ms, bytes)) = line.split_once(' ') {
                if let (Ok(ms), Ok(bytes)) = (ms.parse(), bytes.parse()) {
                    reads.push((ms, bytes));
                }
            }
        }
        Stream {
            reads,
            end,
            at,
            text,
        }
    }

    /// What the routers' l2vip and conntrackd said, for failures.
    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, daemon) in self.daemons.iter().enumerate() {
            out.push_str(&format!("--- n{} l2vip\n{}", i + 1, daemon.log()));
            let conntrackd = self.lab.dir.join(format!("n{}-conntrackd.log", i + 1));
            if let Ok(text) = std::fs::read_to_string(conntrackd) {
                out.push_str(&format!("--- n{} conntrackd\n{text}", i + 1));
            }
        }
        out
    }
}

/// What the client read.
struct Stream {
    reads: Vec<(u64, u64)>,
    end: String,
    /// When the failover began (epoch ms).
    at: u64,
    text: String,
}

impl Stream {
    /// Bytes read before the failover began, and after `after` it.
    fn bytes(&self) -> (u64, u64, u64) {
        let before = self
            .reads
            .iter()
            .filter(|r| r.0 < self.at)
            .map(|r| r.1)
            .sum();
        let after = self
            .reads
            .iter()
            .filter(|r| r.0 >= self.at)
            .map(|r| r.1)
            .sum();
        let last = self.reads.last().map_or(0, |r| r.0);
        (before, after, last.saturating_sub(self.at))
    }

    /// The longest time without a read from the last read before the
    /// failover on (to the end of the run when nothing came after it).
    fn stall(&self) -> Duration {
        let start = self
            .reads
            .iter()
            .rev()
            .find(|r| r.0 < self.at)
            .map_or(self.at, |r| r.0);
        let mut previous = start;
        let mut longest = 0;
        for read in self.reads.iter().filter(|r| r.0 > start) {
            longest = longest.max(read.0 - previous);
            previous = read.0;
        }
        let end = self.at + AFTER.as_millis() as u64;
        if previous < end.saturating_sub(STALL_BOUND.as_millis() as u64) {
            longest = longest.max(end - previous);
        }
        Duration::from_millis(longest)
    }
}

/// A way the active router goes.
type Failover = fn(&mut Pair);

/// r1 fails as a router does when its power goes: its l2vip is killed and
/// both its links go down.
fn power_loss(pair: &mut Pair) {
    pair.daemons[0].signal("KILL");
    for link in ["eth0", "eth1"] {
        let out = pair.lab.run("n1", &["ip", "link", "set", link, "down"]);
        assert!(out.status.success(), "{out:?}");
    }
}

/// r1 is drained for maintenance: a planned move.
fn drain(pair: &mut Pair) {
    let (code, _, stderr) = pair.daemons[0].cli(&["drain"]);
    assert_eq!(code, Some(0), "{stderr}");
}

/// The stream went through r2 after the failover: the client and the
/// server reach both VIPs at r2's MACs, and r2 is the primary.
fn assert_through_r2(pair: &Pair) {
    let client = pair.lab.text("c", &["ip", "neigh", "show", GATEWAY]);
    assert!(client.contains("02:4c:32:00:00:02"), "{client}");
    let server = pair.lab.text("s", &["ip", "neigh", "show", WAN_VIP]);
    assert!(server.contains("02:4c:32:00:04:02"), "{server}");
    let (_, status, _) = pair.daemons[1].cli(&["status"]);
    assert!(status.starts_with("node n2 (primary, "), "{status}");
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// Runs `runs` failovers on fresh pairs with conntrackd: the stream goes on
/// each time, after a stall within the bound. Returns the stalls.
fn survives(what: &str, runs: usize, failover: Failover, ipv6: bool) -> Vec<Duration> {
    let mut stalls = Vec::new();
    for run in 1..=runs {
        let mut pair = Pair::up(true, ipv6);
        let stream = if ipv6 {
            ipv6_gateway_ready(&pair);
            pair.stream_from(SERVER6, failover)
        } else {
            pair.stream(failover)
        };
        let (before, after, last) = stream.bytes();
        let stall = stream.stall();
        let context = || format!("{what}, run {run}:\n{}\n{}", stream.text, pair.logs());
        assert!(before > 50_000, "{} bytes before: {}", before, context());
        assert!(
            after > 100_000 && last + 1000 > AFTER.as_millis() as u64,
            "{after} bytes after the failover, the last {last} ms after it: {}",
            context()
        );
        assert_eq!(stream.end, "time", "{}", context());
        assert!(stall < STALL_BOUND, "stall {stall:?}: {}", context());
        if ipv6 {
            ipv6_gateway_moved(&pair);
        } else {
            assert_through_r2(&pair);
        }
        stalls.push(stall);
    }
    eprintln!(
        "conntrack, {what}: stalls {:?} ms, median {} ms",
        stalls.iter().map(Duration::as_millis).collect::<Vec<_>>(),
        median(stalls.clone()).as_millis()
    );
    stalls
}

#[test]
fn with_conntrack_a_tcp_stream_survives_the_power_loss_of_the_active_router() {
    if !lab::available("with_conntrack_a_tcp_stream_survives_the_power_loss_of_the_active_router") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    survives("power loss", 3, power_loss, false);
}

#[test]
fn with_conntrack_a_tcp_stream_survives_a_drain_of_the_active_router() {
    if !lab::available("with_conntrack_a_tcp_stream_survives_a_drain_of_the_active_router") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    survives("drain", 3, drain, false);
}

/// The same failovers without conntrackd: the new primary has no state
/// for the connection, its firewall drops the stream's packets as
/// invalid, and nothing arrives after the failover (or it is reset). What
/// the feature buys, and that the tests above do not pass by luck.
#[test]
fn without_conntrack_a_tcp_stream_dies_with_a_power_loss_or_a_drain() {
    if !lab::available("without_conntrack_a_tcp_stream_dies_with_a_power_loss_or_a_drain") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for (what, failover) in [("power loss", power_loss as Failover), ("drain", drain)] {
        let mut pair = Pair::up(false, false);
        let stream = pair.stream(failover);
        let (before, after, _) = stream.bytes();
        let context = || format!("{what}:\n{}\n{}", stream.text, pair.logs());
        assert!(before > 50_000, "{before} bytes before: {}", context());
        assert_through_r2(&pair);
        assert!(
            after < 10_000 || stream.end == "reset",
            "{after} bytes after the failover: {}",
            context()
        );
        eprintln!(
            "no conntrack, {what}: {after} bytes after the failover, stall {} ms, ended by {}",
            stream.stall().as_millis(),
            stream.end
        );
    }
}

/// What `host` hears answer a Neighbor Solicitation for fe80::1 on its
/// eth0: the MAC, or "" when nobody answers.
fn answerer_of_fe80_1(lab: &Lab, host: &str) -> String {
    let out = lab.text(host, &["ndisc6", "-1", "-q", "-r", "3", "fe80::1", "eth0"]);
    out.lines()
        .map(str::trim)
        .find(|l| l.len() == 17 && l.matches(':').count() == 5)
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The client's default route, as `ip -6 route` shows it.
fn default_route(lab: &Lab) -> String {
    lab.text("c", &["ip", "-6", "route", "show", "default"])
}

/// r1 owns fe80::1: the client and the server find it at r1's MAC on
/// their side, and the client learns its default route from r1's
/// advertisements (a router solicitation brings one at once; radvd's own
/// come every 3 to 10 s).
fn ipv6_gateway_ready(pair: &Pair) {
    assert_eq!(answerer_of_fe80_1(&pair.lab, "c"), "02:4c:32:00:00:01");
    assert_eq!(answerer_of_fe80_1(&pair.lab, "s"), "02:4c:32:00:04:01");
    let learned = Lab::wait_until_every(Duration::from_secs(15), Duration::from_secs(1), || {
        let _ = pair.lab.run("c", &["rdisc6", "-1", "-q", "eth0"]);
        default_route(&pair.lab).contains("via fe80::1 dev eth0 proto ra")
    });
    assert!(learned, "{}\n{}", default_route(&pair.lab), pair.logs());
}

/// fe80::1 moved to r2: found at r2's MACs on both sides, an address of
/// both of r2's interfaces, and still the client's default route.
fn ipv6_gateway_moved(pair: &Pair) {
    assert_eq!(answerer_of_fe80_1(&pair.lab, "c"), "02:4c:32:00:00:02");
    assert_eq!(answerer_of_fe80_1(&pair.lab, "s"), "02:4c:32:00:04:02");
    let route = default_route(&pair.lab);
    assert!(route.contains("via fe80::1 dev eth0"), "{route}");
    for link in ["eth0", "eth1"] {
        let addresses = pair
            .lab
            .text("n2", &["ip", "-6", "address", "show", "dev", link]);
        assert!(
            addresses.contains("inet6 fe80::1/64"),
            "{link}: {addresses}"
        );
    }
}

/// The IPv6 gateway: fe80::1 on the LAN and on the WAN at once, answered
/// on each by its owner with that interface's MAC; the client's default
/// route is fe80::1, learned from radvd's advertisements, which only the
/// owner sends; an IPv6 TCP stream through the pair's stateful firewall
/// survives the active router's power loss and its drain with conntrackd,
/// and the gateway, still fe80::1, is then the other router.
#[test]
fn with_conntrack_an_ipv6_stream_through_the_link_local_gateway_survives_a_power_loss_or_a_drain() {
    if !lab::available(
        "with_conntrack_an_ipv6_stream_through_the_link_local_gateway_survives_a_power_loss_or_a_drain",
    ) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    survives("IPv6 through fe80::1, power loss", 3, power_loss, true);
    survives("IPv6 through fe80::1, drain", 3, drain, true);
}
