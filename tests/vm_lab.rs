//! l2vip on virtual machines as users run it: Debian 12 with systemd and
//! its own kernel (see `tests/vm/mod.rs`), l2vip installed from its Debian
//! package, the lab's client namespace on the same bridge.

#[path = "lab/mod.rs"]
mod lab;
#[path = "vm/mod.rs"]
mod vm;

use std::collections::BTreeSet;
use std::time::Duration;

use lab::Lab;
use vm::Vm;

/// One test at a time: three emulated CPUs already share two host cores,
/// and the failover bounds assume nothing else runs beside them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const VIP4: &str = "192.0.2.230";
/// A failover with `config`'s timers: lease 1,000 + interval 200 ms, and
/// 2 s for three emulated CPUs sharing two host cores.
const FAILOVER_BOUND: Duration = Duration::from_millis(1000 + 200 + 2000);

/// The cluster's heartbeat key.
const KEY: &str = "vm-lab-secret-0123456789abcdef";
const VIP6: &str = "2001:db8::230";

/// The package, built as `cross/debian/build` makes it, in the lab's share.
fn package(lab: &Lab) -> String {
    let share = lab.dir.join("share");
    std::fs::create_dir_all(&share).expect("share");
    let binary = lab.dir.join("l2vip.stripped").display().to_string();
    let stripped = std::process::Command::new("strip")
        .args(["-o", &binary, env!("CARGO_BIN_EXE_l2vip")])
        .status()
        .expect("strip");
    assert!(stripped.success());
    let out =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cross/debian/build"))
            .args(["--binary", &binary, "--out"])
            .arg(&share)
            .output()
            .expect("cross/debian/build");
    assert!(out.status.success(), "{out:?}");
    let deb = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let name = deb.rsplit('/').next().unwrap_or_default();
    format!("/mnt/host/{name}")
}

/// VM `index`'s address on the lab's segment.
fn address(index: usize) -> String {
    format!("192.0.2.{}", 20 + index)
}

/// A configuration for VM `index`, with heartbeat `peers` (addresses),
/// interval 200 ms and lease `lease_ms`.
fn config(index: usize, peers: &[String], lease_ms: u32, extra_service: &str) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        r#"{{"node": "vm{index}", "priority": {},
  "heartbeat": {{"interval_ms": 200, "lease_ms": {lease_ms}, "peers": [{}], "key_file": "/etc/l2vip/key"}},
  "services": [{{"name": "web", "ip": "{VIP4}", "interface": "eth0"}},
               {{"name": "web6", "ip": "{VIP6}", "interface": "eth0", "mac": "virtual"}}{extra_service}]}}"#,
        200 - 10 * index,
        peers.join(", ")
    )
}

/// Writes `text` to `path` in the VM.
fn put(vm: &Vm, path: &str, text: &str) {
    vm.ok(&format!("cat > {path} <<'L2VIP_EOF'\n{text}\nL2VIP_EOF"));
}

/// The client pings `ip` until one answer comes back, within `limit`.
fn reaches(lab: &Lab, ip: &str, limit: Duration) -> bool {
    Lab::wait_until(limit, || {
        lab.run("c", &["ping", "-c", "1", "-W", "1", ip])
            .status
            .success()
    })
}

