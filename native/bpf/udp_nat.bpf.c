// The kernel UDP datapath (udp_kernel_nat.h): full NAT of UDP flows in two
// tcx ingress programs, so a datagram of a `datapath: kernel` service never
// reaches a socket on this host.
//
//   udp_nat_from_client   on the interface that owns the listen address:
//                         client -> listen ip:port becomes snat ip:nat port -> backend
//   udp_nat_from_backend  on the interface that reaches the backends:
//                         backend -> snat ip:nat port becomes listen ip:port -> client
//
// The service's admission policies (udp_kernel_policy.h) run here too, as
// the relay runs them: allow/deny decides a new flow (an LPM trie of IPv4
// prefixes), client_limits' datagram_rate every datagram of a client (a
// GCRA per client address in an LRU map), udp.responses ends a flow after N
// replies. What they refuse is dropped (TC_ACT_SHOT) and counted.
//
// Anything the programs do not handle (not IPv4, IP options, fragments, no
// backend up, no free NAT port, a reply from the wrong address) goes on up
// the stack with TCX_NEXT, where the user-space relay bound on the listen
// address serves it, and other tcx programs on the interface still run.
//
// Built by scripts/generate-bpf.mjs into udp_nat.insns.h (committed). No
// libbpf headers: the helpers are declared below by number. Map types and
// sizes are the loader's (udp_kernel_nat.cc), which has the same layouts.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
// Every helper is inlined: the generator does not support BPF-to-BPF calls.
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))

typedef __u64 u64;
typedef __u32 u32;
typedef __u16 u16;
typedef __u8 u8;

#define TCX_NEXT -1
#define TC_ACT_SHOT 2

// Network byte order for every address and port below unless said otherwise.
struct nat_config {
  u32 listen_ip;
  u32 snat_ip;          // this host's address towards the backends
  u16 listen_port;
  u16 nat_port_first;   // host order
  u16 nat_port_count;   // host order
  u16 pad;
  u32 table_entries;    // entries in `nat_maglev` in use (a prime)
  u32 client_ifindex;   // where replies leave for clients
  u32 backend_ifindex;  // where requests leave for backends
};

// By the backend's engine slot (BackendSpec::slot), stable across reloads.
struct nat_backend {
  u32 ip;
  u16 port;
  u8 state;  // NAT_BACKEND_*
  u8 pad;
};
#define NAT_BACKEND_NONE 0   // not in the service
#define NAT_BACKEND_UP 1     // new and existing flows
#define NAT_BACKEND_DRAIN 2  // existing flows only
#define NAT_BACKEND_DOWN 3   // none: its flows move on their next datagram

struct nat_flow_key {
  u32 client_ip;
  u16 client_port;
  u16 pad;
};
struct nat_flow {
  u32 backend_ip;
  u16 backend_port;
  u16 nat_port;  // host order
  u32 slot;
  u32 pad;
  u64 last_ns;   // the last datagram from the client
  u64 packets;   // from the client
  u64 bytes;
};
// By NAT port (host order): the way back.
struct nat_reverse {
  u32 client_ip;
  u16 client_port;
  u16 backend_port;
  u32 backend_ip;
  u32 pad;
  u64 last_ns;   // the last reply, or when the port was taken
  u64 packets;   // replies
  u64 bytes;
};

// Per-CPU counters, by index (udp_kernel_nat.h reads the same ones).
enum {
  STAT_CLIENT_PACKETS,
  STAT_CLIENT_BYTES,
  STAT_REPLY_PACKETS,
  STAT_REPLY_BYTES,
  STAT_NEW_FLOWS,
  STAT_MOVED_FLOWS,
  STAT_PASSED_NO_BACKEND,
  STAT_PASSED_NO_NAT_PORT,
  STAT_PASSED_UNSUPPORTED,  // fragments, IP options
  STAT_DROPPED,             // a rewrite failed
  STAT_DENIED,              // client datagrams refused by allow/deny
  STAT_OVER_RATE,           // client datagrams over client_limits' datagram_rate
  STAT_COMPLETED_FLOWS,     // flows ended after udp.responses replies
  STAT_REPLIES_DROPPED,     // replies past udp.responses
  STAT_COUNT,
};

