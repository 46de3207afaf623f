#pragma once
// The server side of WebSocket framing (RFC 6455), without I/O, for MQTT over WebSockets (MQTT 5.0
// chapter 6, MQTT 3.1.1 section 6). Bytes from the socket go in; the payload of binary frames comes
// out as one MQTT byte stream, whatever the frame boundaries [MQTT-6.0.0-2]; pings are answered and
// the close handshake is done here. Frames are unmasked as they arrive and never buffered whole, so
// a large frame costs no memory here (the MQTT parser bounds packets by max_packet_size).
#include <cstddef>
#include <cstdint>
#include <string>

namespace tern::codec {

class WsFramer {
 public:
  // Close codes of RFC 6455 section 7.4.1.
  static constexpr std::uint16_t kNormal = 1000;
  static constexpr std::uint16_t kProtocolError = 1002;
  static constexpr std::uint16_t kUnsupportedData = 1003;
  static constexpr std::uint16_t kTooBig = 1009;

  // Feeds bytes read from the socket and appends the MQTT bytes they carry to `mqtt`. Returns false
  // once the connection must end: the peer closed, or broke the framing rules (then error() says
  // how). Either way take_control() then gives the close frame to send before closing the socket.
  bool feed(const std::uint8_t* data, std::size_t n, std::string& mqtt);

  // Control frames to send after the data already queued: a pong for the latest ping (only the
  // latest is answered, RFC 6455 5.5.3, so this stays small) and the close frame.
  bool has_control() const { return !pong_.empty() || (close_pending_ && !close_taken_); }
  void take_control(std::string& out);
  bool closed() const { return closed_; }
  // Empty for a clean close by the peer.
  const std::string& error() const { return error_; }

  // Starts the close handshake from this side (e.g. the MQTT connection ended): queues a close frame.
  void close(std::uint16_t code);

  // Writes the header of one unfragmented, unmasked binary frame of `payload` bytes to `out`
  // (room for 10 bytes) and returns its length. Server frames are never masked (RFC 6455 5.1).
  static std::size_t binary_header(std::uint64_t payload, std::uint8_t* out);

 private:
  void fail(std::uint16_t code, const char* why);
  static void control_frame(std::uint8_t opcode, const std::string& payload, std::string& out);
  bool end_of_frame();

  enum class Step { kHeader, kPayload };
  Step step_ = Step::kHeader;
  std::uint8_t hdr_[14]{};
  std::size_t hdr_len_ = 0;
  std::uint8_t opcode_ = 0;  // of the frame being read
  bool fin_ = false;
  std::uint64_t remaining_ = 0;
  std::uint8_t mask_[4]{};
  std::size_t mask_pos_ = 0;
  bool in_message_ = false;  // a fragmented binary message is in progress
  std::string ctrl_payload_;  // the payload of the control frame being read (at most 125 bytes)
  std::string pong_;     // the pong frame not yet taken
  std::string close_frame_;
  std::string error_;
  bool closed_ = false;
  bool close_pending_ = false;
  bool close_taken_ = false;
};

}  // namespace tern::codec
