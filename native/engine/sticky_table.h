// Session persistence (`sticky: {key: source}`): which backend a client
// address was last sent to, shared by every worker (a client's connections
// land on any worker), without locks: a fixed-size open-addressing table of
// two atomic words per entry.
//
//   key   = hash of the client address (never 0; 0 marks a free entry)
//   value = backend slot (low 16 bits) | share epoch (8 bits) | last use in
//           seconds (high 40 bits)
//
// The backend is remembered by slot, which the control plane keeps for a
// backend across reloads, so adding or removing other backends never moves a
// client. An entry not used for `timeout` is expired and may be reused. Two
// workers inserting the same new key at once may both succeed in different
// entries; the first in probe order wins on lookup, the other expires.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace fulcrum {

class StickyTable {
 public:
  // capacity: entries (rounded up to a power of two); timeout_ms: idle expiry.
  StickyTable(uint32_t capacity, uint64_t timeout_ms);

  // The backend slot remembered for key_hash, if its entry has not expired;
  // -1 otherwise.
  int lookup(uint64_t key_hash, uint64_t now_ms) const;
  // Remembers (or refreshes) key_hash -> backend_slot. Returns false when the
  // probe window holds only live entries of other clients (the table is full
  // there): the client is balanced normally and not remembered. When
  // `worth_sharing` is given, it is set when peers should hear of this entry
  // (sync_journal.h): it is new, its backend changed, or it was last reported
  // in an earlier share interval (a quarter of the timeout, at least 1s), so a
  // peer's copy stays alive while the client is in use here.
  bool remember(uint64_t key_hash, uint32_t backend_slot, uint64_t now_ms, bool* worth_sharing = nullptr);
  // An entry a peer shared, last used at stamp_ms (this node's monotonic
  // clock): stored unless a live entry for the key was used more recently
  // here. Returns whether it was stored.
  bool adopt(uint64_t key_hash, uint32_t backend_slot, uint64_t stamp_ms, uint64_t now_ms);

  // Calls visit(key_hash, backend_slot, last_used_ms) for every entry not
  // expired at now_ms (a full copy for a peer, Engine::dump_sync). Any
  // thread, beside workers that remember: an entry changing during the walk
  // is seen before or after the change (its two words are read apart, so a
  // slot may come with the previous key's time, harmless for a copy that is
  // refreshed anyway). last_used_ms has the table's one-second resolution.
  template <typename Visit>
  void visit_live(uint64_t now_ms, Visit&& visit) const {
    const uint64_t now_s = now_ms / 1000;
    for (uint32_t i = 0; i <= mask_; i++) {
      const uint64_t key = entries_[i].key.load(std::memory_order_acquire);
      if (key == 0) continue;
      const uint64_t value = entries_[i].value.load(std::memory_order_relaxed);
      if (expired(value, now_s)) continue;
      visit(key, slot_from(value), seconds_from(value) * 1000);
    }
  }

  uint32_t capacity() const { return mask_ + 1; }
  uint64_t timeout_ms() const { return timeout_ms_; }

 private:
  struct Entry {
    std::atomic<uint64_t> key{0};
    std::atomic<uint64_t> value{0};
  };
  static constexpr uint32_t kProbes = 16;
  bool expired(uint64_t value, uint64_t now_s) const;
  static uint32_t slot_from(uint64_t value);
  static uint64_t seconds_from(uint64_t value);

  uint32_t mask_;
  uint64_t timeout_ms_;
  uint64_t share_interval_s_;
  std::unique_ptr<Entry[]> entries_;
};

}  // namespace fulcrum
