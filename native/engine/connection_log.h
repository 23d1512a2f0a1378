// The connection log: one record per TCP connection and UDP flow, written
// without any JavaScript per connection and without ever making a worker wait.
//
//   worker threads ──record()──► per-worker ring (connection_log_ring.h)
//        │                              │ batches, every 10 ms
//        └──► ConnectionStats           ▼
//             (histograms, counts)   writer thread ──► stdout | file | syslog
//
// record() always counts the connection in ConnectionStats (exact, for
// /metrics); the record itself goes into the worker's ring when the log is on
// and the sampling draw keeps it. A full ring drops the record and counts it.
// The writer thread formats (connection_log_format.h) and writes; a
// per-second cap, when set, is applied there and its overflow counted.
//
// Settings, the output and the service labels are replaced by the control
// plane (JS thread) under a mutex the writer holds only to take a reference.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "address.h"
#include "connection_log_format.h"
#include "connection_log_ring.h"
#include "connection_stats.h"

namespace fulcrum {

struct ConnectionLogSettings {
  enum class Output : uint8_t { kOff = 0, kStdout, kFile, kSyslog };
  Output output = Output::kStdout;
  // kFile: the file (opened for append, created 0640). kSyslog: a unix
  // datagram socket path (such as /dev/log) when syslog_address is unset.
  std::string path;
  SocketAddress syslog_address;  // kSyslog over UDP; family 0: the unix socket at path
  bool text = false;             // one human line instead of JSON
  double sample = 1.0;           // the share of records written, 0 to 1
  uint32_t max_per_second = 0;   // records written per second at most; 0: no cap
  uint32_t interval_ms = 0;      // an interim record of each open TCP connection this often; 0: none
  uint8_t facility = 16;         // syslog facility (16: local0)
  std::string tag = "fulcrum";   // syslog APP-NAME
};

struct ConnectionLogCounters {
  uint64_t written = 0;       // records written to the output
  uint64_t dropped = 0;       // a worker's ring was full
  uint64_t over_cap = 0;      // past max_per_second
  uint64_t sampled_out = 0;   // not drawn by `sample`
  uint64_t write_errors = 0;  // the output refused a write (records lost with it)
};

class ConnectionLog {
 public:
  // Records per worker ring: a worker ending 100,000 connections a second
  // fills a third of it between two 10 ms batches.
  static constexpr size_t kRingRecords = 8192;

  ConnectionLog(uint32_t workers, uint32_t max_services);
  ~ConnectionLog();
  ConnectionLog(const ConnectionLog&) = delete;
  ConnectionLog& operator=(const ConnectionLog&) = delete;

  // --- JS thread ---
  // Opens the output the settings name and makes them current. Returns 0, or
  // -errno (the file or socket could not be opened; nothing changes).
  int configure(const ConnectionLogSettings& settings);
  // Reopens the output file by its path (after logrotate moved it). Returns 0 or -errno.
  int reopen();
  // The service labels by slot, from the running snapshot.
  void set_labels(std::vector<RecordLabels> by_slot);
  // Writes what the rings still hold and ends the writer thread. Idempotent;
  // call once the workers have stopped (their last records are in the rings).
  void stop();
  ConnectionLogCounters counters() const;
  const ConnectionStats& stats() const { return stats_; }

  // --- Worker thread `worker` ---
  void record(uint32_t worker, const ConnectionRecord& record);
  // Interim records: how often, 0 for none.
  uint32_t interval_ms() const { return interval_ms_.load(std::memory_order_relaxed); }

 private:
  struct Output;
  // Per worker, written by that worker only (a cache line each).
  struct alignas(64) WorkerState {
    uint64_t random = 0;
    std::atomic<uint64_t> dropped{0};
    std::atomic<uint64_t> sampled_out{0};
  };

  void run();
  // Formats and writes what the rings hold now; false when there was nothing.
  bool write_batch();
  static int open_output(const ConnectionLogSettings& settings, std::shared_ptr<Output>* out);

  const uint32_t workers_;
  std::vector<std::unique_ptr<ConnectionLogRing>> rings_;
  std::unique_ptr<WorkerState[]> worker_state_;
  ConnectionStats stats_;
  std::atomic<bool> enabled_{false};
  // A record is kept when the worker's next 32 random bits are below this;
  // 2^32 keeps every one.
  std::atomic<uint64_t> sample_threshold_{uint64_t{1} << 32};
  std::atomic<uint32_t> interval_ms_{0};

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  ConnectionLogSettings settings_;
  std::shared_ptr<Output> output_;
  std::shared_ptr<const std::vector<RecordLabels>> labels_;
  std::thread thread_;

  // Writer thread's own: the batch, the text, the cap's window.
  std::vector<ConnectionRecord> batch_;
  std::string text_;
  RecordClock clock_;
  std::string hostname_;
  int pid_ = 0;
  uint64_t cap_window_us_ = 0;
  uint32_t cap_used_ = 0;
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> over_cap_{0};
  std::atomic<uint64_t> write_errors_{0};
};

}  // namespace fulcrum
