// tcp-latency and udp-latency: one message in flight per connection or flow,
// a thread each, blocking calls (the lowest-latency way to wait for one
// reply: no epoll round). Receive timeouts of 100 ms let a thread notice stop.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "client.h"
#include "protocol.h"

namespace fulcrum::bench {

namespace {
constexpr int kPollStopMs = 100;
}

int prepare_tcp_latency(ClientContext* context) {
  const ClientConfig& config = context->config;
  for (uint32_t i = 0; i < config.parallel; i++) {
    const int fd = connect_tcp(context->target, config.connect_timeout_ms);
    if (fd < 0) return fd;
    context->unit_fds.push_back(fd);
    context->unit_kinds.push_back(UnitKind::kPingPong);
    context->units.push_back(std::make_unique<UnitCounters>());
    uint8_t hello[kHelloFrameSize];
    put_hello(hello, Role::kEcho, config.session, i);
    int result = write_all(fd, hello, sizeof hello);
    if (result == 0) result = set_receive_timeout(fd, kPollStopMs);
    if (result < 0) return result;
  }
  return 0;
}

void run_tcp_latency(ClientContext* context, uint32_t index, uint32_t /*count*/) {
  const int fd = context->unit_fds[index];
  UnitCounters& counters = *context->units[index];
  LatencyRecorder& recorder = *context->recorders[index];
  const size_t size = context->config.message_size;
  std::vector<uint8_t> message(size, 0x5a);
  std::vector<uint8_t> reply(size);
  int error = 0;
  while (error == 0 && !context->stopping.load(std::memory_order_relaxed)) {
    const uint64_t started = now_ns();
    error = -write_all(fd, message.data(), size);
    if (error != 0) break;
    UnitCounters::add(counters.messages_sent, 1);
    UnitCounters::add(counters.bytes_sent, size);
    size_t got = 0;
    while (got < size) {
      const ssize_t n = recv(fd, reply.data() + got, size - got, 0);
      if (n > 0) {
        got += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        if (context->stopping.load(std::memory_order_relaxed)) break;
        continue;
      }
      error = n < 0 ? errno : ECONNRESET;
      break;
    }
    UnitCounters::add(counters.bytes_received, got);
    if (got < size) break;
    recorder.record(now_ns() - started);
    UnitCounters::add(counters.messages_received, 1);
  }
  if (error != 0) {
    context->count_error(error);
    return;
  }
  // A clean end: our EOF, then the server's once it has echoed everything.
  shutdown(fd, SHUT_WR);
  const uint64_t deadline = now_ns() + static_cast<uint64_t>(context->config.drain_timeout_ms) * 1000000ull;
  while (now_ns() < deadline) {
    const ssize_t n = recv(fd, reply.data(), reply.size(), 0);
    if (n > 0) {
      UnitCounters::add(counters.bytes_received, static_cast<uint64_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n == 0) counters.closed_cleanly.store(true, std::memory_order_release);
    else context->count_error(errno);
    return;
  }
  context->count_error(ETIMEDOUT);
}

int prepare_udp(ClientContext* context) {
  const ClientConfig& config = context->config;
  for (uint32_t i = 0; i < config.flows; i++) {
    const int fd = socket(context->target.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    context->unit_fds.push_back(fd);
    context->unit_kinds.push_back(UnitKind::kUdpFlow);
    context->units.push_back(std::make_unique<UnitCounters>());
    const int buffer = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    if (connect(fd, context->target.get(), context->target.length) < 0) return -errno;
    const int result = set_receive_timeout(fd, config.workload == Workload::kUdpLatency ? kPollStopMs : 1);
    if (result < 0) return result;
  }
  return 0;
}

void run_udp_latency(ClientContext* context, uint32_t index, uint32_t /*count*/) {
  const ClientConfig& config = context->config;
  const int fd = context->unit_fds[index];
  UnitCounters& counters = *context->units[index];
  LatencyRecorder& recorder = *context->recorders[index];
  std::vector<uint8_t> message(config.message_size, 0);
  std::vector<uint8_t> reply(config.message_size + 64);
  const uint64_t timeout_ns = static_cast<uint64_t>(config.response_timeout_ms) * 1000000ull;
  for (uint64_t seq = 0; !context->stopping.load(std::memory_order_relaxed); seq++) {
    put_datagram_header(message.data(), DatagramKind::kEchoRequest, config.session, index, seq);
    const uint64_t started = now_ns();
    if (send(fd, message.data(), message.size(), 0) < 0) {
      context->count_error(errno);  // ECONNREFUSED: nothing listens (ICMP port unreachable)
      usleep(10000);
      continue;
    }
    UnitCounters::add(counters.messages_sent, 1);
    UnitCounters::add(counters.bytes_sent, message.size());
    for (;;) {
      const ssize_t n = recv(fd, reply.data(), reply.size(), 0);
      const uint64_t now = now_ns();
      if (n >= static_cast<ssize_t>(kDatagramHeaderSize) && get_u64(reply.data() + 16) == seq &&
          get_u32(reply.data() + 8) == index) {
        recorder.record(now - started);
        UnitCounters::add(counters.messages_received, 1);
        UnitCounters::add(counters.bytes_received, static_cast<uint64_t>(n));
        break;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) context->count_error(errno);
      // A late reply to an earlier request (n >= 0, other seq) is skipped.
      if (now - started > timeout_ns) {
        UnitCounters::add(counters.lost, 1);
        break;
      }
      if (context->stopping.load(std::memory_order_relaxed)) return;  // in flight at stop: not lost
    }
  }
}

}  // namespace fulcrum::bench
