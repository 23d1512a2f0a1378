// is_pg_cancel_request(): a PostgreSQL CancelRequest is recognised, and the
// other first messages a PostgreSQL client sends (StartupMessage, SSLRequest,
// GSSENCRequest) or a request with bytes around it are not. Run by
// engine_test's main().
#include <cstdint>
#include <string>
#include <vector>

#include "engine/pg_cancel.h"

void check(bool ok, const std::string& what);

namespace {

using fulcrum::is_pg_cancel_request;

void put_be32(std::vector<uint8_t>& out, uint32_t value) {
  out.push_back(static_cast<uint8_t>(value >> 24));
  out.push_back(static_cast<uint8_t>(value >> 16));
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}

// length, code, then the given words (pid and key for a cancel).
std::vector<uint8_t> message(uint32_t length, uint32_t code, std::vector<uint32_t> words) {
  std::vector<uint8_t> out;
  put_be32(out, length);
  put_be32(out, code);
  for (uint32_t word : words) put_be32(out, word);
  return out;
}

bool is_cancel(const std::vector<uint8_t>& bytes) { return is_pg_cancel_request(bytes.data(), bytes.size()); }

}  // namespace

void run_pg_cancel_tests() {
  check(is_cancel(message(16, 80877102, {4242, 0xdeadbeef})), "a CancelRequest is one");
  check(is_cancel(message(16, 80877102, {0, 0})), "whatever the pid and key");
  check(!is_cancel(message(8, 80877103, {})), "an SSLRequest is not");
  check(!is_cancel(message(8, 80877104, {})), "a GSSENCRequest is not");
  // StartupMessage: length, protocol 3.0, then user\0app\0\0.
  std::vector<uint8_t> startup = message(0, 196608, {});
  for (char c : std::string("user\0app\0\0", 10)) startup.push_back(static_cast<uint8_t>(c));
  startup[3] = static_cast<uint8_t>(startup.size());
  check(!is_cancel(startup), "a StartupMessage is not");
  // A startup message of exactly 16 bytes: protocol code, not the cancel code.
  check(!is_cancel(message(16, 196608, {0x75736572, 0x00610000})), "16 bytes with another code are not");
  check(!is_cancel(message(16, 80877103, {1, 2})), "16 bytes with the SSLRequest code are not");
  check(!is_cancel(message(17, 80877102, {1, 2})), "a length field other than the bytes read is not");
  std::vector<uint8_t> longer = message(16, 80877102, {1, 2});
  longer.push_back(0);
  check(!is_cancel(longer), "a request followed by more bytes is not");
  std::vector<uint8_t> shorter = message(16, 80877102, {1, 2});
  shorter.pop_back();
  check(!is_cancel(shorter), "15 bytes are not");
  check(!is_pg_cancel_request(nullptr, 0), "nothing is not");
  // Protocol 3.2 (PostgreSQL 18): the key may be up to 256 bytes.
  std::vector<uint32_t> long_key(1 + 8, 7);  // pid, then a 32-byte key
  check(is_cancel(message(12 + 32, 80877102, long_key)), "a protocol 3.2 request with a 32-byte key is one");
  check(!is_cancel(message(12 + 33, 80877102, long_key)), "its length field must match the bytes read");
  std::vector<uint32_t> longest(1 + 64, 7);  // 256-byte key
  check(is_cancel(message(12 + 256, 80877102, longest)), "a 256-byte key is the longest");
  std::vector<uint32_t> too_long(1 + 65, 7);
  check(!is_cancel(message(12 + 260, 80877102, too_long)), "a longer one is not");
  const std::string http = "GET / HTTP/1.1\r\n";  // 16 bytes of another protocol
  check(!is_pg_cancel_request(reinterpret_cast<const uint8_t*>(http.data()), http.size()), "16 bytes of HTTP are not");
}
