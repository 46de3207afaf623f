// Unit tests for MQTT over WebSockets: the frame codec (RFC 6455 framing, MQTT 5.0 chapter 6) and
// the HTTP opening handshake, both without sockets.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "codec/websocket.hpp"
#include "net/ws_handshake.hpp"

namespace {

using tern::codec::WsFramer;
using tern::net::WsHandshake;

// One client frame: FIN flag, opcode, payload, masked with a fixed key (clients always mask).
std::string client_frame(std::uint8_t opcode, const std::string& payload, bool fin = true, bool masked = true) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
  const std::uint8_t m = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(m | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    f.push_back(static_cast<char>(m | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size() & 0xFF));
  } else {
    f.push_back(static_cast<char>(m | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((std::uint64_t{payload.size()} >> (8 * i)) & 0xFF));
  }
  const std::uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (masked) f.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    f.push_back(static_cast<char>(payload[i] ^ (masked ? key[i & 3] : 0)));
  }
  return f;
}

bool feed(WsFramer& w, const std::string& bytes, std::string& out) {
  return w.feed(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), out);
}

std::string control(WsFramer& w) {
  std::string c;
  w.take_control(c);
  return c;
}

const std::string kPingreq("\xC0\x00", 2);

TEST(WebSocket, BinaryFramesCarryMqttBytes) {
  WsFramer w;
  std::string out;
  EXPECT_TRUE(feed(w, client_frame(2, kPingreq), out));
  EXPECT_EQ(out, kPingreq);
  EXPECT_FALSE(w.has_control());
}

