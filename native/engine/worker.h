// A data-plane worker: one thread, one epoll loop, its own listening sockets
// (SO_REUSEPORT), its own timers, pipe pool and counter block. Nothing here is
// shared with other workers except the read-mostly Service objects, the
// backend state table and the event sink.
//
// The JS thread talks to a worker only through its mailbox (a mutex-guarded
// queue plus an eventfd); the worker takes messages at the top of its loop,
// which is the safe point where a new set of listeners/services is swapped in.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "connection_budget.h"
#include "kernel_relay.h"
#include "connection_log.h"
#include "counters.h"
#include "event_sink.h"
#include "io_handle.h"
#include "pipe_pool.h"
#include "service.h"
#include "timer_queue.h"

namespace fulcrum {

class PgCancelFanout;
class TcpConnection;
class UdpRelaySet;

// A listening socket handed to a worker, with the service it serves.
struct ListenerBinding {
  int fd;
  std::shared_ptr<const Service> service;
};

class Worker {
 public:
  // log: the engine's connection log (outlives the worker); budget: shared
  // by every worker; max_pooled_pipes: empty pipes kept.
  Worker(uint32_t index, std::shared_ptr<CounterArena> counters, EventSink* events, ConnectionLog* log,
         std::shared_ptr<ConnectionBudget> budget, size_t max_pooled_pipes);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // JS thread. Creates the epoll fd, the mailbox and the thread. Returns 0 or -errno.
  int start();
  // JS thread. The worker takes ownership of every fd in listeners that it
  // does not already have, and closes the ones it has that are not listed.
  // Once done, the worker publishes `generation` in its kAppliedGeneration counter.
  void post_listeners(std::vector<ListenerBinding> listeners, uint64_t generation);
  // JS thread. Closes every open connection to the backend in `slot` (a
  // forced close after a drain or maint, or a removed backend's drain time
  // passed); `why` is what their records say.
  void post_close_backend(uint32_t slot, Termination why);
  // JS thread. Appends this worker's UDP flows of sync services whose hash is
  // in [from, to) to `journal` as one dump part (Engine::dump_sync).
  void post_dump_sync(uint32_t from, uint32_t to, std::shared_ptr<SyncJournal> journal);
  // JS thread, before start(): runs task(now_ms) on this worker's thread every
  // interval_ms (the engine gives worker 0 the load sampler).
  void set_periodic(std::function<void(uint64_t)> task, uint32_t interval_ms);
  // JS thread. Asks the loop to close everything and return; join() waits.
  void post_stop();
  void join();
  // JS thread. A test hook: the loop sleeps `ms` in this worker's thread, as a
  // worker stuck in a long call would (the systemd watchdog's tests).
  void post_stall_for_test(uint32_t ms);
  // Any thread. CLOCK_MONOTONIC ms of the loop's last turn (0 before the
  // first): an idle loop still turns once per second at least, so a value
  // older than a few seconds means this worker is stuck (the watchdog's probe).
  uint64_t loop_at_ms() const { return loop_at_ms_.load(std::memory_order_relaxed); }

