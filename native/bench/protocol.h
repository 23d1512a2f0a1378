// The bench wire protocol (version 1), spoken between `fulcrum bench client`
// and `fulcrum bench server`. Documented for users in docs/bench-protocol.md;
// src/bench/protocol.ts is the TypeScript side of the same format.
//
// TCP: every connection starts with one frame, HELLO, that says what the
// connection is for. A frame is an 8-byte header and a payload:
//   offset 0  u8[2]  magic 'F' 'B'
//          2  u8     version (kProtocolVersion)
//          3  u8     type (FrameType)
//          4  u32    payload length, big endian, <= kMaxFramePayload
// After HELLO a data connection carries raw bytes; only the control connection
// keeps exchanging frames. All integers are big endian.
//
// UDP: every datagram starts with a 24-byte header (the rest is padding up to
// the message size):
//   offset 0  u8[2]  magic 'F' 'U'
//          2  u8     version
//          3  u8     kind (DatagramKind)
//          4  u32    session (from SESSION; 0 for echo requests)
//          8  u32    flow index (< kMaxFlows)
//         12  u32    reserved, 0
//         16  u64    sequence number within the flow, from 0
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace fulcrum::bench {

inline constexpr uint8_t kProtocolVersion = 1;
inline constexpr size_t kFrameHeaderSize = 8;
inline constexpr uint32_t kMaxFramePayload = 64 * 1024;
inline constexpr size_t kDatagramHeaderSize = 24;
inline constexpr uint32_t kMaxStreams = 256;
inline constexpr uint32_t kMaxFlows = 1024;

enum class FrameType : uint8_t {
  // client -> server, first frame of every TCP connection. Payload 12 bytes:
  // role u8, reserved u8[3], session u32, argument u32.
  kHello = 1,
  // server -> client on a control connection, answer to HELLO. Payload 12
  // bytes: session u32, max streams u32, max flows u32.
  kSession = 2,
  // client -> server on a control connection: "what did you count?" Empty.
  kResultsRequest = 3,
  // server -> client: stream count u32, flow count u32, then per stream
  // {received u64, sent u64, state u8, reserved u8[7]} (24 bytes), then per
  // flow {datagrams u64, bytes u64, reordered u64, highest sequence u64} (32 bytes).
  kResults = 4,
  // server -> client before the server closes a connection it refuses:
  // code u16, then a UTF-8 message (no terminator).
  kError = 5,
};

enum class Role : uint8_t {
  kControl = 1,   // frames: SESSION, RESULTS_REQUEST, RESULTS
  kSink = 2,      // client sends; server reads and counts until EOF. argument: stream index
  kSource = 3,    // server sends as fast as it can until the client's EOF. argument: stream index
  kEcho = 4,      // server echoes every byte until EOF (ping-pong latency)
  kEchoOnce = 5,  // server echoes `argument` bytes, then closes (connection rate)
};

enum class DatagramKind : uint8_t {
  kData = 1,         // counted against (session, flow)
  kEchoRequest = 2,  // sent back unchanged to the sender
};

// ERROR codes.
enum class ErrorCode : uint16_t {
  kBadMagic = 1,
  kBadVersion = 2,
  kBadType = 3,
  kBadLength = 4,
  kBadRole = 5,
  kUnknownSession = 6,
  kBadStream = 7,
  kBusy = 8,  // too many sessions open
};

// The state of a stream in RESULTS.
enum class StreamState : uint8_t { kUnused = 0, kOpen = 1, kDone = 2 };

inline void put_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
inline void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
}
inline uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t get_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
inline uint64_t get_u64(const uint8_t* p) { return (uint64_t{get_u32(p)} << 32) | get_u32(p + 4); }

// Writes a frame header for `type` and `length` at p (kFrameHeaderSize bytes).
inline void put_frame_header(uint8_t* p, FrameType type, uint32_t length) {
  p[0] = 'F';
  p[1] = 'B';
  p[2] = kProtocolVersion;
  p[3] = static_cast<uint8_t>(type);
  put_u32(p + 4, length);
}

struct FrameHeader {
  FrameType type;
  uint32_t length;
};

// Checks a received frame header. Returns 0 and fills *out, or the ErrorCode
// (as a positive int) with *why set to a message for the peer.
int parse_frame_header(const uint8_t* p, FrameHeader* out, std::string* why);

// A HELLO frame (header + payload) into p (kFrameHeaderSize + 12 bytes).
inline constexpr size_t kHelloFrameSize = kFrameHeaderSize + 12;
inline void put_hello(uint8_t* p, Role role, uint32_t session, uint32_t argument) {
  put_frame_header(p, FrameType::kHello, 12);
  p[8] = static_cast<uint8_t>(role);
  p[9] = p[10] = p[11] = 0;
  put_u32(p + 12, session);
  put_u32(p + 16, argument);
}

// A datagram header into p (kDatagramHeaderSize bytes).
inline void put_datagram_header(uint8_t* p, DatagramKind kind, uint32_t session, uint32_t flow, uint64_t seq) {
  p[0] = 'F';
  p[1] = 'U';
  p[2] = kProtocolVersion;
  p[3] = static_cast<uint8_t>(kind);
  put_u32(p + 4, session);
  put_u32(p + 8, flow);
  put_u32(p + 12, 0);
  put_u64(p + 16, seq);
}

}  // namespace fulcrum::bench
