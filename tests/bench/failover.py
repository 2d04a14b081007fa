#!/usr/bin/env python3
"""Failover as the client sees it: l2vip against keepalived (VRRP), same lab,
same faults, same probe, in one run.

    sudo tests/bench/failover.py [--short] [--runs N] [--only l2vip|keepalived]
                                 [--scenarios NAME,...] [--timers NAME,...]

Two nodes (n1 owns the VIP, n2 stands by) and a client in a lab of network
namespaces (tests/lab/lab.sh). The client's probe (probe.py) asks who has
the VIP every 10 ms; a fault hits n1 at a random point of the heartbeat
(advertisement) cycle; the figure is the time from the fault to the first
answer from n2's MAC. Each cell is min / median / max over the runs.

Scenarios: `node-loss` (n1's link goes down), `sigkill`, `sigterm`,
`drain` (l2vip only: keepalived has no such command), `node-loss-v6` (the
IPv6 VIP).

A second table (unless --no-ignoring-client): a client that ignores
gratuitous ARP and unsolicited NA (nftables drops them in its namespace)
pings the VIP every 10 ms while n1's link goes down; the figure is the time
from the fault to its first echo reply. l2vip with "mac": "interface" and
"virtual", keepalived without and with use_vmac (VRRP's virtual MAC on a
macvlan); IPv4 and IPv6, tuned timers, 3 runs (an entry that only expires
in the client's cache takes up to a minute). Timers: `default` (l2vip 1 s heartbeats, 10 s lease; keepalived
VRRPv2, 1 s adverts), `tuned` (100 ms / 300 ms; VRRPv3 0.1 s adverts),
`aggressive` (20 ms / 60 ms; VRRPv3 0.02 s adverts). --short runs 3 runs
of the tuned timers only, for a CI-sized check.
Prints a markdown table; needs root, l2vip's release binary (built if
missing) and keepalived (Debian's package; skipped with a note if absent).
"""

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time

from benchlab import (
    L2VIP,
    ROOT,
    Lab,
    build_release,
    keepalived,
    keepalived_config,
    need,
    run,
    stop,
    wait_for,
)

PROBE = os.path.join(ROOT, "tests", "bench", "probe.py")
VIP4, VIP6 = "192.0.2.200", "2001:db8::200"
MAC = {1: "02:4c:32:00:00:01", 2: "02:4c:32:00:00:02"}

# name: (l2vip interval ms, l2vip lease ms, keepalived VRRP version, advert s)
TIMERS = {
    "default": (1000, 10000, 2, 1),
    "tuned": (100, 300, 3, 0.1),
    "aggressive": (20, 60, 3, 0.02),
}
SCENARIOS = ["node-loss", "sigkill", "sigterm", "drain", "node-loss-v6"]


