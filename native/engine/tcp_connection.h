// One proxied TCP connection: the accepted client socket, the backend socket,
// and the bytes in flight between them. Runs entirely on the worker thread
// that accepted it.
//
// Life of a connection:
//
//   state        | on                         | goes to
//   -------------+----------------------------+---------------------------------
//   kProxyHeader | a complete PROXY header,   | (start), with the client it names
//   (accept_proxy| then the ACL and client    | (denied / over a limit: closed,
//   from a peer  | limits admit that client   | counted)
//   that sends   | no header, a malformed one,| closed (counted: missing,
//   one)         | EOF, or accept_proxy_timeout| malformed, timeout)
//   (start)     | every candidate is at      | kQueued while the service's queue
//               | max_connections            | has room, else closed (refused)
//   kQueued     | a backend has room         | kConnecting
//               | queue timeout              | closed (refused, counted)
//   kConnecting | backend connect succeeds   | kRelaying
//               | refused / timeout / error  | kConnecting (next backend) while
//               |                            | tries remain, else closed (client
//               |                            | closed, service `failed` counted)
//               | client error               | closed
//   kRelaying   | a side's EOF, pipe drained | shutdown(SHUT_WR) on the other
//               | both sides shut            | closed
//               | reset/error on one side    | kDeliveringBeforeReset
//               | a local failure (no pipe)  | closed, both sides reset
//               | idle timeout               | closed
//   kRelaying   | quiet (nothing held in user | kKernel (relay: kernel, or auto
//               | space) and the service's    | once it has carried replies);
//               | relay wants the kernel      | refused: stays, counted
//   kKernel     | a side's FIN, and every    | shutdown(SHUT_WR) on the other
//   (tcp_kernel_| byte before it delivered   | (both shut: closed)
//   relay.cc)   | an error on one side       | kDeliveringBeforeReset once its
//               |                            | bytes are delivered to the other
//               | a bulk report (relay: auto)| kRelaying (never enters again);
//               |                            | each direction waits until the
//               |                            | kernel's queued bytes for it are
//               |                            | delivered (kernel_relay.h)
//               | idle timeout               | closed
//   kDelivering-| the failed side's last     | closed, the other side reset
//   BeforeReset | bytes are all acknowledged |
//   (tcp_reset_ | by the other side's kernel |
//   delivery.cc)| the other side fails too,  | closed
//               | or no progress for the     | closed, the other side reset
//               | delivery limit             |
//   (any)       | engine stop                | closed
//
// Before kConnecting, a connection not reading a PROXY header was admitted by
// the worker at accept (ACL, client limits). With send_proxy, the backend gets
// the header (client -> the address it connected to) as its first bytes, right
// after the connect; with source: client, the backend socket is bound to the
// client's address (IP_TRANSPARENT) before it connects. With postgres_cancel,
// the client's first bytes, once read, are checked for a PostgreSQL
// CancelRequest, which is then also sent to the other backends (pg_cancel.h);
// the connection itself carries on as any other.
//
// Bytes move in one of two ways per direction (HAProxy's splice-auto does the
// same): small transfers are copied, recv() into the worker's copy buffer and
// send() straight on, two syscalls and no pipe; once a read fills the copy
// buffer the direction is a bulk stream and from then on moves with splice():
// socket -> pipe -> socket, never through user space. Bytes the destination
// cannot take yet wait in a pipe either way, so the order is always: pipe
// first, then new bytes. Sockets are registered edge-triggered once; the
// readable/writable flags remember what epoll said until a syscall answers
// EAGAIN, or until a short recv() shows the socket is drained.
#pragma once

#include <cstdint>
#include <memory>

#include <sys/epoll.h>
#include <sys/socket.h>

#include "client_limits.h"
#include "connection_record.h"
#include "io_handle.h"
#include "kernel_relay.h"
#include "pipe_pool.h"
#include "service.h"
#include "timer_queue.h"