  // --- Worker thread only: the services a connection uses. ---
  uint32_t index() const { return index_; }
  uint64_t now_ms() const { return now_ms_; }
  TimerQueue& timers() { return timers_; }
  // Empty pipes a worker keeps at most (fewer under a connection budget).
  static constexpr size_t kMaxPooledPipes = 256;
  PipePool& pipes() { return pipes_; }
  // Scratch for a connection's copy path (TcpConnection::copy_once): bytes
  // pass through it within one call, so one buffer serves every connection.
  // One page: what the destination cannot take is parked in an empty pipe,
  // and every pipe holds at least a page, even one the kernel shrank because
  // the user has many (pipe-user-pages-soft).
  static constexpr size_t kCopyBufferSize = 4096;
  char* copy_buffer() { return copy_buffer_; }
  WorkerCounters& counters() { return worker_counters_; }
  // Sends PostgreSQL cancel requests on to a service's other backends (pg_cancel.h).
  PgCancelFanout& pg_cancel() { return *pg_cancel_; }
  void emit(Event event);
  // Adds a connection socket's epoll registration. Returns 0 or -errno.
  int watch(int fd, IoHandle* handle, uint32_t events);
  // Changes the events a registered socket reports. Returns 0 or -errno.
  int rewatch(int fd, IoHandle* handle, uint32_t events);
  // This worker's kernel relay (kernel_relay.h), made on first use and sized
  // for the connection budget; null where the kernel relay is unavailable.
  KernelRelay* kernel_relay();
  // A connection entered (left) the kernel relay with these sockets: its
  // bulk reports reach it, and the worker's walk counts its bytes.
  void kernel_relay_joined(TcpConnection* connection, const KernelRelayPair& pair);
  void kernel_relay_left(const KernelRelayPair& pair);
  // Removes a listening socket from epoll before it is closed. close() alone
  // does not when another descriptor shares the socket (after an upgrade the
  // next Fulcrum holds it): its events would still arrive here, for a
  // listener already freed.
  void unwatch(int fd);
  // A connection that stopped at its per-event budget runs again after the
  // current batch of events, before the loop sleeps.
  void queue_resume(TcpConnection* connection);
  // A connection has closed its sockets; it is freed after the current batch
  // (free_retired), as are listeners a reload removed.
  void retire(TcpConnection* connection);
  // socket()/pipe()/accept() ran out of file descriptors or memory.
  void on_resource_shortage(int error);
  // source: client could not bind a backend socket to the client's address
  // (error: EPERM without CAP_NET_ADMIN, EADDRNOTAVAIL...): an event at most
  // once a second per worker, so a misconfiguration cannot flood the log.
  void report_source_bind_failure(uint32_t service_slot, int error);
  // A client turned away before any backend is touched (ACL, client limits,
  // a missing/malformed/late PROXY header): counted under `reason` (`count`
  // connections or datagrams), and told to the control plane as a
  // kClientRefused event naming the client, at most kRefusalEventsPerSecond
  // per worker so that a flood cannot flood the log; the rest are counted
  // and the next event says how many went unreported.
  void refuse_client(uint32_t service_slot, AdmissionCounter reason, const sockaddr_storage& client, uint64_t count = 1);
  static constexpr uint32_t kRefusalEventsPerSecond = 10;
  // The ACL and client limits for a new TCP connection from `client` (at
  // accept, or once its PROXY header named it); counts a refusal or an
  // untracked client. True if admitted, with *entry held (or null).
  // When refused, *refused (if given) says why: kDenied or kClientLimit.
  bool admit(const Service& service, const sockaddr_storage& client, ClientLimitTable::Entry** entry,
             Termination* refused = nullptr);
  // The connection log's record of a connection or flow that ended here.
  void log_connection(ConnectionRecord& record) {
    record.worker = static_cast<uint8_t>(index_);
    log_->record(index_, record);
  }
  // A connection waits for a backend with room (TcpConnection::kQueued).
  void enqueue(TcpConnection* connection);
  // A backend connection place was given back on this worker: queued
  // connections may now get one.
  void on_backend_released();

 private:
  struct Listener {
    IoHandle handle;
    int fd;
    std::shared_ptr<const Service> service;
  };
  struct Message {
    enum class Kind : uint8_t { kListeners, kCloseBackend, kDumpSync, kStallForTest, kStop } kind = Kind::kListeners;
    std::vector<ListenerBinding> listeners;
    uint64_t generation = 0;
    uint32_t backend_slot = 0;
    Termination close_reason = Termination::kDrain;  // kCloseBackend
    uint32_t dump_from = 0;  // kDumpSync: the key range and where the part goes
    uint32_t dump_to = 0;
    std::shared_ptr<SyncJournal> journal;
    uint32_t stall_ms = 0;  // kStallForTest
  };
  // Calls back into the worker when it fires (accept retry, queue poll, periodic task).
  class CallbackTimer final : public Timer {
   public:
    explicit CallbackTimer(std::function<void(uint64_t)> callback) : callback_(std::move(callback)) {}

   protected:
    void on_timer(uint64_t now_ms) override { callback_(now_ms); }

   private:
    std::function<void(uint64_t)> callback_;
  };

