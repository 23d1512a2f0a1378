#include "worker.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <string>
#include <thread>

#include "clock.h"
#include "flow_hash.h"
#include "pg_cancel.h"
#include "tcp_connection.h"
#include "udp_relay.h"

namespace fulcrum {

namespace {

constexpr int kMaxEventsPerWait = 256;
// Accepts per listener readiness, so a connection storm on one listener still
// lets established connections move.
constexpr int kAcceptsPerEvent = 64;
// After an fd shortage, accepting is retried this often even if no
// connection closes (one that closes retries at once).
constexpr uint64_t kAcceptRetryMs = 100;
// While connections wait in the queue, how often other workers' released
// places are looked for.
constexpr uint64_t kQueuePollMs = 5;
// Upper bound of one epoll_wait, so a clock jump or lost wakeup is harmless.
constexpr int kMaxWaitMs = 1000;

}  // namespace

Worker::Worker(uint32_t index, std::shared_ptr<CounterArena> counters, EventSink* events, ConnectionLog* log,
               std::shared_ptr<ConnectionBudget> budget, size_t max_pooled_pipes)
    : index_(index),
      counters_(std::move(counters)),
      events_(events),
      log_(log),
      worker_counters_(counters_->worker(index)),
      pipes_(worker_counters_, max_pooled_pipes),
      budget_(std::move(budget)),
      udp_(std::make_unique<UdpRelaySet>(*this)),
      pg_cancel_(std::make_unique<PgCancelFanout>(*this)) {}

Worker::~Worker() {
  if (thread_.joinable()) {
    post_stop();
    join();
  }
  if (mailbox_fd_ >= 0) close(mailbox_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  epoll_fd_ = -1;  // unwatch() from a relay destroyed after this does nothing
  // Listeners posted to a loop that never ran (start() failed) are still ours.
  for (Message& message : mailbox_) {
    for (ListenerBinding& binding : message.listeners) close(binding.fd);
  }
}

int Worker::start() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return -errno;
  mailbox_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (mailbox_fd_ < 0) return -errno;
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = &mailbox_handle_;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, mailbox_fd_, &event) < 0) return -errno;
  update_clock();
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    return -e.code().value();
  }
  std::string name = "fulcrum-w" + std::to_string(index_);
  pthread_setname_np(thread_.native_handle(), name.substr(0, 15).c_str());
  return 0;
}

void Worker::post(Message message) {
  {
    std::lock_guard<std::mutex> lock(mailbox_mutex_);
    mailbox_.push_back(std::move(message));
  }
  uint64_t one = 1;
  // Cannot block (non-blocking eventfd); EAGAIN means a wakeup is already pending.
  ssize_t written = write(mailbox_fd_, &one, sizeof one);
  (void)written;
}

void Worker::post_listeners(std::vector<ListenerBinding> listeners, uint64_t generation) {
  Message message;
  message.listeners = std::move(listeners);
  message.generation = generation;
  post(std::move(message));
}

void Worker::post_close_backend(uint32_t slot, Termination why) {
  Message message;
  message.kind = Message::Kind::kCloseBackend;
  message.backend_slot = slot;
  message.close_reason = why;
  post(std::move(message));
}

void Worker::post_dump_sync(uint32_t from, uint32_t to, std::shared_ptr<SyncJournal> journal) {
  Message message;
  message.kind = Message::Kind::kDumpSync;
  message.dump_from = from;
  message.dump_to = to;
  message.journal = std::move(journal);
  post(std::move(message));
}

void Worker::set_periodic(std::function<void(uint64_t)> task, uint32_t interval_ms) {
  periodic_task_ = std::move(task);
  periodic_interval_ms_ = interval_ms;
}

void Worker::post_stop() {
  Message message;
  message.kind = Message::Kind::kStop;
  post(std::move(message));
}

