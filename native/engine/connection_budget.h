// The process-wide cap on open TCP connections, sized by the control plane
// from RLIMIT_NOFILE (src/engine/fd-budget.ts, HAProxy's maxconn derived from
// the fd limit): each connection costs two sockets and, while bytes wait,
// pipes; the rest of the limit is kept in reserve for the admin API, health
// checks, listeners and Node itself. Workers stop accepting at the cap, so
// clients wait in the kernel's listen backlog instead of being accepted and
// then closed for want of a descriptor, and start again only once enough
// connections have closed (hysteresis), not at every close.
//
// Shared by every worker thread; every member is lock-free.
#pragma once

#include <atomic>
#include <cstdint>

namespace fulcrum {

class ConnectionBudget {
 public:
  // max_connections 0: no cap (accepting pauses only on EMFILE).
  explicit ConnectionBudget(uint32_t max_connections);

  uint32_t max_connections() const { return max_; }
  // Accepting resumes once open connections are down to this many: a tenth
  // of the cap (at least 8) below it, so one close does not reopen the gate.
  uint32_t resume_at() const { return resume_at_; }

  // Any worker, before accept(): takes a place, or returns false at the cap.
  // closed() gives it back (nothing accepted, or the connection has closed).
  bool try_open() {
    if (open_.fetch_add(1, std::memory_order_relaxed) < max_ || max_ == 0) return true;
    open_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void closed() { open_.fetch_sub(1, std::memory_order_relaxed); }
  uint32_t open() const { return open_.load(std::memory_order_relaxed); }
  bool room_to_resume() const { return max_ == 0 || open() <= resume_at_; }

  // A worker paused (resumed) its listeners. An episode is the time while at
  // least one worker is paused: the first pause returns true (say it once),
  // and so does the resume that ends it.
  bool worker_paused() { return paused_workers_.fetch_add(1, std::memory_order_acq_rel) == 0; }
  bool worker_resumed() { return paused_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1; }

 private:
  const uint32_t max_;
  const uint32_t resume_at_;
  std::atomic<uint32_t> open_{0};
  std::atomic<uint32_t> paused_workers_{0};
};

}  // namespace fulcrum
