// TcpConnection in the kernel relay (state kKernel in tcp_connection.h's table,
// the maps and the program are kernel_relay.h's). Leaving: each direction resumes
// in user space once the kernel has delivered its queued bytes for it.
// The kernel relay carries a connection only while nothing about it needs
// user space: the stream between a quiet moment after connect and the first
// FIN, error, bulk report or close. Everything else stays the user-space
// relay's, unchanged: PROXY headers (read or sent before entry), the
// PostgreSQL cancel check (the first read happens in user space), half-close,
// the reset-delivery rule, splice for bulk. Leaving is exact (kernel_relay.h),
// so a connection that leaves continues in user space with every byte in order.
//
// Entry rules: relay: kernel enters at the first quiet moment; relay: auto
// waits until user space has copied kAutoEnterReads reads (a session that
// carries requests and replies, not a one-shot connection, whose entry and
// exit would cost more than they save) and never takes a bulk stream, and the
// program reports one that turns bulk later. A connection enters at most once.
#include <algorithm>
#include <cerrno>

#include <sys/socket.h>

#include "clock.h"
#include "tcp_connection.h"
#include "worker.h"

namespace fulcrum {

namespace {

int socket_error(int fd) {
  int error = 0;
  socklen_t length = sizeof error;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) return errno;
  return error;
}

constexpr uint8_t kAutoEnterReads = 4;
// While leaving, the kernel's queue is polled at 1, 2, 4 ... up to this many ms.
constexpr uint8_t kMaxLeavePollMs = 64;

RelayCounter fallback_counter(KernelRelayFallback why) {
  switch (why) {
    case KernelRelayFallback::kUnavailable:
      return kKernelFallbackUnavailable;
    case KernelRelayFallback::kNotEstablished:
      return kKernelFallbackNotEstablished;
    case KernelRelayFallback::kMapFull:
      return kKernelFallbackMapFull;
    case KernelRelayFallback::kInsertFailed:
      break;
  }
  return kKernelFallbackInsertFailed;
}

}  // namespace

void TcpConnection::maybe_enter_kernel() {
  const RelayMode mode = service_->spec().relay;
  if (state_ != State::kRelaying || kernel_tried_ || mode == RelayMode::kUser) return;
  // Quiet: nothing of the stream held here, nothing waiting to be read, no
  // FIN or error seen, and no first bytes still to be looked at.
  const bool quiet = upstream_.pending == 0 && downstream_.pending == 0 && !client_.readable &&
                     !backend_.readable && !client_.hangup_seen && !backend_.hangup_seen && !client_.read_eof &&
                     !backend_.read_eof && !watch_pg_cancel_;
  if (!quiet) return;
  if (mode == RelayMode::kAuto && (copied_reads_ < kAutoEnterReads || upstream_.bulk || downstream_.bulk)) return;
  kernel_tried_ = true;
  KernelRelay* relay = worker_.kernel_relay();
  if (relay == nullptr) {
    worker_.counters().add_relay(service_->spec().slot, kKernelFallbackUnavailable, 1);
    return;
  }
  enter_kernel(*relay);
}

void TcpConnection::enter_kernel(KernelRelay& relay) {
  auto pair = std::make_unique<KernelRelayPair>();
  KernelRelayFallback why{};
  // relay: auto: the program reports a connection that turns bulk, which
  // then goes back to splice (leave_kernel); relay: kernel keeps it.
  const bool watch_bulk = service_->spec().relay == RelayMode::kAuto;
  if (!relay.insert(client_.fd, backend_.fd, watch_bulk, *pair, &why)) {
    worker_.counters().add_relay(service_->spec().slot, fallback_counter(why), 1);
    return;
  }
  kernel_ = std::move(pair);
  state_ = State::kKernel;
  // Only a FIN or an error wakes the worker now; readiness for bytes is the
  // kernel's business. A FIN that came between the quiet check and here is
  // reported by the change itself (epoll re-checks readiness).
  set_events(kKernelRelayEvents);
  worker_.kernel_relay_joined(this, *kernel_);
  worker_.counters().add_relay(service_->spec().slot, kKernelEntered, 1);
  worker_.counters().add_relay(service_->spec().slot, kKernelActive, 1);
}

void TcpConnection::set_events(uint32_t events) {
  worker_.rewatch(client_.fd, &client_.handle, events);
  worker_.rewatch(backend_.fd, &backend_.handle, events);
}

void TcpConnection::on_kernel_io(Side& side, uint32_t events) {
  // on_io() has noted the FIN or error on its side. An error: the
  // reset-delivery rule (tcp_reset_delivery.cc), in the kernel. The maps are
  // not touched while the kernel may hold bytes for the other side (leaving
  // them with bytes queued loses those bytes, see kernel_relay.h): first
  // every byte the failed side sent is delivered, then acknowledged, then
  // the other side is reset.
  if (events & EPOLLERR) {
    if (failed_side_ == nullptr) {
      failed_side_ = &side;
      delivery_termination_ = &side == &client_ ? Termination::kClientReset : Termination::kBackendReset;
      last_touch_ms_ = worker_.now_ms();
      leave_poll_ms_ = 0;
    }
    deliver_kernel_failure();
    return;
  }
  // A FIN stays in the kernel: the program dropped its empty skb, and user
  // space passes it on once every byte before it has reached the other side.
  if ((events & (EPOLLRDHUP | EPOLLHUP)) && !side.read_eof) forward_kernel_fins();
}

