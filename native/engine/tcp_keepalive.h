// TCP keepalive on a connection's two sockets (`tcp_keepalive:`), so a peer
// that is gone without a FIN or RST (host down, cable cut, a NAT or firewall
// that forgot the connection) is found by the kernel and the connection ended,
// while a healthy idle connection is never cut: timeouts.idle is off for TCP
// by default (README "Idle connections and keepalive").
#pragma once

#include <cstdint>

namespace fulcrum {

struct TcpKeepaliveSpec {
  bool enabled = false;
  uint32_t idle_ms = 60000;      // TCP_KEEPIDLE, rounded up to whole seconds
  uint32_t interval_ms = 15000;  // TCP_KEEPINTVL, rounded up to whole seconds
  uint32_t count = 8;            // TCP_KEEPCNT
};

// Sets SO_KEEPALIVE and TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT on fd, and
// clears TCP_USER_TIMEOUT. Not set on purpose: since Linux 5.1 it also ends a
// connection whose peer keeps its receive window at zero that long, i.e. a
// healthy client that stops reading for a while (psql showing a page of
// results, a consumer under backpressure), which is the cut this feature is
// there to prevent. A peer that vanished with data unacknowledged is given up
// by the kernel's retransmissions instead (tcp_retries2, about 15 minutes).
// With !spec.enabled, SO_KEEPALIVE is cleared (a reload may turn it off on a
// listener that stays).
//
// On a listening socket the options are inherited by every socket accept()
// returns (the kernel clones the listener's socket), so clients cost no
// syscall here. Any thread; returns 0 or -errno (EBADF, ENOTSOCK, EINVAL).
int apply_tcp_keepalive(int fd, const TcpKeepaliveSpec& spec);

}  // namespace fulcrum
