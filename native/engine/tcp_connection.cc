#include "tcp_connection.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "clock.h"
#include "flow_hash.h"
#include "address.h"
#include "pg_cancel.h"
#include "proxy_protocol.h"
#include "tcp_keepalive.h"
#include "worker.h"

namespace fulcrum {

namespace {

// Splice rounds per direction per pump, so one fast connection cannot starve
// the others on its worker; what remains runs after the current batch.
constexpr int kRoundsPerPump = 16;

void set_nodelay(int fd) {
  int one = 1;
  // Small database and game messages must not wait for Nagle; splice already
  // hands the kernel large chunks when there are large amounts to move.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Closes fd; with reset, the peer gets an RST instead of a FIN.
void close_socket(int fd, bool reset) {
  if (fd < 0) return;
  if (reset) {
    linger hard{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  }
  close(fd);
}

bool is_resource_shortage(int error) {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

}  // namespace

TcpConnection::TcpConnection(Worker& worker, std::shared_ptr<const Service> service, int client_fd,
                             const sockaddr_storage& peer, ClientKey client_key, ClientLimitTable::Entry* limit_entry)
    : worker_(worker),
      service_(std::move(service)),
      client_key_(client_key),
      limit_entry_(limit_entry),
      client_address_(peer),
      watch_pg_cancel_(service_->spec().pg_cancel) {
  client_.handle = IoHandle{IoHandle::Kind::kClient, this};
  client_.fd = client_fd;
  accepted_us_ = monotonic_us();
  backend_.handle = IoHandle{IoHandle::Kind::kBackend, this};
}

// The worker deletes a connection only after finish() (retire()), so there is
// nothing left to release here.
TcpConnection::~TcpConnection() = default;

void TcpConnection::start() {
  // The client socket inherited TCP_NODELAY from its listener (listener.cc).
  int result = worker_.watch(client_.fd, &client_.handle, kSocketEvents);
  if (result < 0) {
    fail_client(Termination::kLocalError);
    return;
  }
  state_ = State::kConnecting;
  if (!connect_next_backend()) enter_queue();
}

void TcpConnection::start_with_proxy_header() {
  state_ = State::kProxyHeader;
  if (worker_.watch(client_.fd, &client_.handle, kSocketEvents) < 0) {
    fail_client(Termination::kLocalError);
    return;
  }
  // Registering edge-triggered reports bytes already waiting, so the header
  // is read from on_io(); the timer bounds the whole header, not each byte.
  worker_.timers().arm(this, worker_.now_ms(), service_->spec().accept_proxy.timeout_ms);
}

void TcpConnection::read_proxy_header() {
  const uint32_t slot = service_->spec().slot;
  // Peek: the bytes after the header are the client's stream and stay in the
  // socket for the relay. A header arriving a byte at a time is peeked again
  // on each new edge; the timer bounds how long that may take.
  uint8_t buffer[kProxyV2MaxBytes];
  const ssize_t got = recv(client_.fd, buffer, sizeof buffer, MSG_PEEK);
  if (got < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    // ECONNRESET: the client went away before saying who it is.
    worker_.refuse_client(slot, kProxyMissing, client_address_);
    finish(Termination::kProxyMissing, false, false);
    return;
  }
  if (got == 0) {
    worker_.refuse_client(slot, kProxyMissing, client_address_);
    finish(Termination::kProxyMissing, false, false);
    return;
  }
  const ProxyParseResult header = parse_proxy_header(buffer, static_cast<size_t>(got));
  switch (header.status) {
    case ProxyParseStatus::kIncomplete:
      // The peer shut its side mid-header: the rest will never come.
      if (client_.hangup_seen) {
        worker_.refuse_client(slot, kProxyMalformed, client_address_);
        finish(Termination::kProxyMalformed, false, false);
      }
      return;
    case ProxyParseStatus::kMissing:
      worker_.refuse_client(slot, kProxyMissing, client_address_);
      finish(Termination::kProxyMissing, false, false);
      return;
    case ProxyParseStatus::kMalformed:
      worker_.refuse_client(slot, kProxyMalformed, client_address_);
      finish(Termination::kProxyMalformed, false, false);
      return;
    case ProxyParseStatus::kDone:
      break;
  }
  // Consume exactly the header; it is in the socket already (peeked).
  if (recv(client_.fd, buffer, header.length, 0) != static_cast<ssize_t>(header.length)) {
    worker_.refuse_client(slot, kProxyMalformed, client_address_);
    finish(Termination::kProxyMalformed, false, false);
    return;
  }
  worker_.counters().add_admission(slot, kProxyAccepted, 1);
  worker_.timers().cancel(this);
  if (header.has_addresses) {
    proxy_peer_ = ClientAddress::from(client_address_);
    client_address_ = header.source;
    destination_ = header.destination;
    has_destination_ = true;
  }
  // The relay reads what followed the header once a backend is connected.
  client_.readable = true;
  ClientLimitTable::Entry* entry = nullptr;
  Termination refused = Termination::kDenied;
  if (!worker_.admit(*service_, client_address_, &entry, &refused)) {
    finish(refused, false, false);
    return;
  }
  limit_entry_ = entry;
  if (service_->needs_client_key()) {
    client_key_.source_hash = hash_source(client_address_);
    client_key_.flow_hash = hash_five_tuple(client_address_, service_->spec().listen.storage, IPPROTO_TCP);
  }
  state_ = State::kConnecting;
  if (!connect_next_backend()) enter_queue();
}

int TcpConnection::bind_client_source(int fd, int family) {
  // The client's IP with a port of the kernel's choosing (HAProxy's `usesrc
  // clientip`): reusing the client's own port would collide with its
  // TIME_WAIT connections to the same backend.
  sockaddr_storage source = unmap_ipv4(client_address_);
  if (source.ss_family != family) return -EAFNOSUPPORT;
  int one = 1;
  const int level = family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
  const int option = family == AF_INET6 ? IPV6_TRANSPARENT : IP_TRANSPARENT;
  // EPERM without CAP_NET_ADMIN (or CAP_NET_RAW).
  if (setsockopt(fd, level, option, &one, sizeof one) < 0) return -errno;
  // The port is chosen at connect(), against the backend's 4-tuple, not at bind().
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  socklen_t length;
  if (family == AF_INET6) {
    reinterpret_cast<sockaddr_in6&>(source).sin6_port = 0;
    length = sizeof(sockaddr_in6);
  } else {
    reinterpret_cast<sockaddr_in&>(source).sin_port = 0;
    length = sizeof(sockaddr_in);
  }
  if (bind(fd, reinterpret_cast<const sockaddr*>(&source), length) < 0) return -errno;
  return 0;
}

bool TcpConnection::resolve_destination() {
  if (has_destination_) return true;
  // Where this client connected to: the service's listen address, or on a
  // wildcard listener the local address the kernel gave this socket.
  const SocketAddress& listen = service_->spec().listen;
  if (!is_wildcard_address(listen)) {
    destination_ = listen.storage;
  } else {
    socklen_t length = sizeof destination_;
    if (getsockname(client_.fd, reinterpret_cast<sockaddr*>(&destination_), &length) < 0) return false;
  }
  has_destination_ = true;
  return true;
}

size_t TcpConnection::encode_proxy_header(SendProxy version, char* out) {
  if (!resolve_destination()) return 0;
  auto* header = reinterpret_cast<uint8_t*>(out);
  return version == SendProxy::kV1 ? encode_proxy_v1(client_address_, destination_, header)
                                   : encode_proxy_v2(client_address_, destination_, header);
}

void TcpConnection::enter_queue() {
  const ServiceSpec& spec = service_->spec();
  ServiceShared& shared = service_->shared();
  // Take a queue place first, so the bound holds across workers.
  if (spec.queue.size == 0 || shared.queued.fetch_add(1, std::memory_order_relaxed) >= static_cast<int32_t>(spec.queue.size)) {
    if (spec.queue.size != 0) shared.queued.fetch_sub(1, std::memory_order_relaxed);
    refuse(false);
    return;
  }
  state_ = State::kQueued;
  queued_at_us_ = monotonic_us();
  worker_.counters().add_service(spec.slot, kQueued, 1);
  worker_.timers().arm(this, worker_.now_ms(), spec.queue.timeout_ms);
  worker_.enqueue(this);
}

bool TcpConnection::retry_from_queue() {
  if (state_ != State::kQueued) return true;
  // The wait so far; overwritten by a later try if this one finds no room.
  queue_us_ = static_cast<uint32_t>(monotonic_us() - queued_at_us_);
  state_ = State::kConnecting;
  if (!connect_next_backend()) {
    state_ = State::kQueued;
    return false;
  }
  // Left the queue (connecting, or failed and closed).
  service_->shared().queued.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

void TcpConnection::refuse(bool timed_out) {
  const uint32_t slot = service_->spec().slot;
  worker_.counters().add_service(slot, kRefused, 1);
  if (timed_out) worker_.counters().add_service(slot, kQueueTimeouts, 1);
  finish(timed_out ? Termination::kQueueTimeout : Termination::kQueueFull, false, false);
}

void TcpConnection::release_backend() {
  if (backend_index_ < 0) return;
  service_->release(backend_index_);
  backend_index_ = -1;
  worker_.on_backend_released();
}

bool TcpConnection::connect_next_backend() {
  const int index = service_->pick(client_key_, tried_, tried_count_, worker_.now_ms());
  if (index == Service::kAllFull && tried_count_ == 0) return false;
  if (index < 0) {
    // Nothing to try: none up at all, or none left after failed tries.
    fail_client(tried_count_ == 0 ? Termination::kNoBackend : connect_failure());
    return true;
  }
  tried_[tried_count_++] = static_cast<uint32_t>(index);
  backend_index_ = index;
  const BackendSpec& backend = service_->backend(index);

  backend_ = Side{};
  backend_.handle = IoHandle{IoHandle::Kind::kBackend, this};
  backend_.fd = socket(backend.address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (backend_.fd < 0) {
    const int error = errno;
    if (is_resource_shortage(error)) {
      // Our shortage, not the backend's fault: no failure is counted against
      // it, and the client, already accepted, waits in the queue (bounded by
      // its size and timeout) until a closing connection frees descriptors,
      // instead of being closed while the process is saturated.
      worker_.on_resource_shortage(error);
      backend_.fd = -1;
      tried_count_--;
      release_backend();
      return false;
    }
    fail_client(Termination::kLocalError);
    return true;
  }
  set_nodelay(backend_.fd);
  // The client's socket inherited keepalive from its listener (engine.cc);
  // the backend's needs its own. A failure only costs dead-peer detection.
  if (service_->spec().tcp_keepalive.enabled) (void)apply_tcp_keepalive(backend_.fd, service_->spec().tcp_keepalive);
  if (service_->spec().transparent) {
    const int bound = bind_client_source(backend_.fd, backend.address.family());
    if (bound < 0) {
      // Our setup (no privilege, no route, families differ), not the
      // backend's fault: reported once per worker, the client is closed.
      worker_.report_source_bind_failure(service_->spec().slot, -bound);
      close_backend_socket(false);
      fail_client(Termination::kLocalError);
      return true;
    }
  }
  int result = worker_.watch(backend_.fd, &backend_.handle, kSocketEvents);
  if (result < 0) {
    close_backend_socket(false);
    fail_client(Termination::kLocalError);
    return true;
  }
  connect_started_us_ = monotonic_us();
  if (connect(backend_.fd, backend.address.get(), backend.address.length) == 0) {
    on_connected();
    return true;
  }
  if (errno != EINPROGRESS) {
    on_connect_result(errno);
    return true;
  }
  worker_.timers().arm(this, worker_.now_ms(), service_->spec().connect_timeout_ms);
  return true;
}

void TcpConnection::on_connect_result(int error) {
  if (error == 0) {
    on_connected();
    return;
  }
  const BackendSpec& backend = service_->backend(backend_index_);
  last_connect_timed_out_ = error == ETIMEDOUT;
  worker_.counters().add_backend(backend.slot, kFailed, 1);
  worker_.emit(Event{EventType::kConnectFailed, worker_.index(), service_->spec().slot, backend.slot, error});
  worker_.timers().cancel(this);
  close_backend_socket(false);
  release_backend();
  if (tried_count_ <= service_->spec().retries && tried_count_ < kMaxTries) {
    // A retry never queues: every candidate full now means giving up.
    if (!connect_next_backend()) fail_client(connect_failure());
  } else {
    fail_client(connect_failure());
  }
}

void TcpConnection::on_connected() {
  state_ = State::kRelaying;
  backend_established_ = true;
  backend_.writable = true;
  const BackendSpec& backend = service_->backend(backend_index_);
  worker_.counters().add_backend(backend.slot, kAccepted, 1);
  worker_.counters().add_backend(backend.slot, kActive, 1);
  connect_us_ = static_cast<uint32_t>(monotonic_us() - connect_started_us_);
  service_->backend_table().record_connect_time(backend.slot, connect_us_);
  last_touch_ms_ = worker_.now_ms();
  // No idle timeout (TCP's default): the connect timer goes, none replaces
  // it; keepalive finds a peer that is gone.
  if (service_->spec().idle_timeout_ms == 0) {
    worker_.timers().cancel(this);
  } else {
    worker_.timers().arm(this, last_touch_ms_, service_->spec().idle_timeout_ms);
  }
  if (backend.send_proxy != SendProxy::kNone) {
    // The header leads the upstream bytes. Most clients speak first, and
    // their first bytes are usually here by now: they go in the header's
    // send(), one syscall and one TCP segment less per connection. When
    // nothing is here yet (a server that speaks first), the header goes alone.
    const size_t header = encode_proxy_header(backend.send_proxy, worker_.copy_buffer());
    if (header == 0) {
      worker_.counters().add_service(service_->spec().slot, kFailed, 1);
      finish(Termination::kLocalError, true, true);
      return;
    }
    bool moved = false;
    RelayError error;
    if (!copy_once(client_, backend_, upstream_, true, &moved, &error, header)) {
      fail_relay(error);
      return;
    }
  }
  pump();
}

void TcpConnection::fail_relay(const RelayError& error) {
  // A reset (or any error) on one side resets the other, so neither peer
  // mistakes a broken stream for a complete one; but only after the bytes the
  // failed side sent before it failed have reached the other side. A local
  // failure resets both at once.
  if (error.side == nullptr) {
    finish(Termination::kLocalError, true, true);
    return;
  }
  delivery_termination_ = error.side == &client_ ? Termination::kClientReset : Termination::kBackendReset;
  start_delivery_before_reset(*error.side);
}

void TcpConnection::close_now(Termination why) {
  // Mid-delivery, the side still owed bytes learns by a reset that the stream broke.
  const Side* reset = state_ == State::kDeliveringBeforeReset ? &other_side(*failed_side_) : nullptr;
  finish(why, reset == &client_, reset == &backend_);
}

void TcpConnection::fail_client(Termination why) {
  worker_.counters().add_service(service_->spec().slot, kFailed, 1);
  finish(why, false, false);
}

void TcpConnection::on_io(const IoHandle* handle, uint32_t events) {
  if (state_ == State::kClosed) return;
  Side& side = handle == &client_.handle ? client_ : backend_;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) side.readable = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) side.writable = true;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) side.hangup_seen = true;

  if (state_ == State::kProxyHeader) {
    read_proxy_header();
    return;
  }
  if (state_ == State::kKernel) {
    on_kernel_io(side, events);
    return;
  }
  if (state_ == State::kDeliveringBeforeReset) {
    // The side still owed bytes failing too ends the delivery: nobody is left to tell.
    if (&side != failed_side_ && (events & EPOLLERR)) {
      finish(delivery_termination_, false, false);
    } else {
      continue_delivery();
    }
    return;
  }
  if (state_ == State::kQueued) {
    // Only the client is registered. Its data or EOF waits in the socket; a
    // reset means nobody is waiting any more.
    if (events & EPOLLERR) finish(Termination::kClientReset, false, false);
    return;
  }

  if (state_ == State::kConnecting) {
    if (&side == &backend_ && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      // Writable without an error is a completed connect; only a failure
      // needs SO_ERROR to say why (one syscall less per connection).
      int error = 0;
      if (events & (EPOLLERR | EPOLLHUP)) {
        socklen_t length = sizeof error;
        if (getsockopt(backend_.fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) error = errno;
        if (error == 0) error = ECONNRESET;
      }
      on_connect_result(error);
    } else if (&side == &client_ && (events & EPOLLERR)) {
      // The client reset while we were still connecting: nobody to serve.
      worker_.timers().cancel(this);
      finish(Termination::kClientReset, false, true);
    }
    // Client data or EOF waits in the socket until the backend is connected.
    return;
  }
  pump();
}

void TcpConnection::pump() {
  if (state_ == State::kDeliveringBeforeReset) {
    continue_delivery();
    return;
  }
  if (state_ != State::kRelaying) return;
  if (kernel_) release_delivered_sides();
  bool progress = false;
  bool budget_spent = false;
  RelayError error;
  if (!transfer(client_, backend_, upstream_, true, &progress, &budget_spent, &error) ||
      !transfer(backend_, client_, downstream_, false, &progress, &budget_spent, &error)) {
    fail_relay(error);
    return;
  }
  if (progress) touch();
  if (client_.read_eof && backend_.read_eof && client_.write_shut && backend_.write_shut) {
    finish(normal_end(), false, false);
    return;
  }
  if (budget_spent) {
    worker_.queue_resume(this);
  } else {
    maybe_enter_kernel();
  }
}

bool TcpConnection::transfer(Side& src, Side& dst, Flow& flow, bool upstream, bool* progress,
                             bool* budget_spent, RelayError* error) {
  // Leaving the kernel relay: the kernel still writes its queued bytes into
  // dst, so user space waits its turn (release_delivered_sides).
  if (kernel_holds(dst)) return true;
  PipePool& pipes = worker_.pipes();
  for (int round = 0;; round++) {
    if (round == kRoundsPerPump) {
      *budget_spent = true;
      break;
    }
    bool moved = false;
    // Flush the pipe first: it holds the oldest bytes and makes room for more.
    if (flow.pending > 0 && dst.writable) {
      ssize_t n = splice(flow.pipe.read_fd, nullptr, dst.fd, nullptr, flow.pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        flow.pending -= static_cast<size_t>(n);
        moved = true;
        count_bytes(upstream, static_cast<size_t>(n));
      } else if (errno == EAGAIN) {
        dst.writable = false;
      } else if (errno != EINTR) {
        // EPIPE, ECONNRESET: the destination is gone.
        *error = RelayError{errno, &dst};
        return false;
      }
    }
    if (flow.pending == 0) pipes.release(&flow.pipe);

    if (src.readable && !src.read_eof) {
      if (flow.bulk) {
        if (!splice_in(src, flow, &moved, error)) return false;
      } else if (flow.pending == 0) {
        // A small transfer waits for its pipe to drain before reading more.
        if (!copy_once(src, dst, flow, upstream, &moved, error)) return false;
      }
    }
    if (!moved) break;
    *progress = true;
  }
  if (src.read_eof && flow.pending == 0 && !dst.write_shut) {
    // Half-close: the source has said all it will; tell the destination.
    // When the other direction is already finished, the connection closes
    // right after this, and close() sends the same FIN (dst has nothing
    // unread: its EOF was read), so the shutdown() call is saved.
    const bool last_step = dst.read_eof && src.write_shut;
    if (closed_first_ == nullptr) closed_first_ = &src;
    if (!last_step && shutdown(dst.fd, SHUT_WR) < 0 && errno != ENOTCONN) {
      *error = RelayError{errno, &dst};
      return false;
    }
    dst.write_shut = true;
  }
  return true;
}

bool TcpConnection::copy_once(Side& src, Side& dst, Flow& flow, bool upstream, bool* moved, RelayError* error,
                              size_t prefix) {
  PipePool& pipes = worker_.pipes();
  char* buffer = worker_.copy_buffer();
  // Never more than an empty pipe takes in one write, so a remainder always fits.
  const size_t want = Worker::kCopyBufferSize - prefix;
  size_t got = 0;
  if (src.readable && !src.read_eof) {
    const ssize_t n = recv(src.fd, buffer + prefix, want, 0);
    if (n == 0) {
      src.read_eof = true;
      *moved = true;
    } else if (n < 0) {
      if (errno == EAGAIN) {
        src.readable = false;
      } else if (errno != EINTR) {
        *error = RelayError{errno, &src};
        return false;
      }
    } else {
      *moved = true;
      got = static_cast<size_t>(n);
      if (copied_reads_ < UINT8_MAX) copied_reads_++;
      if (upstream && watch_pg_cancel_) {
        // The client's first bytes (after any PROXY header it sent us).
        watch_pg_cancel_ = false;
        const auto* first = reinterpret_cast<const uint8_t*>(buffer + prefix);
        if (is_pg_cancel_request(first, got)) {
          // For send_proxy headers; if it cannot be had they say UNKNOWN.
          resolve_destination();
          worker_.pg_cancel().broadcast(*service_, backend_index_, first, got, client_address_, destination_);
        }
      }
      if (got == want) {
        // The buffer was filled: a bulk stream, which splice moves more cheaply.
        flow.bulk = true;
      } else if (!src.hangup_seen) {
        // A short read on an edge-triggered socket took everything there
        // was; new bytes will raise a new edge. Saves the recv() that
        // answers EAGAIN.
        src.readable = false;
      }
    }
  }
  const size_t length = prefix + got;
  if (length == 0) return true;
  size_t sent = 0;
  if (dst.writable) {
    const ssize_t n = send(dst.fd, buffer, length, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      sent = static_cast<size_t>(n);
      if (sent > prefix) count_bytes(upstream, sent - prefix);
      if (sent < length) dst.writable = false;  // its send buffer is full
    } else if (errno == EAGAIN) {
      dst.writable = false;
    } else if (errno != EINTR) {
      *error = RelayError{errno, &dst};
      return false;
    }
  }
  if (sent < prefix) {
    // A freshly connected socket's send buffer is empty and takes a prefix
    // (a PROXY header, at most 108 bytes) whole; if not, the connection is
    // broken rather than the header split or counted as client bytes.
    *error = RelayError{EIO, nullptr};
    return false;
  }
  if (sent == length) return true;
  // The destination is full: park the rest in a pipe, which is flushed (and
  // counted) like spliced bytes once the destination is writable again.
  int result = pipes.acquire(&flow.pipe);
  if (result < 0) {
    if (is_resource_shortage(-result)) worker_.on_resource_shortage(-result);
    *error = RelayError{-result, nullptr};
    return false;
  }
  const ssize_t parked = write(flow.pipe.write_fd, buffer + sent, length - sent);
  if (parked != static_cast<ssize_t>(length - sent)) {
    // Cannot happen with an empty pipe (at least a page); if it did, bytes
    // would be lost, so the stream is broken off instead.
    *error = RelayError{parked < 0 ? errno : EIO, nullptr};
    if (parked > 0) flow.pending = static_cast<size_t>(parked);
    return false;
  }
  flow.pending = length - sent;
  return true;
}

bool TcpConnection::splice_in(Side& src, Flow& flow, bool* moved, RelayError* error) {
  PipePool& pipes = worker_.pipes();
  const size_t capacity = pipes.capacity();
  if (flow.pending >= capacity) return true;
  if (!flow.pipe.valid()) {
    int result = pipes.acquire(&flow.pipe);
    if (result < 0) {
      if (is_resource_shortage(-result)) worker_.on_resource_shortage(-result);
      *error = RelayError{-result, nullptr};
      return false;
    }
  }
  ssize_t n = splice(src.fd, nullptr, flow.pipe.write_fd, nullptr, capacity - flow.pending,
                     SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n > 0) {
    flow.pending += static_cast<size_t>(n);
    *moved = true;
  } else if (n == 0) {
    src.read_eof = true;
    *moved = true;
  } else if (errno == EAGAIN) {
    // EAGAIN means "socket empty" only when the pipe is empty; otherwise
    // the pipe may be full (it counts buffers, not bytes) and the socket
    // must be tried again once the pipe has drained.
    if (flow.pending == 0) src.readable = false;
  } else if (errno != EINTR) {
    *error = RelayError{errno, &src};
    return false;
  }
  if (flow.pending == 0) pipes.release(&flow.pipe);
  return true;
}

void TcpConnection::count_bytes(bool upstream, size_t bytes) {
  const TrafficCounter counter = upstream ? kBytesIn : kBytesOut;
  (upstream ? bytes_in_ : bytes_out_) += bytes;
  const auto n = static_cast<int64_t>(bytes);
  worker_.counters().add_service(service_->spec().slot, counter, n);
  worker_.counters().add_backend(service_->backend(backend_index_).slot, counter, n);
}

void TcpConnection::touch() {
  // Re-arming moves the timer to the tail of its list: cheap, and done at
  // most once per millisecond tick.
  const uint64_t now = worker_.now_ms();
  if (now == last_touch_ms_ || service_->spec().idle_timeout_ms == 0) return;
  last_touch_ms_ = now;
  worker_.timers().arm(this, now, service_->spec().idle_timeout_ms);
}

void TcpConnection::on_timer(uint64_t) {
  if (state_ == State::kProxyHeader) {
    worker_.refuse_client(service_->spec().slot, kProxyTimeout, client_address_);
    finish(Termination::kProxyTimeout, false, false);
  } else if (state_ == State::kQueued) {
    refuse(true);  // finish() gives the queue place back
  } else if (state_ == State::kConnecting) {
    on_connect_result(ETIMEDOUT);
  } else if (state_ == State::kKernel || (state_ == State::kRelaying && kernel_)) {
    on_kernel_timer();  // idle check in the kernel relay, or the release poll after it
  } else if (state_ == State::kRelaying) {
    // Idle timeout: nothing moved either way for idle_timeout_ms.
    finish(Termination::kIdleTimeout, false, false);
  } else if (state_ == State::kDeliveringBeforeReset) {
    on_delivery_timer();
  }
}

void TcpConnection::close_backend_socket(bool reset) {
  close_socket(backend_.fd, reset);
  backend_.fd = -1;
}

void TcpConnection::finish(Termination why, bool reset_client, bool reset_backend) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kQueued) {
    service_->shared().queued.fetch_sub(1, std::memory_order_relaxed);
    queue_us_ = static_cast<uint32_t>(monotonic_us() - queued_at_us_);
  }
  release_kernel();
  state_ = State::kClosed;
  worker_.timers().cancel(this);
  close_socket(client_.fd, reset_client);
  client_.fd = -1;
  close_backend_socket(reset_backend);
  for (Flow* flow : {&upstream_, &downstream_}) {
    // A pipe still holding bytes of a broken stream is not reused.
    if (flow->pending == 0) {
      worker_.pipes().release(&flow->pipe);
    } else {
      PipePool::destroy(&flow->pipe);
    }
  }
  worker_.counters().add_service(service_->spec().slot, kActive, -1);
  if (backend_established_) worker_.counters().add_backend(service_->backend(backend_index_).slot, kActive, -1);
  release_backend();
  if (limit_entry_ != nullptr) {
    service_->limits()->release(limit_entry_, worker_.now_ms());
    limit_entry_ = nullptr;
  }
  log_record(RecordKind::kTcpEnd, why);
  worker_.retire(this);
}

}  // namespace fulcrum
