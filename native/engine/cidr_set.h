// Access control lists: which client addresses a service admits (`allow:` and
// `deny:` lists of CIDR prefixes, IPv4 and IPv6). Built once per snapshot on
// the JS thread, then read-only, shared by every worker without locks.
//
// Decision, independent of the order the lists are written in: the longest
// prefix that contains the address decides (allow 10.0.0.0/8 with deny
// 10.1.0.0/16 admits 10.2.3.4 and refuses 10.1.2.3; adding allow 10.1.2.3/32
// admits that one host again). The same prefix in both lists: deny. An
// address no prefix contains is admitted only when the allow list is empty.
// IPv4-mapped IPv6 clients (a [::] listener) are matched as IPv4.
//
// Lookup: one binary search per distinct prefix length in use, longest first,
// so a list of thousands of prefixes of a few lengths costs a few searches.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fulcrum {

class CidrSet {
 public:
  // Adds "a.b.c.d/n", "a.b.c.d" (/32), "x::y/n" or "x::y" (/128). Returns 0
  // or -EINVAL for text that is not one of those (a host part with bits set
  // below the prefix is accepted and masked off).
  int add(const std::string& cidr, bool allow);
  // Sorts what add() collected; call once, before admits().
  void finish();

  bool empty() const { return v4_.empty() && v6_.empty(); }
  // Whether the client at `address` (AF_INET or AF_INET6) is admitted.
  bool admits(const sockaddr_storage& address) const;
  // After finish(): whether any allow prefix was added (then an address no
  // prefix contains is refused), and each IPv4 prefix (IPv4-mapped IPv6 ones
  // included) with its decision, one per prefix (deny where both lists have
  // it). For the kernel UDP datapath's copy of the lists (udp_kernel_policy.h).
  bool has_allow() const { return has_allow_; }
  template <typename Visit>  // visit(uint32_t prefix in host order, unsigned length, bool allow)
  void each_ipv4(Visit&& visit) const {
    for (const Level& level : v4_.levels) {
      for (const Entry& entry : level.entries) visit(static_cast<uint32_t>(entry.key.lo), level.length, entry.allow);
    }
  }

 private:
  // An address as 128 bits (IPv4 in the low 32 bits of lo), masked to its prefix.
  struct Key {
    uint64_t hi = 0;
    uint64_t lo = 0;
    bool operator<(const Key& other) const { return hi != other.hi ? hi < other.hi : lo < other.lo; }
    bool operator==(const Key& other) const = default;
  };
  struct Entry {
    Key key;
    bool allow;
  };
  // Every prefix of one length, sorted by key.
  struct Level {
    unsigned length;
    std::vector<Entry> entries;
  };
  struct Family {
    std::vector<Level> levels;  // longest prefix first after finish()
    bool empty() const { return levels.empty(); }
  };

  static Key mask(Key key, unsigned length, unsigned bits);
  static void insert(Family& family, Key key, unsigned length, bool allow);
  // +1 allow, -1 deny, 0 no prefix matched.
  static int decide(const Family& family, Key key, unsigned bits);

  Family v4_;
  Family v6_;
  bool has_allow_ = false;
};

}  // namespace fulcrum
