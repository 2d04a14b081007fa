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
# n1 holds its claims for the start-up hold (one lease) before it takes the
# VIPs; give it that, one interval and a second of slack.
acquired=false
for _ in $(seq 1 $(((LEASE_MS + INTERVAL_MS + 1000) / 100))); do
    if grep -q "acquired web6" "$work/n1.log" 2>/dev/null; then acquired=true; break; fi
    sleep 0.1
done
if ! $acquired; then
    echo "demo.sh: FAILED: n1 did not take the VIPs within $((LEASE_MS + INTERVAL_MS + 1000)) ms; its log:" >&2
    sed 's/^/   /' "$work/n1.log" >&2
    exit 1
fi
sleep 0.5
status 1
explain "n1 has the highest priority, so it owns both VIPs; n2 and n3 stand by."

say "The client pings the VIPs"
in_client ping -c 3 -i 0.2 192.0.2.200 | sed 's/^/   /'
in_client ping -c 3 -i 0.2 2001:db8::200 | sed 's/^/   /'

# Pings every 10 ms for a few seconds in the background; the longest
# silence between two answers (or from the start, or to the end, of the
# probe) is the outage the client saw.
probe_start() {
    probe_began=$(date +%s.%N)
    ip netns exec "$lab-c" ping -D -n -i 0.01 -w "$1" 192.0.2.200 >"$work/probe" 2>&1 &
    probe=$!
    sleep 1
}
# probe_report BOUND_MS: the outage, and a failure when the client got no
# answer or waited longer than BOUND_MS.
probe_report() {
    local status=0
    wait "$probe" || status=$?
    python3 - "$work/probe" "$probe_began" "$(date +%s.%N)" "$1" "$status" <<'PY'
import re, sys
path, began, ended, bound_ms, status = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
times = [float(m.group(1)) for m in map(re.compile(r"^\[(\d+\.\d+)\].*bytes from").match, open(path)) if m]
if not times:
    sys.exit(f"demo.sh: FAILED: the client got no answer at all (ping exited {status})")
gap = max(b - a for a, b in zip([began] + times, times + [ended]))
print(f"   The client got {len(times)} answers; its longest wait between two: {gap * 1000:.0f} ms")
if gap * 1000 > bound_ms:
    sys.exit(f"demo.sh: FAILED: the client waited {gap * 1000:.0f} ms, more than the bound of {bound_ms} ms")
PY
}

say "n1 fails like a server losing power, while the client pings every 10 ms"
probe_start 4
kill -KILL "${pids[0]}"
ip -n "$lab-n1" link set eth0 down
explain "l2vip on n1 is killed (SIGKILL: no goodbye) and n1's network link goes down." \
    "n2 and n3 stop hearing n1. After the lease ($LEASE_MS ms) n2, the next in line, takes the" \
    "VIPs and tells the switch and the client (gratuitous ARP, unsolicited Neighbor Advertisement)."
# Bound: the lease, one heartbeat interval, and slack for the first
# announcement and the next 10 ms ping.
probe_report $((LEASE_MS + INTERVAL_MS + 300))
status 2

say "Planned maintenance: 'l2vip drain' on n2, while the client pings every 10 ms"
probe_start 3
"$bin" drain --socket "$work/n2.sock" | sed 's/^/   /'
explain "n2 gives the VIPs up at once and says so; n3 takes them without waiting for any lease." \
    "n2 keeps accepting traffic for the VIPs a while longer (linger) for clients that were slow to follow."
# Bound: a planned move waits for no lease; one interval and slack.
probe_report $((INTERVAL_MS + 300))
status 3

say "Done: stopping the daemons and removing the lab."
