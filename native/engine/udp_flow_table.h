// The UDP flow table of one listening socket on one worker: flows keyed by
// their 5-tuple (client address and port, the local address and port the
// client sent to; the protocol is always UDP), kept in least-recently-used
// order so the longest idle flow is found in O(1) when max_flows needs room.
//
// A flow is what a TCP connection is for TCP: its backend, its connected
// upstream socket and its idle timer. The table only indexes flows; the relay
// (udp_relay.h) creates, arms and closes them. Single-threaded: one worker.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "address.h"
#include "client_limits.h"
#include "io_handle.h"
#include "timer_queue.h"

namespace fulcrum {

class Service;
class UdpFlow;

// The 5-tuple in a fixed, comparable form (addresses and ports in network order).
struct FlowKey {
  uint8_t family = 0;
  uint16_t client_port = 0;
  uint16_t local_port = 0;
  uint8_t client_ip[16] = {};
  uint8_t local_ip[16] = {};

  bool operator==(const FlowKey& other) const;
};

FlowKey make_flow_key(const sockaddr_storage& client, const sockaddr_storage& local);

// Whoever owns flows and wants their idle timer.
class UdpFlowOwner {
 public:
  virtual ~UdpFlowOwner() = default;
  virtual void on_flow_idle(UdpFlow* flow, uint64_t now_ms) = 0;
};

class UdpFlow final : public Timer {
 public:
  UdpFlow(UdpFlowOwner* owner, const FlowKey& flow_key, uint64_t flow_hash) : key(flow_key), hash(flow_hash), owner_(owner) {
    handle = IoHandle{IoHandle::Kind::kUdpUpstream, this};
  }

  const FlowKey key;
  const uint64_t hash;  // hash_five_tuple of the key: the table's and Maglev's
  SocketAddress client;
  SocketAddress local;  // the address the client sent to: replies leave from it
  IoHandle handle;
  int fd = -1;  // connected to the backend; -1 while the flow has none
  // The service snapshot the backend index refers to, and the backend.
  std::shared_ptr<const Service> service;
  int backend_index = -1;
  uint32_t backend_slot = 0;
  uint32_t responses = 0;  // replies forwarded so far
  bool refused = false;    // the backend answered ICMP port unreachable: move on the next datagram
  uint64_t last_active_ms = 0;
  // client_limits: the client's entry, held while the flow lives, and the
  // table it is in (kept alive by this reference across reloads).
  ClientLimitTable::Entry* limit_entry = nullptr;
  std::shared_ptr<ClientLimitTable> limit_table;
  uint64_t shared_ms = 0;  // with `sync`: when peers were last told of this flow's backend
  // For the connection log: when the flow began (CLOCK_MONOTONIC us) and
  // what it carried (replies counted as they are queued to the client).
  uint64_t created_us = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t datagrams_in = 0;
  uint64_t datagrams_out = 0;

  UdpFlowOwner* owner() const { return owner_; }

 protected:
  void on_timer(uint64_t now_ms) override { owner_->on_flow_idle(this, now_ms); }

 private:
  friend class UdpFlowTable;
  UdpFlowOwner* owner_;
  UdpFlow* older_ = nullptr;  // least-recently-used list
  UdpFlow* newer_ = nullptr;
};

class UdpFlowTable {
 public:
  UdpFlowTable();

  // The flow with this key, or nullptr.
  UdpFlow* find(const FlowKey& key, uint64_t hash) const;
  // Adds a flow (its key must not be in the table) as the most recently used.
  void insert(UdpFlow* flow);
  // Takes the flow out (it stays allocated: the caller frees it).
  void remove(UdpFlow* flow);
  // Marks the flow as just used (moves it to the most recent end).
  void touch(UdpFlow* flow, uint64_t now_ms);
  // The flow idle the longest, or nullptr when empty.
  UdpFlow* longest_idle() const { return oldest_; }
  // The next flow in idle order (less idle than flow), or nullptr.
  static UdpFlow* newer(const UdpFlow* flow) { return flow->newer_; }
  size_t size() const { return size_; }

 private:
  size_t probe_start(uint64_t hash) const { return static_cast<size_t>(hash) & (slots_.size() - 1); }
  void grow();
  void place(UdpFlow* flow);
  void unlink(UdpFlow* flow);
  void link_newest(UdpFlow* flow);

  // Open addressing with linear probing; removal shifts later entries back
  // (no tombstones), so lookups never degrade after churn.
  std::vector<UdpFlow*> slots_;
  size_t size_ = 0;
  UdpFlow* oldest_ = nullptr;
  UdpFlow* newest_ = nullptr;
};

}  // namespace fulcrum
