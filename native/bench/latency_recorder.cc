#include "latency_recorder.h"

#include <algorithm>
#include <cmath>

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

void LatencyRecorder::record(uint64_t ns) {
  std::lock_guard lock(mutex_);
  if (samples_.size() >= kMaxSamples) {
    dropped_++;
    return;
  }
  samples_.push_back(ns);
}

void LatencyRecorder::take_interval(std::vector<uint64_t>* out) {
  std::lock_guard lock(mutex_);
  out->insert(out->end(), samples_.begin() + static_cast<std::ptrdiff_t>(interval_start_), samples_.end());
  interval_start_ = samples_.size();
}

void LatencyRecorder::append_all(std::vector<uint64_t>* out) const {
  std::lock_guard lock(mutex_);
  out->insert(out->end(), samples_.begin(), samples_.end());
}

uint64_t LatencyRecorder::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

}  // namespace fulcrum::bench
