// tcp-connrate: C clients in flight, each in a loop of connect, send a small
// message, read its echo, close. The server closes first (role ECHO_ONCE), so
// the client side keeps no TIME_WAIT socket and a long run does not run out
// of ephemeral ports. Latency is connect start to the last echoed byte.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <vector>

#include "client.h"
#include "protocol.h"

namespace fulcrum::bench {

namespace {

constexpr uint64_t kLaneTimeoutNs = 5'000'000'000;
constexpr uint64_t kRetryDelayNs = 10'000'000;

// The state table of one client lane:
//   kIdle        -> (socket + connect)            -> kConnecting
//   kConnecting  -> (writable, SO_ERROR 0; write) -> kWriting / kReading
//   kWriting     -> (rest written)                -> kReading
//   kReading     -> (message_size bytes echoed)   -> kAwaitEof (latency recorded)
//   kAwaitEof    -> (EOF)                         -> kIdle (connection counted)
//   any          -> (error or 5 s timeout)        -> kIdle after a 10 ms pause (errno counted)
enum class LaneState { kIdle, kConnecting, kWriting, kReading, kAwaitEof };

struct Lane {
  int fd = -1;
  LaneState state = LaneState::kIdle;
  uint64_t started_ns = 0;
  uint64_t retry_at_ns = 0;
  size_t written = 0;
  size_t echoed = 0;
};

}  // namespace

void run_tcp_connrate(ClientContext* context, uint32_t index, uint32_t count) {
  const ClientConfig& config = context->config;
  UnitCounters& counters = *context->units[index];
  LatencyRecorder& recorder = *context->recorders[index];
  const uint32_t lanes_here = config.concurrency / count + (index < config.concurrency % count ? 1 : 0);
  std::vector<Lane> lanes(lanes_here);
  std::vector<uint8_t> message(kHelloFrameSize + config.message_size, 0x5a);
  put_hello(message.data(), Role::kEchoOnce, config.session, config.message_size);
  std::vector<uint8_t> buffer(config.message_size + 4096);

  const int epoll_fd = context->stop_aware_epoll();
  if (epoll_fd < 0) return;

  auto watch = [&](uint32_t lane, uint32_t events, int op) {
    epoll_event e{};
    e.events = events;
    e.data.u32 = lane;
    epoll_ctl(epoll_fd, op, lanes[lane].fd, &e);
  };
  auto reset = [&](uint32_t lane, int error) {
    Lane& l = lanes[lane];
    if (error != 0) context->count_error(error);
    if (l.fd >= 0) {
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, l.fd, nullptr);
      close(l.fd);
    }
    l.fd = -1;
    l.state = LaneState::kIdle;
    l.retry_at_ns = error != 0 ? now_ns() + kRetryDelayNs : 0;
  };
  auto try_write = [&](uint32_t lane) {
    Lane& l = lanes[lane];
    while (l.written < message.size()) {
      const ssize_t n = send(l.fd, message.data() + l.written, message.size() - l.written, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        reset(lane, errno);
        return;
      }
      l.written += static_cast<size_t>(n);
      UnitCounters::add(counters.bytes_sent, static_cast<uint64_t>(n));
    }
    l.state = LaneState::kReading;
    watch(lane, EPOLLIN, EPOLL_CTL_MOD);
  };
  auto launch = [&](uint32_t lane) {
    Lane& l = lanes[lane];
    l = Lane{};
    l.started_ns = now_ns();
    l.fd = socket(context->target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l.fd < 0) {
      reset(lane, errno);
      return;
    }
    const int one = 1;
    setsockopt(l.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    UnitCounters::add(counters.messages_sent, 1);
    if (connect(l.fd, context->target.get(), context->target.length) < 0 && errno != EINPROGRESS) {
      reset(lane, errno);
      return;
    }
    l.state = LaneState::kConnecting;
    watch(lane, EPOLLOUT, EPOLL_CTL_ADD);
  };
  auto on_readable = [&](uint32_t lane) {
    Lane& l = lanes[lane];
    for (;;) {
      const ssize_t n = recv(l.fd, buffer.data(), buffer.size(), 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        reset(lane, errno);
        return;
      }
      if (n == 0) {
        if (l.state != LaneState::kAwaitEof) {
          reset(lane, ECONNRESET);  // closed before the whole echo
          return;
        }
        UnitCounters::add(counters.messages_received, 1);
        reset(lane, 0);
        launch(lane);
        return;
      }
      UnitCounters::add(counters.bytes_received, static_cast<uint64_t>(n));
      l.echoed += static_cast<size_t>(n);
      if (l.state == LaneState::kReading && l.echoed >= config.message_size) {
        recorder.record(now_ns() - l.started_ns);
        l.state = LaneState::kAwaitEof;
      }
    }
  };

  for (uint32_t lane = 0; lane < lanes.size(); lane++) launch(lane);
  epoll_event events[128];
  bool stop = false;
  while (!stop) {
    const int n = epoll_wait(epoll_fd, events, 128, 20);
    if (n < 0 && errno != EINTR) {
      context->count_error(errno);
      break;
    }
    for (int i = 0; i < n && !stop; i++) {
      const uint32_t lane = events[i].data.u32;
      if (lane == ClientContext::kStopTag) {
        stop = true;
        break;
      }
      Lane& l = lanes[lane];
      if (l.fd < 0) continue;
      if (l.state == LaneState::kConnecting) {
        int error = 0;
        socklen_t length = sizeof error;
        getsockopt(l.fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) {
          reset(lane, error);
          continue;
        }
        l.state = LaneState::kWriting;
        try_write(lane);
      } else if (l.state == LaneState::kWriting) {
        try_write(lane);
      } else {
        on_readable(lane);
      }
    }
    // Timeouts and retries after errors.
    const uint64_t now = now_ns();
    for (uint32_t lane = 0; lane < lanes.size() && !stop; lane++) {
      Lane& l = lanes[lane];
      if (l.state == LaneState::kIdle && l.fd < 0 && now >= l.retry_at_ns) {
        launch(lane);
      } else if (l.state != LaneState::kIdle && now - l.started_ns > kLaneTimeoutNs) {
        reset(lane, ETIMEDOUT);
      }
    }
  }
  // Connections in flight at stop are neither counted nor errors.
  for (Lane& l : lanes) {
    if (l.fd >= 0) close(l.fd);
  }
  close(epoll_fd);
}

}  // namespace fulcrum::bench