  void run();
  void post(Message message);
  void take_messages();
  void replace_listeners(std::vector<ListenerBinding> bindings);
  void accept_from(Listener* listener);
  // Puts a new connection at the head of the live list; returns it.
  TcpConnection* link_live(TcpConnection* connection);
  // The ACL and client limits for a connection from `peer` taken from the
  // backlog; counts a refusal. True with *entry held (or null) if admitted.
  bool admit_at_accept(const Service& service, const sockaddr_storage& peer, ClientLimitTable::Entry** entry);
  // error: the errno that stopped accepting, or 0 at the connection budget.
  void pause_accepting(int error);
  // Timer: resumes once the budget has room again (its hysteresis), else waits another round.
  void try_resume_accepting();
  void resume_accepting();
  void run_resume_queue();
  void retry_queued();
  void close_backend(uint32_t slot, Termination why);
  // A refused client's record (it never became a TcpConnection).
  void log_refused(const Service& service, const sockaddr_storage& client, Termination why);
  // connection_log.interval: interim records of the connections that are due.
  void log_interim_records();
  void free_retired();
  void close_everything();
  void update_clock();

  const uint32_t index_;
  std::shared_ptr<CounterArena> counters_;
  EventSink* events_;
  ConnectionLog* log_;
  WorkerCounters worker_counters_;
  int epoll_fd_ = -1;
  int mailbox_fd_ = -1;
  IoHandle mailbox_handle_{IoHandle::Kind::kMailbox, nullptr};
  std::thread thread_;

  std::mutex mailbox_mutex_;
  std::vector<Message> mailbox_;

  bool running_ = true;
  uint64_t now_ms_ = 0;
  std::atomic<uint64_t> loop_at_ms_{0};
  TimerQueue timers_;
  PipePool pipes_;
  char copy_buffer_[kCopyBufferSize];
  std::vector<std::unique_ptr<Listener>> listeners_;
  bool accept_paused_ = false;
  uint64_t source_bind_reported_ms_ = 0;
  bool source_bind_reported_ = false;
  // refuse_client's event budget: the current one-second window, events sent
  // in it, and refusals not reported since the last event.
  uint64_t refusal_window_ms_ = 0;
  uint32_t refusal_events_ = 0;
  uint32_t refusals_unreported_ = 0;
  // Retries accepting after a shortage even if no connection closes.
  CallbackTimer resume_accept_timer_{[this](uint64_t) { try_resume_accepting(); }};
  std::shared_ptr<ConnectionBudget> budget_;
  bool paused_for_budget_ = false;
  // Connections waiting for a backend with room, oldest first. Places given
  // back on this worker retry them at once; places given back on other
  // workers are noticed by the poll timer, which runs while any wait.
  std::deque<TcpConnection*> queue_;
  bool retrying_queue_ = false;
  CallbackTimer queue_poll_timer_{[this](uint64_t) { retry_queued(); }};
  std::function<void(uint64_t)> periodic_task_;
  uint32_t periodic_interval_ms_ = 0;
  CallbackTimer periodic_timer_{[this](uint64_t now) {
    periodic_task_(now);
    timers_.arm(&periodic_timer_, now, periodic_interval_ms_);
  }};
  // Walks the live connections for interim records once a second (only
  // when connection_log.interval is set).
  static constexpr uint32_t kInterimWalkMs = 1000;
  CallbackTimer interim_timer_{[this](uint64_t now) {
    log_interim_records();
    timers_.arm(&interim_timer_, now, kInterimWalkMs);
  }};
  TcpConnection* live_ = nullptr;  // head of the intrusive list of open connections
  std::vector<TcpConnection*> resume_queue_;
  std::vector<TcpConnection*> retired_;
  std::vector<std::unique_ptr<Listener>> retired_listeners_;
  // The kernel relay: made on first use (kernel_relay()); its connections by
  // both sockets' cookies (bulk reports name either), and a walk that counts
  // their bytes once a second.
  void take_kernel_relay_reports();
  void sweep_kernel_relay();
  static constexpr uint32_t kKernelSweepMs = 1000;
  std::unique_ptr<KernelRelay> kernel_relay_;
  bool kernel_relay_failed_ = false;
  IoHandle kernel_relay_handle_{IoHandle::Kind::kKernelRelay, nullptr};
  std::unordered_map<uint64_t, TcpConnection*> kernel_connections_;
  CallbackTimer kernel_sweep_timer_{[this](uint64_t now) {
    sweep_kernel_relay();
    if (!kernel_connections_.empty()) timers_.arm(&kernel_sweep_timer_, now, kKernelSweepMs);
  }};
  // protocol: udp listeners and their flows (udp_relay.h).
  std::unique_ptr<UdpRelaySet> udp_;
  // After the timers and counters it uses, so it is destroyed before them.
  std::unique_ptr<PgCancelFanout> pg_cancel_;
};

}  // namespace fulcrum
