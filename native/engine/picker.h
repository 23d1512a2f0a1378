// Backend choice. A Picker is built once per service from its spec and shared
// by every worker; pick() runs concurrently on all of them, so any state it
// keeps is atomic. New algorithms implement Picker and are added to
// make_picker().
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "service.h"

namespace fulcrum {

// Tells a picker which backends it may choose now. A non-owning callable
// (a pointer and a trampoline), so the hot path never allocates.
class PickFilter {
 public:
  template <typename F>
  explicit PickFilter(const F& f)
      : context_(&f), call_([](const void* c, uint32_t i) { return (*static_cast<const F*>(c))(i); }) {}
  bool allowed(uint32_t index) const { return call_(context_, index); }

 private:
  const void* context_;
  bool (*call_)(const void*, uint32_t);
};

class Picker {
 public:
  virtual ~Picker() = default;
  // Returns the index of an allowed backend, or -1 when none is allowed.
  // `retry` is set when this client's earlier attempt failed: the choice must
  // not count as a new turn, or retries would shift every later client's turn
  // (with backends [dead, live], each client would try the dead one first).
  virtual int pick(const PickFilter& filter, bool retry) = 0;
};

// Round robin and smooth weighted round robin (nginx's algorithm) share one
// mechanism: the cycle of backend indices is computed once, and a cursor
// shared by all workers walks it. One atomic increment per pick keeps the
// distribution exact across workers, and skipping a backend that is not
// allowed only moves on to the next entry of the same cycle.
class SequencePicker final : public Picker {
 public:
  explicit SequencePicker(std::vector<uint32_t> cycle) : cycle_(std::move(cycle)) {}
  int pick(const PickFilter& filter, bool retry) override;
  const std::vector<uint32_t>& cycle() const { return cycle_; }

 private:
  std::vector<uint32_t> cycle_;
  alignas(kCacheLine) std::atomic<uint64_t> cursor_{0};
};

// One cycle of smooth weighted round robin: each backend appears weight times,
// spread as evenly as the weights allow (5,1,1 gives a a b a c a a).
std::vector<uint32_t> smooth_weighted_cycle(const std::vector<uint32_t>& weights);

std::unique_ptr<Picker> make_picker(const ServiceSpec& spec);

}  // namespace fulcrum
