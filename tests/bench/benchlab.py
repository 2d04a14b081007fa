"""What the benchmarks share: paths, the lab, waiting, keepalived's
configuration, stopping processes, reading their memory."""

import os
import re
import shutil
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_SH = os.path.join(ROOT, "tests", "lab", "lab.sh")
L2VIP = os.path.join(ROOT, "target", "release", "l2vip")


def run(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


class Lab:
    """Nodes (two unless told) and a client (tests/lab/lab.sh), and a
    scratch directory."""

    def __init__(self, prefix, nodes=2):
        self.name = f"{prefix}{os.getpid() % 10000}"
        self.dir = tempfile.mkdtemp(prefix=f"l2vip-bench-{self.name}-")
        run(LAB_SH, "up", self.name, str(nodes))

    def ns(self, host):
        return f"{self.name}-{host}"

    def down(self):
        run(LAB_SH, "down", self.name, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(probe, seconds):
    """Polls `probe` until it holds; fails the benchmark after `seconds`."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if probe():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for the cluster to settle")


def need(group):
    """Installs what `group` of tests/need runs, or exits with its one-line
    reasons (the one list of tools and Debian packages)."""
    done = subprocess.run([os.path.join(ROOT, "tests", "need"), group])
    if done.returncode != 0:
        raise SystemExit(done.returncode)


def build_release():
    # Always: cargo rebuilds only what changed, and a stale binary would
    # measure old code.
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)


def keepalived_config(node, version, advert, instances, use_vmac=False):
    """keepalived.conf for node `node` (priority 250 - 50 x node): one
    VRRP instance per (name, router id, addresses with prefix); with
    `use_vmac`, each instance on a macvlan with VRRP's virtual MAC."""
    blocks = []
    for name, rid, addresses in instances:
        if not addresses:
            continue
        listed = "\n        ".join(addresses)
        vmac = "\n    use_vmac" if use_vmac else ""
        blocks.append(
            f"""vrrp_instance {name} {{
    state BACKUP
    interface eth0{vmac}
    virtual_router_id {rid}
    priority {250 - 50 * node}
    advert_int {advert}
    virtual_ipaddress {{
        {listed}
    }}
}}"""
        )
    return (
        f"""global_defs {{
    router_id n{node}
    vrrp_version {version}
    vrrp_garp_master_delay 0
}}
"""
        + "\n".join(blocks)
        + "\n"
    )


def keepalived(lab, node, conf):
    """Starts keepalived (VRRP only, foreground) in node `node`."""
    path = os.path.join(lab.dir, f"k{node}.conf")
    with open(path, "w") as f:
        f.write(conf)
    log = open(os.path.join(lab.dir, f"k{node}.log"), "w")
    return subprocess.Popen(
        ["ip", "netns", "exec", lab.ns(f"n{node}"), "keepalived", "-n", "-l", "-D", "-P", "-f", path,
         "-p", f"{lab.dir}/k{node}.pid", "-r", f"{lab.dir}/k{node}-vrrp.pid"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(procs):
    """SIGTERM, then SIGKILL after 10 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tree(pid):
    """`pid` and its descendants."""
    pids = [pid]
    for p in list(pids):
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                pids += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return pids


def rss_kib(pid):
    """VmRSS of `pid` and its descendants, KiB."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            pass
    return total


def cpu_seconds(pid):
    """CPU time of `pid`'s processes and all their threads, from the
    scheduler's nanosecond counters (utime/stime tick in 10 ms steps)."""
    total = 0
    for p in tree(pid):
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9
