#include "sync_journal.h"

#include <algorithm>
#include <limits>

namespace fulcrum {

void SyncJournal::record(SyncKind kind, uint32_t service_slot, uint32_t backend_slot, uint64_t key_hash,
                         uint64_t now_ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (records_.size() >= capacity_) {
    dropped_++;
    return;
  }
  SyncRecord record;
  record.kind = static_cast<uint8_t>(kind);
  record.service_slot = service_slot;
  record.backend_slot = backend_slot;
  record.key_hash = key_hash;
  record.at_ms = now_ms;
  // The vector grows up to capacity once and keeps its storage across takes
  // (take() swaps in a vector of the same capacity).
  records_.push_back(record);
}

std::vector<SyncRecord> SyncJournal::take(uint64_t now_ms, uint64_t* dropped) {
  std::vector<SyncRecord> taken;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    taken.reserve(records_.capacity());
    taken.swap(records_);
    *dropped = dropped_;
    dropped_ = 0;
  }
  for (SyncRecord& record : taken) {
    const uint64_t age = now_ms > record.at_ms ? now_ms - record.at_ms : 0;
    record.age_ms = static_cast<uint32_t>(std::min<uint64_t>(age, std::numeric_limits<uint32_t>::max()));
    record.at_ms = 0;
  }
  return taken;
}

}  // namespace fulcrum
