#!/usr/bin/env python3
"""Runs one command in a lab VM through its agent and prints its output.

usage: agent.py SOCKET SECONDS COMMAND

Exits with the command's status; 255 when the agent did not answer within
SECONDS (the VM is not up yet, or the command took longer).
"""
import base64
import os
import socket
import sys


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    path, seconds, command = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(seconds)
        sock.connect(path)
        # An id per request: an answer to a request given up on earlier
        # (the agent still ran it) may come first, and is skipped.
        ident = os.urandom(8).hex().encode()
        sock.sendall(ident + b" " + base64.b64encode(command.encode()) + b"\n")
        buffered = b""
        while True:
            while b"\n" not in buffered:
                chunk = sock.recv(65536)
                if not chunk:
                    return 255
                buffered += chunk
            line, _, buffered = buffered.partition(b"\n")
            fields = line.strip().split(b" ")
            if len(fields) >= 2 and fields[0] == ident:
                break
    except OSError:
        return 255
    status = fields[1]
    output = fields[2] if len(fields) > 2 else b""
    sys.stdout.write(base64.b64decode(output).decode(errors="replace"))
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
