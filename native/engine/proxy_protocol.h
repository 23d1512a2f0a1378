// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): the
// header a proxy writes at the start of a TCP stream to tell the next hop who
// the client is. Pure functions on byte buffers, no sockets: the connection
// code peeks at the client's first bytes and asks parse_proxy_header() how
// many of them are a header; it writes encode_proxy_v1/v2() to a backend.
//
//   v1: "PROXY TCP4 192.0.2.1 198.51.100.2 51000 5432\r\n"   (at most 107 bytes)
//       "PROXY UNKNOWN ...\r\n"  (the receiver uses the connection's own addresses)
//   v2: \r\n\r\n\0\r\nQUIT\n, ver|cmd, family|transport, length (2 bytes,
//       network order), then the addresses (12 bytes IPv4, 36 IPv6, 216 unix)
//       and TLVs, which are skipped. Command LOCAL (health checks of the proxy
//       in front) or an unsupported family: the connection's own addresses.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

namespace fulcrum {

// The longest v1 header, CRLF included.
inline constexpr size_t kProxyV1MaxBytes = 107;
// The longest v2 header the engine accepts (16 bytes + addresses + TLVs): a
// larger one is refused as malformed. Cloud load balancers' TLVs (AWS VPC
// endpoint IDs, GCP PSC ids) are tens of bytes.
inline constexpr size_t kProxyV2MaxBytes = 4096;
// Enough for any header encode_proxy_v1/v2 writes (v1: 104, v2: 52).
inline constexpr size_t kProxyEncodeMaxBytes = 108;

enum class ProxyParseStatus : uint8_t {
  kIncomplete,  // a valid prefix so far: wait for more bytes
  kDone,        // a complete header of `length` bytes
  kMissing,     // the bytes do not start with either signature (no header was sent)
  kMalformed,   // a signature, then something the spec does not allow
};

struct ProxyParseResult {
  ProxyParseStatus status = ProxyParseStatus::kIncomplete;
  size_t length = 0;  // kDone: the header's bytes, to consume
  // kDone: whether the header named the client. False for v1 UNKNOWN, v2
  // LOCAL and v2 families without IP addresses: use the connection's own.
  bool has_addresses = false;
  sockaddr_storage source{};       // the client (AF_INET or AF_INET6, port set)
  sockaddr_storage destination{};  // the address the client connected to
};

// Parses the header at the start of data[0, size). Never reads past size.
ProxyParseResult parse_proxy_header(const uint8_t* data, size_t size);

// Writes a header naming source -> destination into out (at least
// kProxyEncodeMaxBytes) and returns its length. IPv4-mapped IPv6 addresses
// are written as IPv4 when both are mapped; two addresses of different
// families (or not IP) give "PROXY UNKNOWN\r\n" (v1) or a PROXY command with
// family UNSPEC (v2), which tell the receiver to use the connection's own.
size_t encode_proxy_v1(const sockaddr_storage& source, const sockaddr_storage& destination, uint8_t* out);
size_t encode_proxy_v2(const sockaddr_storage& source, const sockaddr_storage& destination, uint8_t* out);

}  // namespace fulcrum
