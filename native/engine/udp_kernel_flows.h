// The kernel UDP datapath's flows as user space follows them: one walk of the
// flow map a second (the datapath's sweeper thread, udp_kernel_nat.h) sees
// each flow the programs made, ends the idle ones, notices the ones the LRU
// map evicted (max_flows), and turns each flow's end into a connection-log
// record of the same shape as the user relay's (connection_record.h):
// start, client, backend, datagrams and bytes each way, and why it ended.
//
// What the walk knows, and how exactly:
//   - datagrams and bytes each way are the programs' own per-flow counters,
//     exact; bytes are the UDP payload (the programs count frames; every
//     frame they handle carries kNatFrameOverhead more). Replies are carried
//     over when the flow moves to another backend (the program starts a new
//     reverse entry then).
//   - the start is the flow's first datagram when the maps still say when
//     (no reply yet, or one datagram so far), else the previous walk (the
//     flow was not there then): within one walk interval.
//   - a flow evicted by the LRU map ends with the figures of the last walk
//     that saw it (what came in between is not known).
// The same walk names flow assignments for session sync: a flow seen for the
// first time or on another backend, and a flow in use whose last share is
// older than the refresh interval.
//
// Not thread-safe: one caller at a time (the datapath holds its mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>

#include "address.h"
#include "connection_record.h"
#include "udp_kernel_maps.h"

namespace fulcrum {

// The key a flow's assignment is shared with peers under: the relay's
// (hash_five_tuple of client and listen address, UDP), so a peer's relay
// places the client on the same backend (session sync, sync_journal.h).
uint64_t kernel_flow_sync_hash(const NatFlowKey& key, const SocketAddress& listen);

struct UdpKernelFlowSettings {
  uint32_t service_slot = 0;
  uint8_t worker = 0;            // ConnectionRecord::worker of the records (the datapath's log producer)
  uint64_t idle_ns = 0;          // timeouts.idle
  uint32_t max_flows = 0;        // bounds a walk of the flow map
  uint32_t nat_port_count = 0;   // bounds a walk of the reverse map
  uint64_t share_every_ns = 0;   // a flow in use is shared again this often; 0: never shared
  uint32_t responses = 0;        // udp.responses: the program ends a flow at this many replies; 0 none
};

struct UdpKernelFlowSinks {
  // A flow ended (or, at finish(), was still open).
  std::function<void(const ConnectionRecord&)> ended;
  // A flow's assignment to share with peers: new, moved, or due a refresh.
  std::function<void(const NatFlowKey&, uint32_t backend_slot, uint64_t last_ns)> share;
};

class UdpKernelFlows {
 public:
  // Walks the maps once at `now_ns` (CLOCK_MONOTONIC): ends flows idle
  // longer than idle_ns (deleting them and their NAT port), reports flows
  // gone since the last walk as evicted, frees NAT ports whose flow is gone
  // (after a grace, so a port the program has just taken is never freed).
  void sweep(int flows_fd, int reverse_fd, uint64_t now_ns, const UdpKernelFlowSettings& settings,
             const UdpKernelFlowSinks& sinks);
  // A last walk, then a record for every flow still open, ended `why`
  // (shutdown: Fulcrum stops, or the service left the kernel datapath). The
  // flows are forgotten; the maps are left as they are.
  void finish(int flows_fd, int reverse_fd, uint64_t now_ns, Termination why, const UdpKernelFlowSettings& settings,
              const UdpKernelFlowSinks& sinks);
  // Forgets every flow without a record (an upgrade: the next process follows them).
  void forget() { known_.clear(); }

  uint32_t live() const { return live_; }          // flows in the map at the last walk
  uint64_t expired() const { return expired_; }    // ended idle by the walks
  uint64_t evicted() const { return evicted_; }    // found gone (max_flows)
  size_t tracked() const { return known_.size(); }

 private:
  struct Known {
    uint64_t start_ns = 0;
    uint16_t nat_port = 0;
    uint32_t slot = 0;
    uint32_t backend_ip = 0;
    uint16_t backend_port = 0;
    uint64_t packets_in = 0;     // the flow's counters at the last walk
    uint64_t bytes_in = 0;
    uint64_t replies = 0;        // the reverse entry's counters at the last walk
    uint64_t reply_bytes = 0;
    uint64_t carried_replies = 0;  // from reverse entries before the flow last moved
    uint64_t carried_reply_bytes = 0;
    uint64_t shared_ns = 0;
    uint64_t walk = 0;           // the last walk that saw it
  };
  Termination gone_because(int reverse_fd, const NatFlowKey& client, Known& known, const UdpKernelFlowSettings& settings);
  static uint64_t key_of(const NatFlowKey& key) {
    return static_cast<uint64_t>(key.client_ip) << 16 | key.client_port;
  }
  static NatFlowKey flow_key(uint64_t key) {
    return NatFlowKey{static_cast<uint32_t>(key >> 16), static_cast<uint16_t>(key & 0xffff), 0};
  }
  ConnectionRecord record_of(uint64_t key, const Known& known, uint64_t end_ns, Termination why,
                             const UdpKernelFlowSettings& settings) const;

  std::unordered_map<uint64_t, Known> known_;
  uint64_t walk_ = 0;
  uint64_t last_walk_ns_ = 0;
  uint32_t live_ = 0;
  uint64_t expired_ = 0;
  uint64_t evicted_ = 0;
};

}  // namespace fulcrum
