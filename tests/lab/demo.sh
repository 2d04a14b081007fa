#!/usr/bin/env bash
# l2vip demo: three nodes keep two virtual IPs reachable for a client, in a
# throwaway lab of network namespaces (tests/lab/lab.sh). A node crashes,
# then one is drained for maintenance; the client's pings tell how long
# each interruption lasted. Needs root; leaves nothing behind.
#
#   sudo tests/lab/demo.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lab=demo$$
lab=${lab:0:10}
work=$(mktemp -d)
pids=()

# Shortened timers (the defaults are a heartbeat every 1 s and a 10 s lease).
INTERVAL_MS=200
LEASE_MS=1000

cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.3
    "$here/lab.sh" down "$lab" || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
explain() { printf '   %s\n' "$@"; }
in_client() { ip netns exec "$lab-c" "$@"; }
status() { "$bin" status --socket "$work/n$1.sock" | sed 's/^/   /'; }

[[ $(id -u) == 0 ]] || { echo "demo.sh: needs root (it builds network namespaces): sudo $0" >&2; exit 2; }
"$root/tests/need" demo

say "Building l2vip (release)"
(cd "$root" && cargo build --release --locked --quiet)
bin=$root/target/release/l2vip

say "A lab: three servers n1, n2, n3 and a client on one switch"
"$here/lab.sh" up "$lab" 3
explain "n1 192.0.2.11, n2 192.0.2.12, n3 192.0.2.13, client 192.0.2.100 (and IPv6 2001:db8::...)." \
    "The service addresses (VIPs) 192.0.2.200 and 2001:db8::200 belong to none of them:" \
    "l2vip decides which server answers for them, and moves them when that server fails."
# One key for the cluster: heartbeats are signed with it, and a node with
# peers but no key does not start (unless its file says insecure).
head -c 32 /dev/urandom | base64 >"$work/key"
chmod 600 "$work/key"
for i in 1 2 3; do
    peers=$(for j in 1 2 3; do if [[ $j != "$i" ]]; then printf '"192.0.2.%d",' $((10 + j)); fi; done)
    cat >"$work/n$i.json" <<JSON
{
  "node": "n$i",
  "priority": $((200 - 50 * i)),
  "heartbeat": {"interval_ms": $INTERVAL_MS, "lease_ms": $LEASE_MS, "peers": [${peers%,}],
                "key_file": "$work/key"},
  "control": {"socket": "$work/n$i.sock"},
  "state_file": null,
  "services": [
    {"name": "web",  "ip": "192.0.2.200",   "interface": "eth0"},
    {"name": "web6", "ip": "2001:db8::200", "interface": "eth0"}
  ]
}
JSON
done
explain "Each node's configuration is the default apart from the timers: a heartbeat every" \
    "$INTERVAL_MS ms, and a node silent for $LEASE_MS ms is considered dead. The nodes share" \
    "a key (made with head -c 32 /dev/urandom | base64) that signs every heartbeat. n1's file:"
sed 's/^/     /' "$work/n1.json"

say "Starting l2vip on the three nodes"
for i in 1 2 3; do
    ip netns exec "$lab-n$i" "$bin" daemon -c "$work/n$i.json" 2>"$work/n$i.log" &
    pids+=($!)
done
for _ in $(seq 1 50); do
    grep -q "acquired web6" "$work/n1.log" 2>/dev/null && break
    sleep 0.1
done
sleep 0.5
status 1
explain "n1 has the highest priority, so it owns both VIPs; n2 and n3 stand by."

say "The client pings the VIPs"
in_client ping -c 3 -i 0.2 192.0.2.200 | sed 's/^/   /'
in_client ping -c 3 -i 0.2 2001:db8::200 | sed 's/^/   /'

# Pings every 10 ms for a few seconds in the background; the longest
# silence between two answers is the outage the client saw.
probe_start() {
    ip netns exec "$lab-c" ping -D -n -i 0.01 -w "$1" 192.0.2.200 >"$work/probe" 2>&1 &
    probe=$!
    sleep 1
}
probe_report() {
    wait "$probe" 2>/dev/null || true
    python3 - "$work/probe" <<'PY'
import re, sys
times = [float(m.group(1)) for m in map(re.compile(r"^\[(\d+\.\d+)\].*bytes from").match, open(sys.argv[1])) if m]
gap = max((b - a for a, b in zip(times, times[1:])), default=0.0)
print(f"   The client got {len(times)} answers; its longest wait between two: {gap * 1000:.0f} ms")
PY
}

say "n1 fails like a server losing power, while the client pings every 10 ms"
probe_start 4
kill -KILL "${pids[0]}"
ip -n "$lab-n1" link set eth0 down
explain "l2vip on n1 is killed (SIGKILL: no goodbye) and n1's network link goes down." \
    "n2 and n3 stop hearing n1. After the lease ($LEASE_MS ms) n2, the next in line, takes the" \
    "VIPs and tells the switch and the client (gratuitous ARP, unsolicited Neighbor Advertisement)."
probe_report
status 2

say "Planned maintenance: 'l2vip drain' on n2, while the client pings every 10 ms"
probe_start 3
"$bin" drain --socket "$work/n2.sock" | sed 's/^/   /'
explain "n2 gives the VIPs up at once and says so; n3 takes them without waiting for any lease." \
    "n2 keeps accepting traffic for the VIPs a while longer (linger) for clients that were slow to follow."
probe_report
status 3

say "Done: stopping the daemons and removing the lab."
