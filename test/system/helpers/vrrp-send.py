#!/usr/bin/env python3
"""Send crafted VRRP packets (IP protocol 112) for the hostile-packet test.

  vrrp-send.py MODE --source IP [--dest 224.0.0.18] [--vrid 51] [--priority 254]
               [--vip 10.200.0.100] [--count 5]

MODE: valid, random, v2 (version 2, checksum correct), vrid (VRID + 1), short
(6 bytes), ttl64 (otherwise valid, TTL 64), badsum (checksum off by one),
count (says 2 addresses, carries 1), type (type 2), truncated-ip (IP header
option length lies: sent as raw payload garbage). The kernel builds the IP
header; TTL is 255 except for ttl64. Python, not Node: Node has no raw sockets.
"""
import argparse, os, socket, struct

def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

def advert(src, dst, vrid, priority, vips, version=3, type_=1, count=None, interval_cs=10):
    count = len(vips) if count is None else count
    body = struct.pack("!BBBBH", (version << 4) | type_, vrid, priority, count, interval_cs & 0xFFF) + b"\0\0"
    body += b"".join(socket.inet_aton(v) for v in vips)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 112, len(body))
    csum = checksum(pseudo + body)
    return body[:6] + struct.pack("!H", csum) + body[8:]

def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--source", required=True)
    p.add_argument("--dest", default="224.0.0.18")
    p.add_argument("--vrid", type=int, default=51)
    p.add_argument("--priority", type=int, default=254)
    p.add_argument("--vip", default="10.200.0.100")
    p.add_argument("--count", type=int, default=5)
    a = p.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
    ttl = 64 if a.mode == "ttl64" else 255
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
    for _ in range(a.count):
        vips = [a.vip]
        if a.mode in ("valid", "ttl64"):
            pkt = advert(a.source, a.dest, a.vrid, a.priority, vips)
        elif a.mode == "random":
            pkt = os.urandom(8 + (os.urandom(1)[0] % 64))
        elif a.mode == "v2":
            pkt = advert(a.source, a.dest, a.vrid, a.priority, vips, version=2)
        elif a.mode == "vrid":
            pkt = advert(a.source, a.dest, (a.vrid % 255) + 1, a.priority, vips)
        elif a.mode == "short":
            pkt = advert(a.source, a.dest, a.vrid, a.priority, vips)[:6]
        elif a.mode == "badsum":
            good = advert(a.source, a.dest, a.vrid, a.priority, vips)
            pkt = good[:6] + struct.pack("!H", (struct.unpack("!H", good[6:8])[0] + 1) & 0xFFFF) + good[8:]
        elif a.mode == "count":
            pkt = advert(a.source, a.dest, a.vrid, a.priority, vips, count=2)
        elif a.mode == "type":
            pkt = advert(a.source, a.dest, a.vrid, a.priority, vips, type_=2)
        else:
            raise SystemExit("unknown mode " + a.mode)
        s.sendto(pkt, (a.dest, 0))

main()
