#include "sticky_table.h"

#include <algorithm>

namespace fulcrum {

namespace {

// value = last use in seconds (high 40 bits) | share epoch (8 bits) | slot (low 16 bits).
// The share epoch is the low byte of (seconds / share interval) when the
// entry was last reported for peers: a client in steady use is reported once
// per interval, so a peer's copy never expires while the client is active.
constexpr uint64_t kSlotBits = 16;
constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;
constexpr uint64_t kEpochShift = kSlotBits;
constexpr uint64_t kSecondsShift = kSlotBits + 8;

uint64_t pack(uint32_t slot, uint64_t now_s, uint64_t epoch) {
  return (now_s << kSecondsShift) | ((epoch & 0xff) << kEpochShift) | slot;
}
uint32_t slot_of(uint64_t value) { return static_cast<uint32_t>(value & kSlotMask); }
uint64_t seconds_of(uint64_t value) { return value >> kSecondsShift; }
uint64_t epoch_of(uint64_t value) { return (value >> kEpochShift) & 0xff; }

uint32_t round_up_pow2(uint32_t n) {
  uint32_t p = 1;
  while (p < n && p < (1u << 30)) p <<= 1;
  return p;
}

}  // namespace

StickyTable::StickyTable(uint32_t capacity, uint64_t timeout_ms)
    : mask_(round_up_pow2(capacity < kProbes ? kProbes : capacity) - 1),
      timeout_ms_(timeout_ms),
      share_interval_s_(std::max<uint64_t>(1, timeout_ms / 4000)),
      entries_(new Entry[mask_ + 1]) {}

uint32_t StickyTable::slot_from(uint64_t value) { return slot_of(value); }
uint64_t StickyTable::seconds_from(uint64_t value) { return seconds_of(value); }

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

bool StickyTable::remember(uint64_t key_hash, uint32_t backend_slot, uint64_t now_ms, bool* worth_sharing) {
  const uint64_t now_s = now_ms / 1000;
  const uint64_t epoch = now_s / share_interval_s_;
  const uint64_t value = pack(backend_slot, now_s, epoch);
  bool share = true;
  for (uint32_t i = 0; i < kProbes; i++) {
    Entry& entry = entries_[(key_hash + i) & mask_];
    uint64_t key = entry.key.load(std::memory_order_acquire);
    if (key == key_hash) {
      // Refresh at most once a second per client: the store is a shared cache line.
      const uint64_t old = entry.value.load(std::memory_order_relaxed);
      if (old != value) entry.value.store(value, std::memory_order_relaxed);
      share = expired(old, now_s) || slot_of(old) != backend_slot || epoch_of(old) != (epoch & 0xff);
      if (worth_sharing != nullptr) *worth_sharing = share;
      return true;
    }
    if (key != 0 && !expired(entry.value.load(std::memory_order_relaxed), now_s)) continue;
    // Free or expired: claim it. Losing the race means another client took it; probe on.
    if (entry.key.compare_exchange_strong(key, key_hash, std::memory_order_acq_rel) || key == key_hash) {
      entry.value.store(value, std::memory_order_relaxed);
      if (worth_sharing != nullptr) *worth_sharing = share;
      return true;
    }
  }
  if (worth_sharing != nullptr) *worth_sharing = false;
  return false;
}

bool StickyTable::adopt(uint64_t key_hash, uint32_t backend_slot, uint64_t stamp_ms, uint64_t now_ms) {
  if (key_hash == 0 || backend_slot > kSlotMask) return false;
  const uint64_t now_s = now_ms / 1000;
  const uint64_t stamp_s = std::min(stamp_ms, now_ms) / 1000;
  // Stamped with this interval's epoch: the next local use of the entry in
  // this interval is not reported back to the peer it came from.
  const uint64_t value = pack(backend_slot, stamp_s, now_s / share_interval_s_);
  if (expired(value, now_s)) return false;  // already too old to matter
  for (uint32_t i = 0; i < kProbes; i++) {
    Entry& entry = entries_[(key_hash + i) & mask_];
    uint64_t key = entry.key.load(std::memory_order_acquire);
    if (key == key_hash) {
      const uint64_t old = entry.value.load(std::memory_order_relaxed);
      if (!expired(old, now_s) && seconds_of(old) > stamp_s) return false;  // used here since
      entry.value.store(value, std::memory_order_relaxed);
      return true;
    }
    if (key != 0 && !expired(entry.value.load(std::memory_order_relaxed), now_s)) continue;
    if (entry.key.compare_exchange_strong(key, key_hash, std::memory_order_acq_rel) || key == key_hash) {
      entry.value.store(value, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

}  // namespace fulcrum
