// The UDP data plane of one worker. Each UDP listen address has, on every
// worker, its own SO_REUSEPORT socket (the kernel hashes a client's 4-tuple to
// one of them, so a flow stays on one worker) and a UdpRelay around it:
//
//   client --datagram--> listener --recvmmsg--> flow table (5-tuple)
//        new flow: Service::pick (maglev on the 5-tuple by default), a
//        connected upstream socket to the backend, an idle timer
//   backend --reply--> upstream socket --recvmmsg--> sendmmsg from the
//        listener, with IP_PKTINFO naming the address the client sent to
//        (on a wildcard listener), so the client sees the reply come from
//        where it sent.
//
// Life of a flow:
//
//   event                                  | what happens
//   ---------------------------------------+---------------------------------------
//   first datagram of a 5-tuple            | created (max_flows reached: the longest
//                                          | idle flow of this table is evicted first)
//   datagram, backend down, refused (ICMP) | moved: a new backend is picked and a new
//   or removed by a reload                 | upstream socket connected, then forwarded
//   ICMP port unreachable (ECONNREFUSED)   | connect_failed event for the backend
//                                          | (passive health); moves on its next datagram
//   the `udp.responses`-th reply           | completed: closed
//   nothing either way for timeouts.idle   | expired: closed
//   drained backend's time is up, reload   | closed
//   removes the service, engine stop       |
//
// Worker thread only, except take_udp_bindings (also worker thread).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "connection_record.h"
#include "io_handle.h"
#include "service.h"
#include "udp_flow_table.h"
#include "udp_socket.h"

namespace fulcrum {

class Worker;
class UdpRelaySet;
struct ListenerBinding;

// Moves the protocol: udp bindings out of `bindings` and returns them.
std::vector<ListenerBinding> take_udp_bindings(std::vector<ListenerBinding>& bindings);

// Datagram buffers, one set per worker, used by one relay call at a time:
// each call receives a batch and has sent (or dropped) all of it before it
// returns, so nothing is held between calls.
struct UdpBatch {
  static constexpr unsigned kSize = 32;
  // 65,535 bytes: the largest UDP payload (65,507 over IPv4, 65,527 over
  // IPv6) plus room to see MSG_TRUNC rather than lose bytes silently.
  static constexpr size_t kSlotBytes = 65536;
  // Packet info plus a UDP_SEGMENT control message.
  static constexpr size_t kSendControlBytes = kPacketInfoControlBytes + 32;

  UdpBatch();
  uint8_t* slot(unsigned i) { return data.get() + static_cast<size_t>(i) * kSlotBytes; }

  std::unique_ptr<uint8_t[]> data;
  mmsghdr in[kSize];    // what recvmmsg fills
  iovec in_iov[kSize];  // full slots
  sockaddr_storage names[kSize];
  alignas(cmsghdr) uint8_t in_control[kSize][kPacketInfoControlBytes];
  iovec out_iov[kSize];  // the datagrams to send on: received bytes, each at the start of its slot
  // What sendmmsg sends: one entry per datagram, or per run of equal-size
  // datagrams joined for UDP segmentation offload (see send_datagrams).
  mmsghdr entry[kSize];
  iovec entry_iov[kSize];
  unsigned entry_datagrams[kSize];
  alignas(cmsghdr) uint8_t entry_control[kSize][kSendControlBytes];
  // Replies waiting to leave through one listener (UdpRelaySet::flush_replies):
  // out_iov[k] is the k-th, in slot order; who it goes to and what it counts for.
  sockaddr_storage reply_to[kSize];
  socklen_t reply_to_length[kSize];
  SocketAddress reply_from[kSize];
  uint32_t reply_service_slot[kSize];
  uint32_t reply_backend_slot[kSize];
};

class UdpRelay final : public UdpFlowOwner {
 public:
  // Takes ownership of fd (bound by Engine::apply).
  UdpRelay(UdpRelaySet& set, int fd, std::shared_ptr<const Service> service);
  ~UdpRelay() override;
  UdpRelay(const UdpRelay&) = delete;
  UdpRelay& operator=(const UdpRelay&) = delete;

  int fd() const { return fd_; }
  bool wildcard() const { return wildcard_; }
  IoHandle* handle() { return &handle_; }
  // A reload kept this address: new flows get the new definition; a flow
  // adopts it on its next datagram (moving if its backend is gone).
  void set_service(std::shared_ptr<const Service> service) { service_ = std::move(service); }
  // Client datagrams are waiting on the listener.
  void on_readable();
  // Replies (or an error) are waiting on a flow's upstream socket.
  void on_upstream(UdpFlow* flow);
  // Closes the flows to the backend in `slot` (a forced close after drain or
  // maint, a removed backend's time is up); `why` is what their records say.
  void close_backend(uint32_t slot, Termination why);
  // Closes every flow and the listener (reload removed it: kRemoved; engine
  // stop: kShutdown).
  void close_all(Termination why);
  // With `sync`: adds a dump record for each flow with a backend whose
  // 5-tuple hash is in [from, to) (sync_journal.h).
  void dump_flows(uint32_t from, uint32_t to, std::vector<SyncRecord>* out) const;

  void on_flow_idle(UdpFlow* flow, uint64_t now_ms) override;

