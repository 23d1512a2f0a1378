// The layouts of the kernel UDP datapath's flow maps, as native/bpf/udp_nat.bpf.c
// writes them (nat_flows, nat_reverse), shared by the loader
// (udp_kernel_nat.cc) and the flow walk (udp_kernel_flows.h). Network byte
// order for addresses and ports unless said otherwise.
#pragma once

#include <cstdint>

namespace fulcrum {

// nat_flows: LRU_HASH[max_flows] NatFlowKey -> NatFlow.
struct NatFlowKey {
  uint32_t client_ip;
  uint16_t client_port;
  uint16_t pad;
};
struct NatFlow {
  uint32_t backend_ip;
  uint16_t backend_port;
  uint16_t nat_port;  // host order
  uint32_t slot;      // the backend's engine slot
  uint32_t pad;
  uint64_t last_ns;   // CLOCK_MONOTONIC of the last datagram from the client
  uint64_t packets;   // from the client
  uint64_t bytes;     // from the client, as skb->len at tc ingress (Ethernet header included)
};
// nat_reverse: HASH[nat port count] u32 NAT port (host order) -> NatReverse.
struct NatReverse {
  uint32_t client_ip;
  uint16_t client_port;
  uint16_t backend_port;
  uint32_t backend_ip;
  uint32_t pad;
  uint64_t last_ns;   // the last reply, or when the port was taken
  uint64_t packets;   // replies (since the flow last moved to another backend)
  uint64_t bytes;
};
static_assert(sizeof(NatFlowKey) == 8 && sizeof(NatFlow) == 40 && sizeof(NatReverse) == 40);

// What a counted datagram carries besides its payload: the programs handle
// Ethernet + IPv4 without options + UDP only, so this is exact.
constexpr uint64_t kNatFrameOverhead = 14 + 20 + 8;

}  // namespace fulcrum
