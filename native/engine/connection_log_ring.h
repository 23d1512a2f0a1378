// A single-producer, single-consumer ring of connection records: one per
// worker. The worker (producer) pushes a record when a connection ends; the
// log writer thread (consumer) takes them in batches. Neither ever waits on
// the other: a full ring refuses the record, and the worker counts it as
// dropped.
//
// Lock-free with two indices that only grow: the producer owns head_, the
// consumer tail_; each reads the other's with acquire and publishes its own
// with release, so a slot is never read before it is written, nor written
// again before it is read.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "connection_record.h"

namespace fulcrum {

class ConnectionLogRing {
 public:
  // capacity: rounded up to a power of two.
  explicit ConnectionLogRing(size_t capacity);
  ConnectionLogRing(const ConnectionLogRing&) = delete;
  ConnectionLogRing& operator=(const ConnectionLogRing&) = delete;

  // Producer (the worker thread). False when the ring is full.
  bool push(const ConnectionRecord& record);
  // Consumer (the writer thread). Copies up to `max` records into `out`,
  // oldest first; returns how many.
  size_t pop(ConnectionRecord* out, size_t max);
  size_t capacity() const { return mask_ + 1; }

 private:
  const size_t mask_;
  std::unique_ptr<ConnectionRecord[]> slots_;
  alignas(64) std::atomic<uint64_t> head_{0};  // next slot to write (producer)
  alignas(64) std::atomic<uint64_t> tail_{0};  // next slot to read (consumer)
};

}  // namespace fulcrum
