//! The lab from Rust: builds `tests/lab/lab.sh` labs, runs commands and
//! daemons in them, captures traffic, and tears everything down on drop,
//! also when a test panics.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

fn lab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab")
}

/// True when this process may build labs. When it may not, says so loudly;
/// with `L2VIP_REQUIRE_LAB=1` it fails the test instead of skipping it.
pub fn available(test: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        if let Err(message) = tools() {
            panic!("LAB TOOLS MISSING for {test}:\n{message}");
        }
        return true;
    }
    let message = format!(
        "LAB TEST SKIPPED: {test} needs root (network namespaces); run the tests as root, e.g. `sudo -E cargo test`"
    );
    if std::env::var("L2VIP_REQUIRE_LAB").as_deref() == Ok("1") {
        panic!("{message} (L2VIP_REQUIRE_LAB=1)");
    }
    eprintln!("\n!!!!!!!! {message} !!!!!!!!\n");
    record_skip(test);
    false
}

/// Where the lab tests skipped by this `cargo test` run are recorded, one
/// empty file each: a directory named after the process that runs every
/// test binary (cargo). `tests/zz_lab_skips.rs`, the last target of the
/// run, counts them in one line.
pub fn skip_dir(cargo: u32) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("lab-skips")
        .join(cargo.to_string())
}

fn record_skip(test: &str) {
    let dir = skip_dir(std::os::unix::process::parent_id());
    let recorded = fs::create_dir_all(&dir).and_then(|()| fs::write(dir.join(test), ""));
    if let Err(error) = recorded {
        eprintln!(
            "could not record the skip of {test} in {}: {error}",
            dir.display()
        );
    }
}

/// Checks once per test binary, with `tests/need --check test` (the one list
/// of tools and their Debian packages), that every tool the lab tests run is
/// there in the expected form: `Err` holds its lines, one per missing tool.
fn tools() -> Result<(), &'static str> {
    static CHECK: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    CHECK
        .get_or_init(|| {
            let need = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/need");
            match Command::new(&need).args(["--check", "test"]).output() {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(format!(
                    "{}(`sudo tests/run` installs them)",
                    String::from_utf8_lossy(&out.stderr)
                )),
                Err(error) => Err(format!("could not run {}: {error}", need.display())),
            }
        })
        .as_ref()
        .map_err(String::as_str)
        .copied()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Lab clusters run without a key unless a test gives one: a test config
/// with peers or a group, no `key_file` and no word on `insecure` says
/// `"insecure": true`, as the daemon requires. A test about that rule
/// writes `insecure` itself.
fn allow_insecure(config: &mut serde_json::Value) {
    let Some(heartbeat) = config.get_mut("heartbeat").and_then(|h| h.as_object_mut()) else {
        return;
    };
    let talks = heartbeat.contains_key("peers") || heartbeat.contains_key("multicast");
    if talks && !heartbeat.contains_key("key_file") && !heartbeat.contains_key("insecure") {
        heartbeat.insert("insecure".into(), serde_json::Value::Bool(true));
    }
}

/// A lab of `nodes` nodes and one client, deleted on drop.
/// How `Lab::daemon_with` starts a daemon.
#[derive(Default)]
pub struct Start {
    /// A command the daemon runs under (e.g. setpriv and its options).
    pub wrapper: Vec<String>,
    /// More arguments for `l2vip daemon`.
    pub args: Vec<String>,
    /// More environment variables.
    pub env: Vec<(String, String)>,
}

pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
}

impl Lab {
    /// Builds a lab; `side_link` adds the client eth1 <-> node 1 eth1 link.
    pub fn up(nodes: usize, side_link: bool) -> Lab {
        Lab::build(nodes, if side_link { Some("--side-link") } else { None })
    }

    /// Builds a lab whose nodes have their port in a bridge of their own,
    /// `br-lan` (with the node's MAC and addresses), as OpenWrt has it.
    pub fn up_node_bridge(nodes: usize) -> Lab {
        Lab::build(nodes, Some("--node-bridge"))
    }

    /// Builds a lab whose nodes have a second port on the bridge, `eth1`
    /// (no addresses; MAC `vip_link_mac(i)`), to carry VIPs apart from the
    /// heartbeats on eth0.
    pub fn up_vip_link(nodes: usize) -> Lab {
        Lab::build(nodes, Some("--vip-link"))
    }

