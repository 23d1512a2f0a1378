// Per-client limits (`client_limits:`): how many connections one source
// address may have open at once, how many new connections per second it may
// open (a token bucket), and for UDP how many datagrams per second it may
// send. One table per service, shared by every worker (a client's connections
// land on any worker), without locks: a fixed-size open-addressing table of
// cache-line entries whose fields are atomics.
//
//   tag      0: never used; 1: being (re)claimed; else a keyed hash of the
//            address (a per-table random key, so nobody can aim two addresses
//            at one probe window). The full address is stored and compared too.
//   active   connections (TCP) or flows (UDP) that hold the entry now
//   bucket   token bucket in one word: last refill (ms, low 32 bits of the
//            clock) << 32 | tokens in thousandths; refilled and taken with CAS
//   touched  seconds of the last use, for expiry
//
// An entry is held (active > 0) by every connection or flow of its client, so
// it is never reused under them. An entry nobody holds whose bucket has had
// time to fill again is as good as a fresh one: once idle that long (at least
// a second) it may be reclaimed in place by another client. A client whose
// probe window has no free or reclaimable entry is not tracked (admitted and
// counted as untracked) rather than refused: a flood of new sources must not
// lock out the clients it displaced. Two first connections of a new client on
// two workers at the same instant may claim two entries; later ones find the
// first, so the limit can be overshot by at most one per worker, once.
//
// The table is kept across reloads while its size stays (the limits are read
// from the snapshot at each check), so counts survive a reload.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>

namespace fulcrum {

struct ClientLimitsSpec {
  bool enabled = false;
  uint32_t max_connections = 0;  // TCP: open at once per source; 0 none
  uint32_t rate = 0;             // per second per source: new TCP connections or UDP datagrams; 0 none
  uint32_t burst = 0;            // bucket size (what may come at once after a quiet spell); >= 1 when rate
  uint32_t table_size = 65536;   // sources tracked at once
};

enum class Admission : uint8_t {
  kAdmitted,
  kUntracked,        // admitted, but no entry could be had (the table is full there)
  kDenied,           // the ACL
  kOverConnections,  // max_connections reached
  kOverRate,         // the bucket is empty
};

class ClientLimitTable {
 public:
  struct alignas(64) Entry {
    std::atomic<uint64_t> tag{0};
    std::atomic<uint64_t> address_hi{0};
    std::atomic<uint64_t> address_lo{0};
    std::atomic<uint64_t> bucket{0};
    std::atomic<int32_t> active{0};
    std::atomic<uint32_t> touched_s{0};
  };

  // capacity: entries (rounded up to a power of two, at least 16).
  explicit ClientLimitTable(uint32_t capacity);

  // Any worker. The entry of `client` (IPv4-mapped IPv6 is IPv4), claimed if
  // new, with one hold taken on it (release() gives it back); nullptr when the
  // probe window is full of other live clients.
  Entry* hold(const sockaddr_storage& client, const ClientLimitsSpec& spec, uint64_t now_ms);
  void release(Entry* entry, uint64_t now_ms);

  // A new TCP connection from `client`: a token when spec.rate is set, then a
  // place under spec.max_connections. On kAdmitted *entry is held (release it
  // when the connection closes); on every other result nothing is held.
  Admission admit_connection(const sockaddr_storage& client, const ClientLimitsSpec& spec, uint64_t now_ms,
                             Entry** entry);
  // Takes up to `count` tokens from a held entry's bucket; returns how many
  // were had. Always `count` when spec.rate is 0.
  uint32_t take(Entry* entry, uint32_t count, const ClientLimitsSpec& spec, uint64_t now_ms);

  uint32_t capacity() const { return mask_ + 1; }
  // Entries held by at least one connection or flow (a test and status hook).
  uint32_t held_entries() const;

 private:
  static constexpr uint32_t kProbes = 16;
  static constexpr uint64_t kClaiming = 1;
  uint64_t tag_of(uint64_t hi, uint64_t lo) const;
  bool reclaimable(const Entry& entry, const ClientLimitsSpec& spec, uint64_t now_ms) const;
  void touch(Entry* entry, uint64_t now_ms);

  uint32_t mask_;
  uint64_t key_;
  std::unique_ptr<Entry[]> entries_;
};

}  // namespace fulcrum
