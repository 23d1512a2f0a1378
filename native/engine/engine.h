// The data plane as a plain C++ library: no Node types here (the N-API glue
// lives in native/addon/). Every method runs on the control-plane (JS) thread;
// the engine talks to its workers only by message.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "connection_log.h"
#include "counters.h"
#include "event_sink.h"
#include "load_sampler.h"
#include "service.h"
#include "udp_kernel_nat.h"
#include "worker.h"

namespace fulcrum {

// Why apply() failed, beyond the errno.
struct ApplyFailure {
  std::string message;  // "bind 127.0.0.1:80 for service pg"
  std::string service;  // the service whose listener failed, when one did
};

struct EngineOptions {
  uint32_t workers = 1;
  // Open TCP connections at most, over every worker (connection_budget.h);
  // 0: no cap. The control plane sizes it from RLIMIT_NOFILE.
  uint32_t max_connections = 0;
  // Runs on a worker thread when events become available; must not block.
  std::function<void(EventSink*)> wake_events;
};

class Engine {
 public:
  // Starts the worker threads. Returns 0 or -errno.
  static int create(EngineOptions options, std::unique_ptr<Engine>* out);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Makes `services` the running configuration. Listeners whose address stays
  // keep their sockets (no connection in their backlog is lost); new ones are
  // bound now, so a bind error (EADDRINUSE...) is returned here and nothing
  // changes; removed ones are closed by their worker. Open connections keep
  // the service definition they started with.
  // Returns 0 and the snapshot's generation in *generation (each worker
  // publishes it in kAppliedGeneration once it has swapped the snapshot in),
  // or -errno with *failure saying what failed.
  int apply(std::vector<ServiceSpec> services, ApplyFailure* failure, uint64_t* generation);
  // Returns 0, or -EINVAL for a slot out of range. A backend going up from
  // any other state starts its slow start ramp.
  int set_backend_state(uint32_t slot, BackendState state);
  // Changes a backend's weight (0..256) in the running configuration: its
  // service's pickers are rebuilt and swapped in like a reload (open
  // connections and listeners untouched). Returns 0, -ENOENT when no running
  // service has the slot, -EINVAL for a weight out of range.
  int set_backend_weight(uint32_t slot, uint32_t weight, uint64_t* generation);
  // Closes every open connection to the backend in `slot`, on every worker
  // (a forced close after drain or maint, or a removed backend's drain time
  // passed); `why` is what their connection records say. Returns 0 or -EINVAL.
  int close_backend_connections(uint32_t slot, Termination why);
  // The most connections the backend in `slot` had open at once since it got
  // the slot (BackendTable::peak; exact across workers). 0 for a slot out of
  // range. Any thread: one relaxed read.
  int32_t backend_peak(uint32_t slot) const { return slot < kMaxBackends ? backends_->peak(slot) : 0; }
  // Clients waiting in the queue of the running service in `slot` now (its
  // ServiceShared::queued, over every worker); 0 for no such service. JS
  // thread only: specs_ and shared_ change in apply(), on that thread.
  int32_t service_queued(uint32_t slot) const;
  // Closes every socket and joins the workers. Idempotent.
  void stop();

  // Session state for peers (sync_journal.h): the entries recorded since the
  // last call, and how many overflowed the journal since then (and whether
  // dump parts are still on their way).
  std::vector<SyncRecord> take_sync(SyncTakeStats* stats);
  // One round of a full copy for a peer that (re)started: every live entry of
  // the services running with `sync` whose key is in [from, to) of
  // kDumpBuckets goes into the journal flagged as a dump, for take_sync:
  // sticky entries and adopted UDP assignments (lock-free tables, read here)
  // at once, and each worker's UDP flows once it has taken the message
  // (SyncTakeStats::dump_pending counts the workers still to answer).
  // Returns 0 and the records appended here in *appended, -EINVAL for a bad
  // range, -ESHUTDOWN when stopped.
  int dump_sync(uint32_t from, uint32_t to, uint32_t* appended);
  // Installs entries a peer shared (slots already mapped to this node's):
  // sticky ones into their service's sticky table, UDP flows into its adopted
  // assignments. A record whose service is not running with `sync`, whose
  // backend is not in that service, or that is older than what is known here
  // changes nothing. Returns how many were installed.
  uint32_t install_sync(const SyncRecord* records, size_t count);

