// The recent byte rate of every backend, for least_bandwidth: every
// kIntervalMs one worker sums each backend's byte counters over all workers
// (the same shared-memory counters the control plane reads) and publishes
// bytes per second over the last kWindowMs in the BackendTable. No cost on
// the relay path: the counters are written there anyway.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "backend_table.h"
#include "counters.h"

namespace fulcrum {

class LoadSampler {
 public:
  static constexpr uint32_t kIntervalMs = 500;
  static constexpr uint32_t kWindowMs = 3000;

  LoadSampler(std::shared_ptr<CounterArena> counters, BackendTable* table);
  // Called every kIntervalMs by one worker thread (never concurrently).
  void sample(uint64_t now_ms);

 private:
  static constexpr uint32_t kSamples = kWindowMs / kIntervalMs + 1;
  std::shared_ptr<CounterArena> counters_;
  BackendTable* table_;
  // Per slot, a ring of kSamples byte totals; times_ holds when each ring
  // position was taken (the same for every slot).
  std::vector<uint64_t> totals_;
  uint64_t times_[kSamples] = {};
  uint32_t next_ = 0;
  uint32_t taken_ = 0;
};

}  // namespace fulcrum
