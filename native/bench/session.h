// A bench session: what the server counted for one client run (one control
// connection). Streams and flows are fixed arrays indexed by the client's
// stream and flow numbers, so a data path update is one relaxed atomic add.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <unordered_map>

#include "protocol.h"

namespace fulcrum::bench {

struct StreamCount {
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> sent{0};
  std::atomic<uint8_t> state{static_cast<uint8_t>(StreamState::kUnused)};
};

struct FlowCount {
  std::atomic<uint64_t> datagrams{0};
  std::atomic<uint64_t> bytes{0};
  // Datagrams that arrived after one with a higher sequence number.
  std::atomic<uint64_t> reordered{0};
  // Highest sequence number seen + 1 (0: none yet).
  std::atomic<uint64_t> next_expected{0};
};

struct Session {
  explicit Session(uint32_t session_id) : id(session_id) {}
  const uint32_t id;
  StreamCount streams[kMaxStreams];
  FlowCount flows[kMaxFlows];
};

// Sessions by id, for the workers. Ids start at a random value so a stale
// client's id rarely matches a new session.
class SessionTable {
 public:
  // Sessions open at once; each holds ~40 KiB of counters.
  static constexpr size_t kMaxSessions = 1024;

  SessionTable() : next_id_(std::random_device{}() | 1) {}
  // A new session, or nullptr when kMaxSessions are open.
  std::shared_ptr<Session> open() {
    std::lock_guard lock(mutex_);
    if (table_.size() >= kMaxSessions) return nullptr;
    uint32_t id = next_id_++;
    if (id == 0) id = next_id_++;
    auto session = std::make_shared<Session>(id);
    table_[id] = session;
    return session;
  }
  std::shared_ptr<Session> find(uint32_t id) {
    std::lock_guard lock(mutex_);
    auto it = table_.find(id);
    return it == table_.end() ? nullptr : it->second;
  }
  void close(uint32_t id) {
    std::lock_guard lock(mutex_);
    table_.erase(id);
  }

 private:
  std::mutex mutex_;
  uint32_t next_id_;
  std::unordered_map<uint32_t, std::shared_ptr<Session>> table_;
};

}  // namespace fulcrum::bench
