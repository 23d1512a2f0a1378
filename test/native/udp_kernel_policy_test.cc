// udp_kernel_policy: the maps the kernel UDP datapath's programs read the
// service's allow/deny lists from decide every address as the relay's
// CidrSet::admits does (random lists with overlapping prefixes, the same
// prefix in both lists, IPv4-mapped and IPv6 entries), a second update
// leaves exactly the new lists, and an update that refuses clients ends
// their flows (and frees their NAT ports) and no other. Skipped (reported)
// where this process cannot create BPF maps.
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/bpf.h"
#include "engine/cidr_set.h"
#include "engine/udp_kernel_policy.h"

void check(bool ok, const std::string& what);

namespace {

using fulcrum::CidrSet;
using fulcrum::ServiceSpec;
using fulcrum::UdpKernelPolicy;

struct AclKey {
  uint32_t prefixlen;
  uint32_t ip;
};
struct Policy {
  uint32_t flags;
  uint32_t responses;
  uint64_t interval_ns;
  uint64_t burst_ns;
};

sockaddr_storage v4(uint32_t host_order) {
  sockaddr_storage storage{};
  auto* in = reinterpret_cast<sockaddr_in*>(&storage);
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = htonl(host_order);
  return storage;
}

std::string text(uint32_t host_order) {
  char out[INET_ADDRSTRLEN];
  const uint32_t ip = htonl(host_order);
  inet_ntop(AF_INET, &ip, out, sizeof out);
  return out;
}

// What the program decides for `ip` (host order): the trie's longest match,
// else the policy's default.
bool kernel_admits(const UdpKernelPolicy& policy, uint32_t ip) {
  Policy value{};
  const uint32_t zero = 0;
  fulcrum::bpf::map_lookup(policy.map_fd("nat_policy"), &zero, &value);
  if ((value.flags & 1) == 0) return true;
  const AclKey key{32, htonl(ip)};
  uint8_t verdict = 0;
  if (fulcrum::bpf::map_lookup(policy.map_fd("nat_acl"), &key, &verdict) == 0) return verdict != 0;
  return (value.flags & 2) == 0;
}

// Prefixes within 10.0.0.0/12 of lengths 8..32, so that lists overlap.
std::shared_ptr<CidrSet> random_set(std::mt19937& random, int count, bool with_extras) {
  auto set = std::make_shared<CidrSet>();
  for (int i = 0; i < count; i++) {
    const unsigned length = 8 + random() % 25;
    const uint32_t ip = 0x0A000000u | (random() & 0x000FFFFFu);
    set->add(text(ip) + "/" + std::to_string(length), random() % 2 == 0);
  }
  if (with_extras) {
    set->add("10.3.0.0/16", true);
    set->add("10.3.0.0/16", false);     // in both lists: deny
    set->add("::ffff:10.4.0.0/112", true);  // IPv4-mapped: 10.4.0.0/16
    set->add("2001:db8::/32", false);   // IPv6: not for IPv4 clients
  }
  set->finish();
  return set;
}

bool agrees(const UdpKernelPolicy& policy, const CidrSet& set, std::mt19937& random, std::string* first_difference) {
  for (int i = 0; i < 3000; i++) {
    uint32_t ip = 0x0A000000u | (random() & 0x000FFFFFu);
    if (i % 10 == 0) ip = random();  // anywhere
    if (i % 10 == 1) ip = 0x0A030000u | (random() & 0xFFFFu);
    if (i % 10 == 2) ip = 0x0A040000u | (random() & 0xFFFFu);
    if (kernel_admits(policy, ip) != set.admits(v4(ip))) {
      *first_difference = text(ip);
      return false;
    }
  }
  return true;
}

void test_lists_decide_as_the_relay() {
  std::mt19937 random(20261207);
  ServiceSpec spec;
  spec.protocol = fulcrum::Protocol::kUdp;
  spec.acl = random_set(random, 60, true);
  UdpKernelPolicy policy;
  std::string reason;
  if (!policy.create(spec, &reason)) {
    std::printf("udp_kernel_policy tests skipped: %s\n", reason.c_str());
    return;
  }
  policy.update(spec, -1, -1);
  std::string difference;
  check(agrees(policy, *spec.acl, random, &difference), "the trie decides as CidrSet::admits" + (difference.empty() ? "" : ": not for " + difference));
  for (int round = 0; round < 5; round++) {
    // Reloads: the same maps take new lists (entries removed, changed, added).
    spec.acl = random_set(random, 20 + round * 30, round % 2 == 0);
    policy.update(spec, -1, -1);
    difference.clear();
    check(agrees(policy, *spec.acl, random, &difference), "after update " + std::to_string(round + 1) + " too" + (difference.empty() ? "" : ": not for " + difference));
  }
  // An allow list of IPv6 prefixes only: every IPv4 client is refused (no prefix holds it).
  auto v6_only = std::make_shared<CidrSet>();
  v6_only->add("2001:db8::/32", true);
  v6_only->finish();
  spec.acl = v6_only;
  policy.update(spec, -1, -1);
  check(!kernel_admits(policy, 0x0A000001u) && !v6_only->admits(v4(0x0A000001u)), "an IPv6-only allow list refuses IPv4 clients");
  spec.acl.reset();
  policy.update(spec, -1, -1);
  check(kernel_admits(policy, 0x0A000001u), "no lists: everyone admitted");
}

// The layouts of nat_flows and nat_reverse (udp_kernel_nat.cc).
struct FlowKey {
  uint32_t client_ip;
  uint16_t client_port;
  uint16_t pad;
};
struct Flow {
  uint32_t backend_ip;
  uint16_t backend_port;
  uint16_t nat_port;
  uint32_t slot, pad;
  uint64_t last_ns, packets, bytes;
};
struct Reverse {
  uint32_t client_ip;
  uint16_t client_port, backend_port;
  uint32_t backend_ip, pad;
  uint64_t last_ns, packets, bytes;
};

void test_refused_clients_lose_their_flows() {
  ServiceSpec spec;
  spec.protocol = fulcrum::Protocol::kUdp;
  auto first = std::make_shared<CidrSet>();
  first->add("10.1.0.0/16", true);
  first->finish();
  spec.acl = first;
  UdpKernelPolicy policy;
  std::string reason;
  if (!policy.create(spec, &reason)) return;  // reported above
  fulcrum::bpf::Fd flows(fulcrum::bpf::create_map({"test_flows", BPF_MAP_TYPE_LRU_HASH, sizeof(FlowKey), sizeof(Flow), 64}, &reason));
  fulcrum::bpf::Fd reverse(fulcrum::bpf::create_map({"test_reverse", BPF_MAP_TYPE_HASH, 4, sizeof(Reverse), 64}, &reason));
  check(flows.valid() && reverse.valid(), "test maps " + reason);
  policy.update(spec, flows.get(), reverse.get());
  // Four flows: 10.1.0.1 (two ports), 10.1.2.1, 10.1.3.1.
  const uint32_t clients[] = {0x0A010001u, 0x0A010001u, 0x0A010201u, 0x0A010301u};
  for (uint32_t i = 0; i < 4; i++) {
    const FlowKey key{htonl(clients[i]), htons(static_cast<uint16_t>(5000 + i)), 0};
    Flow flow{};
    flow.nat_port = static_cast<uint16_t>(20000 + i);
    fulcrum::bpf::map_update(flows.get(), &key, &flow, BPF_ANY);
    Reverse back{};
    back.client_ip = key.client_ip;
    back.client_port = key.client_port;
    const uint32_t port = flow.nat_port;
    fulcrum::bpf::map_update(reverse.get(), &port, &back, BPF_ANY);
  }
  auto second = std::make_shared<CidrSet>();
  second->add("10.1.0.0/16", true);
  second->add("10.1.0.0/24", false);
  second->add("10.1.3.1", false);
  second->finish();
  spec.acl = second;
  check(policy.update(spec, flows.get(), reverse.get()) == 3, "an update that refuses 10.1.0.1 and 10.1.3.1 ends their three flows");
  for (uint32_t i = 0; i < 4; i++) {
    const FlowKey key{htonl(clients[i]), htons(static_cast<uint16_t>(5000 + i)), 0};
    Flow flow{};
    const bool kept = fulcrum::bpf::map_lookup(flows.get(), &key, &flow) == 0;
    const uint32_t port = 20000 + i;
    Reverse back{};
    const bool port_kept = fulcrum::bpf::map_lookup(reverse.get(), &port, &back) == 0;
    const bool admitted = second->admits(v4(clients[i]));
    check(kept == admitted && port_kept == admitted, "flow " + std::to_string(i) + " of " + text(clients[i]) + (admitted ? " kept with its NAT port" : " ended, its NAT port freed"));
  }
  check(policy.update(spec, flows.get(), reverse.get()) == 0, "the same lists again end nothing");
}

}  // namespace

void run_udp_kernel_policy_tests() {
  test_lists_decide_as_the_relay();
  test_refused_clients_lose_their_flows();
}
