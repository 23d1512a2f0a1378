// PostgreSQL cancel requests on services with more than one backend.
//
// A PostgreSQL client cancels a running query (psql's Ctrl-C, libpq's
// PQcancel, JDBC's Statement.cancel) by opening a NEW connection and sending
// a 16-byte CancelRequest: int32 length 16, int32 code 80877102, int32 pid,
// int32 secret key (the BackendKeyData its session got at startup; protocol
// 3.2, PostgreSQL 18, allows a longer key and a longer request). Through
// a balancer, that new connection is balanced like any other and usually
// lands on another server than the session's, which ignores it: the query
// runs to its end.
//
// The fix is a broadcast: the connection that carries the request is relayed
// as usual to the backend it was given, and the same bytes go to every
// OTHER backend of the service, each over a new fire-and-forget connection
// (connect, send, close). A server that does not know the key ignores it, and
// PostgreSQL closes a cancel connection without a reply either way, so no
// server learns whether the key matched. Why a broadcast and not tracking
// which server gave out which key, and the security reasoning: README.md,
// "PostgreSQL cancel requests".
//
// Everything here runs on one worker thread: the fan-out is owned by the
// worker, its sockets are in the worker's epoll (IoHandle::Kind::kPgCancel)
// and its connect timeouts in the worker's TimerQueue.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "counters.h"
#include "io_handle.h"
#include "proxy_protocol.h"
#include "service.h"
#include "timer_queue.h"

namespace fulcrum {

class Worker;

// Protocol 3.0 (every server up to 17): a 4-byte key, 16 bytes in all.
// Protocol 3.2 (PostgreSQL 18) allows keys of up to 256 bytes.
inline constexpr size_t kPgCancelRequestBytes = 16;
inline constexpr size_t kPgCancelRequestMaxBytes = 12 + 256;
inline constexpr uint32_t kPgCancelRequestCode = 80877102;  // (1234 << 16) | 5678

// True when data[0, size) is exactly one CancelRequest: a length field equal
// to size (16, or up to 268 with a protocol 3.2 key), then code 80877102.
// A StartupMessage (code 196608, protocol 3.0), an SSLRequest (80877103) or
// a GSSENCRequest (80877104) is not, nor a request with more bytes after
// it. libpq and the JDBC driver write the request in one send() on a fresh
// connection and then only wait for the server to close it, so the first
// read carries the whole request and nothing else. Pure: no state, any thread.
bool is_pg_cancel_request(const uint8_t* data, size_t size);

// Sends one CancelRequest to the other backends of a service. Owned by a
// worker and used only on its thread.
class PgCancelFanout {
 public:
  // Broadcasts one service may start per second on one worker; the ones over
  // it are still relayed to the backend their connection was given, as
  // without the feature, and counted (kPgCancelSkipped). Each broadcast makes
  // one connection per other backend, so this bounds what one cancel
  // connection can make a worker send to the backends (README.md).
  static constexpr uint32_t kBroadcastsPerSecond = 50;
  // Fan-out connections open at once on one worker, so a flood cannot spend
  // the descriptors that clients need; the ones over it are counted as failed.
  static constexpr uint32_t kMaxInFlight = 512;

  explicit PgCancelFanout(Worker& worker);
  ~PgCancelFanout();
  PgCancelFanout(const PgCancelFanout&) = delete;
  PgCancelFanout& operator=(const PgCancelFanout&) = delete;

  // Worker thread. Sends request (`length` bytes, a CancelRequest as
  // is_pg_cancel_request() accepts) to every backend of
  // `service` except the one at index `relayed` (it gets the request on the
  // client's own connection): primaries, backups, drained, in maintenance and
  // down alike, since any of them may still hold the session. A backend with
  // send_proxy gets the PROXY header naming client -> destination first.
  // Each connection is bounded by the service's connect timeout.
  void broadcast(const Service& service, int relayed, const uint8_t* request, size_t length,
                 const sockaddr_storage& client, const sockaddr_storage& destination);
  // Worker thread. An epoll event on a fan-out socket.
  void on_io(const IoHandle* handle, uint32_t events);
  // Worker thread. Engine stop: closes every fan-out socket now.
  void close_all();
  // Worker thread, after each batch of events: frees the sends that ended.
  void free_retired();
  // Fan-out connections open now (tests).
  size_t in_flight() const { return in_flight_; }

 private:
  // One connection to one backend: connect, send, close.
  class Send final : public Timer {
   public:
    explicit Send(PgCancelFanout& owner) : owner_(owner) {}
    IoHandle handle{IoHandle::Kind::kPgCancel, this};
    int fd = -1;
    uint8_t bytes[kProxyEncodeMaxBytes + kPgCancelRequestMaxBytes] = {};
    size_t length = 0;
    Send* prev = nullptr;
    Send* next = nullptr;

   protected:
    // The connect timeout: the backend never answered.
    void on_timer(uint64_t) override { owner_.end(this, false); }

   private:
    PgCancelFanout& owner_;
  };

  // Whether `slot` may broadcast now (kBroadcastsPerSecond); counts it.
  bool take_budget(uint32_t slot);
  // Opens one send to `backend`; false when no socket could be had.
  bool start_send(const Service& service, const BackendSpec& backend, const uint8_t* request, size_t length,
                  const sockaddr_storage& client, const sockaddr_storage& destination);
  // The connect finished (error 0) or failed: sends the bytes, then ends.
  void on_connected(Send* send, int error);
  // Closes the socket, counts the outcome and retires the send.
  void end(Send* send, bool delivered);

  Worker& worker_;
  Send* live_ = nullptr;  // intrusive list of open sends
  size_t in_flight_ = 0;
  std::vector<Send*> retired_;
  // The broadcast budget of each service slot on this worker: the current
  // one-second window and how many broadcasts it has had.
  struct Budget {
    uint64_t window_ms = 0;
    uint32_t used = 0;
  };
  std::vector<Budget> budgets_;
};

}  // namespace fulcrum
