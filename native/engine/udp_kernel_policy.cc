#include "udp_kernel_policy.h"

#include "udp_kernel_maps.h"

#include <arpa/inet.h>
#include <linux/bpf.h>

#include <algorithm>
#include <vector>

namespace fulcrum {
namespace {

// The layouts of udp_nat.bpf.c's policy maps.
struct NatPolicy {
  uint32_t flags;
  uint32_t responses;
  uint64_t interval_ns;
  uint64_t burst_ns;
};
static_assert(sizeof(NatPolicy) == 24);
enum : uint32_t { kPolicyAcl = 1, kPolicyDefaultDeny = 2, kPolicyRate = 4 };
struct NatAclKey {
  uint32_t prefixlen;
  uint32_t ip;  // network order
};

// The lists' prefixes the program looks up; an LPM trie allocates per entry
// (BPF_F_NO_PREALLOC), so the bound costs nothing until used.
constexpr uint32_t kMaxAclEntries = 262144;
// The client table when client_limits is off: the size client_limits'
// table_size defaults to, so that turning the limits on keeps the maps.
constexpr uint32_t kDefaultClientsSize = 65536;

uint32_t clients_size(const ServiceSpec& spec) {
  return spec.limits.enabled ? spec.limits.table_size : kDefaultClientsSize;
}

}  // namespace

bool UdpKernelPolicy::create(const ServiceSpec& spec, std::string* reason) {
  clients_size_ = clients_size(spec);
  struct Made {
    bpf::Fd* fd;
    bpf::MapSpec spec;
  } maps[] = {
      {&policy_, {"nat_policy", BPF_MAP_TYPE_ARRAY, 4, sizeof(NatPolicy), 1}},
      {&acl_, {"nat_acl", BPF_MAP_TYPE_LPM_TRIE, sizeof(NatAclKey), 1, kMaxAclEntries, BPF_F_NO_PREALLOC}},
      {&clients_, {"nat_clients", BPF_MAP_TYPE_LRU_HASH, 4, 8, clients_size_}},
  };
  for (Made& made : maps) {
    const int fd = bpf::create_map(made.spec, reason);
    if (fd < 0) return false;
    *made.fd = bpf::Fd(fd);
  }
  return true;
}

int UdpKernelPolicy::map_fd(std::string_view name) const {
  if (name == "nat_policy") return policy_.get();
  if (name == "nat_acl") return acl_.get();
  if (name == "nat_clients") return clients_.get();
  return -1;
}

bool UdpKernelPolicy::compatible(const ServiceSpec& spec) const { return clients_size(spec) == clients_size_; }

uint32_t UdpKernelPolicy::update(const ServiceSpec& spec, int flows_fd, int reverse_fd) {
  // The lists first: a new flow is never decided by a half-written policy
  // that says "no lists" while the lists are on their way.
  std::map<std::pair<uint32_t, uint32_t>, bool> entries;
  if (spec.acl) {
    spec.acl->each_ipv4([&](uint32_t prefix, unsigned length, bool allow) {
      entries[{length, htonl(prefix)}] = allow;
    });
  }
  bool changed = false;
  for (const auto& [key, allow] : entries) {
    const auto old = acl_entries_.find(key);
    if (old != acl_entries_.end() && old->second == allow) continue;
    const NatAclKey acl_key{key.first, key.second};
    const uint8_t verdict = allow ? 1 : 0;
    bpf::map_update(acl_.get(), &acl_key, &verdict, BPF_ANY);
    changed = true;
  }
  for (const auto& [key, allow] : acl_entries_) {
    if (entries.count(key) != 0) continue;
    const NatAclKey acl_key{key.first, key.second};
    bpf::map_delete(acl_.get(), &acl_key);
    changed = true;
  }
  acl_entries_ = std::move(entries);

  NatPolicy policy{};
  if (spec.acl) policy.flags |= kPolicyAcl;
  if (spec.acl && spec.acl->has_allow()) policy.flags |= kPolicyDefaultDeny;
  if (spec.limits.enabled && spec.limits.rate > 0) {
    policy.flags |= kPolicyRate;
    policy.interval_ns = 1'000'000'000ULL / spec.limits.rate;
    policy.burst_ns = policy.interval_ns * std::max<uint32_t>(spec.limits.burst, 1);
  }
  policy.responses = spec.udp.responses;
  const uint32_t zero = 0;
  bpf::map_update(policy_.get(), &zero, &policy, BPF_ANY);
  changed = changed || (policy.flags & (kPolicyAcl | kPolicyDefaultDeny)) != (flags_ & (kPolicyAcl | kPolicyDefaultDeny));
  flags_ = policy.flags;
  const bool first = !written_;
  written_ = true;
  // As the relay: a reload's lists apply to open flows too.
  return changed && !first ? end_refused_flows(flows_fd, reverse_fd, spec.udp.max_flows) : 0;
}

bool UdpKernelPolicy::admits(uint32_t client_ip) const {
  if ((flags_ & kPolicyAcl) == 0) return true;
  const NatAclKey key{32, client_ip};
  uint8_t verdict = 0;
  if (bpf::map_lookup(acl_.get(), &key, &verdict) == 0) return verdict != 0;
  return (flags_ & kPolicyDefaultDeny) == 0;
}

uint32_t UdpKernelPolicy::end_refused_flows(int flows_fd, int reverse_fd, uint32_t max_flows) const {
  std::vector<NatFlowKey> refused;
  for (const NatFlowKey& key : bpf::map_keys<NatFlowKey>(flows_fd, max_flows * 2ULL + 16)) {
    if (!admits(key.client_ip)) refused.push_back(key);
  }
  uint32_t ended = 0;
  for (const NatFlowKey& flow_key : refused) {
    NatFlow flow{};
    if (bpf::map_lookup(flows_fd, &flow_key, &flow) != 0) continue;
    if (bpf::map_delete(flows_fd, &flow_key) != 0) continue;
    ended++;
    // Its NAT port too, so late replies reach nobody (as the relay's closed socket).
    uint32_t port = flow.nat_port;
    NatReverse back{};
    if (bpf::map_lookup(reverse_fd, &port, &back) == 0 && back.client_ip == flow_key.client_ip &&
        back.client_port == flow_key.client_port) {
      bpf::map_delete(reverse_fd, &port);
    }
  }
  return ended;
}

}  // namespace fulcrum
