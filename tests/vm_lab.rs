//! l2vip on virtual machines as users run it: Debian 12 with systemd and
//! its own kernel (see `tests/vm/mod.rs`), l2vip installed from its Debian
//! package, the lab's client namespace on the same bridge.

#[path = "lab/mod.rs"]
mod lab;
#[path = "vm/mod.rs"]
mod vm;

use std::time::Duration;

use lab::Lab;
use vm::Vm;

/// One test at a time: three emulated CPUs already share two host cores,
/// and the failover bounds assume nothing else runs beside them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const VIP4: &str = "192.0.2.230";
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

/// A configuration for VM `index` (peers: the other VMs' addresses).
fn config(index: usize, peers: &[usize], extra_service: &str) -> String {
    let peers: Vec<String> = peers
        .iter()
        .map(|i| format!("\"192.0.2.{}\"", 20 + i))
        .collect();
    format!(
        r#"{{"node": "vm{index}", "priority": {},
  "heartbeat": {{"interval_ms": 200, "lease_ms": 1000, "peers": [{}], "key_file": "/etc/l2vip/key"}},
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
/// reload` applies a new service; after a reboot the service is back and
/// its state file kept what `add` added; `apt remove` leaves no macvlan,
/// route or ARP setting behind; `apt purge` removes the user and
/// `/etc/l2vip`.
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
    put(&vm, "/etc/l2vip/config.json", &config(1, &[2], ""));
    vm.ok("head -c 32 /dev/urandom | base64 > /etc/l2vip/key && chown l2vip /etc/l2vip/key && chmod 600 /etc/l2vip/key");
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

    // A new service by reload.
    let extra = r#", {"name": "api", "ip": "192.0.2.231", "interface": "eth0"}"#;
    put(&vm, "/etc/l2vip/config.json", &config(1, &[2], extra));
    vm.ok("systemctl reload l2vip");
    assert!(reaches(&lab, "192.0.2.231", bound), "{}", journal(&vm));

    // A service added at runtime, then a reboot.
    vm.ok("l2vip add dns 192.0.2.232 eth0");
    vm.run_for("systemctl reboot", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(3));
    assert!(vm.wait_up(vm::BOOT_LIMIT), "{}", vm.console_text());
    assert_eq!(vm.ok("systemctl is-active l2vip").trim(), "active");
    assert!(vm.ok("cat /etc/l2vip/runtime.json").contains("192.0.2.232"));
    assert!(reaches(&lab, "192.0.2.232", bound), "{}", journal(&vm));
    let services = vm.ok("l2vip services");
    assert!(services.contains("dns"), "{services}");

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

/// Installs the package in `vm` with `config` and the cluster's `key`,
/// and starts it.
fn install(vm: &Vm, deb: &str, config: &str, key: &str) {
    let name = deb.rsplit('/').next().unwrap_or_default();
    vm.ok(&format!(
        "cp {deb} /root/ && cd /root && apt-get install -y -q ./{name} 2>&1"
    ));
    put(vm, "/etc/l2vip/config.json", config);
    put(vm, "/etc/l2vip/key", key);
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

/// `deb` installed and started in each of `vms`, a cluster of them all.
fn install_cluster(vms: &[Vm], deb: &str, key: &str) {
    for vm in vms {
        let others: Vec<usize> = (1..=vms.len()).filter(|&j| j != vm.index).collect();
        install(vm, deb, &config(vm.index, &others, ""), key);
    }
}

/// Which VMs answer ARP for VIP4, as the client sees it (MACs).
fn answerers(lab: &Lab) -> std::collections::BTreeSet<String> {
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
    let key = "vm-lab-secret-0123456789abcdef";
    let mut vms = boot_three(&lab);
    install_cluster(&vms, &deb, key);
    // vm1 ranks best and owns the VIPs once every node has started.
    let owner = "02:4c:32:00:10:01".to_string();
    assert!(
        Lab::wait_until(Duration::from_secs(30), || answerers(&lab)
            == std::collections::BTreeSet::from([owner.clone()])),
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
    assert!(
        gap <= Duration::from_millis(1000 + 200 + 2000),
        "gap {gap:?}"
    );
    assert_eq!(answerers(&lab).len(), 1, "{:?}", answerers(&lab));
    assert!(!answerers(&lab).contains(&owner));
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
    if !lab::available("a_rolling_upgrade_and_downgrade_of_three_vms_never_has_two_owners") {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up(1, false);
    let new = package(&lab);
    let old = previous_package(&lab);
    let key = "vm-lab-secret-0123456789abcdef";
    let vms = boot_three(&lab);
    install_cluster(&vms, &old, key);
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
        let mut seen = std::collections::BTreeSet::new();
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
        // Hand-overs, not failovers: well under the lease.
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
            gap < Duration::from_millis(1000),
            "{to}: gap {gap:?}\n{}",
            states.join("\n----\n")
        );
    }
}