void Worker::post_stall_for_test(uint32_t ms) {
  Message message;
  message.kind = Message::Kind::kStallForTest;
  message.stall_ms = ms;
  post(std::move(message));
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::update_clock() { now_ms_ = monotonic_ms(); }

void Worker::run() {
  epoll_event events[kMaxEventsPerWait];
  if (periodic_task_) timers_.arm(&periodic_timer_, now_ms_, periodic_interval_ms_);
  timers_.arm(&interim_timer_, now_ms_, kInterimWalkMs);
  while (running_) {
    const int wait_ms = resume_queue_.empty() ? timers_.wait_ms(now_ms_, kMaxWaitMs) : 0;
    const int count = epoll_wait(epoll_fd_, events, kMaxEventsPerWait, wait_ms);
    update_clock();
    // Every turn, at least once per kMaxWaitMs even when idle: the control
    // plane's watchdog reads a stale value as a stuck worker.
    loop_at_ms_.store(now_ms_, std::memory_order_relaxed);
    // UDP listeners go last: replies already on their way back (upstream
    // sockets) are read before new datagrams are taken in. Under overload
    // this spends the worker's time finishing round trips instead of
    // forwarding requests whose replies would then overflow an upstream
    // socket's buffer; the listener is level-triggered, so nothing is lost
    // by waiting.
    IoHandle* udp_listeners[kMaxEventsPerWait];
    int udp_listener_count = 0;
    for (int i = 0; i < count; i++) {
      auto* handle = static_cast<IoHandle*>(events[i].data.ptr);
      switch (handle->kind) {
        case IoHandle::Kind::kMailbox:
          take_messages();
          break;
        case IoHandle::Kind::kListener:
          accept_from(static_cast<Listener*>(handle->owner));
          break;
        case IoHandle::Kind::kClient:
        case IoHandle::Kind::kBackend:
          static_cast<TcpConnection*>(handle->owner)->on_io(handle, events[i].events);
          break;
        case IoHandle::Kind::kUdpListener:
          udp_listeners[udp_listener_count++] = handle;
          break;
        case IoHandle::Kind::kUdpUpstream:
          udp_->on_io(handle, events[i].events);
          break;
        case IoHandle::Kind::kPgCancel:
          pg_cancel_->on_io(handle, events[i].events);
          break;
        case IoHandle::Kind::kKernelRelay:
          take_kernel_relay_reports();
          break;
      }
    }
    for (int i = 0; i < udp_listener_count; i++) udp_->on_io(udp_listeners[i], EPOLLIN);
    udp_->flush_replies();
    run_resume_queue();
    timers_.expire(now_ms_);
    free_retired();
  }
  close_everything();
}

void Worker::take_messages() {
  uint64_t count;
  ssize_t got = read(mailbox_fd_, &count, sizeof count);
  (void)got;
  std::vector<Message> messages;
  {
    std::lock_guard<std::mutex> lock(mailbox_mutex_);
    messages.swap(mailbox_);
  }
  for (Message& message : messages) {
    switch (message.kind) {
      case Message::Kind::kStop:
        running_ = false;
        break;
      case Message::Kind::kListeners:
        udp_->replace(take_udp_bindings(message.listeners));
        replace_listeners(std::move(message.listeners));
        worker_counters_.set_worker(kAppliedGeneration, message.generation);
        break;
      case Message::Kind::kCloseBackend:
        close_backend(message.backend_slot, message.close_reason);
        break;
      case Message::Kind::kDumpSync:
        udp_->dump_flows(message.dump_from, message.dump_to, *message.journal);
        break;
      case Message::Kind::kStallForTest:
        std::this_thread::sleep_for(std::chrono::milliseconds(message.stall_ms));
        break;
    }
  }
}

void Worker::replace_listeners(std::vector<ListenerBinding> bindings) {
  std::vector<std::unique_ptr<Listener>> next;
  for (ListenerBinding& binding : bindings) {
    auto kept = std::find_if(listeners_.begin(), listeners_.end(),
                             [&](const auto& l) { return l && l->fd == binding.fd; });
    if (kept != listeners_.end()) {
      // Same socket, possibly a new service definition: new connections get
      // it, open ones keep the one they started with.
      (*kept)->service = std::move(binding.service);
      next.push_back(std::move(*kept));
      continue;
    }
    auto listener = std::make_unique<Listener>();
    listener->handle = IoHandle{IoHandle::Kind::kListener, listener.get()};
    listener->fd = binding.fd;
    listener->service = std::move(binding.service);
    epoll_event event{};
    event.events = accept_paused_ ? 0u : static_cast<uint32_t>(EPOLLIN);
    event.data.ptr = &listener->handle;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listener->fd, &event) < 0) {
      emit(Event{EventType::kListenerError, index_, listener->service->spec().slot, kNoSlot, errno});
    }
    next.push_back(std::move(listener));
  }
  for (auto& old : listeners_) {
    if (!old) continue;
    // Out of epoll first (unwatch). The object itself lives until the end of
    // this loop iteration: an event for it may follow in this batch.
    unwatch(old->fd);
    close(old->fd);
    old->fd = -1;
    retired_listeners_.push_back(std::move(old));
  }
  listeners_ = std::move(next);
}

