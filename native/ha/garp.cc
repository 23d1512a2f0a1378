#include "garp.h"

#include <arpa/inet.h>
#include <net/if_arp.h>
#include <linux/if_ether.h>
#include <netpacket/packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fulcrum::ha {

namespace {

// The ARP payload for Ethernet/IPv4 (RFC 826); the kernel adds the Ethernet header.
struct [[gnu::packed]] ArpPacket {
  uint16_t hardware_type;
  uint16_t protocol_type;
  uint8_t hardware_length;
  uint8_t protocol_length;
  uint16_t operation;
  uint8_t sender_mac[6];
  uint8_t sender_ip[4];
  uint8_t target_mac[6];
  uint8_t target_ip[4];
};
static_assert(sizeof(ArpPacket) == 28);

}  // namespace

int garp_open(const char* ifname, GarpSocket* out) {
  const unsigned ifindex = if_nametoindex(ifname);
  if (ifindex == 0) return -errno;
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ARP));
  if (fd < 0) return -errno;
  ifreq request{};
  std::strncpy(request.ifr_name, ifname, IFNAMSIZ - 1);
  if (ioctl(fd, SIOCGIFHWADDR, &request) < 0) {
    int error = errno;
    close(fd);
    return -error;
  }
  out->fd = fd;
  out->ifindex = static_cast<int>(ifindex);
  std::memcpy(out->mac, request.ifr_hwaddr.sa_data, 6);
  return 0;
}

int garp_send(const GarpSocket& socket, uint32_t ip) {
  if (socket.fd < 0) return -EBADF;
  ArpPacket packet{};
  packet.hardware_type = htons(ARPHRD_ETHER);
  packet.protocol_type = htons(ETH_P_IP);
  packet.hardware_length = 6;
  packet.protocol_length = 4;
  packet.operation = htons(ARPOP_REQUEST);
  std::memcpy(packet.sender_mac, socket.mac, 6);
  std::memcpy(packet.sender_ip, &ip, 4);
  std::memcpy(packet.target_ip, &ip, 4);  // target hardware address stays zero
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = socket.ifindex;
  to.sll_halen = 6;
  std::memset(to.sll_addr, 0xff, 6);  // Ethernet broadcast
  ssize_t sent = sendto(socket.fd, &packet, sizeof packet, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), sizeof to);
  return sent < 0 ? -errno : 0;
}

void garp_close(GarpSocket* socket) {
  if (socket->fd >= 0) close(socket->fd);
  socket->fd = -1;
  socket->ifindex = 0;
}

}  // namespace fulcrum::ha