void TcpConnection::deliver_kernel_failure() {
  Side& live = other_side(*failed_side_);
  if (&live != failed_side_ && live.hangup_seen && (live.fd < 0 || socket_error(live.fd) != 0)) {
    finish(delivery_termination_, false, false);  // both failed: nobody left to tell
    return;
  }
  sync_kernel_bytes();
  if (worker_.kernel_relay()->delivered(*kernel_, failed_side_ == &client_ ? 0 : 1)) {
    // Handed to the live side's kernel: wait for its acknowledgement, then reset.
    state_ = State::kDeliveringBeforeReset;
    awaiting_ack_ = true;
    reset_when_acknowledged();
    return;
  }
  constexpr uint64_t kFailureDeliveryLimitMs = 30000;
  if (worker_.now_ms() - last_touch_ms_ >= kFailureDeliveryLimitMs) {
    finish(delivery_termination_, &live == &client_, &live == &backend_);
    return;
  }
  poll_kernel_again();
}

void TcpConnection::forward_kernel_fins() {
  KernelRelay* relay = worker_.kernel_relay();
  sync_kernel_bytes();
  bool waiting = false;
  for (Side* from : {&client_, &backend_}) {
    Side& to = other_side(*from);
    if (!from->hangup_seen || to.write_shut) continue;
    if (!relay->delivered(*kernel_, from == &client_ ? 0 : 1)) {
      waiting = true;
      continue;
    }
    from->read_eof = true;
    if (closed_first_ == nullptr) closed_first_ = from;
    shutdown(to.fd, SHUT_WR);
    to.write_shut = true;
  }
  if (client_.write_shut && backend_.write_shut) {
    finish(normal_end(), false, false);
    return;
  }
  if (waiting) {
    // A kworker is still writing the kernel's queue into the other socket.
    poll_kernel_again();
  } else if (service_->spec().idle_timeout_ms != 0) {
    worker_.timers().arm(this, last_touch_ms_, service_->spec().idle_timeout_ms);
  }
}

void TcpConnection::on_kernel_bulk_report() {
  if (state_ != State::kKernel || failed_side_ != nullptr) return;
  worker_.counters().add_relay(service_->spec().slot, kKernelBulkExits, 1);
  // Straight to splice: the stream has shown what it is.
  upstream_.bulk = true;
  downstream_.bulk = true;
  leave_kernel();
}

void TcpConnection::leave_kernel() {
  worker_.kernel_relay()->stop_verdict(*kernel_);
  verdict_stopped_us_ = monotonic_us();
  state_ = State::kRelaying;
  set_events(kSocketEvents);
  // Bytes that arrive from now on wait in the sockets, and the FIN or error
  // that started the leaving is still to be read: look at both sides. Each
  // direction moves once its destination is released; the two directions
  // are independent (one may wait for a peer that only reads once the other
  // direction flows again).
  client_.readable = backend_.readable = true;
  client_.writable = backend_.writable = true;
  leave_poll_ms_ = 0;
  pump();
}

bool TcpConnection::release_delivered_sides() {
  KernelRelay* relay = worker_.kernel_relay();
  // A verdict already running on another CPU when the sockets left `active`
  // may still add to the counts: only counts read after it are final.
  constexpr uint64_t kVerdictSettleUs = 500;
  if (monotonic_us() - verdict_stopped_us_ >= kVerdictSettleUs) {
    sync_kernel_bytes();
    for (int side = 0; side < 2; side++) {
      if (!kernel_->drained[side] && relay->delivered(*kernel_, 1 - side)) kernel_->drained[side] = true;
    }
  }
  if (kernel_->drained[0] && kernel_->drained[1]) {
    release_kernel();
    last_touch_ms_ = worker_.now_ms();
    if (service_->spec().idle_timeout_ms == 0) {
      worker_.timers().cancel(this);
    } else {
      worker_.timers().arm(this, last_touch_ms_, service_->spec().idle_timeout_ms);
    }
    return true;
  }
  // A kworker is still writing the kernel's queue into a socket (or that
  // socket's reader is slow): look again shortly.
  if (state_ == State::kRelaying) {
    poll_kernel_again();
  }
  return false;
}

void TcpConnection::poll_kernel_again() {
  leave_poll_ms_ = leave_poll_ms_ == 0 ? 1 : std::min<uint8_t>(kMaxLeavePollMs, leave_poll_ms_ * 2);
  worker_.timers().arm(this, worker_.now_ms(), leave_poll_ms_);
}

void TcpConnection::on_kernel_timer() {
  if (state_ == State::kRelaying) {
    pump();  // releases what is delivered, then moves the released directions
    return;
  }
  if (failed_side_ != nullptr) {
    deliver_kernel_failure();
    return;
  }
  // A FIN waiting for the bytes before it, or the idle timer.
  if ((client_.hangup_seen && !backend_.write_shut) || (backend_.hangup_seen && !client_.write_shut)) {
    forward_kernel_fins();
    return;
  }
  const uint64_t touched = last_touch_ms_;
  sync_kernel_bytes();
  if (last_touch_ms_ == touched) finish(Termination::kIdleTimeout, false, false);
}

void TcpConnection::sync_kernel_bytes() {
  if (!kernel_) return;
  const uint64_t up = kernel_->relayed[0];
  const uint64_t down = kernel_->relayed[1];
  if (!worker_.kernel_relay()->read_relayed(*kernel_)) return;
  if (kernel_->relayed[0] > up) count_bytes(true, kernel_->relayed[0] - up);
  if (kernel_->relayed[1] > down) count_bytes(false, kernel_->relayed[1] - down);
  // Bytes moved: the idle timer starts again (while leaving, the timer polls instead).
  if (state_ == State::kKernel) touch();
}

void TcpConnection::release_kernel() {
  if (!kernel_) return;
  sync_kernel_bytes();
  worker_.kernel_relay()->remove(*kernel_);
  worker_.kernel_relay_left(*kernel_);
  worker_.counters().add_relay(service_->spec().slot, kKernelActive, -1);
  kernel_.reset();
}

}  // namespace fulcrum
