#!/usr/bin/env bash
# l2vip demo: one node answers for an IPv4 and an IPv6 VIP, in a throwaway
# lab of network namespaces (tests/lab/lab.sh). Needs root; leaves nothing
# behind. Run from anywhere: sudo tests/lab/demo.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lab=demo$$
lab=${lab:0:10}
work=$(mktemp -d)
daemon_pid=
capture_pid=

cleanup() {
    local pid
    for pid in $daemon_pid $capture_pid; do
        if kill -TERM "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
    done
    "$here/lab.sh" down "$lab" || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_client() { ip netns exec "$lab-c" "$@"; }

[[ $(id -u) == 0 ]] || { echo "demo.sh: needs root (it builds network namespaces): sudo $0" >&2; exit 2; }
for tool in ip arping ndisc6 tcpdump; do
    command -v "$tool" >/dev/null || { echo "demo.sh: needs $tool (see .ci/run for the packages)" >&2; exit 2; }
done

say "Building l2vip (release)"
(cd "$root" && cargo build --release --locked --quiet)
bin=$root/target/release/l2vip

say "A lab: node n1 (192.0.2.11, MAC 02:4c:32:00:00:01) and a client (192.0.2.100) on one switch"
"$here/lab.sh" up "$lab" 1

cat > "$work/config.json" <<JSON
{
  "node": "n1",
  "control": {"socket": "$work/control.sock"},
  "state_file": null,
  "services": [
    {"name": "web",  "ip": "192.0.2.200",   "interface": "eth0"},
    {"name": "web6", "ip": "2001:db8::200", "interface": "eth0"}
  ]
}
JSON
echo "config:"; sed 's/^/  /' "$work/config.json"

say "The client believes the VIPs live at 02:4c:32:00:00:99 (a stale cache)"
in_client ip neigh replace 192.0.2.200 lladdr 02:4c:32:00:00:99 dev eth0 nud stale
in_client ip neigh replace 2001:db8::200 lladdr 02:4c:32:00:00:99 dev eth0 nud stale
in_client ip neigh show 192.0.2.200; in_client ip neigh show 2001:db8::200

say "Starting l2vip on n1; the client records what it sends"
# `ip netns exec` execs tcpdump, so $! is tcpdump's own PID.
ip netns exec "$lab-c" tcpdump --immediate-mode -i eth0 -e -n -l \
    'ether src 02:4c:32:00:00:01 and (arp or (icmp6 and ip6[40] == 136))' >"$work/capture" 2>/dev/null &
capture_pid=$!
sleep 1
ip netns exec "$lab-n1" "$bin" daemon -c "$work/config.json" 2>"$work/log" &
daemon_pid=$!
sleep 2.5
sed 's/^/  n1 | /' "$work/log"

say "l2vip status (over its control socket)"
"$bin" status --socket "$work/control.sock" | sed 's/^/  /'

say "Without asking anything, the client's cache now points at n1 (gratuitous ARP / unsolicited NA)"
in_client ip neigh show 192.0.2.200; in_client ip neigh show 2001:db8::200

say "The client asks: arping 192.0.2.200, ndisc6 2001:db8::200"
in_client arping -c 2 -I eth0 192.0.2.200 || true
in_client ndisc6 -1 2001:db8::200 eth0 || true

say "An address that is not a VIP gets no answer: arping 192.0.2.201"
in_client arping -c 1 -w 2 -I eth0 192.0.2.201 || true

kill -TERM "$capture_pid" 2>/dev/null; wait "$capture_pid" 2>/dev/null || true; capture_pid=
say "What n1 sent, as the client's tcpdump decoded it (first lines)"
head -n 6 "$work/capture" | cut -c 17-

say "Stopping l2vip (SIGTERM); its counters:"
kill -USR1 "$daemon_pid"; sleep 0.3
kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=
grep 'counters:' "$work/log" | tail -n 1 | sed 's/.*counters: //' | tr ' ' '\n' | grep -v '=0$' | sed 's/^/  /'
say "Done: the lab is removed."
