// The kernel relay's stream verdict (kernel_relay.h): runs in the kernel for
// every skb that arrives on a relayed socket and hands it straight to the
// other socket's send side, so request/response bytes never reach user space.
//
// Built by scripts/generate-bpf.mjs with clang into sockmap_verdict.insns.h,
// which is committed: the product builds with g++ alone and loads the
// instructions through raw bpf(2). Only the helpers and context fields below
// are used, so no libbpf headers are needed. Maps are named by symbol; their
// types and sizes are the loader's (kernel_relay.cc).
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

typedef __u64 u64;
typedef __u32 u32;

// One per relayed socket, keyed by its socket cookie (kernel_relay.h has the
// same layout as KernelRelaySocket).
struct relay_socket {
  u64 bytes;            // payload bytes received on this socket and passed on
  u64 window_start_ns;  // the current bulk-detection window
  u32 window_bytes;     // bytes seen in it
  u32 flags;
};
#define WATCH_BULK 1u     // relay: auto: report a connection that turns bulk
#define BULK_REPORTED 2u  // reported once; user space takes the connection back

// A connection is bulk when one direction carries this much in one window
// (1 MiB in 20 ms, ~50 MB/s): request/response traffic stays far below it,
// a bulk stream crosses it within its first megabyte.
#define BULK_WINDOW_NS 20000000ull
#define BULK_BYTES (1u << 20)

// Symbols the loader patches with map fds (BPF_PSEUDO_MAP_FD).
char relay_peers SEC("maps");        // SOCKHASH: cookie(socket) -> the other socket
char relay_sockets SEC("maps");      // HASH: cookie -> struct relay_socket
char relay_bulk_events SEC("maps");  // RINGBUF: cookies of connections that turned bulk

static void *(*map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static u64 (*get_socket_cookie)(void *ctx) = (void *)BPF_FUNC_get_socket_cookie;
static u64 (*ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static long (*sk_redirect_hash)(void *skb, void *map, void *key, u64 flags) = (void *)BPF_FUNC_sk_redirect_hash;
static long (*ringbuf_output)(void *ringbuf, void *data, u64 size, u64 flags) = (void *)BPF_FUNC_ringbuf_output;

SEC("sk_skb/stream_verdict")
int relay_verdict(struct __sk_buff *skb) {
  u32 len = skb->len;
  // A FIN without data arrives as an empty skb. Redirected, it would end the
  // other side's stream early; user space forwards the FIN once every byte
  // before it has been sent on.
  if (len == 0) return SK_DROP;
  u64 cookie = get_socket_cookie(skb);
  struct relay_socket *socket = map_lookup_elem(&relay_sockets, &cookie);
  if (socket) {
    // Only this socket's softirq (or its owner's backlog) runs this for it,
    // so plain adds are enough; user space only reads.
    socket->bytes += len;
    if (socket->flags & WATCH_BULK) {
      u64 now = ktime_get_ns();
      if (now - socket->window_start_ns > BULK_WINDOW_NS) {
        socket->window_start_ns = now;
        socket->window_bytes = 0;
      }
      socket->window_bytes += len;
      if (socket->window_bytes >= BULK_BYTES && !(socket->flags & BULK_REPORTED)) {
        socket->flags |= BULK_REPORTED;
        ringbuf_output(&relay_bulk_events, &cookie, sizeof cookie, 0);
      }
    }
  }
  return sk_redirect_hash(skb, &relay_peers, &cookie, 0);
}
