#!/usr/bin/env python3
"""Chaos soak: three l2vip nodes with tuned timers under random faults,
checked only from the outside.

    sudo tests/soak/chaos.py [--seconds N] [--seed S] [--massif FILE [--n3-binary PATH]]

Three nodes (interval 100 ms, lease 300 ms, linger 1 s) hold three VIPs from
their configuration and one added at run time with `l2vip add`; a client
probes every VIP every 10 ms (tests/bench/probe.py). A scheduler seeded
with S (random unless given; printed, so a run can be replayed) applies one
fault at a time, mostly to the owner of some VIP:

  kill       SIGKILL, restart after 0.3-2 s
  term       SIGTERM (must exit 0), restart after 0.3-2 s
  drain      `l2vip drain`, `undrain` after 0.5-2 s
  link       eth0 down for 0.3-2.5 s
  heartbeat  the node's heartbeats lost (10-50 %), delayed (0-80 ms, with
             jitter) and duplicated (0-30 %) for 3-6 s: tc redirects them
             off the bridge and a relay puts them back impaired (this
             kernel has no netem)
  partition  blackhole routes cut the node off its peers for 1-3 s
  recreate   eth0 deleted and created again after 0.3-1.5 s
  flood      2 s of ARP requests and Neighbor Solicitations for every VIP,
             as fast as the client can send them
  garbage    a control client sends junk, an oversized line, half a
             request and hangs up; `l2vip status` must still answer

After each fault the cluster must settle within 10 s, and then: each VIP is
answered by exactly one MAC, the one of the node every daemon names as
owner; every daemon is running (unless stopped on purpose) and sees the
others; owners hold a local route for their VIPs and nobody else does
(lingering aside); every node still has the runtime service. The client's
outage (the longest gap in answers for any VIP, from the fault until
settled) must stay within the fault's bound: lease + 1 s for crashes, lost
links and heartbeats, partitions and the flood (whose requests crowd out
some of the probe's), 200 ms for planned moves (term, drain) and for
garbage on the control socket. n3 is never restarted: its memory is
sampled after every fault, and the table gives it after the first minute
and at the end, once a minute, and how much it moved after each kind of
fault; in runs of 10 minutes or more, its lowest anonymous memory in
the second half must stay within 128 KiB of the first half's. With
--massif, n3 runs under valgrind's heap profiler (slow: a diagnostic run,
outages n3 takes part in may pass their bounds).

The N seconds are the faults' own: they start once the cluster has started
and settled. A run in which no fault was applied fails.

Prints a markdown table; exits 1 on any violation (logs are kept then).
Needs root and the packages .ci/run installs.
"""

import argparse
import heapq
import json
import os
import random
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

from benchlab import L2VIP, ROOT, Lab, build_release, need, run  # noqa: E402

PROBE = os.path.join(ROOT, "tests", "bench", "probe.py")
SELF = os.path.abspath(__file__)
INTERVAL_MS, LEASE_MS = 100, 300
SERVICES = {"web": "192.0.2.200", "api": "192.0.2.201", "web6": "2001:db8::200"}
RUNTIME = ("rt", "192.0.2.202")
ALL_VIPS = {**SERVICES, RUNTIME[0]: RUNTIME[1]}
NODES = (1, 2, 3)
RESTARTABLE = (1, 2)
CRASH_BOUND_MS = LEASE_MS + 1000
PLANNED_BOUND_MS = 200
SETTLE_S = 10.0
MEMORY_SLACK_KIB = 128
HEARTBEAT_PORT = 7947


def node_mac(i):
    return f"02:4c:32:00:00:0{i}"


def node_ip(i):
    return f"192.0.2.{10 + i}"


