//! The control socket's contract, spoken as raw JSON lines to a real
//! daemon, and the planned moves it drives, seen from the lab's client.

#[path = "lab/mod.rs"]
mod lab;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lab::{
    arp_answerers, epoch_now, first_gratuitous, nd_answerers, neighbour_mac, node_mac, Daemon, Lab,
};
use serde_json::{json, Value};

const VIP4: &str = "192.0.2.200";
const VIP6: &str = "2001:db8::200";
const LEASE_MS: u64 = 500;

fn config(node: usize, extra: &str) -> String {
    let peer = if node == 1 { 12 } else { 11 };
    format!(
        r#"{{"node": "n{node}", "priority": {}{extra},
  "heartbeat": {{"interval_ms": 100, "lease_ms": {LEASE_MS}, "peers": ["192.0.2.{peer}"]}},
  "services": [{{"name": "web", "ip": "{VIP4}", "interface": "eth0"}},
               {{"name": "web6", "ip": "{VIP6}", "interface": "eth0"}}]}}"#,
        200 - 50 * node
    )
}

fn pair(lab: &Lab, extra: &str) -> (Daemon, Daemon) {
    lab.pair(
        [&config(1, extra), &config(2, extra)],
        &lab::Start::default(),
        "acquired web6",
        Duration::from_millis(LEASE_MS),
    )
}

