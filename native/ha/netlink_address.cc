#include "netlink_address.h"

#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fulcrum::ha {

namespace {

struct AddressRequest {
  nlmsghdr header;
  ifaddrmsg message;
  // IFA_LOCAL and IFA_ADDRESS, 4 bytes each with their rtattr headers.
  char attributes[2 * RTA_SPACE(4)];
};

void put_ipv4_attribute(nlmsghdr* header, unsigned short type, uint32_t ip) {
  auto* attribute = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(header) + NLMSG_ALIGN(header->nlmsg_len));
  attribute->rta_type = type;
  attribute->rta_len = RTA_LENGTH(4);
  std::memcpy(RTA_DATA(attribute), &ip, 4);
  header->nlmsg_len = NLMSG_ALIGN(header->nlmsg_len) + RTA_ALIGN(attribute->rta_len);
}

// Reads the kernel's answer to sequence `sequence`: 0 or its -errno.
int read_ack(int fd, uint32_t sequence) {
  alignas(nlmsghdr) char buffer[4096];
  for (;;) {
    ssize_t length = recv(fd, buffer, sizeof buffer, 0);
    if (length < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    for (auto* header = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(header, static_cast<unsigned>(length));
         header = NLMSG_NEXT(header, length)) {
      if (header->nlmsg_seq != sequence || header->nlmsg_type != NLMSG_ERROR) continue;
      const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
      return error->error;  // 0 for the ACK, -errno otherwise
    }
  }
}

}  // namespace

int netlink_ipv4_address(bool add, int ifindex, uint32_t ip, uint8_t prefix_length) {
  if (prefix_length > 32) return -EINVAL;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -errno;
  // The kernel handles the request within sendmsg(); its ACK is queued before
  // send returns, so the recv below does not wait on anything but memory.
  timeval timeout{1, 0};
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  AddressRequest request{};
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
  request.header.nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
  request.header.nlmsg_seq = 1;
  request.message.ifa_family = AF_INET;
  request.message.ifa_prefixlen = prefix_length;
  request.message.ifa_scope = RT_SCOPE_UNIVERSE;
  request.message.ifa_index = static_cast<unsigned>(ifindex);
  put_ipv4_attribute(&request.header, IFA_LOCAL, ip);
  put_ipv4_attribute(&request.header, IFA_ADDRESS, ip);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  int result = 0;
  if (sendto(fd, &request, request.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    result = -errno;
  } else {
    result = read_ack(fd, request.header.nlmsg_seq);
  }
  close(fd);
  return result;
}

}  // namespace fulcrum::ha
