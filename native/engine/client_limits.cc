#include "client_limits.h"

#include <netinet/in.h>
#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

#include "flow_hash.h"
#include "address.h"

namespace fulcrum {

namespace {

constexpr uint64_t kMilli = 1000;  // the bucket counts thousandths of a token
// How far one worker's cached clock may be behind another's (a loop pass
// stalled by a long batch or by the scheduler), generously.
constexpr uint32_t kMaxClockLagMs = 60'000;

uint32_t round_up_pow2(uint32_t n) {
  uint32_t p = 16;
  while (p < n && p < (1u << 30)) p <<= 1;
  return p;
}

uint64_t random_key() {
  uint64_t key = 0;
  if (getrandom(&key, sizeof key, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof key)) {
    // No entropy yet (early boot): the clock is a weaker but still unknown key.
    key = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return mix64(key ^ 0x6c696d6974730001ULL);
}

// The address as 128 bits: IPv6 as is, IPv4 in its mapped form (::ffff:a.b.c.d).
bool address_words(const sockaddr_storage& client, uint64_t* hi, uint64_t* lo) {
  const sockaddr_storage address = unmap_ipv4(client);
  uint8_t bytes[16] = {};
  if (address.ss_family == AF_INET) {
    bytes[10] = bytes[11] = 0xFF;
    std::memcpy(bytes + 12, &reinterpret_cast<const sockaddr_in&>(address).sin_addr, 4);
  } else if (address.ss_family == AF_INET6) {
    std::memcpy(bytes, &reinterpret_cast<const sockaddr_in6&>(address).sin6_addr, 16);
  } else {
    return false;
  }
  std::memcpy(hi, bytes, 8);
  std::memcpy(lo, bytes + 8, 8);
  return true;
}

uint64_t pack_bucket(uint64_t now_ms, uint64_t milli_tokens) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(now_ms)) << 32) | static_cast<uint32_t>(milli_tokens);
}

// The bucket's full level, bounded so it fits the word's low 32 bits.
uint64_t capacity_milli(const ClientLimitsSpec& spec) {
  return std::min<uint64_t>(std::max<uint32_t>(spec.burst, 1), 4'000'000) * kMilli;
}

}  // namespace

ClientLimitTable::ClientLimitTable(uint32_t capacity)
    : mask_(round_up_pow2(capacity) - 1), key_(random_key()), entries_(new Entry[mask_ + 1]) {}

uint64_t ClientLimitTable::tag_of(uint64_t hi, uint64_t lo) const {
  const uint64_t h = mix64(mix64(key_ ^ hi) ^ (lo + 0x9e3779b97f4a7c15ULL));
  return h <= kClaiming ? h + 2 : h;
}

bool ClientLimitTable::reclaimable(const Entry& entry, const ClientLimitsSpec& spec, uint64_t now_ms) const {
  if (entry.active.load(std::memory_order_acquire) != 0) return false;
  // Idle long enough for its bucket to be full again: as good as a new entry.
  uint64_t idle_ms = 1000;
  if (spec.rate > 0) idle_ms = std::max<uint64_t>(idle_ms, capacity_milli(spec) / spec.rate + 1);
  const uint64_t touched_ms = static_cast<uint64_t>(entry.touched_s.load(std::memory_order_relaxed)) * 1000;
  return touched_ms + idle_ms + 1000 <= now_ms;  // + 1s: touched_s is rounded down
}

void ClientLimitTable::touch(Entry* entry, uint64_t now_ms) {
  // At most one store a second per client: the line is shared between workers.
  const auto now_s = static_cast<uint32_t>(now_ms / 1000);
  if (entry->touched_s.load(std::memory_order_relaxed) != now_s) entry->touched_s.store(now_s, std::memory_order_relaxed);
}

