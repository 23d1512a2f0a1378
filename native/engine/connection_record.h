// One connection-log record: what happened to one TCP connection or UDP flow,
// written by its worker when it ends (or every connection_log.interval while
// it lasts), in a fixed-size, trivially copyable form so that a worker hands
// it on with one copy into its ring (connection_log_ring.h) and no allocation.
//
// How a connection ended is one of a small closed set of termination states,
// each written once here (the table below) and documented once, in the README
// ("Connection log"): who ended it and why.
#pragma once

#include <cstdint>
#include <type_traits>

#include "enum_names.h"
#include "event_sink.h"

namespace fulcrum {

enum class Termination : uint8_t {
  kClientClosed = 0,  // the client sent its FIN first; both directions then ended
  kBackendClosed,     // the backend sent its FIN first; both directions then ended
  kClientReset,       // the client reset (or its socket failed)
  kBackendReset,      // the backend reset (or its socket failed)
  kIdleTimeout,       // nothing moved either way for timeouts.idle (UDP: the flow was idle)
  kConnectFailed,     // every connect try was refused or unreachable
  kConnectTimeout,    // every connect try failed, the last by timeouts.connect
  kNoBackend,         // no backend was up (or all at weight 0) to try
  kQueueFull,         // every backend at max_connections and the queue full
  kQueueTimeout,      // waited the whole queue timeout for a backend with room
  kDenied,            // the ACL (allow/deny)
  kClientLimit,       // client_limits: max_connections or rate
  kProxyMissing,      // accept_proxy: the client spoke without a PROXY header (or closed first)
  kProxyMalformed,    // accept_proxy: a header the spec does not allow
  kProxyTimeout,      // accept_proxy: no complete header within its timeout
  kDrain,             // its drained backend's drain_timeout passed (a forced close)
  kMaint,             // an operator shut the sessions of its backend in maintenance
  kKilled,            // an operator shut the sessions of its backend (in another state)
  kRemoved,           // its backend was removed by a reload, and its drain time passed
  kShutdown,          // Fulcrum stopped (engine stop)
  kLocalError,        // Fulcrum ran out of a resource (descriptors, memory) mid-stream
  kUdpResponses,      // UDP: the flow ended after udp.responses replies
  kUdpEvicted,        // UDP: ended to make room under max_flows
  kUdpMoved,          // UDP: its backend went away; the flow moved on
  kTerminationCount
};

inline constexpr EnumName<Termination> kTerminationNames[] = {
    {Termination::kClientClosed, "client_closed"},     {Termination::kBackendClosed, "backend_closed"},
    {Termination::kClientReset, "client_reset"},       {Termination::kBackendReset, "backend_reset"},
    {Termination::kIdleTimeout, "idle_timeout"},       {Termination::kConnectFailed, "connect_failed"},
    {Termination::kConnectTimeout, "connect_timeout"}, {Termination::kNoBackend, "no_backend"},
    {Termination::kQueueFull, "queue_full"},           {Termination::kQueueTimeout, "queue_timeout"},
    {Termination::kDenied, "denied"},                  {Termination::kClientLimit, "client_limit"},
    {Termination::kProxyMissing, "proxy_missing"},     {Termination::kProxyMalformed, "proxy_malformed"},
    {Termination::kProxyTimeout, "proxy_timeout"},     {Termination::kDrain, "drain"},
    {Termination::kMaint, "maint"},                    {Termination::kKilled, "killed"},
    {Termination::kRemoved, "removed"},
    {Termination::kShutdown, "shutdown"},              {Termination::kLocalError, "local_error"},
    {Termination::kUdpResponses, "responses_done"},    {Termination::kUdpEvicted, "evicted"},
    {Termination::kUdpMoved, "backend_moved"}};
static_assert(names_every_value(kTerminationNames, static_cast<size_t>(Termination::kTerminationCount)));

enum class RecordKind : uint8_t {
  kTcpEnd = 0,   // a TCP connection ended (or was refused)
  kTcpInterim,   // a TCP connection still open: its figures so far
  kUdpEnd,       // a UDP flow ended (or a client's datagrams were refused)
};

struct ConnectionRecord {
  RecordKind kind = RecordKind::kTcpEnd;
  Termination termination = Termination::kClientClosed;
  uint8_t attempts = 0;  // backend connect tries (TCP); 0 when none was made
  uint8_t worker = 0;
  bool established = false;  // a backend connection was made (TCP) or the flow had a backend (UDP)
  uint32_t service_slot = 0;
  uint64_t start_us = 0;     // CLOCK_MONOTONIC at accept (or the flow's first datagram)
  uint64_t duration_us = 0;  // start to end (to now, for an interim record)
  uint32_t queue_us = 0;     // waiting in the service's queue for a backend with room
  uint32_t connect_us = 0;   // the connect that succeeded (0: none did)
  uint64_t bytes_in = 0;     // client -> backend
  uint64_t bytes_out = 0;    // backend -> client
  uint64_t datagrams_in = 0;   // UDP only
  uint64_t datagrams_out = 0;  // UDP only
  ClientAddress client;        // the peer that connected (accept()'s address)
  ClientAddress proxy_client;  // the client a PROXY header named (family 0: none)
  ClientAddress backend;       // the backend reached, or the last one tried (family 0: none)
};
static_assert(std::is_trivially_copyable_v<ConnectionRecord>);

}  // namespace fulcrum
