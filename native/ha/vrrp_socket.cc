#include "vrrp_socket.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fulcrum::ha {

namespace {

// Closes fd and returns the errno that made the open fail.
int fail_open(int fd) {
  int error = errno;
  close(fd);
  return -error;
}

}  // namespace

int vrrp_socket_open(const char* ifname, bool join_group) {
  const unsigned ifindex = if_nametoindex(ifname);
  if (ifindex == 0) return -errno;
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, kVrrpProtocol);
  if (fd < 0) return -errno;
  // Bound to the device: adverts of the same VRID on another link are not ours.
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, static_cast<socklen_t>(strlen(ifname))) < 0) return fail_open(fd);
  int ttl = 255;
  int off = 0;
  if (setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) < 0 ||
      setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) < 0 ||
      setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &off, sizeof off) < 0) {
    return fail_open(fd);
  }
  // A bigger receive buffer rides out a burst of hostile datagrams without
  // losing the peer's adverts in it. FORCE (root) passes rmem_max; either may fail harmlessly.
  int buffer_bytes = 1 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer_bytes, sizeof buffer_bytes) < 0) {
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
  }
  ip_mreqn request{};
  request.imr_multiaddr.s_addr = htonl(kVrrpMulticastGroup);
  request.imr_ifindex = static_cast<int>(ifindex);
  if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &request, sizeof request) < 0) return fail_open(fd);
  if (join_group && setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &request, sizeof request) < 0) return fail_open(fd);
  return fd;
}

long vrrp_socket_send(int fd, uint32_t destination, uint32_t source, const uint8_t* payload, size_t length) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = destination;
  iovec iov{const_cast<uint8_t*>(payload), length};
  // IP_PKTINFO's ipi_spec_dst picks the source address per packet: binding the
  // socket to it instead would also filter what it receives (224.0.0.18).
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in_pktinfo))] = {};
  msghdr message{};
  message.msg_name = &to;
  message.msg_namelen = sizeof to;
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = IPPROTO_IP;
  header->cmsg_type = IP_PKTINFO;
  header->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
  in_pktinfo info{};
  info.ipi_spec_dst.s_addr = source;
  std::memcpy(CMSG_DATA(header), &info, sizeof info);
  ssize_t sent = sendmsg(fd, &message, MSG_DONTWAIT);
  return sent < 0 ? -errno : sent;
}

long vrrp_socket_receive(int fd, uint8_t* buffer, size_t capacity) {
  // MSG_TRUNC: the return value is the real length, so a datagram longer than
  // the buffer is seen as such (and rejected) instead of parsed in part.
  ssize_t received = recv(fd, buffer, capacity, MSG_DONTWAIT | MSG_TRUNC);
  return received < 0 ? -errno : received;
}

}  // namespace fulcrum::ha
