// udp-pps: datagrams on F flows (one connected socket each), as fast as
// possible or paced to a rate. Pacing is by schedule, not by sleep length:
// the thread sends what is due by now (start + n / rate), in sendmmsg batches,
// then sleeps until the next datagram is due, so sleep overshoot is caught up
// in the next batch and the average rate stays exact.
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "client.h"
#include "protocol.h"

namespace fulcrum::bench {

namespace {
constexpr uint32_t kBatch = 32;

void sleep_ns(uint64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1000000000ull), static_cast<long>(ns % 1000000000ull)};
  nanosleep(&ts, nullptr);
}
}  // namespace

void run_udp_pps(ClientContext* context, uint32_t index, uint32_t count) {
  const ClientConfig& config = context->config;
  const std::vector<uint32_t> flows = context->units_of(index, count);
  if (flows.empty()) return;
  const double rate = config.rate == 0 ? 0.0
                                       : static_cast<double>(config.rate) * static_cast<double>(flows.size()) /
                                             static_cast<double>(config.flows);
  const size_t size = config.message_size;
  std::vector<uint8_t> buffers(kBatch * size, 0);
  std::vector<iovec> iovecs(kBatch);
  std::vector<mmsghdr> messages(kBatch);
  std::vector<uint64_t> next_seq(flows.size(), 0);
  uint64_t sent_total = 0;
  size_t turn = 0;
  const uint64_t start = context->start_ns;
  while (!context->stopping.load(std::memory_order_relaxed)) {
    uint32_t budget = kBatch;
    if (rate > 0) {
      const uint64_t now = now_ns();
      const auto due = static_cast<uint64_t>(static_cast<double>(now - start) * rate / 1e9);
      if (due <= sent_total) {
        const auto next_at = start + static_cast<uint64_t>(static_cast<double>(sent_total + 1) * 1e9 / rate);
        sleep_ns(std::min<uint64_t>(next_at > now ? next_at - now : 0, 10'000'000));
        continue;
      }
      budget = static_cast<uint32_t>(std::min<uint64_t>(due - sent_total, kBatch));
    }
    const size_t f = turn++ % flows.size();
    const uint32_t flow = flows[f];
    for (uint32_t i = 0; i < budget; i++) {
      uint8_t* p = buffers.data() + i * size;
      put_datagram_header(p, DatagramKind::kData, config.session, flow, next_seq[f] + i);
      iovecs[i] = {p, size};
      messages[i] = {};
      messages[i].msg_hdr.msg_iov = &iovecs[i];
      messages[i].msg_hdr.msg_iovlen = 1;
    }
    const int n = sendmmsg(context->unit_fds[flow], messages.data(), budget, 0);
    if (n < 0) {
      // ECONNREFUSED (an ICMP port unreachable from an earlier datagram),
      // ENOBUFS: counted; the schedule goes on.
      context->count_error(errno);
      if (rate > 0) sent_total += budget;  // keep the schedule: these are lost, not late
      else sleep_ns(100'000);
      continue;
    }
    next_seq[f] += static_cast<uint64_t>(n);
    sent_total += static_cast<uint64_t>(n);
    UnitCounters& counters = *context->units[flow];
    UnitCounters::add(counters.messages_sent, static_cast<uint64_t>(n));
    UnitCounters::add(counters.bytes_sent, static_cast<uint64_t>(n) * size);
  }
}

}  // namespace fulcrum::bench
