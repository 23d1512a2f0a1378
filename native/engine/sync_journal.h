// Session state shared with peer nodes (docs/ecmp.md, "Session state shared
// with peers"): the workers record each sticky entry and UDP flow-to-backend
// assignment that is new, moved, or due a refresh, and the control plane takes
// them in one batch on a timer, turns node-local slots into config-derived
// names and sends them to its peers. What peers send back is installed with
// Engine::install_sync (sticky tables, adopted UDP assignments).
//
// Bounded: at most `capacity` records wait between two takes; more are
// dropped and counted (a peer then misses them, as HAProxy's peers do when
// their buffer overflows). Any worker records (a mutex taken only for a new
// or changed entry, never per packet); the control-plane thread takes.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace fulcrum {

enum class SyncKind : uint8_t {
  kSticky = 1,   // key: hash_source(client address); value: the backend it sticks to
  kUdpFlow = 2,  // key: hash_five_tuple(client, local, UDP); value: the flow's backend
};

// One entry as it crosses the boundary (32 bytes; src/engine/sync-records.ts
// mirrors the layout). Slots are this node's own: the control plane maps
// them to service names and backend addresses before anything leaves.
struct SyncRecord {
  uint8_t kind = 0;  // SyncKind
  uint8_t reserved[3] = {};
  uint32_t service_slot = 0;
  uint32_t backend_slot = 0;
  uint32_t age_ms = 0;  // how long ago the entry was last used
  uint64_t key_hash = 0;
  uint64_t at_ms = 0;  // journal only: monotonic time recorded (0 in what take() returns)
};
static_assert(sizeof(SyncRecord) == 32, "SyncRecord is a fixed 32-byte wire record to JS");

class SyncJournal {
 public:
  static constexpr uint32_t kDefaultCapacity = 65536;
  explicit SyncJournal(uint32_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // Any thread. Records one entry, or counts it dropped when `capacity` wait.
  void record(SyncKind kind, uint32_t service_slot, uint32_t backend_slot, uint64_t key_hash, uint64_t now_ms);
  // Control-plane thread. Everything recorded since the last take (age_ms
  // filled in against now_ms), and how many were dropped since then.
  std::vector<SyncRecord> take(uint64_t now_ms, uint64_t* dropped);

 private:
  std::mutex mutex_;
  std::vector<SyncRecord> records_;
  uint32_t capacity_;
  uint64_t dropped_ = 0;
};

}  // namespace fulcrum
