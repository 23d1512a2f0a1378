// The connection log without sockets: the per-worker ring (FIFO, refuses
// when full, one producer and one consumer thread at once losing nothing),
// the JSON and text forms of a record, the RFC 5424 header, and the stats'
// buckets. Run by engine_test's main().
#include <arpa/inet.h>
#include <sys/socket.h>

#include <string>
#include <thread>

#include "engine/connection_log_format.h"
#include "engine/connection_log_ring.h"
#include "engine/connection_stats.h"

void check(bool ok, const std::string& what);

namespace {

using namespace fulcrum;

ClientAddress v4(const char* host, uint16_t port) {
  ClientAddress address;
  address.family = AF_INET;
  address.port = port;
  inet_pton(AF_INET, host, address.bytes);
  return address;
}

void ring_tests() {
  ConnectionLogRing ring(4);
  check(ring.capacity() == 4, "ring: capacity is a power of two");
  ConnectionRecord record;
  for (uint32_t i = 0; i < 4; i++) {
    record.service_slot = i;
    check(ring.push(record), "ring: takes records up to its capacity");
  }
  check(!ring.push(record), "ring: refuses a record when full");
  ConnectionRecord out[8];
  check(ring.pop(out, 3) == 3 && out[0].service_slot == 0 && out[2].service_slot == 2, "ring: oldest first, at most max");
  check(ring.push(record), "ring: room again after a pop");
  check(ring.pop(out, 8) == 2 && out[0].service_slot == 3, "ring: the rest in order");
  check(ring.pop(out, 8) == 0, "ring: empty");

  // One producer, one consumer, concurrently: every record arrives once, in order.
  ConnectionLogRing shared(64);
  constexpr uint32_t kCount = 200000;
  std::thread producer([&] {
    ConnectionRecord r;
    for (uint32_t i = 0; i < kCount;) {
      r.service_slot = i;
      if (shared.push(r)) i++;
    }
  });
  uint32_t expected = 0;
  bool in_order = true;
  while (expected < kCount) {
    const size_t n = shared.pop(out, 8);
    for (size_t i = 0; i < n; i++) in_order = in_order && out[i].service_slot == expected++;
  }
  producer.join();
  check(in_order, "ring: concurrent producer and consumer, every record once and in order");
}

void format_tests() {
  ConnectionRecord r;
  r.kind = RecordKind::kTcpEnd;
  r.termination = Termination::kBackendReset;
  r.attempts = 2;
  r.worker = 1;
  r.established = true;
  r.start_us = 1000000;
  r.duration_us = 1234567;
  r.queue_us = 500;
  r.connect_us = 213;
  r.bytes_in = 912;
  r.bytes_out = 20480;
  r.client = v4("10.0.0.7", 57196);
  r.proxy_client = v4("192.0.2.1", 4000);
  r.backend = v4("10.0.1.5", 5432);
  const RecordLabels labels{"pg", "127.0.0.1:6432"};
  RecordClock clock;
  clock.realtime_offset_us = 1796660000000000 - 1000000;  // start = 2026-12-07T...
  std::string json;
  append_record_json(r, labels, clock, &json);
  check(json.find("\"type\":\"tcp\",\"event\":\"end\",\"service\":\"pg\",\"listen\":\"127.0.0.1:6432\","
                  "\"client\":\"10.0.0.7:57196\",\"proxy_client\":\"192.0.2.1:4000\",\"backend\":\"10.0.1.5:5432\","
                  "\"termination\":\"backend_reset\",\"queue_ms\":0.500,\"connect_ms\":0.213,\"attempts\":2,"
                  "\"duration_ms\":1234.567,\"bytes_in\":912,\"bytes_out\":20480,\"worker\":1}") != std::string::npos,
        "json: every field, in order: " + json);
  check(json.rfind("{\"time\":\"2026-12-07T", 0) == 0, "json: ISO time first: " + json);

  std::string text;
  append_record_text(r, labels, clock, &text);
  check(text.find(" tcp pg 10.0.0.7:57196 (proxy 192.0.2.1:4000) -> 127.0.0.1:6432 -> 10.0.1.5:5432 backend_reset "
                  "queue=0.500ms connect=0.213ms duration=1234.567ms attempts=2 in=912 out=20480") != std::string::npos,
        "text: one tcplog-like line: " + text);

  ConnectionRecord flow;
  flow.kind = RecordKind::kUdpEnd;
  flow.termination = Termination::kIdleTimeout;
  flow.datagrams_in = 3;
  flow.datagrams_out = 2;
  std::string udp;
  append_record_json(flow, labels, clock, &udp);
  check(udp.find("\"type\":\"udp\"") != std::string::npos && udp.find("\"backend\":null") != std::string::npos &&
            udp.find("\"datagrams_in\":3,\"datagrams_out\":2") != std::string::npos && udp.find("attempts") == std::string::npos,
        "json: a UDP flow has datagrams, no attempts, a null backend when none: " + udp);

  ConnectionRecord interim = r;
  interim.kind = RecordKind::kTcpInterim;
  std::string open;
  append_record_json(interim, labels, clock, &open);
  check(open.find("\"event\":\"interim\"") != std::string::npos && open.find("termination") == std::string::npos,
        "json: an interim record has no termination");

  std::string header;
  append_syslog_header(19, "host1", "fulcrum", 42, 1796660000000000, &header);
  check(header.rfind("<158>1 2026-12-07T", 0) == 0 && header.find("Z host1 fulcrum 42 connection - ") != std::string::npos,
        "syslog: RFC 5424 header (local3.info = 158): " + header);
}

void stats_tests() {
  ConnectionStats stats(2, 4);
  const ConnectionStatsLayout layout = stats.layout();
  ConnectionRecord r;
  r.service_slot = 1;
  r.termination = Termination::kClientClosed;
  r.established = true;
  r.connect_us = 100;    // the 100 us bucket (bounds are inclusive)
  r.duration_us = 5000;  // 10 ms bucket
  r.bytes_in = 100;
  r.bytes_out = 100;     // 256 B bucket
  stats.add(0, r);
  stats.add(1, r);
  ConnectionRecord refused;
  refused.service_slot = 1;
  refused.termination = Termination::kDenied;
  stats.add(1, refused);
  std::vector<uint64_t> sum(layout.words_per_service);
  stats.sum(1, sum.data());
  check(sum[layout.termination_offset + static_cast<size_t>(Termination::kClientClosed)] == 2, "stats: counts summed over workers");
  check(sum[layout.termination_offset + static_cast<size_t>(Termination::kDenied)] == 1, "stats: a refused client is counted by its state");
  const size_t connect = layout.histogram_offset[static_cast<size_t>(Histogram::kConnect)];
  check(sum[connect + 1] == 2 && sum[connect] == 0, "stats: 100 us falls in the 100 us bucket, not the 50 us one");
  check(sum[connect + std::size(kConnectBoundsUs) + 1] == 200, "stats: the connect sum");
  const size_t queue = layout.histogram_offset[static_cast<size_t>(Histogram::kQueue)];
  uint64_t queued = 0;
  for (size_t i = 0; i <= std::size(kConnectBoundsUs); i++) queued += sum[queue + i];
  check(queued == 0, "stats: a connection that never queued is not in the queue histogram");
  const size_t bytes = layout.histogram_offset[static_cast<size_t>(Histogram::kBytes)];
  check(sum[bytes + 1] == 2, "stats: 200 bytes in the 256 B bucket; the refused client in no histogram");
  stats.sum(2, sum.data());
  check(sum[layout.termination_offset] == 0, "stats: services apart");
}

}  // namespace

void run_connection_log_tests() {
  ring_tests();
  format_tests();
  stats_tests();
}
