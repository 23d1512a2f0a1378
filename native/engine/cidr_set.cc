#include "cidr_set.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "address.h"

namespace fulcrum {

namespace {

uint64_t load_be64(const uint8_t* bytes) {
  uint64_t value = 0;
  for (int i = 0; i < 8; i++) value = (value << 8) | bytes[i];
  return value;
}

}  // namespace

CidrSet::Key CidrSet::mask(Key key, unsigned length, unsigned bits) {
  // Keys are left-aligned in 128 bits for IPv6, right-aligned in lo for IPv4.
  if (bits == 32) {
    const uint64_t keep = length == 0 ? 0 : (~uint64_t{0} << (32 - length)) & 0xFFFFFFFFu;
    return Key{0, key.lo & keep};
  }
  if (length == 0) return Key{};
  if (length <= 64) return Key{key.hi & (~uint64_t{0} << (64 - length)), 0};
  return Key{key.hi, length == 128 ? key.lo : key.lo & (~uint64_t{0} << (128 - length))};
}

void CidrSet::insert(Family& family, Key key, unsigned length, bool allow) {
  auto level = std::find_if(family.levels.begin(), family.levels.end(), [&](const Level& l) { return l.length == length; });
  if (level == family.levels.end()) {
    family.levels.push_back(Level{length, {}});
    level = family.levels.end() - 1;
  }
  level->entries.push_back(Entry{key, allow});  // duplicates are merged by finish()
}

int CidrSet::add(const std::string& cidr, bool allow) {
  const size_t slash = cidr.find('/');
  const std::string host = cidr.substr(0, slash);
  unsigned length = 0;
  bool has_length = slash != std::string::npos;
  if (has_length) {
    const std::string digits = cidr.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) return -EINVAL;
    for (char c : digits) {
      if (c < '0' || c > '9') return -EINVAL;
      length = length * 10 + static_cast<unsigned>(c - '0');
    }
  }
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    if (!has_length) length = 32;
    if (length > 32) return -EINVAL;
    insert(v4_, mask(Key{0, ntohl(v4.s_addr)}, length, 32), length, allow);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (!has_length) length = 128;
    if (length > 128) return -EINVAL;
    if (IN6_IS_ADDR_V4MAPPED(&v6) && length >= 96) {
      // ::ffff:10.0.0.0/104 is 10.0.0.0/8: clients are matched as IPv4.
      uint32_t ip;
      std::memcpy(&ip, &v6.s6_addr[12], 4);
      insert(v4_, mask(Key{0, ntohl(ip)}, length - 96, 32), length - 96, allow);
    } else {
      insert(v6_, mask(Key{load_be64(v6.s6_addr), load_be64(v6.s6_addr + 8)}, length, 128), length, allow);
    }
  } else {
    return -EINVAL;
  }
  if (allow) has_allow_ = true;
  return 0;
}

void CidrSet::finish() {
  for (Family* family : {&v4_, &v6_}) {
    std::sort(family->levels.begin(), family->levels.end(), [](const Level& a, const Level& b) { return a.length > b.length; });
    for (Level& level : family->levels) {
      auto& entries = level.entries;
      std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.key < b.key; });
      // One entry per prefix; one listed in both lists denies.
      size_t kept = 0;
      for (size_t i = 0; i < entries.size(); i++) {
        if (kept > 0 && entries[kept - 1].key == entries[i].key) {
          entries[kept - 1].allow = entries[kept - 1].allow && entries[i].allow;
        } else {
          entries[kept++] = entries[i];
        }
      }
      entries.resize(kept);
    }
  }
}

int CidrSet::decide(const Family& family, Key key, unsigned bits) {
  for (const Level& level : family.levels) {
    const Key masked = mask(key, level.length, bits);
    auto found = std::lower_bound(level.entries.begin(), level.entries.end(), masked,
                                  [](const Entry& e, const Key& k) { return e.key < k; });
    if (found != level.entries.end() && found->key == masked) return found->allow ? 1 : -1;
  }
  return 0;
}

bool CidrSet::admits(const sockaddr_storage& address) const {
  const sockaddr_storage client = unmap_ipv4(address);
  int verdict = 0;
  if (client.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(client);
    verdict = decide(v4_, Key{0, ntohl(v4.sin_addr.s_addr)}, 32);
  } else if (client.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(client);
    verdict = decide(v6_, Key{load_be64(v6.sin6_addr.s6_addr), load_be64(v6.sin6_addr.s6_addr + 8)}, 128);
  } else {
    return !has_allow_;
  }
  if (verdict != 0) return verdict > 0;
  return !has_allow_;
}

}  // namespace fulcrum
