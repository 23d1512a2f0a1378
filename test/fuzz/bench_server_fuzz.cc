// libFuzzer target: `fulcrum bench server` (native/bench/server.cc) as a peer
// sees it. The server runs in this process on 127.0.0.1 (one worker thread,
// instrumented like the rest, so coverage and ASan/UBSan reach it); each input
// is sent once as the whole of a TCP connection (then FIN) and once as a UDP
// datagram, to the port any client can reach. What this covers beyond
// bench_frame: the frame loop (process_frames), HELLO and its roles, RESULTS,
// the ERROR-then-drain refusal, the data phases and the datagram checks.
//
// The reply must be byte for byte what docs/bench-protocol.md says, computed
// here by a small model of the protocol (expected_tcp_reply):
//   - fewer than 8 bytes, or a frame cut short: no reply, the server closes;
//   - a bad header, a first frame that is not HELLO, a bad HELLO: one ERROR
//     frame with the rule's code and "fulcrum bench server: ..." and nothing more;
//   - HELLO control: SESSION (12 bytes: id != 0, 256 streams, 1024 flows), then
//     for each whole RESULTS_REQUEST a RESULTS of a fresh session (no streams,
//     no flows), until an ERROR for the first frame that is not one;
//   - HELLO sink/source: ERROR unknown session (no session is open);
//   - HELLO echo: the rest of the input; echo-once N: its first N bytes;
//   - a UDP echo request comes back unchanged; every datagram is counted
//     once as malformed, unknown-session or echoed, as the rules say.
// A reply that does not come within 5 s is a hang and fails the input.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../../native/bench/protocol.h"
#include "../../native/bench/server.h"
#include "../../native/bench/socket_util.h"
#include "fuzz_check.h"

namespace bench = fulcrum::bench;
using Bytes = std::vector<uint8_t>;

