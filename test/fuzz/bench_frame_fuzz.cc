// libFuzzer target: the bench protocol's frame header check
// (native/bench/protocol.cc parse_frame_header), which `fulcrum bench server`
// runs on the first 8 bytes of every TCP connection and of every frame on a
// control connection, from any client that reaches its port. Built and run by
// test/fuzz/run.sh with ASan and UBSan.
//
// Invariants, beyond "no crash, reads only the 8 header bytes":
//   - accepted exactly when magic "FB", version 1, a type 1..5 and a length
//     <= kMaxFramePayload: an independent statement of protocol.h's rules;
//   - accepted: put_frame_header(type, length) writes the same 8 bytes back;
//   - refused: the code is the first rule broken (magic, version, type,
//     length, in that order) and the message for the peer is not empty and
//     says nothing the peer did not send beyond the rule (bounded length);
//   - the same bytes give the same answer twice.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "../../native/bench/protocol.h"
#include "fuzz_check.h"

namespace bench = fulcrum::bench;

namespace {

// The code protocol.h's rules give the 8 bytes at p, 0 when they are a frame header.
int expected_code(const uint8_t* p) {
  if (p[0] != 'F' || p[1] != 'B') return static_cast<int>(bench::ErrorCode::kBadMagic);
  if (p[2] != 1) return static_cast<int>(bench::ErrorCode::kBadVersion);
  if (p[3] < 1 || p[3] > 5) return static_cast<int>(bench::ErrorCode::kBadType);
  const uint32_t length = (uint32_t{p[4]} << 24) | (uint32_t{p[5]} << 16) | (uint32_t{p[6]} << 8) | p[7];
  if (length > 64 * 1024) return static_cast<int>(bench::ErrorCode::kBadLength);
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The server calls it only once 8 bytes are buffered; more bytes in the
  // input are a stream of headers, each checked in turn as the server would.
  for (size_t offset = 0; offset + bench::kFrameHeaderSize <= size; offset += bench::kFrameHeaderSize) {
    // An exact 8-byte heap copy: ASan reports any read beyond the header.
    std::unique_ptr<uint8_t[]> header(new uint8_t[bench::kFrameHeaderSize]);
    std::memcpy(header.get(), data + offset, bench::kFrameHeaderSize);
    bench::FrameHeader parsed{};
    std::string why;
    const int code = bench::parse_frame_header(header.get(), &parsed, &why);
    FUZZ_CHECK(code == expected_code(header.get()));
    bench::FrameHeader again{};
    std::string why_again;
    FUZZ_CHECK(bench::parse_frame_header(header.get(), &again, &why_again) == code && why_again == why);
    if (code == 0) {
      FUZZ_CHECK(why.empty());
      uint8_t written[bench::kFrameHeaderSize];
      bench::put_frame_header(written, parsed.type, parsed.length);
      FUZZ_CHECK(std::memcmp(written, header.get(), sizeof written) == 0);
      FUZZ_CHECK(again.type == parsed.type && again.length == parsed.length);
    } else {
      FUZZ_CHECK(!why.empty() && why.size() < 128);
    }
  }
  return 0;
}
