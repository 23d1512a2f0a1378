// Client identity and admission without sockets: the PROXY protocol's
// encoder byte for byte and its parser on valid, truncated and hostile input
// (every prefix of every valid header, single-byte corruption, random bytes);
// CIDR lists' longest-prefix decision; the per-client limit table's counts,
// token bucket, expiry and reclaim, also from several threads at once.
// Run by engine_test's main().
#include <arpa/inet.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/cidr_set.h"
#include "engine/client_limits.h"
#include "engine/proxy_protocol.h"

void check(bool ok, const std::string& what);

namespace {

using namespace fulcrum;

sockaddr_storage ip(const char* host, uint16_t port) {
  sockaddr_storage storage{};
  auto& v4 = reinterpret_cast<sockaddr_in&>(storage);
  if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    return storage;
  }
  auto& v6 = reinterpret_cast<sockaddr_in6&>(storage);
  inet_pton(AF_INET6, host, &v6.sin6_addr);
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(port);
  return storage;
}

std::string text_of(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (a.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
    inet_ntop(AF_INET, &v4.sin_addr, host, sizeof host);
    port = ntohs(v4.sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
    inet_ntop(AF_INET6, &v6.sin6_addr, host, sizeof host);
    port = ntohs(v6.sin6_port);
  }
  return std::string(host) + " " + std::to_string(port);
}

ProxyParseResult parse(const std::string& bytes) {
  return parse_proxy_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::string bytes_of(const uint8_t* data, size_t n) { return std::string(reinterpret_cast<const char*>(data), n); }

const std::string kSig("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);

void test_encode() {
  uint8_t out[kProxyEncodeMaxBytes];
  size_t n = encode_proxy_v1(ip("192.0.2.1", 51000), ip("198.51.100.2", 5432), out);
  check(bytes_of(out, n) == "PROXY TCP4 192.0.2.1 198.51.100.2 51000 5432\r\n", "v1 TCP4 byte for byte");
  n = encode_proxy_v1(ip("2001:db8::1", 1), ip("2001:db8::2", 65535), out);
  check(bytes_of(out, n) == "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", "v1 TCP6 byte for byte");
  n = encode_proxy_v1(ip("::ffff:10.0.0.1", 7), ip("::ffff:10.0.0.2", 8), out);
  check(bytes_of(out, n) == "PROXY TCP4 10.0.0.1 10.0.0.2 7 8\r\n", "v1: mapped addresses are written as IPv4");
  n = encode_proxy_v1(ip("10.0.0.1", 7), ip("2001:db8::2", 8), out);
  check(bytes_of(out, n) == "PROXY UNKNOWN\r\n", "v1: mixed families are UNKNOWN");
  n = encode_proxy_v1(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
                      ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535), out);
  check(n == 104 && n <= kProxyV1MaxBytes, "v1: the longest TCP6 header is 104 bytes");

  n = encode_proxy_v2(ip("192.0.2.1", 51000), ip("198.51.100.2", 5432), out);
  const std::string v4 = kSig + std::string("\x21\x11\x00\x0C\xC0\x00\x02\x01\xC6\x33\x64\x02\xC7\x38\x15\x38", 16);
  check(bytes_of(out, n) == v4, "v2 INET byte for byte");
  n = encode_proxy_v2(ip("2001:db8::1", 1), ip("2001:db8::2", 2), out);
  std::string v6 = kSig + std::string("\x21\x21\x00\x24", 4);
  v6 += std::string("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16) + std::string("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02", 16);
  v6 += std::string("\x00\x01\x00\x02", 4);
  check(bytes_of(out, n) == v6, "v2 INET6 byte for byte");
  n = encode_proxy_v2(ip("10.0.0.1", 7), ip("2001:db8::2", 8), out);
  check(bytes_of(out, n) == kSig + std::string("\x21\x00\x00\x00", 4), "v2: mixed families are PROXY UNSPEC, no addresses");
}

void test_parse_valid() {
  ProxyParseResult r = parse("PROXY TCP4 192.0.2.1 198.51.100.2 51000 5432\r\nHELLO");
  check(r.status == ProxyParseStatus::kDone && r.length == 46 && r.has_addresses, "v1 TCP4 parses, data after it is not part of it");
  check(text_of(r.source) == "192.0.2.1 51000" && text_of(r.destination) == "198.51.100.2 5432", "v1 TCP4 addresses");
  r = parse("PROXY TCP6 2001:db8::1 ::1 0 65535\r\n");
  check(r.status == ProxyParseStatus::kDone && text_of(r.source) == "2001:db8::1 0" && text_of(r.destination) == "::1 65535",
        "v1 TCP6 parses (port 0 and 65535)");
  r = parse("PROXY UNKNOWN\r\n");
  check(r.status == ProxyParseStatus::kDone && !r.has_addresses && r.length == 15, "v1 UNKNOWN: the connection's own addresses");
  r = parse("PROXY UNKNOWN ffff:f...f ffff:f...f 65535 65535\r\n");
  check(r.status == ProxyParseStatus::kDone && !r.has_addresses, "v1 UNKNOWN: the rest of the line is ignored");

  uint8_t out[kProxyEncodeMaxBytes];
  size_t n = encode_proxy_v2(ip("192.0.2.1", 51000), ip("198.51.100.2", 5432), out);
  r = parse_proxy_header(out, n);
  check(r.status == ProxyParseStatus::kDone && r.length == 28 && text_of(r.source) == "192.0.2.1 51000", "v2 INET round trip");
  n = encode_proxy_v2(ip("2001:db8::7", 4242), ip("2001:db8::8", 443), out);
  r = parse_proxy_header(out, n);
  check(r.status == ProxyParseStatus::kDone && r.length == 52 && text_of(r.source) == "2001:db8::7 4242" &&
            text_of(r.destination) == "2001:db8::8 443", "v2 INET6 round trip");
  // TLVs after the addresses (AWS's VPC endpoint id, type 0xEA) are skipped.
  std::string tlv = kSig + std::string("\x21\x11\x00\x23", 4) + std::string("\x0A\0\0\x05\x0A\0\0\x06\x30\x39\x00\x50", 12);
  tlv += std::string("\xEA\x00\x10\x01", 4) + "vpce-0123456789a" + std::string("\x04\x00\x00", 3);
  r = parse(tlv + "after");
  check(r.status == ProxyParseStatus::kDone && r.length == tlv.size() && text_of(r.source) == "10.0.0.5 12345",
        "v2 with TLVs: addresses read, TLVs skipped");
  r = parse(kSig + std::string("\x20\x00\x00\x00", 4));
  check(r.status == ProxyParseStatus::kDone && !r.has_addresses && r.length == 16, "v2 LOCAL: the connection's own addresses");
  r = parse(kSig + std::string("\x20\x11\x00\x0C", 4) + std::string(12, '\x01'));
  check(r.status == ProxyParseStatus::kDone && !r.has_addresses && r.length == 28, "v2 LOCAL with an address block: ignored");
  std::string unix_header = kSig + std::string("\x21\x31\x00\xD8", 4) + std::string(216, 'u');
  r = parse(unix_header);
  check(r.status == ProxyParseStatus::kDone && !r.has_addresses && r.length == 232, "v2 UNIX: accepted, own addresses");
  r = parse(kSig + std::string("\x21\x12\x00\x0C", 4) + std::string("\x0A\0\0\x05\x0A\0\0\x06\x30\x39\x00\x50", 12));
  check(r.status == ProxyParseStatus::kDone && r.has_addresses, "v2 INET over DGRAM: the addresses count");
}

void test_every_prefix_is_incomplete() {
  uint8_t out[kProxyEncodeMaxBytes];
  std::vector<std::string> headers = {"PROXY TCP4 192.0.2.1 198.51.100.2 51000 5432\r\n", "PROXY UNKNOWN\r\n"};
  size_t n = encode_proxy_v2(ip("2001:db8::7", 4242), ip("2001:db8::8", 443), out);
  headers.push_back(bytes_of(out, n));
  n = encode_proxy_v2(ip("192.0.2.1", 1), ip("192.0.2.2", 2), out);
  headers.push_back(bytes_of(out, n));
  bool all = true;
  for (const std::string& h : headers) {
    for (size_t k = 0; k < h.size(); k++) {
      if (parse(h.substr(0, k)).status != ProxyParseStatus::kIncomplete) all = false;
    }
    if (parse(h).status != ProxyParseStatus::kDone) all = false;
  }
  check(all, "every strict prefix of a valid header is incomplete, the whole is done (a byte at a time works)");
}

void test_parse_hostile() {
  struct Case {
    std::string bytes;
    ProxyParseStatus want;
    const char* what;
  };
  const std::vector<Case> cases = {
      {"GET / HTTP/1.1\r\n", ProxyParseStatus::kMissing, "an HTTP request: missing"},
      {std::string("\0\0\0\x08\x04\xd2\x16\x2f", 8), ProxyParseStatus::kMissing, "a PostgreSQL SSLRequest: missing"},
      {"PROXZ", ProxyParseStatus::kMissing, "a near miss of the v1 prefix: missing"},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 51000 5432\n", ProxyParseStatus::kMalformed, "v1 with a bare LF"},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 51000 5432\r\r", ProxyParseStatus::kMalformed, "v1 CR not followed by LF"},
      {"PROXY TCP4 192.0.2.1  198.51.100.2 51000 5432\r\n", ProxyParseStatus::kMalformed, "v1 with two spaces"},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 51000\r\n", ProxyParseStatus::kMalformed, "v1 with a field missing"},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 51000 5432 9\r\n", ProxyParseStatus::kMalformed, "v1 with a field too many"},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 65536 5432\r\n", ProxyParseStatus::kMalformed, "v1 port above 65535"},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 051 5432\r\n", ProxyParseStatus::kMalformed, "v1 port with a leading zero"},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 -1 5432\r\n", ProxyParseStatus::kMalformed, "v1 negative port"},
      {"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n", ProxyParseStatus::kMalformed, "v1 TCP4 with an IPv6 address"},
      {"PROXY TCP6 192.0.2.1 ::1 1 2\r\n", ProxyParseStatus::kMalformed, "v1 TCP6 with an IPv4 address"},
      {"PROXY TCP4 192.0.2.300 198.51.100.2 1 2\r\n", ProxyParseStatus::kMalformed, "v1 octet above 255"},
      {"PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n", ProxyParseStatus::kMalformed, "v1 octet with a leading zero"},
      {"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n", ProxyParseStatus::kMalformed, "v1 unknown protocol"},
      {"PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n", ProxyParseStatus::kMalformed, "v1 lower-case protocol"},
      {"PROXY \r\n", ProxyParseStatus::kMalformed, "v1 empty protocol"},
      {std::string("PROXY TCP4 192.0.2.1\0", 21), ProxyParseStatus::kMalformed, "v1 with a NUL"},
      {"PROXY UNKNOWN " + std::string(100, 'x'), ProxyParseStatus::kMalformed, "v1 without CRLF in 107 bytes"},
      {"PROXY UNKNOWN " + std::string(92, 'x') + "\r\n", ProxyParseStatus::kMalformed, "v1 of 108 bytes"},
      {"PROXY UNKNOWN " + std::string(91, 'x') + "\r\n", ProxyParseStatus::kDone, "v1 of exactly 107 bytes"},
      {kSig + std::string("\x11\x11\x00\x0C", 4) + std::string(12, '\0'), ProxyParseStatus::kMalformed, "v2 version 1"},
      {kSig + std::string("\x31\x11\x00\x0C", 4) + std::string(12, '\0'), ProxyParseStatus::kMalformed, "v2 version 3"},
      {kSig + std::string("\x22\x11\x00\x0C", 4) + std::string(12, '\0'), ProxyParseStatus::kMalformed, "v2 command 2"},
      {kSig + std::string("\x21\x41\x00\x0C", 4) + std::string(12, '\0'), ProxyParseStatus::kMalformed, "v2 family 4"},
      {kSig + std::string("\x21\x13\x00\x0C", 4) + std::string(12, '\0'), ProxyParseStatus::kMalformed, "v2 transport 3"},
      {kSig + std::string("\x21\x10\x00\x0C", 4) + std::string(12, '\0'), ProxyParseStatus::kMalformed, "v2 INET with transport UNSPEC"},
      {kSig + std::string("\x21\x11\x00\x0B", 4) + std::string(11, '\0'), ProxyParseStatus::kMalformed, "v2 INET block too short"},
      {kSig + std::string("\x21\x21\x00\x0C", 4) + std::string(12, '\0'), ProxyParseStatus::kMalformed, "v2 INET6 block too short"},
      {kSig + std::string("\x21\x31\x00\x0C", 4) + std::string(12, '\0'), ProxyParseStatus::kMalformed, "v2 UNIX block too short"},
      {kSig + std::string("\x21\x11\xFF\xFF", 4), ProxyParseStatus::kMalformed, "v2 length above the engine's bound"},
  };
  for (const Case& c : cases) check(parse(c.bytes).status == c.want, std::string("hostile: ") + c.what);
  check(parse(kSig + std::string("\x21\x11\x0F\xF0", 4)).status == ProxyParseStatus::kIncomplete,
        "v2 declaring 4080 bytes (the bound) waits for them");

  // Random bytes after each valid prefix: never a crash, never a length past the input.
  std::mt19937 random(42);
  uint8_t out[kProxyEncodeMaxBytes];
  const size_t n = encode_proxy_v2(ip("192.0.2.1", 1), ip("192.0.2.2", 2), out);
  const std::vector<std::string> seeds = {"PROXY TCP4 ", "PROXY TCP6 ", "PROXY UNKNOWN", bytes_of(out, n).substr(0, 14)};
  bool sane = true;
  for (int round = 0; round < 20000; round++) {
    std::string input = seeds[static_cast<size_t>(round) % seeds.size()];
    const size_t extra = random() % 120;
    for (size_t i = 0; i < extra; i++) input += static_cast<char>(random() % 4 == 0 ? ' ' : random() % 256);
    const ProxyParseResult r = parse(input);
    if (r.status == ProxyParseStatus::kDone && (r.length == 0 || r.length > input.size())) sane = false;
  }
  // Each byte of a valid v2 header flipped: parsed or refused, never out of bounds.
  for (size_t i = 0; i < n; i++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string flipped = bytes_of(out, n);
      flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
      const ProxyParseResult r = parse(flipped);
      if (r.status == ProxyParseStatus::kDone && r.length > flipped.size()) sane = false;
    }
  }
  check(sane, "random and bit-flipped input: every verdict stays within the bytes given");
}

