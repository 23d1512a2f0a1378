// Adding and removing an IPv4 address on an interface through rtnetlink
// (what `ip addr add|del` does), for the VRRP virtual IPs: one synchronous
// request and its acknowledgement, no process to spawn, so a takeover costs
// microseconds here instead of the milliseconds of starting `ip`.
#pragma once

#include <cstdint>

namespace fulcrum::ha {

// Adds (`add`) or removes `ip` (network order) with `prefix_length` on the
// interface `ifindex`. Returns 0, or -errno from the kernel's answer:
// -EEXIST (add: already there), -EADDRNOTAVAIL (del: not there), -EPERM (not
// root), -ENODEV (no such interface).
int netlink_ipv4_address(bool add, int ifindex, uint32_t ip, uint8_t prefix_length);

}  // namespace fulcrum::ha
