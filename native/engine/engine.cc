#include "engine.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <new>
#include <set>
#include <utility>

#include "clock.h"
#include "listener.h"
#include "tcp_keepalive.h"
#include "udp_socket.h"

namespace fulcrum {

namespace {

// The listener map's key: TCP and UDP may share a port number, and an IPv6
// listener whose ipv6_only changed is a new socket (IPV6_V6ONLY is set before bind).
std::string listener_key(const ServiceSpec& spec) {
  const bool v6only = spec.listen.family() == AF_INET6 && spec.ipv6_only;
  return (spec.protocol == Protocol::kUdp ? "udp " : "tcp ") + format_socket_address(spec.listen) + (v6only ? " v6only" : "");
}

}  // namespace

int Engine::create(EngineOptions options, std::unique_ptr<Engine>* out) {
  if (options.workers == 0 || options.workers > 1024) return -EINVAL;
  std::unique_ptr<Engine> engine(new (std::nothrow) Engine());
  if (!engine) return -ENOMEM;
  try {
    engine->counters_ = std::make_shared<CounterArena>(options.workers);
    engine->events_ = std::make_unique<EventSink>(engine->counters_, std::move(options.wake_events));
    engine->backends_ = std::make_unique<BackendTable>();
    engine->sampler_ = std::make_unique<LoadSampler>(engine->counters_, engine->backends_.get());
    engine->journal_ = std::make_shared<SyncJournal>();
    // One producer ring per worker, and one for the kernel UDP datapath's sweeper.
    engine->log_ = std::make_unique<ConnectionLog>(options.workers + 1, kMaxServices);
    auto budget = std::make_shared<ConnectionBudget>(options.max_connections);
    // Empty pipes kept per worker: with a budget, the quarter of it that
    // its pipe allowance is (fd-budget.ts), shared by the workers.
    const size_t pooled_pipes = options.max_connections == 0
                                    ? Worker::kMaxPooledPipes
                                    : std::clamp<size_t>(options.max_connections / 4 / options.workers, 8,
                                                         Worker::kMaxPooledPipes);
    for (uint32_t i = 0; i < options.workers; i++) {
      engine->workers_.push_back(
          std::make_unique<Worker>(i, engine->counters_, engine->events_.get(), engine->log_.get(), budget, pooled_pipes));
    }
    LoadSampler* sampler = engine->sampler_.get();
    engine->workers_[0]->set_periodic([sampler](uint64_t now_ms) { sampler->sample(now_ms); }, LoadSampler::kIntervalMs);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  for (auto& worker : engine->workers_) {
    int result = worker->start();
    if (result < 0) {
      engine->stop();
      return result;
    }
  }
  *out = std::move(engine);
  return 0;
}

Engine::~Engine() { stop(); }

int Engine::apply(std::vector<ServiceSpec> services, ApplyFailure* failure, uint64_t* generation) {
  if (stopped_) return -ESHUTDOWN;
  for (const ServiceSpec& spec : services) {
    if (spec.slot >= kMaxServices) return -EINVAL;
    if (socket_port(spec.listen) == 0) {
      // Each worker's SO_REUSEPORT socket would get its own random port.
      *failure = ApplyFailure{"listen port 0 for service " + spec.name, spec.name};
      return -EINVAL;
    }
    for (const BackendSpec& backend : spec.backends) {
      if (backend.slot >= kMaxBackends) return -EINVAL;
    }
    if (spec.protocol == Protocol::kUdp && spec.udp.datapath != UdpDatapath::kUser && !udp_kernel_) {
      udp_kernel_ = std::make_unique<UdpKernelDatapath>(
          backends_.get(), UdpKernelOutputs{log_.get(), static_cast<uint32_t>(workers_.size()), journal_});
    }
  }
  if (udp_kernel_) {
    std::string why;
    std::string service;
    if (const int rc = udp_kernel_->check(services, &why, &service); rc < 0) {
      *failure = ApplyFailure{why, service};
      return rc;
    }
  }
  const size_t worker_count = workers_.size();

  // Bind everything new first, so a failure changes nothing.
  std::map<std::string, std::vector<int>> next;
  std::vector<int> opened;
  for (const ServiceSpec& spec : services) {
    const std::string key = listener_key(spec);
    if (next.count(key) != 0) {
      // The control plane rejects this first; re-checked so two services can
      // never silently share one SO_REUSEPORT group.
      for (int opened_fd : opened) close(opened_fd);
      *failure = ApplyFailure{"duplicate listen address " + format_socket_address(spec.listen) + " for service " + spec.name, spec.name};
      return -EADDRINUSE;
    }
    auto existing = listeners_.find(key);
    if (existing != listeners_.end()) {
      next[key] = existing->second;
      continue;
    }
    std::vector<int> fds;
    auto adopted = adopted_.find(key);
    if (adopted != adopted_.end()) {
      // Handed over by the Fulcrum this one upgrades (adopt_listeners): the
      // same sockets, their accept queues included, never a new bind. Fewer
      // than our workers: the rest join their SO_REUSEPORT group below.
      fds = adopted->second;
    } else if (!shares_running_port(spec)) {
      // The listen-address lock: a plain SO_REUSEPORT bind would silently
      // join another process's group (a second Fulcrum) and take its traffic.
      int probe = probe_exclusive_bind(spec.listen, spec.protocol == Protocol::kUdp, spec.freebind, spec.ipv6_only);
      if (probe == -EADDRINUSE) {
        for (int opened_fd : opened) close(opened_fd);
        *failure = ApplyFailure{"bind " + format_socket_address(spec.listen) + " for service " + spec.name, spec.name};
        return probe;
      }
    }
    for (size_t i = fds.size(); i < worker_count; i++) {
      int fd = spec.protocol == Protocol::kUdp ? open_udp_listener(spec.listen, spec.freebind, spec.ipv6_only)
                                                 : open_tcp_listener(spec.listen, spec.freebind, spec.ipv6_only);
      if (fd < 0) {
        for (int opened_fd : opened) close(opened_fd);
        const size_t first_own = adopted != adopted_.end() ? adopted->second.size() : 0;
        for (size_t j = first_own; j < fds.size(); j++) close(fds[j]);
        *failure = ApplyFailure{"bind " + format_socket_address(spec.listen) + " for service " + spec.name, spec.name};
        return fd;
      }
      fds.push_back(fd);
    }
    if (adopted != adopted_.end()) {
      // Only the sockets opened here are closed if a later one fails; the
      // adopted ones stay in adopted_ until an apply succeeds.
      opened.insert(opened.end(), fds.begin() + static_cast<std::ptrdiff_t>(adopted->second.size()), fds.end());
    } else {
      opened.insert(opened.end(), fds.begin(), fds.end());
    }
    next[key] = std::move(fds);
  }
  // Handed-over sockets this configuration does not use are closed (the
  // process that handed them over still has its copies until it drains).
  for (auto& [key, fds] : adopted_) {
    if (next.count(key) != 0) continue;
    for (int fd : fds) close(fd);
  }
  adopted_.clear();


  // Keepalive on every TCP listener, kept ones too (a reload may change
  // it): accepted sockets inherit it. Nothing can fail from here on, so a
  // setsockopt refusal (not expected for a socket of ours with validated
  // values) only leaves dead-peer detection to the timeouts.
  for (const ServiceSpec& spec : services) {
    if (spec.protocol != Protocol::kTcp) continue;
    for (int fd : next[listener_key(spec)]) (void)apply_tcp_keepalive(fd, spec.tcp_keepalive);
  }

  // A slot the running configuration did not have is a new backend: it
  // starts up, with no slow start and no history of the slot's last owner.
  std::set<uint32_t> running_slots;
  for (const ServiceSpec& spec : specs_) {
    for (const BackendSpec& backend : spec.backends) running_slots.insert(backend.slot);
  }
  std::map<std::string, std::shared_ptr<ServiceShared>> shared;
  for (const ServiceSpec& spec : services) {
    for (const BackendSpec& backend : spec.backends) {
      if (running_slots.count(backend.slot) == 0) backends_->reset(backend.slot);
    }
    // Kept across reloads: the clients a service remembers, unless the
    // table's shape changed; and its queue length (connections still waiting
    // hold the old snapshot and give their place back to the same counter).
    auto kept = shared_.find(spec.name);
    std::shared_ptr<ServiceShared> entry = kept != shared_.end() ? kept->second : std::make_shared<ServiceShared>();
    const StickyTable* table = entry->sticky.get();
    if (!spec.sticky.enabled) {
      entry->sticky.reset();
    } else if (table == nullptr || table->timeout_ms() != spec.sticky.timeout_ms ||
               table->capacity() < spec.sticky.size) {
      entry->sticky = std::make_shared<StickyTable>(spec.sticky.size, spec.sticky.timeout_ms);
    }
    // The client table too, while its size stays (limits are read from the
    // snapshot at each check); connections of an older snapshot keep theirs.
    if (!spec.limits.enabled) {
      entry->limits.reset();
    } else if (!entry->limits || entry->limits->capacity() < spec.limits.table_size) {
      entry->limits = std::make_shared<ClientLimitTable>(spec.limits.table_size);
    }
    entry->journal = spec.sync ? journal_ : nullptr;
    // A peer's UDP flows are adopted for one idle timeout, as many as the
    // service keeps flows of its own.
    const StickyTable* adopted = entry->adopted.get();
    if (!spec.sync || spec.protocol != Protocol::kUdp) {
      entry->adopted.reset();
    } else if (adopted == nullptr || adopted->timeout_ms() != spec.idle_timeout_ms ||
               adopted->capacity() < spec.udp.max_flows) {
      entry->adopted = std::make_shared<StickyTable>(spec.udp.max_flows, spec.idle_timeout_ms);
    }
    shared[spec.name] = std::move(entry);
  }
  specs_ = std::move(services);
  shared_ = std::move(shared);
  listeners_ = std::move(next);
  publish_log_labels();
  publish();
  if (udp_kernel_) udp_kernel_->apply(specs_);
  *generation = generation_;
  return 0;
}

std::vector<UdpDatapathStatus> Engine::udp_datapaths() const {
  std::vector<UdpDatapathStatus> all;
  if (udp_kernel_) all = udp_kernel_->status();
  for (const ServiceSpec& spec : specs_) {
    if (spec.protocol != Protocol::kUdp) continue;
    bool listed = false;
    for (const UdpDatapathStatus& status : all) listed = listed || status.service == spec.name;
    if (!listed) {
      UdpDatapathStatus status;
      status.service = spec.name;
      status.reason = "datapath: user";
      all.push_back(status);
    }
  }
  return all;
}

std::vector<SyncRecord> Engine::take_sync(SyncTakeStats* stats) { return journal_->take(monotonic_ms(), stats); }

int Engine::dump_sync(uint32_t from, uint32_t to, uint32_t* appended) {
  *appended = 0;
  if (stopped_) return -ESHUTDOWN;
  if (from >= to || to > kDumpBuckets) return -EINVAL;
  const uint64_t now = monotonic_ms();
  std::vector<SyncRecord> records;
  for (const ServiceSpec& spec : specs_) {
    if (!spec.sync) continue;
    const ServiceShared& shared = *shared_[spec.name];
    // Entries adopted from peers are in these tables too and go out with the
    // rest: after a quick restart of the node that served them, the copy a
    // peer kept may be the only one left (newest wins where both exist).
    const std::pair<const StickyTable*, SyncKind> tables[] = {{shared.sticky.get(), SyncKind::kSticky},
                                                              {shared.adopted.get(), SyncKind::kUdpFlow}};
    for (const auto& [table, kind] : tables) {
      if (table == nullptr) continue;
      table->visit_live(now, [&, kind = kind](uint64_t key, uint32_t backend_slot, uint64_t last_used_ms) {
        if (!in_dump_range(key, from, to)) return;
        records.push_back(make_sync_record(kind, spec.slot, backend_slot, key, last_used_ms));
      });
    }
  }
  journal_->begin_dump(static_cast<uint32_t>(workers_.size()) + 1);
  *appended = journal_->append_dump(records);
  for (auto& worker : workers_) worker->post_dump_sync(from, to, journal_);
  return 0;
}

uint32_t Engine::install_sync(const SyncRecord* records, size_t count) {
  if (stopped_) return 0;
  const uint64_t now = monotonic_ms();
  uint32_t installed = 0;
  for (size_t i = 0; i < count; i++) {
    const SyncRecord& record = records[i];
    const ServiceSpec* spec = nullptr;
    for (const ServiceSpec& candidate : specs_) {
      if (candidate.slot == record.service_slot) spec = &candidate;
    }
    if (spec == nullptr || !spec->sync) continue;
    const bool has_backend = std::any_of(spec->backends.begin(), spec->backends.end(),
                                         [&](const BackendSpec& b) { return b.slot == record.backend_slot; });
    if (!has_backend) continue;
    const ServiceShared& shared = *shared_[spec->name];
    StickyTable* table = record.kind == static_cast<uint8_t>(SyncKind::kSticky)    ? shared.sticky.get()
                         : record.kind == static_cast<uint8_t>(SyncKind::kUdpFlow) ? shared.adopted.get()
                                                                                   : nullptr;
    if (table == nullptr) continue;
    const uint64_t stamp = now > record.age_ms ? now - record.age_ms : 0;
    if (table->adopt(record.key_hash, record.backend_slot, stamp, now)) installed++;
  }
  return installed;
}

void Engine::publish_log_labels() {
  // A removed service's slot keeps its labels: its connections may still be
  // open (and are logged by those names) until the slot is given to another.
  for (const ServiceSpec& spec : specs_) {
    if (spec.slot >= log_labels_.size()) log_labels_.resize(spec.slot + 1);
    log_labels_[spec.slot] = RecordLabels{spec.name, format_socket_address(spec.listen)};
  }
  log_->set_labels(log_labels_);
}

void Engine::publish() {
  const size_t worker_count = workers_.size();
  std::vector<std::vector<ListenerBinding>> per_worker(worker_count);
  for (const ServiceSpec& spec : specs_) {
    const std::string key = listener_key(spec);
    auto service = std::make_shared<const Service>(spec, backends_.get(), shared_[spec.name]);
    const std::vector<int>& fds = listeners_[key];
    // One socket per worker; handed-over sockets beyond the worker count
    // (the old process ran more workers) are shared out, none left unread.
    for (size_t i = 0; i < fds.size(); i++) per_worker[i % worker_count].push_back(ListenerBinding{fds[i], service});
  }
  generation_++;
  for (size_t i = 0; i < worker_count; i++) workers_[i]->post_listeners(std::move(per_worker[i]), generation_);
}

int32_t Engine::service_queued(uint32_t slot) const {
  for (const ServiceSpec& spec : specs_) {
    if (spec.slot != slot) continue;
    auto found = shared_.find(spec.name);
    return found == shared_.end() ? 0 : std::max(0, found->second->queued.load(std::memory_order_relaxed));
  }
  return 0;
}

int Engine::set_backend_state(uint32_t slot, BackendState state) {
  if (slot >= kMaxBackends || static_cast<uint8_t>(state) >= kBackendStateCount) return -EINVAL;
  backends_->set_state(slot, state, monotonic_ms());
  if (udp_kernel_) udp_kernel_->refresh(specs_);
  return 0;
}

int Engine::set_backend_weight(uint32_t slot, uint32_t weight, uint64_t* generation) {
  if (stopped_) return -ESHUTDOWN;
  if (slot >= kMaxBackends || weight > 256) return -EINVAL;
  bool found = false;
  for (ServiceSpec& spec : specs_) {
    for (BackendSpec& backend : spec.backends) {
      if (backend.slot == slot) {
        backend.weight = weight;
        found = true;
      }
    }
  }
  if (!found) return -ENOENT;
  publish();
  if (udp_kernel_) udp_kernel_->refresh(specs_);
  *generation = generation_;
  return 0;
}

int Engine::close_backend_connections(uint32_t slot, Termination why) {
  if (slot >= kMaxBackends) return -EINVAL;
  if (stopped_) return 0;
  for (auto& worker : workers_) worker->post_close_backend(slot, why);
  return 0;
}

bool Engine::shares_running_port(const ServiceSpec& spec) const {
  // A reload moving a listener between addresses of one port (127.0.0.1:80
  // to 0.0.0.0:80) meets its own socket: that was always allowed.
  for (const ServiceSpec& running : specs_) {
    if (running.protocol == spec.protocol && socket_port(running.listen) == socket_port(spec.listen)) return true;
  }
  return false;
}

int Engine::adopt_listeners(const std::string& key, std::vector<int> fds) {
  if (stopped_) return -ESHUTDOWN;
  if (fds.empty() || listeners_.count(key) != 0 || adopted_.count(key) != 0) return -EINVAL;
  adopted_[key] = std::move(fds);
  return 0;
}

std::vector<std::pair<std::string, std::vector<int>>> Engine::listener_fds() const {
  return {listeners_.begin(), listeners_.end()};
}

void Engine::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (udp_kernel_) udp_kernel_->stop();
  for (auto& worker : workers_) worker->post_stop();
  for (auto& worker : workers_) worker->join();
  workers_.clear();
  listeners_.clear();
  for (auto& [key, fds] : adopted_) {
    for (int fd : fds) close(fd);
  }
  adopted_.clear();
  // After the workers: their last records (shutdown) are in the rings.
  if (log_) log_->stop();
}

}  // namespace fulcrum