/// `apt install ./l2vip_*.deb` in a VM, a configuration and a key dropped
/// in, `systemctl restart l2vip`: active, running as l2vip with exactly
/// CAP_NET_RAW and CAP_NET_ADMIN, the client reaches both VIPs; `systemctl
/// reload` applies a new service. With n1 of the namespace lab beside it
/// (ranked lower): after a reboot the service is back, its state file kept
/// what `add` added, and it takes nothing back from n1 (sticky) until n1
/// leaves. `apt remove` leaves no macvlan, route or ARP setting behind;
/// `apt purge` removes the user and `/etc/l2vip`.
#[test]
fn the_debian_package_installs_starts_reloads_survives_a_reboot_and_is_removed_in_a_vm() {
    if !lab::available(
        "the_debian_package_installs_starts_reloads_survives_a_reboot_and_is_removed_in_a_vm",
    ) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up(1, false);
    let deb = package(&lab);
    let vm = Vm::boot(&lab, 1);

    // apt installs from a file of its own (not from the read-only share).
    vm.ok(&format!("cp {deb} /root/"));
    let name = deb.rsplit('/').next().unwrap_or_default();
    let installed = vm.ok(&format!("cd /root && apt-get install -y -q ./{name} 2>&1"));
    assert!(
        installed.contains("does not fit this host yet"),
        "{installed:?}\n{}",
        vm.ok("dpkg -l l2vip; ls -la /root; echo hello")
    );
    assert_eq!(
        vm.ok("getent passwd l2vip | cut -d: -f7").trim(),
        "/usr/sbin/nologin"
    );
    // Its peer: n1 of the namespace lab, which starts later.
    let peer = ["192.0.2.11".to_string()];
    put(&vm, "/etc/l2vip/config.json", &config(1, &peer, 1000, ""));
    put(&vm, "/etc/l2vip/key", KEY);
    vm.ok("chown l2vip /etc/l2vip/key && chmod 600 /etc/l2vip/key");
    vm.ok("systemctl restart l2vip");
    let journal = |vm: &Vm| {
        vm.run_for("journalctl -b -u l2vip --no-pager", vm::AGENT_LIMIT)
            .1
    };
    let (_, active) = vm.run_for("systemctl is-active l2vip", vm::AGENT_LIMIT);
    assert_eq!(active.trim(), "active", "{}", journal(&vm));
    let pid = vm
        .ok("systemctl show -p MainPID --value l2vip")
        .trim()
        .to_string();
    let status = vm.ok(&format!("cat /proc/{pid}/status"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    // CAP_NET_ADMIN (12) and CAP_NET_RAW (13), nothing else.
    assert_eq!(field("CapEff:"), "0000000000003000", "{status}");
    assert_eq!(field("CapPrm:"), "0000000000003000", "{status}");
    assert_eq!(field("CapAmb:"), "0000000000000000", "{status}");
    assert_eq!(vm.ok(&format!("ps -o user= -p {pid}")).trim(), "l2vip");
    // Lease + hold, with slack for an emulated CPU.
    let bound = Duration::from_secs(15);
    assert!(reaches(&lab, VIP4, bound), "{}", journal(&vm));
    assert!(reaches(&lab, VIP6, bound), "{}", journal(&vm));

    // A new service by reload (with a MAC of its own: a macvlan), and one
    // added at runtime.
    let extra = r#", {"name": "api", "ip": "192.0.2.231", "interface": "eth0", "mac": "virtual"}"#;
    put(
        &vm,
        "/etc/l2vip/config.json",
        &config(1, &peer, 1000, extra),
    );
    vm.ok("systemctl reload l2vip");
    assert!(reaches(&lab, "192.0.2.231", bound), "{}", journal(&vm));
    vm.ok("l2vip add dns 192.0.2.232 eth0");
    assert!(reaches(&lab, "192.0.2.232", bound), "{}", journal(&vm));

    // n1 joins with the same services, ranked below the VM: the VM keeps
    // its VIPs.
    let key_file = lab.dir.join("key");
    std::fs::write(&key_file, KEY).expect("key");
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("key mode");
    let mut n1 = lab.daemon(
        1,
        &format!(
            r#"{{"node": "n1", "priority": 100,
  "heartbeat": {{"interval_ms": 200, "lease_ms": 1000, "peers": ["{}"], "key_file": "{}"}},
  "services": [{{"name": "web", "ip": "{VIP4}", "interface": "eth0"}},
               {{"name": "web6", "ip": "{VIP6}", "interface": "eth0", "mac": "virtual"}}{extra},
               {{"name": "dns", "ip": "192.0.2.232", "interface": "eth0"}}]}}"#,
            address(1),
            key_file.display()
        ),
    );
    let n1_alive = || {
        let status = vm.ok("l2vip status");
        status
            .lines()
            .any(|l| l.starts_with("n1 ") && l.contains("alive"))
    };
    assert!(Lab::wait_until(bound, n1_alive), "{}", journal(&vm));
    let vm_mac = "02:4c:32:00:10:01".to_string();
    let n1_mac = lab::node_mac(1);
    assert_eq!(answerers(&lab), BTreeSet::from([vm_mac.clone()]));

    // A reboot: n1 takes the VIPs over, and the VM comes back with its
    // service and its state file.
    vm.run_for("systemctl reboot", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        Lab::wait_until(bound, || answerers(&lab)
            == BTreeSet::from([n1_mac.clone()])),
        "{:?}",
        answerers(&lab)
    );
    assert!(vm.wait_up(vm::BOOT_LIMIT), "{}", vm.console_text());
    assert_eq!(vm.ok("systemctl is-active l2vip").trim(), "active");
    assert!(vm.ok("cat /etc/l2vip/runtime.json").contains("192.0.2.232"));
    let services = vm.ok("l2vip services");
    assert!(services.contains("dns"), "{services}");
    // Sticky: back, and better ranked, the VM takes nothing from n1 (over
    // several leases).
    assert!(Lab::wait_until(bound, n1_alive), "{}", journal(&vm));
    for _ in 0..4 {
        assert_eq!(answerers(&lab), BTreeSet::from([n1_mac.clone()]));
    }
    let status = vm.ok("l2vip status");
    for name in ["web", "web6", "api", "dns"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default();
        assert!(
            line.contains(" n1 ") && line.contains("standby"),
            "{status}"
        );
    }
    // n1 leaves (SIGTERM): it hands every VIP to the VM.
    n1.stop_with("TERM", Duration::from_secs(5));
    assert!(
        Lab::wait_until(bound, || answerers(&lab)
            == BTreeSet::from([vm_mac.clone()])),
        "{:?}\n{}",
        answerers(&lab),
        journal(&vm)
    );
    for ip in ["192.0.2.231", "192.0.2.232", VIP6] {
        assert!(reaches(&lab, ip, bound), "{ip}\n{}", journal(&vm));
    }

    // Removed: nothing of l2vip's left in the kernel; the user and the
    // configuration stay.
    assert!(vm.ok("ip -o link show type macvlan").contains("l2v"));
    vm.ok("apt-get remove -y -q l2vip 2>&1");
    assert_eq!(vm.ok("ip -o link show type macvlan").trim(), "");
    assert_eq!(vm.ok("ip route show table local proto 76").trim(), "");
    assert_eq!(vm.ok("ip -6 route show table local proto 76").trim(), "");
    assert_eq!(vm.ok("sysctl -n net.ipv4.conf.all.arp_ignore").trim(), "0");
    assert_eq!(
        vm.ok("sysctl -n net.ipv4.conf.all.arp_announce").trim(),
        "0"
    );
    assert!(!reaches(&lab, VIP4, Duration::from_secs(2)));
    vm.ok("getent passwd l2vip && test -f /etc/l2vip/config.json && test -f /etc/l2vip/key");
    // Purged: gone.
    vm.ok("apt-get purge -y -q l2vip 2>&1");
    vm.ok("! getent passwd l2vip && ! getent group l2vip && test ! -e /etc/l2vip");
}

