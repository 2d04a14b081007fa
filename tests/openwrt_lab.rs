//! The OpenWrt package's glue, run against real daemons in the lab: the
//! rpcd plugin (`ubus call l2vip ...`) spoken to as rpcd speaks to it, and
//! the hotplug events (`/etc/hotplug.d/l2vip/`) that `--notify` sends.

#[path = "lab/mod.rs"]
mod lab;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lab::{arp_answerers, nd_answerers, node_mac, Daemon, Lab, Start};
use serde_json::{json, Value};

const VIP4: &str = "192.0.2.200";
const VIP6: &str = "2001:db8::200";
const LEASE_MS: u64 = 500;
const FILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cross/openwrt/l2vip/files");

fn config(node: usize) -> String {
    let peer = if node == 1 { 12 } else { 11 };
    format!(
        r#"{{"node": "n{node}", "priority": {},
  "heartbeat": {{"interval_ms": 100, "lease_ms": {LEASE_MS}, "peers": ["192.0.2.{peer}"]}},
  "services": [{{"name": "web", "ip": "{VIP4}", "interface": "eth0"}},
               {{"name": "web6", "ip": "{VIP6}", "interface": "eth0"}}]}}"#,
        200 - 50 * node
    )
}

/// Two nodes (n1 owns both VIPs), each started as `start` says.
fn pair(lab: &Lab, start: &Start) -> (Daemon, Daemon) {
    lab.pair(
        [&config(1), &config(2)],
        start,
        "acquired web6",
        Duration::from_millis(LEASE_MS),
    )
}

/// The shipped rpcd plugin, its binary and socket pointed at this build
/// and `daemon`'s socket (installed, they are /usr/sbin/l2vip and the
/// default socket).
fn plugin(lab: &Lab, daemon: &Daemon) -> PathBuf {
    let shipped = std::fs::read_to_string(Path::new(FILES).join("l2vip.rpcd")).expect("plugin");
    assert!(
        shipped.contains("exec /usr/sbin/l2vip rpcd \"$@\""),
        "{shipped}"
    );
    let here = shipped.replace(
        "exec /usr/sbin/l2vip rpcd \"$@\"",
        &format!(
            "exec {} rpcd --socket {} \"$@\"",
            env!("CARGO_BIN_EXE_l2vip"),
            daemon.socket.display()
        ),
    );
    lab.write("rpcd-l2vip", &here, 0o755)
}

/// Runs the plugin as rpcd does: `PLUGIN list`, or `PLUGIN call METHOD`
/// with the arguments on stdin. Returns the exit status and the JSON it
/// printed.
fn rpcd(plugin: &Path, args: &[&str], input: &str) -> (Option<i32>, Value) {
    let mut child = Command::new(plugin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the plugin");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("write arguments");
    }
    let out = child.wait_with_output().expect("plugin output");
    let text = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {text:?}; stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), value)
}

