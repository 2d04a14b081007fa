#!/usr/bin/env python3
"""Sends raw Ethernet frames out of one interface of a lab namespace.

usage: inject.py IFACE HEX [HEX ...]

Run it inside a lab namespace (ip netns exec NAME-c ...): each HEX argument
is one whole frame, destination MAC first, sent as is.
"""
import socket
import sys


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((sys.argv[1], 0))
    for text in sys.argv[2:]:
        sock.send(bytes.fromhex(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
