// The kernel UDP datapath (`datapath: kernel|auto` on a protocol: udp
// service): flows NATed by two tcx ingress programs (native/bpf/udp_nat.bpf.c)
// so datagrams never reach a socket on this host. The workers' relay stays
// bound on the listen address and serves whatever the programs pass on (no
// backend, no free NAT port, fragments, IP options, or programs not attached).
//
// Where the programs go: the client side is the interface that owns the
// listen address; the backend side is the interface that owns the address
// this host sends from towards the backends (the kernel's route choice, read
// with a connected UDP socket's getsockname), and that address is the NAT
// source. Every backend must be reached from the same address. A wildcard or
// IPv6 listen address, or an address no interface owns, is not supported.
//
// User space (one thread per engine) walks the flow map (udp_kernel_flows.h):
// it ends flows idle for timeouts.idle, frees the NAT ports of flows the LRU
// map evicted (max_flows), counts the flows, and writes a connection-log
// record for each flow that ends. Placement is the service's Maglev table
// over the backends that are up, written into a map: removing a backend
// moves only its flows; drain and maint keep a flow, down moves it.
//
// Pinned maps: the flow and reverse maps of a running service are pinned on
// bpffs (/sys/fs/bpf/fulcrum/udp-<listen ip, dots as _>-<port>-<service>-net<netns
// inode>; a bpffs is mounted there if none is). A Fulcrum that starts where
// compatible maps are pinned (an upgrade's new process, or a restart after a
// crash) adopts them: flows keep their backend and NAT port. On an upgrade
// the new process attaches its programs (after the old ones on the tcx
// hook, so the old ones still answer until they go) and the old process then
// hands over (hand_over()): it detaches without ending the flows or removing
// the pins. A service removed, or a Fulcrum that stops, removes its pins.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend_table.h"
#include "bpf.h"
#include "connection_log.h"
#include "service.h"
#include "udp_kernel_policy.h"
#include "sync_journal.h"
#include "udp_kernel_flows.h"

namespace fulcrum {

// The programs' per-CPU counters (udp_nat.bpf.c's STAT_*), summed.
enum UdpKernelStat : uint32_t {
  kKernelClientPackets,
  kKernelClientBytes,
  kKernelReplyPackets,
  kKernelReplyBytes,
  kKernelNewFlows,
  kKernelMovedFlows,
  kKernelPassedNoBackend,
  kKernelPassedNoNatPort,
  kKernelPassedUnsupported,
  kKernelDropped,
  kKernelDenied,           // allow/deny (udp_kernel_policy.h)
  kKernelOverRate,         // client_limits' datagram_rate
  kKernelCompletedFlows,   // ended after udp.responses replies
  kKernelRepliesDropped,   // replies past udp.responses
  kKernelStatCount,
};

// What one UDP service runs on, for `fulcrum check`, the status page and /metrics.
struct UdpDatapathStatus {
  std::string service;
  UdpDatapath configured = UdpDatapath::kUser;
  bool kernel = false;       // the programs are attached
  std::string reason;        // why not, when configured auto or kernel
  std::string client_interface;
  std::string backend_interface;
  uint32_t flows = 0;        // in the flow map at the last sweep
  uint64_t expired = 0;      // flows ended idle by the sweeps
  std::array<uint64_t, kKernelStatCount> stats{};
};

// Where the sweeps' records go: the connection log, through a producer ring
// of the datapath's own (`producer`, one past the workers' rings); and, for
// a service with sync: on, the session-sync journal (flow assignments, as
// the relay records them).
struct UdpKernelOutputs {
  ConnectionLog* log = nullptr;
  uint32_t producer = 0;
  std::shared_ptr<SyncJournal> journal;
};

// One service's maps, programs and links.
class UdpKernelNat {
 public:
  // Creates the maps, loads and attaches the programs, or returns null with
  // *reason saying why (a sentence for the operator).
  // `pin`: adopt the maps pinned for this service when compatible, and pin
  // them (false: private maps, as apply's check makes them).
  static std::unique_ptr<UdpKernelNat> start(const ServiceSpec& spec, const BackendTable& table, bool pin,
                                             std::string* reason);
  ~UdpKernelNat();
  // Same listen address, interfaces and map sizes: the running maps can take `spec`.
  bool compatible(const ServiceSpec& spec) const;
  // Writes the backends and the Maglev table of `spec` with today's states.
  void update(const ServiceSpec& spec, const BackendTable& table);
  // Ends flows idle longer than the service's idle timeout and frees NAT ports
  // whose flow is gone; a record for each flow that ended.
  void sweep(const UdpKernelOutputs& outputs);
  // A record (`why`) for every flow still open: the programs are about to go.
  void finish(Termination why, const UdpKernelOutputs& outputs);
  void read_status(UdpDatapathStatus* status) const;
  // Removes the pins (the service leaves, or Fulcrum stops).
  void unpin();
  // An upgrade: the next process follows the flows; none is ended here.
  void forget_flows() { flows_seen_.forget(); }
  // Where this service's maps are (or would be) pinned under `directory`.
  static std::string pin_path(const std::string& directory, const ServiceSpec& spec);

