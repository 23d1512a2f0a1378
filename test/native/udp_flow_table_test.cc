// The UDP flow table without sockets: lookups by 5-tuple through growth and
// churn (removal by backward shift must keep every other key findable, even
// when hashes collide), and the least-recently-used order that max_flows
// eviction relies on. Run by engine_test's main().
#include <arpa/inet.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/flow_hash.h"
#include "engine/udp_flow_table.h"

void check(bool ok, const std::string& what);

namespace {

using namespace fulcrum;

class NoOwner final : public UdpFlowOwner {
 public:
  void on_flow_idle(UdpFlow*, uint64_t) override {}
};

sockaddr_storage v4(uint32_t ip, uint16_t port) {
  sockaddr_storage storage{};
  auto& in4 = reinterpret_cast<sockaddr_in&>(storage);
  in4.sin_family = AF_INET;
  in4.sin_addr.s_addr = htonl(ip);
  in4.sin_port = htons(port);
  return storage;
}


// `hash_bits` of 0 keeps the real 5-tuple hash; otherwise the hash is cut to
// that many bits, so many keys collide on purpose.
std::unique_ptr<UdpFlow> make_flow(NoOwner* owner, uint32_t client_ip, uint16_t client_port, unsigned hash_bits) {
  const sockaddr_storage client = v4(client_ip, client_port);
  const sockaddr_storage local = v4(0x7f000001, 27015);
  uint64_t hash = hash_five_tuple(client, local, IPPROTO_UDP);
  if (hash_bits != 0) hash &= (uint64_t{1} << hash_bits) - 1;
  return std::make_unique<UdpFlow>(owner, make_flow_key(client, local), hash);
}

void test_lookup_through_churn(unsigned hash_bits) {
  const std::string tag = hash_bits == 0 ? "flow table: " : "flow table (colliding hashes): ";
  NoOwner owner;
  UdpFlowTable table;
  std::vector<std::unique_ptr<UdpFlow>> flows;
  for (uint32_t i = 0; i < 5000; i++) flows.push_back(make_flow(&owner, 0x0a000000 + i / 100, static_cast<uint16_t>(1024 + i), hash_bits));
  for (auto& flow : flows) table.insert(flow.get());
  check(table.size() == flows.size(), tag + "every flow inserted");
  bool all_found = std::all_of(flows.begin(), flows.end(), [&](const auto& f) { return table.find(f->key, f->hash) == f.get(); });
  check(all_found, tag + "every flow found by its 5-tuple after growth");
  auto stranger = make_flow(&owner, 0x0b000001, 9, hash_bits);
  check(table.find(stranger->key, stranger->hash) == nullptr, tag + "an unknown 5-tuple is not found");

  std::mt19937 random(42);
  std::vector<size_t> order(flows.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::shuffle(order.begin(), order.end(), random);
  std::vector<bool> removed(flows.size(), false);
  for (size_t n = 0; n < order.size() / 2; n++) {
    table.remove(flows[order[n]].get());
    removed[order[n]] = true;
  }
  bool consistent = true;
  for (size_t i = 0; i < flows.size(); i++) {
    UdpFlow* found = table.find(flows[i]->key, flows[i]->hash);
    if (removed[i] ? found != nullptr : found != flows[i].get()) consistent = false;
  }
  check(consistent, tag + "after removing half in random order, exactly the rest is found");
  check(table.size() == flows.size() - order.size() / 2, tag + "size follows removals");
  for (size_t i = 0; i < flows.size(); i++) {
    if (removed[i]) table.insert(flows[i].get());
  }
  all_found = std::all_of(flows.begin(), flows.end(), [&](const auto& f) { return table.find(f->key, f->hash) == f.get(); });
  check(all_found, tag + "re-inserted flows are found again");
}

void test_idle_order() {
  NoOwner owner;
  UdpFlowTable table;
  check(table.longest_idle() == nullptr, "flow table: an empty table has no longest idle flow");
  std::vector<std::unique_ptr<UdpFlow>> flows;
  for (uint16_t i = 0; i < 4; i++) flows.push_back(make_flow(&owner, 0x0a000001, static_cast<uint16_t>(2000 + i), 0));
  for (auto& flow : flows) table.insert(flow.get());
  check(table.longest_idle() == flows[0].get(), "flow table: the first inserted is the longest idle");
  table.touch(flows[0].get(), 10);
  check(table.longest_idle() == flows[1].get(), "flow table: a touched flow becomes the most recent");
  check(flows[0]->last_active_ms == 10, "flow table: touch records the time");
  std::vector<UdpFlow*> walk;
  for (UdpFlow* f = table.longest_idle(); f != nullptr; f = UdpFlowTable::newer(f)) walk.push_back(f);
  check(walk == std::vector<UdpFlow*>{flows[1].get(), flows[2].get(), flows[3].get(), flows[0].get()},
        "flow table: the idle order is insertion, then touches");
  table.remove(flows[1].get());
  check(table.longest_idle() == flows[2].get(), "flow table: removing the longest idle exposes the next");
  table.remove(flows[0].get());  // the most recent
  table.touch(flows[2].get(), 11);
  check(table.longest_idle() == flows[3].get() && UdpFlowTable::newer(flows[3].get()) == flows[2].get() &&
            UdpFlowTable::newer(flows[2].get()) == nullptr,
        "flow table: the order survives removing the newest");
}

void test_keys() {
  const sockaddr_storage a = v4(0x0a000001, 5000);
  const sockaddr_storage b = v4(0x0a000001, 5001);
  const sockaddr_storage local1 = v4(0x7f000001, 53);
  const sockaddr_storage local2 = v4(0x7f000002, 53);
  check(make_flow_key(a, local1) == make_flow_key(a, local1), "flow key: equal tuples are equal");
  check(!(make_flow_key(a, local1) == make_flow_key(b, local1)), "flow key: the client port counts");
  check(!(make_flow_key(a, local1) == make_flow_key(a, local2)), "flow key: the local address counts");
  sockaddr_storage six{};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(six);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(5000);
  inet_pton(AF_INET6, "::1", &in6.sin6_addr);
  sockaddr_storage six_local = six;
  reinterpret_cast<sockaddr_in6&>(six_local).sin6_port = htons(53);
  check(!(make_flow_key(six, six_local) == make_flow_key(a, local1)), "flow key: IPv6 and IPv4 differ");
}

}  // namespace

void run_udp_flow_table_tests() {
  test_keys();
  test_lookup_through_churn(0);
  test_lookup_through_churn(3);
  test_idle_order();
}
