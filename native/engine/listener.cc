#include "listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace fulcrum {

int set_freebind(int fd, const SocketAddress& address) {
  int one = 1;
  const int result = address.family() == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one)
                                                 : setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one);
  return result < 0 ? -errno : 0;
}

int open_tcp_listener(const SocketAddress& address, bool freebind, bool ipv6_only) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  const int v6only = ipv6_only ? 1 : 0;
  // SO_REUSEADDR: restart while old connections sit in TIME_WAIT.
  // SO_REUSEPORT: one socket per worker on the same address.
  // IPV6_V6ONLY, always set: [::]:80 takes IPv4 clients too unless ipv6_only
  // (HAProxy's :::80 with v6only off), never left to net.ipv6.bindv6only.
  // TCP_NODELAY: accepted sockets inherit it, which saves a setsockopt per client.
  if ((freebind && set_freebind(fd, address) < 0) ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
      (address.family() == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) ||
      bind(fd, address.get(), address.length) < 0 || listen(fd, SOMAXCONN) < 0) {
    int error = errno;
    close(fd);
    return -error;
  }
  return fd;
}

int probe_exclusive_bind(const SocketAddress& address, bool udp, bool freebind, bool ipv6_only) {
  int fd = socket(address.family(), (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  const int v6only = ipv6_only ? 1 : 0;
  // SO_REUSEADDR on UDP would let the probe share the port: TCP only.
  int result = 0;
  if ((freebind && set_freebind(fd, address) < 0) ||
      (!udp && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) ||
      (address.family() == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) ||
      bind(fd, address.get(), address.length) < 0) {
    result = -errno;
  }
  close(fd);
  return result;
}

}  // namespace fulcrum