namespace fulcrum {

class Worker;

class TcpConnection final : public Timer {
 public:
  // Takes ownership of client_fd (non-blocking, already counted as accepted)
  // and of the hold on limit_entry (from Service::admit_connection; null when
  // the client is not tracked or not admitted yet). peer: accept()'s address.
  TcpConnection(Worker& worker, std::shared_ptr<const Service> service, int client_fd, const sockaddr_storage& peer,
                ClientKey client_key, ClientLimitTable::Entry* limit_entry);
  ~TcpConnection() override;
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  // Registers the client socket and starts connecting to a backend.
  void start();
  // Registers the client socket and waits for its PROXY header (kProxyHeader);
  // the client is admitted once the header names it.
  void start_with_proxy_header();
  // An epoll event on one of this connection's sockets.
  void on_io(const IoHandle* handle, uint32_t events);
  // Moves more bytes after an earlier pump() stopped at its budget.
  void resume() { pump(); }
  // Engine stop, or a drained backend's time is up: close both sockets now.
  // Engine stop (kShutdown), or an operator's forced close of its backend
  // (kDrain, kMaint, kRemoved): close both sockets now.
  void close_now(Termination why);
  // connection_log.interval: an interim record when one is due (worker's walk).
  void log_interim_if_due(uint64_t now_us, uint64_t interval_us);
  bool closed() const { return state_ == State::kClosed; }
  bool queued() const { return state_ == State::kQueued; }
  // While queued: try again to get a backend. Returns false if every
  // candidate is still full (the connection stays queued).
  bool retry_from_queue();
  // The backend slot this connection holds a place on, or -1.
  int64_t backend_slot() const { return backend_index_ < 0 ? -1 : service_->backend(backend_index_).slot; }
  const Service& service() const { return *service_; }
  // --- the kernel relay (tcp_kernel_relay.cc) ---
  // The worker's bulk report for one of this connection's sockets.
  void on_kernel_bulk_report();
  // Counts the bytes the kernel relayed since the last look (the worker's
  // once-a-second walk, so /metrics follows long connections).
  void sync_kernel_bytes();
  uint64_t kernel_client_cookie() const { return kernel_ ? kernel_->cookie[0] : 0; }

  // The worker's list of live connections (intrusive, for stop()).
  TcpConnection* prev_live = nullptr;
  TcpConnection* next_live = nullptr;
  // Set while queued on the worker's resume list.
  bool queued_for_resume = false;

 protected:
  void on_timer(uint64_t now_ms) override;

 private:
  // Edge-triggered, registered once per socket for everything we may care
  // about (only FIN and errors while the kernel relay has the bytes).
  static constexpr uint32_t kSocketEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  static constexpr uint32_t kKernelRelayEvents = EPOLLRDHUP | EPOLLET;
  enum class State : uint8_t {
    kProxyHeader,
    kQueued,
    kConnecting,
    kRelaying,
    kKernel,
    kDeliveringBeforeReset,
    kClosed
  };

  // One socket and what is known about it.
  struct Side {
    IoHandle handle;
    int fd = -1;
    bool readable = false;
    bool writable = false;
    // epoll reported the peer's FIN or an error: a short read no longer
    // proves the socket drained (the EOF or error is still to be read, and no
    // further edge will announce it).
    bool hangup_seen = false;
    bool read_eof = false;    // read returned 0: the peer shut its write side
    bool write_shut = false;  // we shut our write side towards the peer
  };

  // One direction's bytes in flight.
  struct Flow {
    Pipe pipe;
    size_t pending = 0;  // bytes waiting in the pipe
    bool bulk = false;   // a read filled the copy buffer: splice from now on
  };

  // Where a relay error came from, which decides which side gets the reset.
  struct RelayError {
    int error = 0;
    Side* side = nullptr;  // nullptr: a local failure (no pipe could be had)
  };

