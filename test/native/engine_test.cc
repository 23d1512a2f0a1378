// Tests of the C++ engine as a plain library, without Node: the picker's
// cycles and retry rule, the timer queue's ordering, address parsing, and
// Engine::apply's promise that a failed apply changes nothing. Built with
// ASan and UBSan by CMake (-DFULCRUM_ENGINE_TESTS=ON) and run by ctest.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/address.h"
#include "engine/backend_table.h"
#include "engine/engine.h"
#include "engine/flow_hash.h"
#include "engine/listener.h"
#include "engine/picker.h"
#include "engine/timer_queue.h"

// Shared with picker_test.cc.
void run_picker_tests();
void run_udp_flow_table_tests();
void run_client_identity_tests();
void run_sync_tests();
void run_pg_cancel_tests();
void run_connection_log_tests();
void run_tcp_keepalive_tests();
void run_kernel_relay_tests();
void run_udp_kernel_policy_tests();
void run_udp_kernel_flows_tests();
int passed = 0;
int failed = 0;

void check(bool ok, const std::string& what) {
  if (ok) {
    passed++;
  } else {
    failed++;
    std::printf("not ok: %s\n", what.c_str());
  }
}

namespace {

std::string join(const std::vector<uint32_t>& values) {
  std::string text;
  for (uint32_t v : values) text += static_cast<char>('a' + v);
  return text;
}

void test_smooth_weighted_cycle() {
  using fulcrum::smooth_weighted_cycle;
  check(join(smooth_weighted_cycle({5, 1, 1})) == "aabacaa", "5,1,1 is nginx's a a b a c a a");
  check(join(smooth_weighted_cycle({3, 2, 1})) == "abacba", "3,2,1 gives a b a c b a");
  check(join(smooth_weighted_cycle({1, 1, 1})) == "abc", "equal weights rotate");
  check(smooth_weighted_cycle({256, 1}).size() == 257, "a cycle has one entry per unit of weight");
}

class RecordingTimer : public fulcrum::Timer {
 public:
  RecordingTimer(std::vector<int>* log, int id, std::function<void(uint64_t)> then = {})
      : log_(log), id_(id), then_(std::move(then)) {}

 protected:
  void on_timer(uint64_t now_ms) override {
    log_->push_back(id_);
    if (then_) then_(now_ms);
  }

