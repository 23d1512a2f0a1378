// Exact latency recording: every sample is kept (nanoseconds) and percentiles
// are read from the sorted samples, so p99.9 of a run is a measured value, not
// a bucket boundary. Memory is 8 bytes a sample, capped at kMaxSamples per
// recorder (samples beyond the cap are counted in `dropped`, not stored).
//
// Threads: record() is called by one load thread; summaries may be taken from
// any thread (a mutex guards the vector; uncontended, it costs ~20 ns, far
// below the microseconds a round trip takes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace fulcrum::bench {

struct LatencySummary {
  uint64_t count = 0;
  uint64_t dropped = 0;
  uint64_t min_ns = 0;
  uint64_t mean_ns = 0;
  uint64_t p50_ns = 0;
  uint64_t p99_ns = 0;
  uint64_t p999_ns = 0;
  uint64_t max_ns = 0;
};

// Nearest-rank percentile of sorted samples: the smallest sample such that at
// least q (0 < q <= 1) of all samples are <= it, i.e. sorted[ceil(q*n) - 1].
uint64_t nearest_rank(const std::vector<uint64_t>& sorted, double q);

// Summary of `samples` (sorted in place).
LatencySummary summarize_samples(std::vector<uint64_t>* samples);

class LatencyRecorder {
 public:
  static constexpr size_t kMaxSamples = size_t{16} << 20;

  void record(uint64_t ns);
  // Appends the samples recorded since the previous call to *out (interval output).
  void take_interval(std::vector<uint64_t>* out);
  // Appends every sample recorded so far to *out.
  void append_all(std::vector<uint64_t>* out) const;
  uint64_t dropped() const;

 private:
  mutable std::mutex mutex_;
  std::vector<uint64_t> samples_;
  size_t interval_start_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace fulcrum::bench