  // Picks a backend and connects; false when every candidate is full or the
  // process is out of descriptors for a backend socket (the caller queues).
  bool connect_next_backend();
  // kProxyHeader: peeks at the client's bytes; a complete header is consumed
  // and the client it names admitted; an incomplete one waits.
  void read_proxy_header();
  // source: client: binds the backend socket to the client's address.
  // Returns 0 or -errno.
  int bind_client_source(int fd, int family);
  // send_proxy: writes the PROXY header for this client into `out` (at least
  // kProxyEncodeMaxBytes) and returns its length; 0 when the address the
  // client connected to cannot be had.
  size_t encode_proxy_header(SendProxy version, char* out);
  // Fills destination_ (the address the client connected to) if not known
  // yet; false when it cannot be had.
  bool resolve_destination();
  void enter_queue();
  void refuse(bool timed_out);
  // Why the connect tries ended: the last one timed out, or not.
  Termination connect_failure() const { return last_connect_timed_out_ ? Termination::kConnectTimeout : Termination::kConnectFailed; }
  void release_backend();
  void on_connect_result(int error);
  void on_connected();
  // The client is closed without reaching a backend (counted as failed).
  void fail_client(Termination why);
  // After a relay error: a local failure resets both sides at once; a failed
  // side first has its last bytes delivered to the other side
  // (tcp_reset_delivery.cc), then the other side is reset.
  void fail_relay(const RelayError& error);
  // --- kDeliveringBeforeReset (tcp_reset_delivery.cc) ---
  void start_delivery_before_reset(Side& failed);
  // Moves the failed side's remaining bytes on; once they are all handed to
  // the other side's kernel, waits for them to be acknowledged, then resets.
  void continue_delivery();
  // Resets the other side once its kernel has no unacknowledged bytes, or
  // polls again (backing off) until the delivery limit.
  void reset_when_acknowledged();
  void on_delivery_timer();
  // --- the kernel relay (tcp_kernel_relay.cc) ---
  // After pump(): hands the connection to the kernel relay when its service
  // wants that and nothing of the stream is held in user space.
  void maybe_enter_kernel();
  void enter_kernel(KernelRelay& relay);
  // A FIN or an error on a socket in the kernel relay.
  void on_kernel_io(Side& side, uint32_t events);
  // An error on a socket in the kernel relay: resets the other side once
  // every byte before the error is delivered and acknowledged.
  void deliver_kernel_failure();
  // Passes each FIN on (shutdown) once the kernel has delivered every byte
  // before it to the other socket; closes when both directions are shut.
  void forward_kernel_fins();
  // Stops the verdict and hands the connection back to the user-space relay.
  // A direction resumes in user space once the kernel's queued bytes for its
  // destination are delivered (release_delivered_sides); until then
  // transfer() leaves it alone.
  void leave_kernel();
  // Marks each socket whose kernel queue is delivered (user space may write
  // to it), and takes both out of the maps once both are; true then.
  // Otherwise polls again by the timer while kRelaying.
  bool release_delivered_sides();
  // The kernel still queues bytes for dst: user space may not write to it yet.
  bool kernel_holds(const Side& dst) const { return kernel_ && !kernel_->drained[&dst == &client_ ? 0 : 1]; }
  void on_kernel_timer();
  // The kernel is still writing its queue into a socket: look again in 1, 2,
  // 4 ... kMaxLeavePollMs ms (leave_poll_ms_ is reset when a wait begins).
  void poll_kernel_again();
  // Out of the maps with the last bytes counted (finish() while in the kernel).
  void release_kernel();
  void set_events(uint32_t events);
  Side& other_side(const Side& side) { return &side == &client_ ? backend_ : client_; }
  void pump();
  // Moves bytes src -> dst until both would block or the budget is spent.
  // Returns false on error (in *error). *progress is set when bytes or an EOF moved.
  bool transfer(Side& src, Side& dst, Flow& flow, bool upstream, bool* progress, bool* budget_spent,
                RelayError* error);
  // One recv() into the copy buffer and send() on; what dst cannot take goes
  // into the flow's pipe. Only called with an empty pipe. Returns false on error.
  // prefix: bytes already at the start of the copy buffer (a PROXY header)
  // that go first, in the same send(), even when src has nothing to add.
  bool copy_once(Side& src, Side& dst, Flow& flow, bool upstream, bool* moved, RelayError* error,
                 size_t prefix = 0);
  // Reads more of a bulk stream into the flow's pipe. Returns false on error.
  bool splice_in(Side& src, Flow& flow, bool* moved, RelayError* error);
  void count_bytes(bool upstream, size_t bytes);
  // Who sent the first FIN, for a connection that ends normally.
  Termination normal_end() const { return closed_first_ == &backend_ ? Termination::kBackendClosed : Termination::kClientClosed; }
  void touch();
  void finish(Termination why, bool reset_client, bool reset_backend);
  // The connection log's record of this connection (tcp_connection_log.cc).
  void log_record(RecordKind kind, Termination why);
  void close_backend_socket(bool reset);

