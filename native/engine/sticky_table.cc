#include "sticky_table.h"

namespace fulcrum {

namespace {

constexpr uint64_t kSlotBits = 16;
constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;

uint64_t pack(uint32_t slot, uint64_t now_s) { return (now_s << kSlotBits) | slot; }
uint32_t slot_of(uint64_t value) { return static_cast<uint32_t>(value & kSlotMask); }
uint64_t seconds_of(uint64_t value) { return value >> kSlotBits; }

uint32_t round_up_pow2(uint32_t n) {
  uint32_t p = 1;
  while (p < n && p < (1u << 30)) p <<= 1;
  return p;
}

}  // namespace

StickyTable::StickyTable(uint32_t capacity, uint64_t timeout_ms)
    : mask_(round_up_pow2(capacity < kProbes ? kProbes : capacity) - 1),
      timeout_ms_(timeout_ms),
      entries_(new Entry[mask_ + 1]) {}

bool StickyTable::expired(uint64_t value, uint64_t now_s) const {
  // Seconds are rounded: an entry lives at least timeout, at most timeout + 1s.
  return value == 0 || seconds_of(value) * 1000 + timeout_ms_ < now_s * 1000;
}

int StickyTable::lookup(uint64_t key_hash, uint64_t now_ms) const {
  const uint64_t now_s = now_ms / 1000;
  for (uint32_t i = 0; i < kProbes; i++) {
    const Entry& entry = entries_[(key_hash + i) & mask_];
    const uint64_t key = entry.key.load(std::memory_order_acquire);
    if (key == 0) return -1;  // never used: the key cannot be further along
    if (key != key_hash) continue;
    const uint64_t value = entry.value.load(std::memory_order_relaxed);
    return expired(value, now_s) ? -1 : static_cast<int>(slot_of(value));
  }
  return -1;
}

bool StickyTable::remember(uint64_t key_hash, uint32_t backend_slot, uint64_t now_ms) {
  const uint64_t now_s = now_ms / 1000;
  const uint64_t value = pack(backend_slot, now_s);
  for (uint32_t i = 0; i < kProbes; i++) {
    Entry& entry = entries_[(key_hash + i) & mask_];
    uint64_t key = entry.key.load(std::memory_order_acquire);
    if (key == key_hash) {
      // Refresh at most once a second per client: the store is a shared cache line.
      if (entry.value.load(std::memory_order_relaxed) != value) entry.value.store(value, std::memory_order_relaxed);
      return true;
    }
    if (key != 0 && !expired(entry.value.load(std::memory_order_relaxed), now_s)) continue;
    // Free or expired: claim it. Losing the race means another client took it; probe on.
    if (entry.key.compare_exchange_strong(key, key_hash, std::memory_order_acq_rel)) {
      entry.value.store(value, std::memory_order_relaxed);
      return true;
    }
    if (key == key_hash) {
      entry.value.store(value, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

}  // namespace fulcrum
