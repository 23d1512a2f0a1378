#include "tcp_keepalive.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>

namespace fulcrum {

namespace {

int whole_seconds(uint32_t ms) { return static_cast<int>((ms + 999) / 1000); }

int set_int(int fd, int level, int option, int value) {
  return setsockopt(fd, level, option, &value, sizeof value) < 0 ? -errno : 0;
}

}  // namespace

int apply_tcp_keepalive(int fd, const TcpKeepaliveSpec& spec) {
  // TCP_USER_TIMEOUT stays 0 (the kernel's default) either way: see the header.
  int result = set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 0);
  if (!spec.enabled) return result < 0 ? result : set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
  if (result == 0) result = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, whole_seconds(spec.idle_ms));
  if (result == 0) result = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, whole_seconds(spec.interval_ms));
  if (result == 0) result = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, static_cast<int>(spec.count));
  if (result == 0) result = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
  return result;
}

}  // namespace fulcrum
