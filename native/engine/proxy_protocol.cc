#include "proxy_protocol.h"

#include "address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>

namespace fulcrum {

namespace {

constexpr uint8_t kV1Prefix[] = {'P', 'R', 'O', 'X', 'Y', ' '};
constexpr uint8_t kV2Signature[] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr size_t kV2HeaderBytes = 16;
// Address block sizes of the v2 families (INET, INET6, UNIX).
constexpr size_t kV2Inet4Bytes = 12;
constexpr size_t kV2Inet6Bytes = 36;
constexpr size_t kV2UnixBytes = 216;

// True when data[0, size) is a prefix of (or starts with) the n-byte sig.
bool matches_prefix(const uint8_t* data, size_t size, const uint8_t* sig, size_t n) {
  return std::memcmp(data, sig, size < n ? size : n) == 0;
}

// Where the address bytes and the port (network order) of an AF_INET or
// AF_INET6 address are: the one place the two families differ for the
// headers, which carry both the same way.
struct IpFields {
  void* address;
  size_t length;  // 4 or 16
  void* port;
};

IpFields ip_fields(sockaddr_storage& a) {
  if (a.ss_family == AF_INET) {
    auto& v4 = reinterpret_cast<sockaddr_in&>(a);
    return {&v4.sin_addr, 4, &v4.sin_port};
  }
  auto& v6 = reinterpret_cast<sockaddr_in6&>(a);
  return {&v6.sin6_addr, 16, &v6.sin6_port};
}

ProxyParseResult with_status(ProxyParseStatus status) {
  ProxyParseResult result;
  result.status = status;
  return result;
}

// A decimal port: "0", or 1 to 5 digits without a leading zero, at most 65535.
bool parse_port(const char* text, size_t n, uint16_t* out) {
  if (n == 0 || n > 5 || (n > 1 && text[0] == '0')) return false;
  uint32_t value = 0;
  for (size_t i = 0; i < n; i++) {
    if (text[i] < '0' || text[i] > '9') return false;
    value = value * 10 + static_cast<uint32_t>(text[i] - '0');
  }
  if (value > 65535) return false;
  *out = static_cast<uint16_t>(value);
  return true;
}

// One IPv4 or IPv6 literal of the given family, as inet_pton accepts it
// (which refuses leading zeros in IPv4 and anything but the literal).
bool parse_ip(int family, const char* text, size_t n, uint16_t port, sockaddr_storage* out) {
  char buffer[INET6_ADDRSTRLEN + 1];
  if (n == 0 || n >= sizeof buffer) return false;
  std::memcpy(buffer, text, n);
  buffer[n] = '\0';
  *out = sockaddr_storage{};
  if (family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(out);
    if (inet_pton(AF_INET, buffer, &v4->sin_addr) != 1) return false;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET6, buffer, &v6->sin6_addr) != 1) return false;
  v6->sin6_family = AF_INET6;
  v6->sin6_port = htons(port);
  return true;
}

ProxyParseResult parse_v1(const uint8_t* data, size_t size) {
  // The line ends at the first CRLF, within 107 bytes. A bare LF, a NUL or
  // a byte outside printable ASCII is refused as soon as it is seen, so a
  // hostile client cannot hold the connection with garbage until the timeout.
  const size_t limit = size < kProxyV1MaxBytes ? size : kProxyV1MaxBytes;
  size_t end = 0;
  bool found = false;
  for (size_t i = 0; i < limit; i++) {
    const uint8_t c = data[i];
    if (c == '\r') {
      if (i + 1 < size) {
        if (data[i + 1] != '\n' || i + 1 >= kProxyV1MaxBytes) return with_status(ProxyParseStatus::kMalformed);
        end = i;
        found = true;
      }
      break;
    }
    if (c < 0x20 || c > 0x7e) return with_status(ProxyParseStatus::kMalformed);
  }
  if (!found) {
    return with_status(size >= kProxyV1MaxBytes ? ProxyParseStatus::kMalformed : ProxyParseStatus::kIncomplete);
  }
  const char* line = reinterpret_cast<const char*>(data);
  // Fields separated by exactly one space: PROXY proto [src dst sport dport].
  const char* field[7];
  size_t field_length[7];
  size_t fields = 0;
  size_t start = 0;
  for (size_t i = 0; i <= end; i++) {
    if (i == end || line[i] == ' ') {
      if (fields == 7) return with_status(ProxyParseStatus::kMalformed);
      field[fields] = line + start;
      field_length[fields] = i - start;
      fields++;
      start = i + 1;
    }
  }
  ProxyParseResult result;
  result.length = end + 2;
  auto is = [&](size_t k, const char* word) {
    return field_length[k] == std::strlen(word) && std::memcmp(field[k], word, field_length[k]) == 0;
  };
  if (fields >= 2 && is(1, "UNKNOWN")) {
    // The spec: whatever follows UNKNOWN up to the CRLF is ignored.
    result.status = ProxyParseStatus::kDone;
    return result;
  }
  int family = 0;
  if (fields >= 2 && is(1, "TCP4")) family = AF_INET;
  if (fields >= 2 && is(1, "TCP6")) family = AF_INET6;
  uint16_t source_port = 0;
  uint16_t destination_port = 0;
  if (family == 0 || fields != 6 || !parse_port(field[4], field_length[4], &source_port) ||
      !parse_port(field[5], field_length[5], &destination_port) ||
      !parse_ip(family, field[2], field_length[2], source_port, &result.source) ||
      !parse_ip(family, field[3], field_length[3], destination_port, &result.destination)) {
    return with_status(ProxyParseStatus::kMalformed);
  }
  result.status = ProxyParseStatus::kDone;
  result.has_addresses = true;
  return result;
}

ProxyParseResult parse_v2(const uint8_t* data, size_t size) {
  if (size < kV2HeaderBytes) return with_status(ProxyParseStatus::kIncomplete);
  const uint8_t version = data[12] >> 4;
  const uint8_t command = data[12] & 0x0F;
  const uint8_t family = data[13] >> 4;
  const uint8_t transport = data[13] & 0x0F;
  const size_t length = (static_cast<size_t>(data[14]) << 8) | data[15];
  // Version 2 only; commands LOCAL (0) and PROXY (1); families UNSPEC (only
  // with transport UNSPEC), INET, INET6, UNIX with transport STREAM or DGRAM.
  // The spec says every other value must be refused.
  const bool family_ok = (family == 0 && transport == 0) || (family >= 1 && family <= 3 && transport >= 1 && transport <= 2);
  if (version != 2 || command > 1 || !family_ok) return with_status(ProxyParseStatus::kMalformed);
  if (kV2HeaderBytes + length > kProxyV2MaxBytes) return with_status(ProxyParseStatus::kMalformed);
  const size_t needed = family == 1 ? kV2Inet4Bytes : family == 2 ? kV2Inet6Bytes : family == 3 ? kV2UnixBytes : 0;
  // A PROXY command's address block must be whole; LOCAL's is ignored.
  if (command == 1 && length < needed) return with_status(ProxyParseStatus::kMalformed);
  if (size < kV2HeaderBytes + length) return with_status(ProxyParseStatus::kIncomplete);
  ProxyParseResult result;
  result.status = ProxyParseStatus::kDone;
  result.length = kV2HeaderBytes + length;
  if (command == 0 || (family != 1 && family != 2)) return result;  // the connection's own addresses
  // The block: source address, destination address, source port, destination port.
  const uint8_t* block = data + kV2HeaderBytes;
  result.source.ss_family = result.destination.ss_family = family == 1 ? AF_INET : AF_INET6;
  const IpFields s = ip_fields(result.source);
  const IpFields d = ip_fields(result.destination);
  std::memcpy(s.address, block, s.length);
  std::memcpy(d.address, block + s.length, s.length);
  std::memcpy(s.port, block + 2 * s.length, 2);
  std::memcpy(d.port, block + 2 * s.length + 2, 2);
  result.has_addresses = true;
  return result;
}

bool is_ip(const sockaddr_storage& a) { return a.ss_family == AF_INET || a.ss_family == AF_INET6; }

}  // namespace

