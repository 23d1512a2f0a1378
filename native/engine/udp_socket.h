// UDP socket helpers: the per-worker listening socket (SO_REUSEPORT, packet
// info on wildcard addresses), the per-flow connected upstream socket, and the
// ancillary data that carries the address a client sent to (IP_PKTINFO /
// IPV6_PKTINFO) in and back out.
#pragma once

#include <sys/socket.h>

#include <cstddef>

#include "address.h"

namespace fulcrum {

// Room for one IP_PKTINFO or IPV6_PKTINFO control message.
inline constexpr size_t kPacketInfoControlBytes = 64;

// Opens a non-blocking UDP socket bound to address with SO_REUSEPORT (one per
// worker), IPV6_V6ONLY as ipv6_only says for IPv6, large buffers, and, on a wildcard address,
// packet info so each datagram says which local address it was sent to.
// Returns the fd, or -errno (EADDRINUSE, EADDRNOTAVAIL, EACCES, EMFILE...).
int open_udp_listener(const SocketAddress& address, bool freebind, bool ipv6_only);

// Opens a non-blocking UDP socket connected to backend: replies arrive only
// from it, and an ICMP port unreachable surfaces as ECONNREFUSED.
// Returns the fd, or -errno.
int open_udp_upstream(const SocketAddress& backend);

// Reads the destination address of a received datagram from its packet-info
// control message into *local (the port is set to `port`, the listener's).
// Returns false when the message carries none.
bool read_packet_destination(const msghdr& message, int port, SocketAddress* local);

// Writes a control message into control (kPacketInfoControlBytes) that makes
// sendmsg() use local's address as the source. Returns the bytes used.
size_t write_packet_source(const SocketAddress& local, void* control);

}  // namespace fulcrum
