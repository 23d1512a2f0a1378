// The admission policies of a service on the kernel UDP datapath
// (udp_kernel_nat.h): the maps udp_nat.bpf.c reads them from, and keeping
// them in step with the service's config. UdpKernelNat owns one.
//
//   nat_policy   ARRAY[1]: which policies are on, udp.responses, the rate
//   nat_acl      LPM_TRIE of the allow/deny lists' IPv4 prefixes -> allow (1) or deny (0)
//   nat_clients  LRU_HASH[client_limits.table_size] client address -> GCRA time (datagram_rate)
//
// The same decisions as the relay (udp_relay.cc): allow/deny decides a new
// flow (longest prefix; the same prefix in both lists denies; no prefix:
// refused only when there is an allow list), and a reload's new lists end the
// open flows of clients they refuse (their next datagram is refused and
// counted). datagram_rate/datagram_burst is a token bucket per client address
// that every datagram of the client takes from; a client with no token gets
// no flow. udp.responses ends a flow after that many replies; later replies
// are dropped.
//
// Where it differs: the bucket is exact for a client whose datagrams one CPU
// handles; CPUs sharing a client never exceed the rate, but each may admit one
// datagram past the burst when the client comes back from a quiet spell. The
// client table is an LRU map: a full table forgets its least recently seen
// client (who comes back with a full bucket) instead of leaving new clients
// untracked. Reply counts (udp.responses) are per CPU-consistent: two CPUs
// handling replies of one flow at the same instant may each deliver one
// more. IPv6 prefixes are not written: the kernel datapath sees IPv4 only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "bpf.h"
#include "service.h"

namespace fulcrum {

class UdpKernelPolicy {
 public:
  // Creates the maps (empty policy: everything admitted), or false with
  // *reason saying why.
  bool create(const ServiceSpec& spec, std::string* reason);
  // The fd of one of the policy maps by its name in udp_nat.bpf.c, or -1.
  int map_fd(std::string_view name) const;
  // The running maps can take `spec` (the client table's size is the same).
  bool compatible(const ServiceSpec& spec) const;
  // Writes `spec`'s policies. When the allow/deny lists changed, ends the
  // flows in `flows_fd` (nat_flows) of clients they now refuse, with their
  // NAT port in `reverse_fd` (nat_reverse). Returns the flows ended.
  uint32_t update(const ServiceSpec& spec, int flows_fd, int reverse_fd);

 private:
  // Whether the lists now in nat_acl admit `client_ip` (network order).
  bool admits(uint32_t client_ip) const;
  uint32_t end_refused_flows(int flows_fd, int reverse_fd, uint32_t max_flows) const;

  bpf::Fd policy_, acl_, clients_;
  uint32_t clients_size_ = 0;
  uint32_t flags_ = 0;
  // What nat_acl holds: (length, prefix in network order) -> allow.
  std::map<std::pair<uint32_t, uint32_t>, bool> acl_entries_;
  bool written_ = false;
};

}  // namespace fulcrum
