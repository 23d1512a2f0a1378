#include "protocol.h"

namespace fulcrum::bench {

int parse_frame_header(const uint8_t* p, FrameHeader* out, std::string* why) {
  if (p[0] != 'F' || p[1] != 'B') {
    char text[96];
    snprintf(text, sizeof text, "bad magic 0x%02x%02x: not a fulcrum bench client (expected \"FB\")", p[0], p[1]);
    *why = text;
    return static_cast<int>(ErrorCode::kBadMagic);
  }
  if (p[2] != kProtocolVersion) {
    *why = "unsupported protocol version " + std::to_string(p[2]) + " (this server speaks " +
           std::to_string(kProtocolVersion) + ")";
    return static_cast<int>(ErrorCode::kBadVersion);
  }
  const uint8_t type = p[3];
  if (type < static_cast<uint8_t>(FrameType::kHello) || type > static_cast<uint8_t>(FrameType::kError)) {
    *why = "unknown frame type " + std::to_string(type);
    return static_cast<int>(ErrorCode::kBadType);
  }
  const uint32_t length = get_u32(p + 4);
  if (length > kMaxFramePayload) {
    *why = "frame payload of " + std::to_string(length) + " bytes exceeds the limit of " +
           std::to_string(kMaxFramePayload);
    return static_cast<int>(ErrorCode::kBadLength);
  }
  out->type = static_cast<FrameType>(type);
  out->length = length;
  return 0;
}

}  // namespace fulcrum::bench