namespace {

constexpr int kReplyTimeoutMs = 5000;

bench::Server* server = nullptr;  // never destroyed: lives as long as the fuzzer
bench::Endpoint target;
int udp_fd = -1;

void start_server() {
  bench::ServerConfig config;
  config.host = "127.0.0.1";
  config.port = 0;
  config.threads = 1;
  std::unique_ptr<bench::Server> created;
  FUZZ_CHECK(bench::Server::create(config, &created) == 0);
  server = created.release();
  FUZZ_CHECK(bench::make_endpoint("127.0.0.1", server->port(), &target) == 0);
  udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(udp_fd >= 0 && connect(udp_fd, target.get(), target.length) == 0);
  timeval timeout{kReplyTimeoutMs / 1000, 0};
  FUZZ_CHECK(setsockopt(udp_fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == 0);
}

// One piece of the expected reply: exact bytes, or an ERROR frame with a code.
struct Expected {
  Bytes exact;             // bytes that must come first, in this order
  int error_code = 0;      // then, when non-zero, one ERROR frame with this code and nothing after
  bool session_first = false;  // exact is preceded by a SESSION frame (id unknown in advance)
  bool may_be_cut = false;     // the server closes with input unread: a reset may cut the reply
};

void append_frame(Bytes* out, bench::FrameType type, const Bytes& payload) {
  uint8_t header[bench::kFrameHeaderSize];
  bench::put_frame_header(header, type, static_cast<uint32_t>(payload.size()));
  out->insert(out->end(), header, header + sizeof header);
  out->insert(out->end(), payload.begin(), payload.end());
}

// What the server must answer to a connection that sends `in`, then FIN.
Expected expected_tcp_reply(const uint8_t* in, size_t size) {
  Expected e;
  if (size < bench::kFrameHeaderSize) return e;
  bench::FrameHeader header{};
  std::string why;
  const int code = bench::parse_frame_header(in, &header, &why);
  if (code != 0) {
    e.error_code = code;
    return e;
  }
  if (size < bench::kFrameHeaderSize + header.length) return e;  // waits for the rest; EOF closes
  if (header.type != bench::FrameType::kHello) {
    e.error_code = static_cast<int>(bench::ErrorCode::kBadType);
    return e;
  }
  if (header.length != 12) {
    e.error_code = static_cast<int>(bench::ErrorCode::kBadLength);
    return e;
  }
  const uint8_t role = in[8];
  const uint32_t argument = bench::get_u32(in + 16);
  const uint8_t* rest = in + 20;
  size_t left = size - 20;
  switch (role) {
    case 1: {  // control
      e.session_first = true;
      while (left >= bench::kFrameHeaderSize) {
        const int bad = bench::parse_frame_header(rest, &header, &why);
        if (bad != 0) {
          e.error_code = bad;
          return e;
        }
        if (left < bench::kFrameHeaderSize + header.length) return e;
        if (header.type != bench::FrameType::kResultsRequest) {
          e.error_code = static_cast<int>(bench::ErrorCode::kBadType);
          return e;
        }
        if (header.length != 0) {
          e.error_code = static_cast<int>(bench::ErrorCode::kBadLength);
          return e;
        }
        append_frame(&e.exact, bench::FrameType::kResults, Bytes(8, 0));  // 0 streams, 0 flows
        rest += bench::kFrameHeaderSize;
        left -= bench::kFrameHeaderSize;
      }
      return e;
    }
    case 2:
    case 3:  // sink, source: the session id cannot be one the server handed out
      e.error_code = static_cast<int>(bench::ErrorCode::kUnknownSession);
      return e;
    case 4:  // echo
      e.exact.assign(rest, rest + left);
      return e;
    case 5:  // echo once
      if (argument == 0 || argument > bench::kMaxFramePayload) {
        e.error_code = static_cast<int>(bench::ErrorCode::kBadLength);
        return e;
      }
      e.exact.assign(rest, rest + std::min<size_t>(left, argument));
      e.may_be_cut = left > argument;
      return e;
    default:
      e.error_code = static_cast<int>(bench::ErrorCode::kBadRole);
      return e;
  }
}

// Sends `in`, then FIN; reads until the server closes. *reset: it reset.
Bytes exchange_tcp(const uint8_t* in, size_t size, bool* reset) {
  const int fd = bench::connect_tcp(target, kReplyTimeoutMs);
  FUZZ_CHECK(fd >= 0);
  FUZZ_CHECK(size == 0 || bench::write_all(fd, in, size) == 0);
  FUZZ_CHECK(shutdown(fd, SHUT_WR) == 0);
  Bytes reply;
  *reset = false;
  uint8_t buffer[16 * 1024];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int ready = poll(&p, 1, kReplyTimeoutMs);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      std::fprintf(stderr, "the server neither answered nor closed within %d ms\n", kReplyTimeoutMs);
      std::abort();
    }
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      reply.insert(reply.end(), buffer, buffer + n);
      FUZZ_CHECK(reply.size() <= 1024 * 1024);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      FUZZ_CHECK(errno == ECONNRESET);
      *reset = true;
    }
    break;
  }
  linger off{1, 0};  // no TIME_WAIT left behind by hundreds of thousands of runs
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof off);
  close(fd);
  return reply;
}

void check_error_frame(const uint8_t* p, size_t size, int code) {
  FUZZ_CHECK(size >= bench::kFrameHeaderSize + 2);
  bench::FrameHeader header{};
  std::string why;
  FUZZ_CHECK(bench::parse_frame_header(p, &header, &why) == 0);
  FUZZ_CHECK(header.type == bench::FrameType::kError);
  FUZZ_CHECK(header.length == size - bench::kFrameHeaderSize);  // one frame, nothing after
  FUZZ_CHECK(bench::get_u16(p + 8) == code);
  static const char kPrefix[] = "fulcrum bench server: ";
  FUZZ_CHECK(size - 10 > sizeof kPrefix - 1 && std::memcmp(p + 10, kPrefix, sizeof kPrefix - 1) == 0);
}

