// Hashes of who a connection is, for the hashing algorithms (source, maglev)
// and session persistence. Header-only: the accept path calls these per
// connection. Not std::hash (identity on integers, no mixing).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>

namespace fulcrum {

// splitmix64's finaliser: every input bit affects every output bit.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

namespace flow_hash_detail {

inline uint64_t fold(uint64_t h, uint64_t word) { return mix64(h ^ (word + 0x9e3779b97f4a7c15ULL)); }

// Folds the address bytes (and the port, when asked) of an IPv4 or IPv6
// address. An IPv4-mapped one (::ffff:a.b.c.d, an IPv4 client of a dual-stack
// [::] listener) folds as the IPv4 address it is, so the same client hashes
// the same (source balance, sticky, session sync) whichever listener it used.
inline uint64_t fold_address(uint64_t h, const sockaddr_storage& address, bool with_port) {
  if (address.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
      uint32_t v4;
      std::memcpy(&v4, &in6.sin6_addr.s6_addr[12], sizeof v4);
      h = fold(h, v4);
      if (with_port) h = fold(h, in6.sin6_port);
      return h;
    }
    uint64_t words[2];
    std::memcpy(words, &in6.sin6_addr, sizeof words);
    h = fold(fold(h, words[0]), words[1]);
    if (with_port) h = fold(h, in6.sin6_port);
    return h;
  }
  const auto& in4 = reinterpret_cast<const sockaddr_in&>(address);
  h = fold(h, in4.sin_addr.s_addr);
  if (with_port) h = fold(h, in4.sin_port);
  return h;
}

inline uint64_t nonzero(uint64_t h) { return h == 0 ? 1 : h; }

}  // namespace flow_hash_detail

// Client address only (no port). Never 0.
inline uint64_t hash_source(const sockaddr_storage& client) {
  return flow_hash_detail::nonzero(flow_hash_detail::fold_address(0x5eed0001, client, false));
}

// Protocol and both addresses and ports. Never 0.
inline uint64_t hash_five_tuple(const sockaddr_storage& client, const sockaddr_storage& local, uint8_t ip_protocol) {
  uint64_t h = flow_hash_detail::fold(0x5eed0002, ip_protocol);
  h = flow_hash_detail::fold_address(h, client, true);
  h = flow_hash_detail::fold_address(h, local, true);
  return flow_hash_detail::nonzero(h);
}

// A backend's address and port: what Maglev builds its permutation from.
inline uint64_t hash_identity(const sockaddr_storage& backend) {
  return flow_hash_detail::nonzero(flow_hash_detail::fold_address(0x5eed0003, backend, true));
}

}  // namespace fulcrum
