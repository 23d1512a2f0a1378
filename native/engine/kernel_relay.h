// The kernel relay: established TCP connections whose bytes move inside the
// kernel. Both sockets of a connection go into a BPF sockhash; a stream
// verdict program (native/bpf/sockmap_verdict.bpf.c) runs on every skb that
// arrives on either and redirects it to the other's send side, so a request
// or a reply costs no recv(), no send() and no wake-up of the worker.
//
// Each worker owns one KernelRelay (its maps, its program instance, its ring
// buffer), so no map entry is shared between threads. TcpConnection decides
// when a connection enters (tcp_kernel_relay.cc); this file owns the maps and
// what is known to be true of them:
//
//  - Two sockhashes keyed by socket cookie: `peers` maps a socket to the one
//    its bytes go to; `active` has the verdict attached and putting a socket
//    in it starts the verdict. Every redirect target is in `peers` before any
//    socket is in `active`, so the verdict never runs without its peer.
//  - The program must be attached before sockets go in (attachment applies
//    to sockets inserted later), and only ESTABLISHED sockets can be inserted:
//    a client whose FIN is already here (CLOSE_WAIT) stays in user space.
//  - Bytes that arrived before insertion sit in the socket's receive queue
//    until SO_RCVLOWAT is set, which runs the verdict over them in order.
//  - A bare FIN is an empty skb, dropped by the program: user space forwards
//    it (shutdown) once every byte before it has reached the other socket.
//  - Redirected bytes wait in the target's psock queue (sent by a kworker),
//    so "delivered" means the target's sent-and-queued count has grown by
//    what the verdict counted; only then may user space write to the target.
//  - Those queued bytes still belong to their source socket: taking the
//    source out of its last map drops them (measured: 4 of 8 MiB lost). So
//    neither socket leaves the maps before both directions are delivered.
//
// Leaving the kernel is exact: the verdict stops first (the sockets leave
// `active`; new bytes then wait in the socket, and both sockets are plain
// TCP sockets again for reads and writes), each direction resumes in user
// space once the kernel's queue for its destination is empty, and the
// sockets leave `peers` once both are.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "bpf.h"
#include "bpf_ring_buffer.h"

namespace fulcrum {

// The per-socket record the program keeps (struct relay_socket).
struct KernelRelaySocket {
  uint64_t bytes = 0;
  uint64_t window_start_ns = 0;
  uint32_t window_bytes = 0;
  uint32_t flags = 0;
};
inline constexpr uint32_t kKernelRelayWatchBulk = 1;
inline constexpr uint32_t kKernelRelayBulkReported = 2;

// Why a connection that asked for the kernel relay stays in user space.
enum class KernelRelayFallback : uint8_t {
  kUnavailable,     // no CAP_BPF/CAP_NET_ADMIN, no sockmap in the kernel, program refused
  kNotEstablished,  // a socket was not ESTABLISHED (the client already sent its FIN)
  kMapFull,         // the maps hold their configured number of connections
  kInsertFailed,    // any other refusal of the insertion
};
inline constexpr int kKernelRelayFallbackCount = 4;

// Whether this process can use the kernel relay, found once by creating the
// maps and loading the program (the first call probes; later calls return
// the same answer). reason: why not, for the operator.
struct KernelRelaySupport {
  bool available = false;
  std::string reason;
};
const KernelRelaySupport& kernel_relay_support();

// One connection's sockets while they are in the kernel relay: index 0 is
// the client, 1 the backend.
struct KernelRelayPair {
  int fd[2] = {-1, -1};
  uint64_t cookie[2] = {0, 0};
  // Bytes each socket had been given to send (acknowledged + queued) when it
  // went in: what the kernel writes into it later is counted from here.
  uint64_t written_base[2] = {0, 0};
  // Payload bytes the verdict has passed on from each socket, as last read.
  uint64_t relayed[2] = {0, 0};
  bool verdict_running = false;
  // Both sockets are in the maps (they enter and leave together).
  bool in_maps = false;
  // After stop_verdict(): every byte the kernel queued for this socket is
  // in its send queue, so user space may write to it.
  bool drained[2] = {false, false};
};

class KernelRelay {
 public:
  // capacity: connections the maps hold (two sockets each). Null with
  // `error` set when the maps or the program cannot be had.
  static std::unique_ptr<KernelRelay> create(uint32_t capacity, std::string* error);
  ~KernelRelay();

  // The ring buffer's fd: readable when a watched connection turned bulk.
  int events_fd() const { return events_.get(); }
  uint32_t capacity() const { return capacity_; }

  // Puts both sockets in the maps and starts the verdict on them (bytes
  // already received included). watch_bulk: the program reports the
  // connection once one direction carries bulk traffic. Returns false with
  // `why` set when the kernel refused; nothing is left in the maps then.
  bool insert(int client_fd, int backend_fd, bool watch_bulk, KernelRelayPair& pair, KernelRelayFallback* why);
  // Stops the verdict on both sockets: bytes arriving from now on wait in the
  // socket for user space. Bytes already redirected still drain (delivered()).
  void stop_verdict(KernelRelayPair& pair);
  // Reads the relayed byte counts; true when either changed since the last read.
  bool read_relayed(KernelRelayPair& pair);
  // True once every byte the verdict passed on from socket `from` has been
  // handed to the other socket's send queue (call read_relayed() first).
  // Also true when the other socket can take nothing more (reset, closed).
  bool delivered(const KernelRelayPair& pair, int from) const;
  // Takes both sockets out of the maps: after both directions are delivered
  // (or when the connection closes, whatever is still queued).
  void remove(KernelRelayPair& pair);
  // Calls on_bulk(cookie of the socket that turned bulk) for each report.
  void take_bulk_reports(const std::function<void(uint64_t cookie)>& on_bulk);

 private:
  KernelRelay() = default;

  uint32_t capacity_ = 0;
  bpf::Fd peers_;
  bpf::Fd active_;
  bpf::Fd sockets_;
  bpf::Fd events_;
  bpf::Fd verdict_;
  bpf::RingBuffer event_ring_;
};


}  // namespace fulcrum
