// What the control plane hands the engine: services and their backends, as
// plain data (ServiceSpec), and the immutable runtime form workers share
// (Service: the spec plus its picker). A connection holds a shared_ptr to the
// Service it was accepted for, so a reload never changes it under its feet.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "address.h"
#include "counters.h"

namespace fulcrum {

enum class Balance : uint8_t { kRoundRobin, kWeighted };

// Set from the control plane (health checks, admin), read by every worker.
enum class BackendState : uint8_t {
  kUp = 0,     // takes new connections
  kDown = 1,   // takes none; open connections continue
  kDrain = 2,  // takes none; open connections continue (the control plane ends them later)
};

struct BackendSpec {
  uint32_t slot = 0;  // counter and state index, stable across reloads
  SocketAddress address;
  uint32_t weight = 1;
};

struct ServiceSpec {
  uint32_t slot = 0;
  std::string name;
  SocketAddress listen;
  Balance balance = Balance::kRoundRobin;
  uint32_t connect_timeout_ms = 2000;
  uint32_t idle_timeout_ms = 600000;
  uint32_t retries = 2;
  std::vector<BackendSpec> backends;
};

// One state per backend slot. Relaxed atomics: a state change needs to be
// seen soon, not in any order with other memory.
class BackendStates {
 public:
  void set(uint32_t slot, BackendState state) {
    states_[slot].store(static_cast<uint8_t>(state), std::memory_order_relaxed);
  }
  BackendState get(uint32_t slot) const {
    return static_cast<BackendState>(states_[slot].load(std::memory_order_relaxed));
  }
  bool takes_new_connections(uint32_t slot) const { return get(slot) == BackendState::kUp; }

 private:
  std::atomic<uint8_t> states_[kMaxBackends] = {};
};

class Picker;

class Service {
 public:
  Service(ServiceSpec spec, const BackendStates* states);
  ~Service();

  const ServiceSpec& spec() const { return spec_; }
  const BackendSpec& backend(int index) const { return spec_.backends[static_cast<size_t>(index)]; }
  // Any worker thread. Chooses a backend for a new connection, preferring one
  // not in tried[0..tried_count). Returns its index, or -1 when none is up.
  int pick(const uint32_t* tried, uint32_t tried_count) const;

 private:
  ServiceSpec spec_;
  const BackendStates* states_;
  std::unique_ptr<Picker> picker_;
};

}  // namespace fulcrum