void test_cidr_set() {
  CidrSet empty;
  empty.finish();
  check(empty.admits(ip("203.0.113.9", 1)), "no lists: everyone is admitted");

  CidrSet acl;
  check(acl.add("10.0.0.0/8", true) == 0 && acl.add("10.1.0.0/16", false) == 0 && acl.add("10.1.2.3", true) == 0, "prefixes parse");
  check(acl.add("2001:db8::/32", true) == 0 && acl.add("2001:db8:bad::/48", false) == 0, "IPv6 prefixes parse");
  check(acl.add("10.0.0.0/33", true) < 0 && acl.add("::/129", true) < 0 && acl.add("10.0.0.0/", true) < 0 &&
            acl.add("10.0.0/8", true) < 0 && acl.add("host/8", true) < 0 && acl.add("10.0.0.0/08", true) < 0,
        "bad prefixes are refused");
  acl.finish();
  check(acl.admits(ip("10.2.3.4", 1)), "inside allow /8");
  check(!acl.admits(ip("10.1.2.4", 1)), "inside the longer deny /16");
  check(acl.admits(ip("10.1.2.3", 1)), "the /32 allow inside the deny wins (longest prefix)");
  check(!acl.admits(ip("192.168.1.1", 1)), "outside every allow prefix: refused (an allow list exists)");
  check(acl.admits(ip("::ffff:10.2.3.4", 1)) && !acl.admits(ip("::ffff:10.1.9.9", 1)), "mapped IPv4 matches IPv4 prefixes");
  check(acl.admits(ip("2001:db8:1::1", 1)) && !acl.admits(ip("2001:db8:bad::1", 1)) && !acl.admits(ip("2001:db9::1", 1)),
        "IPv6 longest prefix");

  CidrSet deny_only;
  deny_only.add("127.0.0.3/32", false);
  deny_only.add("0.0.0.0/0", true);
  deny_only.add("0.0.0.0/0", false);
  deny_only.finish();
  check(!deny_only.admits(ip("127.0.0.3", 1)) && !deny_only.admits(ip("127.0.0.2", 1)), "the same prefix in both lists denies");
  CidrSet deny_one;
  deny_one.add("127.0.0.3", false);
  deny_one.add("::1", false);
  deny_one.finish();
  check(!deny_one.admits(ip("127.0.0.3", 1)) && deny_one.admits(ip("127.0.0.2", 1)) && !deny_one.admits(ip("::1", 1)) &&
            deny_one.admits(ip("::2", 1)),
        "deny only: everyone else is admitted");
  CidrSet masked;
  masked.add("192.168.7.99/24", true);
  masked.finish();
  check(masked.admits(ip("192.168.7.1", 1)) && !masked.admits(ip("192.168.8.1", 1)), "host bits below the prefix are masked");
  CidrSet all6;
  all6.add("::/0", true);
  all6.finish();
  check(all6.admits(ip("2001:db8::1", 1)) && !all6.admits(ip("10.0.0.1", 1)), "::/0 is every IPv6 address, not IPv4");
}

