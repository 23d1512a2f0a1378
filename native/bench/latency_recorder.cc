#include "latency_recorder.h"

#include <algorithm>
#include <cmath>
#include <new>

namespace fulcrum::bench {

uint64_t nearest_rank(const std::vector<uint64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  // ceil(q*n) computed in integers where possible: q*n may be 999.0000000001
  // for q = 0.999, n = 1000, which ceil would turn into 1000.
  const double exact = q * static_cast<double>(sorted.size());
  size_t rank = static_cast<size_t>(std::ceil(exact - 1e-9));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

LatencySummary summarize_samples(std::vector<uint64_t>* samples) {
  LatencySummary summary;
  if (samples->empty()) return summary;
  std::sort(samples->begin(), samples->end());
  long double total = 0;
  for (uint64_t s : *samples) total += static_cast<long double>(s);
  summary.count = samples->size();
  summary.min_ns = samples->front();
  summary.max_ns = samples->back();
  summary.mean_ns = static_cast<uint64_t>(total / static_cast<long double>(samples->size()));
  summary.p50_ns = nearest_rank(*samples, 0.50);
  summary.p99_ns = nearest_rank(*samples, 0.99);
  summary.p999_ns = nearest_rank(*samples, 0.999);
  return summary;
}

LatencyRecorder::~LatencyRecorder() {
  for (auto& chunk : chunks_) delete[] chunk.load(std::memory_order_relaxed);
}

void LatencyRecorder::record(uint64_t ns) {
  const size_t n = count_.load(std::memory_order_relaxed);
  if (n >= kMaxSamples) {
    dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return;
  }
  uint64_t* chunk = chunks_[n / kChunkSamples].load(std::memory_order_relaxed);
  if (chunk == nullptr) {
    chunk = new (std::nothrow) uint64_t[kChunkSamples];
    if (chunk == nullptr) {
      dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return;
    }
    chunks_[n / kChunkSamples].store(chunk, std::memory_order_release);
  }
  chunk[n % kChunkSamples] = ns;
  count_.store(n + 1, std::memory_order_release);
}

void LatencyRecorder::copy_range(size_t from, size_t to, std::vector<uint64_t>* out) const {
  out->reserve(out->size() + (to - from));
  while (from < to) {
    const uint64_t* chunk = chunks_[from / kChunkSamples].load(std::memory_order_acquire);
    const size_t offset = from % kChunkSamples;
    const size_t take = std::min(to - from, kChunkSamples - offset);
    out->insert(out->end(), chunk + offset, chunk + offset + take);
    from += take;
  }
}

void LatencyRecorder::take_interval(std::vector<uint64_t>* out) {
  const size_t n = count_.load(std::memory_order_acquire);
  copy_range(interval_start_, n, out);
  interval_start_ = n;
}

void LatencyRecorder::append_all(std::vector<uint64_t>* out) const {
  copy_range(0, count_.load(std::memory_order_acquire), out);
}

}  // namespace fulcrum::bench