/// Installs the package in `vm` with `config` and the cluster's key, and
/// starts it.
fn install(vm: &Vm, deb: &str, config: &str) {
    let name = deb.rsplit('/').next().unwrap_or_default();
    vm.ok(&format!(
        "cp {deb} /root/ && cd /root && apt-get install -y -q ./{name} 2>&1"
    ));
    put(vm, "/etc/l2vip/config.json", config);
    put(vm, "/etc/l2vip/key", KEY);
    vm.ok("chown l2vip /etc/l2vip/key && chmod 600 /etc/l2vip/key && systemctl restart l2vip");
}

/// VMs 1, 2 and 3, booted side by side.
fn boot_three(lab: &Lab) -> Vec<Vm> {
    std::thread::scope(|scope| {
        let booting: Vec<_> = (1..=3)
            .map(|i| scope.spawn(move || Vm::boot(lab, i)))
            .collect();
        booting
            .into_iter()
            .map(|b| b.join().expect("a VM boots"))
            .collect()
    })
}

/// `deb` installed and started in each of `vms`, a cluster of them all
/// serving VIP4, VIP6 and `extra` services.
fn install_cluster(vms: &[Vm], deb: &str, lease_ms: u32, extra: &str) {
    for vm in vms {
        let others: Vec<String> = vms
            .iter()
            .filter(|other| other.index != vm.index)
            .map(|other| address(other.index))
            .collect();
        install(vm, deb, &config(vm.index, &others, lease_ms, extra));
    }
}