void test_client_limits() {
  ClientLimitsSpec spec;
  spec.enabled = true;
  spec.max_connections = 2;
  ClientLimitTable table(64);
  ClientLimitTable::Entry* a1 = nullptr;
  ClientLimitTable::Entry* a2 = nullptr;
  ClientLimitTable::Entry* a3 = nullptr;
  ClientLimitTable::Entry* b1 = nullptr;
  const sockaddr_storage a = ip("127.0.0.2", 1000);
  check(table.admit_connection(a, spec, 1000, &a1) == Admission::kAdmitted, "limits: first connection admitted");
  check(table.admit_connection(ip("127.0.0.2", 2000), spec, 1000, &a2) == Admission::kAdmitted && a2 == a1,
        "limits: the port does not matter, one entry per address");
  check(table.admit_connection(a, spec, 1000, &a3) == Admission::kOverConnections && a3 == nullptr, "limits: the third is over");
  check(table.admit_connection(ip("127.0.0.3", 1), spec, 1000, &b1) == Admission::kAdmitted && b1 != a1, "limits: another source is untouched");
  check(table.admit_connection(ip("::ffff:127.0.0.2", 1), spec, 1000, &a3) == Admission::kOverConnections, "limits: mapped IPv4 is the same client");
  table.release(a1, 1000);
  check(table.admit_connection(a, spec, 1000, &a3) == Admission::kAdmitted && a3 == a1, "limits: a closed connection frees a place");
  check(table.held_entries() == 2, "limits: two clients hold entries");

  // Token bucket: rate 10/s, burst 3.
  ClientLimitsSpec rate;
  rate.enabled = true;
  rate.rate = 10;
  rate.burst = 3;
  ClientLimitTable buckets(64);
  ClientLimitTable::Entry* e = buckets.hold(ip("10.0.0.1", 1), rate, 50'000);
  check(e != nullptr && buckets.take(e, 5, rate, 50'000) == 3, "bucket: a burst of 3 at once");
  check(buckets.take(e, 1, rate, 50'050) == 0, "bucket: empty 50ms later (half a token)");
  check(buckets.take(e, 1, rate, 50'100) == 1, "bucket: one token per 100ms at 10/s");
  check(buckets.take(e, 10, rate, 60'000) == 3, "bucket: refills to the burst, no more");
  // Workers read the clock once per loop pass: one may come with a `now` a
  // little older than the stamp another just wrote. That is no time passing,
  // not a 49-day gap that would refill the bucket.
  check(buckets.take(e, 1, rate, 59'990) == 0, "bucket: a worker whose clock lags 10ms gets no refill");
  check(buckets.take(e, 1, rate, 59'000) == 0, "bucket: nor one whose clock lags a second");
  check(buckets.take(e, 1, rate, 60'100) == 1, "bucket: the newer stamp was kept (one token 100ms after it)");
  ClientLimitTable::Entry* other = buckets.hold(ip("10.0.0.2", 1), rate, 60'000);
  check(other != e && buckets.take(other, 3, rate, 60'000) == 3, "bucket: another client has its own");
  ClientLimitTable::Entry* held = nullptr;
  check(buckets.admit_connection(ip("10.0.0.2", 1), rate, 60'000, &held) == Admission::kOverRate && held == nullptr,
        "bucket: a connection over the rate is refused and holds nothing");
  buckets.release(e, 60'000);
  buckets.release(other, 60'000);
  check(buckets.held_entries() == 0, "bucket: released entries are not held");

  // Expiry and reclaim: 16 entries, every address in one probe window.
  ClientLimitsSpec small;
  small.enabled = true;
  small.max_connections = 1;
  ClientLimitTable tiny(16);
  std::vector<ClientLimitTable::Entry*> holds;
  for (int i = 0; i < 16; i++) holds.push_back(tiny.hold(ip(("192.0.2." + std::to_string(i + 1)).c_str(), 1), small, 100'000));
  bool all_held = true;
  for (auto* h : holds) all_held = all_held && h != nullptr;
  check(all_held, "reclaim: 16 clients fill a 16-entry table");
  ClientLimitTable::Entry* extra = nullptr;
  check(tiny.admit_connection(ip("198.51.100.1", 1), small, 100'000, &extra) == Admission::kUntracked,
        "reclaim: a full window leaves a new client untracked, not refused");
  tiny.release(holds[3], 100'000);
  check(tiny.hold(ip("198.51.100.1", 1), small, 100'500) == nullptr, "reclaim: an entry released just now is not reused yet");
  ClientLimitTable::Entry* reused = tiny.hold(ip("198.51.100.1", 1), small, 103'000);
  check(reused == holds[3], "reclaim: an entry idle long enough is reused in place");
  check(tiny.hold(ip("192.0.2.4", 1), small, 103'000) == nullptr, "reclaim: its old client is gone from the table");

  // Many threads hold and release one client and others: counts end at zero.
  ClientLimitsSpec loose;
  loose.enabled = true;
  ClientLimitTable shared(4096);
  std::atomic<bool> lost{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; i++) {
        const std::string host = "10.9." + std::to_string((i + t) % 3) + "." + std::to_string(i % 200);
        ClientLimitTable::Entry* h = shared.hold(ip(host.c_str(), 1), loose, 1'000'000 + static_cast<uint64_t>(i));
        if (h == nullptr) {
          lost = true;
          continue;
        }
        shared.release(h, 1'000'000 + static_cast<uint64_t>(i));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  check(!lost && shared.held_entries() == 0, "threads: every hold found an entry and every release balanced it");
}

}  // namespace

void run_client_identity_tests() {
  test_encode();
  test_parse_valid();
  test_every_prefix_is_incomplete();
  test_parse_hostile();
  test_cidr_set();
  test_client_limits();
}
