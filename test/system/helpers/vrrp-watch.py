#!/usr/bin/env python3
"""Watch a link for what a VRRP takeover shows: adverts and ARP from a VIP.

  vrrp-watch.py INTERFACE VIP

Prints one JSON line per packet seen on INTERFACE (run it in a host's
namespace): {"at": epoch ms, "kind": "vrrp", "src": IP, "vrid": N, "prio": N}
for each VRRP advertisement (IP protocol 112), {"at", "kind": "arp", "op": N}
for each ARP whose sender address is VIP (a gratuitous ARP, or a Master's
reply), and "ready" once listening. Runs until killed. Python, not Node: an
AF_PACKET socket sees every frame on the link, and Node has no raw sockets.
"""
import json, socket, struct, sys, time

ETH_P_ALL = 0x0003

def main():
    interface, vip = sys.argv[1], socket.inet_aton(sys.argv[2])
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((interface, 0))
    print("ready", flush=True)
    while True:
        frame, meta = sock.recvfrom(2048)
        # meta[2] is the packet type: PACKET_OUTGOING (4) frames are our own host's.
        if len(frame) < 14 or meta[2] == 4:
            continue
        ethertype = struct.unpack("!H", frame[12:14])[0]
        at = int(time.time() * 1000)
        if ethertype == 0x0806 and len(frame) >= 42:
            op = struct.unpack("!H", frame[20:22])[0]
            if frame[28:32] == vip:
                print(json.dumps({"at": at, "kind": "arp", "op": op}), flush=True)
        elif ethertype == 0x0800 and len(frame) >= 34:
            ihl = (frame[14] & 0x0F) * 4
            if frame[23] != 112 or len(frame) < 14 + ihl + 4:
                continue
            src = socket.inet_ntoa(frame[26:30])
            vrrp = frame[14 + ihl:]
            print(json.dumps({"at": at, "kind": "vrrp", "src": src, "vrid": vrrp[1], "prio": vrrp[2]}), flush=True)

if __name__ == "__main__":
    main()