/// Which VMs answer ARP for VIP4, as the client sees it (MACs).
fn answerers(lab: &Lab) -> BTreeSet<String> {
    lab::arp_answerers(lab, VIP4)
}

/// A real power loss: three VMs, the owner's qemu killed mid-flight (no
/// signal reaches the daemon). The client, pinging every 10 ms, gets its
/// answers back from another VM within lease + interval + slack: 1,000 +
/// 200 ms, and 2 s for three emulated CPUs sharing two host cores.
#[test]
fn a_power_loss_of_the_owner_vm_fails_over_within_the_lease() {
    if !lab::available("a_power_loss_of_the_owner_vm_fails_over_within_the_lease") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up(1, false);
    let deb = package(&lab);
    let mut vms = boot_three(&lab);
    install_cluster(&vms, &deb, 1000, "");
    // vm1 ranks best and owns the VIPs once every node has started.
    let owner = "02:4c:32:00:10:01".to_string();
    assert!(
        Lab::wait_until(Duration::from_secs(30), || answerers(&lab)
            == BTreeSet::from([owner.clone()])),
        "{:?}",
        answerers(&lab)
    );
    let ping = lab::start_ping(&lab, "c", VIP4, 15);
    std::thread::sleep(Duration::from_secs(3));
    vms[0].power_off();
    let (gap, replies) = lab::longest_gap(ping);
    eprintln!(
        "power loss of the owner VM ({}): longest gap {} ms, {replies} replies",
        vms[1].accel,
        gap.as_millis()
    );
    assert!(gap <= FAILOVER_BOUND, "gap {gap:?}");
    assert_eq!(answerers(&lab).len(), 1, "{:?}", answerers(&lab));
    assert!(!answerers(&lab).contains(&owner));
}

/// The VLAN's addresses: VM `index` on VLAN 10 (198.51.100.0/24 and
/// 2001:db8:10::/64), its interface `eth0.10`.
fn on_vlan(vm: &Vm) {
    let host = 20 + vm.index;
    vm.ok(&format!(
        "ip link add link eth0 name eth0.10 type vlan id 10 && \
         ip addr add 198.51.100.{host}/24 dev eth0.10 && \
         ip -6 addr add 2001:db8:10::{host}/64 dev eth0.10 nodad && \
         ip link set eth0.10 up"
    ));
}

/// The MACs that answer ARP for `ip` on `interface` of the client VM.
fn vlan_arp(client: &Vm, interface: &str, source: &str, ip: &str) -> BTreeSet<String> {
    let (_, out) = client.run_for(
        &format!("arping -c 2 -w 3 -I {interface} -s {source} {ip}"),
        vm::AGENT_LIMIT,
    );
    out.lines()
        .filter(|l| l.contains(&format!("reply from {ip} [")))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .map(str::to_lowercase)
        .collect()
}

