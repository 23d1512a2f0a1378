#include "timer_queue.h"

#include <algorithm>

namespace fulcrum {

TimerList* TimerQueue::list_for(uint64_t duration_ms) {
  for (auto& list : lists_) {
    if (list->duration_ms == duration_ms) return list.get();
  }
  lists_.push_back(std::make_unique<TimerList>(TimerList{duration_ms}));
  return lists_.back().get();
}

void TimerQueue::arm(Timer* timer, uint64_t now_ms, uint64_t duration_ms) {
  cancel(timer);
  TimerList* list = list_for(duration_ms);
  timer->deadline_ms_ = now_ms + duration_ms;
  timer->list_ = list;
  timer->prev_ = list->tail;
  timer->next_ = nullptr;
  if (list->tail != nullptr) {
    list->tail->next_ = timer;
  } else {
    list->head = timer;
  }
  list->tail = timer;
}

void TimerQueue::cancel(Timer* timer) {
  TimerList* list = timer->list_;
  if (list == nullptr) return;
  if (timer->prev_ != nullptr) {
    timer->prev_->next_ = timer->next_;
  } else {
    list->head = timer->next_;
  }
  if (timer->next_ != nullptr) {
    timer->next_->prev_ = timer->prev_;
  } else {
    list->tail = timer->prev_;
  }
  timer->prev_ = timer->next_ = nullptr;
  timer->list_ = nullptr;
}

int TimerQueue::wait_ms(uint64_t now_ms, int cap_ms) const {
  uint64_t wait = static_cast<uint64_t>(cap_ms);
  for (const auto& list : lists_) {
    if (list->head == nullptr) continue;
    uint64_t deadline = list->head->deadline_ms_;
    wait = std::min(wait, deadline > now_ms ? deadline - now_ms : 0);
  }
  return static_cast<int>(wait);
}

void TimerQueue::expire(uint64_t now_ms) {
  // Index loop: a callback may add a list (a new duration) while we iterate.
  for (size_t i = 0; i < lists_.size(); i++) {
    TimerList* list = lists_[i].get();
    // A callback may arm timers of this very list (at the tail, with a later
    // deadline), so re-read the head each time instead of walking next_.
    while (list->head != nullptr && list->head->deadline_ms_ <= now_ms) {
      Timer* timer = list->head;
      cancel(timer);
      timer->on_timer(now_ms);
    }
  }
}

}  // namespace fulcrum
