// libFuzzer target: the PROXY protocol v1/v2 parser (native/engine/proxy_protocol.cc),
// which reads the first bytes of every client connection on a service with
// accept_proxy, before anything else has checked them. Built and run by
// test/fuzz/run.sh with ASan and UBSan; a failed invariant aborts, which
// libFuzzer reports as a crash with the input that broke it.
//
// Invariants checked for every input, beyond "no crash, no read past size":
//   - the same bytes parse the same way twice;
//   - kDone: length <= size; a v1 header ends in CRLF within 107 bytes, a v2
//     one is 16 bytes plus its declared length and at most kProxyV2MaxBytes;
//     with addresses, source and destination are both AF_INET or both AF_INET6,
//     without them both are left empty;
//   - segmentation does not matter: the engine peeks again on every new TCP
//     segment, so once a prefix of the input parses to a decision (done,
//     missing, malformed), every longer prefix parses to the same decision,
//     and a kDone header of L bytes parses as kIncomplete at every shorter prefix;
//   - the engine peeks at most kProxyV2MaxBytes: that many bytes are never
//     kIncomplete (the connection would wait for the timer for nothing);
//   - a v1 header's text agrees with what was parsed (family word, decimal
//     ports; a TCP4 line is byte for byte what encode_proxy_v1 writes back);
//   - round trip: the parsed addresses, written by encode_proxy_v1 and by
//     encode_proxy_v2, parse back to the same addresses (IPv4-mapped IPv6
//     pairs come back as IPv4, as the encoders document).
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../../native/engine/address.h"
#include "../../native/engine/proxy_protocol.h"
#include "fuzz_check.h"

using fulcrum::ProxyParseResult;
using fulcrum::ProxyParseStatus;

namespace {

bool is_empty(const sockaddr_storage& a) {
  static const sockaddr_storage zero{};
  return std::memcmp(&a, &zero, sizeof a) == 0;
}

// Family, address and port equal (sockaddr_storage padding is not compared).
bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, 16) == 0;
  }
  return is_empty(a) && is_empty(b);
}

bool same_result(const ProxyParseResult& a, const ProxyParseResult& b) {
  return a.status == b.status && a.length == b.length && a.has_addresses == b.has_addresses &&
         same_address(a.source, b.source) && same_address(a.destination, b.destination);
}

// Parses the first n bytes from a heap copy of exactly n bytes, so ASan sees
// any read past n (the fuzzer's own buffer would hide reads into its tail).
ProxyParseResult parse_prefix(const uint8_t* data, size_t n) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[n]);
  if (n > 0) std::memcpy(copy.get(), data, n);
  return fulcrum::parse_proxy_header(copy.get(), n);
}

void check_shape(const uint8_t* data, size_t size, const ProxyParseResult& r) {
  if (r.status != ProxyParseStatus::kDone) {
    FUZZ_CHECK(r.length == 0 && !r.has_addresses && is_empty(r.source) && is_empty(r.destination));
    return;
  }
  FUZZ_CHECK(r.length > 0 && r.length <= size);
  if (data[0] == 'P') {  // v1
    FUZZ_CHECK(r.length <= fulcrum::kProxyV1MaxBytes && r.length >= 8);
    FUZZ_CHECK(data[r.length - 2] == '\r' && data[r.length - 1] == '\n');
    for (size_t i = 0; i + 2 < r.length; i++) FUZZ_CHECK(data[i] >= 0x20 && data[i] <= 0x7e);
  } else {  // v2
    FUZZ_CHECK(r.length >= 16 && r.length <= fulcrum::kProxyV2MaxBytes);
    FUZZ_CHECK(r.length == 16 + ((size_t{data[14]} << 8) | data[15]));
  }
  if (r.has_addresses) {
    FUZZ_CHECK(r.source.ss_family == AF_INET || r.source.ss_family == AF_INET6);
    FUZZ_CHECK(r.source.ss_family == r.destination.ss_family);
  } else {
    FUZZ_CHECK(is_empty(r.source) && is_empty(r.destination));
  }
}

