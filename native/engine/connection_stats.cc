#include "connection_stats.h"

namespace fulcrum {

ConnectionStatsLayout connection_stats_layout() {
  ConnectionStatsLayout layout;
  size_t at = 0;
  layout.termination_offset = at;
  at += static_cast<size_t>(Termination::kTerminationCount);
  for (size_t h = 0; h < std::size(kHistogramSpecs); h++) {
    layout.histogram_offset[h] = at;
    at += kHistogramSpecs[h].bound_count + 2;  // buckets, +Inf, sum
  }
  layout.words_per_service = at;
  return layout;
}

ConnectionStats::ConnectionStats(uint32_t workers, uint32_t max_services)
    : layout_(connection_stats_layout()),
      workers_(workers),
      max_services_(max_services),
      words_(new std::atomic<uint64_t>[static_cast<size_t>(workers) * max_services * layout_.words_per_service]()) {}

void ConnectionStats::observe(std::atomic<uint64_t>* service, Histogram histogram, uint64_t value) {
  const auto h = static_cast<size_t>(histogram);
  const HistogramSpec& spec = kHistogramSpecs[h];
  std::atomic<uint64_t>* words = service + layout_.histogram_offset[h];
  size_t bucket = 0;
  while (bucket < spec.bound_count && value > spec.bounds[bucket]) bucket++;
  bump(words + bucket, 1);
  bump(words + spec.bound_count + 1, value);
}

void ConnectionStats::add(uint32_t worker, const ConnectionRecord& record) {
  if (worker >= workers_ || record.service_slot >= max_services_) return;
  std::atomic<uint64_t>* service =
      words_.get() + (static_cast<size_t>(worker) * max_services_ + record.service_slot) * layout_.words_per_service;
  bump(service + layout_.termination_offset + static_cast<size_t>(record.termination), 1);
  // Times and sizes describe sessions that reached a backend; a refused
  // client's zero would only blur them.
  if (!record.established) return;
  if (record.kind == RecordKind::kTcpEnd) {
    observe(service, Histogram::kConnect, record.connect_us);
    if (record.queue_us > 0) observe(service, Histogram::kQueue, record.queue_us);
  }
  observe(service, Histogram::kDuration, record.duration_us);
  observe(service, Histogram::kBytes, record.bytes_in + record.bytes_out);
}

void ConnectionStats::sum(uint32_t service_slot, uint64_t* out) const {
  const size_t n = layout_.words_per_service;
  for (size_t i = 0; i < n; i++) out[i] = 0;
  if (service_slot >= max_services_) return;
  for (uint32_t w = 0; w < workers_; w++) {
    const std::atomic<uint64_t>* service = words_.get() + (static_cast<size_t>(w) * max_services_ + service_slot) * n;
    for (size_t i = 0; i < n; i++) out[i] += service[i].load(std::memory_order_relaxed);
  }
}

}  // namespace fulcrum
