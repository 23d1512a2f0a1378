// What every worker knows about every backend at run time, shared by all of
// them: the state the control plane sets, the connections each backend has
// (counted across workers, for leastconn, max_connections and the queue),
// the connect-time average (least_time) and the recent byte rate
// (least_bandwidth). One cache line per backend slot; every field is a
// relaxed atomic because a picker needs a recent value, not an ordered one.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "counters.h"

namespace fulcrum {

// Set from the control plane (health checks, admin), read by every worker.
enum class BackendState : uint8_t {
  kUp = 0,     // takes new connections
  kDown = 1,   // takes none; open connections continue (health checks say it is down)
  kDrain = 2,  // takes no new clients, but remembered (sticky) ones; open connections continue
               // (the control plane closes them only when the service has a drain_timeout)
  kMaint = 3,  // takes none, sticky clients included; open connections continue (an operator took it out)
};
inline constexpr uint8_t kBackendStateCount = 4;

struct alignas(kCacheLine) BackendRuntime {
  std::atomic<uint8_t> state{0};
  // Connections assigned to this backend on every worker: counted from the
  // moment a picker chooses it (connecting included), so concurrent picks on
  // other workers already see it.
  std::atomic<int32_t> active{0};
  // When the backend last went from not-up to up (monotonic ms); 0 when it has
  // been up since it was added, which is not a recovery and gets no slow start.
  std::atomic<uint64_t> up_since_ms{0};
  // Exponentially weighted moving average of successful connect times (µs).
  std::atomic<uint32_t> connect_ewma_us{0};
  // Bytes per second, both directions, over the last few seconds (LoadSampler).
  std::atomic<uint64_t> bytes_per_second{0};
  // The most connections `active` has held at once since the slot was given
  // to this backend (the status page's peak against max_connections). Kept
  // here, next to `active`, so raising it touches no other cache line and is
  // exact across workers: each reservation sees the count it made.
  std::atomic<int32_t> peak{0};
};

class BackendTable {
 public:
  BackendState state(uint32_t slot) const {
    return static_cast<BackendState>(rows_[slot].state.load(std::memory_order_relaxed));
  }
  // now_ms: monotonic; a transition to up from any other state starts the slow start ramp.
  void set_state(uint32_t slot, BackendState next, uint64_t now_ms) {
    const auto before = static_cast<BackendState>(rows_[slot].state.exchange(static_cast<uint8_t>(next), std::memory_order_relaxed));
    if (next == BackendState::kUp && before != BackendState::kUp) rows_[slot].up_since_ms.store(now_ms, std::memory_order_relaxed);
  }
  // A slot handed to a new backend starts up, with no ramp and no history.
  void reset(uint32_t slot) {
    BackendRuntime& row = rows_[slot];
    row.state.store(static_cast<uint8_t>(BackendState::kUp), std::memory_order_relaxed);
    row.up_since_ms.store(0, std::memory_order_relaxed);
    row.connect_ewma_us.store(0, std::memory_order_relaxed);
    row.bytes_per_second.store(0, std::memory_order_relaxed);
    row.peak.store(0, std::memory_order_relaxed);
  }
  bool is_up(uint32_t slot) const { return state(slot) == BackendState::kUp; }

  int32_t active(uint32_t slot) const { return rows_[slot].active.load(std::memory_order_relaxed); }
  // Takes one connection place if the backend has fewer than `limit` (0: no limit).
  bool try_reserve(uint32_t slot, uint32_t limit) {
    std::atomic<int32_t>& active = rows_[slot].active;
    if (limit == 0) {
      raise_peak(slot, active.fetch_add(1, std::memory_order_relaxed) + 1);
      return true;
    }
    int32_t seen = active.load(std::memory_order_relaxed);
    while (seen < static_cast<int32_t>(limit)) {
      if (active.compare_exchange_weak(seen, seen + 1, std::memory_order_relaxed)) {
        raise_peak(slot, seen + 1);
        return true;
      }
    }
    return false;
  }
  // The most connections the backend had at once (see BackendRuntime::peak).
  int32_t peak(uint32_t slot) const { return rows_[slot].peak.load(std::memory_order_relaxed); }
  void release(uint32_t slot) { rows_[slot].active.fetch_sub(1, std::memory_order_relaxed); }

  uint32_t connect_ewma_us(uint32_t slot) const { return rows_[slot].connect_ewma_us.load(std::memory_order_relaxed); }
  // Folds one connect time in with weight 1/8 (a racing update from another
  // worker may be lost, which only delays the average by one sample).
  void record_connect_time(uint32_t slot, uint32_t micros) {
    std::atomic<uint32_t>& ewma = rows_[slot].connect_ewma_us;
    const uint32_t old = ewma.load(std::memory_order_relaxed);
    const uint32_t sample = std::max<uint32_t>(micros, 1);
    ewma.store(old == 0 ? sample : static_cast<uint32_t>((static_cast<uint64_t>(old) * 7 + sample) / 8), std::memory_order_relaxed);
  }

  uint64_t bytes_per_second(uint32_t slot) const { return rows_[slot].bytes_per_second.load(std::memory_order_relaxed); }
  void set_bytes_per_second(uint32_t slot, uint64_t rate) { rows_[slot].bytes_per_second.store(rate, std::memory_order_relaxed); }

  // Slow start: how far along its ramp the backend is, in 1/1000 (1000 = full
  // weight). Linear from the moment it came back up over slow_start_ms.
  uint32_t ramp_permille(uint32_t slot, uint32_t slow_start_ms, uint64_t now_ms) const {
    if (slow_start_ms == 0) return 1000;
    const uint64_t since = rows_[slot].up_since_ms.load(std::memory_order_relaxed);
    if (since == 0 || now_ms >= since + slow_start_ms) return 1000;
    // A worker's clock is read once per loop pass and may be a little behind
    // the moment the backend came up: it has only just started its ramp.
    if (now_ms <= since) return 1;
    return static_cast<uint32_t>(std::max<uint64_t>(1, (now_ms - since) * 1000 / slow_start_ms));
  }
  // The weight a dynamic algorithm uses: the configured weight scaled by the
  // ramp, never below 1 while the weight itself is not 0.
  uint32_t effective_weight(uint32_t slot, uint32_t weight, uint32_t slow_start_ms, uint64_t now_ms) const {
    if (weight == 0) return 0;
    const uint64_t scaled = static_cast<uint64_t>(weight) * ramp_permille(slot, slow_start_ms, now_ms) / 1000;
    return static_cast<uint32_t>(std::max<uint64_t>(1, scaled));
  }

 private:
  // Any worker, after its reservation made `count` connections: a CAS loop
  // that runs only while `count` is a new high, so it is rare after warm-up.
  void raise_peak(uint32_t slot, int32_t count) {
    std::atomic<int32_t>& peak = rows_[slot].peak;
    int32_t high = peak.load(std::memory_order_relaxed);
    while (count > high && !peak.compare_exchange_weak(high, count, std::memory_order_relaxed)) {
    }
  }
  BackendRuntime rows_[kMaxBackends];
};

}  // namespace fulcrum
