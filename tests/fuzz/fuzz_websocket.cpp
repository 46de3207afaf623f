// The WebSocket layer: the opening handshake and the frame codec on arbitrary bytes.
// The first input byte picks the part; for frames, bit 1-7 pick a chunk size, and feeding the same
// bytes whole and in chunks must give the same MQTT stream, end state, error and control frames.
#include <algorithm>
#include <string>

#include "codec/websocket.hpp"
#include "fuzz_common.hpp"
#include "net/ws_handshake.hpp"

namespace {

struct Run {
  bool open = true;
  std::string mqtt;
  std::string control;
  std::string error;
};

Run frames(const std::uint8_t* data, std::size_t n, std::size_t chunk) {
  tern::codec::WsFramer w;
  Run r;
  for (std::size_t i = 0; i < n && r.open; i += chunk) {
    const std::size_t len = std::min(chunk, n - i);
    r.open = w.feed(data + i, len, r.mqtt);
  }
  w.take_control(r.control);
  r.error = w.error();
  FUZZ_CHECK(r.open == !w.closed());
  FUZZ_CHECK(!w.has_control());
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  ++data;
  --size;
  if (mode & 1) {
    tern::net::WsHandshake h(1024, "");
    auto st = h.feed(reinterpret_cast<const char*>(data), size);
    if (st == tern::net::WsHandshake::Status::kUpgrade) {
      FUZZ_CHECK(h.response().rfind("HTTP/1.1 101 ", 0) == 0);
      FUZZ_CHECK(h.subprotocol().empty() || h.subprotocol() == "mqtt" || h.subprotocol() == "mqttv3.1");
    } else if (st != tern::net::WsHandshake::Status::kIncomplete) {
      FUZZ_CHECK(h.response().rfind("HTTP/1.1 4", 0) == 0);
    }
    return 0;
  }
  const Run whole = frames(data, size, size == 0 ? 1 : size);
  const Run parts = frames(data, size, (mode >> 1) + 1);
  // Unmasking never makes data: the MQTT stream is at most the input, minus at least a header.
  FUZZ_CHECK(whole.mqtt.size() <= size);
  FUZZ_CHECK(whole.mqtt == parts.mqtt);
  FUZZ_CHECK(whole.open == parts.open);
  FUZZ_CHECK(whole.error == parts.error);
  FUZZ_CHECK(whole.control == parts.control);
  // Control output: at most one pong (2 + 125 bytes) and one close frame (4 bytes).
  FUZZ_CHECK(whole.control.size() <= 127 + 4);
  return 0;
}