ProxyParseResult parse_proxy_header(const uint8_t* data, size_t size) {
  if (size == 0) return with_status(ProxyParseStatus::kIncomplete);
  if (matches_prefix(data, size, kV2Signature, sizeof kV2Signature)) {
    return size < sizeof kV2Signature ? with_status(ProxyParseStatus::kIncomplete) : parse_v2(data, size);
  }
  if (matches_prefix(data, size, kV1Prefix, sizeof kV1Prefix)) {
    return size < sizeof kV1Prefix ? with_status(ProxyParseStatus::kIncomplete) : parse_v1(data, size);
  }
  return with_status(ProxyParseStatus::kMissing);
}

size_t encode_proxy_v1(const sockaddr_storage& source, const sockaddr_storage& destination, uint8_t* out) {
  sockaddr_storage src = unmap_ipv4(source);
  sockaddr_storage dst = unmap_ipv4(destination);
  char* text = reinterpret_cast<char*>(out);
  if (!is_ip(src) || src.ss_family != dst.ss_family) {
    std::memcpy(text, "PROXY UNKNOWN\r\n", 15);
    return 15;
  }
  const IpFields s = ip_fields(src);
  const IpFields d = ip_fields(dst);
  char src_host[INET6_ADDRSTRLEN];
  char dst_host[INET6_ADDRSTRLEN];
  inet_ntop(src.ss_family, s.address, src_host, sizeof src_host);
  inet_ntop(dst.ss_family, d.address, dst_host, sizeof dst_host);
  uint16_t src_port;
  uint16_t dst_port;
  std::memcpy(&src_port, s.port, 2);
  std::memcpy(&dst_port, d.port, 2);
  // At most 5+1+4+1+39+1+39+1+5+1+5+2 = 104 bytes, plus the NUL snprintf adds.
  const int n = std::snprintf(text, kProxyEncodeMaxBytes, "PROXY %s %s %s %u %u\r\n",
                              src.ss_family == AF_INET ? "TCP4" : "TCP6", src_host, dst_host,
                              static_cast<unsigned>(ntohs(src_port)), static_cast<unsigned>(ntohs(dst_port)));
  return n < 0 ? 0 : static_cast<size_t>(n);
}

