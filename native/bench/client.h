// `fulcrum bench client`: load generation and measurement in native threads.
// Plain C++; the N-API glue is native/addon/bench_client_handle.cc.
//
// Lifecycle: create() validates the config; start() connects every socket
// (blocking, bounded by connect_timeout_ms) and starts the load threads;
// snapshot() may be called at any time from any thread (it reads atomics and
// the latency samples recorded since the previous snapshot); stop() asks the
// threads to stop, lets TCP streams finish cleanly (shutdown, then read until
// the server's EOF, so both ends' byte counts are final) and joins them;
// result() then has the totals. stop() blocks up to drain_timeout_ms: call it
// off the JS thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "latency_recorder.h"
#include "socket_util.h"

namespace fulcrum::bench {

enum class Workload { kTcpThroughput, kTcpConnrate, kTcpLatency, kUdpPps, kUdpLatency };
enum class Direction { kSend, kReceive, kBoth };

struct ClientConfig {
  Workload workload = Workload::kTcpThroughput;
  std::string host = "127.0.0.1";
  int port = 5201;
  uint32_t session = 0;          // from the control channel's SESSION
  uint32_t parallel = 1;         // tcp-throughput streams per direction; tcp-latency connections
  Direction direction = Direction::kSend;
  uint32_t concurrency = 16;     // tcp-connrate clients in flight
  uint32_t message_size = 64;    // bytes per message (latency, connrate, UDP); TCP write size for throughput
  uint32_t flows = 1;            // udp-pps / udp-latency flows (one socket each)
  uint64_t rate = 0;             // udp-pps datagrams per second over all flows; 0: as fast as possible
  uint32_t threads = 0;          // load threads; 0: one per stream/flow up to the CPU count
  int connect_timeout_ms = 3000;
  int drain_timeout_ms = 10000;
  int response_timeout_ms = 1000;  // UDP latency: a reply later than this counts as lost
};

// What one unit of load did: a TCP stream, a ping-pong connection, a UDP flow,
// or one connrate thread's clients. Written by one load thread only, so it
// adds with add() (a load and a store, no locked instruction); others read.
struct UnitCounters {
  static void add(std::atomic<uint64_t>& counter, uint64_t n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> messages_sent{0};      // writes of a message, datagrams, connections started
  std::atomic<uint64_t> messages_received{0};  // round trips, connections completed
  std::atomic<uint64_t> lost{0};               // UDP latency: requests without a reply in time
  std::atomic<bool> closed_cleanly{false};     // TCP: the stream ended with the server's EOF
};

enum class UnitKind : uint8_t { kSend = 0, kReceive = 1, kPingPong = 2, kConnrate = 3, kUdpFlow = 4 };

struct UnitSnapshot {
  UnitKind kind;
  uint64_t bytes_sent;
  uint64_t bytes_received;
  uint64_t messages_sent;
  uint64_t messages_received;
  uint64_t lost;
  bool closed_cleanly;
};

struct ClientSnapshot {
  uint64_t elapsed_ns = 0;
  std::vector<UnitSnapshot> units;
  LatencySummary interval_latency;  // samples since the previous snapshot
  std::map<int, uint64_t> errors;   // errno -> count
};

struct ClientResult {
  uint64_t duration_ns = 0;  // start() to stop()
  std::vector<UnitSnapshot> units;
  LatencySummary latency;  // every sample of the run
  std::map<int, uint64_t> errors;
};

// Shared by the load threads of one client.
struct ClientContext {
  ClientConfig config;
  Endpoint target;
  std::atomic<bool> stopping{false};
  int stop_fd = -1;  // eventfd; readable once stop is requested
  uint64_t start_ns = 0;
  std::vector<UnitKind> unit_kinds;
  std::vector<int> unit_fds;  // -1 where the thread opens its own sockets
  std::vector<std::unique_ptr<UnitCounters>> units;
  std::vector<std::unique_ptr<LatencyRecorder>> recorders;  // one per thread
  std::mutex errors_mutex;
  std::map<int, uint64_t> errors;

  void count_error(int error) {
    std::lock_guard lock(errors_mutex);
    errors[error]++;
  }
  // Load thread: a new epoll instance that reports stop_fd (readable once
  // stop is requested) with data.u32 = kStopTag. Returns the fd, or -1 after
  // counting the error.
  static constexpr uint32_t kStopTag = UINT32_MAX;
  int stop_aware_epoll();
  // Units the thread `index` of `count` owns: index, index + count, ...
  std::vector<uint32_t> units_of(uint32_t index, uint32_t count) const {
    std::vector<uint32_t> mine;
    for (uint32_t u = index; u < units.size(); u += count) mine.push_back(u);
    return mine;
  }
};

class Client {
 public:
  // Checks the config (sizes, counts, address). Returns 0 or -EINVAL.
  static int create(const ClientConfig& config, std::unique_ptr<Client>* out);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects and starts the load. 0 or -errno (ECONNREFUSED, ETIMEDOUT...).
  int start();
  ClientSnapshot snapshot();
  // Stops the load, drains TCP streams, joins the threads. Idempotent.
  void stop();
  // Totals; complete after stop().
  ClientResult result();

 private:
  Client() = default;
  uint32_t thread_count() const;
  std::vector<UnitSnapshot> unit_snapshots() const;
  void close_unit_fds();

  ClientContext context_;
  std::vector<std::thread> threads_;
  uint64_t stop_ns_ = 0;
  // start() and stop() may race only at process exit (the addon's cleanup
  // hook stopping a client whose start() runs on a libuv thread).
  std::mutex lifecycle_mutex_;
  bool started_ = false;
  bool stopped_ = false;
};

// The load threads, one file each (tcp_throughput.cc, tcp_connrate.cc,
// ping_pong.cc, udp_pps.cc). prepare_* opens the sockets start() needs.
int prepare_tcp_throughput(ClientContext* context);
void run_tcp_throughput(ClientContext* context, uint32_t index, uint32_t count);
void run_tcp_connrate(ClientContext* context, uint32_t index, uint32_t count);
int prepare_tcp_latency(ClientContext* context);
void run_tcp_latency(ClientContext* context, uint32_t index, uint32_t count);
int prepare_udp(ClientContext* context);
void run_udp_latency(ClientContext* context, uint32_t index, uint32_t count);
void run_udp_pps(ClientContext* context, uint32_t index, uint32_t count);

}  // namespace fulcrum::bench