void Worker::accept_from(Listener* listener) {
  if (listener->fd < 0) return;  // removed by a reload earlier in this batch
  for (int i = 0; i < kAcceptsPerEvent && !accept_paused_; i++) {
    // A place in the budget first (exact across workers), given back when
    // nothing is accepted: at the cap, before the process runs out of
    // descriptors, the client waits in the backlog.
    if (!budget_->try_open()) {
      pause_accepting(0);
      return;
    }
    sockaddr_storage peer{};
    socklen_t peer_length = sizeof peer;
    int fd = accept4(listener->fd, reinterpret_cast<sockaddr*>(&peer), &peer_length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      budget_->closed();
      switch (errno) {
        case EAGAIN:
          return;
        case EINTR:
        case ECONNABORTED:  // the client gave up while queued
        case EPROTO:
        case EPERM:  // firewall said no to this one connection
          continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
          // The connection stays in the backlog; pausing keeps a
          // level-triggered listener from spinning until fds free up.
          on_resource_shortage(errno);
          return;
        default:
          emit(Event{EventType::kListenerError, index_, listener->service->spec().slot, kNoSlot, errno});
          pause_accepting(errno);
          return;
      }
    }
    const Service& service = *listener->service;
    const uint32_t slot = service.spec().slot;
    worker_counters_.add_service(slot, kAccepted, 1);
    if (service.expects_proxy_header(peer)) {
      // Admitted once its header says who the client is.
      worker_counters_.add_service(slot, kActive, 1);
      link_live(new TcpConnection(*this, listener->service, fd, peer, ClientKey{}, nullptr))->start_with_proxy_header();
      continue;
    }
    ClientLimitTable::Entry* entry = nullptr;
    Termination refused = Termination::kDenied;
    if (!admit(service, peer, &entry, &refused)) {
      close(fd);  // a plain close: the client sees the connection end, no backend was touched
      budget_->closed();
      log_refused(service, peer, refused);
      continue;
    }
    worker_counters_.add_service(slot, kActive, 1);
    ClientKey key;
    if (service.needs_client_key()) {
      key.source_hash = hash_source(peer);
      key.flow_hash = hash_five_tuple(peer, service.spec().listen.storage, IPPROTO_TCP);
    }
    link_live(new TcpConnection(*this, listener->service, fd, peer, key, entry))->start();
  }
}

TcpConnection* Worker::link_live(TcpConnection* connection) {
  connection->next_live = live_;
  if (live_ != nullptr) live_->prev_live = connection;
  live_ = connection;
  return connection;
}

bool Worker::admit(const Service& service, const sockaddr_storage& client, ClientLimitTable::Entry** entry,
                   Termination* refused) {
  *entry = nullptr;
  // The common case, no ACL and no limits, costs two loads.
  if (!service.spec().acl && service.limits() == nullptr) return true;
  const uint32_t slot = service.spec().slot;
  switch (service.admit_connection(client, now_ms_, entry)) {
    case Admission::kAdmitted:
      return true;
    case Admission::kUntracked:
      worker_counters_.add_admission(slot, kUntracked, 1);
      return true;
    case Admission::kDenied:
      refuse_client(slot, kDenied, client);
      if (refused != nullptr) *refused = Termination::kDenied;
      return false;
    case Admission::kOverConnections:
      refuse_client(slot, kOverConnections, client);
      if (refused != nullptr) *refused = Termination::kClientLimit;
      return false;
    case Admission::kOverRate:
      refuse_client(slot, kOverRate, client);
      if (refused != nullptr) *refused = Termination::kClientLimit;
      return false;
  }
  return false;
}

void Worker::report_source_bind_failure(uint32_t service_slot, int error) {
  if (source_bind_reported_ && now_ms_ < source_bind_reported_ms_ + 1000) return;
  source_bind_reported_ = true;
  source_bind_reported_ms_ = now_ms_;
  emit(Event{EventType::kSourceBindFailed, index_, service_slot, kNoSlot, error});
}

void Worker::refuse_client(uint32_t service_slot, AdmissionCounter reason, const sockaddr_storage& client, uint64_t count) {
  worker_counters_.add_admission(service_slot, reason, static_cast<int64_t>(count));
  if (now_ms_ >= refusal_window_ms_ + 1000) {
    refusal_window_ms_ = now_ms_;
    refusal_events_ = 0;
  }
  if (refusal_events_ >= kRefusalEventsPerSecond) {
    refusals_unreported_ += static_cast<uint32_t>(count);
    return;
  }
  refusal_events_++;
  Event event{EventType::kClientRefused, index_, service_slot};
  event.client = ClientAddress::from(client);
  event.reason = reason;
  // A UDP run of several datagrams is one event; the others are unreported too.
  event.suppressed = refusals_unreported_ + static_cast<uint32_t>(count - 1);
  refusals_unreported_ = 0;
  emit(event);
}