#[test]
fn the_rpcd_plugin_lists_its_methods_and_calls_the_daemon() {
    if !lab::available("the_rpcd_plugin_lists_its_methods_and_calls_the_daemon") {
        return;
    }
    let lab = Lab::up(2, false);
    let (n1, n2) = pair(&lab, &Start::default());
    let plugin = plugin(&lab, &n1);

    let (code, list) = rpcd(&plugin, &["list"], "");
    assert_eq!(code, Some(0));
    assert_eq!(
        list,
        json!({"status": {}, "services": {}, "metrics": {}, "drain": {}, "undrain": {},
               "handover": {"service": "str"}})
    );

    // rpcd passes an empty object when ubus gave no arguments.
    let (code, status) = rpcd(&plugin, &["call", "status"], "{}");
    assert_eq!(code, Some(0), "{status}");
    assert_eq!(status["node"], "n1");
    assert_eq!(status["role"], "primary", "{status}");
    let owners: Vec<(&str, &str)> = status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or(""),
                s["owner"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(owners, [("web", "n1"), ("web6", "n1")]);
    assert_eq!(status["peers"][0]["node"], "n2");

    let (code, services) = rpcd(&plugin, &["call", "services"], "{}");
    assert_eq!(code, Some(0), "{services}");
    assert_eq!(services["services"][1]["name"], "web6");
    let (code, metrics) = rpcd(&plugin, &["call", "metrics"], "");
    assert_eq!(code, Some(0), "{metrics}");
    assert!(metrics["responder"].is_object(), "{metrics}");

    // A planned move through ubus: only web6 goes to n2.
    let (code, moved) = rpcd(&plugin, &["call", "handover"], r#"{"service": "web6"}"#);
    assert_eq!(code, Some(0), "{moved}");
    assert_eq!(moved["handed_over"], json!(["web6"]));
    assert!(
        n2.wait_for_log("acquired web6", Duration::from_secs(1)),
        "{}",
        n2.log()
    );
    std::thread::sleep(Duration::from_millis(LEASE_MS * 2));
    assert_eq!(
        nd_answerers(&lab, VIP6),
        std::collections::BTreeSet::from([node_mac(2)])
    );
    assert_eq!(
        arp_answerers(&lab, VIP4),
        std::collections::BTreeSet::from([node_mac(1)])
    );

    // Refusals are JSON objects with the reason, and move nothing.
    let (code, refused) = rpcd(&plugin, &["call", "handover"], r#"{"service": "nope"}"#);
    assert_eq!(code, Some(1), "{refused}");
    assert!(refused["error"].is_string() && refused["message"].is_string());
    let (code, refused) = rpcd(&plugin, &["call", "status"], r#"{"command": "drain"}"#);
    assert_eq!(code, Some(1));
    assert_eq!(refused["error"], "invalid_argument", "{refused}");
    let (code, refused) = rpcd(&plugin, &["call", "add"], "{}");
    assert_eq!(code, Some(1));
    assert_eq!(refused["message"], "unknown method \"add\"");
    let (_, status) = rpcd(&plugin, &["call", "status"], "{}");
    assert_eq!(status["draining"], false, "{status}");

    let (code, drained) = rpcd(&plugin, &["call", "drain"], "{}");
    assert_eq!(code, Some(0), "{drained}");
    assert!(
        n2.wait_for_log("acquired web (", Duration::from_secs(1)),
        "{}",
        n2.log()
    );
    let (_, status) = rpcd(&plugin, &["call", "status"], "{}");
    assert_eq!(status["draining"], true, "{status}");
    let (code, _) = rpcd(&plugin, &["call", "undrain"], "{}");
    assert_eq!(code, Some(0));

    // No daemon: an answer rpcd can pass on, and exit status 3.
    drop(n1);
    let (code, unreachable) = rpcd(&plugin, &["call", "status"], "{}");
    assert_eq!(code, Some(3));
    assert_eq!(unreachable["error"], "unreachable");
}

#[test]
fn acquire_release_and_role_events_reach_hotplug_scripts_with_their_variables() {
    if !lab::available("acquire_release_and_role_events_reach_hotplug_scripts_with_their_variables")
    {
        return;
    }
    let lab = Lab::up(2, false);
    // OpenWrt's /sbin/hotplug-call runs every script of /etc/hotplug.d/$1/
    // in order with the event's variables; this one does the same in a
    // directory of the lab's.
    let hotplug_d = lab.dir.join("hotplug.d");
    std::fs::create_dir_all(hotplug_d.join("l2vip")).expect("hotplug.d");
    let events = lab.dir.join("events");
    let hotplug_call = lab.write(
        "hotplug-call",
        &format!(
            "#!/bin/sh\nfor script in {}/\"$1\"/*; do [ -f \"$script\" ] && (. \"$script\"); done\n",
            hotplug_d.display()
        ),
        0o755,
    );
    std::fs::write(
        hotplug_d.join("l2vip/10-record"),
        format!(
            "echo \"$ACTION $SERVICE $VIP $INTERFACE $NODE\" >> {}\n",
            events.display()
        ),
    )
    .expect("hotplug script");
    let notify = Path::new(FILES).join("l2vip.hotplug");
    let notify = notify.display().to_string();
    let hotplug_call = hotplug_call.display().to_string();
    let start = Start {
        args: vec!["--notify".into(), notify],
        env: vec![("HOTPLUG_CALL".into(), hotplug_call)],
        ..Start::default()
    };
    let (n1, n2) = pair(&lab, &start);
    let recorded = || std::fs::read_to_string(&events).unwrap_or_default();
    let lines = |text: String| -> Vec<String> {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    // Each node's first role, n1's VIPs and its role once it owns them;
    // node-level events have no service, VIP or interface.
    assert!(
        Lab::wait_until(Duration::from_secs(2), || recorded().lines().count() >= 5),
        "{}",
        recorded()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        lines(recorded()),
        [
            format!("acquire web {VIP4} eth0 n1"),
            format!("acquire web6 {VIP6} eth0 n1"),
            "backup    n1".to_string(),
            "backup    n2".to_string(),
            "primary    n1".to_string(),
        ]
    );

    // A planned move: n1 releases web6, n2 acquires it and is primary
    // too (n1 still owns web); each tells its own scripts (here, one file).
    let (code, _, stderr) = n1.cli(&["handover", "web6"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        Lab::wait_until(Duration::from_secs(2), || recorded().lines().count() >= 8),
        "{}",
        recorded()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        lines(recorded()),
        [
            format!("acquire web {VIP4} eth0 n1"),
            format!("acquire web6 {VIP6} eth0 n1"),
            format!("acquire web6 {VIP6} eth0 n2"),
            "backup    n1".to_string(),
            "backup    n2".to_string(),
            "primary    n1".to_string(),
            "primary    n2".to_string(),
            format!("release web6 {VIP6} eth0 n1"),
        ]
    );
    drop(n2);
    drop(n1);
}