/// The MACs that answer a Neighbor Solicitation for `ip` on `interface` of
/// the client VM.
fn vlan_nd(client: &Vm, interface: &str, ip: &str) -> BTreeSet<String> {
    let (_, out) = client.run_for(
        &format!("ndisc6 -m -r 2 -w 500 {ip} {interface}"),
        vm::AGENT_LIMIT,
    );
    out.lines()
        .filter_map(|l| l.strip_prefix("Target link-layer address: "))
        .map(|mac| mac.trim().to_lowercase())
        .collect()
}

/// The MAC `status` on `vm` shows for service `name`.
fn status_mac(vm: &Vm, name: &str) -> String {
    let status = vm.ok("l2vip status");
    status
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_default()
        .to_string()
}

/// VIPs on an 802.1Q VLAN: vm1 and vm2 serve three VIPs on `eth0.10`
/// (IPv4 with the node's MAC, IPv4 and IPv6 with MACs of their own) beside
/// VIP4 on the untagged `eth0`; vm3 is the client, on VLAN 10 through the
/// lab's bridge (which forwards the tags). Each VIP is answered on the
/// VLAN only, with the right MAC, and reached; when the owner VM loses its
/// power, vm2 answers on the VLAN within lease + interval + slack (as in
/// the power-loss test), with the virtual MACs unchanged.
#[test]
fn vips_on_an_8021q_vlan_are_answered_on_the_vlan_only_and_fail_over() {
    if !lab::available("vips_on_an_8021q_vlan_are_answered_on_the_vlan_only_and_fail_over") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up(1, false);
    let deb = package(&lab);
    let mut vms = boot_three(&lab);
    let client = vms.pop().expect("vm3");
    for vm in vms.iter().chain([&client]) {
        on_vlan(vm);
    }
    let extra = r#",
    {"name": "lan", "ip": "198.51.100.230", "interface": "eth0.10"},
    {"name": "lanv", "ip": "198.51.100.231", "interface": "eth0.10", "mac": "virtual"},
    {"name": "lan6", "ip": "2001:db8:10::230", "interface": "eth0.10", "mac": "virtual"}"#;
    install_cluster(&vms, &deb, 1000, extra);
    let vm1 = "02:4c:32:00:10:01".to_string();
    let owned = || vlan_arp(&client, "eth0.10", "198.51.100.23", "198.51.100.230");
    assert!(
        Lab::wait_until(Duration::from_secs(30), || owned()
            == BTreeSet::from([vm1.clone()])),
        "{:?}",
        owned()
    );
    let lanv = status_mac(&vms[0], "lanv");
    let lan6 = status_mac(&vms[0], "lan6");
    assert!(
        lanv.len() == 17 && lan6.len() == 17 && lanv != lan6,
        "{lanv} {lan6}"
    );
    assert_eq!(
        vlan_arp(&client, "eth0.10", "198.51.100.23", "198.51.100.231"),
        BTreeSet::from([lanv.clone()])
    );
    assert_eq!(
        vlan_nd(&client, "eth0.10", "2001:db8:10::230"),
        BTreeSet::from([lan6.clone()])
    );
    // On the VLAN only: nothing answers for them untagged, and the
    // untagged VIP is not answered on the VLAN.
    assert_eq!(
        vlan_arp(&client, "eth0", "192.0.2.23", "198.51.100.230"),
        BTreeSet::new()
    );
    assert_eq!(
        vlan_arp(&client, "eth0", "192.0.2.23", "198.51.100.231"),
        BTreeSet::new()
    );
    assert_eq!(
        vlan_nd(&client, "eth0", "2001:db8:10::230"),
        BTreeSet::new()
    );
    assert_eq!(
        vlan_arp(&client, "eth0.10", "198.51.100.23", VIP4),
        BTreeSet::new()
    );
    assert_eq!(
        vlan_arp(&client, "eth0", "192.0.2.23", VIP4),
        BTreeSet::from([vm1.clone()])
    );
    for ip in ["198.51.100.230", "198.51.100.231", "2001:db8:10::230"] {
        client.ok(&format!("ping -c 1 -W 2 {ip}"));
    }

    // The owner's power goes: vm2 answers on the VLAN.
    client.ok("date +%s.%N > /tmp/ping.start && \
         (setsid ping -D -n -i 0.01 -W 1 -c 1500 198.51.100.231 \
            >/tmp/ping.out 2>&1 </dev/null & echo $! > /tmp/ping.pid)");
    // What crosses the bridge from here on: ARP and NDP, tagged or not.
    let capture = lab.capture("br", "br0", "arp or icmp6 or (vlan 10 and (arp or icmp6))");
    std::thread::sleep(Duration::from_secs(3));
    vms[0].power_off();
    std::thread::sleep(Duration::from_secs(6));
    let out = client.ok(
        "kill -INT $(cat /tmp/ping.pid); sleep 1.5; date +%s.%N; cat /tmp/ping.start /tmp/ping.out",
    );
    let mut lines = out.lines();
    let ended: f64 = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0.0);
    let started: f64 = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0.0);
    let (gap, replies) = lab::gap_in(&out, started, ended);
    eprintln!(
        "power loss of the owner VM on VLAN 10 ({}): longest gap {} ms, {replies} replies",
        vms[1].accel,
        gap.as_millis()
    );
    assert!(
        replies > 100 && gap <= FAILOVER_BOUND,
        "gap {gap:?}, {replies} replies:\n{out}"
    );
    let vm2 = "02:4c:32:00:10:02".to_string();
    assert_eq!(
        vlan_arp(&client, "eth0.10", "198.51.100.23", "198.51.100.230"),
        BTreeSet::from([vm2])
    );
    assert_eq!(
        vlan_arp(&client, "eth0.10", "198.51.100.23", "198.51.100.231"),
        BTreeSet::from([lanv])
    );
    assert_eq!(
        vlan_nd(&client, "eth0.10", "2001:db8:10::230"),
        BTreeSet::from([lan6])
    );
    client.ok("ping -c 1 -W 2 2001:db8:10::230");
    // Every frame about a VLAN VIP (answers, vm2's gratuitous ARPs and
    // unsolicited NAs) carried tag 10; none about VIP4 did.
    let text = capture.stop();
    let mut frames: Vec<String> = Vec::new();
    for line in text.lines() {
        match frames.last_mut() {
            Some(frame) if !line.starts_with(|c: char| c.is_ascii_digit()) => frame.push_str(line),
            _ => frames.push(line.to_string()),
        }
    }
    let about = |frame: &String, ips: &[&str]| ips.iter().any(|ip| frame.contains(ip));
    let vlan_vips = ["198.51.100.230", "198.51.100.231", "2001:db8:10::230"];
    let gratuitous = frames
        .iter()
        .filter(|f| f.contains("Request who-has 198.51.100.230 tell 198.51.100.230"))
        .count();
    assert!(gratuitous > 0, "{text}");
    for frame in &frames {
        if about(frame, &vlan_vips) {
            assert!(frame.contains("vlan 10,"), "untagged: {frame}");
        }
        if about(frame, &[&format!("{VIP4} ")]) {
            assert!(!frame.contains("vlan"), "tagged: {frame}");
        }
    }
}

