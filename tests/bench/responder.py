#!/usr/bin/env python3
"""The responder under a flood: l2vip's answers next to the kernel's, in one
run on one lab.

    sudo tests/bench/responder.py [--short] [--busy]
    sudo tests/bench/responder.py --hold SECONDS [--timers tuned|aggressive]

Lab: n1 and n2 run l2vip with tuned timers (100 ms / 300 ms; n1 owns
192.0.2.200 and 2001:db8::200), n3 runs nothing and answers for its own
192.0.2.13 and 2001:db8::13 with the kernel, n4 floods. For each target
(l2vip or the kernel, ARP or NDP) and each offered rate, n4 sends ARP
requests (or Neighbor Solicitations to the solicited-node group) for 3 s
while the client measures the reply latency one request at a time; both
ends of each measurement are kernel timestamps taken on the client's
interface, so Python's own delays do not count. Replies per second are
read off the answering node's interface counters.

Every row runs the same flood sender against both targets, so the ratio
l2vip / kernel is the figure that carries over to other machines. The
first row has no flood: the latency of a quiet segment. A second table
shows where l2vip's time goes, from its responder thread's schedstat: how
often it ran, how long each wake-up waited for a CPU, and its CPU time per
reply. --busy keeps every CPU busy with `nice 19` loops meanwhile, so no
wake-up has to wake an idle CPU first.

--hold runs the flood at full rate against l2vip's VIPs for SECONDS with
the given timers (aggressive: 20 ms / 60 ms) and fails if ownership moved
(the daemons' `ownership_changes` counters) or the client lost the VIP.

Every run (--short too) fails when ownership moved, or when a row falls
short: a flood offered under 5,000 frames/s, a target sent no replies,
more than 10 % of the client's probes went unanswered, or l2vip replied at
less than half the kernel's rate.

Prints markdown tables. Needs root.
"""

import argparse
import ctypes
import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import time

from benchlab import L2VIP, Lab, build_release, need, rss_kib, run, stop, wait_for
from probe import arp_request, link_local, neighbor_solicit

SELF = os.path.abspath(__file__)
VIP4, VIP6 = "192.0.2.200", "2001:db8::200"
KERNEL4, KERNEL6 = "192.0.2.13", "2001:db8::13"
FLOOD_MAC = bytes.fromhex("024c32000099")
FLOOD_IP = bytes([192, 0, 2, 99])
TIMERS = {"tuned": (100, 300), "aggressive": (20, 60)}
RATES = [None, 10_000, 25_000, 50_000, 100_000, 0]  # None: no flood; 0: as fast as the sender goes
SOL_PACKET, PACKET_MR_PROMISC = 263, 1
SO_ATTACH_FILTER, SO_TIMESTAMPNS = 26, 35


def request_for(ip, mac, iface):
    """The frame asking who has `ip`, from `mac` (the flood's addresses
    when `mac` is FLOOD_MAC, the interface's own otherwise)."""
    import ipaddress

    target = ipaddress.ip_address(ip)
    if target.version == 4:
        own = FLOOD_IP if mac == FLOOD_MAC else socket.inet_aton(address_of(iface))
        return arp_request(mac, own, target.packed)
    return neighbor_solicit(mac, link_local(mac), target.packed)


def address_of(iface):
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", iface], capture_output=True, text=True)
    return out.stdout.split()[3].split("/")[0]


# --- run inside the lab: the flood sender and the latency probe -----------


def flood(iface, ip, rate, seconds):
    """Sends requests for `ip` at `rate` frames/s (0: flat out) for
    `seconds`; prints how many went out and over how long."""
    frame = request_for(ip, FLOOD_MAC, iface)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    sent, start = 0, time.time()
    end = start + seconds
    tick = 0.001
    while True:
        now = time.time()
        if now >= end:
            break
        due = int((now - start) * rate) if rate else sent + 256
        burst = min(due - sent, 4096)
        for _ in range(burst):
            try:
                sock.send(frame)
                sent += 1
            except OSError:
                break  # the interface queue is full: try again next tick
        if rate:
            time.sleep(max(0.0, start + (sent + 1) / rate - time.time(), tick if burst <= 0 else 0))
    print(sent, time.time() - start)


def attach_mac_filter(sock, mac):
    """Classic BPF: only frames to or from `mac` reach this socket, so the
    flood (from another MAC) costs the probe nothing."""
    hi, lo = struct.unpack("!HI", mac)
    code = [
        (0x20, 0, 0, 2),  # ld [2]: destination bytes 2..5
        (0x15, 0, 2, lo),  # jeq lo
        (0x28, 0, 0, 0),  # ldh [0]
        (0x15, 4, 0, hi),  # jeq hi -> accept
        (0x20, 0, 0, 8),  # ld [8]: source bytes 2..5
        (0x15, 0, 3, lo),
        (0x28, 0, 0, 6),  # ldh [6]
        (0x15, 0, 1, hi),
        (0x06, 0, 0, 0xFFFF),  # accept
        (0x06, 0, 0, 0),  # drop
    ]
    program = b"".join(struct.pack("HBBI", *insn) for insn in code)
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(code), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    return buffer  # keep alive while the socket is open


