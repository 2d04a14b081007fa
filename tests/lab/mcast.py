#!/usr/bin/env python3
"""Listens to or sends UDP datagrams on a multicast group, inside a lab namespace.

usage: mcast.py listen GROUP PORT LOCAL_ADDRESS SECONDS   print each datagram as "SOURCE HEX"
       mcast.py send DESTINATION PORT LOCAL_ADDRESS TTL HEX [HEX ...]

LOCAL_ADDRESS is the IPv4 address of the interface to join or send on.
DESTINATION is a group or a unicast address; TTL is the TTL each datagram
leaves with (255 as a heartbeat from the link, less as one from beyond it).
"""
import socket
import struct
import sys
import time


def main() -> int:
    if len(sys.argv) < 6 or sys.argv[1] not in ("listen", "send"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, group, port, local = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if mode == "listen":
        seconds = float(sys.argv[5])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((group, port))
        membership = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(local))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data, source = sock.recvfrom(4096)
            except socket.timeout:
                break
            print(source[0], data.hex(), flush=True)
        return 0
    if len(sys.argv) < 7:
        print(__doc__, file=sys.stderr)
        return 2
    ttl = int(sys.argv[5])
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(local))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    for text in sys.argv[6:]:
        sock.sendto(bytes.fromhex(text), (group, port))
        time.sleep(0.01)
    return 0


if __name__ == "__main__":
    sys.exit(main())
