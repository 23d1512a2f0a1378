// Exact latency recording: every sample is kept (nanoseconds) and percentiles
// are read from the sorted samples, so p99.9 of a run is a measured value, not
// a bucket boundary. Memory is 8 bytes a sample, capped at kMaxSamples per
// recorder (samples beyond the cap are counted in `dropped`, not stored).
//
// Threads: one load thread calls record(); any other thread may take
// summaries at the same time. record() takes no lock: samples go into
// fixed-size chunks that never move, and the count is published with a
// release store after the sample is written, so a reader that loads the count
// (acquire) sees every sample below it. The cost on the load thread is one
// store, which matters at the microsecond scale a ping-pong measures.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
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
  static constexpr size_t kChunkSamples = size_t{1} << 16;
  static constexpr size_t kMaxChunks = 256;
  static constexpr size_t kMaxSamples = kChunkSamples * kMaxChunks;  // 16 Mi samples, 128 MiB

  LatencyRecorder() = default;
  ~LatencyRecorder();
  LatencyRecorder(const LatencyRecorder&) = delete;
  LatencyRecorder& operator=(const LatencyRecorder&) = delete;

  // Load thread only.
  void record(uint64_t ns);
  // Appends the samples recorded since the previous call to *out (interval
  // output). One reader at a time (the JS thread).
  void take_interval(std::vector<uint64_t>* out);
  // Appends every sample recorded so far to *out.
  void append_all(std::vector<uint64_t>* out) const;
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  void copy_range(size_t from, size_t to, std::vector<uint64_t>* out) const;

  std::array<std::atomic<uint64_t*>, kMaxChunks> chunks_{};
  std::atomic<size_t> count_{0};
  std::atomic<uint64_t> dropped_{0};
  size_t interval_start_ = 0;  // reader's position
};

}  // namespace fulcrum::bench
