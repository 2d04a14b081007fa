#!/usr/bin/env python3
"""Footprint: l2vip next to keepalived in the same lab, in one run.

    sudo tests/bench/footprint.py [--short] [--static]

- idle CPU of the owner over 60 s (10 s with --short) at 1 s heartbeats /
  adverts, as a share of one core (utime + stime of every process);
- resident memory (VmRSS) of the owner with 1, 100 and 1000 VIPs;
- l2vip: the time from a planned hand-over (`drain`) to the client having
  seen the new owner's first gratuitous ARP for every one of 1000 VIPs;
- the stripped size of the binaries.

--static adds a column for the static x86_64 musl build (cross/build, the
`router` profile), as packaged for appliances: no shared libraries mapped.

Prints a markdown table. Needs root; keepalived (Debian's package) is
optional: its column says "not installed" without it.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

from benchlab import (L2VIP, ROOT, Lab, build_release, cpu_seconds, keepalived, keepalived_config, need, rss_kib,
                      run, stop, wait_for)

STATIC = os.path.join(ROOT, "target", "x86_64-unknown-linux-musl", "router", "l2vip")



def vips(count):
    """`count` IPv4 VIPs from 192.0.2.200 on, then 2001:db8::1:0 on."""
    out = []
    for i in range(count):
        out.append(f"192.0.2.{200 + i}" if i < 50 else f"2001:db8::1:{i:x}")
    return out


def start_l2vip(lab, count, binary=L2VIP):
    procs = []
    services = ",\n".join(
        f'{{"name": "s{i}", "ip": "{ip}", "interface": "eth0"}}' for i, ip in enumerate(vips(count))
    )
    for i in (1, 2):
        path = os.path.join(lab.dir, f"n{i}.json")
        with open(path, "w") as f:
            f.write(
                f"""{{"node": "n{i}", "priority": {250 - 50 * i},
 "heartbeat": {{"peers": ["192.0.2.1{3 - i}"], "insecure": true}},
 "control": {{"socket": "{lab.dir}/n{i}.sock"}}, "state_file": null,
 "services": [{services}]}}"""
            )
        log = os.path.join(lab.dir, f"n{i}.log")
        procs.append(
            subprocess.Popen(
                ["ip", "netns", "exec", lab.ns(f"n{i}"), binary, "daemon", "-c", path],
                stderr=open(log, "w"),
            )
        )
        if i == 1:
            wait_for(lambda: "answering for" in open(log).read(), 20)
    return procs


def start_keepalived(lab, count):
    procs = []
    v4 = [f"{ip}/24" for ip in vips(count) if ":" not in ip]
    v6 = [f"{ip}/64" for ip in vips(count) if ":" in ip]
    for i in (1, 2):
        procs.append(keepalived(lab, i, keepalived_config(i, 3, 1, [("v4", 51, v4), ("v6", 52, v6)])))
        if i == 1:
            first = vips(count)[0]
            wait_for(lambda: first in run("ip", "-n", lab.ns("n1"), "addr").stdout, 20)
    return procs


def idle_cpu(lab, start, seconds):
    procs = start(lab, 1)
    try:
        time.sleep(3)
        pid = procs[0].pid
        before, t0 = cpu_seconds(pid), time.time()
        time.sleep(seconds)
        used, elapsed = cpu_seconds(pid) - before, time.time() - t0
        return 100 * used / elapsed
    finally:
        stop(procs)


def resident(lab, start, count):
    procs = start(lab, count)
    try:
        time.sleep(3)
        return rss_kib(procs[0].pid)
    finally:
        stop(procs)


def candidate(lab, node):
    """Whether n1 sees `node` alive and past its start-up hold."""
    out = run(L2VIP, "status", "--json", "--socket", f"{lab.dir}/n1.sock", check=False)
    try:
        peers = json.loads(out.stdout)["data"]["peers"]
    except (ValueError, KeyError, TypeError):
        return False
    return any(p["node"] == node and p["alive"] and not p["joining"] for p in peers)


def softnet_dropped():
    """Frames the kernel dropped because a CPU's receive backlog was full
    (/proc/net/softnet_stat, second column, all CPUs)."""
    with open("/proc/net/softnet_stat") as f:
        return sum(int(line.split()[1], 16) for line in f if line.strip())


def burst_1000(lab):
    """Drain n1 with 1000 VIPs; time until the client saw n2's first
    gratuitous ARP or unsolicited NA for every one."""
    procs = start_l2vip(lab, 1000)
    try:
        wait_for(lambda: "answering for 1000 VIPs" in open(f"{lab.dir}/n1.log").read(), 20)
        # n2 must be past its start-up hold to be a candidate.
        wait_for(lambda: candidate(lab, "n2"), 20)
        pcap = os.path.join(lab.dir, "burst.pcap")
        capture = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("c"), "tcpdump", "--immediate-mode", "-i", "eth0", "-n",
             # A short snapshot: the ring's slots are sized by it, and with
             # the default (256 KiB) 16 MiB hold only 64 frames.
             "-s", "128", "-B", "16384", "-w", pcap,
             "ether src 02:4c:32:00:00:02 and (arp or (icmp6 and ip6[40] == 136))"],
            stdout=subprocess.DEVNULL, stderr=open(pcap + ".log", "w"),
        )
        time.sleep(1)
        backlog_drops = softnet_dropped()
        asked = time.time()
        run(L2VIP, "drain", "--socket", f"{lab.dir}/n1.sock")
        # Every round of the burst is over after 5 x 1.1 s; 1 s is plenty
        # for the first.
        time.sleep(1.5)
        capture.terminate()
        capture.wait()
        backlog_drops = softnet_dropped() - backlog_drops
        decoded = run("tcpdump", "-n", "-tt", "-r", pcap, check=False).stdout
        seen = {}
        wanted = set(vips(1000))
        for line in decoded.splitlines():
            m = re.match(r"(\d+\.\d+) .*?(?:who-has|Reply) (\S+)", line) or re.match(
                r"(\d+\.\d+) .*tgt is (\S+?),", line
            )
            if m and m.group(2) in wanted:
                seen.setdefault(m.group(2), float(m.group(1)))
        result = f"{(max(seen.values()) - asked) * 1000:.0f} ms" if len(seen) == len(wanted) else \
            f"only {len(seen)} of 1000 seen within 1.5 s"
        if len(seen) < len(wanted) or max(seen.values()) - asked > 0.2:
            # Late: say what the client missed and what n2 says it sent.
            late = sorted((ip for ip in wanted if seen.get(ip, asked + 9) - asked > 0.2), key=vips(1000).index)
            frames = sum(1 for line in decoded.splitlines() if line[:1].isdigit())
            metrics = run(L2VIP, "metrics", "--socket", f"{lab.dir}/n2.sock", check=False).stdout
            sent = "; ".join(" ".join(line.split()) for line in metrics.splitlines()
                             if "sent" in line or "error" in line)
            result += (f" ({len(late)} late, first {late[:5]}; {frames} frames captured; "
                       f"tcpdump: {' '.join(open(pcap + '.log').read().split()[-9:])}; "
                       f"receive backlog drops: {backlog_drops}; n2: {sent[:300]})")
        return result
    finally:
        stop(procs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--static", action="store_true",
                        help="also the static x86_64 musl build (cross/build), as packaged for appliances")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("footprint.py: needs root (network namespaces)")
    need("bench")
    build_release()
    contenders = [("l2vip", start_l2vip)]
    sizes = {"l2vip": os.path.getsize(L2VIP)}
    if args.static:
        # Always: cargo rebuilds only what changed, and a stale binary
        # would measure old code.
        subprocess.run([os.path.join(ROOT, "cross", "build"), "x86_64-unknown-linux-musl"], check=True,
                       stdout=subprocess.DEVNULL)
        contenders.append(("l2vip static", lambda lab, count: start_l2vip(lab, count, STATIC)))
        sizes["l2vip static"] = os.path.getsize(STATIC)
    keepalived = shutil.which("keepalived")
    contenders.append(("keepalived", start_keepalived))
    seconds = 10 if args.short else 60
    lab = Lab("fp")
    rows = []
    try:
        for name, start in contenders:
            if name == "keepalived" and not keepalived:
                continue
            cpu = idle_cpu(lab, start, seconds)
            rss = {n: resident(lab, start, n) for n in (1, 100, 1000)}
            rows.append((name, cpu, rss))
            print(f"  {name}: idle {cpu:.3f}% of a core, RSS {rss}", file=sys.stderr)
        burst = burst_1000(lab)
    finally:
        lab.down()
    if keepalived:
        sizes["keepalived"] = os.path.getsize(keepalived)
    print(f"\nFootprint (owner node; idle over {seconds} s at 1 s heartbeats / adverts)\n")
    print("| | " + " | ".join(name for name, _, _ in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    print("| idle CPU, % of one core | " + " | ".join(f"{cpu:.3f}" for _, cpu, _ in rows) + " |")
    for n in (1, 100, 1000):
        print(f"| RSS with {n} VIPs, KiB | " + " | ".join(str(rss[n]) for _, _, rss in rows) + " |")
    print("| binary, bytes | " + " | ".join(f"{sizes.get(name, 0):,}" for name, _, _ in rows) + " |")
    print(f"\nl2vip, drain to the client having seen every one of 1000 VIPs announced: {burst}")
    if not keepalived:
        print("(keepalived is not installed: apt-get install keepalived for its column)")


if __name__ == "__main__":
    main()
