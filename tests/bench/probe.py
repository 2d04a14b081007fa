#!/usr/bin/env python3
"""A client-side probe: asks who has each VIP every 10 ms, on a raw socket,
and prints each answer as "<epoch seconds> <MAC> <VIP>" the moment it
arrives.

    probe.py IFACE VIP[,VIP...] SECONDS [INTERVAL_MS]

IPv4 VIPs are asked with ARP requests, IPv6 VIPs with Neighbor
Solicitations to their solicited-node group. Whoever answers (l2vip's
responder or a kernel that has the address) is recorded by its MAC, so the
moment the answers change from the old owner's MAC to the new owner's is
the moment the client could switch. Runs SECONDS, then exits; lines are
flushed one by one.
"""

import ipaddress
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003


def mac_of(iface):
    with open(f"/sys/class/net/{iface}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def ipv4_of(iface):
    import fcntl

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", iface.encode()[:15]))
    return packed[20:24]


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def arp_request(mac, my_ip, vip):
    eth = b"\xff" * 6 + mac + b"\x08\x06"
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + my_ip + b"\0" * 6 + vip
    return eth + arp


def neighbor_solicit(mac, my_ip6, vip6):
    group = bytes.fromhex("ff0200000000000000000001ff") + vip6[13:]
    dst_mac = b"\x33\x33" + group[12:]
    body = struct.pack("!BBHI", 135, 0, 0, 0) + vip6 + struct.pack("!BB", 1, 1) + mac
    pseudo = my_ip6 + group + struct.pack("!I", len(body)) + b"\0\0\0\x3a"
    body = body[:2] + struct.pack("!H", checksum(pseudo + body)) + body[4:]
    ip6 = struct.pack("!IHBB", 0x60000000, len(body), 58, 255) + my_ip6 + group
    return dst_mac + mac + b"\x86\xdd" + ip6 + body


def link_local(mac):
    eui = bytearray(mac[:3] + b"\xff\xfe" + mac[3:])
    eui[0] ^= 0x02
    return bytes.fromhex("fe800000000000000000000000000000")[:8] + bytes(eui)


def main():
    iface, vip_text, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    interval = float(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0.01
    vips = [ipaddress.ip_address(text) for text in vip_text.split(",")]
    mac = mac_of(iface)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    sock.setblocking(False)
    requests = []
    for vip in vips:
        if vip.version == 4:
            requests.append(arp_request(mac, ipv4_of(iface), vip.packed))
        else:
            requests.append(neighbor_solicit(mac, link_local(mac), vip.packed))
    v4 = {vip.packed: str(vip) for vip in vips if vip.version == 4}
    v6 = {vip.packed: str(vip) for vip in vips if vip.version == 6}
    end = time.time() + seconds
    next_send = time.time()
    out = sys.stdout
    while True:
        now = time.time()
        if now >= end:
            return
        if now >= next_send:
            for request in requests:
                try:
                    sock.send(request)
                except OSError:
                    pass  # the interface is down or gone for a moment
            next_send += interval
            if next_send < now:
                next_send = now + interval
        ready, _, _ = select.select([sock], [], [], max(0.0, min(next_send, end) - time.time()))
        if not ready:
            continue
        while True:
            try:
                frame, meta = sock.recvfrom(2048)
            except BlockingIOError:
                break
            # Answers to this probe and announcements to everyone; not the
            # answers to a flood sent from another MAC.
            if meta[2] == socket.PACKET_OUTGOING or len(frame) < 14:
                continue
            if frame[0:6] != mac and not frame[0] & 1:
                continue
            kind = frame[12:14]
            src = frame[6:12]
            answered = None
            if kind == b"\x08\x06" and len(frame) >= 42:
                op, spa = struct.unpack("!H", frame[20:22])[0], frame[28:32]
                if op == 2:
                    answered = v4.get(spa)
            elif kind == b"\x86\xdd" and len(frame) >= 78:
                if frame[20] == 58 and frame[54] == 136:
                    answered = v6.get(frame[62:78])
            if answered:
                out.write(f"{time.time():.6f} {src.hex(':')} {answered}\n")
                out.flush()


if __name__ == "__main__":
    main()
