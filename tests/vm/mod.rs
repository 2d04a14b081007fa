//! Virtual machines for the lab: Debian 12 with systemd and its own kernel
//! (`tests/vm/image`, cached), booted with qemu in the lab's bridge
//! namespace, each with a virtio NIC on a tap in the bridge (addresses
//! 192.0.2.(20+I)/24 and 2001:db8::(20+I)/64, MAC 02:4c:32:00:10:0I, named
//! eth0), the lab directory's `share/` mounted read-only at `/mnt/host`, the
//! serial console in `vmI.console`, and an agent that runs commands
//! (`Vm::run`). KVM when it boots here, else TCG: the first boot tries KVM
//! (where /dev/kvm exists) and the answer is kept in `target/vm/accel`.
//! Every qemu runs in the lab's namespace, so the lab's teardown ends it by
//! PID too; `Drop` kills it first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::Lab;

/// How long a command may take.
pub const AGENT_LIMIT: Duration = Duration::from_secs(120);

/// A boot under TCG takes about 25 s on a loaded 2-core host; KVM less.
pub const BOOT_LIMIT: Duration = Duration::from_secs(150);

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm")
}

fn cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/vm")
}

/// The cached image's directory (built on first use: about a minute).
pub fn image() -> PathBuf {
    static IMAGE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    IMAGE.get_or_init(build_image).clone()
}

fn build_image() -> PathBuf {
    let out = Command::new(here().join("image"))
        .arg(cache())
        .stderr(Stdio::inherit())
        .output()
        .expect("tests/vm/image");
    assert!(out.status.success(), "tests/vm/image failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub struct Vm {
    child: Option<Child>,
    pub index: usize,
    agent: PathBuf,
    pub console: PathBuf,
    /// "kvm" or "tcg".
    pub accel: String,
}

impl Vm {
    /// Boots VM `index` in `lab` and waits for its agent; configures its
    /// addresses with systemd-networkd (kept across reboots).
    pub fn boot(lab: &Lab, index: usize) -> Vm {
        let image = image();
        let accel_file = cache().join("accel");
        let known = std::fs::read_to_string(&accel_file).ok();
        let first = match known.as_deref().map(str::trim) {
            Some(accel) => accel.to_string(),
            None if Path::new("/dev/kvm").exists() => "kvm".to_string(),
            None => "tcg".to_string(),
        };
        let mut vm = Vm::start(lab, index, &image, &first);
        let limit = if known.is_none() && first == "kvm" {
            Duration::from_secs(60)
        } else {
            BOOT_LIMIT
        };
        if !vm.wait_up(limit) {
            assert!(
                known.is_none() && first == "kvm",
                "vm{index} did not boot with {first} within {limit:?}; console:\n{}",
                vm.console_text()
            );
            eprintln!("vm{index}: no answer with KVM within {limit:?}; using TCG");
            drop(vm);
            let _ = std::fs::write(&accel_file, "tcg\n");
            vm = Vm::start(lab, index, &image, "tcg");
            assert!(
                vm.wait_up(BOOT_LIMIT),
                "vm{index} did not boot with tcg; console:\n{}",
                vm.console_text()
            );
        } else if known.is_none() {
            let _ = std::fs::write(&accel_file, format!("{first}\n"));
        }
        eprintln!("vm{index}: booted with {}", vm.accel);
        let network = format!(
            "[Match]\nName=eth0\n\n[Network]\nAddress=192.0.2.{a}/24\nAddress=2001:db8::{a}/64\n\
             IPv6AcceptRA=no\nLinkLocalAddressing=ipv6\n",
            a = 20 + index
        );
        vm.ok(&format!(
            "printf '{network}' > /etc/systemd/network/10-eth0.network && \
             sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 && \
             systemctl enable --now systemd-networkd >/dev/null 2>&1 && \
             for i in $(seq 50); do ip -4 addr show dev eth0 | grep -q 192.0.2 && exit 0; sleep 0.2; done; exit 1"
        ));
        vm
    }

    fn start(lab: &Lab, index: usize, image: &Path, accel: &str) -> Vm {
        let share = lab.dir.join("share");
        std::fs::create_dir_all(&share).expect("share directory");
        let disk = lab.dir.join(format!("vm{index}.qcow2"));
        let _ = std::fs::remove_file(&disk);
        let made = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(image.join("image.ext4"))
            .arg(&disk)
            .status()
            .expect("qemu-img");
        assert!(made.success());
        let agent = lab.dir.join(format!("vm{index}.agent"));
        let _ = std::fs::remove_file(&agent);
        let console = lab.dir.join(format!("vm{index}.console"));
        let tap = format!("vm{index}");
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.ns("br"), "qemu-system-x86_64"])
            .args(["-accel", accel, "-m", "512", "-smp", "1", "-nographic"])
            .args(["-monitor", "none", "-display", "none"])
            .arg("-kernel")
            .arg(image.join("vmlinuz"))
            .arg("-initrd")
            .arg(image.join("initrd.img"))
            .args([
                "-append",
                "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet",
            ])
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=qcow2", disk.display()))
            .arg("-netdev")
            .arg(format!("tap,id=net0,ifname={tap},script=no,downscript=no"))
            .arg("-device")
            .arg(format!(
                "virtio-net-pci,netdev=net0,mac=02:4c:32:00:10:{index:02x}"
            ))
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=host,security_model=none,readonly=on",
                share.display()
            ))
            .args(["-device", "virtio-serial", "-chardev"])
            .arg(format!(
                "socket,id=agent,path={},server=on,wait=off",
                agent.display()
            ))
            .args(["-device", "virtserialport,chardev=agent,name=l2vip.agent"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64");
        let vm = Vm {
            child: Some(child),
            index,
            agent,
            console,
            accel: accel.to_string(),
        };
        // The tap appears when qemu opens it: into the bridge.
        let up = Lab::wait_until(Duration::from_secs(10), || {
            lab.run("br", &["ip", "link", "set", &tap, "master", "br0", "up"])
                .status
                .success()
        });
        assert!(up, "vm{index}: no tap {tap}");
        vm
    }

    /// Waits until the agent answers and systemd has finished starting.
    pub fn wait_up(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            let (status, out) = self.run_for("systemctl is-system-running", Duration::from_secs(5));
            if status != 255 && matches!(out.trim(), "running" | "degraded") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        false
    }

    /// Runs `command` (bash) in the VM: its status (255: no answer within
    /// `limit`) and output.
    pub fn run_for(&self, command: &str, limit: Duration) -> (i32, String) {
        let out = Command::new(here().join("agent.py"))
            .arg(&self.agent)
            .arg(limit.as_secs_f64().to_string())
            .arg(command)
            .output()
            .expect("agent.py");
        (
            out.status.code().unwrap_or(255),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }

    /// Runs `command` and returns its output; fails the test if it fails.
    pub fn ok(&self, command: &str) -> String {
        let (status, out) = self.run_for(command, AGENT_LIMIT);
        if status == 255 {
            let console = self.console_text();
            let tail = console.len().saturating_sub(4000);
            panic!(
                "vm{}: {command}: no answer within {AGENT_LIMIT:?}; console:\n{}",
                self.index,
                console.get(tail..).unwrap_or(&console)
            );
        }
        assert_eq!(status, 0, "vm{}: {command}: {out}", self.index);
        out
    }

    /// The serial console so far.
    pub fn console_text(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// The VM is gone at once, mid-flight (its qemu killed).
    pub fn power_off(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.power_off();
    }
}