  Worker& worker_;
  std::shared_ptr<const Service> service_;
  State state_ = State::kConnecting;
  Side client_;
  Side backend_;
  Flow upstream_;    // client -> backend
  Flow downstream_;  // backend -> client
  ClientKey client_key_;
  // The backend whose connection place (BackendTable::active) this
  // connection holds, from pick to close; -1 while it holds none.
  int backend_index_ = -1;
  bool backend_established_ = false;
  uint64_t connect_started_us_ = 0;
  uint64_t last_touch_ms_ = 0;
  // Backends tried for this client: the first attempt plus at most 16 retries.
  static constexpr uint32_t kMaxTries = 17;
  uint32_t tried_[kMaxTries] = {};
  uint32_t tried_count_ = 0;
  // The client's place in the service's client table (client_limits), held
  // until finish(); null when the service has none or the client is untracked.
  ClientLimitTable::Entry* limit_entry_ = nullptr;
  // Who the client is: accept()'s peer, or what its PROXY header said. The
  // address it connected to is known from a header (has_destination_), else
  // from the listen address, or getsockname() on a wildcard listener, when a
  // PROXY header is sent on.
  sockaddr_storage client_address_{};
  sockaddr_storage destination_{};
  bool has_destination_ = false;
  // For the connection log: when it was accepted and when it entered the
  // queue (CLOCK_MONOTONIC us), time queued and the connect that succeeded,
  // bytes each way, the side that sent the first FIN, the last interim
  // record, and accept()'s peer when a PROXY header named another client.
  uint64_t accepted_us_ = 0;
  uint64_t queued_at_us_ = 0;
  uint64_t interim_at_us_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  uint32_t queue_us_ = 0;
  uint32_t connect_us_ = 0;
  const Side* closed_first_ = nullptr;
  bool last_connect_timed_out_ = false;
  ClientAddress proxy_peer_{};
  // kDeliveringBeforeReset: the side that failed, whether its bytes are all
  // handed on (now waiting for the acknowledgement), the other side's
  // unacknowledged bytes at the last look, and how many looks so far.
  Side* failed_side_ = nullptr;
  Termination delivery_termination_ = Termination::kLocalError;
  bool awaiting_ack_ = false;
  uint8_t ack_polls_ = 0;
  uint32_t unacked_bytes_ = 0;
  // The kernel relay: the sockets' state there while in it (kKernel, and
  // while leaving until both are released), how many reads user space has
  // copied (relay: auto waits for a few before it hands a connection over),
  // whether it has been tried (a connection enters at most once), when the
  // verdict stopped, and the release poll's next delay.
  std::unique_ptr<KernelRelayPair> kernel_;
  uint64_t verdict_stopped_us_ = 0;
  uint8_t copied_reads_ = 0;
  bool kernel_tried_ = false;
  uint8_t leave_poll_ms_ = 0;
  // postgres_cancel: the client's first bytes are still to be looked at; a
  // CancelRequest is also sent to the service's other backends (pg_cancel.h).
  bool watch_pg_cancel_ = false;
};

}  // namespace fulcrum
