#!/usr/bin/env bash
# The l2vip lab: network namespaces joined by one bridge.
#
#   lab.sh up NAME NODES [--side-link|--vip-link|--node-bridge|--router|--router-pair]
#                                        build NAME-br, NAME-c, NAME-n1..NAME-nNODES
#   lab.sh down NAME                     end the lab's processes, delete its namespaces
#   lab.sh list NAME                     print the lab's namespaces
#
# Topology (addresses are documentation ranges only, RFC 5737 / RFC 3849):
#   NAME-br   bridge br0 (multicast snooping off), one port per host
#   NAME-nI   node I: eth0 192.0.2.(10+I)/24, 2001:db8::(10+I)/64, MAC 02:4c:32:00:00:0I
#   NAME-c    client: eth0 192.0.2.100/24, 2001:db8::100/64, MAC 02:4c:32:00:00:64
#   --side-link adds a direct veth, without addresses, between client eth1
#   (MAC 02:4c:32:00:01:64) and node 1 eth1 (MAC 02:4c:32:00:01:01), to send
#   frames to a node on an interface that holds no VIP.
#   --vip-link gives every node a second bridge port, eth1 (no addresses,
#   MAC 02:4c:32:00:02:0I), so VIPs can live apart from the heartbeats. Two
#   ports on one segment need arp_ignore=1 on the node (as on any such
#   host), or its kernel answers ARP for eth0's address on eth1 too.
#   --node-bridge puts each node's eth0 into a bridge br-lan inside the
#   node, which takes the node's MAC and addresses (OpenWrt's layout).
#   --router adds a router NAME-r (eth0 on the bridge: 192.0.2.1/24,
#   2001:db8::1/64, MAC 02:4c:32:00:00:fe; forwarding on, ECMP hashed on
#   ports) and behind it a far client NAME-f (eth0 203.0.113.100/24,
#   2001:db8:203::100/64; the router's eth1 is 203.0.113.1/24,
#   2001:db8:203::1/64). Nodes and far client route to each other through
#   the router; routes to VIPs come from BGP (the tests' BIRD and FRR).
#   --router-pair (2 nodes) makes the nodes a pair of routers between the
#   LAN (the bridge; the client's default route is the gateway VIP
#   192.0.2.1) and a WAN, a second switch NAME-w with a server NAME-s
#   (eth0 198.51.100.100/24, MAC 02:4c:32:00:04:64); node I's eth1 is
#   198.51.100.(10+I)/24 on it (MAC 02:4c:32:00:04:0I), and eth2 a link of
#   the pair's own for conntrackd (203.0.113.I/24). Each router forwards
#   through a stateful firewall (nftables: established and related
#   accepted, new connections only from the LAN and starting with SYN,
#   everything else dropped; nf_conntrack_tcp_loose 0, so a connection
#   met in mid-stream is invalid) and translates the LAN's IPv4 sources to
#   the WAN VIP 198.51.100.1. IPv6 is routed, not translated: the LAN is
#   2001:db8::/64, the WAN 2001:db8:2::/64 (node I 2001:db8:2::(10+I),
#   the server 2001:db8:2::100, its default route via fe80::1 on eth0: the
#   routers' link-local VIP on the WAN).
# Everything is created inside the lab's own namespaces: the root namespace's
# interfaces and routes are never touched. `up` removes a lab of the same name
# first, so a run killed half-way is cleaned up by the next one.
set -euo pipefail

die() { echo "lab.sh: $*" >&2; exit 2; }

ns_of() { ip netns list | awk '{print $1}' | grep -E "^$1-(br|c|f|r|s|w|n[0-9]+)$" || true; }

down() {
    local name=$1 ns pid
    for ns in $(ns_of "$name"); do
        # Processes left in a lab namespace were started by this lab's user;
        # end them by PID so the namespace really goes away.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
}

host_setup() {
    local ns=$1
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
        net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.default.accept_ra=0 \
        net.ipv6.conf.all.accept_ra=0 >/dev/null
}

