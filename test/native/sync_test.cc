// Session sharing without sockets: the journal's bound and batching, sticky
// entries shared only when worth it, a peer's entry adopted unless a fresher
// one is known here, and Service::pick honouring a peer's UDP flow
// assignment. Run by engine_test's main().
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend_table.h"
#include "engine/clock.h"
#include "engine/service.h"
#include "engine/sticky_table.h"
#include "engine/sync_journal.h"

void check(bool ok, const std::string& what);

namespace {

using namespace fulcrum;

void test_journal_bound() {
  SyncJournal journal(4);
  for (uint64_t i = 1; i <= 6; i++) journal.record(SyncKind::kSticky, 1, 2, i, 1000);
  SyncTakeStats stats;
  std::vector<SyncRecord> taken = journal.take(1250, &stats);
  check(taken.size() == 4, "the journal keeps at most its capacity");
  check(stats.dropped == 2, "what overflowed is counted");
  check(taken[0].key_hash == 1 && taken[3].key_hash == 4, "records come out in order");
  check(taken[0].age_ms == 250 && taken[0].at_ms == 0, "age is filled in at take time");
  check(journal.take(1300, &stats).empty() && stats.dropped == 0, "a take empties the journal and its drop count");
  journal.record(SyncKind::kUdpFlow, 3, 4, 9, 1300);
  taken = journal.take(1300, &stats);
  check(taken.size() == 1 && taken[0].kind == 2 && taken[0].service_slot == 3 && taken[0].backend_slot == 4,
        "a record keeps kind and slots");
}

void test_sticky_sharing() {
  StickyTable table(64, 60'000);
  bool share = false;
  const uint64_t t0 = 10'000'000;
  table.remember(77, 1, t0, &share);
  check(share, "a new entry is worth sharing");
  table.remember(77, 1, t0 + 2000, &share);
  check(!share, "a refresh soon after is not");
  table.remember(77, 1, t0 + 15'000, &share);
  check(share, "a refresh in a later share interval (a quarter of the timeout) is, so the peer's copy stays alive");
  table.remember(77, 2, t0 + 16'000, &share);
  check(share, "a changed backend is");

  check(!table.adopt(88, 3, t0 + 16'000 - 61'000, t0 + 16'000), "a peer's entry older than the timeout is not adopted");
  check(table.adopt(88, 3, t0 + 15'000, t0 + 16'000), "a peer's live entry is adopted");
  check(table.lookup(88, t0 + 16'000) == 3, "and found");
  check(!table.adopt(77, 5, t0 + 10'000, t0 + 16'000), "an entry used here since the peer's stamp stays");
  check(table.lookup(77, t0 + 16'000) == 2, "with its backend");
  check(table.adopt(77, 5, t0 + 17'000, t0 + 17'000), "a fresher peer entry replaces it");
  check(table.lookup(77, t0 + 17'000) == 5, "with the peer's backend");
  check(!table.adopt(0, 1, t0, t0), "key 0 (free marker) is refused");
  check(!table.adopt(99, 1u << 20, t0, t0), "a slot beyond the table's 16 bits is refused");
}

// A dump part fills at most half the journal (live changes keep the other
// half), is flagged, ages from the entry's last use, and counts what did not
// fit apart from live overflow; a take reports parts still to come.
void test_journal_dump_bound() {
  SyncJournal journal(8);
  journal.record(SyncKind::kSticky, 1, 2, 100, 5000);
  journal.begin_dump(2);
  std::vector<SyncRecord> part;
  for (uint64_t i = 1; i <= 5; i++) part.push_back(make_sync_record(SyncKind::kUdpFlow, 3, 4, i << 48, 4000));
  check(journal.append_dump(part) == 3, "a dump part fills the journal only to half its capacity");
  SyncTakeStats stats;
  std::vector<SyncRecord> taken = journal.take(5000, &stats);
  check(taken.size() == 4 && stats.dump_dropped == 2 && stats.dropped == 0, "what did not fit is counted as dump_dropped");
  check(stats.dump_pending == 1, "one part is still to come");
  check(taken[0].flags == 0 && taken[1].flags == kSyncRecordDump && taken[3].flags == kSyncRecordDump,
        "live records are not flagged, dump records are");
  check(taken[1].age_ms == 1000 && taken[1].key_hash == (uint64_t{1} << 48), "a dump record ages from its entry's last use");
  std::vector<SyncRecord> empty;
  check(journal.append_dump(empty) == 0, "an empty part");
  taken = journal.take(5000, &stats);
  check(taken.empty() && stats.dump_pending == 0 && stats.dump_dropped == 0, "every part done; counts start over");
  for (uint64_t i = 1; i <= 8; i++) journal.record(SyncKind::kSticky, 1, 2, i, 5000);
  journal.begin_dump(1);
  check(journal.append_dump(part) == 0, "a full journal takes no dump records");
  journal.take(5000, &stats);
  check(stats.dump_dropped == 5 && stats.dropped == 0, "all counted");
}

void test_dump_range_and_visit() {
  check(in_dump_range(uint64_t{0x0001} << 48, 1, 2) && !in_dump_range(uint64_t{0x0002} << 48, 1, 2),
        "a range holds the keys whose top 16 bits are in [from, to)");
  check(in_dump_range(~uint64_t{0}, 0, kDumpBuckets) && !in_dump_range(~uint64_t{0}, 0, kDumpBuckets - 1),
        "the whole range holds the highest key");
  StickyTable table(64, 60'000);
  const uint64_t t0 = 10'000'000;
  table.remember(11, 1, t0 - 70'000);  // expired by t0
  table.remember(12, 2, t0 - 30'000);
  table.remember(13, 3, t0);
  std::vector<std::pair<uint64_t, uint32_t>> seen;
  uint64_t last_used_of_12 = 0;
  table.visit_live(t0, [&](uint64_t key, uint32_t slot, uint64_t last_used_ms) {
    seen.emplace_back(key, slot);
    if (key == 12) last_used_of_12 = last_used_ms;
  });
  std::sort(seen.begin(), seen.end());
  check(seen == std::vector<std::pair<uint64_t, uint32_t>>{{12, 2}, {13, 3}}, "visit_live sees exactly the live entries");
  check(last_used_of_12 == t0 - 30'000, "with their last use");
}

ServiceSpec udp_spec() {
  ServiceSpec spec;
  spec.slot = 0;
  spec.name = "game";
  spec.protocol = Protocol::kUdp;
  spec.picker.balance = Balance::kRoundRobin;
  spec.sync = true;
  for (uint32_t i = 0; i < 3; i++) {
    BackendSpec backend;
    backend.slot = 10 + i;
    parse_socket_address("127.0.0.1", static_cast<int>(9000 + i), &backend.address);
    spec.backends.push_back(backend);
  }
  return spec;
}

void test_adopted_pick() {
  BackendTable table;
  auto shared = std::make_shared<ServiceShared>();
  shared->journal = std::make_shared<SyncJournal>();
  shared->adopted = std::make_shared<StickyTable>(1024, 30'000);
  Service service(udp_spec(), &table, shared);
  const uint64_t now = monotonic_ms();
  ClientKey client;
  client.flow_hash = 0xabcdef;
  check(shared->adopted->adopt(client.flow_hash, 12, now, now), "a peer's flow is installed");
  int index = service.pick(client, nullptr, 0, now);
  check(index == 2, "a new flow with a peer's 5-tuple goes to the peer's backend");
  service.release(index);
  table.set_state(12, BackendState::kDown, now);
  index = service.pick(client, nullptr, 0, now);
  check(index >= 0 && index != 2, "a peer's backend that is down is passed over");
  service.release(index);
  ClientKey other;
  other.flow_hash = 0x1234;
  index = service.pick(other, nullptr, 0, now);
  check(index >= 0, "a 5-tuple no peer served is balanced as usual");
  service.release(index);
}

}  // namespace

void run_sync_tests() {
  test_journal_bound();
  test_journal_dump_bound();
  test_dump_range_and_visit();
  test_sticky_sharing();
  test_adopted_pick();
}
