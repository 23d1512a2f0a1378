// TcpConnection after one side failed (reset, or any error on its socket):
// the rule "every byte the kernel accepted from one side is delivered to the
// other before a reset is passed on" (state kDeliveringBeforeReset in
// tcp_connection.h's table).
//
// Why it matters: a server that rejects a request (Redis on a protocol error)
// writes one reply and closes with the client's bytes still unread, so its
// kernel sends a reset. Our send() towards it then fails, often before we have
// read the reply that arrived just ahead of the reset. Linux keeps a reset
// socket's receive queue: recv() still returns those bytes, then the error (or
// 0). So the failed side is read to its end and its bytes handed on; and since
// close() with SO_LINGER {1, 0} throws away whatever the other side's kernel
// still holds unacknowledged, the reset waits until that is acknowledged too.
// The other direction is abandoned: its destination is gone.
//
// Bounded: no progress (bytes moved, or fewer unacknowledged bytes) for the
// delivery limit resets the other side anyway, as does the engine stopping.
// Runs on the connection's worker thread.
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <algorithm>

#include "tcp_connection.h"
#include "worker.h"

namespace fulcrum {

namespace {

// How long a delivery may go without progress: the idle timeout when it is
// shorter, so a peer that stopped reading holds the connection no longer than
// an idle one would.
constexpr uint64_t kDeliveryLimitMs = 30000;

uint64_t delivery_limit_ms(const ServiceSpec& spec) {
  const uint64_t idle = spec.idle_timeout_ms;
  return idle > 0 && idle < kDeliveryLimitMs ? idle : kDeliveryLimitMs;
}

// Acknowledgements on loopback or a LAN come within a millisecond or so; a
// slow peer is polled less often: 1, 2, 4 ... 64 ms.
constexpr uint8_t kMaxPollShift = 6;

}  // namespace

void TcpConnection::start_delivery_before_reset(Side& failed) {
  state_ = State::kDeliveringBeforeReset;
  failed_side_ = &failed;
  // Read the failed side to its end: a short read no longer proves it
  // drained, and no new edge would announce what is left.
  failed.readable = true;
  failed.hangup_seen = true;
  // The other side's stream ends with the reset, never a FIN: marking its
  // write side shut keeps transfer() from calling shutdown() on it.
  other_side(failed).write_shut = true;
  last_touch_ms_ = worker_.now_ms();
  worker_.timers().arm(this, last_touch_ms_, delivery_limit_ms(service_->spec()));
  continue_delivery();
}

void TcpConnection::continue_delivery() {
  // Once every byte is handed on, only the acknowledgement is awaited (timer).
  if (awaiting_ack_) return;
  // Just out of the kernel relay: the live side may still be receiving the
  // kernel's queued bytes; the timer polls until it is released.
  if (kernel_ && !release_delivered_sides()) {
    worker_.timers().arm(this, worker_.now_ms(), 1);
    return;
  }
  Side& failed = *failed_side_;
  Side& live = other_side(failed);
  Flow& flow = &failed == &backend_ ? downstream_ : upstream_;
  bool progress = false;
  bool budget_spent = false;
  RelayError error;
  while (!transfer(failed, live, flow, &failed == &client_, &progress, &budget_spent, &error)) {
    if (error.side != &failed) {
      // The side still owed bytes failed too (nobody left to tell), or no
      // pipe could be had (a local failure: it learns by a reset).
      finish(delivery_termination_, error.side == nullptr && &live == &client_, error.side == nullptr && &live == &backend_);
      return;
    }
    // The failed side's error comes after its last bytes: that is its end.
    failed.read_eof = true;
  }
  // EAGAIN on a failed socket: nothing more will arrive on it.
  if (!failed.readable) failed.read_eof = true;
  if (progress) {
    last_touch_ms_ = worker_.now_ms();
    worker_.timers().arm(this, last_touch_ms_, delivery_limit_ms(service_->spec()));
  }
  if (budget_spent) {
    worker_.queue_resume(this);
    return;
  }
  if (failed.read_eof && flow.pending == 0) {
    awaiting_ack_ = true;
    reset_when_acknowledged();
  }
  // Otherwise the other side's send buffer is full: its next writable edge
  // (on_io) continues, or the timer ends the wait.
}

void TcpConnection::reset_when_acknowledged() {
  Side& live = other_side(*failed_side_);
  int unacked = 0;
  // SIOCOUTQ: bytes written and not yet acknowledged by the peer.
  if (ioctl(live.fd, SIOCOUTQ, &unacked) < 0 || unacked <= 0) {
    finish(delivery_termination_, &live == &client_, &live == &backend_);
    return;
  }
  const uint64_t now = worker_.now_ms();
  if (static_cast<uint32_t>(unacked) < unacked_bytes_) last_touch_ms_ = now;
  unacked_bytes_ = static_cast<uint32_t>(unacked);
  if (now - last_touch_ms_ >= delivery_limit_ms(service_->spec())) {
    finish(delivery_termination_, &live == &client_, &live == &backend_);
    return;
  }
  const uint64_t wait_ms = uint64_t{1} << std::min(ack_polls_, kMaxPollShift);
  if (ack_polls_ < kMaxPollShift) ack_polls_++;
  worker_.timers().arm(this, now, wait_ms);
}

void TcpConnection::on_delivery_timer() {
  if (awaiting_ack_) {
    reset_when_acknowledged();
    return;
  }
  if (kernel_ && worker_.now_ms() - last_touch_ms_ < delivery_limit_ms(service_->spec())) {
    continue_delivery();  // the kernel relay's queue is still being delivered
    return;
  }
  // No byte moved for the delivery limit: the other side stopped reading.
  Side& live = other_side(*failed_side_);
  finish(delivery_termination_, &live == &client_, &live == &backend_);
}

}  // namespace fulcrum
