#!/usr/bin/env python3
"""Election cost: the CPU one received heartbeat costs a node of a large
spread-mode cluster, measured on the real daemon.

    sudo tests/bench/election.py [--seconds S] [--services N] [--peers P]
                                 [--binary NAME=PATH ...]

One daemon (n1) runs with N services (1024 unless told) in spread mode, a
key and a multicast group. From the client, P simulated peers (63 unless
told) send it signed heartbeats, each once per second, with TTL 255: each
claims the services it ranks best for (the same rendezvous ranking as the
daemon's), is eligible for all, and witnesses n1 and 31 others, as the
heartbeats of a real cluster of P + 1 nodes do.

Two loads, each measured for S seconds (20 unless told) after a warm-up:
- steady: what a running cluster sends, only the sequence numbers change;
- changing: every heartbeat of every peer flips its draining flag, so each
  one changes what the node sees of every service (the worst case).

For each load: the daemon's CPU time (all threads, from the scheduler's
nanosecond counters) divided by the heartbeats it accepted, so its own
timers and heartbeats are included. Several binaries (--binary, e.g. a
build of an earlier revision) are measured in the same run, one after the
other, for a ratio. Prints a markdown table. Needs root.
"""

import argparse
import hashlib
import hmac
import json
import os
import socket
import struct
import subprocess
import sys
import time

from benchlab import L2VIP, Lab, build_release, cpu_seconds, need, run, stop, wait_for

GROUP = "239.255.76.47"
PORT = 7947
KEY = b"bench-election-key-0123456789"
INTERVAL_MS = 1000
LEASE_MS = 3000
PRIORITY = 100
MASK = (1 << 64) - 1


def mix(x):
    """splitmix64's finaliser, as `election::policy::mix`."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def fnv64(*parts):
    """FNV-1a over each part followed by 0xff, as `election::policy`."""
    h = 0xCBF29CE484222325
    for part in parts:
        for byte in part + b"\xff":
            h = ((h ^ byte) * 0x100000001B3) & MASK
    return h


def name_hash(name):
    h = 0x811C9DC5
    for byte in name.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def best(nodes, service):
    """The node that ranks best for `service` in spread mode (all at the
    same priority): the highest draw (64-bit draws of distinct names do
    not tie)."""
    return max(nodes, key=lambda n: mix(fnv64(n.encode(), service.encode())))


def bitmap(count, members):
    out = bytearray((count + 7) // 8)
    for i in members:
        out[i // 8] |= 0x80 >> (i % 8)
    return bytes(out)


def heartbeat(node, incarnation, sequence, digest, count, claims, eligible, witnesses, draining):
    """One signed heartbeat in the layout of `wire::heartbeat`."""
    cluster = b"l2vip"
    name = node.encode()
    flags = 0x04 | (0x01 if draining else 0)
    out = b"L2VH" + bytes([1, flags, PRIORITY, 0])
    out += struct.pack("!QQQH", incarnation, sequence, digest, count)
    out += bytes([len(cluster), len(name)]) + cluster + name + claims + eligible
    out += bytes([len(witnesses)])
    for hashed, low, age in witnesses:
        out += struct.pack("!IIH", hashed, low, age)
    return out + hmac.new(KEY, out, hashlib.sha256).digest()


def services(count):
    return [(f"svc{i:04d}", f"2001:db8:1::{i + 1:x}") for i in range(count)]


def config(lab, count):
    listed = ",\n".join(f'{{"name": "{n}", "ip": "{ip}", "interface": "eth0"}}' for n, ip in services(count))
    return f"""{{"node": "n1", "priority": {PRIORITY}, "mode": "spread",
 "heartbeat": {{"interval_ms": {INTERVAL_MS}, "lease_ms": {LEASE_MS}, "key_file": "{lab.dir}/key",
                "multicast": {{"group": "{GROUP}", "interface": "eth0"}}}},
 "control": {{"socket": "{lab.dir}/n1.sock"}}, "state_file": null,
 "services": [{listed}]}}"""


def metrics(lab):
    out = run(L2VIP, "metrics", "--json", "--socket", f"{lab.dir}/n1.sock", check=False).stdout
    try:
        return json.loads(out)["data"]["election"]
    except (ValueError, KeyError, TypeError):
        return None


def digest(lab):
    out = run(L2VIP, "status", "--json", "--socket", f"{lab.dir}/n1.sock", check=False).stdout
    try:
        return int(json.loads(out)["data"]["digest"], 16)
    except (ValueError, KeyError, TypeError):
        return None


def sender(lab, count, peers, seconds, changing, digest_value):
    """Sends the peers' heartbeats from the client for `seconds` (this
    script again, inside the client's namespace)."""
    return subprocess.Popen(
        ["ip", "netns", "exec", lab.ns("c"), sys.executable, os.path.abspath(__file__), "send",
         str(count), str(peers), str(seconds), "1" if changing else "0", str(digest_value)],
    )


