// What the control plane hands the engine: services and their backends, as
// plain data (ServiceSpec), and the immutable runtime form workers share
// (Service: the spec plus its pickers). A connection holds a shared_ptr to the
// Service it was accepted for, so a reload never changes it under its feet.
//
// Service::pick() is where a backend is chosen for a client: session
// persistence first, then the primaries' picker, then (only while no primary
// is up) the backups' picker; the chosen backend's connection place is taken
// in the shared BackendTable before pick() returns, so max_connections holds
// across workers.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "address.h"
#include "backend_table.h"
#include "cidr_set.h"
#include "client_limits.h"
#include "counters.h"
#include "enum_names.h"
#include "picker.h"
#include "sticky_table.h"
#include "sync_journal.h"
#include "tcp_keepalive.h"

namespace fulcrum {

// The PROXY protocol header written to a backend before the client's bytes (`send_proxy:`).
// relay: how an established connection's bytes move. kUser: the worker
// copies or splices them; kKernel: the kernel relay (kernel_relay.h) from
// the first quiet moment; kAuto: the kernel relay for request/response
// traffic (after the first replies, and never for a bulk stream: a
// connection that turns bulk in the kernel comes back to splice).
enum class RelayMode : uint8_t { kAuto, kUser, kKernel };
inline constexpr EnumName<RelayMode> kRelayModeNames[] = {
    {RelayMode::kAuto, "auto"}, {RelayMode::kUser, "user"}, {RelayMode::kKernel, "kernel"}};
static_assert(names_every_value(kRelayModeNames, 3));

enum class SendProxy : uint8_t { kNone, kV1, kV2 };

inline constexpr EnumName<SendProxy> kSendProxyNames[] = {{SendProxy::kNone, "none"}, {SendProxy::kV1, "v1"}, {SendProxy::kV2, "v2"}};
static_assert(names_every_value(kSendProxyNames, 3));

// The initializers of these specs serve the C++ tests, which build specs by
// hand. A running engine gets every field from the snapshot: the reader
// (native/addon/snapshot_reader.cc) requires each one, so none of these
// values is a default a user's service runs with; the config schema's
// defaults are.
struct BackendSpec {
  uint32_t slot = 0;  // counter and state index, stable across reloads
  SocketAddress address;
  SendProxy send_proxy = SendProxy::kNone;
  uint32_t weight = 1;            // 0..256
  bool backup = false;            // only while no primary is up
  uint32_t max_connections = 0;   // 0: no limit
  uint32_t slow_start_ms = 0;
};

struct QueueSpec {
  uint32_t size = 1024;  // waiting at once over every worker; 0 refuses at once
  uint32_t timeout_ms = 2000;
};

struct StickySpec {
  bool enabled = false;
  uint32_t size = 65536;
  uint64_t timeout_ms = 30 * 60 * 1000;
};

// `protocol:`.
enum class Protocol : uint8_t { kTcp, kUdp };

inline constexpr EnumName<Protocol> kProtocolNames[] = {{Protocol::kTcp, "tcp"}, {Protocol::kUdp, "udp"}};
static_assert(names_every_value(kProtocolNames, 2));

// accept_proxy: clients (another proxy, a cloud load balancer) start with a
// PROXY protocol header naming the real client.
struct AcceptProxySpec {
  bool enabled = false;
  // Peers that must send one; null: every peer. Other peers are direct
  // clients: no header is read from them (HAProxy's conditional expect-proxy).
  std::shared_ptr<const CidrSet> from;
  uint32_t timeout_ms = 3000;  // for the whole header
};

// `datapath:` of a protocol: udp service (udp_kernel_nat.h): kUser is the
// relay in the workers; kKernel NATs flows in tcx BPF programs and fails the
// apply when they cannot be attached; kAuto falls back to the relay then.
enum class UdpDatapath : uint8_t { kAuto, kKernel, kUser };
inline constexpr EnumName<UdpDatapath> kUdpDatapathNames[] = {
    {UdpDatapath::kAuto, "auto"}, {UdpDatapath::kKernel, "kernel"}, {UdpDatapath::kUser, "user"}};
static_assert(names_every_value(kUdpDatapathNames, 3));

// protocol: udp only (see udp_relay.h).
struct UdpSpec {
  uint32_t max_flows = 16384;  // flows at once over every worker; the longest idle is evicted
  uint32_t responses = 0;      // a flow ends after this many replies; 0: only when idle
  UdpDatapath datapath = UdpDatapath::kUser;
  // The kernel datapath's source ports towards backends (udp.nat_ports).
  uint32_t nat_port_first = 20000;
  uint32_t nat_port_count = 10000;
};

struct ServiceSpec {
  uint32_t slot = 0;
  std::string name;
  Protocol protocol = Protocol::kTcp;
  UdpSpec udp;
  SocketAddress listen;
  // The listen address is a VRRP virtual IP: bind it even while this node
  // does not hold it (IP_FREEBIND).
  bool freebind = false;
  // An IPv6 listen address takes IPv6 clients only (IPV6_V6ONLY=1). Off, [::]
  // is dual-stack: IPv4 clients arrive as ::ffff:a.b.c.d (set explicitly,
  // whatever net.ipv6.bindv6only says). Ignored for IPv4 addresses.
  bool ipv6_only = false;
  PickerOptions picker;
  uint32_t connect_timeout_ms = 2000;
  uint32_t idle_timeout_ms = 0;  // 0: no idle timeout (TCP's default; UDP flows always have one)
  TcpKeepaliveSpec tcp_keepalive;  // tcp: on the listener (inherited) and each backend socket
  uint32_t retries = 2;
  QueueSpec queue;
  StickySpec sticky;
  // Admission, in order: PROXY header (names the client), ACL, client limits.
  AcceptProxySpec accept_proxy;
  std::shared_ptr<const CidrSet> acl;  // null: no allow/deny lists
  ClientLimitsSpec limits;
  // source: client: connect to backends from the client's address (IP_TRANSPARENT).
  bool transparent = false;
  // Share sticky entries and UDP flow assignments with peer nodes, and
  // honour theirs (sync_journal.h).
  bool sync = false;
  // postgres_cancel: a connection whose first bytes are a PostgreSQL
  // CancelRequest is relayed as usual and the request also sent to every
  // other backend (pg_cancel.h). The control plane resolves `auto`.
  bool pg_cancel = false;
  RelayMode relay = RelayMode::kAuto;
  std::vector<BackendSpec> backends;
};

// What a service keeps across snapshots (reloads, weight changes): the
// clients it remembers and how many of its connections wait in a queue.
struct ServiceShared {
  std::atomic<int32_t> queued{0};
  // protocol: udp: flows open over every worker, bounded by max_flows.
  std::atomic<int32_t> udp_flows{0};
  std::shared_ptr<StickyTable> sticky;  // null without `sticky`
  std::shared_ptr<ClientLimitTable> limits;  // null without `client_limits`
  // With `sync`: where new entries are recorded for peers (the engine's one
  // journal), and, protocol: udp, the flow assignments peers shared, keyed by
  // the 5-tuple hash: a flow new here whose 5-tuple a peer served goes to the
  // peer's backend (an ECMP move or a failover keeps a game client's server).
  std::shared_ptr<SyncJournal> journal;
  std::shared_ptr<StickyTable> adopted;
};

// Who the client is, as the hashing algorithms and persistence see it.
struct ClientKey {
  uint64_t flow_hash = 0;
  uint64_t source_hash = 0;
};

class Service {
 public:
  Service(ServiceSpec spec, BackendTable* table, std::shared_ptr<ServiceShared> shared);
  ~Service();

