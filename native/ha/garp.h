// Gratuitous ARP: after taking over a virtual IP, the new Master tells the
// link that the address now lives at its MAC, so neighbours and switches
// update at once instead of when their ARP entries expire. Sent through an
// AF_PACKET socket (ARP is below IP). Functions return -errno, never throw.
#pragma once

#include <cstdint>

namespace fulcrum::ha {

struct GarpSocket {
  int fd = -1;
  int ifindex = 0;
  uint8_t mac[6] = {};
};

// Opens an AF_PACKET/SOCK_DGRAM socket for ARP on `ifname` and reads the
// interface's MAC (the sender hardware address). Returns 0 or -errno.
int garp_open(const char* ifname, GarpSocket* out);

// Broadcasts one gratuitous ARP request for `ip` (network order): sender and
// target protocol address both `ip`, sender hardware address our MAC, as
// keepalived and the kernel's arping -U do. Returns 0 or -errno.
int garp_send(const GarpSocket& socket, uint32_t ip);

void garp_close(GarpSocket* socket);

}  // namespace fulcrum::ha