 private:
  std::vector<int>* log_;
  int id_;
  std::function<void(uint64_t)> then_;
};

void test_timer_queue() {
  fulcrum::TimerQueue timers;
  std::vector<int> fired;
  RecordingTimer a(&fired, 1), b(&fired, 2), c(&fired, 3), d(&fired, 4);
  check(timers.wait_ms(0, 1000) == 1000, "no timers: wait the cap");
  timers.arm(&a, 0, 10);
  timers.arm(&b, 0, 5);
  timers.arm(&c, 1, 10);
  timers.arm(&d, 2, 10);
  check(timers.wait_ms(0, 1000) == 5, "the nearest deadline decides the wait");
  timers.cancel(&d);
  check(!d.armed(), "cancel disarms");
  timers.expire(4);
  check(fired.empty(), "nothing fires early");
  timers.expire(10);
  check(fired == std::vector<int>({1, 2}), "deadlines 5 and 10 fire at 10; 11 waits");
  timers.arm(&a, 10, 10);  // re-arm moves a behind c
  timers.expire(11);
  check(fired == std::vector<int>({1, 2, 3}), "c fires at 11");
  timers.expire(20);
  check(fired == std::vector<int>({1, 2, 3, 1}), "re-armed a fires at its new deadline");

  // A callback that, while the queue is expiring, arms a timer of a new
  // duration (a new list) and one of its own list: neither fires early.
  fulcrum::TimerQueue queue;
  std::vector<int> log;
  RecordingTimer late(&log, 9);
  RecordingTimer same_list(&log, 8);
  RecordingTimer first(&log, 7, [&](uint64_t now) {
    queue.arm(&late, now, 77);
    queue.arm(&same_list, now, 5);
  });
  queue.arm(&first, 0, 5);
  queue.expire(5);
  check(log == std::vector<int>({7}), "timers armed during expire wait for their own deadline");
  queue.expire(82);
  check(log == std::vector<int>({7, 8, 9}), "then fire in deadline order");
}

void test_addresses() {
  fulcrum::SocketAddress address;
  check(fulcrum::parse_socket_address("127.0.0.1", 80, &address) == 0, "IPv4 parses");
  check(fulcrum::format_socket_address(address) == "127.0.0.1:80", "IPv4 formats");
  check(fulcrum::socket_port(address) == 80, "port reads back");
  check(fulcrum::parse_socket_address("::1", 6432, &address) == 0, "IPv6 parses");
  check(fulcrum::format_socket_address(address) == "[::1]:6432", "IPv6 formats with brackets");
  check(fulcrum::parse_socket_address("db.example", 80, &address) == -EINVAL, "names are not resolved");
  check(fulcrum::parse_socket_address("127.0.0.1", 65536, &address) == -EINVAL, "port range is checked");
  check(fulcrum::parse_socket_address("::ffff:127.0.0.1", 7002, &address) == 0 &&
            fulcrum::format_socket_address(address) == "127.0.0.1:7002",
        "an IPv4-mapped address formats as the IPv4 address (a dual-stack listener's IPv4 client)");
}

// An IPv4 client through a dual-stack [::] listener (::ffff:a.b.c.d) hashes as
// it does through an IPv4 listener: source balancing, sticky and sync agree.
void test_mapped_hashes() {
  fulcrum::SocketAddress v4;
  fulcrum::SocketAddress mapped;
  fulcrum::SocketAddress v6;
  fulcrum::parse_socket_address("192.0.2.7", 40000, &v4);
  fulcrum::parse_socket_address("::ffff:192.0.2.7", 40000, &mapped);
  fulcrum::parse_socket_address("2001:db8::7", 40000, &v6);
  check(fulcrum::hash_source(mapped.storage) == fulcrum::hash_source(v4.storage), "a mapped client's source hash is its IPv4 one");
  check(fulcrum::hash_source(v6.storage) != fulcrum::hash_source(v4.storage), "a real IPv6 client hashes apart");
  fulcrum::SocketAddress local;
  fulcrum::parse_socket_address("10.0.0.1", 80, &local);
  check(fulcrum::hash_five_tuple(mapped.storage, local.storage, IPPROTO_TCP) ==
            fulcrum::hash_five_tuple(v4.storage, local.storage, IPPROTO_TCP),
        "and so is its 5-tuple hash");
}

// IPV6_V6ONLY is set explicitly both ways, whatever net.ipv6.bindv6only says.
void test_dual_stack_listener() {
  fulcrum::SocketAddress any6;
  fulcrum::parse_socket_address("::", 0, &any6);
  for (bool ipv6_only : {false, true}) {
    int fd = fulcrum::open_tcp_listener(any6, false, ipv6_only);
    int value = -1;
    socklen_t length = sizeof value;
    check(fd >= 0 && getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &value, &length) == 0 && value == (ipv6_only ? 1 : 0),
          ipv6_only ? "ipv6_only: IPV6_V6ONLY is 1" : "dual-stack: IPV6_V6ONLY is 0");
    if (fd >= 0) close(fd);
  }
}

// A backend's peak: the most connections reserved at once, kept when they end, reset with the slot.
void test_backend_peak() {
  auto table = std::make_unique<fulcrum::BackendTable>();
  for (int i = 0; i < 3; i++) table->try_reserve(5, 0);
  table->release(5);
  table->release(5);
  check(table->try_reserve(5, 2) && table->active(5) == 2 && table->peak(5) == 3, "the peak outlives the connections");
  check(!table->try_reserve(5, 2) && table->peak(5) == 3, "a refused reservation raises nothing");
  table->reset(5);
  check(table->peak(5) == 0, "a slot handed to a new backend starts with no peak");
}

// A port that is bound (without SO_REUSEPORT) by this process, or 0.
int bind_port(int* fd_out) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 || listen(fd, 1) < 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) < 0) {
    return 0;
  }
  *fd_out = fd;
  return ntohs(address.sin_port);
}

bool can_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  close(fd);
  return ok;
}

fulcrum::ServiceSpec service(const std::string& name, uint32_t slot, int listen_port, int backend_port) {
  fulcrum::ServiceSpec spec;
  spec.name = name;
  spec.slot = slot;
  fulcrum::parse_socket_address("127.0.0.1", listen_port, &spec.listen);
  fulcrum::BackendSpec backend;
  backend.slot = slot;
  fulcrum::parse_socket_address("127.0.0.1", backend_port, &backend.address);
  spec.backends.push_back(backend);
  return spec;
}

