// Small socket helpers for the bench threads. Every function returns 0 (or an
// fd) on success and -errno on failure; none throws.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "../engine/address.h"

namespace fulcrum::bench {

// The engine's socket address (one parser for both libraries).
using Endpoint = SocketAddress;

// A numeric IPv4/IPv6 host and a port. -EINVAL when host is not numeric.
inline int make_endpoint(const std::string& host, int port, Endpoint* out) { return parse_socket_address(host, port, out); }
inline int endpoint_port(const Endpoint& endpoint) { return socket_port(endpoint); }

// Monotonic clock in nanoseconds.
uint64_t now_ns();

int set_nonblocking(int fd);
// Blocking connect bounded by timeout_ms; the socket is left blocking.
// Returns the fd or -errno (ETIMEDOUT when the bound passes).
int connect_tcp(const Endpoint& target, int timeout_ms);
// Writes all of [data, data+size) to a blocking socket. 0 or -errno.
int write_all(int fd, const void* data, size_t size);
// Sets SO_RCVTIMEO, so a blocking read returns EAGAIN after ms.
int set_receive_timeout(int fd, int ms);

}  // namespace fulcrum::bench