void Worker::on_resource_shortage(int error) {
  if (!accept_paused_) pause_accepting(error);
}

void Worker::pause_accepting(int error) {
  if (accept_paused_) return;
  accept_paused_ = true;
  paused_for_budget_ = error == 0;
  worker_counters_.add_worker(kAcceptPauses, 1);
  worker_counters_.set_worker(kAcceptPaused, 1);
  for (auto& listener : listeners_) {
    epoll_event event{};
    event.data.ptr = &listener->handle;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listener->fd, &event);
  }
  timers_.arm(&resume_accept_timer_, now_ms_, kAcceptRetryMs);
  // Said once per episode (while any worker is paused), not per worker and
  // pause: with many workers and a busy port that was hundreds of lines.
  if (budget_->worker_paused()) emit(Event{EventType::kAcceptPaused, index_, kNoSlot, kNoSlot, error});
}

void Worker::try_resume_accepting() {
  if (!accept_paused_) return;
  if (budget_->room_to_resume()) {
    resume_accepting();
  } else {
    timers_.arm(&resume_accept_timer_, now_ms_, kAcceptRetryMs);
  }
}

void Worker::resume_accepting() {
  if (!accept_paused_) return;
  accept_paused_ = false;
  worker_counters_.set_worker(kAcceptPaused, 0);
  timers_.cancel(&resume_accept_timer_);
  for (auto& listener : listeners_) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = &listener->handle;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listener->fd, &event);
  }
  if (budget_->worker_resumed()) emit(Event{EventType::kAcceptResumed, index_, kNoSlot, kNoSlot, 0});
}

void Worker::unwatch(int fd) { (void)epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

int Worker::watch(int fd, IoHandle* handle, uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.ptr = handle;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) < 0) return -errno;
  return 0;
}

int Worker::rewatch(int fd, IoHandle* handle, uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.ptr = handle;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) < 0) return -errno;
  return 0;
}

KernelRelay* Worker::kernel_relay() {
  if (kernel_relay_ || kernel_relay_failed_) return kernel_relay_.get();
  // Why it is unavailable is said once, by the control plane at start
  // (addon.kernelRelaySupport); here each refused connection is counted.
  if (!kernel_relay_support().available) {
    kernel_relay_failed_ = true;
    return nullptr;
  }
  // Room for every connection the budget allows: any worker may hold them all.
  constexpr uint32_t kUnbudgetedCapacity = 65536;
  const uint32_t budgeted = budget_ ? budget_->max_connections() : 0;
  std::string error;
  kernel_relay_ = KernelRelay::create(budgeted != 0 ? budgeted : kUnbudgetedCapacity, &error);
  if (!kernel_relay_ || watch(kernel_relay_->events_fd(), &kernel_relay_handle_, EPOLLIN) < 0) {
    kernel_relay_.reset();
    kernel_relay_failed_ = true;
  }
  return kernel_relay_.get();
}

void Worker::kernel_relay_joined(TcpConnection* connection, const KernelRelayPair& pair) {
  const bool first = kernel_connections_.empty();
  kernel_connections_[pair.cookie[0]] = connection;
  kernel_connections_[pair.cookie[1]] = connection;
  if (first) timers_.arm(&kernel_sweep_timer_, now_ms_, kKernelSweepMs);
}

void Worker::kernel_relay_left(const KernelRelayPair& pair) {
  kernel_connections_.erase(pair.cookie[0]);
  kernel_connections_.erase(pair.cookie[1]);
}

void Worker::take_kernel_relay_reports() {
  if (!kernel_relay_) return;
  kernel_relay_->take_bulk_reports([this](uint64_t cookie) {
    const auto found = kernel_connections_.find(cookie);
    if (found != kernel_connections_.end()) found->second->on_kernel_bulk_report();
  });
}

void Worker::sweep_kernel_relay() {
  // Each connection is in the table under both cookies: counted once, under its client's.
  for (const auto& [cookie, connection] : kernel_connections_) {
    if (connection->kernel_client_cookie() == cookie) connection->sync_kernel_bytes();
  }
}

void Worker::queue_resume(TcpConnection* connection) {
  if (connection->queued_for_resume) return;
  connection->queued_for_resume = true;
  resume_queue_.push_back(connection);
}