// The admission policies, written by udp_kernel_policy.cc.
struct nat_policy {
  u32 flags;            // POLICY_*
  u32 responses;        // udp.responses: replies that end a flow; 0 none
  u64 interval_ns;      // POLICY_RATE: 1 s / datagram_rate
  u64 burst_ns;         // POLICY_RATE: datagram_burst * interval_ns
};
#define POLICY_ACL 1           // look new flows' clients up in nat_acl
#define POLICY_DEFAULT_DENY 2  // the allow list is not empty: a client no prefix holds is refused
#define POLICY_RATE 4          // datagram_rate per client address
struct nat_acl_key {
  u32 prefixlen;
  u32 ip;
};

char nat_config SEC("maps");    // ARRAY[1] of struct nat_config
char nat_backends SEC("maps");  // ARRAY[kMaxBackends] of struct nat_backend
char nat_maglev SEC("maps");    // ARRAY[table size] of u32 slot
char nat_flows SEC("maps");     // LRU_HASH[max_flows] nat_flow_key -> nat_flow
char nat_reverse SEC("maps");   // HASH[nat port count] u32 nat port -> nat_reverse
char nat_stats SEC("maps");     // PERCPU_ARRAY[STAT_COUNT] of u64
char nat_policy SEC("maps");    // ARRAY[1] of struct nat_policy
char nat_acl SEC("maps");       // LPM_TRIE nat_acl_key -> u8 (1 allow, 0 deny)
char nat_clients SEC("maps");   // LRU_HASH[table_size] u32 client ip -> u64 its GCRA time