class Node:
    def __init__(self, lab, i):
        self.lab, self.i = lab, i
        self.ns = lab.ns(f"n{i}")
        self.sock = os.path.join(lab.dir, f"n{i}.sock")
        self.config = os.path.join(lab.dir, f"n{i}.json")
        self.log = os.path.join(lab.dir, f"n{i}.log")
        self.proc = None
        self.wrapper = []  # a command the daemon runs under (valgrind)
        self.binary = L2VIP
        peers = [node_ip(j) for j in NODES if j != i]
        services = [{"name": name, "ip": ip, "interface": "eth0"} for name, ip in SERVICES.items()]
        with open(self.config, "w") as f:
            json.dump(
                {
                    "node": f"n{i}",
                    "priority": 250 - 50 * i,
                    "heartbeat": {"interval_ms": INTERVAL_MS, "lease_ms": LEASE_MS, "peers": peers,
                                  "insecure": True},
                    "control": {"socket": self.sock},
                    "state_file": os.path.join(lab.dir, f"n{i}.state.json"),
                    "linger_s": 1,
                    "services": services,
                },
                f,
            )

    def start(self):
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, *self.wrapper, self.binary, "daemon", "-c", self.config],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cli(self, *args):
        return run(L2VIP, *args, "--socket", self.sock, check=False)

    def query(self, command):
        out = self.cli(command, "--json")
        try:
            return json.loads(out.stdout)["data"]
        except (ValueError, KeyError, TypeError):
            return None

    def rss_kib(self):
        """(VmRSS, RssAnon) in KiB: all resident pages, and those the
        daemon allocated (the rest are the binary's and libraries' pages,
        which grow as more code paths run once)."""
        found = {}
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "RssAnon"):
                        found[key] = int(value.split()[0])
        except (OSError, ValueError):
            pass
        return found.get("VmRSS"), found.get("RssAnon")

    def routes(self):
        found = set()
        for family in ("-4", "-6"):
            out = run("ip", family, "-n", self.ns, "route", "show", "table", "local", "proto", "76", check=False)
            for line in out.stdout.splitlines():
                words = line.split()
                if len(words) >= 2 and words[0] == "local":
                    found.add(words[1])
        return found