class L2vip:
    name = "l2vip"

    def __init__(self, lab, timers, mac="interface"):
        self.lab, self.timers, self.mac = lab, timers, mac
        interval, lease, _, _ = TIMERS[timers]
        self.interval = interval / 1000
        self.lease = lease / 1000
        self.procs = {}

    def describe(self):
        interval, lease, _, _ = TIMERS[self.timers]
        return f"{interval} ms / {lease} ms"

    def start(self):
        interval, lease, _, _ = TIMERS[self.timers]
        for i in (1, 2):
            config = os.path.join(self.lab.dir, f"n{i}.json")
            with open(config, "w") as f:
                f.write(
                    f"""{{"node": "n{i}", "priority": {250 - 50 * i}, "mac": "{self.mac}",
 "heartbeat": {{"interval_ms": {interval}, "lease_ms": {lease}, "peers": ["192.0.2.1{3 - i}"], "insecure": true}},
 "control": {{"socket": "{self.lab.dir}/n{i}.sock"}}, "state_file": null,
 "services": [{{"name": "web", "ip": "{VIP4}", "interface": "eth0"}},
              {{"name": "web6", "ip": "{VIP6}", "interface": "eth0"}}]}}"""
                )
            log = open(os.path.join(self.lab.dir, f"n{i}.log"), "w")
            self.procs[i] = subprocess.Popen(
                ["ip", "netns", "exec", self.lab.ns(f"n{i}"), L2VIP, "daemon", "-c", config],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            if i == 1:
                # n1 first: it owns the VIPs once its start-up hold is over.
                wait_for(lambda: "acquired web6" in read(log.name), 15)
        # n2 is a candidate once its own start-up hold is over.
        wait_for(self.n2_ready, 15)

    def n2_ready(self):
        out = run(L2VIP, "status", "--json", "--socket", f"{self.lab.dir}/n1.sock", check=False)
        try:
            peers = json.loads(out.stdout)["data"]["peers"]
        except (ValueError, KeyError, TypeError):
            return False
        return any(p["node"] == "n2" and p["alive"] and not p["joining"] for p in peers)

    def kill(self, node, sig):
        self.procs[node].send_signal(sig)

    def drain(self, node):
        run(L2VIP, "drain", "--socket", f"{self.lab.dir}/n{node}.sock")

    def stop(self):
        stop(self.procs.values())


class Keepalived:
    name = "keepalived"

    def __init__(self, lab, timers, use_vmac=False):
        self.lab, self.timers, self.use_vmac = lab, timers, use_vmac
        _, _, self.version, self.advert = TIMERS[timers]
        self.interval = self.advert
        self.procs = {}

    def describe(self):
        return f"VRRPv{self.version}, {self.advert} s adverts"

    def start(self):
        for i in (1, 2):
            conf = keepalived_config(
                i,
                self.version,
                self.advert,
                [("v4", 51, [f"{VIP4}/24"]), ("v6", 52, [f"{VIP6}/64"])],
                self.use_vmac,
            )
            self.procs[i] = keepalived(self.lab, i, conf)
            if i == 1:
                wait_for(lambda: has_address(self.lab, 1, VIP4) and has_address(self.lab, 1, VIP6), 15)

    def children(self, node):
        pid = self.procs[node].pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def kill(self, node, sig):
        if sig == signal.SIGKILL:
            # A crash: the VRRP child dies with its parent, no goodbye.
            for child in self.children(node):
                os.kill(child, signal.SIGKILL)
        self.procs[node].send_signal(sig)

    def drain(self, node):
        raise NotImplementedError

    def stop(self):
        stop(self.procs.values())


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def has_address(lab, node, ip):
    # On eth0, or on keepalived's use_vmac macvlans.
    return ip in run("ip", "-n", lab.ns(f"n{node}"), "addr", "show").stdout


IGNORE_ANNOUNCEMENTS = f"""table arp l2vipbench {{
\tchain input {{
\t\ttype filter hook input priority 0; policy accept;
\t\tarp saddr ip {VIP4} arp daddr ip {VIP4} drop
\t}}
}}
table ip6 l2vipbench {{
\tchain input {{
\t\ttype filter hook input priority 0; policy accept;
\t\tip6 daddr ff02::1 icmpv6 type nd-neighbor-advert drop
\t}}
}}
"""


def ignoring_client_run(lab, impl, vip, limit=75.0):
    """n1's link goes down while a client that ignores announcements pings
    `vip` every 10 ms; returns ms from the fault to its first echo reply,
    or None within `limit` seconds."""
    client = ["ip", "netns", "exec", lab.ns("c")]
    impl.start()
    try:
        rules = os.path.join(lab.dir, "ignore.nft")
        with open(rules, "w") as f:
            f.write(IGNORE_ANNOUNCEMENTS)
        run(*client, "nft", "-f", rules)
        # The client learns the VIP's MAC from a solicited answer.
        run(*client, "ping", "-c", "1", "-W", "2", vip, check=False)
        ping = subprocess.Popen(
            client + ["ping", "-D", "-n", "-i", "0.01", "-W", "1", "-w", str(int(limit)), vip],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0 + random.uniform(0, impl.interval))
        fault = time.time()
        run("ip", "-n", lab.ns("n1"), "link", "set", "eth0", "down")
        taken = None
        for line in ping.stdout:
            if "bytes from" not in line or not line.startswith("["):
                continue
            at = float(line[1:].split("]")[0])
            if at > fault:
                taken = (at - fault) * 1000
                break
        ping.kill()
        ping.wait()
        return taken
    finally:
        impl.stop()
        run(*client, "nft", "delete", "table", "arp", "l2vipbench", check=False)
        run(*client, "nft", "delete", "table", "ip6", "l2vipbench", check=False)
        run(*client, "ip", "neigh", "flush", "dev", "eth0", check=False)
        run("ip", "-n", lab.ns("n1"), "link", "set", "eth0", "up", check=False)
        time.sleep(0.2)


def one_run(lab, impl, scenario):
    """One fault, measured; returns milliseconds or None (no takeover)."""
    vip = VIP6 if scenario.endswith("-v6") else VIP4
    impl.start()
    try:
        limit = 30.0
        probe = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("c"), "python3", PROBE, "eth0", vip, str(limit)],
            stdout=subprocess.PIPE,
            text=True,
        )
        # Settled: n1 answers.
        while True:
            line = probe.stdout.readline()
            if not line:
                raise RuntimeError(f"{impl.name}: n1 never answered for {vip}")
            if line.split()[1] == MAC[1]:
                break
        time.sleep(0.3 + random.uniform(0, impl.interval))
        fault = time.time()
        if scenario.startswith("node-loss"):
            run("ip", "-n", lab.ns("n1"), "link", "set", "eth0", "down")
        elif scenario == "sigkill":
            impl.kill(1, signal.SIGKILL)
        elif scenario == "sigterm":
            impl.kill(1, signal.SIGTERM)
        elif scenario == "drain":
            impl.drain(1)
        taken = None
        for line in probe.stdout:
            at, mac = line.split()[:2]
            if float(at) >= fault and mac == MAC[2]:
                taken = (float(at) - fault) * 1000
                break
        probe.kill()
        probe.wait()
        return taken
    finally:
        impl.stop()
        run("ip", "-n", lab.ns("n1"), "link", "set", "eth0", "up", check=False)
        time.sleep(0.2)


def cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--only", choices=["l2vip", "keepalived"])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--timers", default="default,tuned,aggressive")
    parser.add_argument("--no-ignoring-client", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("failover.py: needs root (network namespaces)")
    need("bench")
    runs = args.runs or (3 if args.short else 5)
    timers = ["tuned"] if args.short else args.timers.split(",")
    scenarios = args.scenarios.split(",")
    build_release()
    impls = [L2vip, Keepalived]
    if args.only:
        impls = [i for i in impls if i.name == args.only]
    if Keepalived in impls and not shutil.which("keepalived"):
        print("(keepalived is not installed: apt-get install keepalived; its columns are skipped)")
        impls.remove(Keepalived)
    lab = Lab("fo")
    rows = []
    try:
        for timer in timers:
            for scenario in scenarios:
                results = {}
                for impl_class in impls:
                    impl = impl_class(lab, timer)
                    if scenario == "drain" and impl_class is Keepalived:
                        results[impl_class.name] = (impl.describe(), None)
                        continue
                    values = [one_run(lab, impl, scenario) for _ in range(runs)]
                    results[impl_class.name] = (impl.describe(), values)
                    print(f"  {timer} {scenario} {impl_class.name}: {cell(values)} ms", file=sys.stderr)
                rows.append((timer, scenario, results))
    finally:
        lab.down()
    print(f"\nFailover, fault to the client's first answer from the new owner, ms "
          f"(min / median / max of {runs} runs)\n")
    print("| timers | scenario | l2vip | keepalived | median ratio |")
    print("|---|---|---|---|---:|")
    for timer, scenario, results in rows:
        l2 = results.get("l2vip")
        ka = results.get("keepalived")
        ratio = "-"
        if l2 and ka and l2[1] and ka[1]:
            a = [v for v in l2[1] if v is not None]
            b = [v for v in ka[1] if v is not None]
            if a and b and statistics.median(b) > 0:
                ratio = f"{statistics.median(a) / statistics.median(b):.2f}"
        l2_text = f"{cell(l2[1])} ({l2[0]})" if l2 else "-"
        ka_text = "no such command" if ka and ka[1] is None else (f"{cell(ka[1])} ({ka[0]})" if ka else "-")
        print(f"| {timer} | {scenario} | {l2_text} | {ka_text} | {ratio} |")
    if args.short or args.no_ignoring_client:
        return
    ignoring(impls, min(runs, 3))


def ignoring(impls, runs):
    """The second table: a client that ignores announcements."""
    variants = [
        ("l2vip, mac interface", lambda lab: L2vip(lab, "tuned", "interface")),
        ("l2vip, mac virtual", lambda lab: L2vip(lab, "tuned", "virtual")),
    ]
    if Keepalived in impls:
        variants += [
            ("keepalived", lambda lab: Keepalived(lab, "tuned")),
            ("keepalived, use_vmac", lambda lab: Keepalived(lab, "tuned", use_vmac=True)),
        ]
    lab = Lab("ig")
    results = {}
    try:
        for vip in (VIP4, VIP6):
            for name, make in variants:
                values = [ignoring_client_run(lab, make(lab), vip) for _ in range(runs)]
                results[(vip, name)] = values
                print(f"  ignoring client {vip} {name}: {cell(values)} ms", file=sys.stderr)
    finally:
        lab.down()
    print(f"\nA client that ignores gratuitous ARP and unsolicited NA: n1's link goes down, "
          f"ms from the fault to the client's first echo reply (min / median / max of {runs} "
          f"runs; - is none within 75 s); tuned timers\n")
    print("| VIP | " + " | ".join(name for name, _ in variants) + " |")
    print("|---|" + "---:|" * len(variants))
    for vip in (VIP4, VIP6):
        print(f"| {vip} | " + " | ".join(cell(results[(vip, name)]) for name, _ in variants) + " |")


if __name__ == "__main__":
    main()