 private:
  // The flow for a run of `*count` datagrams from client to local, created
  // if new (once the ACL and client limits admit the client). *count is cut
  // to what the client's rate allows. nullptr when none can be had; every
  // datagram not forwarded is counted.
  UdpFlow* flow_for(const sockaddr_storage& client, const SocketAddress& local, const FlowKey& key, uint64_t hash,
                    unsigned* count);
  UdpFlow* create_flow(const sockaddr_storage& client, const SocketAddress& local, const FlowKey& key, uint64_t hash);
  // client_limits on a new flow's run of datagrams: holds the client's entry
  // in *entry and cuts *count to its tokens. False when none are left (counted).
  bool admit_new_flow(const sockaddr_storage& client, unsigned* count, ClientLimitTable::Entry** entry);
  void release_limit(UdpFlow* flow);
  // Makes sure the flow has a usable backend: adopts a reloaded service,
  // moves off a backend that is down, refused or gone. False if none is left
  // (the flow is then closed).
  bool ensure_backend(UdpFlow* flow);
  // Picks a backend (not `exclude`, when another is available) and connects
  // an upstream socket to it. False when there is none or no socket.
  bool assign_backend(UdpFlow* flow, int exclude);
  void release_backend(UdpFlow* flow);
  // With `sync`: records the flow's backend for peers (sync_journal.h).
  void share_flow(UdpFlow* flow);
  // Sends out[first, first+count) on the flow's upstream socket; moves the
  // flow once if the backend turns out to refuse.
  void forward_to_backend(UdpFlow* flow, unsigned first, unsigned count);
  void report_refused(UdpFlow* flow);
  // One recvmmsg of the flow's replies into the slots after those pending.
  // True when it filled them (more may be waiting) and the flow is still open.
  bool read_replies(UdpFlow* flow);
  void touch(UdpFlow* flow);
  // reason: the counter that says why (kUdpCounterCount for none).
  // Ends a flow: counts it under `counter` (kUdpCounterCount: none) and
  // writes its connection-log record saying `why`.
  void close_flow(UdpFlow* flow, UdpCounter counter, Termination why);

  UdpRelaySet& set_;
  Worker& worker_;
  IoHandle handle_;
  int fd_;
  bool wildcard_;
  int listen_port_;
  std::shared_ptr<const Service> service_;
  UdpFlowTable table_;
};

// Every UDP relay of one worker, and the buffers they share.
class UdpRelaySet {
 public:
  explicit UdpRelaySet(Worker& worker);
  ~UdpRelaySet();

  Worker& worker() { return worker_; }
  UdpBatch& batch();
  // Sends datagrams[0, count) (each at the start of a batch slot) on fd: to
  // `to` (nullptr on a connected socket), from `source`'s address when given
  // (IP_PKTINFO). Runs of equal-size small datagrams go as one UDP GSO
  // super-datagram (UDP_SEGMENT), which the kernel splits after a single
  // trip through the stack; their bytes are joined in the first one's slot.
  // Returns how many datagrams (a prefix) were sent; on a shortfall *error
  // says why (errno: EAGAIN/ENOBUFS for a full buffer, ECONNREFUSED...).
  // to/to_length/source are per datagram (arrays like `datagrams`), or
  // nullptr for a connected socket / the kernel's choice of source.
  unsigned send_datagrams(int fd, const iovec* datagrams, unsigned count, const sockaddr_storage* to,
                          const socklen_t* to_length, const SocketAddress* source, int* error);
  // Replies of several flows leave a listener together: a relay reads a
  // flow's replies into the slots after those already pending
  // (pending_replies()), records them (add_pending_replies), and everything
  // goes in one sendmmsg when the slots are full, when another listener or
  // the client path needs the batch, and at the end of every event batch.
  unsigned pending_replies(UdpRelay* relay);
  void add_pending_replies(UdpRelay* relay, unsigned count) {
    pending_relay_ = relay;
    pending_ = count;
  }
  void flush_replies();
  // A new snapshot's UDP listeners: keeps relays whose fd is listed, creates
  // the new ones, closes the rest.
  void replace(std::vector<ListenerBinding> bindings);
  void on_io(const IoHandle* handle, uint32_t events);
  void close_backend(uint32_t slot, Termination why);
  void close_all();
  // Every relay's dump_flows, appended to `journal` as one dump part.
  void dump_flows(uint32_t from, uint32_t to, SyncJournal& journal) const;
  // A closed flow may still be named by an event later in the current
  // batch: it is freed by free_retired() after the batch.
  void retire(UdpFlow* flow) { retired_flows_.push_back(flow); }
  void free_retired();

 private:
  Worker& worker_;
  std::unique_ptr<UdpBatch> batch_;  // allocated with the first relay (about 2 MiB)
  // UDP segmentation offload; turned off for the worker if the kernel or a
  // route refuses it (EIO, EINVAL...), after which each datagram goes alone.
  bool gso_ = true;
  std::vector<std::unique_ptr<UdpRelay>> relays_;
  std::vector<std::unique_ptr<UdpRelay>> retired_relays_;
  std::vector<UdpFlow*> retired_flows_;
  UdpRelay* pending_relay_ = nullptr;  // whose listener the pending replies leave through
  unsigned pending_ = 0;
};

}  // namespace fulcrum
