// Every balancing algorithm against a synthetic BackendTable: the
// distributions each one promises, ties, retries, slow start, and Maglev's
// disruption when a backend leaves. Run by engine_test's main().
#include <arpa/inet.h>

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/backend_table.h"
#include "engine/flow_hash.h"
#include "engine/picker.h"

void check(bool ok, const std::string& what);

namespace {

using namespace fulcrum;

std::vector<PickerBackend> make_backends(const std::vector<uint32_t>& weights, uint32_t slow_start_ms = 0) {
  std::vector<PickerBackend> out;
  for (uint32_t i = 0; i < weights.size(); i++) {
    out.push_back(PickerBackend{i, i, weights[i], mix64(0xbacc0000 + i), slow_start_ms});
  }
  return out;
}

std::unique_ptr<Picker> picker_for(Balance balance, const std::vector<uint32_t>& weights, const BackendTable& table,
                                   uint32_t slow_start_ms = 0) {
  PickerOptions options;
  options.balance = balance;
  return make_picker(options, make_backends(weights, slow_start_ms), table);
}

int pick(Picker& picker, bool retry = false, uint64_t hash = 0, uint64_t now_ms = 1) {
  auto any = [](uint32_t) { return true; };
  PickFilter filter(any);
  return picker.pick(PickRequest{filter, retry, hash, hash, now_ms});
}

std::vector<int> counts(Picker& picker, int n, uint32_t backends) {
  std::vector<int> out(backends, 0);
  for (int i = 0; i < n; i++) {
    int index = pick(picker);
    if (index >= 0) out[static_cast<size_t>(index)]++;
  }
  return out;
}

void test_round_robin_and_retry() {
  auto table = std::make_unique<BackendTable>();
  auto rr = picker_for(Balance::kRoundRobin, {1, 1, 1}, *table);
  check(pick(*rr) == 0 && pick(*rr) == 1, "round robin: a then b");
  check(pick(*rr, true) == 2, "a retry sees the next turn");
  check(pick(*rr) == 2, "and that turn is still there for the next client");
  auto not_first = [](uint32_t i) { return i != 0; };
  PickFilter filter(not_first);
  check(rr->pick(PickRequest{filter, false, 0, 0, 1}) == 1, "a backend not allowed is skipped to the next in the cycle");
  auto zero = picker_for(Balance::kRoundRobin, {1, 0, 1}, *table);
  check(counts(*zero, 10, 3) == std::vector<int>({5, 0, 5}), "round robin: weight 0 takes nothing");
}

void test_nothing_allowed() {
  auto table = std::make_unique<BackendTable>();
  auto none = [](uint32_t) { return false; };
  PickFilter filter(none);
  for (Balance balance : {Balance::kRoundRobin, Balance::kWeighted, Balance::kLeastConn, Balance::kRandom,
                          Balance::kSource, Balance::kMaglev, Balance::kLeastTime, Balance::kLeastBandwidth,
                          Balance::kFirst}) {
    PickerOptions options;
    options.balance = balance;
    auto picker = make_picker(options, make_backends({1, 2, 3}), *table);
    check(picker->pick(PickRequest{filter, false, 7, 7, 1}) == -1,
          "nothing allowed gives -1 (algorithm " + std::to_string(static_cast<int>(balance)) + ")");
  }
}

void test_least_conn() {
  auto table = std::make_unique<BackendTable>();
  auto picker = picker_for(Balance::kLeastConn, {1, 1, 1}, *table);
  check(counts(*picker, 300, 3) == std::vector<int>({100, 100, 100}), "leastconn: idle equal backends share ties evenly");
  table->try_reserve(0, 0);
  table->try_reserve(0, 0);
  table->try_reserve(1, 0);
  check(pick(*picker) == 2, "leastconn: the backend with no connections wins");
  // Weights: 4 connections on a weight-4 backend (1 per unit) beat 2 on weight 1.
  auto weighted = picker_for(Balance::kLeastConn, {4, 1}, *table);
  table->try_reserve(0, 0);
  table->try_reserve(0, 0);  // slot 0: 4 active, weight 4; slot 1: 1 active, weight 1
  table->try_reserve(1, 0);  // slot 1: 2 active
  check(pick(*weighted) == 0, "leastconn: load is per unit of weight");
}

void test_random() {
  auto table = std::make_unique<BackendTable>();
  auto picker = picker_for(Balance::kRandom, {3, 1}, *table);
  // Power of two choices with idle backends: the first draw wins ties, so the
  // shares follow the weights: 3/4 ± 1 point over 100,000 (σ ≈ 0.14 point).
  const std::vector<int> c = counts(*picker, 100000, 2);
  check(c[0] > 74000 && c[0] < 76000, "random: weights 3,1 give 75% ± 1 point (got " + std::to_string(c[0]) + ")");
  // Loaded: the heavy one has many connections; two draws pick the light one whenever it is drawn.
  for (int i = 0; i < 30; i++) table->try_reserve(0, 0);
  const std::vector<int> loaded = counts(*picker, 100000, 2);
  // P(light among two draws) = 1 - (3/4)^2 = 43.75%.
  check(loaded[1] > 42000 && loaded[1] < 45500, "random: the less loaded wins when drawn (got " + std::to_string(loaded[1]) + ")");
}

void test_source() {
  auto table = std::make_unique<BackendTable>();
  auto picker = picker_for(Balance::kSource, {2, 1, 1}, *table);
  std::vector<int> c(3, 0);
  bool stable = true;
  for (uint64_t client = 1; client <= 40000; client++) {
    const uint64_t h = mix64(client);
    const int first = pick(*picker, false, h);
    stable = stable && pick(*picker, false, h) == first;
    c[static_cast<size_t>(first)]++;
  }
  check(stable, "source: the same client gets the same backend");
  check(c[0] > 19000 && c[0] < 21000 && c[1] > 9000 && c[2] > 9000, "source: weights 2,1,1 spread 50/25/25 ± 1 point");
}

// Random IPv4 5-tuples through the same hash as the data path.
std::vector<TestTuple> random_tuples(size_t n) {
  std::mt19937_64 random(42);
  std::vector<TestTuple> tuples(n);
  for (TestTuple& t : tuples) {
    t.client_ip = htonl(0x0a000000u | static_cast<uint32_t>(random() & 0xffffff));
    t.client_port = static_cast<uint16_t>(1024 + random() % 60000);
    t.local_ip = htonl(0x0a640001u);
    t.local_port = 5432;
  }
  return tuples;
}

void test_maglev() {
  const std::vector<PickerBackend> ten = make_backends(std::vector<uint32_t>(10, 1));
  const std::vector<uint32_t> table = maglev_table(ten, 65537);
  std::vector<int> entries(10, 0);
  for (uint32_t e : table) entries[e]++;
  bool even = true;
  for (int n : entries) even = even && n >= 6553 * 99 / 100 && n <= 6554 * 101 / 100;
  check(even, "maglev: 10 equal backends hold M/N entries each within 1%");

  const std::vector<TestTuple> tuples = random_tuples(100000);
  const std::vector<uint32_t> before = maglev_assign_for_test(ten, 65537, tuples);
  std::vector<PickerBackend> nine(ten.begin(), ten.end());
  nine.erase(nine.begin() + 3);  // remove backend 3; positions after it shift down
  const std::vector<uint32_t> after = maglev_assign_for_test(nine, 65537, tuples);
  size_t moved_others = 0, on_removed = 0;
  std::vector<int> share(10, 0);
  for (size_t i = 0; i < tuples.size(); i++) {
    share[before[i]]++;
    const uint32_t was = before[i];
    const uint32_t now = after[i] >= 3 ? after[i] + 1 : after[i];
    if (was == 3) {
      on_removed++;
    } else if (now != was) {
      moved_others++;
    }
  }
  std::printf("# maglev: of 100000 tuples, %zu were on the removed backend, %zu others moved (%.3f%%)\n", on_removed,
              moved_others, 100.0 * static_cast<double>(moved_others) / 100000.0);
  check(moved_others <= 1000, "maglev: removing one of 10 moves at most 1% of the other backends' tuples");
  bool spread = true;
  for (int n : share) spread = spread && n >= 9000 && n <= 11000;
  check(spread, "maglev: 100,000 tuples spread within 1 point of 10% each");

  const std::vector<uint32_t> weighted = maglev_table(make_backends({2, 1, 1}), 65537);
  std::vector<int> w(3, 0);
  for (uint32_t e : weighted) w[e]++;
  check(w[0] > 32440 && w[0] < 33100 && w[1] > 16220 && w[2] > 16220, "maglev: weights 2,1,1 hold 50/25/25% of the table");
  check(maglev_table(make_backends({0, 0}), 251).empty(), "maglev: all weights 0 give an empty table");
}

void test_least_time_and_bandwidth() {
  auto table = std::make_unique<BackendTable>();
  auto time = picker_for(Balance::kLeastTime, {1, 1}, *table);
  table->record_connect_time(0, 900);
  table->record_connect_time(1, 100);
  check(pick(*time) == 1, "least_time: the faster backend wins");
  for (int i = 0; i < 9; i++) table->try_reserve(1, 0);  // 100 µs x 10 = 1000 > 900 x 1
  check(pick(*time) == 0, "least_time: connect time is weighed by active connections");

  auto bandwidth = picker_for(Balance::kLeastBandwidth, {1, 1, 1}, *table);
  table->set_bytes_per_second(0, 5000000);
  table->set_bytes_per_second(1, 100);
  table->set_bytes_per_second(2, 2000);
  check(pick(*bandwidth) == 1, "least_bandwidth: the lowest byte rate wins");
}

void test_first() {
  auto table = std::make_unique<BackendTable>();
  auto picker = picker_for(Balance::kFirst, {1, 1, 1}, *table);
  check(pick(*picker) == 0 && pick(*picker) == 0, "first: always the first allowed");
  auto not_first = [](uint32_t i) { return i != 0; };
  PickFilter filter(not_first);
  check(picker->pick(PickRequest{filter, false, 0, 0, 1}) == 1, "first: the next in order when the first is full");
}

void test_slow_start() {
  auto table = std::make_unique<BackendTable>();
  table->set_state(0, BackendState::kDown, 1000);
  table->set_state(0, BackendState::kUp, 1000);  // back up at t = 1000 ms, ramp 10 s
  auto rr = picker_for(Balance::kRoundRobin, {1, 1}, *table, 10000);
  int early = 0, late = 0;
  for (int i = 0; i < 10000; i++) early += pick(*rr, false, 0, 2000) == 0;  // ramp 10%
  for (int i = 0; i < 10000; i++) late += pick(*rr, false, 0, 11000) == 0;  // full
  // Ramp 10%: backend 0 takes its turn 10% of the time, so about 5% of picks.
  check(early > 300 && early < 800, "slow start: 10% into the ramp, about 5% of round robin picks (got " + std::to_string(early) + ")");
  check(late == 5000, "slow start: after the ramp, exactly half");
  auto lc = picker_for(Balance::kLeastConn, {10, 10}, *table, 10000);
  check(table->effective_weight(0, 10, 10000, 6000) == 5, "slow start: half way, half the weight");
  // A worker whose loop-pass clock is behind the moment the backend came up.
  check(table->ramp_permille(0, 10000, 999) == 1 && table->effective_weight(0, 10, 10000, 999) == 1,
        "slow start: a clock a little behind the start of the ramp is its very start, not past its end");
  (void)lc;
}

}  // namespace

void run_picker_tests() {
  test_round_robin_and_retry();
  test_nothing_allowed();
  test_least_conn();
  test_random();
  test_source();
  test_maglev();
  test_least_time_and_bandwidth();
  test_first();
  test_slow_start();
}
