//! The binary's contract for configuration and usage errors: one clear
//! line naming the problem (and its line), exit status 2, nothing started.

#[path = "lab/mod.rs"]
mod lab;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn l2vip(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_l2vip"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start l2vip");
    // A rejected configuration must not leave anything running.
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("l2vip {args:?} is still running after 5 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("l2vip-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// Both `daemon` and `check-config` reject `text` with status 2 and a
/// message containing every one of `expect`.
fn rejected(name: &str, text: &str, expect: &[&str]) {
    let path = write_config(name, text);
    let path = path.to_str().expect("utf-8 path");
    for command in ["daemon", "check-config"] {
        let out = l2vip(&[command, "-c", path]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command} {name}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(path), "names the file: {stderr}");
        for needle in expect {
            assert!(
                stderr.contains(needle),
                "{command} {name}: {needle:?} not in {stderr}"
            );
        }
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn unknown_key() {
    rejected(
        "unknown.json",
        "{\n  \"node\": \"n1\",\n  \"servcies\": []\n}\n",
        &["line 3", "unknown field `servcies`"],
    );
}

#[test]
fn bad_address() {
    rejected(
        "address.json",
        "{\"node\": \"n1\", \"services\": [\n  {\"name\": \"web\",\n   \"ip\": \"192.0.2.300\", \"interface\": \"eth0\"}\n]}\n",
        &["line 3", "services[0].ip", "\"192.0.2.300\" is not an IPv4 or IPv6 address"],
    );
    rejected(
        "multicast.json",
        "{\"node\": \"n1\", \"services\": [{\"name\": \"web\", \"ip\": \"ff02::1\", \"interface\": \"eth0\"}]}",
        &["line 1", "services[0].ip", "multicast"],
    );
}

#[test]
fn duplicate_service() {
    rejected(
        "duplicate.json",
        concat!(
            "{\"node\": \"n1\", \"services\": [\n",
            "  {\"name\": \"web\", \"ip\": \"192.0.2.200\", \"interface\": \"eth0\"},\n",
            "  {\"name\": \"web\", \"ip\": \"192.0.2.201\", \"interface\": \"eth0\"}\n",
            "]}\n"
        ),
        &[
            "line 3",
            "services[1].name",
            "\"web\" is already the name of services[0]",
        ],
    );
    rejected(
        "same-ip.json",
        concat!(
            "{\"node\": \"n1\", \"services\": [\n",
            "  {\"name\": \"a\", \"ip\": \"192.0.2.200\", \"interface\": \"eth0\"},\n",
            "  {\"name\": \"b\", \"ip\": \"192.0.2.200\", \"interface\": \"eth0\"}\n",
            "]}\n"
        ),
        &[
            "line 3",
            "services[1].ip",
            "already the address of services[0]",
        ],
    );
}

#[test]
fn missing_interface() {
    rejected(
        "interface.json",
        concat!(
            "{\"node\": \"n1\", \"services\": [\n",
            "  {\"name\": \"web\", \"ip\": \"192.0.2.200\",\n",
            "   \"interface\": \"l2vipnone0\"}\n",
            "]}\n"
        ),
        &[
            "line 3",
            "services[0].interface",
            "no interface named \"l2vipnone0\"",
        ],
    );
}

#[test]
fn not_ethernet_interface() {
    rejected(
        "loopback.json",
        "{\"node\": \"n1\", \"services\": [{\"name\": \"web\", \"ip\": \"192.0.2.200\", \"interface\": \"lo\"}]}",
        &["services[0].interface", "\"lo\": not an Ethernet interface"],
    );
}

#[test]
fn broken_json_and_unreadable_files() {
    rejected(
        "syntax.json",
        "{\n  \"node\": \"n1\",\n  \"services\": [,]\n}\n",
        &["line 3"],
    );
    rejected("empty.json", "", &["must be one JSON object"]);
    let missing = "/nonexistent/l2vip.json";
    for command in ["daemon", "check-config"] {
        let out = l2vip(&[command, "-c", missing]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(missing) && stderr.contains("cannot open"),
            "{stderr}"
        );
    }
}

#[test]
fn usage_errors_and_version() {
    for args in [
        &["frobnicate"][..],
        &["daemon", "-c"],
        &["daemon", "--bogus"],
        &[],
    ] {
        let out = l2vip(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage: l2vip"),
            "{args:?}"
        );
    }
    let out = l2vip(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("l2vip {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_prints_the_normalized_config() {
    if !lab::available("check_config_prints_the_normalized_config") {
        return;
    }
    let lab = lab::Lab::up(1, false);
    let path = lab.dir.join("ok.json");
    std::fs::write(
        &path,
        r#"{"services": [{"name": "web6", "ip": "2001:DB8:0::200", "interface": "eth0"}]}"#,
    )
    .expect("write");
    let out = lab.run(
        "n1",
        &[
            env!("CARGO_BIN_EXE_l2vip"),
            "check-config",
            "-c",
            path.to_str().expect("utf-8"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(
        printed["node"],
        hostname.trim(),
        "node defaults to the hostname"
    );
    assert_eq!(printed["announce"]["count"], 5);
    assert_eq!(printed["announce"]["interval_ms"], 1100);
    assert_eq!(printed["announce"]["refresh_s"], 60);
    assert_eq!(
        printed["services"][0]["ip"], "2001:db8::200",
        "normalized address"
    );
}

#[test]
fn heartbeat_key_file_must_be_private_and_long_enough() {
    let dir = std::env::temp_dir().join(format!("l2vip-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key = |name: &str, contents: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path.display().to_string()
    };
    // No services: the interface check has nothing to look at, so the key
    // is what is being judged.
    let config = |key: &str| format!(r#"{{"node": "n1", "heartbeat": {{"key_file": "{key}"}}}}"#);
    for (path, expect) in [
        (
            key("open", "0123456789abcdef0123", 0o644),
            "mode 0644 lets others read the key; chmod 600",
        ),
        (
            key("short", "short\n", 0o600),
            "5 bytes; a key needs at least 16",
        ),
        (dir.join("missing").display().to_string(), "cannot read"),
    ] {
        let file = write_config("key.json", &config(&path));
        for command in ["daemon", "check-config"] {
            let out = l2vip(&[command, "-c", file.to_str().expect("utf-8")]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
            assert!(
                stderr.contains("heartbeat.key_file") && stderr.contains(expect),
                "{expect}: {stderr}"
            );
        }
    }
}

/// The shipped examples, the full JSON and UCI examples of
/// docs/configuration.md and the README's minimal configuration are valid
/// (offline: their interfaces need not exist here); a broken UCI file
/// names the section, the option and the line.
#[test]
fn shipped_and_documented_configurations_are_valid() {
    let read = |file: &str| {
        std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    // The code block that starts with `opening` in `text`, without its fences.
    let block = |text: &str, opening: &str, name: &str| {
        let start = text
            .find(opening)
            .unwrap_or_else(|| panic!("no example starting {opening:?}"));
        let body = &text[start + opening.find('\n').expect("a fence line") + 1..];
        write_config(name, &body[..body.find("```").expect("the example ends")])
    };
    let reference = read("docs/configuration.md");
    let documented = block(&reference, "```\nconfig l2vip 'main'", "docs.uci");
    let json_example = block(
        &reference,
        "```json\n{\n  \"node\": \"r1\",\n  \"cluster\"",
        "docs.json",
    );
    let minimal = block(
        &read("README.md"),
        "```json\n{\n  \"node\": \"r1\",\n  \"heartbeat\"",
        "readme.json",
    );
    let root = env!("CARGO_MANIFEST_DIR");
    for path in [
        format!("{root}/cross/openwrt/l2vip/files/l2vip.config"),
        format!("{root}/rootfs/etc/l2vip/config.json"),
        documented.display().to_string(),
        json_example.display().to_string(),
        minimal.display().to_string(),
    ] {
        let out = l2vip(&["check-config", "--offline", "-c", &path]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let normalized: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("check-config prints JSON");
        assert!(normalized["services"]
            .as_array()
            .is_some_and(|s| !s.is_empty()));
    }
    let out = l2vip(&[
        "check-config",
        "--offline",
        "-c",
        &documented.display().to_string(),
    ]);
    let normalized: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(normalized["heartbeat"]["peers"][1], "192.0.2.13:7947");
    assert_eq!(normalized["services"][0]["health"]["tcp"], "127.0.0.1:80");
    assert_eq!(normalized["services"][0]["nodes"][1], "r2");
    assert_eq!(normalized["control"]["group"], "l2vip");
    assert_eq!(normalized["export"]["table"], 100);
    assert_eq!(normalized["services"][2]["answer"], false);
    assert_eq!(normalized["services"][2]["export"]["what"], "eligible");
    assert_eq!(normalized["services"][3]["export"], false);

    rejected(
        "broken.uci",
        "config l2vip\n\toption node 'a'\nconfig service 'web'\n\toption ip '192.0.2.300'\n\toption interface 'eth0'\n",
        &["line 4: config service 'web', option ip:", "192.0.2.300"],
    );
    rejected(
        "unknown.uci",
        "config l2vip\n\toption nodes 'a'\n",
        &["line 2: config l2vip, option nodes: unknown option (known: enabled, node,"],
    );
}

/// A node with peers or a group and no key does not start unless the file
/// says `heartbeat.insecure`; a one-node cluster needs nothing.
#[test]
fn peers_without_a_key_are_refused_unless_the_file_says_insecure() {
    let services = r#""services": [{"name": "web", "ip": "192.0.2.200", "interface": "lo"}]"#;
    rejected(
        "nokey.json",
        &format!(
            "{{\"node\": \"n1\",\n \"heartbeat\": {{\"peers\": [\"192.0.2.12\"]}}, {services}}}\n"
        ),
        &["line 2", "no heartbeat.key_file", "heartbeat.insecure"],
    );
    let uci = write_config(
        "nokey.uci",
        "config l2vip 'main'\n\toption node 'n1'\n\toption enabled '1'\n\nconfig heartbeat\n\tlist peer '192.0.2.12'\n\tlist peer '192.0.2.13'\n\nconfig service 'web'\n\toption ip '192.0.2.200'\n\toption interface 'lo'\n",
    );
    let out = l2vip(&[
        "check-config",
        "--offline",
        "-c",
        uci.to_str().expect("path"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("option peer") && stderr.contains("insecure"),
        "{stderr}"
    );

    let insecure = write_config(
        "insecure.json",
        &format!("{{\"node\": \"n1\", \"heartbeat\": {{\"peers\": [\"192.0.2.12\"], \"insecure\": true}}, {services}}}\n"),
    );
    let out = l2vip(&[
        "check-config",
        "--offline",
        "-c",
        insecure.to_str().expect("path"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(shown["heartbeat"]["insecure"], true);
    let alone = write_config("alone.json", &format!("{{\"node\": \"n1\", {services}}}\n"));
    let out = l2vip(&[
        "check-config",
        "--offline",
        "-c",
        alone.to_str().expect("path"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
