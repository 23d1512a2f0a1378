// `fulcrum bench server`: TCP and UDP sink and echo on one port, plus the
// control channel through which a client learns what the server counted
// (protocol.h). Plain C++; the N-API glue is native/addon/bench_server_handle.cc.
//
// Threads: `threads` workers, each with its own epoll loop, its own
// SO_REUSEPORT TCP listener and its own SO_REUSEPORT UDP socket on the same
// port, so the kernel spreads connections and UDP flows over them. Sessions
// (one per control connection) are shared between workers through a table
// under a mutex, touched only when a connection says HELLO; counters inside a
// session are atomics written by the one worker that owns the stream or flow.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fulcrum::bench {

struct ServerConfig {
  std::string host = "0.0.0.0";
  int port = 5201;
  int threads = 2;
};

struct ServerStats {
  uint64_t sessions = 0;         // control connections accepted so far
  uint64_t connections = 0;      // TCP connections accepted so far
  uint64_t protocol_errors = 0;  // connections refused with an ERROR frame
  uint64_t datagrams = 0;        // UDP datagrams received
  uint64_t malformed_datagrams = 0;
  uint64_t unknown_session_datagrams = 0;
};

class ServerWorker;
class SessionTable;

class Server {
 public:
  // Binds every worker's TCP and UDP socket and starts the threads. With port
  // 0, the kernel picks a port free for both TCP and UDP. Returns 0 or -errno.
  static int create(const ServerConfig& config, std::unique_ptr<Server>* out);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  // Stops and joins the workers, closing every socket. Idempotent.
  void stop();
  ServerStats stats() const;
  // Log lines (protocol errors, with the peer address) since the last call.
  std::vector<std::string> take_log();

  // Worker threads: counters and log.
  struct Shared {
    std::atomic<uint64_t> sessions{0};
    std::atomic<uint64_t> connections{0};
    std::atomic<uint64_t> protocol_errors{0};
    std::atomic<uint64_t> datagrams{0};
    std::atomic<uint64_t> malformed_datagrams{0};
    std::atomic<uint64_t> unknown_session_datagrams{0};
    std::mutex log_mutex;
    std::deque<std::string> log;
    void add_log(std::string line);
  };

 private:
  Server();
  int port_ = 0;
  std::unique_ptr<Shared> shared_;
  std::unique_ptr<SessionTable> sessions_;
  std::vector<std::unique_ptr<ServerWorker>> workers_;
  bool stopped_ = false;
};

}  // namespace fulcrum::bench