class Probe:
    """probe.py in the client, its answers kept as (time, MAC) per VIP."""

    def __init__(self, lab, seconds):
        self.answers = {ip: [] for ip in ALL_VIPS.values()}
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("c"), "python3", PROBE, "eth0", ",".join(ALL_VIPS.values()),
             str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        for line in self.proc.stdout:
            words = line.split()
            if len(words) != 3:
                continue
            with self.lock:
                self.answers.setdefault(words[2], []).append((float(words[0]), words[1]))

    def since(self, ip, start):
        with self.lock:
            series = self.answers[ip]
            # The series is in time order; walk back from the end.
            k = len(series)
            while k > 0 and series[k - 1][0] >= start:
                k -= 1
            return series[k:]

    def longest_gap_ms(self, start, end):
        """The longest time any VIP went unanswered between start and end."""
        worst = 0.0
        for ip in ALL_VIPS.values():
            times = [start] + [at for at, _ in self.since(ip, start) if at <= end] + [end]
            worst = max(worst, max(b - a for a, b in zip(times, times[1:])))
        return worst * 1000

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Soak:
    def __init__(self, seconds, seed, massif=None, n3_binary=None):
        self.seconds, self.seed = seconds, seed
        self.rng = random.Random(seed)
        self.lab = Lab("ch", nodes=3)
        self.br = self.lab.ns("br")
        self.nodes = {i: Node(self.lab, i) for i in NODES}
        if n3_binary:
            self.nodes[3].binary = os.path.abspath(n3_binary)
        if massif:
            # n3 under valgrind's heap profiler: its heap over the whole
            # run, written when it exits at the end. Much slower: outages
            # n3 is part of may pass their bounds.
            self.nodes[3].wrapper = ["valgrind", "--tool=massif", "--time-unit=ms",
                                     f"--massif-out-file={os.path.abspath(massif)}"]
        self.stopped = set()  # nodes down on purpose right now
        self.results = {}  # fault kind -> list of outages (ms)
        self.violations = []
        self.vips = dict(SERVICES)  # and the runtime one, once added
        self.planting = False  # the checks' own test: violations expected
        self.start_time = time.time()
        # Where tc sends the heartbeats it takes off the bridge: a veth whose
        # peer is down drops everything.
        run("ip", "-n", self.br, "link", "add", "bh0", "type", "veth", "peer", "name", "bh1")
        run("ip", "-n", self.br, "link", "set", "bh0", "up")

    def say(self, text):
        print(f"[{time.time() - self.start_time:7.1f} s] {text}", file=sys.stderr, flush=True)

    def violation(self, text):
        self.violations.append(text)
        if not self.planting:
            self.say(f"VIOLATION: {text}")

    # --- the cluster as every daemon reports it -------------------------

    def owners(self):
        """{service: node index} if every running daemon names the same
        owner for every service, with a reason otherwise."""
        agreed = {}
        for i, node in self.nodes.items():
            if i in self.stopped:
                continue
            status = node.query("status")
            if status is None:
                return None, f"n{i} does not answer status"
            peers = {p["node"]: p for p in status.get("peers", [])}
            for j in NODES:
                if j == i or j in self.stopped:
                    continue
                peer = peers.get(f"n{j}")
                if peer is None or not peer["alive"] or peer["joining"]:
                    return None, f"n{i} does not see n{j} as an alive member yet"
            names = {s["name"]: s for s in status.get("services", [])}
            for service in self.vips:
                entry = names.get(service)
                if entry is None:
                    return None, f"n{i} has no service {service}"
                owner = entry["owner"]
                if owner is None:
                    return None, f"n{i} sees no owner for {service}"
                if agreed.setdefault(service, owner) != owner:
                    return None, f"n{i} names {owner} as owner of {service}, another node {agreed[service]}"
        return {service: int(owner[1:]) for service, owner in agreed.items()}, ""

    def answered(self, owners, window):
        now = time.time()
        for service, ip in self.vips.items():
            macs = {mac for _, mac in self.probe.since(ip, now - window)}
            want = node_mac(owners[service])
            if macs != {want}:
                return f"{service} ({ip}) answered by {sorted(macs) or 'nobody'}, owner n{owners[service]} is {want}"
        return ""

    def settle(self):
        """Waits until the cluster agrees and the client sees exactly that
        for 0.6 s; returns (owners, time settled) or (None, reason)."""
        deadline = time.time() + SETTLE_S
        reason = ""
        agreed_since = None
        while time.time() < deadline:
            self.check_alive()
            owners, reason = self.owners()
            if owners is None:
                agreed_since = None
            else:
                agreed_since = agreed_since or time.time()
                if time.time() - agreed_since >= 0.6:
                    reason = self.answered(owners, 0.6)
                    if not reason:
                        return owners, time.time()
            time.sleep(0.1)
        return None, reason

    def check_alive(self):
        for i, node in self.nodes.items():
            if i not in self.stopped and not node.running():
                self.violation(f"n{i} exited with status {node.proc.returncode} without being stopped")
                node.start()

    def invariants(self, owners):
        for i, node in self.nodes.items():
            routes = node.routes()
            status = node.query("status") or {}
            lingering = {s["ip"] for s in status.get("services", []) if s.get("state") == "lingering"}
            owned = {ip for service, ip in self.vips.items() if owners[service] == i}
            if owned - routes:
                self.violation(f"n{i} owns {sorted(owned - routes)} without a local route")
            if routes - owned - lingering:
                self.violation(f"n{i} keeps stale local routes {sorted(routes - owned - lingering)}")
            services = node.query("services") or {}
            names = {s["name"] for s in services.get("services", [])}
            if RUNTIME[0] not in names:
                self.violation(f"n{i} lost the runtime service {RUNTIME[0]}")

    def prove_checks(self, owners):
        """The checks must see a violation when there is one: a stale route
        on a node that does not own the VIP, and a second node answering
        for it (the address configured on its interface)."""
        service = sorted(self.vips)[0]
        ip = self.vips[service]
        other = next(i for i in NODES if i != owners[service])
        ns = self.nodes[other].ns
        before = len(self.violations)
        run("ip", "-n", ns, "route", "add", "local", ip, "dev", "eth0", "table", "local", "proto", "76")
        self.planting = True
        self.invariants(owners)
        self.planting = False
        run("ip", "-n", ns, "route", "del", "local", ip, "dev", "eth0", "table", "local", "proto", "76")
        caught_route = len(self.violations) > before
        del self.violations[before:]
        run("ip", "-n", ns, "addr", "add", f"{ip}/32", "dev", "eth0")
        time.sleep(0.6)
        caught_answer = bool(self.answered(owners, 0.5))
        run("ip", "-n", ns, "addr", "del", f"{ip}/32", "dev", "eth0")
        if not (caught_route and caught_answer):
            raise RuntimeError(f"the checks missed a planted violation (stale route caught: {caught_route}, "
                               f"second answerer caught: {caught_answer})")
        self.say("checks proven: a planted stale route and a planted second answerer were both caught")
        time.sleep(0.7)

    # --- faults -----------------------------------------------------------

    def target(self, owners, choices=NODES):
        """Mostly the owner of a random VIP, sometimes any node."""
        owner = owners[self.rng.choice(sorted(self.vips))]
        if owner in choices and self.rng.random() < 0.75:
            return owner
        return self.rng.choice(choices)

    def fault_kill(self, owners):
        i = self.target(owners, RESTARTABLE)
        node = self.nodes[i]
        self.stopped.add(i)
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()
        time.sleep(self.rng.uniform(0.3, 2.0))
        node.start()
        self.stopped.discard(i)
        return f"n{i}", CRASH_BOUND_MS

    def fault_term(self, owners):
        i = self.target(owners, RESTARTABLE)
        node = self.nodes[i]
        self.stopped.add(i)
        node.proc.send_signal(signal.SIGTERM)
        try:
            code = node.proc.wait(5)
            if code != 0:
                self.violation(f"n{i} exited with status {code} after SIGTERM")
        except subprocess.TimeoutExpired:
            self.violation(f"n{i} did not exit within 5 s of SIGTERM")
            node.proc.kill()
            node.proc.wait()
        time.sleep(self.rng.uniform(0.3, 2.0))
        node.start()
        self.stopped.discard(i)
        return f"n{i}", PLANNED_BOUND_MS

    def fault_drain(self, owners):
        i = self.target(owners)
        node = self.nodes[i]
        if node.cli("drain").returncode != 0:
            self.violation(f"n{i} refused drain")
        time.sleep(self.rng.uniform(0.5, 2.0))
        if node.cli("undrain").returncode != 0:
            self.violation(f"n{i} refused undrain")
        return f"n{i}", PLANNED_BOUND_MS

    def fault_link(self, owners):
        i = self.target(owners)
        ns = self.nodes[i].ns
        run("ip", "-n", ns, "link", "set", "eth0", "down")
        time.sleep(self.rng.uniform(0.3, 2.5))
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        return f"n{i}", CRASH_BOUND_MS

    def fault_heartbeat(self, owners):
        i = self.target(owners)
        loss, dup = self.rng.uniform(0.1, 0.5), self.rng.uniform(0.0, 0.3)
        delay = self.rng.uniform(0, 80)
        jitter = self.rng.uniform(0, delay / 2)
        seconds = self.rng.uniform(3, 6)
        port = f"p{i}"
        relay = subprocess.Popen(
            ["ip", "netns", "exec", self.br, "python3", SELF, "impair", port, f"{seconds + 1:.1f}", f"{loss:.2f}",
             f"{delay:.1f}", f"{jitter:.1f}", f"{dup:.2f}", str(self.rng.randrange(1 << 30))],
        )
        time.sleep(0.2)  # the relay listens before tc takes the heartbeats away
        run("tc", "-n", self.br, "qdisc", "add", "dev", port, "clsact")
        run("tc", "-n", self.br, "filter", "add", "dev", port, "ingress", "protocol", "ip", "u32",
            "match", "ip", "protocol", "17", "0xff", "match", "ip", "dport", str(HEARTBEAT_PORT), "0xffff",
            "action", "mirred", "egress", "redirect", "dev", "bh0")
        time.sleep(seconds)
        stats = run("tc", "-s", "-n", self.br, "filter", "show", "dev", port, "ingress").stdout
        run("tc", "-n", self.br, "qdisc", "del", "dev", port, "clsact")
        taken = next((line.split()[3] for line in stats.splitlines() if line.strip().startswith("Sent ")), "?")
        relay.wait(10)
        return (f"n{i} ({taken} heartbeats taken off, loss {loss:.0%}, delay {delay:.0f}±{jitter:.0f} ms, "
                f"dup {dup:.0%})"), CRASH_BOUND_MS

    def partition_routes(self, i, verb):
        for j in NODES:
            if j != i:
                run("ip", "-n", self.nodes[i].ns, "route", verb, "blackhole", f"{node_ip(j)}/32", check=False)
                run("ip", "-n", self.nodes[j].ns, "route", verb, "blackhole", f"{node_ip(i)}/32", check=False)

    def fault_partition(self, owners):
        i = self.target(owners)
        self.partition_routes(i, "add")
        time.sleep(self.rng.uniform(1.0, 3.0))
        self.partition_routes(i, "del")
        return f"n{i}", CRASH_BOUND_MS

    def fault_recreate(self, owners):
        i = self.target(owners)
        ns = self.nodes[i].ns
        run("ip", "-n", ns, "link", "del", "eth0")
        time.sleep(self.rng.uniform(0.3, 1.5))
        run("ip", "-n", ns, "link", "add", "eth0", "address", node_mac(i), "type", "veth", "peer", "name",
            f"p{i}", "netns", self.br)
        run("ip", "-n", self.br, "link", "set", f"p{i}", "master", "br0", "up")
        run("ip", "-n", ns, "addr", "add", f"{node_ip(i)}/24", "dev", "eth0")
        run("ip", "-n", ns, "addr", "add", f"2001:db8::{10 + i}/64", "dev", "eth0", "nodad")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        return f"n{i}", CRASH_BOUND_MS

    def fault_flood(self, owners):
        out = run("ip", "netns", "exec", self.lab.ns("c"), "python3", SELF, "flood", "eth0", "2",
                  ",".join(ALL_VIPS.values()))
        return f"{out.stdout.strip()} frames", CRASH_BOUND_MS

    def fault_garbage(self, owners):
        i = self.rng.choice(NODES)
        node = self.nodes[i]
        junk = [
            bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 512))) + b"\n",
            b"x" * 70000,
            b'{"command": "status", "id": ',
            b'{"command": "no such thing"}\n{"command": 7}\n[]\nnull\n',
            b"\0\0\0\0\n",
        ]
        for payload in junk:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(2)
            try:
                conn.connect(node.sock)
                conn.sendall(payload)
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
            except OSError:
                pass  # the daemon may close on us: that is its right
            finally:
                conn.close()
        if node.cli("status").returncode != 0:
            self.violation(f"n{i} no longer answers status after garbage")
        return f"n{i}", PLANNED_BOUND_MS

    FAULTS = ["kill", "term", "drain", "link", "heartbeat", "partition", "recreate", "flood", "garbage"]

    # --- the run ----------------------------------------------------------

    def run(self):
        for node in self.nodes.values():
            node.start()
        self.probe = Probe(self.lab, self.seconds + 120)
        owners, _ = self.wait_cluster()
        for node in self.nodes.values():
            out = node.cli("add", RUNTIME[0], RUNTIME[1], "eth0")
            if out.returncode != 0:
                raise RuntimeError(f"l2vip add failed on n{node.i}: {out.stdout}{out.stderr}")
        self.vips = dict(ALL_VIPS)
        owners, _ = self.wait_cluster()
        self.invariants(owners)
        self.prove_checks(owners)
        rss_start = self.nodes[3].rss_kib()
        self.rss = []  # (seconds into the faults, fault kind, n3's (RSS, anonymous) in KiB)
        # The run's seconds are the faults' alone: starting and settling the
        # cluster (up to a minute) does not eat into them.
        self.faults_began = time.time()
        self.say(f"cluster settled; {self.seconds:.0f} s of faults begin")
        end = self.faults_began + self.seconds
        while time.time() < end:
            kind = self.rng.choice(self.FAULTS)
            began = time.time()
            what, bound = getattr(self, f"fault_{kind}")(owners)
            settled, at = self.settle()
            if settled is None:
                self.violation(f"{kind} {what}: not settled within {SETTLE_S:.0f} s: {at}")
                owners, at = self.wait_cluster()
            else:
                owners = settled
            outage = self.probe.longest_gap_ms(began, at - 0.6)
            self.results.setdefault(kind, []).append(outage)
            verdict = "ok"
            if outage > bound:
                self.violation(f"{kind} {what}: outage {outage:.0f} ms, bound {bound} ms")
                verdict = "OVER"
            self.say(f"{kind} {what}: outage {outage:.0f} ms ({verdict})")
            self.invariants(owners)
            self.rss.append((time.time() - self.faults_began, kind, self.nodes[3].rss_kib()))
            time.sleep(self.rng.uniform(0.2, 1.0))
        if not self.rss:
            self.violation(f"no fault was applied in {self.seconds:.0f} s")
        self.check_memory()
        return rss_start, self.nodes[3].rss_kib()

    def check_memory(self):
        """In runs of 10 minutes or more, n3's anonymous memory must not
        grow: the lowest sample of the second half may exceed the lowest of
        the first (after its first minute) by at most MEMORY_SLACK_KIB.
        Lowest, because the daemon gives freed pages back once a minute:
        between two trims a sample carries up to ~100 KiB already freed."""
        if self.seconds < 600 or self.nodes[3].wrapper:
            return  # too short, or n3's memory is valgrind's
        samples = [(at, kib[1]) for at, _, kib in self.rss if kib[1] is not None]
        middle = self.seconds / 2
        first = [anon for at, anon in samples if 60 <= at < middle]
        second = [anon for at, anon in samples if at >= middle]
        if not first or not second:
            self.violation("n3's memory was not sampled")
            return
        if min(second) > min(first) + MEMORY_SLACK_KIB:
            self.violation(f"n3's anonymous memory grew: lowest {min(first)} KiB in the first half, "
                           f"{min(second)} KiB in the second")

    def wait_cluster(self):
        owners, reason = self.settle()
        for _ in range(3):
            if owners is not None:
                return owners, reason
            owners, reason = self.settle()
        raise RuntimeError(f"the cluster never settled: {reason}")

    def table(self, rss_start, rss_end):
        total = sum(len(v) for v in self.results.values())
        lines = [
            f"Chaos soak: {self.seconds:.0f} s, seed {self.seed}, {total} faults, "
            f"timers {INTERVAL_MS} ms / {LEASE_MS} ms, 3 nodes, 4 VIPs",
            "",
            "| fault | applied | client outage ms (min / median / max) | bound ms |",
            "|---|---|---|---|",
        ]
        for kind in self.FAULTS:
            values = self.results.get(kind, [])
            bound = PLANNED_BOUND_MS if kind in ("term", "drain", "garbage") else CRASH_BOUND_MS
            cell = "-"
            if values:
                cell = f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"
            lines.append(f"| {kind} | {len(values)} | {cell} | {bound} |")
        lines.append("")
        lines.append(f"Invariant violations: {len(self.violations)}")
        for text in self.violations:
            lines.append(f"- {text}")
        def show(sample):
            rss, anon = sample if sample else (None, None)
            return f"{rss} ({anon} anonymous)"

        warm = next((kib for at, _, kib in self.rss if at >= 60), None)
        peak = max((kib for _, _, kib in self.rss if kib[0] is not None), default=None)
        lines.append(f"n3 (never restarted) RSS, KiB: {show(rss_start)} at the start, {show(warm)} after the "
                     f"first minute, {show(rss_end)} at the end; highest sample {show(peak)}")
        lines.extend(self.memory_series(rss_start))
        return "\n".join(lines)

    def memory_series(self, rss_start):
        """n3's anonymous memory once a minute, and how much it moved
        after each kind of fault (summed over that kind's samples), so a
        leak in one fault path shows up as one kind that always adds."""
        samples = [(at, kind, kib[1]) for at, kind, kib in self.rss if kib[1] is not None]
        if not samples or rss_start[1] is None:
            return []
        minutes, mark = [], 60
        for at, _, anon in samples:
            if at >= mark:
                minutes.append(f"{int(at // 60)}m {anon}")
                mark = (int(at // 60) + 1) * 60
        lines = ["", f"n3 anonymous KiB by minute: start {rss_start[1]}, " + ", ".join(minutes)]
        moved = {}
        before = rss_start[1]
        for _, kind, anon in samples:
            grew, count = moved.get(kind, (0, 0))
            moved[kind] = (grew + anon - before, count + 1)
            before = anon
        cells = [f"{kind} {grew:+d} ({count})" for kind, (grew, count) in sorted(moved.items())]
        lines.append("n3 anonymous KiB moved after each fault kind (sum, faults): " + ", ".join(cells))
        return lines

    def close(self, keep):
        for node in self.nodes.values():
            if node.running():
                node.proc.terminate()
                try:
                    node.proc.wait(60 if node.wrapper else 5)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()
        if getattr(self, "probe", None):
            self.probe.stop()
        if keep:
            kept = f"/tmp/l2vip-chaos-{self.seed}"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(self.lab.dir, kept, ignore=shutil.ignore_patterns("*.sock"))
            print(f"logs kept in {kept}", file=sys.stderr)
        self.lab.down()


# --- helpers run inside the lab's namespaces ------------------------------


def impair(port, seconds, loss, delay_ms, jitter_ms, dup, seed):
    """In the bridge's namespace: takes the heartbeats arriving from `port`
    (tc keeps them from being forwarded) and sends them on toward their
    destination port, some lost, all delayed, some twice."""
    rng = random.Random(seed)
    # All protocols: only those taps see a frame before tc and the bridge.
    listen = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    listen.bind((port, 0))
    senders = {}
    queue = []
    sequence = 0
    end = time.time() + seconds
    while time.time() < end:
        timeout = max(0.0, min(end, queue[0][0] if queue else end) - time.time())
        ready, _, _ = select.select([listen], [], [], timeout)
        now = time.time()
        if ready:
            frame, meta = listen.recvfrom(4096)
            ihl = (frame[14] & 0x0F) * 4 if len(frame) > 14 else 0
            if (meta[2] != socket.PACKET_OUTGOING and frame[12:14] == b"\x08\x00"
                    and len(frame) >= 14 + ihl + 8 and frame[23] == 17
                    and struct.unpack("!H", frame[14 + ihl + 2:14 + ihl + 4])[0] == HEARTBEAT_PORT
                    and rng.random() >= loss):
                for _ in range(2 if rng.random() < dup else 1):
                    wait = max(0.0, delay_ms + rng.uniform(-jitter_ms, jitter_ms)) / 1000
                    sequence += 1
                    heapq.heappush(queue, (now + wait, sequence, frame))
        while queue and queue[0][0] <= time.time():
            _, _, frame = heapq.heappop(queue)
            if frame[0:5] != bytes.fromhex("024c320000") or not 1 <= frame[5] <= 9:
                continue
            out = f"p{frame[5]}"
            try:
                if out not in senders:
                    senders[out] = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                    senders[out].bind((out, 0))
                senders[out].send(frame)
            except OSError:
                pass  # that port is being re-created


def flood(iface, seconds, vips):
    """From the client: ARP requests and Neighbor Solicitations for every
    VIP, as fast as one socket sends them, from a MAC and addresses of
    their own (the answers do not reach the probe)."""
    sys.path.insert(0, os.path.dirname(PROBE))
    import ipaddress

    from probe import arp_request, link_local, neighbor_solicit

    mac = bytes.fromhex("024c32000099")
    frames = []
    for text in vips.split(","):
        vip = ipaddress.ip_address(text)
        if vip.version == 4:
            frames.append(arp_request(mac, bytes([192, 0, 2, 99]), vip.packed))
        else:
            frames.append(neighbor_solicit(mac, link_local(mac), vip.packed))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    sent = 0
    end = time.time() + seconds
    while time.time() < end and sent < 5_000_000:
        for frame in frames:
            for _ in range(64):
                try:
                    sock.send(frame)
                    sent += 1
                except OSError:
                    time.sleep(0.0001)
    print(sent)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "impair":
        port, seconds, loss, delay, jitter, dup, seed = sys.argv[2:9]
        impair(port, float(seconds), float(loss), float(delay), float(jitter), float(dup), int(seed))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "flood":
        flood(sys.argv[2], float(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--massif", metavar="FILE",
                        help="run n3 under valgrind --tool=massif, its heap profile into FILE (ms_print FILE)")
    parser.add_argument("--n3-binary", metavar="PATH",
                        help="run n3 from PATH (a build with symbols, for --massif)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("chaos.py: needs root (network namespaces)")
    need("soak")
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"chaos.py: seed {seed} (replay with --seed {seed})", file=sys.stderr, flush=True)
    build_release()
    soak = Soak(args.seconds, seed, args.massif, args.n3_binary)
    ok = False
    try:
        rss_start, rss_end = soak.run()
        print(soak.table(rss_start, rss_end))
        ok = not soak.violations
    finally:
        soak.close(keep=not ok)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
