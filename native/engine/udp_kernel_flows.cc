#include "udp_kernel_flows.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "bpf.h"
#include "flow_hash.h"

namespace fulcrum {
namespace {

// A NAT port whose flow is gone is freed only after this long, so a port
// the program has just taken (before it wrote the flow) is never freed.
constexpr uint64_t kOrphanGraceNs = 2'000'000'000ULL;

uint64_t payload(uint64_t bytes, uint64_t packets) {
  const uint64_t overhead = packets * kNatFrameOverhead;
  return bytes > overhead ? bytes - overhead : 0;
}

ClientAddress ipv4_address(uint32_t ip, uint16_t port) {
  ClientAddress address;
  address.family = AF_INET;
  address.port = ntohs(port);
  std::memcpy(address.bytes, &ip, 4);
  return address;
}


}  // namespace

uint64_t kernel_flow_sync_hash(const NatFlowKey& key, const SocketAddress& listen) {
  sockaddr_storage client{};
  auto* in = reinterpret_cast<sockaddr_in*>(&client);
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = key.client_ip;
  in->sin_port = key.client_port;
  return hash_five_tuple(client, listen.storage, IPPROTO_UDP);
}

ConnectionRecord UdpKernelFlows::record_of(uint64_t key, const Known& known, uint64_t end_ns, Termination why,
                                           const UdpKernelFlowSettings& settings) const {
  const NatFlowKey client = flow_key(key);
  const uint64_t replies = known.carried_replies + known.replies;
  const uint64_t reply_bytes = known.carried_reply_bytes + known.reply_bytes;
  ConnectionRecord record;
  record.kind = RecordKind::kUdpEnd;
  record.termination = why;
  record.worker = settings.worker;
  record.established = true;
  record.service_slot = settings.service_slot;
  record.start_us = known.start_ns / 1000;
  record.duration_us = end_ns > known.start_ns ? (end_ns - known.start_ns) / 1000 : 0;
  record.datagrams_in = known.packets_in;
  record.bytes_in = payload(known.bytes_in, known.packets_in);
  record.datagrams_out = replies;
  record.bytes_out = payload(reply_bytes, replies);
  record.client = ipv4_address(client.client_ip, client.client_port);
  record.backend = ipv4_address(known.backend_ip, known.backend_port);
  return record;
}

// Why a flow the last walk saw is gone from the flow map. The program deletes
// a flow at its udp.responses-th reply and keeps the NAT port's reverse entry
// (user space frees it after a grace): that entry, still naming this client
// with its replies complete, says so, and holds the final reply counts.
// Anything else is the LRU map's eviction (max_flows).
Termination UdpKernelFlows::gone_because(int reverse_fd, const NatFlowKey& client, Known& known,
                                         const UdpKernelFlowSettings& settings) {
  if (settings.responses != 0) {
    uint32_t port = known.nat_port;
    NatReverse back{};
    if (bpf::map_lookup(reverse_fd, &port, &back) == 0 && back.client_ip == client.client_ip &&
        back.client_port == client.client_port && back.packets >= settings.responses) {
      known.replies = back.packets;
      known.reply_bytes = back.bytes;
      return Termination::kUdpResponses;
    }
  }
  evicted_++;
  return Termination::kUdpEvicted;
}

void UdpKernelFlows::sweep(int flows_fd, int reverse_fd, uint64_t now_ns, const UdpKernelFlowSettings& settings,
                           const UdpKernelFlowSinks& sinks) {
  const uint64_t walk = ++walk_;
  // The flows in the map, and every flow the last walk saw (one the walk
  // missed is looked up by its key, so only a flow really gone is reported).
  std::vector<uint64_t> keys;
  for (const NatFlowKey& key : bpf::map_keys<NatFlowKey>(flows_fd, settings.max_flows * 2ULL + 16)) keys.push_back(key_of(key));
  for (const auto& [key, known] : known_) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());

