// Per-worker timers for connect and idle timeouts (and the accept-pause
// retry). Every timer of a given duration is kept in one FIFO list: since the
// clock only moves forward, appending `now + duration` keeps each list sorted,
// so arming, re-arming and cancelling are O(1) pointer moves and expiry pops
// list heads. A worker has only a handful of distinct durations (one connect
// and one idle timeout per service), so finding the list is a short scan.
// Single-threaded: owned and used by one worker.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace fulcrum {

class TimerQueue;

class Timer {
 public:
  virtual ~Timer() = default;
  bool armed() const { return list_ != nullptr; }
  uint64_t deadline_ms() const { return deadline_ms_; }

 protected:
  // Called by TimerQueue::expire once the deadline has passed; the timer is
  // already disarmed and may be re-armed from here.
  virtual void on_timer(uint64_t now_ms) = 0;

 private:
  friend class TimerQueue;
  friend struct TimerList;
  Timer* prev_ = nullptr;
  Timer* next_ = nullptr;
  struct TimerList* list_ = nullptr;
  uint64_t deadline_ms_ = 0;
};

struct TimerList {
  uint64_t duration_ms;
  Timer* head = nullptr;
  Timer* tail = nullptr;
};

class TimerQueue {
 public:
  // (Re)arms timer to fire at now_ms + duration_ms.
  void arm(Timer* timer, uint64_t now_ms, uint64_t duration_ms);
  void cancel(Timer* timer);
  // Milliseconds until the next deadline, clamped to [0, cap_ms]; cap_ms when none.
  int wait_ms(uint64_t now_ms, int cap_ms) const;
  // Fires every timer whose deadline is <= now_ms.
  void expire(uint64_t now_ms);

 private:
  TimerList* list_for(uint64_t duration_ms);
  std::vector<std::unique_ptr<TimerList>> lists_;
};

}  // namespace fulcrum
