#include "codec/websocket.hpp"

#include <algorithm>

namespace tern::codec {

namespace {
constexpr std::uint8_t kContinuation = 0x0;
constexpr std::uint8_t kText = 0x1;
constexpr std::uint8_t kBinary = 0x2;
constexpr std::uint8_t kClose = 0x8;
constexpr std::uint8_t kPing = 0x9;
constexpr std::uint8_t kPong = 0xA;

// Header length once the first two bytes are known: 2, plus the extended length, plus the mask.
std::size_t header_length(const std::uint8_t* h) {
  std::size_t n = 2;
  const unsigned len7 = h[1] & 0x7F;
  if (len7 == 126) n += 2;
  if (len7 == 127) n += 8;
  if (h[1] & 0x80) n += 4;
  return n;
}
}  // namespace

std::size_t WsFramer::binary_header(std::uint64_t payload, std::uint8_t* out) {
  out[0] = 0x80 | kBinary;  // FIN, binary [MQTT-6.0.0-1]
  if (payload < 126) {
    out[1] = static_cast<std::uint8_t>(payload);
    return 2;
  }
  if (payload <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<std::uint8_t>(payload >> 8);
    out[3] = static_cast<std::uint8_t>(payload);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(payload >> (56 - 8 * i));
  return 10;
}

void WsFramer::control_frame(std::uint8_t opcode, const std::string& payload, std::string& out) {
  out.push_back(static_cast<char>(0x80 | opcode));
  out.push_back(static_cast<char>(payload.size()));  // control payloads are at most 125 bytes
  out += payload;
}

void WsFramer::take_control(std::string& out) {
  out += pong_;
  pong_.clear();
  if (close_pending_ && !close_taken_) {
    close_taken_ = true;
    out += close_frame_;
  }
}

void WsFramer::close(std::uint16_t code) {
  if (close_pending_) return;
  close_pending_ = true;
  closed_ = true;
  std::string body;
  body.push_back(static_cast<char>(code >> 8));
  body.push_back(static_cast<char>(code & 0xFF));
  control_frame(kClose, body, close_frame_);
}

void WsFramer::fail(std::uint16_t code, const char* why) {
  if (error_.empty()) error_ = why;
  close(code);
}

bool WsFramer::feed(const std::uint8_t* data, std::size_t n, std::string& mqtt) {
  std::size_t i = 0;
  while (i < n && !closed_) {
    if (step_ == Step::kHeader) {
      // Collect the header: two bytes, then as many more as they announce.
      std::size_t want = hdr_len_ < 2 ? 2 : header_length(hdr_);
      while (hdr_len_ < want && i < n) {
        hdr_[hdr_len_++] = data[i++];
        if (hdr_len_ == 2) want = header_length(hdr_);
      }
      if (hdr_len_ < want) break;
      hdr_len_ = 0;
      fin_ = (hdr_[0] & 0x80) != 0;
      opcode_ = hdr_[0] & 0x0F;
      if (hdr_[0] & 0x70) {
        fail(kProtocolError, "reserved bits set (no extension was negotiated)");
        break;
      }
      // A client masks every frame (RFC 6455 5.1).
      if (!(hdr_[1] & 0x80)) {
        fail(kProtocolError, "unmasked frame from a client");
        break;
      }
      std::uint64_t len = hdr_[1] & 0x7F;
      std::size_t p = 2;
      if (len == 126) {
        len = (std::uint64_t{hdr_[2]} << 8) | hdr_[3];
        p = 4;
      } else if (len == 127) {
        len = 0;
        for (int k = 0; k < 8; ++k) len = (len << 8) | hdr_[2 + k];
        p = 10;
        if (len >> 63) {
          fail(kProtocolError, "frame length out of range");
          break;
        }
      }
      std::copy(hdr_ + p, hdr_ + p + 4, mask_);
      mask_pos_ = 0;
      remaining_ = len;
      if (opcode_ >= 0x8) {
        if (opcode_ != kClose && opcode_ != kPing && opcode_ != kPong) {
          fail(kProtocolError, "unknown control opcode");
          break;
        }
        if (!fin_ || len > 125) {
          fail(kProtocolError, "fragmented or oversized control frame");
          break;
        }
        ctrl_payload_.clear();
      } else if (opcode_ == kText) {
        // [MQTT-6.0.0-1] MQTT is carried in binary frames only; any other data frame closes.
        fail(kUnsupportedData, "text frame (MQTT needs binary frames)");
        break;
      } else if (opcode_ == kBinary) {
        if (in_message_) {
          fail(kProtocolError, "new message inside a fragmented one");
          break;
        }
        in_message_ = !fin_;
      } else if (opcode_ == kContinuation) {
        if (!in_message_) {
          fail(kProtocolError, "continuation frame without a message");
          break;
        }
        in_message_ = !fin_;
      } else {
        fail(kProtocolError, "unknown data opcode");
        break;
      }
      step_ = Step::kPayload;
      if (remaining_ == 0 && !end_of_frame()) break;
      continue;
    }
    // Payload: unmask what is here.
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, n - i));
    std::string& sink = opcode_ >= 0x8 ? ctrl_payload_ : mqtt;
    const std::size_t at = sink.size();
    sink.append(reinterpret_cast<const char*>(data + i), take);
    for (std::size_t k = at; k < sink.size(); ++k) sink[k] = static_cast<char>(sink[k] ^ mask_[mask_pos_++ & 3]);
    i += take;
    remaining_ -= take;
    if (remaining_ == 0 && !end_of_frame()) break;
  }
  return !closed_;
}

// A frame's payload is complete; acts on control frames. False once the connection must end.
bool WsFramer::end_of_frame() {
  step_ = Step::kHeader;
  if (opcode_ == kPing) {
    pong_.clear();
    control_frame(kPong, ctrl_payload_, pong_);
  } else if (opcode_ == kClose) {
    // Echo the peer's status code (RFC 6455 5.5.1), then the connection ends.
    if (ctrl_payload_.size() == 1) {
      fail(kProtocolError, "close frame with a one-byte body");
      return false;
    }
    std::uint16_t code = kNormal;
    if (ctrl_payload_.size() >= 2) {
      code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(ctrl_payload_[0]) << 8) |
                                        static_cast<std::uint8_t>(ctrl_payload_[1]));
    }
    // Codes a peer may not send (RFC 6455 7.4) are answered with a protocol error.
    if (code < 1000 || code == 1005 || code == 1006 || code == 1015 || (code > 1015 && code < 3000)) {
      fail(kProtocolError, "close frame with an invalid status code");
      return false;
    }
    close(code);
    return false;
  }
  return true;
}

}  // namespace tern::codec
