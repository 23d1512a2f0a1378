#include "address.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace fulcrum {

int parse_socket_address(const std::string& host, int port, SocketAddress* out) {
  if (port < 0 || port > 65535) return -EINVAL;
  *out = SocketAddress{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    out->length = sizeof(sockaddr_in);
    return 0;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    out->length = sizeof(sockaddr_in6);
    return 0;
  }
  return -EINVAL;
}

int socket_port(const SocketAddress& address) {
  if (address.family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&address.storage)->sin_port);
  if (address.family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&address.storage)->sin6_port);
  return 0;
}

bool is_wildcard_address(const SocketAddress& address) {
  if (address.family() == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address.storage);
    return IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr);
  }
  return reinterpret_cast<const sockaddr_in&>(address.storage).sin_addr.s_addr == htonl(INADDR_ANY);
}

std::string format_socket_address(const SocketAddress& address) {
  // snprintf rather than string concatenation: GCC 12 warns falsely
  // (-Wrestrict) on "[" + std::string once this is inlined.
  char host[INET6_ADDRSTRLEN] = "?";
  char text[INET6_ADDRSTRLEN + 16];
  // An IPv4 client of a dual-stack [::] listener is ::ffff:a.b.c.d to the
  // kernel; people and metric labels know it as a.b.c.d.
  const sockaddr_storage plain = unmap_ipv4(address.storage);
  if (plain.ss_family == AF_INET) {
    const auto& in4 = reinterpret_cast<const sockaddr_in&>(plain);
    inet_ntop(AF_INET, &in4.sin_addr, host, sizeof host);
    snprintf(text, sizeof text, "%s:%d", host, ntohs(in4.sin_port));
  } else if (plain.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&plain)->sin6_addr, host, sizeof host);
    snprintf(text, sizeof text, "[%s]:%d", host, socket_port(address));
  } else {
    return "?";
  }
  return text;
}

sockaddr_storage unmap_ipv4(const sockaddr_storage& address) {
  if (address.ss_family != AF_INET6) return address;
  const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
  if (!IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) return address;
  sockaddr_storage out{};
  auto& v4 = reinterpret_cast<sockaddr_in&>(out);
  v4.sin_family = AF_INET;
  v4.sin_port = v6.sin6_port;
  std::memcpy(&v4.sin_addr, &v6.sin6_addr.s6_addr[12], 4);
  return out;
}

}  // namespace fulcrum