/// A one-node cluster (it owns every VIP at once) with `control` as its
/// control settings, started and answering for "web".
fn one_node(lab: &Lab, control: &str) -> Daemon {
    let daemon = lab.daemon(
        1,
        &format!(
            r#"{{"node": "n1", "control": {{{control}}},
        "services": [{{"name": "web", "ip": "{VIP4}", "interface": "eth0"}}]}}"#
        ),
    );
    assert!(
        daemon.wait_for_log("answering for 1 VIPs", Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    daemon
}

/// A raw connection: write lines, read lines.
struct Conn {
    reader: BufReader<UnixStream>,
    stream: UnixStream,
}

impl Conn {
    fn open(socket: &Path) -> Conn {
        let stream = UnixStream::connect(socket).expect("connect to the control socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        Conn {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            stream,
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Value {
        self.stream.write_all(bytes).expect("write");
        self.read()
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read a response");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }

    fn request(&mut self, request: Value) -> Value {
        let mut line = request.to_string().into_bytes();
        line.push(b'\n');
        self.send(&line)
    }

    /// True when the daemon closed the connection. A close with our request
    /// still unread on its side may reach us as a reset instead of the end
    /// of the stream, depending on whether our last write saw it first.
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

fn error_code(response: &Value) -> &str {
    assert_eq!(response["ok"], false, "{response}");
    response["error"]["code"].as_str().unwrap_or_default()
}

fn data(response: &Value) -> &Value {
    assert_eq!(response["ok"], true, "{response}");
    &response["data"]
}

#[test]
fn every_command_answers_in_its_documented_shape() {
    if !lab::available("every_command_answers_in_its_documented_shape") {
        return;
    }
    let lab = Lab::up(2, false);
    let (n1, n2) = pair(&lab, "");
    let mut conn = Conn::open(&n1.socket);

    let status = conn.request(json!({"command": "status"}));
    let status = data(&status);
    assert_eq!(status["node"], "n1");
    assert_eq!(status["mode"], "single");
    assert_eq!(status["priority"], 150);
    assert_eq!(status["draining"], false);
    assert_eq!(status["digest_agreement"], true);
    assert!(status["uptime_s"].is_u64() && status["digest"].is_string());
    let web = &status["services"][0];
    assert_eq!(
        (
            web["name"].as_str(),
            web["owner"].as_str(),
            web["state"].as_str()
        ),
        (Some("web"), Some("n1"), Some("owner"))
    );
    assert_eq!(web["ip"], VIP4);
    assert!(web["since_s"].is_u64());
    let peer = &status["peers"][0];
    assert_eq!(
        (peer["node"].as_str(), peer["alive"].as_bool()),
        (Some("n2"), Some(true))
    );
    assert!(peer["last_heard_ms"].as_u64().unwrap_or(u64::MAX) < LEASE_MS);
    assert!(peer["lease_left_ms"].as_u64().unwrap_or(0) > 0);

    let services = conn.request(json!({"command": "services"}));
    let services = data(&services)["services"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(services.len(), 2);
    assert_eq!(services[1]["name"], "web6");
    assert_eq!(services[1]["owned"], true);

    let metrics = conn.request(json!({"command": "metrics"}));
    let metrics = data(&metrics);
    assert!(
        metrics["responder"]["gratuitous_arp_sent"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{metrics}"
    );
    assert!(metrics["responder"]["drops"]["truncated"].is_u64());
    assert!(
        metrics["election"]["heartbeats_received"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    assert!(metrics["election"]["heartbeats_rejected"]["bad_mac"].is_u64());
    assert_eq!(metrics["vips"][0]["owned"], true);

    let handover = conn.request(json!({"command": "handover", "service": "web"}));
    assert_eq!(data(&handover)["handed_over"], json!(["web"]));
    let mut other = Conn::open(&n2.socket);
    assert_eq!(
        data(&other.request(json!({"command": "drain"})))["draining"],
        true
    );
    assert_eq!(
        data(&other.request(json!({"command": "undrain"})))["draining"],
        false
    );

    // The CLI: tables by default, the daemon's data unchanged with --json.
    let (code, table, _) = n1.cli(&["status"]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("SERVICE") && table.contains("web6") && table.contains("n2"),
        "{table}"
    );
    let (code, raw, _) = n1.cli(&["status", "--json"]);
    assert_eq!(code, Some(0));
    let raw: Value = serde_json::from_str(&raw).expect("--json prints JSON");
    assert_eq!(raw["data"]["node"], "n1");
    let (code, text, _) = n1.cli(&["metrics", "--prometheus"]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains("# TYPE l2vip_heartbeats_sent_total counter"),
        "{text}"
    );
    assert!(
        text.contains("l2vip_vip_owned{service=\"web6\",ip=\"2001:db8::200\"} 1"),
        "{text}"
    );
}

#[test]
fn bad_requests_get_their_error_and_the_connection_keeps_serving() {
    if !lab::available("bad_requests_get_their_error_and_the_connection_keeps_serving") {
        return;
    }
    let lab = Lab::up(2, false);
    let (n1, n2) = pair(&lab, "");
    let mut conn = Conn::open(&n1.socket);
    let good = |conn: &mut Conn| assert_eq!(conn.request(json!({"command": "status"}))["ok"], true);

    for (bytes, expected) in [
        (&b"\x00\x01garbage\xff\n"[..], "parse_error"),
        (b"\xc3\x28\xa0\xa1\n", "parse_error"),
        (b"not json at all\n", "parse_error"),
        (b"[1, 2, 3]\n", "parse_error"),
        (b"{\"command\": \"reboot\"}\n", "unknown_command"),
        (b"{}\n", "bad_request"),
        (
            b"{\"command\": \"status\", \"verbose\": true}\n",
            "bad_request",
        ),
        (
            b"{\"command\": \"handover\", \"service\": 7}\n",
            "bad_request",
        ),
        (
            b"{\"command\": \"handover\", \"service\": \"nosuch\"}\n",
            "not_found",
        ),
    ] {
        let response = conn.send(bytes);
        assert_eq!(
            error_code(&response),
            expected,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        good(&mut conn);
    }

    // Only n1 owns the VIPs: n2 cannot hand them over.
    let mut on_n2 = Conn::open(&n2.socket);
    assert_eq!(
        error_code(&on_n2.request(json!({"command": "handover", "service": "web"}))),
        "not_owner"
    );
    // With n2 draining, nobody can take n1's VIPs.
    data(&on_n2.request(json!({"command": "drain"})));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        error_code(&conn.request(json!({"command": "handover"}))),
        "no_candidate"
    );
    let (code, _, stderr) = n1.cli(&["handover", "web"]);
    assert_eq!(code, Some(1), "refused: {stderr}");
    assert!(stderr.contains("no_candidate"), "{stderr}");

    // Runtime services and reload, raw.
    let add = json!({"command": "add", "service": {"name": "db", "ip": "192.0.2.210", "interface": "eth0"}});
    assert_eq!(data(&conn.request(add.clone()))["added"], "db");
    assert_eq!(error_code(&conn.request(add)), "exists");
    let bad_add = json!({"command": "add", "service": {"name": "x", "ip": "192.0.2.211", "interface": "nosuch0"}});
    assert_eq!(error_code(&conn.request(bad_add)), "bad_interface");
    assert_eq!(
        error_code(&conn.request(json!({"command": "add", "service": {"name": "y"}}))),
        "bad_request"
    );
    assert_eq!(
        error_code(&conn.request(json!({"command": "remove", "service": "web"}))),
        "configured"
    );
    assert_eq!(
        data(&conn.request(json!({"command": "remove", "service": "db"})))["removed"],
        "db"
    );
    assert_eq!(
        error_code(&conn.request(json!({"command": "remove", "service": "db"}))),
        "not_found"
    );
    let reloaded = conn.request(json!({"command": "reload"}));
    assert_eq!(data(&reloaded)["services_changed"], false, "{reloaded}");
    lab.rewrite_config(1, "{\"node\": \"n1\", \"services\": 5}");
    assert_eq!(
        error_code(&conn.request(json!({"command": "reload"}))),
        "invalid_config"
    );
    good(&mut conn);

    // A 1 MiB line: too_long, and that connection is closed...
    let mut big = Conn::open(&n1.socket);
    let line = vec![b'x'; 1 << 20];
    let _ = big.stream.write_all(&line);
    assert_eq!(error_code(&big.read()), "too_long");
    assert!(big.closed(), "closed after too_long");
    // ...while others keep being served.
    good(&mut conn);
}

#[test]
fn forty_clients_at_once_and_the_daemon_keeps_serving() {
    if !lab::available("forty_clients_at_once_and_the_daemon_keeps_serving") {
        return;
    }
    let lab = Lab::up(1, false);
    // Idle clients are dropped after control.idle_s (60 s unless set).
    let daemon = one_node(&lab, r#""idle_s": 2"#);
    let mut conns: Vec<Conn> = (0..40).map(|_| Conn::open(&daemon.socket)).collect();
    let mut served = 0;
    let mut busy = 0;
    for conn in conns.iter_mut() {
        let mut line = json!({"command": "status"}).to_string().into_bytes();
        line.push(b'\n');
        let _ = conn.stream.write_all(&line);
    }
    for conn in conns.iter_mut() {
        let response = conn.read();
        if response["ok"] == true {
            served += 1;
        } else {
            assert_eq!(error_code(&response), "busy");
            busy += 1;
        }
    }
    assert_eq!(
        (served, busy),
        (32, 8),
        "32 clients served, the rest told to come back"
    );
    drop(conns);
    std::thread::sleep(Duration::from_millis(200));
    let (code, table, stderr) = daemon.cli(&["status"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(table.contains("web"), "{table}");

    // A silent client is dropped after idle_s; an active one is not.
    let mut silent = Conn::open(&daemon.socket);
    let mut active = Conn::open(&daemon.socket);
    let opened = Instant::now();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(active.request(json!({"command": "services"}))["ok"], true);
    }
    assert!(silent.closed(), "the silent client is still connected");
    let waited = opened.elapsed();
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    assert_eq!(active.request(json!({"command": "status"}))["ok"], true);
}

/// A user and a group made for one test, removed on drop.
struct TestUser {
    user: String,
    group: String,
}

impl TestUser {
    /// `tag` tells apart the users of tests that run at the same time.
    fn create(tag: &str) -> TestUser {
        let suffix = std::process::id() % 100_000;
        let user = TestUser {
            user: format!("l2vu{suffix}{tag}"),
            group: format!("l2vg{suffix}{tag}"),
        };
        let ok = |args: &[&str]| {
            let out = Command::new(args[0])
                .args(&args[1..])
                .output()
                .expect("run");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(&["groupadd", &user.group]);
        ok(&[
            "useradd",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "-G",
            &user.group,
            &user.user,
        ]);
        user
    }

    /// Runs the CLI (`binary`, a copy this user may run) as this user.
    fn cli(&self, binary: &Path, socket: &Path, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new("runuser")
            .args(["-u", &self.user, "--"])
            .arg(binary)
            .args(args)
            .arg("--socket")
            .arg(socket)
            .output()
            .expect("runuser");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user).output();
        let _ = Command::new("groupdel").arg(&self.group).output();
    }
}

#[test]
fn the_read_only_group_may_look_but_not_touch() {
    if !lab::available("the_read_only_group_may_look_but_not_touch") {
        return;
    }
    let lab = Lab::up(1, false);
    let user = TestUser::create("r");
    let socket = lab.dir.join("ro.sock");
    let daemon = lab.daemon(
        1,
        &format!(
            r#"{{"node": "n1", "control": {{"socket": "{}", "group": "{}"}},
  "services": [{{"name": "web", "ip": "192.0.2.200", "interface": "eth0"}}]}}"#,
            socket.display(),
            user.group
        ),
    );
    assert!(
        daemon.wait_for_log("answering for 1 VIPs", Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    let mode = std::fs::metadata(&socket)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.ok(), Some(0o660));
    let binary = lab.binary_for_others();
    let (code, text) = user.cli(&binary, &socket, &["status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("web"), "{text}");
    let (code, text) = user.cli(&binary, &socket, &["drain"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("forbidden"), "{text}");
    // Still not draining.
    let (_, status, _) = daemon.cli(&["status", "--json"]);
    assert!(status.contains("\"draining\": false"), "{status}");
}

#[test]
fn drain_moves_the_vips_at_once_and_undrain_leaves_them_there() {
    if !lab::available("drain_moves_the_vips_at_once_and_undrain_leaves_them_there") {
        return;
    }
    let lab = Lab::up(2, false);
    let (n1, n2) = pair(&lab, "");
    for vip in [VIP4, VIP6] {
        lab.run("c", &["ping", "-c", "1", "-W", "1", vip]);
    }
    assert_eq!(neighbour_mac(&lab, VIP4), Some(node_mac(1)));
    let capture = lab.capture("c", "eth0", &format!("arp and ether src {}", node_mac(2)));
    let asked = epoch_now();
    let started = Instant::now();
    let (code, _, stderr) = n1.cli(&["drain"]);
    assert_eq!(code, Some(0), "{stderr}");
    let moved = Lab::wait_until(Duration::from_secs(2), || {
        neighbour_mac(&lab, VIP4) == Some(node_mac(2))
    });
    assert!(moved, "{:?}", neighbour_mac(&lab, VIP4));
    let decoded = capture.stop();
    let first =
        first_gratuitous(&decoded, VIP4).unwrap_or_else(|| panic!("no burst from n2:\n{decoded}"));
    let took = first - asked;
    eprintln!(
        "drain: n2's first gratuitous ARP {:.1} ms after the command was sent",
        took * 1000.0
    );
    assert!(
        took < 0.2,
        "drain took {took:.3} s (cache moved after {:?})",
        started.elapsed()
    );
    assert_eq!(arp_answerers(&lab, VIP4), BTreeSetOf::one(&node_mac(2)));

    // Undrain: n1 is a candidate again, but ownership is sticky.
    let (code, _, _) = n1.cli(&["undrain"]);
    assert_eq!(code, Some(0));
    std::thread::sleep(Duration::from_millis(LEASE_MS * 3));
    assert_eq!(arp_answerers(&lab, VIP4), BTreeSetOf::one(&node_mac(2)));
    assert_eq!(nd_answerers(&lab, VIP6), BTreeSetOf::one(&node_mac(2)));

    // n1 lingers (the default 120 s) until the VIPs come back to it; then
    // it owns them and n2 lingers instead.
    let state = |daemon: &Daemon| {
        let (_, raw, _) = daemon.cli(&["status", "--json"]);
        let raw: Value = serde_json::from_str(&raw).expect("JSON");
        let web = raw["data"]["services"][0].clone();
        (
            web["state"].as_str().unwrap_or_default().to_string(),
            web["linger_left_s"].clone(),
        )
    };
    let (lingering, left) = state(&n1);
    assert_eq!(lingering, "lingering");
    assert!(left.as_u64().is_some_and(|s| s > 100), "{left}");
    let (code, _, stderr) = n2.cli(&["handover"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        n1.wait_for_log("acquired web6", Duration::from_secs(1)),
        "{}",
        n1.log()
    );
    assert_eq!(state(&n1), ("owner".to_string(), Value::Null));
    assert_eq!(state(&n2).0, "lingering");
}

#[test]
fn handover_of_one_vip_moves_only_that_vip() {
    if !lab::available("handover_of_one_vip_moves_only_that_vip") {
        return;
    }
    let lab = Lab::up(2, false);
    let (n1, n2) = pair(&lab, "");
    let (code, out, stderr) = n1.cli(&["handover", "web6"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(out.contains("handed over: web6"), "{out}");
    assert!(
        n2.wait_for_log("acquired web6", Duration::from_millis(500)),
        "{}",
        n2.log()
    );
    std::thread::sleep(Duration::from_millis(LEASE_MS * 2));
    assert_eq!(nd_answerers(&lab, VIP6), BTreeSetOf::one(&node_mac(2)));
    assert_eq!(arp_answerers(&lab, VIP4), BTreeSetOf::one(&node_mac(1)));
    assert!(!n1.log().contains("released web ("), "{}", n1.log());
    assert!(
        n1.log()
            .contains("released web6 (2001:db8::200 on eth0): handed over"),
        "{}",
        n1.log()
    );
}

/// A one-element set of MACs, as the answerer helpers return.
struct BTreeSetOf;

impl BTreeSetOf {
    fn one(mac: &str) -> std::collections::BTreeSet<String> {
        std::collections::BTreeSet::from([mac.to_string()])
    }
}

#[test]
fn a_vip_added_at_runtime_is_answered_and_survives_a_restart() {
    if !lab::available("a_vip_added_at_runtime_is_answered_and_survives_a_restart") {
        return;
    }
    let lab = Lab::up(2, false);
    let (mut n1, n2) = pair(&lab, "");
    for daemon in [&n1, &n2] {
        let (code, out, stderr) = daemon.cli(&["add", "db", "192.0.2.210", "eth0"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(out.contains("added db"), "{out}");
    }
    assert!(
        n1.wait_for_log("acquired db", Duration::from_secs(2)),
        "{}",
        n1.log()
    );
    assert_eq!(
        arp_answerers(&lab, "192.0.2.210"),
        BTreeSetOf::one(&node_mac(1))
    );
    // Adding it twice, or removing a configured service, is refused.
    let (code, _, stderr) = n1.cli(&["add", "db", "192.0.2.211", "eth0"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("exists"), "{stderr}");
    let (code, _, stderr) = n1.cli(&["remove", "web"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("configured"), "{stderr}");

    // SIGKILL and restart n1: the runtime VIP comes back from the state file.
    n1.stop_with("KILL", Duration::from_secs(2))
        .expect("n1 dies");
    assert!(
        n2.wait_for_log("acquired db", Duration::from_millis(LEASE_MS + 1000)),
        "{}",
        n2.log()
    );
    let restarted = lab.daemon(1, &config(1, ""));
    assert!(
        restarted.wait_for_log("restored from", Duration::from_secs(3)),
        "{}",
        restarted.log()
    );
    std::thread::sleep(Duration::from_millis(LEASE_MS * 2));
    let (code, services, _) = restarted.cli(&["services"]);
    assert_eq!(code, Some(0));
    assert!(
        services.contains("db") && services.contains("192.0.2.210"),
        "{services}"
    );
    assert_eq!(
        arp_answerers(&lab, "192.0.2.210"),
        BTreeSetOf::one(&node_mac(2))
    );

    // Removed on both: nobody answers any more.
    for daemon in [&restarted, &n2] {
        let (code, _, stderr) = daemon.cli(&["remove", "db"]);
        assert_eq!(code, Some(0), "{stderr}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(arp_answerers(&lab, "192.0.2.210").is_empty());
}

#[test]
fn a_reload_that_adds_a_vip_leaves_the_others_untouched() {
    if !lab::available("a_reload_that_adds_a_vip_leaves_the_others_untouched") {
        return;
    }
    let lab = Lab::up(2, false);
    // One announcement round at start, so the capture below sees only
    // what the reload causes.
    let quiet = r#", "announce": {"count": 1}"#;
    let (n1, n2) = pair(&lab, quiet);
    lab.run("c", &["ping", "-c", "1", "-W", "1", VIP4]);
    let capture = lab.capture("c", "eth0", "arp or (icmp6 and ip6[40] == 136)");
    // 5 s of pings to VIP A (every 200 ms) while both nodes reload.
    let pinger = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("c"),
            "ping",
            "-i",
            "0.2",
            "-c",
            "25",
            "-W",
            "1",
            VIP4,
        ])
        .output();
    let added = r#",
               {"name": "extra", "ip": "192.0.2.220", "interface": "eth0"}]}"#;
    let handle = std::thread::spawn(move || pinger);
    std::thread::sleep(Duration::from_millis(1000));
    for (node, daemon) in [(1, &n1), (2, &n2)] {
        let base = config(node, quiet);
        let text = format!(
            "{}{added}",
            base.trim_end()
                .strip_suffix("]}")
                .expect("config ends with ]}")
        );
        lab.rewrite_config(node, &text);
        daemon.signal("HUP");
    }
    let ping = handle.join().expect("ping thread").expect("ping runs");
    let decoded = capture.stop();
    // Not one ping to VIP A was lost while both nodes reloaded.
    let summary = String::from_utf8_lossy(&ping.stdout);
    assert!(
        summary.contains("25 packets transmitted, 25 received"),
        "{summary}"
    );
    assert_eq!(neighbour_mac(&lab, VIP4), Some(node_mac(1)));
    assert!(
        n1.wait_for_log("acquired extra", Duration::from_secs(2)),
        "{}",
        n1.log()
    );
    assert!(!n1.log().contains("released web"), "{}", n1.log());
    // No new burst for VIP A: the only announcements are for the new VIP.
    let bursts_a = decoded
        .lines()
        .filter(|l| l.contains(&format!("who-has {VIP4} tell {VIP4}")))
        .count();
    assert_eq!(bursts_a, 0, "{decoded}");
    assert!(
        decoded.contains("who-has 192.0.2.220 tell 192.0.2.220"),
        "{decoded}"
    );
    assert_eq!(
        arp_answerers(&lab, "192.0.2.220"),
        BTreeSetOf::one(&node_mac(1))
    );
}

/// `"user"`: the daemon opens what needs root, then runs as that user with
/// CAP_NET_RAW and CAP_NET_ADMIN only, and still answers ARP/NDP, wins the
/// election, routes its VIPs and cleans up at exit; its hooks get no
/// capabilities at all.
#[test]
fn the_daemon_runs_as_an_unprivileged_user_with_two_capabilities() {
    if !lab::available("the_daemon_runs_as_an_unprivileged_user_with_two_capabilities") {
        return;
    }
    let lab = Lab::up(2, false);
    let user = TestUser::create("p");
    let out = lab.dir.join("hook-out");
    std::fs::create_dir(&out).expect("hook output directory");
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let extra = format!(
        r#", "user": "{}", "hooks": {{"on_acquire": "(id -u; grep ^Cap /proc/self/status) > {}/$L2VIP_SERVICE"}}"#,
        user.user,
        out.display()
    );
    let n1 = lab.daemon(1, &config(1, &extra));
    let n2 = lab.daemon(2, &config(2, ""));
    assert!(
        n1.wait_for_log("acquired web6", Duration::from_secs(5)),
        "{}",
        n1.log()
    );
    assert!(
        n1.log().contains(&format!("running as {} (uid", user.user)),
        "{}",
        n1.log()
    );
    let field = |name: &str| proc_field(n1.pid(), name);
    let uid = Command::new("id")
        .args(["-u", &user.user])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .expect("id");
    assert_eq!(field("Uid"), format!("{uid} {uid} {uid} {uid}"));
    // Bits 12 (CAP_NET_ADMIN) and 13 (CAP_NET_RAW), nothing else.
    assert_eq!(field("CapEff"), "0000000000003000");
    assert_eq!(field("CapPrm"), "0000000000003000");
    assert_eq!(field("CapInh"), "0000000000000000");
    assert_eq!(field("CapAmb"), "0000000000000000");
    // Niceness, taken before root was given up: the responder and the
    // election at the default -10, the other threads as started.
    let nice = thread_nice(n1.pid());
    for (thread, want) in [
        ("responder", "-10"),
        ("election", "-10"),
        ("actions", "0"),
        ("control", "0"),
    ] {
        assert_eq!(nice.get(thread).map(String::as_str), Some(want), "{nice:?}");
    }

    std::thread::sleep(Duration::from_millis(LEASE_MS));
    assert_eq!(arp_answerers(&lab, VIP4), BTreeSetOf::one(&node_mac(1)));
    assert_eq!(nd_answerers(&lab, VIP6), BTreeSetOf::one(&node_mac(1)));
    let ping = lab.text("c", &["ping", "-c", "2", "-i", "0.2", "-W", "1", VIP4]);
    assert!(ping.contains(" 2 received"), "{ping}");
    let hook = lab.dir.join("hook-out").join("web");
    assert!(
        Lab::wait_until(Duration::from_secs(2), || hook.exists()),
        "{}",
        n1.log()
    );
    let hook = std::fs::read_to_string(hook).expect("hook output");
    assert!(hook.starts_with(&format!("{uid}\n")), "{hook}");
    assert!(hook.contains("CapEff:\t0000000000000000"), "{hook}");

    // SIGTERM: n2 takes over; n1's routes and ARP settings are put back
    // with nothing but its two capabilities.
    let mut n1 = n1;
    stops_and_puts_back(&lab, &mut n1, &n2);
}

/// Each thread's niceness (field 19 of /proc/PID/task/TID/stat), by name.
fn thread_nice(pid: u32) -> std::collections::BTreeMap<String, String> {
    let mut nice = std::collections::BTreeMap::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Counted after the parenthesised command name.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let value = after
            .split_whitespace()
            .nth(16)
            .unwrap_or_default()
            .to_string();
        nice.insert(comm.trim().to_string(), value);
    }
    nice
}

/// SIGTERM to n1 (owning both VIPs): it exits 0, n2 takes over, and n1's
/// routes and ARP settings are put back.
fn stops_and_puts_back(lab: &Lab, n1: &mut Daemon, n2: &Daemon) {
    let stopped = n1.stop_with("TERM", Duration::from_secs(3));
    assert!(stopped.is_some_and(|(status, _)| status.success()));
    assert!(
        n2.wait_for_log("acquired web6", Duration::from_secs(2)),
        "{}",
        n2.log()
    );
    let routes = lab.text(
        "n1",
        &["ip", "route", "show", "table", "local", "proto", "76"],
    );
    assert_eq!(routes.trim(), "", "{}", n1.log());
    let ignore = lab.text("n1", &["sysctl", "-n", "net.ipv4.conf.all.arp_ignore"]);
    assert_eq!(ignore.trim(), "0", "{}", n1.log());
}

/// The process's capability sets and IDs, from /proc/PID/status.
fn proc_field(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// As systemd starts it with the shipped unit (`User=`, `Group=`,
/// `AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_SYS_NICE`): the
/// daemon never was root, keeps the two capabilities it needs, and its
/// hooks get none, ambient ones included. Then once more with `"user"` set
/// to the user it already is.
#[test]
fn started_as_its_user_with_ambient_capabilities_it_keeps_two() {
    if !lab::available("started_as_its_user_with_ambient_capabilities_it_keeps_two") {
        return;
    }
    let lab = Lab::up(2, false);
    let user = TestUser::create("a");
    // systemd's RuntimeDirectory=: the daemon's own.
    let run = lab.dir.join("run");
    std::fs::create_dir(&run).expect("run directory");
    let chown = Command::new("chown")
        .arg(format!("{}:{}", user.user, user.user))
        .arg(&run)
        .status()
        .expect("chown");
    assert!(chown.success());
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/cross/buildroot/package/l2vip/l2vip.service"
    ))
    .expect("unit");
    assert!(
        unit.contains("AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_SYS_NICE\n"),
        "{unit}"
    );
    let start = lab::Start {
        wrapper: [
            "setpriv",
            "--reuid",
            &user.user,
            "--regid",
            &user.user,
            "--init-groups",
            "--inh-caps",
            "+net_raw,+net_admin,+sys_nice",
            "--ambient-caps",
            "+net_raw,+net_admin,+sys_nice",
            "--bounding-set",
            "-all,+net_raw,+net_admin,+sys_nice",
            "--no-new-privs",
        ]
        .map(String::from)
        .to_vec(),
        ..lab::Start::default()
    };
    let hook_out = run.join("hook");
    // With the VIPs' own MACs: the macvlans are made with those two
    // capabilities too.
    let extra = |user_key: &str| {
        format!(
            r#"{user_key}, "mac": "virtual", "control": {{"socket": "{run}/control.sock"}}, "state_file": "{run}/runtime.json",
            "hooks": {{"on_acquire": "grep ^Cap /proc/self/status > {hook}-$L2VIP_SERVICE"}}"#,
            run = run.display(),
            hook = hook_out.display()
        )
    };
    let mut n1 = lab.daemon_with(1, &config(1, &extra("")), &start);
    let n2 = lab.daemon(2, &config(2, ""));
    assert!(
        n1.wait_for_log("acquired web6", Duration::from_secs(5)),
        "{}",
        n1.log()
    );
    assert!(n1.log().contains("running as uid "), "{}", n1.log());
    let uid = proc_field(n1.pid(), "Uid");
    assert!(!uid.starts_with("0 "), "{uid}");
    // Bits 12 (CAP_NET_ADMIN) and 13 (CAP_NET_RAW): CAP_SYS_NICE went
    // once the threads had their niceness; nothing ambient.
    assert_eq!(proc_field(n1.pid(), "CapEff"), "0000000000003000");
    assert_eq!(proc_field(n1.pid(), "CapPrm"), "0000000000003000");
    assert_eq!(proc_field(n1.pid(), "CapInh"), "0000000000000000");
    assert_eq!(proc_field(n1.pid(), "CapAmb"), "0000000000000000");
    let nice = thread_nice(n1.pid());
    assert_eq!(
        nice.get("responder").map(String::as_str),
        Some("-10"),
        "{nice:?}"
    );

    std::thread::sleep(Duration::from_millis(LEASE_MS));
    let vmac = |service: &str| l2vip::config::virtual_mac("l2vip", service).to_string();
    assert_eq!(arp_answerers(&lab, VIP4), BTreeSetOf::one(&vmac("web")));
    assert_eq!(nd_answerers(&lab, VIP6), BTreeSetOf::one(&vmac("web6")));
    let ping = lab.text("c", &["ping", "-c", "2", "-i", "0.2", "-W", "1", VIP4]);
    assert!(ping.contains(" 2 received"), "{ping}");
    let hook = run.join("hook-web");
    assert!(
        Lab::wait_until(Duration::from_secs(2), || hook.exists()),
        "{}",
        n1.log()
    );
    let hook = std::fs::read_to_string(hook).expect("hook output");
    assert!(hook.contains("CapEff:\t0000000000000000"), "{hook}");
    assert!(hook.contains("CapAmb:\t0000000000000000"), "{hook}");

    let macvlans = |lab: &Lab| lab.text("n1", &["ip", "-o", "link", "show", "type", "macvlan"]);
    assert_eq!(macvlans(&lab).lines().count(), 2, "{}", macvlans(&lab));
    // SIGTERM (systemctl stop): routes, MACs and ARP settings put back
    // with those two capabilities.
    stops_and_puts_back(&lab, &mut n1, &n2);
    assert_eq!(macvlans(&lab).trim(), "", "{}", n1.log());

    // "user" naming the user it already is: no switch, the same two.
    let with_user = format!(r#", "user": "{}""#, user.user);
    let n1 = lab.daemon_with(1, &config(1, &extra(&with_user)), &start);
    assert!(
        n1.wait_for_log(
            &format!("running as {} (uid", user.user),
            Duration::from_secs(5)
        ),
        "{}",
        n1.log()
    );
    assert_eq!(proc_field(n1.pid(), "CapEff"), "0000000000003000");
    assert_eq!(proc_field(n1.pid(), "CapAmb"), "0000000000000000");
    drop(n2);
}

/// A service added with a health check and `bind` keeps both across a
/// restart: restored from the state file, it stays unowned while its check
/// fails, and is taken once the check passes.
#[test]
fn an_added_service_keeps_its_health_check_across_a_restart() {
    if !lab::available("an_added_service_keeps_its_health_check_across_a_restart") {
        return;
    }
    let lab = Lab::up(1, false);
    let alone = format!(
        r#"{{"node": "n1", "services": [{{"name": "web", "ip": "{VIP4}", "interface": "eth0"}}]}}"#
    );
    let mut daemon = lab.daemon(1, &alone);
    assert!(
        daemon.wait_for_log("acquired web", Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    let healthy = lab.dir.join("db.ok");
    let add = json!({"command": "add", "service": {
        "name": "db", "ip": "192.0.2.210", "interface": "eth0", "bind": "none",
        "health": {"exec": format!("test -e {}", healthy.display()),
                   "interval_ms": 100, "rise": 1, "fall": 1}}});
    let mut conn = Conn::open(&daemon.socket);
    assert_eq!(data(&conn.request(add))["added"], "db");
    drop(conn);

    daemon
        .stop_with("TERM", Duration::from_secs(2))
        .expect("stops");
    let daemon = lab.daemon(1, &alone);
    assert!(
        daemon.wait_for_log("restored from", Duration::from_secs(3)),
        "{}",
        daemon.log()
    );
    // Its check fails (no db.ok): restored with the check, it is not taken.
    std::thread::sleep(Duration::from_millis(1000));
    let mut conn = Conn::open(&daemon.socket);
    let status = conn.request(json!({"command": "status"}));
    let db = data(&status)["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == "db")
        .cloned()
        .unwrap_or_default();
    assert_eq!(db["health"]["state"], "failing", "{status}");
    assert_eq!(db["state"], "no owner", "{status}");
    assert!(arp_answerers(&lab, "192.0.2.210").is_empty());
    // `bind: none` came back too: owned, it gets no local route.
    std::fs::write(&healthy, "").expect("db.ok");
    assert!(
        daemon.wait_for_log("acquired db", Duration::from_secs(3)),
        "{}",
        daemon.log()
    );
    let routes = lab.text(
        "n1",
        &["ip", "route", "show", "table", "local", "proto", "76"],
    );
    assert!(routes.contains(VIP4), "{routes}");
    assert!(!routes.contains("192.0.2.210"), "{routes}");
}

/// The daemon's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A client that pours requests in and never reads the answers costs the
/// daemon a line and an answer of memory, not its backlog; others are
/// served all along.
#[test]
fn a_client_that_floods_and_never_reads_is_bounded() {
    if !lab::available("a_client_that_floods_and_never_reads_is_bounded") {
        return;
    }
    let lab = Lab::up(1, false);
    let daemon = one_node(&lab, "");
    let mut other = Conn::open(&daemon.socket);
    assert_eq!(
        data(&other.request(json!({"command": "status"})))["node"],
        "n1"
    );
    let before = rss_kib(daemon.pid());

    // 64 MiB of status requests, written for as long as the daemon takes
    // them (at most 5 s), never a byte read back.
    let flood = UnixStream::connect(&daemon.socket).expect("connect");
    flood.set_nonblocking(true).expect("non-blocking");
    let line = format!("{}\n", json!({"command": "status"})).repeat(4096);
    let (mut written, mut stalled) = (0usize, 0u32);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while written < 64 << 20 && std::time::Instant::now() < deadline && stalled < 200 {
        match (&flood).write(line.as_bytes()) {
            Ok(n) => {
                written += n;
                stalled = 0;
            }
            Err(_) => {
                stalled += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Meanwhile another client is answered, every time.
        if stalled == 1 {
            assert_eq!(
                data(&other.request(json!({"command": "status"})))["node"],
                "n1"
            );
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(daemon.pid());
    eprintln!("flooding client: {written} bytes written, daemon RSS {before} -> {after} KiB");
    assert_eq!(
        data(&other.request(json!({"command": "status"})))["node"],
        "n1"
    );
    // A line (64 KiB) and an answer per client, and the allocator's slack.
    assert!(
        after < before + 1024,
        "RSS {before} -> {after} KiB after {written} bytes from a client that never reads"
    );
    drop(flood);
}

/// With every slot held, the CLI says `busy` (exit 1), not a broken pipe;
/// clients that only send blank lines do not keep their slots past idle_s.
#[test]
fn held_slots_say_busy_and_blank_lines_do_not_keep_them() {
    if !lab::available("held_slots_say_busy_and_blank_lines_do_not_keep_them") {
        return;
    }
    let lab = Lab::up(1, false);
    let daemon = one_node(&lab, r#""idle_s": 2"#);
    let mut holders: Vec<Conn> = (0..32).map(|_| Conn::open(&daemon.socket)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (code, _, stderr) = daemon.cli(&["status"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("busy"), "{stderr}");
    // Blank lines every 500 ms for 3 s: past idle_s, the slots are freed.
    for _ in 0..6 {
        for holder in holders.iter_mut() {
            let _ = holder.stream.write_all(b"\n");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, out, stderr) = daemon.cli(&["status"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(out.contains("node n1"), "{out}");
}

/// Whatever is swapped in at the socket's path while the daemon binds it (a
/// link to a root-owned file, here in a directory anyone may write), the
/// daemon never changes that file's mode or group: the socket gets its
/// mode when it is made, its group without following a link.
#[test]
fn a_link_swapped_in_at_the_socket_path_changes_nothing() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !lab::available("a_link_swapped_in_at_the_socket_path_changes_nothing") {
        return;
    }
    let lab = Lab::up(1, false);
    let run = lab.dir.join("run");
    std::fs::create_dir_all(&run).expect("run directory");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let victim = lab.write("victim", "root's own", 0o600);
    let socket = run.join("control.sock");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (stop, socket, victim, run) =
            (stop.clone(), socket.clone(), victim.clone(), run.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u32;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && std::time::Instant::now() < deadline
            {
                let is_socket = std::fs::symlink_metadata(&socket)
                    .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                    .unwrap_or(false);
                if is_socket {
                    let link = run.join(format!(".link{swaps}"));
                    if std::os::unix::fs::symlink(&victim, &link).is_ok()
                        && std::fs::rename(&link, &socket).is_ok()
                    {
                        swaps += 1;
                    }
                }
            }
            swaps
        })
    };
    let daemon = lab.daemon(
        1,
        &format!(
            r#"{{"node": "n1", "control": {{"socket": "{}", "group": "nogroup"}},
            "services": [{{"name": "web", "ip": "192.0.2.200", "interface": "eth0"}}]}}"#,
            socket.display()
        ),
    );
    assert!(
        daemon.wait_for_log("control socket", Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = racer.join().expect("racer");
    let meta = std::fs::metadata(&victim).expect("victim");
    assert_eq!(
        (meta.mode() & 0o777, meta.gid()),
        (0o600, 0),
        "the victim changed ({swaps} swaps)"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap_or_default(),
        "root's own"
    );
}

/// Children of `pid` that have ended and were never waited for.
fn zombies_of(pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...: the comm may hold spaces; split after ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 1 && fields[0] == "Z" && fields[1] == pid.to_string() {
            found.push(head.to_string());
        }
    }
    found
}

/// A health check still running when its service is removed is killed and
/// reaped: no zombie stays behind.
#[test]
fn a_check_killed_by_a_remove_is_reaped() {
    if !lab::available("a_check_killed_by_a_remove_is_reaped") {
        return;
    }
    let lab = Lab::up(1, false);
    let daemon = lab.daemon(
        1,
        r#"{"node": "n1", "services": [{"name": "web", "ip": "192.0.2.200", "interface": "eth0"}]}"#,
    );
    assert!(
        daemon.wait_for_log("acquired web", Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    let mut conn = Conn::open(&daemon.socket);
    let add = json!({"command": "add", "service": {
        "name": "db", "ip": "192.0.2.210", "interface": "eth0",
        "health": {"exec": "sleep 30", "interval_ms": 60000, "timeout_ms": 60000}}});
    assert_eq!(data(&conn.request(add))["added"], "db");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        data(&conn.request(json!({"command": "remove", "service": "db"})))["removed"],
        "db"
    );
    assert!(
        Lab::wait_until(Duration::from_secs(2), || zombies_of(daemon.pid())
            .is_empty()),
        "zombies: {:?}",
        zombies_of(daemon.pid())
    );
    // And none appears later either.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(zombies_of(daemon.pid()), Vec::<String>::new());
}

/// A second daemon on one host (one network namespace), for another
/// cluster, refuses to start and names the one that runs; the first one's
/// macvlan and local route stay, and it goes on answering. (Before, the
/// second removed both at start as left over from a crash.)
#[test]
fn a_second_daemon_on_one_host_refuses_to_start_and_touches_nothing() {
    if !lab::available("a_second_daemon_on_one_host_refuses_to_start_and_touches_nothing") {
        return;
    }
    let lab = Lab::up(1, false);
    let first = lab.daemon(
        1,
        &format!(
            r#"{{"node": "n1", "services": [{{"name": "web", "ip": "{VIP4}",
              "interface": "eth0", "mac": "virtual"}}]}}"#
        ),
    );
    assert!(
        first.wait_for_log("answering for 1 VIPs", Duration::from_secs(5)),
        "{}",
        first.log()
    );
    let held = || {
        (
            lab.text("n1", &["ip", "-o", "link", "show", "type", "macvlan"]),
            lab.text(
                "n1",
                &["ip", "route", "show", "table", "local", "proto", "76"],
            ),
        )
    };
    let before = held();
    assert!(
        before.0.contains("l2v") && before.1.contains(VIP4),
        "{before:?}"
    );
    let socket = lab.dir.join("second.sock");
    let second = lab.write(
        "second.json",
        &format!(
            r#"{{"node": "other", "cluster": "second", "state_file": null,
              "control": {{"socket": "{}"}},
              "services": [{{"name": "db", "ip": "192.0.2.210", "interface": "eth0",
                             "mac": "virtual"}}]}}"#,
            socket.display()
        ),
        0o644,
    );
    let out = lab.run(
        "n1",
        &[
            "timeout",
            "10",
            env!("CARGO_BIN_EXE_l2vip"),
            "daemon",
            "-c",
            &second.display().to_string(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another l2vip runs on this host (in this network namespace) (pid {}, uid 0)",
            first.pid()
        )),
        "{stderr}"
    );
    assert!(!socket.exists());
    assert_eq!(held(), before);
    assert_eq!(
        arp_answerers(&lab, VIP4),
        std::collections::BTreeSet::from([l2vip::config::virtual_mac("l2vip", "web").to_string()])
    );
    assert!(!first.log().contains("removed"), "{}", first.log());
    drop(first);
}
