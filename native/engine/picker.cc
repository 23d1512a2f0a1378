#include "picker.h"

namespace fulcrum {

int SequencePicker::pick(const PickFilter& filter, bool retry) {
  const uint64_t length = cycle_.size();
  if (length == 0) return -1;
  // A retry starts from the next turn without taking it.
  const uint64_t start = retry ? cursor_.load(std::memory_order_relaxed) : cursor_.fetch_add(1, std::memory_order_relaxed);
  for (uint64_t step = 0; step < length; step++) {
    uint32_t index = cycle_[(start + step) % length];
    if (filter.allowed(index)) return static_cast<int>(index);
  }
  return -1;
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

std::unique_ptr<Picker> make_picker(const ServiceSpec& spec) {
  std::vector<uint32_t> weights;
  for (const BackendSpec& backend : spec.backends) {
    weights.push_back(spec.balance == Balance::kWeighted ? backend.weight : 1);
  }
  return std::make_unique<SequencePicker>(smooth_weighted_cycle(weights));
}

}  // namespace fulcrum