 private:
  UdpKernelNat() = default;
  UdpKernelFlowSettings flow_settings(const UdpKernelOutputs& outputs) const;
  UdpKernelFlowSinks flow_sinks(const UdpKernelOutputs& outputs) const;
  ServiceSpec spec_;
  std::string client_interface_;
  std::string backend_interface_;
  uint32_t client_ifindex_ = 0;
  uint32_t backend_ifindex_ = 0;
  uint32_t snat_ip_ = 0;  // network order
  uint32_t table_size_ = 0;
  bpf::Fd config_, backends_, maglev_, flows_, reverse_, stats_;
  bpf::Fd from_client_, from_backend_;
  UdpKernelPolicy policy_;  // allow/deny, client_limits, udp.responses
  std::vector<bpf::Fd> links_;
  std::vector<uint32_t> table_;  // what nat_maglev holds
  std::vector<uint32_t> slots_;  // slots written into nat_backends
  UdpKernelFlows flows_seen_;
  std::string pin_dir_;  // "": not pinned
  bool adopted_ = false;  // the flow maps were pinned by an earlier process
};

// Every UDP service's datapath, owned by the Engine. Methods run on the JS
// thread; a sweeper thread runs sweep() once a second.
class UdpKernelDatapath {
 public:
  UdpKernelDatapath(const BackendTable* table, UdpKernelOutputs outputs);
  ~UdpKernelDatapath();
  // Starts, updates or stops each service's programs for the running specs.
  // A service with datapath: kernel whose programs cannot be attached is an
  // error: returns -EOPNOTSUPP with *failure naming it (nothing is changed
  // for it); auto falls back to the relay and says why in status().
  int check(const std::vector<ServiceSpec>& specs, std::string* failure, std::string* service);
  void apply(const std::vector<ServiceSpec>& specs);
  // A backend's state or weight changed: rewrite the tables.
  void refresh(const std::vector<ServiceSpec>& specs);
  std::vector<UdpDatapathStatus> status() const;
  // An upgrade handed the flows to the new process (its programs are
  // attached): detach ours, keep the pins, end no flow; later applies keep
  // every service on the relay.
  void hand_over();
  // Ends the flows (shutdown records) and removes the pins, unless handed over.
  void stop();

 private:
  void sweep_loop();
  // `auto` services whose listen address no interface owned at apply (a VRRP
  // VIP on a Backup): started once an interface owns it (a failover), from
  // the sweeper, so a new Master NATs in the kernel without a reload.
  void start_waiting();
  // Services that leave: a shutdown record for each of their open flows, and their pins removed.
  void finish(std::vector<std::pair<ServiceSpec, std::unique_ptr<UdpKernelNat>>>& leaving);
  const BackendTable* table_;
  const UdpKernelOutputs outputs_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool handed_over_ = false;
  std::vector<std::pair<ServiceSpec, std::unique_ptr<UdpKernelNat>>> running_;
  std::vector<UdpDatapathStatus> fallback_;  // services on the relay, with why
  std::vector<ServiceSpec> waiting_;          // of those, the ones waiting for their listen address
  std::thread sweeper_;
};

}  // namespace fulcrum
