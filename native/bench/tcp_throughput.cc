// tcp-throughput: N streams that send (client -> server sink), receive
// (server source -> client), or both. Each load thread runs an epoll loop over
// its streams. At stop every stream is shut down for writing and read until
// the server's EOF, so what the server reports having received (or sent) is
// final and equals what this side counted.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "client.h"
#include "protocol.h"

namespace fulcrum::bench {

namespace {
constexpr int kCallsPerEvent = 16;
}  // namespace

int prepare_tcp_throughput(ClientContext* context) {
  const ClientConfig& config = context->config;
  std::vector<UnitKind> kinds;
  if (config.direction != Direction::kReceive) kinds.insert(kinds.end(), config.parallel, UnitKind::kSend);
  if (config.direction != Direction::kSend) kinds.insert(kinds.end(), config.parallel, UnitKind::kReceive);
  for (uint32_t i = 0; i < kinds.size(); i++) {
    const int fd = connect_tcp(context->target, config.connect_timeout_ms);
    if (fd < 0) return fd;
    context->unit_fds.push_back(fd);
    context->unit_kinds.push_back(kinds[i]);
    context->units.push_back(std::make_unique<UnitCounters>());
    uint8_t hello[kHelloFrameSize];
    put_hello(hello, kinds[i] == UnitKind::kSend ? Role::kSink : Role::kSource, config.session, i);
    int result = write_all(fd, hello, sizeof hello);
    if (result == 0) result = set_nonblocking(fd);
    if (result < 0) return result;
  }
  return 0;
}

void run_tcp_throughput(ClientContext* context, uint32_t index, uint32_t count) {
  const std::vector<uint32_t> mine = context->units_of(index, count);
  const int epoll_fd = context->stop_aware_epoll();
  if (epoll_fd < 0) return;
  epoll_event ev{};
  for (uint32_t u : mine) {
    ev.events = context->unit_kinds[u] == UnitKind::kSend ? EPOLLOUT : EPOLLIN;
    ev.data.u32 = u;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, context->unit_fds[u], &ev);
  }
  std::vector<uint8_t> buffer(context->config.message_size, 0x5a);
  size_t open = mine.size();
  bool draining = false;
  uint64_t deadline_ns = 0;

  auto finish = [&](uint32_t u, int error) {
    if (error != 0) context->count_error(error);
    else context->units[u]->closed_cleanly.store(true, std::memory_order_release);
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, context->unit_fds[u], nullptr);
    close(context->unit_fds[u]);
    context->unit_fds[u] = -1;
    open--;
  };
  auto begin_drain = [&] {
    draining = true;
    deadline_ns = now_ns() + static_cast<uint64_t>(context->config.drain_timeout_ms) * 1000000ull;
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, context->stop_fd, nullptr);
    for (uint32_t u : mine) {
      const int fd = context->unit_fds[u];
      if (fd < 0) continue;
      // Our EOF tells the server the stream is over: a sink counts to here
      // and closes; a source stops writing and closes after its last byte.
      shutdown(fd, SHUT_WR);
      epoll_event in{};
      in.events = EPOLLIN;
      in.data.u32 = u;
      epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &in);
    }
  };

  epoll_event events[64];
  while (open > 0) {
    int timeout = -1;
    if (draining) {
      const uint64_t now = now_ns();
      if (now >= deadline_ns) break;
      timeout = static_cast<int>((deadline_ns - now) / 1000000 + 1);
    }
    const int n = epoll_wait(epoll_fd, events, 64, timeout);
    if (n < 0 && errno != EINTR) {
      context->count_error(errno);
      break;
    }
    for (int i = 0; i < n; i++) {
      const uint32_t u = events[i].data.u32;
      if (u == ClientContext::kStopTag) {
        if (!draining) begin_drain();
        continue;
      }
      const int fd = context->unit_fds[u];
      if (fd < 0) continue;
      UnitCounters& counters = *context->units[u];
      if ((events[i].events & EPOLLOUT) && !draining) {
        for (int k = 0; k < kCallsPerEvent; k++) {
          const ssize_t sent = send(fd, buffer.data(), buffer.size(), MSG_NOSIGNAL);
          if (sent > 0) {
            UnitCounters::add(counters.bytes_sent, static_cast<uint64_t>(sent));
            continue;
          }
          if (sent < 0 && (errno == EAGAIN || errno == EINTR)) break;
          finish(u, sent < 0 ? errno : EPIPE);
          break;
        }
        if (context->unit_fds[u] < 0) continue;
      }
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        for (int k = 0; k < kCallsPerEvent; k++) {
          const ssize_t got = recv(fd, buffer.data(), buffer.size(), 0);
          if (got > 0) {
            UnitCounters::add(counters.bytes_received, static_cast<uint64_t>(got));
            continue;
          }
          if (got < 0 && (errno == EAGAIN || errno == EINTR)) break;
          // EOF before we stopped: the server (or a proxy) ended the stream.
          finish(u, got < 0 ? errno : (draining ? 0 : ECONNRESET));
          break;
        }
      }
    }
  }
  // Streams still open when the drain bound passed.
  for (uint32_t u : mine) {
    if (context->unit_fds[u] >= 0) finish(u, ETIMEDOUT);
  }
  close(epoll_fd);
}

}  // namespace fulcrum::bench