// [MQTT-6.0.0-2] packets need not line up with frames: one packet split over fragments and frames,
// two packets in one frame, and a frame split over reads all give the same byte stream.
TEST(WebSocket, MQTT_6_0_0_2_PacketsAreNotAlignedWithFrames) {
  const std::string connect("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14);
  WsFramer w;
  std::string out;
  std::string wire = client_frame(2, connect.substr(0, 5), false) + client_frame(0, connect.substr(5, 4), false) +
                     client_frame(9, "hi") +  // a ping between fragments is allowed
                     client_frame(0, connect.substr(9), true) + client_frame(2, kPingreq + kPingreq);
  for (char ch : wire) ASSERT_TRUE(feed(w, std::string(1, ch), out));
  EXPECT_EQ(out, connect + kPingreq + kPingreq);
  EXPECT_EQ(control(w), std::string("\x8A\x02hi", 4));  // the pong echoes the ping's payload
}

TEST(WebSocket, LongLengthsAreDecoded) {
  for (std::size_t n : {125u, 126u, 65535u, 65536u, 200000u}) {
    WsFramer w;
    std::string payload(n, 'x');
    std::string out;
    ASSERT_TRUE(feed(w, client_frame(2, payload), out));
    EXPECT_EQ(out.size(), n);
    EXPECT_EQ(out, payload);
  }
}

// [MQTT-6.0.0-1] MQTT goes in binary frames; any other data frame closes the connection.
TEST(WebSocket, MQTT_6_0_0_1_TextFrameClosesTheConnection) {
  WsFramer w;
  std::string out;
  EXPECT_FALSE(feed(w, client_frame(1, "hello"), out));
  EXPECT_TRUE(out.empty());
  EXPECT_NE(w.error().find("text frame"), std::string::npos);
  EXPECT_EQ(control(w), std::string("\x88\x02\x03\xEB", 4));  // close 1003 unsupported data
  // Nothing more is read after the close.
  EXPECT_FALSE(feed(w, client_frame(2, kPingreq), out));
  EXPECT_TRUE(out.empty());
}

TEST(WebSocket, FramingViolationsClose1002) {
  struct Case {
    std::string wire;
    const char* what;
  } cases[] = {
      {client_frame(2, kPingreq, true, false), "unmasked"},
      {std::string("\xC2\x80\x00\x00\x00\x00", 6), "reserved bits"},
      {client_frame(0, "x"), "continuation frame without a message"},
      {client_frame(2, "a", false) + client_frame(2, "b"), "new message inside"},
      {client_frame(9, "p", false), "fragmented or oversized control"},
      {client_frame(9, std::string(126, 'p')), "fragmented or oversized control"},
      {client_frame(0xB, ""), "unknown control opcode"},
      {client_frame(3, "x"), "unknown data opcode"},
      {client_frame(8, "x"), "one-byte body"},
      {client_frame(8, std::string("\x03\xED", 2)), "invalid status code"},  // 1005 may not be sent
  };
  for (const auto& c : cases) {
    WsFramer w;
    std::string out;
    EXPECT_FALSE(feed(w, c.wire, out)) << c.what;
    EXPECT_NE(w.error().find(c.what), std::string::npos) << w.error();
    EXPECT_EQ(control(w), std::string("\x88\x02\x03\xEA", 4)) << c.what;  // close 1002
  }
}

TEST(WebSocket, CloseFromThePeerIsEchoed) {
  WsFramer w;
  std::string out;
  EXPECT_FALSE(feed(w, client_frame(8, std::string("\x03\xE9", 2) + "bye"), out));  // 1001 going away
  EXPECT_TRUE(w.error().empty());
  EXPECT_EQ(control(w), std::string("\x88\x02\x03\xE9", 4));
  EXPECT_FALSE(w.has_control());  // taken once
  WsFramer empty;
  EXPECT_FALSE(feed(empty, client_frame(8, ""), out));
  EXPECT_EQ(control(empty), std::string("\x88\x02\x03\xE8", 4));  // no code: 1000
}

TEST(WebSocket, OnlyTheLatestPingIsAnswered) {
  WsFramer w;
  std::string out;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(feed(w, client_frame(9, "ping" + std::to_string(i)), out));
  EXPECT_EQ(control(w), std::string("\x8A\x07ping999", 9));
}

TEST(WebSocket, ServerFramesAreUnmaskedBinary) {
  std::uint8_t h[10];
  ASSERT_EQ(WsFramer::binary_header(2, h), 2u);
  EXPECT_EQ(h[0], 0x82);
  EXPECT_EQ(h[1], 2);
  ASSERT_EQ(WsFramer::binary_header(300, h), 4u);
  EXPECT_EQ(h[1], 126);
  EXPECT_EQ((h[2] << 8) | h[3], 300);
  ASSERT_EQ(WsFramer::binary_header(70000, h), 10u);
  EXPECT_EQ(h[1], 127);
  EXPECT_EQ((h[7] << 16) | (h[8] << 8) | h[9], 70000);
}

std::string upgrade_request(const std::string& protocols) {
  std::string r =
      "GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
  if (!protocols.empty()) r += "Sec-WebSocket-Protocol: " + protocols + "\r\n";
  return r + "\r\n";
}

TEST(WebSocketHandshake, AcceptKeyFromRfc6455) {
  // The example of RFC 6455 section 1.3.
  EXPECT_EQ(WsHandshake::accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

// [MQTT-6.0.0-4] the subprotocol selected and returned is "mqtt".
TEST(WebSocketHandshake, MQTT_6_0_0_4_SelectsTheMqttSubprotocol) {
  WsHandshake h(4096, "");
  const std::string req = upgrade_request("chat, mqtt") + std::string("\x82", 1);  // a frame starts early
  std::string first = req.substr(0, 20);
  EXPECT_EQ(h.feed(first.data(), first.size()), WsHandshake::Status::kIncomplete);
  std::string second = req.substr(20);
  ASSERT_EQ(h.feed(second.data(), second.size()), WsHandshake::Status::kUpgrade);
  EXPECT_EQ(h.subprotocol(), "mqtt");
  EXPECT_EQ(h.rest(), std::string("\x82", 1));
  const std::string& r = h.response();
  EXPECT_EQ(r.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0u);
  EXPECT_NE(r.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
  EXPECT_NE(r.find("Sec-WebSocket-Protocol: mqtt\r\n"), std::string::npos);
}

TEST(WebSocketHandshake, Mqttv31AndNoSubprotocol) {
  WsHandshake v31(4096, "");
  std::string req = upgrade_request("mqttv3.1");
  ASSERT_EQ(v31.feed(req.data(), req.size()), WsHandshake::Status::kUpgrade);
  EXPECT_NE(v31.response().find("Sec-WebSocket-Protocol: mqttv3.1\r\n"), std::string::npos);
  WsHandshake none(4096, "");
  req = upgrade_request("");
  ASSERT_EQ(none.feed(req.data(), req.size()), WsHandshake::Status::kUpgrade);
  EXPECT_EQ(none.response().find("Sec-WebSocket-Protocol"), std::string::npos);
}

TEST(WebSocketHandshake, BadRequestsAreRefused) {
  struct Case {
    std::string req;
    const char* status;
  } cases[] = {
      {upgrade_request("chat"), "400"},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "426"},  // plain HTTP without http_dir
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "405"},
      {"GARBAGE\r\n\r\n", "400"},
      {std::string("\x10\x0c\x00\x04MQTT", 8), "400"},  // MQTT on the WebSocket port: refused at once
      {std::string(upgrade_request("mqtt")).replace(upgrade_request("mqtt").find("13\r\n"), 2, "8"), "426"},
      {"GET / HTTP/1.1\r\nX: " + std::string(5000, 'a') + "\r\n\r\n", "431"},
  };
  for (const auto& c : cases) {
    WsHandshake h(4096, "");
    EXPECT_EQ(h.feed(c.req.data(), c.req.size()), WsHandshake::Status::kReject) << c.req.substr(0, 40);
    EXPECT_EQ(h.response().substr(9, 3), c.status) << h.response();
    EXPECT_FALSE(h.error().empty());
  }
  // A head that never ends is refused once it passes the limit, not buffered without bound.
  WsHandshake h(1024, "");
  std::string chunk = "GET /" + std::string(600, 'a');
  EXPECT_EQ(h.feed(chunk.data(), chunk.size()), WsHandshake::Status::kIncomplete);
  EXPECT_EQ(h.feed(chunk.data(), chunk.size()), WsHandshake::Status::kReject);
}

TEST(WebSocketHandshake, HttpDirServesFilesInsideItOnly) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("tern-http-" + std::to_string(::getpid()));
  fs::create_directories(dir / "sub");
  std::ofstream(dir / "index.html") << "<h1>tern</h1>";
  std::ofstream(dir / "sub" / "app.js") << "x=1";
  auto get = [&](const std::string& target) {
    WsHandshake h(4096, dir.string());
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n";
    h.feed(req.data(), req.size());
    return h.response();
  };
  std::string r = get("/");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_NE(r.find("Content-Type: text/html"), std::string::npos);
  EXPECT_NE(r.find("\r\n\r\n<h1>tern</h1>"), std::string::npos);
  EXPECT_NE(get("/sub/app.js?v=2").find("text/javascript"), std::string::npos);
  EXPECT_EQ(get("/missing").substr(9, 3), "404");
  EXPECT_EQ(get("/../etc/passwd").substr(9, 3), "403");
  EXPECT_EQ(get("/sub/../../x").substr(9, 3), "403");
  fs::remove_all(dir);
}

}  // namespace
