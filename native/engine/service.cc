#include "service.h"

#include <algorithm>

#include "flow_hash.h"

namespace fulcrum {

namespace {

// Bounded: a reservation lost to another worker between pick and reserve
// sends us to pick again; after this many, the service counts as full.
constexpr int kReserveAttempts = 4;

}  // namespace

Service::Service(ServiceSpec spec, BackendTable* table, std::shared_ptr<ServiceShared> shared)
    : spec_(std::move(spec)), table_(table), shared_(std::move(shared)), limits_(shared_->limits) {
  std::vector<PickerBackend> primaries;
  std::vector<PickerBackend> backups;
  for (uint32_t i = 0; i < spec_.backends.size(); i++) {
    const BackendSpec& backend = spec_.backends[i];
    PickerBackend entry{i, backend.slot, backend.weight, hash_identity(backend.address.storage), backend.slow_start_ms};
    (backend.backup ? backups : primaries).push_back(entry);
    (backend.backup ? backups_ : primaries_).members.push_back(i);
    index_by_slot_.emplace(backend.slot, static_cast<int>(i));
  }
  primaries_.picker = make_picker(spec_.picker, std::move(primaries), *table_);
  if (!backups_.members.empty()) backups_.picker = make_picker(spec_.picker, std::move(backups), *table_);
  const Balance balance = spec_.picker.balance;
  needs_client_key_ = spec_.sticky.enabled || balance == Balance::kSource || balance == Balance::kMaglev ||
                      shared_->adopted != nullptr;
}

Service::~Service() = default;

bool Service::is_available(uint32_t index) const {
  const BackendSpec& backend = spec_.backends[index];
  return backend.weight > 0 && table_->is_up(backend.slot);
}

bool Service::takes_sticky(uint32_t index) const {
  const BackendState state = table_->state(spec_.backends[index].slot);
  return state == BackendState::kUp || state == BackendState::kDrain;
}

bool Service::has_room(uint32_t index) const {
  const BackendSpec& backend = spec_.backends[index];
  return backend.max_connections == 0 || table_->active(backend.slot) < static_cast<int32_t>(backend.max_connections);
}

int Service::pick(const ClientKey& client, const uint32_t* tried, uint32_t tried_count, uint64_t now_ms) const {
  StickyTable* adopted = shared_->adopted.get();
  if (adopted != nullptr && tried_count == 0) {
    // A 5-tuple a peer served (its flow moved here): the peer's backend, while
    // it can take the flow.
    const int index = adopted_index(*adopted, client.flow_hash, now_ms);
    if (index >= 0) {
      remember_sticky(client, index, now_ms);
      return index;
    }
  }
  StickyTable* sticky = shared_->sticky.get();
  if (sticky != nullptr && tried_count == 0) {
    // A remembered client goes back to its backend while that one is up or
    // drained (HAProxy's drain still takes persistent clients; weight 0 too)
    // and has room; otherwise it is balanced anew (and the new choice
    // remembered), as HAProxy does with option redispatch.
    const int slot = sticky->lookup(client.source_hash, now_ms);
    if (slot >= 0) {
      auto found = index_by_slot_.find(static_cast<uint32_t>(slot));
      if (found != index_by_slot_.end()) {
        const uint32_t index = static_cast<uint32_t>(found->second);
        const BackendSpec& backend = spec_.backends[index];
        // A backup keeps its clients only while no primary is available.
        const bool primary_available = std::any_of(primaries_.members.begin(), primaries_.members.end(),
                                                   [this](uint32_t i) { return is_available(i); });
        if (takes_sticky(index) && (!backend.backup || !primary_available) &&
            table_->try_reserve(backend.slot, backend.max_connections)) {
          remember_sticky(client, static_cast<int>(index), now_ms);
          return static_cast<int>(index);
        }
      }
    }
  }
  int result = pick_in(primaries_, client, tried, tried_count, now_ms);
  if (result == kNoBackend && backups_.picker) {
    const bool primary_available = std::any_of(primaries_.members.begin(), primaries_.members.end(),
                                               [this](uint32_t i) { return is_available(i); });
    if (!primary_available) result = pick_in(backups_, client, tried, tried_count, now_ms);
  }
  if (result >= 0) remember_sticky(client, result, now_ms);
  return result;
}

void Service::remember_sticky(const ClientKey& client, int index, uint64_t now_ms) const {
  StickyTable* sticky = shared_->sticky.get();
  if (sticky == nullptr) return;
  bool share = false;
  const uint32_t slot = backend(index).slot;
  sticky->remember(client.source_hash, slot, now_ms, &share);
  if (share && shared_->journal) shared_->journal->record(SyncKind::kSticky, spec_.slot, slot, client.source_hash, now_ms);
}

int Service::adopted_index(const StickyTable& adopted, uint64_t flow_hash, uint64_t now_ms) const {
  if (flow_hash == 0) return -1;
  const int slot = adopted.lookup(flow_hash, now_ms);
  if (slot < 0) return -1;
  auto found = index_by_slot_.find(static_cast<uint32_t>(slot));
  if (found == index_by_slot_.end()) return -1;
  const uint32_t index = static_cast<uint32_t>(found->second);
  const BackendSpec& chosen = spec_.backends[index];
  if (!is_available(index) || !table_->try_reserve(chosen.slot, chosen.max_connections)) return -1;
  return static_cast<int>(index);
}

int Service::pick_in(const Group& group, const ClientKey& client, const uint32_t* tried, uint32_t tried_count,
                     uint64_t now_ms) const {
  auto untried = [&](uint32_t index) { return std::find(tried, tried + tried_count, index) == tried + tried_count; };
  auto available_untried = [&](uint32_t index) { return is_available(index) && has_room(index) && untried(index); };
  auto available = [&](uint32_t index) { return is_available(index) && has_room(index); };
  const bool retry = tried_count > 0;
  for (int attempt = 0; attempt < kReserveAttempts; attempt++) {
    int index = group.picker->pick(PickRequest{PickFilter{available_untried}, retry, client.flow_hash, client.source_hash, now_ms});
    // Failing an untried one, an available backend again (a single backend
    // restarting is worth a second try, as HAProxy's retries do).
    if (index < 0 && retry) {
      index = group.picker->pick(PickRequest{PickFilter{available}, retry, client.flow_hash, client.source_hash, now_ms});
    }
    if (index < 0) break;
    const BackendSpec& chosen = spec_.backends[static_cast<size_t>(index)];
    if (table_->try_reserve(chosen.slot, chosen.max_connections)) return index;
  }
  // Nothing chosen: full if some backend is available but has no room.
  const bool any_available = std::any_of(group.members.begin(), group.members.end(),
                                         [this](uint32_t i) { return is_available(i); });
  return any_available ? kAllFull : kNoBackend;
}

void Service::release(int index) const { table_->release(backend(index).slot); }

Admission Service::admit_connection(const sockaddr_storage& client, uint64_t now_ms, ClientLimitTable::Entry** entry) const {
  *entry = nullptr;
  if (spec_.acl && !spec_.acl->admits(client)) return Admission::kDenied;
  if (!limits_) return Admission::kAdmitted;
  return limits_->admit_connection(client, spec_.limits, now_ms, entry);
}

}  // namespace fulcrum
