#include "engine.h"

#include <unistd.h>

#include <cerrno>
#include <new>
#include <set>

#include "listener.h"

namespace fulcrum {

int Engine::create(EngineOptions options, std::unique_ptr<Engine>* out) {
  if (options.workers == 0 || options.workers > 1024) return -EINVAL;
  std::unique_ptr<Engine> engine(new (std::nothrow) Engine());
  if (!engine) return -ENOMEM;
  try {
    engine->counters_ = std::make_shared<CounterArena>(options.workers);
    engine->events_ = std::make_unique<EventSink>(engine->counters_, std::move(options.wake_events));
    engine->states_ = std::make_unique<BackendStates>();
    for (uint32_t i = 0; i < options.workers; i++) {
      engine->workers_.push_back(std::make_unique<Worker>(i, engine->counters_, engine->events_.get()));
    }
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
  }
  const size_t worker_count = workers_.size();

  // Bind everything new first, so a failure changes nothing.
  std::map<std::string, std::vector<int>> next;
  std::vector<int> opened;
  for (const ServiceSpec& spec : services) {
    const std::string key = "tcp " + format_socket_address(spec.listen);
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
    for (size_t i = 0; i < worker_count; i++) {
      int fd = open_tcp_listener(spec.listen);
      if (fd < 0) {
        for (int opened_fd : opened) close(opened_fd);
        for (int opened_fd : fds) close(opened_fd);
        *failure = ApplyFailure{"bind " + format_socket_address(spec.listen) + " for service " + spec.name, spec.name};
        return fd;
      }
      fds.push_back(fd);
    }
    opened.insert(opened.end(), fds.begin(), fds.end());
    next[key] = std::move(fds);
  }

  std::vector<std::vector<ListenerBinding>> per_worker(worker_count);
  for (ServiceSpec& spec : services) {
    const std::string key = "tcp " + format_socket_address(spec.listen);
    auto service = std::make_shared<const Service>(std::move(spec), states_.get());
    const std::vector<int>& fds = next[key];
    for (size_t i = 0; i < worker_count; i++) per_worker[i].push_back(ListenerBinding{fds[i], service});
  }
  generation_++;
  for (size_t i = 0; i < worker_count; i++) workers_[i]->post_listeners(std::move(per_worker[i]), generation_);
  listeners_ = std::move(next);
  *generation = generation_;
  return 0;
}

int Engine::set_backend_state(uint32_t slot, BackendState state) {
  if (slot >= kMaxBackends) return -EINVAL;
  states_->set(slot, state);
  return 0;
}

void Engine::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& worker : workers_) worker->post_stop();
  for (auto& worker : workers_) worker->join();
  workers_.clear();
  listeners_.clear();
}

}  // namespace fulcrum