switch() {
    # switch NS: a namespace with a bridge br0 (no snooping, no STP).
    local ns=$1
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Bridge ports need no addresses of their own (no DAD noise in captures).
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 >/dev/null
    ip -n "$ns" link add br0 type bridge mcast_snooping 0 stp_state 0 forward_delay 0
    ip -n "$ns" link set br0 up
}

attach() {
    # attach NS IFNAME MAC PORT: a veth from NS into the bridge namespace.
    local ns=$1 ifname=$2 mac=$3 port=$4
    ip -n "$ns" link add "$ifname" address "$mac" type veth peer name "$port" netns "$name-br"
    ip -n "$name-br" link set "$port" master br0 up
    ip -n "$ns" link set "$ifname" up
}

up() {
    local name=$1 nodes=$2 side=${3:-}
    [[ $name =~ ^[a-z0-9]{1,10}$ ]] || die "lab name must be 1-10 of [a-z0-9]: '$name'"
    if ! [[ $nodes =~ ^[0-9]+$ ]] || (( nodes < 1 || nodes > 9 )); then die "nodes must be 1..9"; fi
    case $side in
        ''|--side-link|--vip-link|--node-bridge|--router) ;;
        --router-pair) (( nodes == 2 )) || die "--router-pair needs 2 nodes" ;;
        *) die "unknown option '$side' (--side-link, --vip-link, --node-bridge, --router or --router-pair)" ;;
    esac
    [[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
    down "$name"
    trap 'down "$name"' ERR

    switch "$name-br"
    # A switch forwards frames as they are: where br_netfilter is loaded it
    # would validate (and drop) malformed IP frames meant for the nodes.
    ip netns exec "$name-br" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
        net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0 \
        >/dev/null 2>&1 || true

    ip netns add "$name-c"
    host_setup "$name-c"
    attach "$name-c" eth0 02:4c:32:00:00:64 pc
    ip -n "$name-c" addr add 192.0.2.100/24 dev eth0
    ip -n "$name-c" addr add 2001:db8::100/64 dev eth0 nodad

    local i
    for (( i = 1; i <= nodes; i++ )); do
        ip netns add "$name-n$i"
        host_setup "$name-n$i"
        attach "$name-n$i" eth0 "02:4c:32:00:00:0$i" "p$i"
        ip -n "$name-n$i" addr add "192.0.2.$((10 + i))/24" dev eth0
        ip -n "$name-n$i" addr add "2001:db8::$((10 + i))/64" dev eth0 nodad
    done

    if [[ $side == --vip-link ]]; then
        for (( i = 1; i <= nodes; i++ )); do
            ip netns exec "$name-n$i" sysctl -qw net.ipv4.conf.all.arp_ignore=1 >/dev/null
            attach "$name-n$i" eth1 "02:4c:32:00:02:0$i" "q$i"
        done
    elif [[ $side == --node-bridge ]]; then
        # OpenWrt's shape: each node's port is in a bridge br-lan, which
        # has the node's MAC and addresses.
        for (( i = 1; i <= nodes; i++ )); do
            ip -n "$name-n$i" addr flush dev eth0
            ip -n "$name-n$i" link add br-lan address "02:4c:32:00:00:0$i" type bridge \
                stp_state 0 forward_delay 0 mcast_snooping 0
            ip -n "$name-n$i" link set eth0 master br-lan
            ip -n "$name-n$i" link set br-lan up
            ip -n "$name-n$i" addr add "192.0.2.$((10 + i))/24" dev br-lan
            ip -n "$name-n$i" addr add "2001:db8::$((10 + i))/64" dev br-lan nodad
        done
    elif [[ $side == --router ]]; then
        ip netns add "$name-r"
        host_setup "$name-r"
        attach "$name-r" eth0 02:4c:32:00:00:fe pr
        ip -n "$name-r" addr add 192.0.2.1/24 dev eth0
        ip -n "$name-r" addr add 2001:db8::1/64 dev eth0 nodad
        ip netns exec "$name-r" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
            net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1 >/dev/null
        ip netns add "$name-f"
        host_setup "$name-f"
        ip -n "$name-f" link add eth0 address 02:4c:32:00:03:64 type veth \
            peer name eth1 address 02:4c:32:00:03:fe netns "$name-r"
        ip -n "$name-f" link set eth0 up
        ip -n "$name-r" link set eth1 up
        ip -n "$name-r" addr add 203.0.113.1/24 dev eth1
        ip -n "$name-r" addr add 2001:db8:203::1/64 dev eth1 nodad
        ip -n "$name-f" addr add 203.0.113.100/24 dev eth0
        ip -n "$name-f" addr add 2001:db8:203::100/64 dev eth0 nodad
        ip -n "$name-f" route add default via 203.0.113.1
        ip -n "$name-f" -6 route add default via 2001:db8:203::1
        for (( i = 1; i <= nodes; i++ )); do
            ip -n "$name-n$i" route add 203.0.113.0/24 via 192.0.2.1
            ip -n "$name-n$i" -6 route add 2001:db8:203::/64 via 2001:db8::1
        done
    elif [[ $side == --router-pair ]]; then
        ip -n "$name-c" route add default via 192.0.2.1
        switch "$name-w"
        ip netns add "$name-s"
        host_setup "$name-s"
        ip -n "$name-s" link add eth0 address 02:4c:32:00:04:64 type veth peer name ps netns "$name-w"
        ip -n "$name-w" link set ps master br0 up
        ip -n "$name-s" link set eth0 up
        ip -n "$name-s" addr add 198.51.100.100/24 dev eth0
        ip -n "$name-s" addr add 2001:db8:2::100/64 dev eth0 nodad
        ip -n "$name-s" -6 route add default via fe80::1 dev eth0
        for i in 1 2; do
            ip -n "$name-n$i" link add eth1 address "02:4c:32:00:04:0$i" type veth \
                peer name "q$i" netns "$name-w"
            ip -n "$name-w" link set "q$i" master br0 up
            ip -n "$name-n$i" link set eth1 up
            ip -n "$name-n$i" addr add "198.51.100.$((10 + i))/24" dev eth1
            ip -n "$name-n$i" addr add "2001:db8:2::$((10 + i))/64" dev eth1 nodad
            ip netns exec "$name-n$i" sysctl -qw net.ipv4.ip_forward=1 \
                net.ipv6.conf.all.forwarding=1 net.netfilter.nf_conntrack_tcp_loose=0 >/dev/null
            ip netns exec "$name-n$i" nft -f - <<'NFT'
table inet pair {
    chain forward_filter {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "eth0" oifname "eth1" tcp flags & (syn | ack | fin | rst) == syn ct state new accept
        iifname "eth0" oifname "eth1" meta l4proto { udp, icmp, ipv6-icmp } ct state new accept
    }
    chain nat_out {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "eth1" ip saddr 192.0.2.0/24 snat ip to 198.51.100.1
    }
}
NFT
        done
        ip -n "$name-n1" link add eth2 type veth peer name eth2 netns "$name-n2"
        for i in 1 2; do
            ip -n "$name-n$i" link set eth2 up
            ip -n "$name-n$i" addr add "203.0.113.$i/24" dev eth2
        done
    elif [[ $side == --side-link ]]; then
        ip -n "$name-c" link add eth1 address 02:4c:32:00:01:64 type veth \
            peer name eth1 address 02:4c:32:00:01:01 netns "$name-n1"
        ip -n "$name-c" link set eth1 up
        ip -n "$name-n1" link set eth1 up
    fi
    trap - ERR
}

case ${1:-} in
    up) [[ $# -ge 3 && $# -le 4 ]] || die "usage: lab.sh up NAME NODES [--side-link|--vip-link|--node-bridge|--router|--router-pair]"; up "$2" "$3" "${4:-}" ;;
    down) [[ $# -eq 2 ]] || die "usage: lab.sh down NAME"; down "$2" ;;
    list) [[ $# -eq 2 ]] || die "usage: lab.sh list NAME"; ns_of "$2" ;;
    *) die "usage: lab.sh up NAME NODES [--side-link|--vip-link|--node-bridge|--router|--router-pair] | down NAME | list NAME" ;;
esac
