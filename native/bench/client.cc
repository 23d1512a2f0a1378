#include "client.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "protocol.h"

namespace fulcrum::bench {

int Client::create(const ClientConfig& config, std::unique_ptr<Client>* out) {
  std::unique_ptr<Client> client(new Client());
  int result = make_endpoint(config.host, config.port, &client->context_.target);
  if (result < 0) return result;
  const bool udp = config.workload == Workload::kUdpPps || config.workload == Workload::kUdpLatency;
  if (config.parallel < 1 || config.parallel > kMaxStreams / 2) return -EINVAL;
  if (config.concurrency < 1 || config.concurrency > 10000) return -EINVAL;
  if (config.flows < 1 || config.flows > kMaxFlows) return -EINVAL;
  if (config.threads > 64) return -EINVAL;
  if (udp && (config.message_size < kDatagramHeaderSize || config.message_size > 8192)) return -EINVAL;
  if (!udp && (config.message_size < 1 || config.message_size > 1024 * 1024)) return -EINVAL;
  if (config.workload == Workload::kTcpConnrate && config.message_size > kMaxFramePayload) return -EINVAL;
  client->context_.config = config;
  *out = std::move(client);
  return 0;
}

int ClientContext::stop_aware_epoll() {
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) {
    count_error(errno);
    return -1;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = kStopTag;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, stop_fd, &ev);
  return epoll_fd;
}

Client::~Client() {
  stop();
  close_unit_fds();
}

uint32_t Client::thread_count() const {
  const ClientConfig& config = context_.config;
  if (config.threads > 0) return std::min<uint32_t>(config.threads, static_cast<uint32_t>(context_.units.size()));
  const uint32_t cpus = std::max(1u, std::thread::hardware_concurrency());
  return std::min<uint32_t>(cpus, static_cast<uint32_t>(context_.units.size()));
}

int Client::start() {
  std::lock_guard lock(lifecycle_mutex_);
  if (started_) return -EALREADY;
  started_ = true;
  ClientContext& context = context_;
  context.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (context.stop_fd < 0) return -errno;
  const ClientConfig& config = context.config;
  int result = 0;
  void (*run)(ClientContext*, uint32_t, uint32_t) = nullptr;
  switch (config.workload) {
    case Workload::kTcpThroughput:
      result = prepare_tcp_throughput(&context);
      run = run_tcp_throughput;
      break;
    case Workload::kTcpConnrate: {
      // One unit per thread; each thread runs its share of the clients.
      const uint32_t threads = config.threads > 0 ? config.threads
                                                  : std::min(config.concurrency, std::max(1u, std::thread::hardware_concurrency()));
      for (uint32_t i = 0; i < std::min(threads, config.concurrency); i++) {
        context.units.push_back(std::make_unique<UnitCounters>());
        context.unit_kinds.push_back(UnitKind::kConnrate);
        context.unit_fds.push_back(-1);
      }
      run = run_tcp_connrate;
      break;
    }
    case Workload::kTcpLatency:
      result = prepare_tcp_latency(&context);
      run = run_tcp_latency;
      break;
    case Workload::kUdpPps:
      result = prepare_udp(&context);
      run = run_udp_pps;
      break;
    case Workload::kUdpLatency:
      result = prepare_udp(&context);
      run = run_udp_latency;
      break;
  }
  if (result < 0) {
    close_unit_fds();
    return result;
  }
  // Ping-pong needs a thread per connection/flow: each blocks on its reply.
  const bool blocking = config.workload == Workload::kTcpLatency || config.workload == Workload::kUdpLatency;
  const uint32_t threads = blocking ? static_cast<uint32_t>(context.units.size()) : thread_count();
  for (uint32_t i = 0; i < threads; i++) context.recorders.push_back(std::make_unique<LatencyRecorder>());
  context.start_ns = now_ns();
  for (uint32_t i = 0; i < threads; i++) threads_.emplace_back(run, &context, i, threads);
  return 0;
}

void Client::stop() {
  std::lock_guard lock(lifecycle_mutex_);
  if (stopped_) return;
  stopped_ = true;
  if (!started_) return;
  stop_ns_ = now_ns();
  context_.stopping.store(true, std::memory_order_release);
  if (context_.stop_fd >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(context_.stop_fd, &one, sizeof one);
  }
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  close_unit_fds();
}

void Client::close_unit_fds() {
  for (int& fd : context_.unit_fds) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
  if (context_.stop_fd >= 0) close(context_.stop_fd);
  context_.stop_fd = -1;
}

std::vector<UnitSnapshot> Client::unit_snapshots() const {
  std::vector<UnitSnapshot> out;
  for (size_t i = 0; i < context_.units.size(); i++) {
    const UnitCounters& u = *context_.units[i];
    out.push_back(UnitSnapshot{context_.unit_kinds[i], u.bytes_sent.load(std::memory_order_relaxed),
                               u.bytes_received.load(std::memory_order_relaxed),
                               u.messages_sent.load(std::memory_order_relaxed),
                               u.messages_received.load(std::memory_order_relaxed),
                               u.lost.load(std::memory_order_relaxed),
                               u.closed_cleanly.load(std::memory_order_acquire)});
  }
  return out;
}

ClientSnapshot Client::snapshot() {
  ClientSnapshot snap;
  if (!started_) return snap;
  snap.elapsed_ns = (stopped_ ? stop_ns_ : now_ns()) - context_.start_ns;
  snap.units = unit_snapshots();
  std::vector<uint64_t> samples;
  for (auto& recorder : context_.recorders) recorder->take_interval(&samples);
  snap.interval_latency = summarize_samples(&samples);
  std::lock_guard lock(context_.errors_mutex);
  snap.errors = context_.errors;
  return snap;
}

ClientResult Client::result() {
  ClientResult result;
  if (!started_) return result;
  result.duration_ns = (stopped_ ? stop_ns_ : now_ns()) - context_.start_ns;
  result.units = unit_snapshots();
  std::vector<uint64_t> samples;
  uint64_t dropped = 0;
  for (auto& recorder : context_.recorders) {
    recorder->append_all(&samples);
    dropped += recorder->dropped();
  }
  result.latency = summarize_samples(&samples);
  result.latency.dropped = dropped;
  std::lock_guard lock(context_.errors_mutex);
  result.errors = context_.errors;
  return result;
}

}  // namespace fulcrum::bench