// Writes the addresses with `encode`, parses that, and expects them back.
void check_round_trip(const ProxyParseResult& r,
                      size_t (*encode)(const sockaddr_storage&, const sockaddr_storage&, uint8_t*)) {
  uint8_t out[fulcrum::kProxyEncodeMaxBytes + 1];
  std::memset(out, 0xAA, sizeof out);
  const size_t n = encode(r.source, r.destination, out);
  FUZZ_CHECK(n > 0 && n <= fulcrum::kProxyEncodeMaxBytes);
  const ProxyParseResult back = parse_prefix(out, n);
  FUZZ_CHECK(back.status == ProxyParseStatus::kDone && back.length == n);
  const sockaddr_storage source = fulcrum::unmap_ipv4(r.source);
  const sockaddr_storage destination = fulcrum::unmap_ipv4(r.destination);
  if (source.ss_family == destination.ss_family) {
    FUZZ_CHECK(back.has_addresses);
    FUZZ_CHECK(same_address(back.source, source) && same_address(back.destination, destination));
    // Encoding what came back gives the same bytes again.
    uint8_t again[fulcrum::kProxyEncodeMaxBytes + 1];
    FUZZ_CHECK(encode(back.source, back.destination, again) == n && std::memcmp(again, out, n) == 0);
  } else {
    // One mapped address and one IPv6: written as "use the connection's own".
    FUZZ_CHECK(!back.has_addresses);
  }
}

// A v1 header's text says what was parsed: TCP4 for AF_INET, TCP6 for
// AF_INET6, its two ports in decimal as written (leading zeros are refused),
// and a TCP4 line, whose addresses inet_pton accepts only in the one dotted
// form, is exactly what encode_proxy_v1 writes for the parsed addresses.
void check_v1_text(const uint8_t* data, const ProxyParseResult& r) {
  const std::string line(reinterpret_cast<const char*>(data), r.length - 2);
  std::vector<std::string> fields;
  for (size_t start = 0;;) {
    const size_t space = line.find(' ', start);
    fields.push_back(line.substr(start, space == std::string::npos ? std::string::npos : space - start));
    if (space == std::string::npos) break;
    start = space + 1;
  }
  FUZZ_CHECK(fields.size() == 6);
  FUZZ_CHECK(fields[1] == (r.source.ss_family == AF_INET ? "TCP4" : "TCP6"));
  const auto port = [](const sockaddr_storage& a) {
    return a.ss_family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port)
                                  : ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  };
  FUZZ_CHECK(fields[4] == std::to_string(port(r.source)) && fields[5] == std::to_string(port(r.destination)));
  if (r.source.ss_family == AF_INET) {
    uint8_t out[fulcrum::kProxyEncodeMaxBytes];
    const size_t n = fulcrum::encode_proxy_v1(r.source, r.destination, out);
    FUZZ_CHECK(n == r.length && std::memcmp(out, data, n) == 0);
  }
}

// The prefix lengths whose results are compared: all of them for short
// inputs, then a spread, plus the ones around a parsed header's end.
bool worth_checking(size_t k, size_t size, size_t header_length) {
  if (k <= 300) return true;
  if (header_length != 0 && k + 1 >= header_length && k <= header_length + 1) return true;
  return k == size || k % (size / 32 + 1) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ProxyParseResult full = parse_prefix(data, size);
  FUZZ_CHECK(same_result(full, parse_prefix(data, size)));
  check_shape(data, size, full);
  if (size >= fulcrum::kProxyV2MaxBytes) FUZZ_CHECK(full.status != ProxyParseStatus::kIncomplete);
  if (full.has_addresses) {
    if (data[0] == 'P') check_v1_text(data, full);
    check_round_trip(full, fulcrum::encode_proxy_v1);
    check_round_trip(full, fulcrum::encode_proxy_v2);
  }

  // Decisions are final: the first prefix that is not kIncomplete decides,
  // and every longer prefix (the whole input included) says the same.
  const size_t header_length = full.status == ProxyParseStatus::kDone ? full.length : 0;
  bool decided = false;
  ProxyParseResult decision;
  for (size_t k = 0; k <= size; k++) {
    if (!worth_checking(k, size, header_length)) continue;
    const ProxyParseResult r = parse_prefix(data, k);
    check_shape(data, k, r);
    if (decided) {
      FUZZ_CHECK(same_result(r, decision));
    } else if (r.status != ProxyParseStatus::kIncomplete) {
      decided = true;
      decision = r;
      FUZZ_CHECK(same_result(r, full));
    }
  }
  if (full.status == ProxyParseStatus::kIncomplete) FUZZ_CHECK(!decided);
  return 0;
}