void check_tcp(const uint8_t* in, size_t size) {
  bool reset = false;
  const Bytes reply = exchange_tcp(in, size, &reset);
  const Expected e = expected_tcp_reply(in, size);
  size_t at = 0;
  if (e.session_first) {
    FUZZ_CHECK(reply.size() >= bench::kFrameHeaderSize + 12);
    bench::FrameHeader header{};
    std::string why;
    FUZZ_CHECK(bench::parse_frame_header(reply.data(), &header, &why) == 0);
    if (header.type == bench::FrameType::kError) {  // kBusy is the only refusal of a control HELLO
      check_error_frame(reply.data(), reply.size(), static_cast<int>(bench::ErrorCode::kBusy));
      return;
    }
    FUZZ_CHECK(header.type == bench::FrameType::kSession && header.length == 12);
    FUZZ_CHECK(bench::get_u32(reply.data() + 8) != 0);
    FUZZ_CHECK(bench::get_u32(reply.data() + 12) == bench::kMaxStreams);
    FUZZ_CHECK(bench::get_u32(reply.data() + 16) == bench::kMaxFlows);
    at = bench::kFrameHeaderSize + 12;
  }
  if (e.may_be_cut && reset) {
    // Only a prefix of the echo can be required when a reset may have cut it.
    FUZZ_CHECK(reply.size() - at <= e.exact.size());
    FUZZ_CHECK(std::memcmp(reply.data() + at, e.exact.data(), reply.size() - at) == 0);
    return;
  }
  FUZZ_CHECK(!reset);
  FUZZ_CHECK(reply.size() - at >= e.exact.size());
  FUZZ_CHECK(e.exact.empty() || std::memcmp(reply.data() + at, e.exact.data(), e.exact.size()) == 0);
  at += e.exact.size();
  if (e.error_code != 0) {
    check_error_frame(reply.data() + at, reply.size() - at, e.error_code);
  } else {
    FUZZ_CHECK(reply.size() == at);
  }
}

void check_udp(const uint8_t* in, size_t size) {
  const bench::ServerStats before = server->stats();
  FUZZ_CHECK(send(udp_fd, in, size, 0) == static_cast<ssize_t>(size));
  const bool well_formed = size >= bench::kDatagramHeaderSize && in[0] == 'F' && in[1] == 'U' && in[2] == 1;
  const bool echo = well_formed && in[3] == 2;
  const bool data = well_formed && in[3] == 1;
  if (echo) {
    std::unique_ptr<uint8_t[]> back(new uint8_t[size + 1]);
    const ssize_t n = recv(udp_fd, back.get(), size + 1, 0);
    FUZZ_CHECK(n == static_cast<ssize_t>(size) && std::memcmp(back.get(), in, size) == 0);
  }
  // The counters move once the worker has looked at the datagram.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReplyTimeoutMs);
  // (datagrams is counted first, then the verdict; an echo was answered after both).
  const auto settled = [&](const bench::ServerStats& now) {
    const uint64_t verdicts = now.malformed_datagrams + now.unknown_session_datagrams;
    return now.datagrams != before.datagrams &&
           (echo || verdicts != before.malformed_datagrams + before.unknown_session_datagrams);
  };
  bench::ServerStats after = server->stats();
  while (!settled(after)) {
    FUZZ_CHECK(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::microseconds(20));
    after = server->stats();
  }
  FUZZ_CHECK(after.datagrams == before.datagrams + 1);
  FUZZ_CHECK(after.malformed_datagrams == before.malformed_datagrams + (well_formed && (echo || data) ? 0 : 1));
  FUZZ_CHECK(after.unknown_session_datagrams == before.unknown_session_datagrams + (data ? 1 : 0));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (server == nullptr) start_server();
  check_tcp(data, size);
  check_udp(data, size);
  server->take_log();  // bounded by the server anyway; keeps memory flat
  return 0;
}
