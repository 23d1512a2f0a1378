// Backend choice. A Picker is built once per service snapshot (and again when
// a weight changes at run time) over one set of backends (the primaries, or
// the backups) and shared by every worker: pick() runs concurrently on all of
// them, so any state it keeps is atomic, and what changes between picks
// (connections, connect times, byte rates, slow start) is read from the shared
// BackendTable. make_picker() is the one place that knows every algorithm.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "backend_table.h"
#include "enum_names.h"

namespace fulcrum {

// `balance:`. The last enumerator is kFirst (kBalanceNames counts on it).
enum class Balance : uint8_t {
  kRoundRobin,      // each in turn, weights ignored
  kWeighted,        // smooth weighted round robin (nginx)
  kLeastConn,       // fewest active connections per unit of weight, ties in turn
  kRandom,          // weighted power of two choices: two weighted draws, the less loaded wins
  kSource,          // hash of the client address over the weighted backends
  kMaglev,          // Maglev consistent hashing over the 5-tuple or the client address
  kLeastTime,       // lowest connect-time EWMA x (active + 1), per unit of weight
  kLeastBandwidth,  // lowest bytes per second over the last seconds, per unit of weight
  kFirst,           // the first backend (in config order) with room, up to max_connections
};

inline constexpr EnumName<Balance> kBalanceNames[] = {
    {Balance::kRoundRobin, "roundrobin"}, {Balance::kWeighted, "weighted"},
    {Balance::kLeastConn, "leastconn"},   {Balance::kRandom, "random"},
    {Balance::kSource, "source"},         {Balance::kMaglev, "maglev"},
    {Balance::kLeastTime, "least_time"},  {Balance::kLeastBandwidth, "least_bandwidth"},
    {Balance::kFirst, "first"},
};
static_assert(names_every_value(kBalanceNames, static_cast<size_t>(Balance::kFirst) + 1));

// Tells a picker which backends it may choose now (up, not tried yet by this
// client, below max_connections). A non-owning callable (a pointer and a
// trampoline), so the hot path never allocates.
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

// One backend as a picker sees it.
struct PickerBackend {
  uint32_t index = 0;           // position in the service's backend list: what pick() returns
  uint32_t slot = 0;            // row in the BackendTable
  uint32_t weight = 1;          // 0..256; 0 takes no new connections
  uint64_t identity = 0;        // hash of the backend's address: the same across reloads
  uint32_t slow_start_ms = 0;   // 0: no ramp
};

struct PickRequest {
  const PickFilter& filter;
  // Set when this client's earlier attempt failed: the choice must not count
  // as a new turn, or retries would shift every later client's turn.
  bool retry = false;
  // The hash the hashing algorithms use: of the 5-tuple or of the client
  // address (see HashKey); source always gets the client address hash.
  uint64_t flow_hash = 0;
  uint64_t source_hash = 0;
  uint64_t now_ms = 0;  // monotonic, for slow start
};

// `hash_key:` (maglev only).
enum class HashKey : uint8_t { kFiveTuple, kSource };

inline constexpr EnumName<HashKey> kHashKeyNames[] = {{HashKey::kFiveTuple, "five_tuple"}, {HashKey::kSource, "source"}};
static_assert(names_every_value(kHashKeyNames, 2));

struct PickerOptions {
  Balance balance = Balance::kRoundRobin;
  HashKey hash_key = HashKey::kFiveTuple;  // maglev only
  uint32_t maglev_table_size = 65537;      // a prime
};

class Picker {
 public:
  virtual ~Picker() = default;
  // Returns the index (PickerBackend::index) of an allowed backend, or -1 when
  // none is allowed.
  virtual int pick(const PickRequest& request) = 0;
};

std::unique_ptr<Picker> make_picker(const PickerOptions& options, std::vector<PickerBackend> backends,
                                    const BackendTable& table);

// One cycle of smooth weighted round robin: each backend appears weight times,
// spread as evenly as the weights allow (5,1,1 gives a a b a c a a).
std::vector<uint32_t> smooth_weighted_cycle(const std::vector<uint32_t>& weights);

// The Maglev lookup table (Eirinakis et al., NSDI 2016): entry -> position in
// `backends`, each backend filling a share of the `size` entries in proportion
// to its weight. Built from identities, so removing one backend moves only the
// entries it held. `size` must be a prime larger than the backend count.
std::vector<uint32_t> maglev_table(const std::vector<PickerBackend>& backends, uint32_t size);

// Internal to the pickers: the hashing algorithms' lookup. `table` maps hash
// % size to a position in `backends`; a backend that cannot take the key is
// passed over by rehashing, then by a scan.
int pick_from_hash_table(const std::vector<uint32_t>& table, const std::vector<PickerBackend>& backends,
                         const BackendTable& state, const PickRequest& request, uint64_t hash);
std::unique_ptr<Picker> make_maglev_picker(const PickerOptions& options, std::vector<PickerBackend> backends,
                                           const BackendTable& table);

// For tests: assign each 5-tuple to a backend as balance: maglev with hash_key
// five_tuple would (all backends up, no slow start). Addresses in network
// order, ports in host order. Returns positions in `backends`.
struct TestTuple {
  uint32_t client_ip;
  uint16_t client_port;
  uint32_t local_ip;
  uint16_t local_port;
};
std::vector<uint32_t> maglev_assign_for_test(const std::vector<PickerBackend>& backends, uint32_t table_size,
                                             const std::vector<TestTuple>& tuples);

}  // namespace fulcrum
