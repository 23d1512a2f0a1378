// The kernel UDP datapath's user-space side (udp_kernel_flows.h) against a
// flow map and a reverse map created here, filled as udp_nat.bpf.c fills
// them: a flow's first sight, its record when it ends idle (exact datagrams
// and payload bytes each way, client, backend, start, duration), a flow the
// LRU map evicted, a flow that moved to another backend (its replies carried
// over), NAT ports freed only after their grace, shares for session sync, and
// finish()'s shutdown records. No program is loaded: time is the test's own.
// Skipped (reported) where this process may not create BPF maps.
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <sys/socket.h>

#include <cstdio>
#include <string>
#include <vector>

#include "engine/address.h"
#include "engine/bpf.h"
#include "engine/flow_hash.h"
#include "engine/udp_kernel_flows.h"

void check(bool ok, const std::string& what);

namespace {

using namespace fulcrum;

constexpr uint64_t kSecond = 1'000'000'000ULL;
constexpr uint64_t kT0 = 1'000 * kSecond;  // an arbitrary CLOCK_MONOTONIC time

uint32_t ip(const char* text) {
  uint32_t out = 0;
  inet_pton(AF_INET, text, &out);
  return out;
}

struct Maps {
  bpf::Fd flows, reverse;
};

bool make_maps(Maps* maps, std::string* error) {
  const int flows = bpf::create_map({"test_flows", BPF_MAP_TYPE_LRU_HASH, sizeof(NatFlowKey), sizeof(NatFlow), 64}, error);
  if (flows < 0) return false;
  maps->flows = bpf::Fd(flows);
  const int reverse = bpf::create_map({"test_reverse", BPF_MAP_TYPE_HASH, 4, sizeof(NatReverse), 64}, error);
  if (reverse < 0) return false;
  maps->reverse = bpf::Fd(reverse);
  return true;
}

// What the program writes for a client's flow: its flow entry and its NAT
// port's reverse entry, with `requests` datagrams of `request_size` payload
// bytes and `replies` of `reply_size`.
struct Flow {
  NatFlowKey key;
  NatFlow flow;
  NatReverse back;
};

Flow make_flow(const char* client, uint16_t client_port, const char* backend, uint16_t nat_port, uint32_t slot) {
  Flow f{};
  f.key = NatFlowKey{ip(client), htons(client_port), 0};
  f.flow.backend_ip = ip(backend);
  f.flow.backend_port = htons(9000);
  f.flow.nat_port = nat_port;
  f.flow.slot = slot;
  f.back.client_ip = f.key.client_ip;
  f.back.client_port = f.key.client_port;
  f.back.backend_ip = f.flow.backend_ip;
  f.back.backend_port = f.flow.backend_port;
  return f;
}

void traffic(Flow* f, uint64_t requests, uint64_t request_size, uint64_t replies, uint64_t reply_size, uint64_t at) {
  f->flow.packets += requests;
  f->flow.bytes += requests * (request_size + kNatFrameOverhead);
  f->flow.last_ns = at;
  f->back.packets += replies;
  f->back.bytes += replies * (reply_size + kNatFrameOverhead);
  if (replies != 0) f->back.last_ns = at;
}

void write(const Maps& maps, const Flow& f) {
  uint32_t port = f.flow.nat_port;
  bpf::map_update(maps.flows.get(), &f.key, &f.flow, BPF_ANY);
  bpf::map_update(maps.reverse.get(), &port, &f.back, BPF_ANY);
}

bool in_map(int fd, const void* key, void* value) { return bpf::map_lookup(fd, key, value) == 0; }

struct Seen {
  std::vector<ConnectionRecord> ended;
  std::vector<std::pair<NatFlowKey, uint32_t>> shared;
  UdpKernelFlowSinks sinks() {
    return {[this](const ConnectionRecord& r) { ended.push_back(r); },
            [this](const NatFlowKey& k, uint32_t slot, uint64_t) { shared.emplace_back(k, slot); }};
  }
};

UdpKernelFlowSettings settings() {
  UdpKernelFlowSettings s;
  s.service_slot = 3;
  s.worker = 2;
  s.idle_ns = 5 * kSecond;
  s.max_flows = 64;
  s.nat_port_count = 64;
  s.share_every_ns = 2 * kSecond;
  return s;
}

std::string text(const ClientAddress& a) { return a.text(); }

void test_idle_flow_record(const Maps& maps) {
  UdpKernelFlows flows;
  Seen seen;
  Flow f = make_flow("10.0.0.7", 40000, "10.0.1.5", 30001, 1);
  f.back.last_ns = kT0;  // the program stamps the port when it takes it
  traffic(&f, 1, 64, 0, 0, kT0);
  write(maps, f);
  flows.sweep(maps.flows.get(), maps.reverse.get(), kT0 + kSecond, settings(), seen.sinks());
  check(flows.live() == 1 && flows.tracked() == 1 && seen.ended.empty(), "kernel flows: a new flow is seen, nothing ended");
  check(seen.shared.size() == 1 && seen.shared[0].second == 1, "kernel flows: a new flow is shared once, with its slot");
  traffic(&f, 2, 64, 3, 100, kT0 + 2 * kSecond);
  write(maps, f);
  flows.sweep(maps.flows.get(), maps.reverse.get(), kT0 + 2 * kSecond + kSecond / 2, settings(), seen.sinks());
  check(seen.ended.empty() && flows.live() == 1, "kernel flows: a flow in use is not ended");
  check(seen.shared.size() == 1, "kernel flows: not shared again before share_every");
  traffic(&f, 0, 0, 1, 100, kT0 + 4 * kSecond);
  write(maps, f);
  flows.sweep(maps.flows.get(), maps.reverse.get(), kT0 + 5 * kSecond, settings(), seen.sinks());
  check(seen.shared.size() == 2, "kernel flows: shared again once share_every passed with the flow in use");
  // Idle 5 s after the last reply (kT0 + 4 s): ended at kT0 + 9 s.
  flows.sweep(maps.flows.get(), maps.reverse.get(), kT0 + 9 * kSecond + 1, settings(), seen.sinks());
  check(seen.ended.size() == 1, "kernel flows: the idle flow ended once");
  if (seen.ended.size() != 1) return;
  const ConnectionRecord& r = seen.ended[0];
  check(r.kind == RecordKind::kUdpEnd && r.termination == Termination::kIdleTimeout, "kernel flows: a udp record, idle_timeout");
  check(r.datagrams_in == 3 && r.bytes_in == 3 * 64, "kernel flows: 3 datagrams, 192 payload bytes in (" +
        std::to_string(r.datagrams_in) + ", " + std::to_string(r.bytes_in) + ")");
  check(r.datagrams_out == 4 && r.bytes_out == 4 * 100, "kernel flows: 4 datagrams, 400 payload bytes out (" +
        std::to_string(r.datagrams_out) + ", " + std::to_string(r.bytes_out) + ")");
  check(text(r.client) == "10.0.0.7:40000" && text(r.backend) == "10.0.1.5:9000", "kernel flows: client and backend (" +
        text(r.client) + " -> " + text(r.backend) + ")");
  check(r.start_us == kT0 / 1000, "kernel flows: the start is the first datagram (the NAT port's stamp)");
  check(r.duration_us == 9'000'000, "kernel flows: the duration runs to the idle timeout (" + std::to_string(r.duration_us) + ")");
  check(r.service_slot == 3 && r.worker == 2 && r.established, "kernel flows: service slot and producer");
  NatFlow flow{};
  NatReverse back{};
  uint32_t port = 30001;
  check(!in_map(maps.flows.get(), &f.key, &flow) && !in_map(maps.reverse.get(), &port, &back),
        "kernel flows: the idle flow and its NAT port left the maps");
  check(flows.expired() == 1 && flows.live() == 0 && flows.tracked() == 0, "kernel flows: counted expired, forgotten");
}

void test_evicted_and_orphan_port(const Maps& maps) {
  UdpKernelFlows flows;
  Seen seen;
  Flow f = make_flow("10.0.0.8", 40001, "10.0.1.6", 30002, 2);
  traffic(&f, 5, 10, 5, 20, kT0);
  write(maps, f);
  flows.sweep(maps.flows.get(), maps.reverse.get(), kT0 + kSecond, settings(), seen.sinks());
  bpf::map_delete(maps.flows.get(), &f.key);  // the LRU map made room
  flows.sweep(maps.flows.get(), maps.reverse.get(), kT0 + 2 * kSecond, settings(), seen.sinks());
  check(seen.ended.size() == 1 && seen.ended[0].termination == Termination::kUdpEvicted, "kernel flows: a flow gone from the map ends evicted");
  if (!seen.ended.empty()) {
    check(seen.ended[0].datagrams_in == 5 && seen.ended[0].bytes_in == 50 && seen.ended[0].datagrams_out == 5 &&
              seen.ended[0].bytes_out == 100, "kernel flows: with the figures of the last walk");
  }
  check(flows.evicted() == 1 && flows.expired() == 0, "kernel flows: counted evicted");
  uint32_t port = 30002;
  NatReverse back{};
  // The orphan port's stamp is kT0 (its last reply): freed 2 s after it, not before.
  flows.sweep(maps.flows.get(), maps.reverse.get(), kT0 + kSecond + kSecond / 2, settings(), seen.sinks());
  check(in_map(maps.reverse.get(), &port, &back), "kernel flows: an orphan NAT port is kept within its grace");
  flows.sweep(maps.flows.get(), maps.reverse.get(), kT0 + 3 * kSecond, settings(), seen.sinks());
  check(!in_map(maps.reverse.get(), &port, &back), "kernel flows: and freed after it");
  check(seen.ended.size() == 1, "kernel flows: an evicted flow is reported once");
}

void test_moved_flow(const Maps& maps) {
  UdpKernelFlows flows;
  Seen seen;
  Flow f = make_flow("10.0.0.9", 40002, "10.0.1.5", 30003, 1);
  traffic(&f, 4, 30, 4, 30, kT0);
  write(maps, f);
  flows.sweep(maps.flows.get(), maps.reverse.get(), kT0 + kSecond, settings(), seen.sinks());
  // Its backend went down: the program moved it (same NAT port, a new reverse entry).
  Flow moved = make_flow("10.0.0.9", 40002, "10.0.1.6", 30003, 2);
  moved.flow.packets = f.flow.packets;
  moved.flow.bytes = f.flow.bytes;
  traffic(&moved, 2, 30, 1, 30, kT0 + 2 * kSecond);
  write(maps, moved);
  flows.sweep(maps.flows.get(), maps.reverse.get(), kT0 + 2 * kSecond + 1, settings(), seen.sinks());
  check(seen.shared.size() == 2 && seen.shared[1].second == 2, "kernel flows: a moved flow is shared again, with its new slot");
  flows.finish(maps.flows.get(), maps.reverse.get(), kT0 + 3 * kSecond, Termination::kShutdown, settings(), seen.sinks());
  check(seen.ended.size() == 1, "kernel flows: finish() ends the open flow");
  if (seen.ended.empty()) return;
  const ConnectionRecord& r = seen.ended[0];
  check(r.termination == Termination::kShutdown, "kernel flows: ended shutdown");
  check(r.datagrams_in == 6 && r.bytes_in == 180 && r.datagrams_out == 5 && r.bytes_out == 150,
        "kernel flows: the replies before the move are carried over (" + std::to_string(r.datagrams_out) + " out)");
  check(text(r.backend) == "10.0.1.6:9000", "kernel flows: the record names the backend it ended on");
  check(flows.tracked() == 0, "kernel flows: finish() forgets the flows");
  NatFlow flow{};
  check(in_map(maps.flows.get(), &f.key, &flow), "kernel flows: finish() leaves the maps alone (the programs may be handed over)");
  bpf::map_delete(maps.flows.get(), &f.key);
  uint32_t port = 30003;
  bpf::map_delete(maps.reverse.get(), &port);
}

void test_many_flows(const Maps& maps) {
  // 40 flows, every one ended idle with its own exact figures.
  UdpKernelFlows flows;
  Seen seen;
  for (uint16_t i = 0; i < 40; i++) {
    Flow f = make_flow("10.0.2.1", static_cast<uint16_t>(50000 + i), "10.0.1.5", static_cast<uint16_t>(31000 + i), 1);
    traffic(&f, i + 1, 100, i, 200, kT0);
    write(maps, f);
  }
  flows.sweep(maps.flows.get(), maps.reverse.get(), kT0 + kSecond, settings(), seen.sinks());
  check(flows.live() == 40, "kernel flows: 40 live (" + std::to_string(flows.live()) + ")");
  flows.sweep(maps.flows.get(), maps.reverse.get(), kT0 + 6 * kSecond, settings(), seen.sinks());
  bool exact = seen.ended.size() == 40;
  for (const ConnectionRecord& r : seen.ended) {
    const uint64_t i = r.client.port - 50000;
    exact = exact && r.datagrams_in == i + 1 && r.bytes_in == (i + 1) * 100 && r.datagrams_out == i && r.bytes_out == i * 200;
  }
  check(exact, "kernel flows: 40 idle records, each with its own exact counts");
  NatFlowKey key{};
  NatFlowKey next{};
  check(bpf::map_next_key(maps.flows.get(), nullptr, &next) == -ENOENT, "kernel flows: the flow map is empty");
  (void)key;
}

void test_sync_key() {
  // A peer's relay looks the client up by the relay's own 5-tuple hash.
  SocketAddress listen;
  parse_socket_address("10.0.0.1", 7000, &listen);
  SocketAddress client;
  parse_socket_address("10.0.0.7", 40000, &client);
  const NatFlowKey key{ip("10.0.0.7"), htons(40000), 0};
  check(kernel_flow_sync_hash(key, listen) == hash_five_tuple(client.storage, listen.storage, IPPROTO_UDP),
        "kernel flows: shared under the relay's 5-tuple hash");
}

}  // namespace

void run_udp_kernel_flows_tests() {
  test_sync_key();
  Maps maps;
  std::string error;
  if (!make_maps(&maps, &error)) {
    std::printf("kernel UDP flow tests skipped: %s\n", error.c_str());
    return;
  }
  test_idle_flow_record(maps);
  test_evicted_and_orphan_port(maps);
  test_moved_flow(maps);
  test_many_flows(maps);
}