void Worker::run_resume_queue() {
  if (resume_queue_.empty()) return;
  std::vector<TcpConnection*> queue;
  queue.swap(resume_queue_);
  for (TcpConnection* connection : queue) {
    connection->queued_for_resume = false;
    if (!connection->closed()) connection->resume();
  }
}

void Worker::retire(TcpConnection* connection) {
  if (connection->prev_live != nullptr) {
    connection->prev_live->next_live = connection->next_live;
  } else {
    live_ = connection->next_live;
  }
  if (connection->next_live != nullptr) connection->next_live->prev_live = connection->prev_live;
  connection->prev_live = connection->next_live = nullptr;
  retired_.push_back(connection);
  budget_->closed();
  // A closed connection freed descriptors: the moment to accept again, once
  // the budget is back down to its resume point. After an EMFILE (descriptors
  // taken by something else than connections) the timer retries instead,
  // at most every kAcceptRetryMs, rather than at every close.
  if (accept_paused_ && paused_for_budget_ && budget_->room_to_resume()) resume_accepting();
}

void Worker::free_retired() {
  // Retired connections may still be referenced by events later in the batch
  // just handled or by the resume queue; both are done by now.
  if (!resume_queue_.empty()) {
    std::erase_if(resume_queue_, [](TcpConnection* c) { return c->closed(); });
  }
  if (!queue_.empty()) {
    std::erase_if(queue_, [](TcpConnection* c) { return c->closed(); });
  }
  for (TcpConnection* connection : retired_) delete connection;
  retired_.clear();
  retired_listeners_.clear();
  udp_->free_retired();
  pg_cancel_->free_retired();
}

void Worker::emit(Event event) {
  if (events_ != nullptr) events_->push(event);
}

void Worker::enqueue(TcpConnection* connection) {
  queue_.push_back(connection);
  if (!queue_poll_timer_.armed()) timers_.arm(&queue_poll_timer_, now_ms_, kQueuePollMs);
}

void Worker::on_backend_released() {
  if (!queue_.empty()) retry_queued();
}

void Worker::retry_queued() {
  // A retried connection may fail at once and give its place back, which
  // calls here again: the outer loop carries on instead.
  if (retrying_queue_) return;
  retrying_queue_ = true;
  while (!queue_.empty()) {
    TcpConnection* connection = queue_.front();
    // Closed in this batch (free_retired() drops the others before freeing
    // them, so the pointer is valid) or already out of the queue: drop it.
    if (!connection->queued()) {
      queue_.pop_front();
      continue;
    }
    if (!connection->retry_from_queue()) break;  // still full: keep the order
    queue_.pop_front();
  }
  retrying_queue_ = false;
  if (queue_.empty()) {
    timers_.cancel(&queue_poll_timer_);
  } else if (!queue_poll_timer_.armed()) {
    timers_.arm(&queue_poll_timer_, now_ms_, kQueuePollMs);
  }
}

void Worker::close_backend(uint32_t slot, Termination why) {
  // Collected first: closing unlinks connections from the live list.
  std::vector<TcpConnection*> doomed;
  for (TcpConnection* c = live_; c != nullptr; c = c->next_live) {
    if (c->backend_slot() == static_cast<int64_t>(slot)) doomed.push_back(c);
  }
  for (TcpConnection* c : doomed) c->close_now(why);
  udp_->close_backend(slot, why);
}

void Worker::close_everything() {
  while (live_ != nullptr) live_->close_now(Termination::kShutdown);  // close_now() unlinks it
  udp_->close_all();
  pg_cancel_->close_all();
  queue_.clear();
  timers_.cancel(&queue_poll_timer_);
  timers_.cancel(&periodic_timer_);
  timers_.cancel(&interim_timer_);
  resume_queue_.clear();
  free_retired();
  timers_.cancel(&resume_accept_timer_);
  for (auto& listener : listeners_) {
    unwatch(listener->fd);
    close(listener->fd);
  }
  listeners_.clear();
}

}  // namespace fulcrum

namespace fulcrum {

void Worker::log_refused(const Service& service, const sockaddr_storage& client, Termination why) {
  ConnectionRecord record;
  record.termination = why;
  record.service_slot = service.spec().slot;
  record.start_us = monotonic_us();
  record.client = ClientAddress::from(client);
  log_connection(record);
}

void Worker::log_interim_records() {
  const uint32_t interval_ms = log_->interval_ms();
  if (interval_ms == 0) return;
  const uint64_t now_us = monotonic_us();
  for (TcpConnection* c = live_; c != nullptr; c = c->next_live) c->log_interim_if_due(now_us, uint64_t{interval_ms} * 1000);
}

}  // namespace fulcrum
