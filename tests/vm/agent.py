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
import time

# A request not acknowledged within this is sent again (the agent runs a
# request it receives twice once).
ACK_WAIT = 5.0


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    path, seconds, command = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    deadline = time.monotonic() + seconds
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(seconds)
        sock.connect(path)
        # An id per request: an answer to a request given up on earlier
        # (the agent still ran it) may come first, and is skipped.
        ident = os.urandom(8).hex().encode()
        request = ident + b" " + base64.b64encode(command.encode()) + b"\n"
        sock.sendall(request)
        acknowledged = False
        resend = time.monotonic() + ACK_WAIT
        buffered = b""
        while True:
            while b"\n" not in buffered:
                now = time.monotonic()
                if now >= deadline:
                    return 255
                if not acknowledged and now >= resend:
                    sock.sendall(request)
                    resend = now + ACK_WAIT
                until = deadline if acknowledged else min(deadline, resend)
                sock.settimeout(max(until - now, 0.01))
                try:
                    chunk = sock.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return 255
                buffered += chunk
            line, _, buffered = buffered.partition(b"\n")
            fields = line.strip().split(b" ")
            if len(fields) < 2 or fields[0] != ident:
                continue
            if fields[1] == b"-":
                acknowledged = True
                continue
            break
    except OSError:
        return 255
    status = fields[1]
    output = fields[2] if len(fields) > 2 else b""
    sys.stdout.write(base64.b64decode(output).decode(errors="replace"))
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