/// The release this one must work beside (docs/compatibility.md): the
/// commit its binary is built from, and the version it is packaged as.
const PREVIOUS: (&str, &str) = ("1067c1decd93e24f3ae398ad29aeaf02bc6d06d2", "0.1.0");

/// The previous release's package, in the lab's share.
fn previous_package(lab: &Lab) -> String {
    let out = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vm/previous"))
        .arg(PREVIOUS.0)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("tests/vm/previous");
    assert!(out.status.success(), "the previous release did not build");
    let binary = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let share = lab.dir.join("share");
    let out =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cross/debian/build"))
            .args(["--binary", &binary, "--version", PREVIOUS.1, "--out"])
            .arg(&share)
            .output()
            .expect("cross/debian/build");
    assert!(out.status.success(), "{out:?}");
    let deb = String::from_utf8_lossy(&out.stdout).trim().to_string();
    format!("/mnt/host/{}", deb.rsplit('/').next().unwrap_or_default())
}

/// A rolling upgrade: three VMs on the previous release, a client pinging
/// the VIP every 10 ms, each node upgraded in turn with `apt install`
/// (its old daemon hands over on SIGTERM): never two MACs answering for the
/// VIP, and the longest gap a hand-over's. Then the same back (a downgrade,
/// which apt does only when told to).
#[test]
fn a_rolling_upgrade_and_downgrade_of_three_vms_never_has_two_owners() {
    // A lease long enough that a failover (a lease and more) is never
    // taken for a hand-over slowed down by emulated CPUs running apt.
    const LEASE_MS: u32 = 3000;
    if !lab::available("a_rolling_upgrade_and_downgrade_of_three_vms_never_has_two_owners") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up(1, false);
    let new = package(&lab);
    let old = previous_package(&lab);
    let vms = boot_three(&lab);
    install_cluster(&vms, &old, LEASE_MS, "");
    for vm in &vms {
        let status = vm.ok("dpkg -s l2vip");
        assert!(
            status.contains(&format!("Version: {}", PREVIOUS.1)),
            "{status}"
        );
    }
    assert!(
        Lab::wait_until(Duration::from_secs(30), || answerers(&lab).len() == 1),
        "{:?}",
        answerers(&lab)
    );
    for (to, deb, allow) in [
        ("upgrade", &new, ""),
        ("downgrade", &old, " --allow-downgrades"),
    ] {
        let name = deb.rsplit('/').next().unwrap_or_default().to_string();
        for vm in &vms {
            vm.ok(&format!("cp {deb} /root/"));
        }
        let ping = lab::start_ping(&lab, "c", VIP4, 600);
        let mut seen = BTreeSet::new();
        for vm in &vms {
            if allow.is_empty() {
                // apt itself never downgrades unasked.
            } else {
                let (status, out) = vm.run_for(
                    &format!("cd /root && apt-get install -y -q ./{name} 2>&1"),
                    vm::AGENT_LIMIT,
                );
                assert_ne!(status, 0, "a downgrade unasked: {out}");
                assert!(out.contains("downgrade"), "{out}");
            }
            vm.ok(&format!(
                "cd /root && apt-get install -y -q{allow} ./{name} 2>&1"
            ));
            assert_eq!(vm.ok("systemctl is-active l2vip").trim(), "active");
            // Every node's answer for a while after each step: one MAC.
            for _ in 0..3 {
                let now = answerers(&lab);
                assert!(now.len() <= 1, "{to}: two owners {now:?}");
                seen.extend(now);
            }
        }
        lab::signal(ping.pid(), "INT");
        let (gap, replies) = lab::longest_gap(ping);
        eprintln!(
            "rolling {to} of 3 VMs ({}): longest gap {} ms, {replies} replies, owners {seen:?}",
            vms[0].accel,
            gap.as_millis()
        );
        // Hand-overs, not failovers (which take a lease and more).
        let states: Vec<String> = vms
            .iter()
            .map(|vm| {
                vm.run_for(
                    "l2vip status; journalctl -b -u l2vip -o short-precise --no-pager | grep -F -e 'l2vip: ' -e systemd",
                    vm::AGENT_LIMIT,
                )
                .1
            })
            .collect();
        assert!(
            gap < Duration::from_millis(u64::from(LEASE_MS) / 2),
            "{to}: gap {gap:?}\n{}",
            states.join("\n----\n")
        );
    }
}
