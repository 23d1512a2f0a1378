#include "udp_socket.h"

#include "listener.h"

#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fulcrum {

namespace {

// Socket buffers asked for on listeners: a busy worker may be off the CPU for
// milliseconds, and at 100k datagrams/s the kernel default (~208 KiB, a few
// hundred small datagrams) overflows in a few of them. SO_RCVBUFFORCE goes
// past net.core.rmem_max when the process may (CAP_NET_ADMIN); otherwise the
// kernel caps SO_RCVBUF at rmem_max.
constexpr int kListenerBufferBytes = 8 << 20;
// A flow's upstream socket queues the backend's replies while its worker is
// busy or off the CPU; the default (~208 KiB, about 270 small datagrams)
// overflowed within tens of milliseconds at a few thousand replies per
// second per flow on a loaded machine. Memory is only charged while
// datagrams wait, so a large limit costs nothing on an idle flow.
constexpr int kUpstreamBufferBytes = 1 << 20;

void grow_buffer(int fd, int force_option, int option, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, force_option, &bytes, sizeof bytes) < 0) {
    setsockopt(fd, SOL_SOCKET, option, &bytes, sizeof bytes);  // capped, best effort
  }
}

}  // namespace

int open_udp_listener(const SocketAddress& address, bool freebind, bool ipv6_only) {
  int fd = socket(address.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  const int v6only = ipv6_only ? 1 : 0;
  const bool v6 = address.family() == AF_INET6;
  // SO_REUSEPORT: one socket per worker; the kernel hashes a client's 4-tuple
  // to one of them, so a flow stays on one worker.
  // IPV6_V6ONLY, always set, as for TCP: [::]:53 takes IPv4 clients too unless
  // ipv6_only (their datagrams carry IPV6_PKTINFO with a mapped address, which
  // the kernel turns back into IPv4 packet info on the reply).
  // Packet info: only needed on a wildcard address, where replies must leave
  // from the address the client sent to.
  bool ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0 &&
            (!v6 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) == 0);
  // A listener on a virtual IP binds before this node holds the address (listener.h).
  if (ok && freebind) ok = set_freebind(fd, address) == 0;
  if (ok && is_wildcard_address(address)) {
    ok = v6 ? setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) == 0
            : setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) == 0;
  }
  if (!ok || bind(fd, address.get(), address.length) < 0) {
    int error = errno;
    close(fd);
    return -error;
  }
  grow_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, kListenerBufferBytes);
  grow_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, kListenerBufferBytes);
  return fd;
}

int open_udp_upstream(const SocketAddress& backend) {
  int fd = socket(backend.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  // connect() on UDP only records the peer (and picks a local port): it
  // cannot block, and it filters what this socket receives to the backend.
  if (connect(fd, backend.get(), backend.length) < 0) {
    int error = errno;
    close(fd);
    return -error;
  }
  grow_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, kUpstreamBufferBytes);
  return fd;
}

bool read_packet_destination(const msghdr& message, int port, SocketAddress* local) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(&message), c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo info;
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      auto& in4 = reinterpret_cast<sockaddr_in&>(local->storage);
      in4 = sockaddr_in{};
      in4.sin_family = AF_INET;
      in4.sin_addr = info.ipi_addr;
      in4.sin_port = htons(static_cast<uint16_t>(port));
      local->length = sizeof(sockaddr_in);
      return true;
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo info;
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      auto& in6 = reinterpret_cast<sockaddr_in6&>(local->storage);
      in6 = sockaddr_in6{};
      in6.sin6_family = AF_INET6;
      in6.sin6_addr = info.ipi6_addr;
      in6.sin6_port = htons(static_cast<uint16_t>(port));
      // A link-local destination needs its interface to be answered from.
      if (IN6_IS_ADDR_LINKLOCAL(&info.ipi6_addr)) in6.sin6_scope_id = static_cast<uint32_t>(info.ipi6_ifindex);
      local->length = sizeof(sockaddr_in6);
      return true;
    }
  }
  return false;
}

size_t write_packet_source(const SocketAddress& local, void* control) {
  std::memset(control, 0, kPacketInfoControlBytes);
  auto* c = static_cast<cmsghdr*>(control);
  if (local.family() == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(local.storage);
    in6_pktinfo info{};
    info.ipi6_addr = in6.sin6_addr;
    info.ipi6_ifindex = IN6_IS_ADDR_LINKLOCAL(&in6.sin6_addr) ? in6.sin6_scope_id : 0;
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof info);
    std::memcpy(CMSG_DATA(c), &info, sizeof info);
    return CMSG_SPACE(sizeof info);
  }
  in_pktinfo info{};
  // ipi_spec_dst is the source address; ifindex 0 lets routing choose the way out.
  info.ipi_spec_dst = reinterpret_cast<const sockaddr_in&>(local.storage).sin_addr;
  c->cmsg_level = IPPROTO_IP;
  c->cmsg_type = IP_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof info);
  std::memcpy(CMSG_DATA(c), &info, sizeof info);
  return CMSG_SPACE(sizeof info);
}

}  // namespace fulcrum