  const ServiceSpec& spec() const { return spec_; }
  const BackendSpec& backend(int index) const { return spec_.backends[static_cast<size_t>(index)]; }
  ServiceShared& shared() const { return *shared_; }
  BackendTable& backend_table() const { return *table_; }
  // Whether the connection code must compute ClientKey (hashing algorithms, sticky).
  bool needs_client_key() const { return needs_client_key_; }
  // Whether a TCP connection from `peer` must start with a PROXY header.
  bool expects_proxy_header(const sockaddr_storage& peer) const {
    return spec_.accept_proxy.enabled && (!spec_.accept_proxy.from || spec_.accept_proxy.from->admits(peer));
  }
  // The client table this snapshot was built with (it outlives the snapshot
  // while a connection of it holds an entry); null without client_limits.
  ClientLimitTable* limits() const { return limits_.get(); }
  const std::shared_ptr<ClientLimitTable>& limits_shared() const { return limits_; }
  // Any worker. The ACL, then (TCP) the client limits, for a new connection
  // from `client`. On kAdmitted with limits, *entry is held: release it
  // through limits() when the connection closes. Nothing is counted here.
  Admission admit_connection(const sockaddr_storage& client, uint64_t now_ms, ClientLimitTable::Entry** entry) const;

  static constexpr int kNoBackend = -1;  // none up (or every one tried): fail the client
  static constexpr int kAllFull = -2;    // some are up, all at max_connections: queue or refuse

  // Any worker thread. Chooses a backend for a client, preferring one not in
  // tried[0..tried_count) (the retries of one client), and takes a connection
  // place on it (release it with release()). Returns its index, kNoBackend or
  // kAllFull.
  int pick(const ClientKey& client, const uint32_t* tried, uint32_t tried_count, uint64_t now_ms) const;
  void release(int index) const;

 private:
  struct Group {
    std::unique_ptr<Picker> picker;
    std::vector<uint32_t> members;  // backend indices
  };
  int pick_in(const Group& group, const ClientKey& client, const uint32_t* tried, uint32_t tried_count,
              uint64_t now_ms) const;
  bool has_room(uint32_t index) const;
  bool is_available(uint32_t index) const;
  // Whether a remembered (sticky) client may go back to it: up or drain, whatever its weight.
  bool takes_sticky(uint32_t index) const;
  // Remembers the client's choice (with `sticky`) and records it for peers when worth it.
  void remember_sticky(const ClientKey& client, int index, uint64_t now_ms) const;
  // The backend a peer served this 5-tuple with, reserved; -1 when none or unavailable.
  int adopted_index(const StickyTable& adopted, uint64_t flow_hash, uint64_t now_ms) const;

  ServiceSpec spec_;
  BackendTable* table_;
  std::shared_ptr<ServiceShared> shared_;
  std::shared_ptr<ClientLimitTable> limits_;
  Group primaries_;
  Group backups_;
  std::unordered_map<uint32_t, int> index_by_slot_;
  bool needs_client_key_ = false;
};

}  // namespace fulcrum
