// Socket addresses: parsing the numeric host/port pairs the control plane
// sends, and formatting them back for messages.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

namespace fulcrum {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

// Parses a numeric IPv4 or IPv6 literal (no brackets) and a port into *out.
// Returns 0, or -EINVAL when host is not a numeric address.
int parse_socket_address(const std::string& host, int port, SocketAddress* out);

// The port, in host byte order.
int socket_port(const SocketAddress& address);

// Whether address is 0.0.0.0 or [::]: the local address of what arrives on
// it is the kernel's choice per connection or datagram.
bool is_wildcard_address(const SocketAddress& address);

// "127.0.0.1:80" or "[::1]:80"; an IPv4-mapped address (::ffff:127.0.0.1) as "127.0.0.1:80".
std::string format_socket_address(const SocketAddress& address);

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it is
// (port kept); any other address unchanged. A [::] listener sees IPv4
// clients so: ACLs, limits, PROXY headers and logs speak of them as IPv4.
sockaddr_storage unmap_ipv4(const sockaddr_storage& address);

}  // namespace fulcrum
