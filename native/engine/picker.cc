// Every balancing algorithm. Each picker is immutable after construction
// except for a relaxed atomic cursor; live per-backend data comes from the
// shared BackendTable. See picker.h for the contract.
#include "picker.h"

#include <algorithm>
#include <random>

#include "flow_hash.h"

namespace fulcrum {

namespace {

// Loads times weights can exceed 64 bits (connect µs x connections x 256).
__extension__ typedef unsigned __int128 Wide;

// Slow start for the table algorithms: a ramping backend takes a turn (or a
// hash) with the ramp's probability, decided by a hash of `x`, so the same
// client admitted at ramp r is still admitted at any later, larger r.
bool ramp_admits(const BackendTable& table, const PickerBackend& b, uint64_t now_ms, uint64_t x) {
  const uint32_t ramp = table.ramp_permille(b.slot, b.slow_start_ms, now_ms);
  return ramp >= 1000 || mix64(x ^ b.identity) % 1000 < ramp;
}

// A shared cursor: a new client takes a turn; a retry looks at the next one
// without taking it.
uint64_t take_turn(std::atomic<uint64_t>& cursor, bool retry) {
  return retry ? cursor.load(std::memory_order_relaxed) : cursor.fetch_add(1, std::memory_order_relaxed);
}

// Round robin and smooth weighted round robin: one precomputed cycle of
// positions, walked by one cursor shared by all workers (exact across them).
class SequencePicker final : public Picker {
 public:
  SequencePicker(std::vector<PickerBackend> backends, const BackendTable& table, bool weighted)
      : backends_(std::move(backends)), table_(table) {
    std::vector<uint32_t> weights;
    for (const PickerBackend& b : backends_) weights.push_back(weighted ? b.weight : std::min<uint32_t>(b.weight, 1));
    cycle_ = smooth_weighted_cycle(weights);
  }

  int pick(const PickRequest& request) override {
    const uint64_t length = cycle_.size();
    if (length == 0) return -1;
    const uint64_t turn = take_turn(cursor_, request.retry);
    // First pass honours slow start; the second serves a client even when
    // the only allowed backends are ramping.
    for (int pass = 0; pass < 2; pass++) {
      for (uint64_t step = 0; step < length; step++) {
        const PickerBackend& b = backends_[cycle_[(turn + step) % length]];
        if (!request.filter.allowed(b.index)) continue;
        if (pass == 0 && !ramp_admits(table_, b, request.now_ms, turn + step)) continue;
        return static_cast<int>(b.index);
      }
    }
    return -1;
  }

 private:
  std::vector<PickerBackend> backends_;
  const BackendTable& table_;
  std::vector<uint32_t> cycle_;
  alignas(kCacheLine) std::atomic<uint64_t> cursor_{0};
};

// leastconn, least_time, least_bandwidth: the lowest load per unit of
// effective weight wins; the scan starts at a rotating offset so that ties
// (equal loads) are shared in turn.
class LeastLoadPicker final : public Picker {
 public:
  LeastLoadPicker(std::vector<PickerBackend> backends, const BackendTable& table, Balance balance)
      : backends_(std::move(backends)), table_(table), balance_(balance) {}

  int pick(const PickRequest& request) override {
    const size_t n = backends_.size();
    if (n == 0) return -1;
    const uint64_t start = take_turn(cursor_, request.retry);
    int best = -1;
    Wide best_load = 0;
    uint64_t best_weight = 1;
    for (size_t step = 0; step < n; step++) {
      const PickerBackend& b = backends_[(start + step) % n];
      if (!request.filter.allowed(b.index)) continue;
      const uint64_t weight = table_.effective_weight(b.slot, b.weight, b.slow_start_ms, request.now_ms);
      if (weight == 0) continue;
      const Wide load = this->load(b);
      // load / weight < best_load / best_weight, without division.
      if (best < 0 || load * best_weight < best_load * weight) {
        best = static_cast<int>(b.index);
        best_load = load;
        best_weight = weight;
      }
    }
    return best;
  }

 private:
  Wide load(const PickerBackend& b) const {
    const uint64_t active = static_cast<uint64_t>(std::max<int32_t>(0, table_.active(b.slot)));
    switch (balance_) {
      case Balance::kLeastTime:
        // An unmeasured backend (EWMA 0) counts as the fastest, so it gets measured.
        return static_cast<Wide>(table_.connect_ewma_us(b.slot)) * (active + 1);
      case Balance::kLeastBandwidth:
        return table_.bytes_per_second(b.slot);
      default:
        return active;
    }
  }

  std::vector<PickerBackend> backends_;
  const BackendTable& table_;
  Balance balance_;
  alignas(kCacheLine) std::atomic<uint64_t> cursor_{0};
};

// Each worker thread draws from its own generator: no shared state, no lock.
uint64_t thread_random() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return generator();
}

// Weighted power of two choices: two independent draws weighted by
// effective weight; the one with less load per weight wins.
class RandomPicker final : public Picker {
 public:
  RandomPicker(std::vector<PickerBackend> backends, const BackendTable& table)
      : backends_(std::move(backends)), table_(table) {}

