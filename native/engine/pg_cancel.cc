#include "pg_cancel.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "worker.h"

namespace fulcrum {

namespace {

uint32_t read_be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

// Edge-triggered: the only events that matter are the connect's end (writable
// or an error); nothing is ever read from a fan-out socket.
constexpr uint32_t kSendEvents = EPOLLOUT | EPOLLET;

}  // namespace

bool is_pg_cancel_request(const uint8_t* data, size_t size) {
  // Exactly one request: a cancel connection carries nothing else, and
  // anything longer is some other protocol whose first bytes look alike.
  if (data == nullptr || size < kPgCancelRequestBytes || size > kPgCancelRequestMaxBytes) return false;
  return read_be32(data) == size && read_be32(data + 4) == kPgCancelRequestCode;
}

PgCancelFanout::PgCancelFanout(Worker& worker) : worker_(worker), budgets_(kMaxServices) {}

PgCancelFanout::~PgCancelFanout() {
  close_all();
  free_retired();
}

bool PgCancelFanout::take_budget(uint32_t slot) {
  Budget& budget = budgets_[slot % kMaxServices];
  const uint64_t now = worker_.now_ms();
  if (budget.used == 0 || now >= budget.window_ms + 1000) {
    budget.window_ms = now;
    budget.used = 0;
  }
  if (budget.used >= kBroadcastsPerSecond) return false;
  budget.used++;
  return true;
}

void PgCancelFanout::broadcast(const Service& service, int relayed, const uint8_t* request, size_t length,
                               const sockaddr_storage& client, const sockaddr_storage& destination) {
  if (length < kPgCancelRequestBytes || length > kPgCancelRequestMaxBytes) return;
  const ServiceSpec& spec = service.spec();
  if (spec.backends.size() < 2) return;  // the relayed connection reached the only one
  if (!take_budget(spec.slot)) {
    worker_.counters().add_worker(kPgCancelSkipped, 1);
    return;
  }
  worker_.counters().add_worker(kPgCancelBroadcasts, 1);
  for (size_t i = 0; i < spec.backends.size(); i++) {
    if (static_cast<int>(i) == relayed) continue;
    // Not skipped: backends that are down, drained or in maintenance. A
    // drained server still runs its sessions, one marked down by a failed
    // check may only be unreachable from us for a moment, and a wasted
    // connect costs at most the connect timeout.
    if (in_flight_ >= kMaxInFlight ||
        !start_send(service, spec.backends[i], request, length, client, destination)) {
      worker_.counters().add_worker(kPgCancelFailed, 1);
    }
  }
}

bool PgCancelFanout::start_send(const Service& service, const BackendSpec& backend, const uint8_t* request,
                                size_t length, const sockaddr_storage& client, const sockaddr_storage& destination) {
  const int fd = socket(backend.address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    // EMFILE/ENFILE: clients need descriptors more than a cancel does; the
    // worker pauses accepting as it does for a client's backend socket.
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) worker_.on_resource_shortage(errno);
    return false;
  }
  auto* send = new Send(*this);
  send->fd = fd;
  size_t header = 0;
  if (backend.send_proxy == SendProxy::kV1) {
    header = encode_proxy_v1(client, destination, send->bytes);
  } else if (backend.send_proxy == SendProxy::kV2) {
    header = encode_proxy_v2(client, destination, send->bytes);
  }
  std::memcpy(send->bytes + header, request, length);
  send->length = header + length;
  send->next = live_;
  if (live_ != nullptr) live_->prev = send;
  live_ = send;
  in_flight_++;
  if (worker_.watch(fd, &send->handle, kSendEvents) < 0) {
    end(send, false);
    return true;  // counted by end()
  }
  if (connect(fd, backend.address.get(), backend.address.length) == 0) {
    on_connected(send, 0);
    return true;
  }
  if (errno != EINPROGRESS) {
    // ECONNREFUSED, ENETUNREACH...: this backend cannot hold a session now.
    on_connected(send, errno);
    return true;
  }
  worker_.timers().arm(send, worker_.now_ms(), service.spec().connect_timeout_ms);
  return true;
}

void PgCancelFanout::on_io(const IoHandle* handle, uint32_t events) {
  auto* send = static_cast<Send*>(handle->owner);
  if (send->fd < 0) return;  // ended earlier in this batch
  int error = 0;
  if (events & (EPOLLERR | EPOLLHUP)) {
    socklen_t length = sizeof error;
    if (getsockopt(send->fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) error = errno;
    if (error == 0) error = ECONNRESET;
  } else if (!(events & EPOLLOUT)) {
    return;
  }
  on_connected(send, error);
}

void PgCancelFanout::on_connected(Send* send, int error) {
  if (error != 0) {
    end(send, false);
    return;
  }
  // A fresh socket's send buffer takes these few bytes whole; anything less
  // would be a request the server cannot read, so it counts as failed.
  const ssize_t sent = ::send(send->fd, send->bytes, send->length, MSG_NOSIGNAL | MSG_DONTWAIT);
  end(send, sent == static_cast<ssize_t>(send->length));
}

void PgCancelFanout::end(Send* send, bool delivered) {
  if (send->fd < 0) return;
  worker_.timers().cancel(send);
  // A plain close: the bytes already queued still go out, followed by a FIN,
  // which is what libpq does after its own request. Closing also takes the
  // socket out of epoll.
  close(send->fd);
  send->fd = -1;
  worker_.counters().add_worker(delivered ? kPgCancelSent : kPgCancelFailed, 1);
  if (send->prev != nullptr) {
    send->prev->next = send->next;
  } else {
    live_ = send->next;
  }
  if (send->next != nullptr) send->next->prev = send->prev;
  send->prev = send->next = nullptr;
  in_flight_--;
  // Freed after the batch: an event for it may still be in the batch at hand.
  retired_.push_back(send);
}

void PgCancelFanout::close_all() {
  while (live_ != nullptr) end(live_, false);
}

void PgCancelFanout::free_retired() {
  for (Send* send : retired_) delete send;
  retired_.clear();
}

}  // namespace fulcrum
