// Per-service timing histograms and termination counts, aggregated by each
// worker from the records of the connections it ends (every one, whatever
// the log's sampling), for /metrics: connect time, queue wait, session
// duration and bytes per session, and connections by termination state.
//
// One block per worker, single writer (that worker): plain relaxed stores,
// exact, as in counters.h. The control plane sums the workers' blocks when it
// is scraped (ConnectionStats::sum), one coarse call.
//
// Bucket bounds are chosen for databases: connects from 50 us (loopback) to
// seconds, sessions from a millisecond to a week. They are exported to the
// control plane (addon.connectionStatsLayout) so each is written once, here.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "connection_record.h"

namespace fulcrum {

enum class Histogram : uint8_t { kConnect = 0, kQueue, kDuration, kBytes, kHistogramCount };

struct HistogramSpec {
  const char* name;         // "connect", "queue", "duration", "bytes"
  const uint64_t* bounds;   // upper bounds, inclusive, ascending: us (times) or bytes
  size_t bound_count;
  bool seconds;             // bounds and sum are microseconds shown as seconds
};

inline constexpr uint64_t kConnectBoundsUs[] = {50,    100,   250,    500,    1000,   2500,    5000,   10000,
                                                25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000};
inline constexpr uint64_t kDurationBoundsUs[] = {1000,        10000,        100000,        1000000,
                                                 10000000,    60000000,     300000000,     1800000000,
                                                 3600000000,  14400000000,  86400000000,   604800000000};
inline constexpr uint64_t kBytesBounds[] = {64,      256,      1024,      4096,      16384,      65536,     262144,
                                            1048576, 4194304, 16777216, 67108864, 268435456, 1073741824};

inline constexpr HistogramSpec kHistogramSpecs[] = {
    {"connect", kConnectBoundsUs, std::size(kConnectBoundsUs), true},
    {"queue", kConnectBoundsUs, std::size(kConnectBoundsUs), true},
    {"duration", kDurationBoundsUs, std::size(kDurationBoundsUs), true},
    {"bytes", kBytesBounds, std::size(kBytesBounds), false},
};
static_assert(std::size(kHistogramSpecs) == static_cast<size_t>(Histogram::kHistogramCount));

// Where each part of a service's block sits, in u64 words. A histogram is its
// buckets (one per bound, then +Inf; not cumulative) and then its sum.
struct ConnectionStatsLayout {
  size_t termination_offset = 0;
  size_t histogram_offset[static_cast<size_t>(Histogram::kHistogramCount)] = {};
  size_t words_per_service = 0;
};
ConnectionStatsLayout connection_stats_layout();

class ConnectionStats {
 public:
  ConnectionStats(uint32_t workers, uint32_t max_services);

  // Worker thread `worker`: counts one ended connection or flow.
  void add(uint32_t worker, const ConnectionRecord& record);
  // Any thread: every worker's block summed for the given service slot into
  // out (layout().words_per_service words).
  void sum(uint32_t service_slot, uint64_t* out) const;
  const ConnectionStatsLayout& layout() const { return layout_; }
  uint32_t max_services() const { return max_services_; }

 private:
  void bump(std::atomic<uint64_t>* word, uint64_t n) {
    word->store(word->load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void observe(std::atomic<uint64_t>* service, Histogram histogram, uint64_t value);

  const ConnectionStatsLayout layout_;
  const uint32_t workers_;
  const uint32_t max_services_;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;  // [worker][service][word]
};

}  // namespace fulcrum
