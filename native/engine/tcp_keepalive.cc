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
  if (!spec.enabled) {
    const int result = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
    return result < 0 ? result : set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 0);
  }
  const int idle_s = whole_seconds(spec.idle_ms);
  const int interval_s = whole_seconds(spec.interval_ms);
  // The kernel takes a non-negative int of milliseconds (about 24 days);
  // the largest settings (9h + 127 x 9h) would exceed it.
  const uint64_t total_ms = (static_cast<uint64_t>(idle_s) + static_cast<uint64_t>(interval_s) * spec.count) * 1000;
  const int user_timeout_ms = static_cast<int>(std::min<uint64_t>(total_ms, INT_MAX));
  int result = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
  if (result == 0) result = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval_s);
  if (result == 0) result = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, static_cast<int>(spec.count));
  if (result == 0) result = set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, user_timeout_ms);
  if (result == 0) result = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
  return result;
}

}  // namespace fulcrum