    /// Builds a lab with a router ("r", 192.0.2.1 on the bridge) and a far
    /// client behind it ("f", 203.0.113.100): VIPs reach "f" by BGP.
    pub fn up_router(nodes: usize) -> Lab {
        Lab::build(nodes, Some("--router"))
    }

    /// Builds a pair of routers (n1, n2) between the client's LAN and a
    /// WAN with a server ("s"), with a stateful firewall and NAT to the WAN
    /// VIP, and a link of their own (eth2) for conntrackd (lab.sh says more).
    pub fn up_router_pair() -> Lab {
        Lab::build(2, Some("--router-pair"))
    }

    fn build(nodes: usize, option: Option<&str>) -> Lab {
        let name = format!(
            "l{}x{}",
            std::process::id() % 100_000,
            NEXT_LAB.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(format!("l2vip-{name}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("lab directory");
        // Daemons and clients started as other users read their files here.
        set_mode(&dir, 0o755);
        let lab = Lab { name, dir };
        let mut command = Command::new(lab_dir().join("lab.sh"));
        command.args(["up", &lab.name, &nodes.to_string()]);
        command.args(option);
        let out = command.output().expect("run lab.sh");
        assert!(
            out.status.success(),
            "lab.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    /// The namespace of `host`: "c" (client) or "n1", "n2", ...
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.name)
    }

    /// Starts a command in `host`'s namespace, its stdout and stderr into
    /// the lab file `output`; the caller ends it.
    pub fn spawn(&self, host: &str, args: &[&str], output: &str) -> Child {
        let out = fs::File::create(self.dir.join(output)).expect("output file");
        Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("output file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {args:?} in {host}: {e}"))
    }

    /// Runs a command in `host`'s namespace and returns its output.
    pub fn run(&self, host: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args(args)
            .output()
            .expect("run ip netns exec")
    }

    /// Runs a command in `host`'s namespace and returns stdout + stderr.
    pub fn text(&self, host: &str, args: &[&str]) -> String {
        let out = self.run(host, args);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Sends raw frames from the client's `interface`.
    pub fn inject(&self, interface: &str, frames: &[Vec<u8>]) {
        let script = lab_dir().join("inject.py");
        let mut args = vec![
            "python3".to_string(),
            script.display().to_string(),
            interface.to_string(),
        ];
        args.extend(
            frames
                .iter()
                .map(|frame| frame.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        );
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run("c", &refs);
        assert!(
            out.status.success(),
            "inject.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The client's neighbour entry for `ip` ("" if none).
    pub fn neighbour(&self, ip: &str) -> String {
        self.text("c", &["ip", "neigh", "show", ip, "dev", "eth0"])
            .trim()
            .to_string()
    }

    /// Polls `probe` every 50 ms until it returns true or `limit` passes.
    pub fn wait_until(limit: Duration, probe: impl FnMut() -> bool) -> bool {
        Lab::wait_until_every(limit, Duration::from_millis(50), probe)
    }

    /// Polls `probe` every `period` until it returns true or `limit` passes.
    pub fn wait_until_every(
        limit: Duration,
        period: Duration,
        mut probe: impl FnMut() -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if probe() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(period);
        }
    }

    /// Writes a file into the lab's directory (for keys and configs).
    pub fn write(&self, name: &str, contents: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        fs::write(&path, contents).expect("write lab file");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod lab file");
        path
    }

    /// Listens on the heartbeat multicast group from the client for
    /// `seconds`; returns (source address, datagram) pairs.
    pub fn listen_heartbeats(&self, group: &str, seconds: f64) -> Vec<(String, Vec<u8>)> {
        let script = lab_dir().join("mcast.py");
        let script = script.display().to_string();
        let seconds = seconds.to_string();
        let out = self.text(
            "c",
            &[
                "python3",
                &script,
                "listen",
                group,
                "7947",
                "192.0.2.100",
                &seconds,
            ],
        );
        out.lines()
            .filter_map(|line| {
                let (source, hex) = line.split_once(' ')?;
                let bytes = (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()?;
                Some((source.to_string(), bytes))
            })
            .collect()
    }

    /// Sends datagrams from the client to `destination` (the heartbeat
    /// group or a node) as a host on the link would: with TTL 255.
    pub fn send_heartbeats(&self, destination: &str, datagrams: &[Vec<u8>]) {
        self.send_heartbeats_with_ttl(destination, 255, datagrams);
    }

    /// Sends datagrams from the client to `destination` with `ttl`.
    pub fn send_heartbeats_with_ttl(&self, destination: &str, ttl: u8, datagrams: &[Vec<u8>]) {
        let script = lab_dir().join("mcast.py").display().to_string();
        let mut args = vec![
            "python3".to_string(),
            script,
            "send".into(),
            destination.into(),
            "7947".into(),
            "192.0.2.100".into(),
            ttl.to_string(),
        ];
        args.extend(
            datagrams
                .iter()
                .map(|d| d.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        );
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run("c", &refs);
        assert!(
            out.status.success(),
            "mcast.py send: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Rewrites node `node`'s configuration file (for reload tests), with
    /// the same control socket and state file the harness chose.
    pub fn rewrite_config(&self, node: usize, config: &str) {
        let host = format!("n{node}");
        let path = self.dir.join(format!("{host}.json"));
        let old: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).expect("config")).expect("JSON");
        let mut value: serde_json::Value =
            serde_json::from_str(config).expect("test config is JSON");
        if let Some(object) = value.as_object_mut() {
            object.insert("control".into(), old["control"].clone());
            object.insert("state_file".into(), old["state_file"].clone());
        }
        allow_insecure(&mut value);
        fs::write(&path, value.to_string()).expect("write config");
    }

    /// Writes `config` and starts `l2vip daemon -c` in node `node`.
    pub fn daemon(&self, node: usize, config: &str) -> Daemon {
        self.daemon_with(node, config, &Start::default())
    }

    /// `daemon`, started as `start` says.
    pub fn daemon_with(&self, node: usize, config: &str, start: &Start) -> Daemon {
        let host = format!("n{node}");
        let config_path = self.dir.join(format!("{host}.json"));
        // Each daemon gets its own control socket in the lab directory.
        let mut socket = self.dir.join(format!("{host}.sock"));
        let mut value: serde_json::Value =
            serde_json::from_str(config).expect("test config is JSON");
        if let Some(object) = value.as_object_mut() {
            let control = object
                .entry("control")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(keys) = control.as_object_mut() {
                keys.entry("socket")
                    .or_insert_with(|| serde_json::json!(socket.display().to_string()));
            }
            if let Some(path) = control["socket"].as_str() {
                socket = PathBuf::from(path);
            }
            // And its own state file, never the system's.
            let state = self.dir.join(format!("{host}-runtime.json"));
            object
                .entry("state_file")
                .or_insert_with(|| serde_json::json!(state.display().to_string()));
        }
        allow_insecure(&mut value);
        fs::write(&config_path, value.to_string()).expect("write config");
        let log = self.dir.join(format!("{host}.log"));
        let log_file = fs::File::create(&log).expect("log file");
        let binary = if start.wrapper.is_empty() {
            PathBuf::from(env!("CARGO_BIN_EXE_l2vip"))
        } else {
            self.binary_for_others()
        };
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(&host)])
            .args(&start.wrapper)
            .arg(binary)
            .args(["daemon", "-c"])
            .arg(&config_path)
            .args(&start.args)
            .envs(start.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start l2vip");
        Daemon {
            child: Some(child),
            log,
            socket,
        }
    }

    /// The l2vip binary where any user can run it: a copy in the lab
    /// directory. The build's own may sit in a checkout that only root can
    /// enter (a clone under /root, mode 0700), and a daemon started under
    /// a wrapper (setpriv) or a client run with runuser is another user.
    pub fn binary_for_others(&self) -> PathBuf {
        let dir = self.dir.join("bin");
        let binary = dir.join("l2vip");
        if !binary.exists() {
            fs::create_dir_all(&dir).expect("lab bin directory");
            set_mode(&dir, 0o755);
            fs::copy(env!("CARGO_BIN_EXE_l2vip"), &binary).expect("copy l2vip");
            set_mode(&binary, 0o755);
        }
        binary
    }

    /// Starts n1 and n2 (both as `start` says) with their configurations,
    /// waits until n1's log has `ready` and n2's control socket is there,
    /// then `settle` (e.g. a lease, so that n2 has heard n1).
    pub fn pair(
        &self,
        configs: [&str; 2],
        start: &Start,
        ready: &str,
        settle: Duration,
    ) -> (Daemon, Daemon) {
        let n1 = self.daemon_with(1, configs[0], start);
        let n2 = self.daemon_with(2, configs[1], start);
        assert!(
            n1.wait_for_log(ready, Duration::from_secs(5)),
            "{}",
            n1.log()
        );
        assert!(
            Lab::wait_until(Duration::from_secs(3), || n2.socket.exists()),
            "{}",
            n2.log()
        );
        std::thread::sleep(settle);
        (n1, n2)
    }

    /// Starts tcpdump on `host`'s `interface` with `filter`; ready on return.
    pub fn capture(&self, host: &str, interface: &str, filter: &str) -> Capture {
        let index = NEXT_LAB.fetch_add(1, Ordering::SeqCst);
        let output = self
            .dir
            .join(format!("capture-{host}-{interface}-{index}.txt"));
        let errors = self
            .dir
            .join(format!("capture-{host}-{interface}-{index}.err"));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args([
                "tcpdump",
                "--immediate-mode",
                // The capture ring's slots are as large as the snapshot:
                // a short one holds more frames of a burst.
                "-s",
                "512",
                "-i",
                interface,
                "-e",
                "-n",
                "-vv",
                "-l",
                "-tt",
            ])
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&output).expect("capture file"))
            .stderr(fs::File::create(&errors).expect("capture file"))
            .spawn()
            .expect("start tcpdump");
        let ready = Lab::wait_until(Duration::from_secs(5), || {
            fs::read_to_string(&errors).is_ok_and(|text| text.contains("listening on"))
        });
        assert!(
            ready,
            "tcpdump did not start: {}",
            fs::read_to_string(&errors).unwrap_or_default()
        );
        Capture {
            child: Some(child),
            output,
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = Command::new(lab_dir().join("lab.sh"))
            .args(["down", &self.name])
            .output();
        if let Ok(out) = out {
            if !out.status.success() {
                eprintln!(
                    "lab.sh down {}: {}",
                    self.name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Sends `signal` (a name such as "TERM") to the process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// Waits up to `limit` for `child`; kills it (by PID) if it does not end.
fn reap(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running l2vip daemon; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
    /// Its control socket.
    pub socket: PathBuf,
}

impl Daemon {
    /// The daemon's PID (`ip netns exec` execs it, so it is the same).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> bool {
        Lab::wait_until(limit, || self.log().contains(needle))
    }

    /// Runs `l2vip ARGS --socket <this daemon's socket>` and returns
    /// (exit status, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_l2vip"))
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .expect("run l2vip");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Sends a signal by name.
    pub fn signal(&self, name: &str) {
        signal(self.pid(), name);
    }

    /// Asks the daemon to log its counters (SIGUSR1: one line from the
    /// election, one from the responder) and returns them by name.
    pub fn counters(&self) -> std::collections::HashMap<String, u64> {
        let count = |log: &str| log.lines().filter(|l| l.contains("counters:")).count();
        let before = count(&self.log());
        self.signal("USR1");
        assert!(
            Lab::wait_until(Duration::from_secs(3), || count(&self.log()) >= before + 2),
            "no counters logged: {}",
            self.log()
        );
        self.log()
            .lines()
            .filter(|l| l.contains("counters:"))
            .skip(before)
            .flat_map(|line| line.split_whitespace())
            .filter_map(|pair| pair.split_once('='))
            .filter_map(|(key, value)| Some((key.to_string(), value.parse().ok()?)))
            .collect()
    }

    /// Stops the daemon with `signal` and returns its status and how long
    /// it took; None if it had to be killed after `limit`.
    pub fn stop_with(
        &mut self,
        signal_name: &str,
        limit: Duration,
    ) -> Option<(ExitStatus, Duration)> {
        let mut child = self.child.take()?;
        let start = Instant::now();
        signal(child.id(), signal_name);
        reap(&mut child, limit).map(|status| (status, start.elapsed()))
    }

    /// Waits for a daemon expected to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        reap(&mut child, limit)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            reap(&mut child, Duration::from_secs(2));
        }
    }
}

/// A running tcpdump; `stop` returns what it decoded.
pub struct Capture {
    child: Option<Child>,
    output: PathBuf,
}

impl Capture {
    /// What tcpdump has printed so far, without stopping it.
    pub fn text(&self) -> String {
        fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Stops tcpdump and returns its text output.
    pub fn stop(mut self) -> String {
        // Frames still in flight (veth, bridge) reach tcpdump well within this.
        std::thread::sleep(Duration::from_millis(200));
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "INT");
            reap(&mut child, Duration::from_secs(3));
        }
        let file = fs::File::open(&self.output).expect("capture output");
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "INT");
            reap(&mut child, Duration::from_secs(3));
        }
    }
}

/// The MACs that answered `arping` for `vip` from the client (2 probes).
pub fn arp_answerers(lab: &Lab, vip: &str) -> std::collections::BTreeSet<String> {
    let out = lab.text("c", &["arping", "-c", "2", "-w", "2", "-I", "eth0", vip]);
    out.lines()
        .filter(|l| l.contains(&format!("reply from {vip} [")))
        .filter_map(|l| {
            l.split('[')
                .nth(1)?
                .split(']')
                .next()
                .map(str::to_lowercase)
        })
        .collect()
}

/// The MACs that answered `ndisc6 -m` for `vip` from the client.
pub fn nd_answerers(lab: &Lab, vip: &str) -> std::collections::BTreeSet<String> {
    let out = lab.text("c", &["ndisc6", "-m", "-r", "2", "-w", "500", vip, "eth0"]);
    out.lines()
        .filter_map(|l| l.strip_prefix("Target link-layer address: "))
        .map(|mac| mac.trim().to_lowercase())
        .collect()
}

/// The MAC in the client's neighbour entry for `ip`, if any.
pub fn neighbour_mac(lab: &Lab, ip: &str) -> Option<String> {
    let entry = lab.neighbour(ip);
    let mut words = entry.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_string)
}

/// Node `i`'s MAC in the lab.
pub fn node_mac(i: usize) -> String {
    format!("02:4c:32:00:00:{i:02x}")
}

/// Node `i`'s eth1 MAC in a lab built with `up_vip_link`.
pub fn vip_link_mac(i: usize) -> String {
    format!("02:4c:32:00:02:{i:02x}")
}

/// Seconds since the epoch, to compare with tcpdump's `-tt` stamps.
pub fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The time of the first gratuitous ARP request for `vip` in a capture.
pub fn first_gratuitous(decoded: &str, vip: &str) -> Option<f64> {
    decoded
        .lines()
        .find(|l| l.contains(&format!("Request who-has {vip} tell {vip}")))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A ping running in the background (`start_ping`).
pub struct Ping {
    child: Child,
    started: f64,
    /// Its output, read as it comes: ping blocks on a full pipe (64 KiB,
    /// about 800 replies) and sends nothing more until it is read.
    output: std::thread::JoinHandle<String>,
}

impl Ping {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `ping` every 10 ms from `host` for `seconds`, with receive stamps; also
/// when it started (seconds since the epoch). `longest_gap` reads it. A
/// count rather than a deadline (`-w`), with which ping would stop at the
/// first ICMP error (a router without a route for a while).
pub fn start_ping(lab: &Lab, host: &str, ip: &str, seconds: u32) -> Ping {
    let started = epoch_now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.ns(host)])
        .args(["ping", "-D", "-n", "-i", "0.01", "-W", "1", "-c"])
        .arg((seconds * 100).to_string())
        .arg(ip)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ping");
    let mut stdout = child.stdout.take().expect("ping's stdout");
    let output = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    Ping {
        child,
        started,
        output,
    }
}

/// The longest time without a reply (from the start, between replies, to
/// the end), and the number of replies.
pub fn longest_gap(mut ping: Ping) -> (Duration, usize) {
    let _ = ping.child.wait();
    let ended = epoch_now();
    let text = ping.output.join().unwrap_or_default();
    gap_in(&text, ping.started, ended)
}

/// The longest time without a reply in the output of `ping -D` that ran
/// from `started` to `ended` (seconds since the epoch), and the number of
/// replies.
pub fn gap_in(text: &str, started: f64, ended: f64) -> (Duration, usize) {
    let replies: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    let mut stamps = vec![started];
    stamps.extend(&replies);
    stamps.push(ended);
    let gap = stamps
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0f64, f64::max);
    (Duration::from_secs_f64(gap.max(0.0)), replies.len())
}

/// The heartbeat peers of node `node` in a lab of `nodes` nodes, as the
/// inside of a JSON array.
pub fn peers(node: usize, nodes: usize) -> String {
    (1..=nodes)
        .filter(|j| *j != node)
        .map(|j| format!("\"192.0.2.{}\"", 10 + j))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until the client's neighbour entry for `ip` holds `mac`; fails
/// the test with the entry it holds when `limit` passes.
pub fn cache_moves_to(lab: &Lab, ip: &str, mac: &str, limit: Duration) {
    let moved = Lab::wait_until(limit, || neighbour_mac(lab, ip).as_deref() == Some(mac));
    assert!(
        moved,
        "the client's entry for {ip} is {:?}, not {mac}",
        neighbour_mac(lab, ip)
    );
}
