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
//
// A full copy for a peer that (re)started (Engine::dump_sync) goes through
// the same journal, its records flagged kSyncRecordDump, in parts: one from
// the control-plane thread (sticky and adopted tables) and one from each
// worker (its UDP flows). Dump records may fill only half the journal, so a
// dump never crowds out live changes; what does not fit is counted apart.
#pragma once

#include <atomic>
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
constexpr uint8_t kSyncRecordDump = 1;  // SyncRecord::flags: part of a full copy for a peer

struct SyncRecord {
  uint8_t kind = 0;   // SyncKind
  uint8_t flags = 0;  // kSyncRecordDump
  uint8_t reserved[2] = {};
  uint32_t service_slot = 0;
  uint32_t backend_slot = 0;
  uint32_t age_ms = 0;  // how long ago the entry was last used
  uint64_t key_hash = 0;
  uint64_t at_ms = 0;  // journal only: monotonic time recorded (0 in what take() returns)
};
static_assert(sizeof(SyncRecord) == 32, "SyncRecord is a fixed 32-byte wire record to JS");

// A dump goes out in rounds, each a range of the key space: keys whose top
// 16 bits are in [from, to) of kDumpBuckets.
constexpr uint32_t kDumpBuckets = 65536;
inline bool in_dump_range(uint64_t key_hash, uint32_t from, uint32_t to) {
  const auto bucket = static_cast<uint32_t>(key_hash >> 48);
  return bucket >= from && bucket < to;
}
// A record as the journal keeps it: at_ms is when it was recorded (a change)
// or the entry's last use (a dump record), monotonic ms.
inline SyncRecord make_sync_record(SyncKind kind, uint32_t service_slot, uint32_t backend_slot, uint64_t key_hash,
                                   uint64_t at_ms) {
  SyncRecord record;
  record.kind = static_cast<uint8_t>(kind);
  record.service_slot = service_slot;
  record.backend_slot = backend_slot;
  record.key_hash = key_hash;
  record.at_ms = at_ms;
  return record;
}

// What a take says besides the records.
struct SyncTakeStats {
  uint64_t dropped = 0;       // live records that overflowed since the last take
  uint64_t dump_dropped = 0;  // dump records that did not fit since the last take
  uint32_t dump_pending = 0;  // dump parts not yet appended (workers still scanning)
};

class SyncJournal {
 public:
  static constexpr uint32_t kDefaultCapacity = 65536;
  explicit SyncJournal(uint32_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // Any thread. Records one entry, or counts it dropped when `capacity` wait.
  void record(SyncKind kind, uint32_t service_slot, uint32_t backend_slot, uint64_t key_hash, uint64_t now_ms);
  // Control-plane thread, before asking for a dump: `parts` appends will follow.
  void begin_dump(uint32_t parts) { dump_pending_.fetch_add(parts, std::memory_order_relaxed); }
  // Any thread: one part of a dump (records with at_ms = the entry's last use;
  // flagged here). Appends while the journal is less than half full, counts
  // the rest; the part is then done. Returns how many were appended.
  uint32_t append_dump(std::vector<SyncRecord>& records);
  // Control-plane thread. Everything recorded since the last take (age_ms
  // filled in against now_ms), and the counts since then.
  std::vector<SyncRecord> take(uint64_t now_ms, SyncTakeStats* stats);

 private:
  std::mutex mutex_;
  std::vector<SyncRecord> records_;
  uint32_t capacity_;
  uint64_t dropped_ = 0;
  uint64_t dump_dropped_ = 0;
  // Released after a part's records are in records_: a take that reads 0
  // holds every record of the dumps asked for before it.
  std::atomic<uint32_t> dump_pending_{0};
};

}  // namespace fulcrum