size_t encode_proxy_v2(const sockaddr_storage& source, const sockaddr_storage& destination, uint8_t* out) {
  sockaddr_storage src = unmap_ipv4(source);
  sockaddr_storage dst = unmap_ipv4(destination);
  std::memcpy(out, kV2Signature, sizeof kV2Signature);
  out[12] = 0x21;  // version 2, command PROXY
  if (!is_ip(src) || src.ss_family != dst.ss_family) {
    out[13] = 0x00;  // UNSPEC: the receiver uses the connection's addresses
    out[14] = out[15] = 0;
    return kV2HeaderBytes;
  }
  const IpFields s = ip_fields(src);
  const IpFields d = ip_fields(dst);
  const size_t block_bytes = src.ss_family == AF_INET ? kV2Inet4Bytes : kV2Inet6Bytes;
  out[13] = src.ss_family == AF_INET ? 0x11 : 0x21;  // INET or INET6, STREAM
  out[14] = 0;
  out[15] = static_cast<uint8_t>(block_bytes);
  uint8_t* block = out + kV2HeaderBytes;
  std::memcpy(block, s.address, s.length);
  std::memcpy(block + s.length, d.address, s.length);
  std::memcpy(block + 2 * s.length, s.port, 2);
  std::memcpy(block + 2 * s.length + 2, d.port, 2);
  return kV2HeaderBytes + block_bytes;
}

}  // namespace fulcrum