  // Upgrade (native/addon/fd_passing.cc): listening sockets the previous
  // Fulcrum handed over, by listener key ("tcp 127.0.0.1:80"). The next
  // apply() uses them for a service with that key instead of binding (and
  // skips the listen-address lock, which they would fail); any left unused
  // are closed by it. Returns 0, -EINVAL for a key already known or no fds.
  int adopt_listeners(const std::string& key, std::vector<int> fds);
  // Every listening socket by key, one fd per worker (more after an adopt):
  // what an upgrade hands to the next Fulcrum. The fds stay owned here.
  std::vector<std::pair<std::string, std::vector<int>>> listener_fds() const;

  // What each protocol: udp service runs on (udp_kernel_nat.h): the kernel
  // datapath with its counters, or the relay and why. JS thread.
  std::vector<UdpDatapathStatus> udp_datapaths() const;
  // Upgrade: the next Fulcrum adopted the kernel datapath's pinned flows and
  // attached its programs; detach ours without ending the flows or removing
  // the pins (UdpKernelDatapath::hand_over). JS thread.
  void hand_over_udp_flows() {
    if (udp_kernel_) udp_kernel_->hand_over();
  }
  bool stopped() const { return stopped_; }
  uint32_t worker_count() const { return static_cast<uint32_t>(workers_.size()); }
  // JS thread. Test hook: worker `index` (< worker_count()) sleeps `ms` (Worker::post_stall_for_test).
  void stall_worker_for_test(uint32_t index, uint32_t ms) { workers_.at(index)->post_stall_for_test(ms); }
  // JS thread. Each worker's Worker::loop_at_ms(), by worker index.
  std::vector<uint64_t> worker_loop_times_ms() const {
    std::vector<uint64_t> times;
    for (const auto& worker : workers_) times.push_back(worker->loop_at_ms());
    return times;
  }
  const std::shared_ptr<CounterArena>& counters() const { return counters_; }
  EventSink& events() { return *events_; }
  ConnectionLog& connection_log() { return *log_; }

 private:
  Engine() = default;
  // Builds the runtime Services from specs_ and hands every worker its
  // listeners (fds from listeners_) with them.
  void publish();
  // The connection log's service names and listen addresses, by slot.
  void publish_log_labels();
  // True when a running service listens on spec's protocol and port.
  bool shares_running_port(const ServiceSpec& spec) const;

  std::shared_ptr<CounterArena> counters_;
  std::unique_ptr<EventSink> events_;
  // Declared before the workers: they write into it until they are joined.
  std::unique_ptr<ConnectionLog> log_;
  std::unique_ptr<BackendTable> backends_;
  std::unique_ptr<LoadSampler> sampler_;
  std::shared_ptr<SyncJournal> journal_;
  // The running configuration, kept to rebuild pickers when a weight changes.
  std::vector<ServiceSpec> specs_;
  // What a service keeps across snapshots, by service name.
  std::map<std::string, std::shared_ptr<ServiceShared>> shared_;
  std::vector<std::unique_ptr<Worker>> workers_;
  // Made by the first apply() with a UDP service on datapath: kernel or auto.
  std::unique_ptr<UdpKernelDatapath> udp_kernel_;
  // Listening sockets by "tcp " or "udp " + address, one fd per worker. Once posted to
  // the workers they own the fds; this map only remembers which exist.
  std::map<std::string, std::vector<int>> listeners_;
  // Handed over, not yet taken by an apply (adopt_listeners).
  std::map<std::string, std::vector<int>> adopted_;
  std::vector<RecordLabels> log_labels_;
  uint64_t generation_ = 0;
  bool stopped_ = false;
};

}  // namespace fulcrum
