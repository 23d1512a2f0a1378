#include "load_sampler.h"

namespace fulcrum {

LoadSampler::LoadSampler(std::shared_ptr<CounterArena> counters, BackendTable* table)
    : counters_(std::move(counters)), table_(table), totals_(static_cast<size_t>(kMaxBackends) * kSamples, 0) {}

void LoadSampler::sample(uint64_t now_ms) {
  // The oldest sample in the ring is the one about to be overwritten.
  const uint32_t oldest = taken_ < kSamples ? 0 : next_;
  const uint64_t elapsed_ms = now_ms - times_[oldest];
  for (uint32_t slot = 0; slot < kMaxBackends; slot++) {
    const uint64_t total = counters_->backend_total(slot, kBytesIn) + counters_->backend_total(slot, kBytesOut);
    uint64_t* ring = &totals_[static_cast<size_t>(slot) * kSamples];
    if (taken_ > 0 && elapsed_ms > 0) {
      // A slot reused for another backend starts from a lower total: no rate yet.
      const uint64_t delta = total >= ring[oldest] ? total - ring[oldest] : 0;
      table_->set_bytes_per_second(slot, delta * 1000 / elapsed_ms);
    }
    ring[next_] = total;
  }
  times_[next_] = now_ms;
  next_ = (next_ + 1) % kSamples;
  if (taken_ < kSamples) taken_++;
}

}  // namespace fulcrum
