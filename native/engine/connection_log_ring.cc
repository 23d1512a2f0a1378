#include "connection_log_ring.h"

#include <algorithm>
#include <bit>

namespace fulcrum {

ConnectionLogRing::ConnectionLogRing(size_t capacity)
    : mask_(std::bit_ceil(std::max<size_t>(capacity, 2)) - 1), slots_(new ConnectionRecord[mask_ + 1]) {}

bool ConnectionLogRing::push(const ConnectionRecord& record) {
  const uint64_t head = head_.load(std::memory_order_relaxed);
  if (head - tail_.load(std::memory_order_acquire) > mask_) return false;
  slots_[head & mask_] = record;
  head_.store(head + 1, std::memory_order_release);
  return true;
}

size_t ConnectionLogRing::pop(ConnectionRecord* out, size_t max) {
  const uint64_t tail = tail_.load(std::memory_order_relaxed);
  const uint64_t available = head_.load(std::memory_order_acquire) - tail;
  const size_t count = static_cast<size_t>(std::min<uint64_t>(available, max));
  for (size_t i = 0; i < count; i++) out[i] = slots_[(tail + i) & mask_];
  tail_.store(tail + count, std::memory_order_release);
  return count;
}

}  // namespace fulcrum