static void *(*map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)BPF_FUNC_map_update_elem;
static u64 (*ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static long (*skb_store_bytes)(void *skb, u32 offset, const void *from, u32 len, u64 flags) = (void *)BPF_FUNC_skb_store_bytes;
static long (*l3_csum_replace)(void *skb, u32 offset, u64 from, u64 to, u64 size) = (void *)BPF_FUNC_l3_csum_replace;
static long (*l4_csum_replace)(void *skb, u32 offset, u64 from, u64 to, u64 flags) = (void *)BPF_FUNC_l4_csum_replace;
static long (*map_delete_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_delete_elem;
static long (*redirect_neigh)(u32 ifindex, void *params, int plen, u64 flags) = (void *)BPF_FUNC_redirect_neigh;

#define IP_CHECK_AT (ETH_HLEN + 10)
#define IP_SOURCE_AT (ETH_HLEN + 12)
#define UDP_AT (ETH_HLEN + 20)
#define UDP_CHECK_AT (UDP_AT + 6)

static __always_inline u16 swap16(u16 v) { return __builtin_bswap16(v); }

static __always_inline void count(u32 index, u64 by) {
  u64 *value = map_lookup_elem(&nat_stats, &index);
  if (value) *value += by;  // per-CPU: no other writer
}

// A 32-bit mix of the client's address and port (murmur3's finalizer): the
// service's address is the same for every flow, so it adds nothing.
static __always_inline u32 flow_hash(u32 ip, u16 port) {
  u32 h = ip ^ ((u32)port * 0x9e3779b1u) ^ 0x7f4a7c15u;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

// Eth / IPv4 without options or fragments / UDP, or -1.
static __always_inline int parse(struct __sk_buff *skb, struct iphdr **ip_out, struct udphdr **udp_out) {
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != swap16(ETH_P_IP)) return -1;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP) return -1;
  struct udphdr *udp = (void *)(ip + 1);
  if ((void *)(udp + 1) > end) return -1;
  *ip_out = ip;
  *udp_out = udp;
  return 0;
}

static __always_inline int supported(struct iphdr *ip) {
  return ip->ihl == 5 && !(ip->frag_off & swap16(0x3fff));
}

// Rewrites both addresses and ports, fixing the checksums through the
// kernel's helpers (which keep CHECKSUM_PARTIAL skbs right).
static __always_inline int rewrite(struct __sk_buff *skb, u32 old_source, u32 old_dest, u16 old_sport, u16 old_dport,
                                   u32 source, u32 dest, u16 sport, u16 dport) {
  const u64 address = BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | 4;
  if (l4_csum_replace(skb, UDP_CHECK_AT, old_source, source, address)) return -1;
  if (l4_csum_replace(skb, UDP_CHECK_AT, old_dest, dest, address)) return -1;
  if (l4_csum_replace(skb, UDP_CHECK_AT, old_sport, sport, BPF_F_MARK_MANGLED_0 | 2)) return -1;
  if (l4_csum_replace(skb, UDP_CHECK_AT, old_dport, dport, BPF_F_MARK_MANGLED_0 | 2)) return -1;
  if (l3_csum_replace(skb, IP_CHECK_AT, old_source, source, 4)) return -1;
  if (l3_csum_replace(skb, IP_CHECK_AT, old_dest, dest, 4)) return -1;
  u32 addresses[2] = {source, dest};
  u16 ports[2] = {sport, dport};
  if (skb_store_bytes(skb, IP_SOURCE_AT, addresses, 8, 0)) return -1;
  if (skb_store_bytes(skb, UDP_AT, ports, 4, 0)) return -1;
  return 0;
}

// The backend the Maglev table gives this hash, if it takes new flows.
static __always_inline struct nat_backend *place(struct nat_config *config, u32 hash, u32 *slot) {
  if (config->table_entries == 0) return 0;
  u32 entry = hash % config->table_entries;
  u32 *chosen = map_lookup_elem(&nat_maglev, &entry);
  if (!chosen) return 0;
  *slot = *chosen;
  struct nat_backend *backend = map_lookup_elem(&nat_backends, slot);
  if (!backend || backend->state != NAT_BACKEND_UP) return 0;
  return backend;
}

// allow/deny for a new flow's client: the longest prefix decides (the same
// prefix in both lists is written as deny); none: admitted unless there is
// an allow list. As CidrSet::admits.
static __always_inline int acl_admits(struct nat_policy *policy, u32 client_ip) {
  if (!(policy->flags & POLICY_ACL)) return 1;
  struct nat_acl_key key = {32, client_ip};
  u8 *verdict = map_lookup_elem(&nat_acl, &key);
  if (verdict) return *verdict;
  return !(policy->flags & POLICY_DEFAULT_DENY);
}

// datagram_rate as a GCRA (a token bucket of datagram_burst): each client
// address has the time its schedule has reached; a datagram moves it one
// interval on, and is over the rate when that runs more than the burst
// ahead of now. A client quiet long enough starts at now (a full bucket). The
// add is atomic, so CPUs sharing a client never admit more than the rate;
// the restart at now is a plain store, so CPUs that find the same quiet
// client at the same instant may admit one datagram each over the burst.
// A client the LRU map has forgotten starts with a full bucket, like an
// entry the relay's table reclaimed.
static __always_inline int over_rate(struct nat_policy *policy, u32 client_ip) {
  if (!(policy->flags & POLICY_RATE)) return 0;
  u64 now = ktime_get_ns();
  u64 *next = map_lookup_elem(&nat_clients, &client_ip);
  if (!next) {
    map_update_elem(&nat_clients, &client_ip, &now, BPF_NOEXIST);
    next = map_lookup_elem(&nat_clients, &client_ip);
    if (!next) return 0;
  }
  u64 interval = policy->interval_ns;
  if (*next < now) *next = now;
  __sync_fetch_and_add(next, interval);
  if (*next > now + policy->burst_ns) {
    __sync_fetch_and_add(next, -interval);
    return 1;
  }
  return 0;
}

SEC("tc")
int udp_nat_from_client(struct __sk_buff *skb) {
  u32 zero = 0;
  struct nat_config *config = map_lookup_elem(&nat_config, &zero);
  if (!config) return TCX_NEXT;
  struct nat_policy *policy = map_lookup_elem(&nat_policy, &zero);
  if (!policy) return TCX_NEXT;
  struct iphdr *ip;
  struct udphdr *udp;
  if (parse(skb, &ip, &udp)) return TCX_NEXT;
  if (ip->daddr != config->listen_ip || udp->dest != config->listen_port) return TCX_NEXT;
  if (!supported(ip)) {
    count(STAT_PASSED_UNSUPPORTED, 1);
    return TCX_NEXT;
  }
  u32 client_ip = ip->saddr;
  u16 client_port = udp->source;
  struct nat_flow_key key = {client_ip, client_port, 0};
  struct nat_flow *flow = map_lookup_elem(&nat_flows, &key);
  struct nat_flow fresh;
  // As the relay: allow/deny decides a new flow (user space ends the open
  // flows a reload's new lists refuse), the rate counts every datagram, and
  // a client with no token left gets no flow.
  if (!flow && !acl_admits(policy, client_ip)) {
    count(STAT_DENIED, 1);
    return TC_ACT_SHOT;
  }
  if (over_rate(policy, client_ip)) {
    count(STAT_OVER_RATE, 1);
    return TC_ACT_SHOT;
  }
  if (flow) {
    struct nat_backend *backend = map_lookup_elem(&nat_backends, &flow->slot);
    int keeps = backend && backend->ip == flow->backend_ip && backend->port == flow->backend_port &&
                (backend->state == NAT_BACKEND_UP || backend->state == NAT_BACKEND_DRAIN);
    if (!keeps) {
      // Its backend went down or left: a new one from the table, same NAT port.
      u32 slot;
      struct nat_backend *next = place(config, flow_hash(client_ip, client_port), &slot);
      if (!next) {
        count(STAT_PASSED_NO_BACKEND, 1);
        return TCX_NEXT;
      }
      struct nat_reverse back = {client_ip, client_port, next->port, next->ip, 0, ktime_get_ns(), 0, 0};
      u32 port = flow->nat_port;
      if (map_update_elem(&nat_reverse, &port, &back, BPF_ANY)) {
        count(STAT_PASSED_NO_NAT_PORT, 1);
        return TCX_NEXT;
      }
      flow->backend_ip = next->ip;
      flow->backend_port = next->port;
      flow->slot = slot;
      count(STAT_MOVED_FLOWS, 1);
    }
  } else {
    u32 hash = flow_hash(client_ip, client_port);
    u32 slot;
    struct nat_backend *backend = place(config, hash, &slot);
    if (!backend) {
      count(STAT_PASSED_NO_BACKEND, 1);
      return TCX_NEXT;
    }
    __builtin_memset(&fresh, 0, sizeof fresh);
    fresh.backend_ip = backend->ip;
    fresh.backend_port = backend->port;
    fresh.slot = slot;
    struct nat_reverse back = {client_ip, client_port, backend->port, backend->ip, 0, ktime_get_ns(), 0, 0};
    u32 ports = config->nat_port_count ? config->nat_port_count : 1;
    int claimed = 0;
    // A free NAT port: a few tries spread over the range (user space frees
    // the ports of idle and evicted flows).
#pragma unroll
    for (int attempt = 0; attempt < 8; attempt++) {
      u32 port = config->nat_port_first + ((hash >> 7) + (u32)attempt * 7919u) % ports;
      if (map_update_elem(&nat_reverse, &port, &back, BPF_NOEXIST) == 0) {
        fresh.nat_port = (u16)port;
        claimed = 1;
        break;
      }
    }
    if (!claimed) {
      count(STAT_PASSED_NO_NAT_PORT, 1);
      return TCX_NEXT;
    }
    fresh.last_ns = ktime_get_ns();
    if (map_update_elem(&nat_flows, &key, &fresh, BPF_ANY)) {
      count(STAT_DROPPED, 1);
      return TC_ACT_SHOT;
    }
    count(STAT_NEW_FLOWS, 1);
    flow = map_lookup_elem(&nat_flows, &key);
    if (!flow) flow = &fresh;
  }
  flow->last_ns = ktime_get_ns();
  __sync_fetch_and_add(&flow->packets, 1);
  __sync_fetch_and_add(&flow->bytes, skb->len);
  count(STAT_CLIENT_PACKETS, 1);
  count(STAT_CLIENT_BYTES, skb->len);
  u32 backend_ip = flow->backend_ip;
  u16 backend_port = flow->backend_port;
  u16 nat_port = swap16(flow->nat_port);
  if (rewrite(skb, client_ip, config->listen_ip, client_port, config->listen_port, config->snat_ip, backend_ip, nat_port,
              backend_port)) {
    count(STAT_DROPPED, 1);
    return TC_ACT_SHOT;
  }
  return redirect_neigh(config->backend_ifindex, 0, 0, 0);
}

SEC("tc")
int udp_nat_from_backend(struct __sk_buff *skb) {
  u32 zero = 0;
  struct nat_config *config = map_lookup_elem(&nat_config, &zero);
  if (!config) return TCX_NEXT;
  struct iphdr *ip;
  struct udphdr *udp;
  if (parse(skb, &ip, &udp)) return TCX_NEXT;
  if (ip->daddr != config->snat_ip || !supported(ip)) return TCX_NEXT;
  u32 port = swap16(udp->dest);
  if (port - config->nat_port_first >= config->nat_port_count) return TCX_NEXT;
  struct nat_reverse *back = map_lookup_elem(&nat_reverse, &port);
  if (!back) return TCX_NEXT;
  u32 backend_ip = ip->saddr;
  u16 backend_port = udp->source;
  if (back->backend_ip != backend_ip || back->backend_port != backend_port) return TCX_NEXT;
  struct nat_policy *policy = map_lookup_elem(&nat_policy, &zero);
  if (!policy) return TCX_NEXT;
  u32 responses = policy->responses;
  if (responses && back->packets >= responses) {
    // The flow has had its replies: later ones are dropped, as the relay's
    // closed socket drops them (user space frees the port after a grace).
    count(STAT_REPLIES_DROPPED, 1);
    return TC_ACT_SHOT;
  }
  back->last_ns = ktime_get_ns();
  __sync_fetch_and_add(&back->packets, 1);
  if (responses && back->packets >= responses) {
    // The last reply: the flow ends, its client's next datagram makes a new
    // one (a new NAT port: this one stays taken until user space frees it).
    struct nat_flow_key key = {back->client_ip, back->client_port, 0};
    struct nat_flow *flow = map_lookup_elem(&nat_flows, &key);
    if (flow && flow->nat_port == port && map_delete_elem(&nat_flows, &key) == 0) count(STAT_COMPLETED_FLOWS, 1);
  }
  __sync_fetch_and_add(&back->bytes, skb->len);
  count(STAT_REPLY_PACKETS, 1);
  count(STAT_REPLY_BYTES, skb->len);
  u32 client_ip = back->client_ip;
  u16 client_port = back->client_port;
  if (rewrite(skb, backend_ip, config->snat_ip, backend_port, udp->dest, config->listen_ip, client_ip,
              config->listen_port, client_port)) {
    count(STAT_DROPPED, 1);
    return TC_ACT_SHOT;
  }
  return redirect_neigh(config->client_ifindex, 0, 0, 0);
}