def latency(iface, ip, seconds):
    """One request at a time, 1 ms apart; prints each reply's latency in
    microseconds (kernel timestamps of the request leaving and the reply
    arriving), or "lost" after 20 ms."""
    mac = bytes.fromhex(open(f"/sys/class/net/{iface}/address").read().strip().replace(":", ""))
    frame = request_for(ip, mac, iface)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    keep = attach_mac_filter(sock, mac)
    sock.bind((iface, 0))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    # A packet socket does not see its own frames leave: another one sends.
    sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sender.bind((iface, 0))
    # The filter applies from here on; empty what arrived before it.
    sock.setblocking(False)
    try:
        while sock.recv(4096):
            pass
    except BlockingIOError:
        pass
    end = time.time() + seconds
    results = []
    while time.time() < end:
        sender.send(frame)
        sent_at = replied_at = None
        give_up = time.time() + 0.02
        while replied_at is None and time.time() < give_up:
            ready, _, _ = select.select([sock], [], [], max(0.0, give_up - time.time()))
            if not ready:
                break
            while True:
                try:
                    data, ancillary, _, meta = sock.recvmsg(2048, 64)
                except BlockingIOError:
                    break
                stamp = next((d for level, kind, d in ancillary if kind == SO_TIMESTAMPNS), None)
                if stamp is None:
                    continue
                seconds_, nanos = struct.unpack("qq", stamp[:16])
                at = seconds_ + nanos / 1e9
                if meta[2] == socket.PACKET_OUTGOING:
                    if data == frame:
                        sent_at = at
                elif is_answer(data, ip):
                    replied_at = at
        if sent_at is not None and replied_at is not None:
            results.append(f"{(replied_at - sent_at) * 1e6:.1f}")
        else:
            results.append("lost")
        time.sleep(0.001)
    del keep
    print(" ".join(results))


def is_answer(frame, ip):
    import ipaddress

    target = ipaddress.ip_address(ip)
    if target.version == 4:
        return len(frame) >= 42 and frame[12:14] == b"\x08\x06" and frame[21] == 2 and frame[28:32] == target.packed
    return (len(frame) >= 78 and frame[12:14] == b"\x86\xdd" and frame[20] == 58 and frame[54] == 136
            and frame[62:78] == target.packed)


# --- the benchmark ---------------------------------------------------------


def counters(lab, host):
    """(rx packets, tx packets) of `host`'s eth0."""
    out = run("ip", "netns", "exec", lab.ns(host), "cat", "/proc/net/dev").stdout
    for line in out.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "eth0":
            fields = rest.split()
            return int(fields[1]), int(fields[9])
    raise RuntimeError(f"{host} has no eth0")


def start_l2vip(lab, timers):
    interval, lease = TIMERS[timers]
    procs = {}
    for i in (1, 2):
        path = os.path.join(lab.dir, f"n{i}.json")
        with open(path, "w") as f:
            json.dump(
                {
                    "node": f"n{i}",
                    "priority": 250 - 50 * i,
                    "heartbeat": {"interval_ms": interval, "lease_ms": lease, "peers": [f"192.0.2.1{3 - i}"],
                                  "insecure": True},
                    "control": {"socket": os.path.join(lab.dir, f"n{i}.sock")},
                    "state_file": None,
                    "services": [
                        {"name": "web", "ip": VIP4, "interface": "eth0"},
                        {"name": "web6", "ip": VIP6, "interface": "eth0"},
                    ],
                },
                f,
            )
        log = open(os.path.join(lab.dir, f"n{i}.log"), "w")
        procs[i] = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns(f"n{i}"), L2VIP, "daemon", "-c", path],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        if i == 1:
            wait_for(lambda: owns(lab, 1), 15)
    wait_for(lambda: sees(lab, 1, "n2"), 15)
    return procs


def query(lab, node, command):
    out = run(L2VIP, command, "--json", "--socket", os.path.join(lab.dir, f"n{node}.sock"), check=False)
    try:
        return json.loads(out.stdout)["data"]
    except (ValueError, KeyError, TypeError):
        return None


def owns(lab, node):
    metrics = query(lab, node, "metrics")
    return bool(metrics) and all(v["owned"] for v in metrics["vips"])


