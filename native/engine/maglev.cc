// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016), with weights.
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "flow_hash.h"
#include "picker.h"

namespace fulcrum {

std::vector<uint32_t> maglev_table(const std::vector<PickerBackend>& backends, uint32_t size) {
  constexpr uint32_t kEmpty = UINT32_MAX;
  uint32_t max_weight = 0;
  for (const PickerBackend& b : backends) max_weight = std::max(max_weight, b.weight);
  if (max_weight == 0 || size < 2) return {};

  // Each backend's preference list is the permutation offset + j*skip (mod
  // size), from its identity alone: removing another backend never changes it.
  struct Filler {
    uint64_t offset;
    uint64_t skip;
    uint64_t next = 0;     // how far along its permutation
    uint64_t credit = 0;   // weighted turns: fills once per max_weight of credit
  };
  std::vector<Filler> fillers;
  for (const PickerBackend& b : backends) {
    fillers.push_back(Filler{mix64(b.identity ^ 0x6d61676c65763031ULL) % size,
                             mix64(b.identity ^ 0x6d61676c65763032ULL) % (size - 1) + 1});
  }
  std::vector<uint32_t> table(size, kEmpty);
  uint32_t filled = 0;
  while (filled < size) {
    for (size_t i = 0; i < backends.size() && filled < size; i++) {
      Filler& f = fillers[i];
      f.credit += backends[i].weight;
      if (f.credit < max_weight) continue;
      f.credit -= max_weight;
      // Its next preferred entry that is still free.
      uint64_t entry;
      do {
        entry = (f.offset + f.next * f.skip) % size;
        f.next++;
      } while (table[entry] != kEmpty);
      table[entry] = static_cast<uint32_t>(i);
      filled++;
    }
  }
  return table;
}

namespace {

class MaglevPicker final : public Picker {
 public:
  MaglevPicker(const PickerOptions& options, std::vector<PickerBackend> backends, const BackendTable& state)
      : backends_(std::move(backends)), state_(state), by_source_(options.hash_key == HashKey::kSource),
        table_(maglev_table(backends_, options.maglev_table_size)) {}

  int pick(const PickRequest& request) override {
    return pick_from_hash_table(table_, backends_, state_, request, by_source_ ? request.source_hash : request.flow_hash);
  }

 private:
  std::vector<PickerBackend> backends_;
  const BackendTable& state_;
  bool by_source_;
  std::vector<uint32_t> table_;
};

}  // namespace

std::unique_ptr<Picker> make_maglev_picker(const PickerOptions& options, std::vector<PickerBackend> backends,
                                           const BackendTable& table) {
  return std::make_unique<MaglevPicker>(options, std::move(backends), table);
}

std::vector<uint32_t> maglev_assign_for_test(const std::vector<PickerBackend>& backends, uint32_t table_size,
                                             const std::vector<TestTuple>& tuples) {
  const std::vector<uint32_t> table = maglev_table(backends, table_size);
  std::vector<uint32_t> assigned;
  assigned.reserve(tuples.size());
  for (const TestTuple& tuple : tuples) {
    sockaddr_storage client{};
    sockaddr_storage local{};
    auto* c = reinterpret_cast<sockaddr_in*>(&client);
    auto* l = reinterpret_cast<sockaddr_in*>(&local);
    c->sin_family = l->sin_family = AF_INET;
    c->sin_addr.s_addr = tuple.client_ip;
    c->sin_port = htons(tuple.client_port);
    l->sin_addr.s_addr = tuple.local_ip;
    l->sin_port = htons(tuple.local_port);
    const uint64_t hash = hash_five_tuple(client, local, IPPROTO_TCP);
    assigned.push_back(table.empty() ? UINT32_MAX : table[hash % table.size()]);
  }
  return assigned;
}

}  // namespace fulcrum