  uint32_t live = 0;
  for (uint64_t key : keys) {
    const NatFlowKey map_key = flow_key(key);
    auto found = known_.find(key);
    NatFlow flow{};
    if (bpf::map_lookup(flows_fd, &map_key, &flow) != 0) {
      // Gone without our walk ending it: the program ended it at its last
      // reply (udp.responses), or the LRU map made room (max_flows).
      if (found != known_.end()) {
        const Termination why = gone_because(reverse_fd, map_key, found->second, settings);
        if (sinks.ended) sinks.ended(record_of(key, found->second, now_ns, why, settings));
        known_.erase(found);
      }
      continue;
    }
    uint32_t port = flow.nat_port;
    NatReverse back{};
    const bool has_reverse = bpf::map_lookup(reverse_fd, &port, &back) == 0 && back.client_ip == map_key.client_ip &&
                             back.client_port == map_key.client_port;
    if (found != known_.end() && (found->second.nat_port != flow.nat_port || flow.packets < found->second.packets_in)) {
      // Ended (responses, or evicted) and made again between two walks: the old flow ended.
      const Termination why = gone_because(reverse_fd, map_key, found->second, settings);
      if (sinks.ended) sinks.ended(record_of(key, found->second, now_ns, why, settings));
      known_.erase(found);
      found = known_.end();
    }
    const bool fresh = found == known_.end();
    if (fresh) {
      Known known;
      // The first datagram's time where the maps still hold it; else the
      // last walk (the flow was not there then).
      uint64_t start = last_walk_ns_ != 0 ? last_walk_ns_ : now_ns;
      // The first walk has no earlier one to bound the start: at the latest the
      // flow's last datagram, so that a flow ended idle lasts at least timeouts.idle.
      if (last_walk_ns_ == 0 && flow.last_ns != 0) start = std::min(start, flow.last_ns);
      if (has_reverse && back.packets == 0 && back.last_ns != 0) start = std::min(start, back.last_ns);
      if (flow.packets == 1 && flow.last_ns != 0) start = std::min(start, flow.last_ns);
      known.start_ns = start;
      known.nat_port = flow.nat_port;
      found = known_.emplace(key, known).first;
    }
    Known& known = found->second;
    const bool moved = !fresh && (known.slot != flow.slot || known.backend_ip != flow.backend_ip ||
                                  known.backend_port != flow.backend_port);
    if (has_reverse) {
      if (moved || back.packets < known.replies) {
        // A new reverse entry (the flow moved): keep what the old one counted.
        known.carried_replies += known.replies;
        known.carried_reply_bytes += known.reply_bytes;
      }
      known.replies = back.packets;
      known.reply_bytes = back.bytes;
    } else if (moved) {
      known.carried_replies += known.replies;
      known.carried_reply_bytes += known.reply_bytes;
      known.replies = 0;
      known.reply_bytes = 0;
    }
    known.slot = flow.slot;
    known.backend_ip = flow.backend_ip;
    known.backend_port = flow.backend_port;
    known.packets_in = flow.packets;
    known.bytes_in = flow.bytes;
    known.walk = walk;

    uint64_t last = flow.last_ns;
    if (has_reverse && back.last_ns > last) last = back.last_ns;
    if (now_ns > last && now_ns - last > settings.idle_ns) {
      bpf::map_delete(flows_fd, &map_key);
      if (has_reverse) bpf::map_delete(reverse_fd, &port);
      expired_++;
      if (sinks.ended) sinks.ended(record_of(key, known, last + settings.idle_ns, Termination::kIdleTimeout, settings));
      known_.erase(found);
      continue;
    }
    live++;
    if (settings.share_every_ns != 0 && sinks.share &&
        (fresh || moved || (flow.last_ns > known.shared_ns && now_ns - known.shared_ns >= settings.share_every_ns))) {
      known.shared_ns = now_ns;
      sinks.share(map_key, flow.slot, last);
    }
  }

  // NAT ports whose flow the LRU map evicted (max_flows) go back to the pool.
  for (uint32_t at : bpf::map_keys<uint32_t>(reverse_fd, settings.nat_port_count * 2ULL + 16)) {
    NatReverse back{};
    if (bpf::map_lookup(reverse_fd, &at, &back) != 0) continue;
    const NatFlowKey owner{back.client_ip, back.client_port, 0};
    NatFlow flow{};
    const bool owned = bpf::map_lookup(flows_fd, &owner, &flow) == 0 && flow.nat_port == at;
    if (!owned && now_ns > back.last_ns && now_ns - back.last_ns > kOrphanGraceNs) bpf::map_delete(reverse_fd, &at);
  }
  live_ = live;
  last_walk_ns_ = now_ns;
}

void UdpKernelFlows::finish(int flows_fd, int reverse_fd, uint64_t now_ns, Termination why,
                            const UdpKernelFlowSettings& settings, const UdpKernelFlowSinks& sinks) {
  UdpKernelFlowSinks ended_only{sinks.ended, nullptr};
  sweep(flows_fd, reverse_fd, now_ns, settings, ended_only);
  for (const auto& [key, known] : known_) {
    if (sinks.ended) sinks.ended(record_of(key, known, now_ns, why, settings));
  }
  known_.clear();
  live_ = 0;
}

}  // namespace fulcrum