bool wait_for_generation(const fulcrum::Engine& engine, uint64_t generation) {
  for (int i = 0; i < 2000; i++) {
    bool all = true;
    for (uint32_t w = 0; w < engine.worker_count(); w++) {
      // Read through the worker's block: the same words JS reads.
      auto* words = static_cast<std::atomic<uint64_t>*>(engine.counters()->data());
      uint64_t applied = words[fulcrum::kLineWords + w * fulcrum::kWorkerBlockWords + fulcrum::kAppliedGeneration].load();
      all = all && applied >= generation;
    }
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

void test_engine_apply() {
  std::unique_ptr<fulcrum::Engine> engine;
  fulcrum::EngineOptions options;
  options.workers = 2;
  check(fulcrum::Engine::create(std::move(options), &engine) == 0, "engine starts with 2 workers");
  if (!engine) return;

  int busy_fd = -1, free_fd = -1;
  const int busy = bind_port(&busy_fd);
  const int free_port = bind_port(&free_fd);
  close(free_fd);  // free again; the engine takes it below
  fulcrum::ApplyFailure failure;
  uint64_t generation = 0;

  check(engine->apply({service("good", 0, free_port, 1)}, &failure, &generation) == 0, "a service binds");
  check(generation == 1 && wait_for_generation(*engine, 1), "every worker reports generation 1");
  check(can_connect(free_port), "and accepts connections");

  int result = engine->apply({service("good", 0, free_port, 1), service("clash", 1, busy, 1)}, &failure, &generation);
  check(result == -EADDRINUSE, "a port in use fails the whole apply with -EADDRINUSE");
  check(failure.message == "bind 127.0.0.1:" + std::to_string(busy) + " for service clash",
        "naming what failed: " + failure.message);
  check(failure.service == "clash", "and which service");
  check(generation == 1, "no new generation");
  check(can_connect(free_port), "the running service still accepts");

  result = engine->apply({service("a", 0, free_port, 1), service("b", 1, free_port, 1)}, &failure, &generation);
  check(result == -EADDRINUSE, "two services on one address are refused");
  result = engine->apply({service("zero", 0, 0, 1)}, &failure, &generation);
  check(result == -EINVAL, "listen port 0 is refused (each worker would get its own port)");

  check(engine->apply({}, &failure, &generation) == 0 && wait_for_generation(*engine, generation),
        "an empty snapshot applies");
  check(!can_connect(free_port), "and its listeners are closed by then");
  check(engine->set_backend_state(fulcrum::kMaxBackends, fulcrum::BackendState::kDown) == -EINVAL,
        "a backend slot out of range is refused");
  engine->stop();
  engine->stop();
  check(engine->stopped(), "stop is idempotent");
  check(engine->apply({}, &failure, &generation) == -ESHUTDOWN, "a stopped engine refuses apply");
  close(busy_fd);
}

// The listen-address lock and the upgrade's handover between two engines (as
// two processes would be): a second engine cannot bind a port the first
// listens on, but adopts the first one's sockets (dup'd, as SCM_RIGHTS does),
// and those keep accepting after the first engine closes its copies.
void test_engine_handover() {
  std::unique_ptr<fulcrum::Engine> first, second;
  fulcrum::EngineOptions options;
  options.workers = 2;
  check(fulcrum::Engine::create(std::move(options), &first) == 0, "handover: the first engine starts");
  fulcrum::EngineOptions more;
  more.workers = 3;  // one more worker than sockets handed over: it joins the group
  check(fulcrum::Engine::create(std::move(more), &second) == 0, "handover: the second engine starts");
  if (!first || !second) return;
  int fd = -1;
  const int port = bind_port(&fd);
  close(fd);
  fulcrum::ApplyFailure failure;
  uint64_t generation = 0;
  check(first->apply({service("web", 0, port, 1)}, &failure, &generation) == 0, "handover: the first engine binds");
  check(wait_for_generation(*first, generation), "handover: first applied");

  int result = second->apply({service("web", 0, port, 1)}, &failure, &generation);
  check(result == -EADDRINUSE, "lock: a second engine on the same address gets -EADDRINUSE, not a share of the group");
  check(failure.message == "bind 127.0.0.1:" + std::to_string(port) + " for service web", "lock: " + failure.message);
  // The first engine moving its own listener within the port is not refused.
  fulcrum::ServiceSpec wildcard = service("web", 0, port, 1);
  check(fulcrum::parse_socket_address("0.0.0.0", port, &wildcard.listen) == 0, "wildcard address parses");
  check(first->apply({wildcard}, &failure, &generation) == 0 && wait_for_generation(*first, generation),
        "lock: a reload from 127.0.0.1 to 0.0.0.0 on the same port still applies");
  check(first->apply({service("web", 0, port, 1)}, &failure, &generation) == 0 && wait_for_generation(*first, generation),
        "and back");

  auto listeners = first->listener_fds();
  check(listeners.size() == 1 && listeners[0].second.size() == 2, "handover: one listener key, one fd per worker");
  for (auto& [key, fds] : listeners) {
    std::vector<int> copies;
    for (int original : fds) copies.push_back(dup(original));
    check(second->adopt_listeners(key, copies) == 0, "handover: " + key + " adopted");
  }
  const int refused = dup(listeners[0].second[0]);
  check(second->adopt_listeners(listeners[0].first, {refused}) == -EINVAL, "handover: a key adopted twice is refused");
  close(refused);  // a refused adoption leaves the fd with the caller
  check(second->adopt_listeners("tcp 127.0.0.1:1", {dup(listeners[0].second[0])}) == 0, "handover: an unused key");
  check(second->apply({service("web", 0, port, 1)}, &failure, &generation) == 0, "handover: the second engine applies without binding");
  check(wait_for_generation(*second, generation), "handover: second applied");
  check(first->apply({}, &failure, &generation) == 0 && wait_for_generation(*first, generation), "handover: the first closes its listeners");
  bool all = true;
  for (int i = 0; i < 50; i++) all = all && can_connect(port);
  check(all, "handover: the handed-over sockets accept after the first engine closed its copies");
  second->stop();
  check(!can_connect(port), "handover: stopped, the port is closed (every socket, the unused adopted one too)");
  first->stop();
}

}  // namespace

// Engine::install_sync honours only records of a running service with sync
// whose backend it has, into the right table; take_sync hands back what the
// data path recorded.
void test_engine_sync() {
  std::unique_ptr<fulcrum::Engine> engine;
  fulcrum::EngineOptions options;
  options.workers = 1;
  if (fulcrum::Engine::create(std::move(options), &engine) != 0) return check(false, "engine starts");
  int fd = -1;
  const int port = bind_port(&fd);
  close(fd);
  fulcrum::ServiceSpec game = service("game", 3, port, 1);
  game.protocol = fulcrum::Protocol::kUdp;
  game.idle_timeout_ms = 30000;  // a UDP flow always has one (0 is TCP's "never")
  game.sync = true;
  game.backends[0].slot = 7;
  fulcrum::ServiceSpec web = service("web", 4, 0, 1);
  fulcrum::parse_socket_address("127.0.0.1", bind_port(&fd), &web.listen);
  close(fd);
  web.sticky.enabled = true;  // sticky, but without sync
  fulcrum::ApplyFailure failure;
  uint64_t generation = 0;
  check(engine->apply({game, web}, &failure, &generation) == 0, "a sync service applies");
  auto record = [](uint8_t kind, uint32_t service_slot, uint32_t backend_slot) {
    fulcrum::SyncRecord r;
    r.kind = kind;
    r.service_slot = service_slot;
    r.backend_slot = backend_slot;
    r.key_hash = 0x1234;
    return r;
  };
  const std::vector<fulcrum::SyncRecord> records = {
      record(2, 3, 7),   // a UDP flow of game: installed
      record(2, 3, 8),   // a backend game does not have
      record(2, 9, 7),   // no service in slot 9
      record(1, 3, 7),   // sticky, but game has no sticky table
      record(1, 4, 4),   // web is sticky but not synced
      record(5, 3, 7),   // an unknown kind
  };
  check(engine->install_sync(records.data(), records.size()) == 1, "only the valid record of a synced service is installed");
  fulcrum::SyncTakeStats stats;
  stats.dropped = 99;
  check(engine->take_sync(&stats).empty() && stats.dropped == 0, "installing records nothing for peers (no echo)");
  engine->stop();
  check(engine->install_sync(records.data(), records.size()) == 0, "a stopped engine installs nothing");
}

// Engine::dump_sync: the live entries of sync services (sticky and adopted
// UDP assignments here; the workers' own flows are covered with real
// datagrams in test/engine/sync-dump.test.ts), only those in the key range asked,
// flagged; every worker answers its part.
void test_engine_dump() {
  std::unique_ptr<fulcrum::Engine> engine;
  fulcrum::EngineOptions options;
  options.workers = 2;
  if (fulcrum::Engine::create(std::move(options), &engine) != 0) return check(false, "engine starts");
  int fd = -1;
  fulcrum::ServiceSpec game = service("game", 3, 0, 1);
  fulcrum::parse_socket_address("127.0.0.1", bind_port(&fd), &game.listen);
  close(fd);
  game.protocol = fulcrum::Protocol::kUdp;
  game.idle_timeout_ms = 30000;  // a UDP flow always has one (0 is TCP's "never")
  game.sync = true;
  fulcrum::ServiceSpec web = service("web", 4, 0, 1);
  fulcrum::parse_socket_address("127.0.0.1", bind_port(&fd), &web.listen);
  close(fd);
  web.sticky.enabled = true;
  web.sync = true;
  fulcrum::ApplyFailure failure;
  uint64_t generation = 0;
  check(engine->apply({game, web}, &failure, &generation) == 0, "two sync services apply");
  auto record = [](uint8_t kind, uint32_t service_slot, uint32_t backend_slot, uint64_t key) {
    fulcrum::SyncRecord r;
    r.kind = kind;
    r.service_slot = service_slot;
    r.backend_slot = backend_slot;
    r.key_hash = key;
    r.age_ms = 5000;
    return r;
  };
  const uint64_t low = uint64_t{0x0010} << 48 | 1;
  const uint64_t high = uint64_t{0xff00} << 48 | 2;
  const std::vector<fulcrum::SyncRecord> installed = {record(2, 3, 3, low), record(1, 4, 4, high)};
  check(engine->install_sync(installed.data(), installed.size()) == 2, "a UDP assignment and a sticky entry installed");

  auto take_all = [&](std::vector<fulcrum::SyncRecord>* out) {
    fulcrum::SyncTakeStats stats;
    for (int i = 0; i < 2000; i++) {
      std::vector<fulcrum::SyncRecord> taken = engine->take_sync(&stats);
      out->insert(out->end(), taken.begin(), taken.end());
      if (stats.dump_pending == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  };
  uint32_t appended = 99;
  check(engine->dump_sync(0, fulcrum::kDumpBuckets, &appended) == 0 && appended == 2, "a full-range dump appends both entries");
  std::vector<fulcrum::SyncRecord> dumped;
  check(take_all(&dumped), "both workers answer their part");
  std::sort(dumped.begin(), dumped.end(), [](const auto& a, const auto& b) { return a.key_hash < b.key_hash; });
  check(dumped.size() == 2, "exactly the two live entries (the workers have no flows)");
  if (dumped.size() == 2) {
    check(dumped[0].kind == 2 && dumped[0].service_slot == 3 && dumped[0].backend_slot == 3 && dumped[0].key_hash == low,
          "the adopted UDP assignment, as a UDP flow");
    check(dumped[1].kind == 1 && dumped[1].service_slot == 4 && dumped[1].backend_slot == 4 && dumped[1].key_hash == high,
          "the sticky entry");
    check(dumped[0].flags == fulcrum::kSyncRecordDump && dumped[1].flags == fulcrum::kSyncRecordDump, "both flagged");
    check(dumped[1].age_ms >= 5000 && dumped[1].age_ms < 7000, "aged from the peer's last use (one-second resolution)");
  }
  dumped.clear();
  check(engine->dump_sync(0x0011, 0xff00, &appended) == 0 && appended == 0, "a range holding neither appends nothing");
  check(take_all(&dumped) && dumped.empty(), "and the workers add nothing");
  check(engine->dump_sync(0xff00, 0xff01, &appended) == 0 && appended == 1, "a one-bucket range holds the high key");
  dumped.clear();
  take_all(&dumped);
  check(engine->dump_sync(5, 5, &appended) == -EINVAL && engine->dump_sync(0, fulcrum::kDumpBuckets + 1, &appended) == -EINVAL,
        "an empty or oversized range is refused");
  game.sync = false;
  web.sync = false;
  check(engine->apply({game, web}, &failure, &generation) == 0, "sync off");
  check(engine->dump_sync(0, fulcrum::kDumpBuckets, &appended) == 0 && appended == 0, "a service without sync dumps nothing");
  take_all(&dumped);
  engine->stop();
  check(engine->dump_sync(0, fulcrum::kDumpBuckets, &appended) == -ESHUTDOWN, "a stopped engine refuses");
}

int main() {
  test_smooth_weighted_cycle();
  run_picker_tests();
  run_udp_flow_table_tests();
  run_client_identity_tests();
  run_sync_tests();
  run_pg_cancel_tests();
  run_connection_log_tests();
  test_timer_queue();
  test_addresses();
  test_mapped_hashes();
  test_dual_stack_listener();
  test_backend_peak();
  test_engine_apply();
  test_engine_handover();
  test_engine_sync();
  test_engine_dump();
  run_tcp_keepalive_tests();
  run_kernel_relay_tests();
  run_udp_kernel_policy_tests();
  run_udp_kernel_flows_tests();
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
