#!/usr/bin/env python3
"""A long-lived TCP stream for the router-pair lab.

  stream.py serve ADDRESS PORT SECONDS
      accepts one connection and sends 1 KiB every 10 ms to it for SECONDS
      (or until the connection fails); prints how it ended.
  stream.py fetch ADDRESS PORT SECONDS
      connects and reads for SECONDS; prints one line per read ("MS BYTES",
      milliseconds since the epoch), then "end REASON" (time, eof, reset or
      the error).
"""
import socket
import sys
import time


def serve(address: str, port: int, seconds: float) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(1)
    listener.settimeout(seconds)
    try:
        conn, _ = listener.accept()
    except OSError as e:
        print(f"end accept: {e}", flush=True)
        return 1
    # Bounded: a peer that stops reading makes send wait, never forever.
    conn.settimeout(1.0)
    block = b"x" * 1024
    end = time.monotonic() + seconds
    reason = "time"
    while time.monotonic() < end:
        try:
            conn.sendall(block)
        except socket.timeout:
            continue
        except OSError as e:
            reason = f"{type(e).__name__}: {e}"
            break
        time.sleep(0.01)
    print(f"end {reason}", flush=True)
    conn.close()
    return 0


def fetch(address: str, port: int, seconds: float) -> int:
    end = time.monotonic() + seconds
    try:
        conn = socket.create_connection((address, port), timeout=5)
    except OSError as e:
        print(f"end connect: {e}", flush=True)
        return 1
    reason = "time"
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        conn.settimeout(min(left, 0.5))
        try:
            data = conn.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            reason = "reset"
            break
        except OSError as e:
            reason = f"{type(e).__name__}: {e}"
            break
        if not data:
            reason = "eof"
            break
        print(f"{int(time.time() * 1000)} {len(data)}", flush=True)
    print(f"end {reason}", flush=True)
    conn.close()
    return 0


def main() -> int:
    if len(sys.argv) != 5 or sys.argv[1] not in ("serve", "fetch"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, address, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    return serve(address, port, seconds) if mode == "serve" else fetch(address, port, seconds)


if __name__ == "__main__":
    sys.exit(main())