def sees(lab, node, peer):
    status = query(lab, node, "status")
    return bool(status) and any(p["node"] == peer and p["alive"] and not p["joining"] for p in status["peers"])


def ownership_changes(lab):
    return sum(query(lab, i, "metrics")["election"]["ownership_changes"] for i in (1, 2))


def in_ns(lab, host, *args):
    return subprocess.Popen(["ip", "netns", "exec", lab.ns(host), "python3", SELF, *args], stdout=subprocess.PIPE,
                            text=True)


def thread_sched(pid, name):
    """(CPU ns, ns waiting on a run queue, times run) of the daemon's
    thread `name`, from /proc/PID/task/*/schedstat."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                return tuple(int(x) for x in f.read().split()[:3])
        except OSError:
            continue
    return (0, 0, 0)


def one_step(lab, answerer, ip, rate, seconds, pid=None):
    """Floods `ip` at `rate` (None: no flood) for `seconds` while probing
    latency; returns (offered/s, replies/s, p50 us, p99 us, lost probes,
    probes, scheduling) where scheduling, for l2vip (`pid`), is the
    responder thread's (runs/s, mean run-queue wait per run in us, CPU us
    per reply)."""
    before = counters(lab, answerer)
    sched_before = thread_sched(pid, "responder") if pid else None
    started = time.time()
    sender = None
    if rate is not None:
        sender = in_ns(lab, "n4", "flood", "eth0", ip, str(rate), str(seconds))
    time.sleep(0.3)  # measure latency under the flood, not its start
    probe = in_ns(lab, "c", "latency", "eth0", ip, str(seconds - 0.6))
    if sender:
        sent, took = sender.communicate()[0].split()
        offered = int(sent) / float(took)
    else:
        time.sleep(seconds - 0.3)
        offered = 0
    after = counters(lab, answerer)
    elapsed = time.time() - started
    sched = None
    if pid:
        cpu, wait, runs = (b - a for a, b in zip(sched_before, thread_sched(pid, "responder")))
        sched = (runs / elapsed, wait / max(runs, 1) / 1000, cpu / max(after[1] - before[1], 1) / 1000)
    samples = probe.communicate()[0].split()
    values = sorted(float(s) for s in samples if s != "lost")
    lost = sum(1 for s in samples if s == "lost")
    p50 = statistics.median(values) if values else float("nan")
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))] if values else float("nan")
    replies = (after[1] - before[1]) / elapsed
    return offered, replies, p50, p99, lost, len(samples), sched


def benchmark(lab, rates, seconds, pid):
    rows = []
    targets = [("ARP", "l2vip", "n1", VIP4), ("ARP", "kernel", "n3", KERNEL4),
               ("NDP", "l2vip", "n1", VIP6), ("NDP", "kernel", "n3", KERNEL6)]
    for rate in rates:
        for protocol, who, host, ip in targets:
            offered, replies, p50, p99, lost, probes, sched = one_step(
                lab, host, ip, rate, seconds, pid if who == "l2vip" else None)
            rows.append((protocol, rate, who, offered, replies, p50, p99, lost, probes, sched))
            print(f"  {protocol} {rate_name(rate)}/s {who}: offered {offered:.0f}/s, replies {replies:.0f}/s, "
                  f"p50 {p50:.0f} us, p99 {p99:.0f} us, lost {lost}/{probes}", file=sys.stderr, flush=True)
    return rows


# What every row must show, or the run fails: a flood that sent too little
# measured nothing, and a responder that stopped answering is no pass.
MIN_OFFERED = 5_000  # frames/s, for every row with a flood (paced at 10,000 or more)
MIN_RATIO = 0.5  # l2vip's replies over the kernel's in the same row
MAX_LOST = 0.10  # share of the client's probes without an answer


def failures(rows):
    """What the rows fall short of; empty when every row is within bounds."""
    found = []
    for k in range(0, len(rows), 2):
        for row in rows[k:k + 2]:
            protocol, rate, who, offered, replies, _, _, lost, probes, _ = row
            name = f"{protocol} {rate_name(rate)}/s {who}"
            if rate is not None and offered < MIN_OFFERED:
                found.append(f"{name}: the flood offered {offered:,.0f}/s, less than {MIN_OFFERED:,}/s")
            if replies <= 0:
                found.append(f"{name}: no replies")
            if probes == 0 or lost > MAX_LOST * probes:
                found.append(f"{name}: {lost} of {probes} probes unanswered (at most {MAX_LOST:.0%})")
        mine, kernel = rows[k], rows[k + 1]
        if mine[4] < MIN_RATIO * kernel[4]:
            found.append(f"{mine[0]} {rate_name(mine[1])}/s: l2vip replied {mine[4]:,.0f}/s, "
                         f"less than {MIN_RATIO} of the kernel's {kernel[4]:,.0f}/s")
    return found


def rate_name(rate):
    return "no flood" if rate is None else f"{rate:,}" if rate else "max"


def table(rows):
    print("\nResponder under a flood: replies per second (answering node's interface) and the reply latency")
    print("of single requests sent by the client meanwhile (p50 / p99, microseconds), l2vip against the kernel\n")
    print("| protocol | offered /s | l2vip replies /s | kernel replies /s | ratio | l2vip p50 / p99 µs "
          "| kernel p50 / p99 µs | p99 ratio | probes lost (l2vip / kernel) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in range(0, len(rows), 2):
        mine, kernel = rows[k], rows[k + 1]
        protocol, rate = mine[0], mine[1]
        offered = "none" if rate is None else f"{mine[3]:,.0f}" if rate else \
            f"max ({mine[3]:,.0f} / {kernel[3]:,.0f})"
        print(f"| {protocol} | {offered} | {mine[4]:,.0f} | {kernel[4]:,.0f} | {mine[4] / max(kernel[4], 1):.2f} "
              f"| {mine[5]:.0f} / {mine[6]:.0f} | {kernel[5]:.0f} / {kernel[6]:.0f} "
              f"| {mine[6] / kernel[6]:.2f} | {mine[7]}/{mine[8]} / {kernel[7]}/{kernel[8]} |")
    print("\nl2vip's responder thread meanwhile (/proc/PID/task/TID/schedstat): how often it ran, how long it")
    print("waited on a run queue each time it was woken, and its CPU time per reply\n")
    print("| protocol | offered /s | runs /s | run-queue wait per run, µs | CPU per reply, µs |")
    print("|---|---|---:|---:|---:|")
    for row in rows[::2]:
        runs, wait, cpu = row[9]
        print(f"| {row[0]} | {rate_name(row[1])} | {runs:,.0f} | {wait:.1f} | {cpu:.2f} |")


def hold(lab, seconds, timers, owner_pid):
    """Floods both VIPs flat out for `seconds`; ownership must not move."""
    before = ownership_changes(lab)
    rss_before = rss_kib(owner_pid)
    probe = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns("c"), "python3", os.path.join(os.path.dirname(SELF), "probe.py"), "eth0",
         f"{VIP4},{VIP6}", str(seconds + 5), "100"],
        stdout=subprocess.PIPE, text=True,
    )
    start = time.time()
    flooders = [in_ns(lab, "n4", "flood", "eth0", ip, "0", str(seconds)) for ip in (VIP4, VIP6)]
    sent = sum(int(f.communicate()[0].split()[0]) for f in flooders)
    took = time.time() - start
    after = ownership_changes(lab)
    probe.kill()
    answers = probe.communicate()[0].splitlines()
    macs = {line.split()[1] for line in answers}
    interval, lease = TIMERS[timers]
    print(f"\nFlood hold: {took:.0f} s of ARP and NS for both VIPs at {sent / took:,.0f} frames/s, timers "
          f"{interval} ms / {lease} ms: ownership changes {after - before}, answering MACs {sorted(macs)}, "
          f"the owner's RSS {rss_before} KiB before and {rss_kib(owner_pid)} KiB after")
    return after == before and macs == {"02:4c:32:00:00:01"}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "flood":
        flood(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "latency":
        latency(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="two rates, 2 s each")
    parser.add_argument("--hold", type=float, metavar="SECONDS", help="flood for SECONDS; ownership must not move")
    parser.add_argument("--timers", choices=sorted(TIMERS), default="tuned")
    parser.add_argument("--busy", action="store_true",
                        help="keep every CPU busy with nice 19 loops meanwhile: no wake-up from an idle CPU")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("responder.py: needs root (network namespaces)")
    need("bench")
    build_release()
    lab = Lab("rs", nodes=4)
    procs = {}
    spinners = []
    ok = True
    try:
        if args.busy:
            spinners = [subprocess.Popen(["nice", "-n", "19", "sh", "-c", "while :; do :; done"])
                        for _ in range(os.cpu_count() or 1)]
        procs = start_l2vip(lab, args.timers)
        if args.hold:
            ok = hold(lab, args.hold, args.timers, procs[1].pid)
        else:
            before = ownership_changes(lab)
            rows = benchmark(lab, [10_000, 0] if args.short else RATES, 2 if args.short else 3, procs[1].pid)
            moved = ownership_changes(lab) - before
            table(rows)
            interval, lease = TIMERS[args.timers]
            print(f"\nOwnership changes during the floods ({interval} ms / {lease} ms timers): {moved}")
            short = failures(rows)
            for failure in short:
                print(f"responder.py: FAILED: {failure}", file=sys.stderr)
            ok = moved == 0 and not short
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
        stop(procs.values())
        lab.down()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
