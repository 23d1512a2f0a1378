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
  // The vector grows up to capacity once and keeps its storage across takes
  // (take() swaps in a vector of the same capacity).
  records_.push_back(make_sync_record(kind, service_slot, backend_slot, key_hash, now_ms));
}

uint32_t SyncJournal::append_dump(std::vector<SyncRecord>& records) {
  uint32_t appended = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t limit = capacity_ / 2;
    const size_t room = records_.size() < limit ? limit - records_.size() : 0;
    appended = static_cast<uint32_t>(std::min(room, records.size()));
    for (uint32_t i = 0; i < appended; i++) {
      records[i].flags = kSyncRecordDump;
      records_.push_back(records[i]);
    }
    dump_dropped_ += records.size() - appended;
  }
  dump_pending_.fetch_sub(1, std::memory_order_release);
  return appended;
}

std::vector<SyncRecord> SyncJournal::take(uint64_t now_ms, SyncTakeStats* stats) {
  // Read first: a part counted done here has its records in the journal now.
  stats->dump_pending = dump_pending_.load(std::memory_order_acquire);
  std::vector<SyncRecord> taken;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    taken.reserve(records_.capacity());
    taken.swap(records_);
    stats->dropped = dropped_;
    stats->dump_dropped = dump_dropped_;
    dropped_ = 0;
    dump_dropped_ = 0;
  }
  for (SyncRecord& record : taken) {
    const uint64_t age = now_ms > record.at_ms ? now_ms - record.at_ms : 0;
    record.age_ms = static_cast<uint32_t>(std::min<uint64_t>(age, std::numeric_limits<uint32_t>::max()));
    record.at_ms = 0;
  }
  return taken;
}

}  // namespace fulcrum