ClientLimitTable::Entry* ClientLimitTable::hold(const sockaddr_storage& client, const ClientLimitsSpec& spec,
                                                uint64_t now_ms) {
  uint64_t hi;
  uint64_t lo;
  if (!address_words(client, &hi, &lo)) return nullptr;
  const uint64_t tag = tag_of(hi, lo);
  // A hold that races with a reclaim of the same entry is undone and the
  // lookup runs again; bounded, then the client goes untracked.
  for (int attempt = 0; attempt < 4; attempt++) {
    Entry* candidate = nullptr;
    uint64_t candidate_tag = 0;
    bool retry = false;
    for (uint32_t i = 0; i < kProbes; i++) {
      Entry& entry = entries_[(tag + i) & mask_];
      const uint64_t seen = entry.tag.load(std::memory_order_acquire);
      if (seen == tag && entry.address_hi.load(std::memory_order_relaxed) == hi &&
          entry.address_lo.load(std::memory_order_relaxed) == lo) {
        // Hold, then check it is still ours; a reclaim claims, then checks
        // active == 0. Sequentially consistent on both sides (store, then
        // load of the other word), so at least one of the two sees the other.
        entry.active.fetch_add(1, std::memory_order_seq_cst);
        if (entry.tag.load(std::memory_order_seq_cst) == tag && entry.address_hi.load(std::memory_order_relaxed) == hi &&
            entry.address_lo.load(std::memory_order_relaxed) == lo) {
          touch(&entry, now_ms);
          return &entry;
        }
        entry.active.fetch_sub(1, std::memory_order_acq_rel);
        retry = true;
        break;
      }
      if (candidate == nullptr && seen != kClaiming && (seen == 0 || reclaimable(entry, spec, now_ms))) {
        candidate = &entry;
        candidate_tag = seen;
      }
      if (seen == 0) break;  // never used: the address cannot be further along
    }
    if (retry) continue;
    if (candidate == nullptr) return nullptr;
    uint64_t expected = candidate_tag;
    if (!candidate->tag.compare_exchange_strong(expected, kClaiming, std::memory_order_seq_cst)) continue;
    // A holder of the old client may have arrived between the check and the
    // claim: give the entry back to it.
    if (candidate->active.load(std::memory_order_seq_cst) != 0) {
      candidate->tag.store(candidate_tag, std::memory_order_release);
      continue;
    }
    candidate->address_hi.store(hi, std::memory_order_relaxed);
    candidate->address_lo.store(lo, std::memory_order_relaxed);
    candidate->bucket.store(pack_bucket(now_ms, capacity_milli(spec)), std::memory_order_relaxed);
    candidate->touched_s.store(static_cast<uint32_t>(now_ms / 1000), std::memory_order_relaxed);
    candidate->active.fetch_add(1, std::memory_order_acq_rel);
    candidate->tag.store(tag, std::memory_order_release);
    return candidate;
  }
  return nullptr;
}

void ClientLimitTable::release(Entry* entry, uint64_t now_ms) {
  touch(entry, now_ms);
  entry->active.fetch_sub(1, std::memory_order_acq_rel);
}

uint32_t ClientLimitTable::take(Entry* entry, uint32_t count, const ClientLimitsSpec& spec, uint64_t now_ms) {
  if (spec.rate == 0 || count == 0) return count;
  const uint64_t full = capacity_milli(spec);
  uint64_t value = entry->bucket.load(std::memory_order_relaxed);
  for (;;) {
    // Elapsed time modulo 2^32 ms (49 days). Each worker reads the clock once
    // per loop pass, so a worker may arrive with a `now` a little older than
    // the stamp another worker just wrote: that is no time at all, not 49
    // days (which would refill the bucket), and the newer stamp stays.
    const uint32_t stamp = static_cast<uint32_t>(value >> 32);
    uint32_t elapsed = static_cast<uint32_t>(now_ms) - stamp;
    uint32_t next_stamp = static_cast<uint32_t>(now_ms);
    if (elapsed > std::numeric_limits<uint32_t>::max() - kMaxClockLagMs) {
      elapsed = 0;
      next_stamp = stamp;
    }
    const uint64_t level = std::min<uint64_t>(full, (value & 0xFFFFFFFFu) + static_cast<uint64_t>(elapsed) * spec.rate);
    const uint32_t granted = static_cast<uint32_t>(std::min<uint64_t>(count, level / kMilli));
    const uint64_t next = pack_bucket(next_stamp, level - granted * kMilli);
    if (next == value || entry->bucket.compare_exchange_weak(value, next, std::memory_order_relaxed)) {
      if (granted > 0) touch(entry, now_ms);
      return granted;
    }
  }
}

Admission ClientLimitTable::admit_connection(const sockaddr_storage& client, const ClientLimitsSpec& spec,
                                             uint64_t now_ms, Entry** out) {
  *out = nullptr;
  Entry* entry = hold(client, spec, now_ms);
  if (entry == nullptr) return Admission::kUntracked;
  // The hold counts this connection already: over the limit means above it.
  if (spec.max_connections != 0 &&
      entry->active.load(std::memory_order_acquire) > static_cast<int32_t>(spec.max_connections)) {
    release(entry, now_ms);
    return Admission::kOverConnections;
  }
  if (take(entry, 1, spec, now_ms) == 0) {
    release(entry, now_ms);
    return Admission::kOverRate;
  }
  *out = entry;
  return Admission::kAdmitted;
}

uint32_t ClientLimitTable::held_entries() const {
  uint32_t held = 0;
  for (uint32_t i = 0; i <= mask_; i++) {
    if (entries_[i].active.load(std::memory_order_relaxed) > 0) held++;
  }
  return held;
}

}  // namespace fulcrum