  int pick(const PickRequest& request) override {
    uint64_t total = 0;
    for (const PickerBackend& b : backends_) total += usable_weight(b, request);
    if (total == 0) return -1;
    const PickerBackend* first = draw(request, total);
    const PickerBackend* second = draw(request, total);
    const auto load_per_weight_below = [&](const PickerBackend* a, const PickerBackend* c) {
      const uint64_t wa = usable_weight(*a, request);
      const uint64_t wc = usable_weight(*c, request);
      const uint64_t la = static_cast<uint64_t>(std::max<int32_t>(0, table_.active(a->slot)));
      const uint64_t lc = static_cast<uint64_t>(std::max<int32_t>(0, table_.active(c->slot)));
      return la * wc < lc * wa;
    };
    const PickerBackend* chosen = load_per_weight_below(second, first) ? second : first;
    return static_cast<int>(chosen->index);
  }

 private:
  uint64_t usable_weight(const PickerBackend& b, const PickRequest& request) const {
    if (!request.filter.allowed(b.index)) return 0;
    return table_.effective_weight(b.slot, b.weight, b.slow_start_ms, request.now_ms);
  }

  const PickerBackend* draw(const PickRequest& request, uint64_t total) const {
    uint64_t point = thread_random() % total;
    for (const PickerBackend& b : backends_) {
      const uint64_t weight = usable_weight(b, request);
      if (point < weight) return &b;
      point -= weight;
    }
    return &backends_.back();  // unreachable unless a state changed mid-scan
  }

  std::vector<PickerBackend> backends_;
  const BackendTable& table_;
};

// HAProxy's `first`: the first backend in config order that is allowed (the
// service's filter already leaves out backends at max_connections).
class FirstPicker final : public Picker {
 public:
  explicit FirstPicker(std::vector<PickerBackend> backends) : backends_(std::move(backends)) {}

  int pick(const PickRequest& request) override {
    for (const PickerBackend& b : backends_) {
      if (b.weight > 0 && request.filter.allowed(b.index)) return static_cast<int>(b.index);
    }
    return -1;
  }

 private:
  std::vector<PickerBackend> backends_;
};

}  // namespace

// Shared by the hashing pickers (source, maglev).
int pick_from_hash_table(const std::vector<uint32_t>& table, const std::vector<PickerBackend>& backends,
                         const BackendTable& state, const PickRequest& request, uint64_t hash) {
  if (table.empty()) return -1;
  // The key's own entry first; if that backend cannot take it, rehash a few
  // times (spreading a down backend's keys over the others), then scan.
  constexpr int kRehashes = 16;
  uint64_t h = hash;
  for (int attempt = 0; attempt < kRehashes; attempt++) {
    const PickerBackend& b = backends[table[h % table.size()]];
    if (request.filter.allowed(b.index) && ramp_admits(state, b, request.now_ms, hash)) return static_cast<int>(b.index);
    h = mix64(h);
  }
  const size_t start = table[hash % table.size()];
  for (size_t step = 0; step < backends.size(); step++) {
    const PickerBackend& b = backends[(start + step) % backends.size()];
    if (b.weight > 0 && request.filter.allowed(b.index)) return static_cast<int>(b.index);
  }
  return -1;
}

namespace {

// HAProxy's map-based `source`: each backend owns `weight` entries of a map,
// and the client address hash picks the entry.
class SourcePicker final : public Picker {
 public:
  SourcePicker(std::vector<PickerBackend> backends, const BackendTable& table)
      : backends_(std::move(backends)), table_(table) {
    std::vector<uint32_t> weights;
    for (const PickerBackend& b : backends_) weights.push_back(b.weight);
    map_ = smooth_weighted_cycle(weights);
  }

  int pick(const PickRequest& request) override {
    return pick_from_hash_table(map_, backends_, table_, request, request.source_hash);
  }

 private:
  std::vector<PickerBackend> backends_;
  const BackendTable& table_;
  std::vector<uint32_t> map_;
};

}  // namespace

std::unique_ptr<Picker> make_picker(const PickerOptions& options, std::vector<PickerBackend> backends,
                                    const BackendTable& table) {
  switch (options.balance) {
    case Balance::kRoundRobin:
      return std::make_unique<SequencePicker>(std::move(backends), table, false);
    case Balance::kWeighted:
      return std::make_unique<SequencePicker>(std::move(backends), table, true);
    case Balance::kLeastConn:
    case Balance::kLeastTime:
    case Balance::kLeastBandwidth:
      return std::make_unique<LeastLoadPicker>(std::move(backends), table, options.balance);
    case Balance::kRandom:
      return std::make_unique<RandomPicker>(std::move(backends), table);
    case Balance::kSource:
      return std::make_unique<SourcePicker>(std::move(backends), table);
    case Balance::kMaglev:
      return make_maglev_picker(options, std::move(backends), table);
    case Balance::kFirst:
      return std::make_unique<FirstPicker>(std::move(backends));
  }
  return std::make_unique<SequencePicker>(std::move(backends), table, false);
}

std::vector<uint32_t> smooth_weighted_cycle(const std::vector<uint32_t>& weights) {
  int64_t total = 0;
  for (uint32_t weight : weights) total += weight;
  std::vector<int64_t> current(weights.size(), 0);
  std::vector<uint32_t> cycle;
  cycle.reserve(static_cast<size_t>(total));
  for (int64_t round = 0; round < total; round++) {
    size_t best = 0;
    for (size_t i = 0; i < weights.size(); i++) {
      current[i] += weights[i];
      if (current[i] > current[best]) best = i;
    }
    current[best] -= total;
    cycle.push_back(static_cast<uint32_t>(best));
  }
  return cycle;
}

}  // namespace fulcrum