def send(count, peers, seconds, changing, digest_value):
    names = [f"p{i:02d}" for i in range(1, peers + 1)]
    nodes = names + ["n1"]
    owner = [best(nodes, name) for name, _ in services(count)]
    everything = bitmap(count, range(count))
    # A later run of each peer per load: the daemon refuses sequences
    # that start again within one incarnation.
    incarnations = {n: ((8 if changing else 7) << 16) + i for i, n in enumerate(names)}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("192.0.2.100"))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    fixed = {}
    for i, n in enumerate(names):
        claims = bitmap(count, [s for s in range(count) if owner[s] == n])
        # The next 31 peers and n1 (which skips itself).
        others = [names[(i + k) % len(names)] for k in range(1, min(32, len(names)))]
        witnesses = [(name_hash(o), incarnations[o] & 0xFFFFFFFF, 500) for o in others]
        witnesses.append((name_hash("n1"), 1, 500))
        fixed[n] = (claims, witnesses)
    start = time.time()
    sequence = 0
    while time.time() - start < seconds:
        sequence += 1
        round_start = time.time()
        for i, n in enumerate(names):
            claims, witnesses = fixed[n]
            draining = changing and (sequence + i) % 2 == 1
            sock.sendto(heartbeat(n, incarnations[n], sequence, digest_value, count, claims, everything,
                                  witnesses, draining), (GROUP, PORT))
            # Spread evenly over the interval.
            target = round_start + (i + 1) * INTERVAL_MS / 1000 / len(names)
            time.sleep(max(0.0, target - time.time()))


def measure(binary, count, peers, seconds):
    """Runs n1 with `binary`; returns {load: µs per heartbeat}."""
    lab = Lab("el", nodes=1)
    results = {}
    try:
        with open(os.path.join(lab.dir, "key"), "wb") as f:
            f.write(KEY + b"\n")
        os.chmod(os.path.join(lab.dir, "key"), 0o600)
        path = os.path.join(lab.dir, "n1.json")
        with open(path, "w") as f:
            f.write(config(lab, count))
        log = os.path.join(lab.dir, "n1.log")
        daemon = subprocess.Popen(["ip", "netns", "exec", lab.ns("n1"), binary, "daemon", "-c", path],
                                  stderr=open(log, "w"))
        try:
            wait_for(lambda: digest(lab) is not None, 20)
            value = digest(lab)
            for load in ("steady", "changing"):
                warmup = 4
                feeder = sender(lab, count, peers, warmup + seconds + 1, load == "changing", value)
                try:
                    time.sleep(warmup)
                    before, cpu0 = metrics(lab), cpu_seconds(daemon.pid)
                    time.sleep(seconds)
                    after, cpu1 = metrics(lab), cpu_seconds(daemon.pid)
                finally:
                    feeder.wait(seconds + 30)
                heard = after["heartbeats_received"] - before["heartbeats_received"]
                expected = peers * seconds * 1000 // INTERVAL_MS
                if heard < expected * 0.9:
                    raise RuntimeError(f"{binary} {load}: accepted {heard} of ~{expected} heartbeats; see {log}")
                results[load] = (cpu1 - cpu0) / heard * 1e6
                # The next load starts from the same state.
                time.sleep(LEASE_MS / 1000 + 1)
        finally:
            stop([daemon])
    finally:
        lab.down()
    return results


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "send":
        count, peers, seconds, changing, digest_value = sys.argv[2:7]
        send(int(count), int(peers), float(seconds), changing == "1", int(digest_value))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--services", type=int, default=1024)
    parser.add_argument("--peers", type=int, default=63)
    parser.add_argument("--binary", action="append", default=[], metavar="NAME=PATH",
                        help="measure this binary too (repeatable); default: this tree's release build")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("election.py: needs root (network namespaces)")
    need("bench")
    build_release()
    binaries = [("this tree", L2VIP)] + [tuple(b.split("=", 1)) for b in args.binary]
    print(f"{args.services} services, {args.peers} peers at 1 heartbeat/s each, spread mode, "
          f"HMAC; {args.seconds} s per load\n")
    print("| binary | steady: µs per heartbeat | changing: µs per heartbeat |")
    print("|---|---:|---:|")
    for name, path in binaries:
        r = measure(path, args.services, args.peers, args.seconds)
        print(f"| {name} | {r['steady']:.0f} | {r['changing']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
