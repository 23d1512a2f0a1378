#include "event_sink.h"

namespace fulcrum {

bool EventSink::push(const Event& event) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.size() >= capacity_) {
      counters_->add_global(kEventsDropped, 1);
      return false;
    }
    was_empty = queue_.empty();
    queue_.push_back(event);
  }
  if (was_empty && wake_) wake_(this);
  return true;
}

std::vector<Event> EventSink::take() {
  std::vector<Event> batch;
  std::lock_guard<std::mutex> lock(mutex_);
  batch.swap(queue_);
  return batch;
}

}  // namespace fulcrum
