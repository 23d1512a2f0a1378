// Listening sockets. Each worker has its own socket per listen address, all
// bound with SO_REUSEPORT so the kernel spreads connections across workers
// without a shared accept lock.
#pragma once

#include "address.h"

namespace fulcrum {

// Opens a non-blocking TCP socket bound to address and listening; with
// freebind, the address need not be on this host yet (see set_freebind). An
// IPv6 address is dual-stack (IPV6_V6ONLY=0) unless ipv6_only.
// Returns the fd, or -errno (EADDRINUSE, EADDRNOTAVAIL, EACCES, EMFILE...).
int open_tcp_listener(const SocketAddress& address, bool freebind, bool ipv6_only);

// IP_FREEBIND / IPV6_FREEBIND on fd: bind an address this host does not hold
// yet, such as a VRRP virtual IP on the backup node, which then serves the
// moment the address arrives (HAProxy's "freebind"; see docs/ha.md). Only
// listeners on a configured virtual IP get it, so a mistyped listen address
// still fails with EADDRNOTAVAIL. Returns 0 or -errno.
int set_freebind(int fd, const SocketAddress& address);

// The listen-address lock: binds a throwaway socket of the same kind to
// address WITHOUT SO_REUSEPORT (TCP keeps SO_REUSEADDR, so TIME_WAIT does not
// count) and closes it. -EADDRINUSE means another socket holds the address,
// such as a second Fulcrum whose SO_REUSEPORT group a plain bind would join.
// Returns 0 when the address is free, or -errno.
int probe_exclusive_bind(const SocketAddress& address, bool udp, bool freebind, bool ipv6_only);

}  // namespace fulcrum
