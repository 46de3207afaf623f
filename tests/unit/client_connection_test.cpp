// Unit tests of the client state machine (protocol/client_connection) against a scripted fake
// broker: the test plays the server's packets, byte for byte, with a fake clock.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "client/debug_log.hpp"
#include "codec/codec.hpp"
#include "protocol/client_connection.hpp"

namespace {

using namespace tern;
using codec::PacketType;
using protocol::ClientCloseCause;
using protocol::ClientConnection;
using protocol::ClientSettings;
using protocol::LocalError;
using TP = protocol::ClientClock::time_point;

TP at(int seconds) { return TP{} + std::chrono::seconds(1000 + seconds); }

struct Recorder : protocol::ClientHandler {
  std::vector<codec::Connack> connacks;
  std::vector<std::string> messages;  // "topic=payload qQ"
  std::vector<std::pair<std::uint16_t, std::uint8_t>> published;
  std::vector<std::vector<std::uint8_t>> subacks;
  std::vector<ClientCloseCause> closed;
  void on_connack(const codec::Connack& c) override { connacks.push_back(c); }
  void on_message(const codec::Publish& p) override {
    messages.push_back(p.topic + "=" + std::string(p.payload) + " q" + std::to_string(p.qos));
  }
  void on_published(std::uint16_t mid, std::uint8_t reason, const codec::Properties&) override {
    published.emplace_back(mid, reason);
  }
  void on_subscribed(std::uint16_t, const std::vector<std::uint8_t>& codes, const codec::Properties&) override {
    subacks.push_back(codes);
  }
  void on_closed(ClientCloseCause c) override { closed.push_back(c); }
};

// Decodes every packet in `bytes` (as the server would) and clears them.
std::vector<codec::Packet> sent(std::string& bytes, codec::Version v) {
  std::vector<codec::Packet> out;
  std::size_t off = 0;
  while (off < bytes.size()) {
    codec::FrameHeader h;
    codec::DecodeError err;
    auto st = codec::parse_frame(reinterpret_cast<const std::uint8_t*>(bytes.data()) + off, bytes.size() - off,
                                 1u << 28, h, err);
    EXPECT_EQ(st, codec::FrameStatus::kComplete);
    if (st != codec::FrameStatus::kComplete) break;
    codec::Packet p;
    EXPECT_FALSE(codec::decode_packet(h, reinterpret_cast<const std::uint8_t*>(bytes.data()) + off + h.header_size, v, p));
    out.push_back(p);
    off += h.total();
  }
  bytes.clear();
  return out;
}

struct Session {
  explicit Session(ClientSettings s = {}) : conn(rec, std::move(s)) {}
  void serve(const codec::Packet& p, int t = 0) {
    std::string b;
    codec::encode_packet(p, conn.settings().version, b);
    conn.on_bytes(reinterpret_cast<const std::uint8_t*>(b.data()), b.size(), at(t));
  }
  std::vector<codec::Packet> out() { return sent(conn.out(), conn.settings().version); }
  void connect(bool session_present = false, codec::Properties props = {}) {
    conn.start(at(0));
    auto p = out();
    ASSERT_EQ(p.size(), 1u);
    ASSERT_TRUE(std::holds_alternative<codec::Connect>(p[0]));
    serve(codec::Connack{session_present, 0, std::move(props)});
  }
  Recorder rec;
  ClientConnection conn;
};

template <class T>
const T& as(const codec::Packet& p) {
  EXPECT_TRUE(std::holds_alternative<T>(p));
  return std::get<T>(p);
}

TEST(ClientConnection, ConnectSendsTheSettingsAndWaitsForConnack) {
  ClientSettings s;
  s.client_id = "c1";
  s.keepalive = 30;
  s.clean_start = false;
  s.username = "u";
  s.password = "p";
  s.will = codec::Will{"w/t", "bye", 1, true, {}};
  Session t(s);
  t.conn.start(at(0));
  // CONNECT as the server decodes it [MQTT-3.1.0-1: the first packet is CONNECT].
  std::string raw = t.conn.out();
  EXPECT_EQ(raw[0], '\x10');
  EXPECT_EQ(raw.substr(2, 7), std::string("\x00\x04MQTT\x04", 7));
  auto p = t.out();
  const auto& c = as<codec::Connect>(p[0]);
  EXPECT_EQ(c.client_id, "c1");
  EXPECT_EQ(c.keepalive, 30);
  EXPECT_FALSE(c.clean_start);
  EXPECT_EQ(c.username, "u");
  EXPECT_EQ(c.will->topic, "w/t");
  EXPECT_FALSE(t.conn.connected());
  t.serve(codec::Connack{true, 0, {}});
  EXPECT_TRUE(t.conn.connected());
  ASSERT_EQ(t.rec.connacks.size(), 1u);
  EXPECT_TRUE(t.rec.connacks[0].session_present);
}

TEST(ClientConnection, V31UsesMQIsdp) {
  ClientSettings s;
  s.version = codec::Version::kV31;
  s.client_id = "old";
  Session t(s);
  t.conn.start(at(0));
  EXPECT_EQ(t.conn.out().substr(2, 8), std::string("\x00\x06MQIsdp", 8));
}

TEST(ClientConnection, RefusedConnackCloses) {
  Session t;
  t.conn.start(at(0));
  t.out();
  t.serve(codec::Connack{false, 5, {}});
  EXPECT_TRUE(t.conn.closed());
  ASSERT_EQ(t.rec.closed.size(), 1u);
  EXPECT_EQ(t.rec.closed[0], ClientCloseCause::kRefused);
  EXPECT_EQ(t.rec.connacks[0].code, 5);
}

TEST(ClientConnection, FirstPacketMustBeConnack) {
  Session t;
  t.conn.start(at(0));
  t.out();
  t.serve(codec::Pingresp{});
  EXPECT_EQ(t.conn.close_cause(), ClientCloseCause::kProtocolError);
}

TEST(ClientConnection, Qos0IsDoneWhenWritten) {
  Session t;
  t.connect();
  auto mid = t.conn.publish("a/b", "hello", 0, false, {});
  EXPECT_NE(mid, 0);
  auto p = t.out();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(as<codec::Publish>(p[0]).packet_id, 0);
  EXPECT_EQ(as<codec::Publish>(p[0]).payload, "hello");
  ASSERT_EQ(t.rec.published.size(), 1u);
  EXPECT_EQ(t.rec.published[0], std::make_pair(mid, std::uint8_t{0}));
}

TEST(ClientConnection, Qos1FlowEndsOnPuback) {
  Session t;
  t.connect();
  auto mid = t.conn.publish("a", "x", 1, false, {});
  auto p = t.out();
  EXPECT_EQ(as<codec::Publish>(p[0]).packet_id, mid);
  EXPECT_TRUE(t.rec.published.empty());
  t.serve(codec::Ack{PacketType::kPuback, mid, 0, {}});
  ASSERT_EQ(t.rec.published.size(), 1u);
  EXPECT_EQ(t.conn.inflight(), 0u);
}

TEST(ClientConnection, Qos2FlowPubrecPubrelPubcomp) {
  Session t;
  t.connect();
  auto mid = t.conn.publish("a", "x", 2, false, {});
  t.out();
  t.serve(codec::Ack{PacketType::kPubrec, mid, 0, {}});
  auto p = t.out();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(p[0]).type, PacketType::kPubrel);
  EXPECT_EQ(as<codec::Ack>(p[0]).packet_id, mid);
  EXPECT_TRUE(t.rec.published.empty());
  t.serve(codec::Ack{PacketType::kPubcomp, mid, 0, {}});
  ASSERT_EQ(t.rec.published.size(), 1u);
}

TEST(ClientConnection, InflightWindowHoldsTheRestInOrder) {
  ClientSettings s;
  s.max_inflight = 2;
  Session t(s);
  t.connect();
  std::vector<std::uint16_t> mids;
  for (int i = 0; i < 5; ++i) mids.push_back(t.conn.publish("t", std::to_string(i), 1, false, {}));
  auto p = t.out();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(t.conn.pending_messages(), 5u);
  t.serve(codec::Ack{PacketType::kPuback, mids[0], 0, {}});
  p = t.out();
  ASSERT_EQ(p.size(), 1u);  // PUBACK freed one slot: message 2 goes, and nothing more
  EXPECT_EQ(as<codec::Publish>(p[0]).payload, "2");
}

TEST(ClientConnection, ServerReceiveMaximumLowersTheWindow) {
  ClientSettings s;
  s.version = codec::Version::kV5;
  s.max_inflight = 20;
  Session t(s);
  codec::Properties props;
  props.receive_maximum = 1;
  t.connect(false, props);
  t.conn.publish("t", "1", 1, false, {});
  t.conn.publish("t", "2", 1, false, {});
  EXPECT_EQ(t.out().size(), 1u);
}

TEST(ClientConnection, MQTT_4_4_0_1_ResendsInFlightAfterReconnectWithSession) {
  ClientSettings s;
  s.clean_start = false;
  s.client_id = "p";
  Session t(s);
  t.connect();
  auto q1 = t.conn.publish("t", "one", 1, false, {});
  auto q2 = t.conn.publish("t", "two", 2, false, {});
  t.out();
  t.serve(codec::Ack{PacketType::kPubrec, q2, 0, {}});
  t.out();  // PUBREL
  t.conn.on_transport_closed();
  EXPECT_EQ(t.rec.closed.back(), ClientCloseCause::kTransport);
  auto q3 = t.conn.publish("t", "three", 1, false, {});  // offline: buffered
  EXPECT_NE(q3, 0);
  t.connect(/*session_present=*/true);
  auto p = t.out();
  ASSERT_EQ(p.size(), 3u);
  // The unacknowledged PUBLISH again with DUP 1 and its packet id, the PUBREL again, then the new one.
  EXPECT_EQ(as<codec::Publish>(p[0]).packet_id, q1);
  EXPECT_TRUE(as<codec::Publish>(p[0]).dup);
  EXPECT_EQ(as<codec::Ack>(p[1]).type, PacketType::kPubrel);
  EXPECT_EQ(as<codec::Ack>(p[1]).packet_id, q2);
  EXPECT_EQ(as<codec::Publish>(p[2]).packet_id, q3);
  EXPECT_FALSE(as<codec::Publish>(p[2]).dup);
}

TEST(ClientConnection, WithoutSessionReleasedQos2IsCompleteAndQos1IsSentAgain) {
  Session t;
  t.connect();
  auto q1 = t.conn.publish("t", "one", 1, false, {});
  auto q2 = t.conn.publish("t", "two", 2, false, {});
  t.out();
  t.serve(codec::Ack{PacketType::kPubrec, q2, 0, {}});
  t.out();
  t.conn.on_transport_closed();
  t.connect(/*session_present=*/false);
  auto p = t.out();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(as<codec::Publish>(p[0]).packet_id, q1);
  ASSERT_EQ(t.rec.published.size(), 1u);
  EXPECT_EQ(t.rec.published[0].first, q2);
}

TEST(ClientConnection, OfflineBufferIsBounded) {
  ClientSettings s;
  s.max_queued_messages = 3;
  Session t(s);
  LocalError e;
  for (int i = 0; i < 3; ++i) EXPECT_NE(t.conn.publish("t", "x", 1, false, {}, &e), 0);
  EXPECT_EQ(t.conn.publish("t", "x", 0, false, {}, &e), 0);
  EXPECT_EQ(e, LocalError::kQueueFull);
  ClientSettings b;
  b.max_queued_bytes = 10;
  Session tb(b);
  EXPECT_NE(tb.conn.publish("t", "12345678", 0, false, {}, &e), 0);
  EXPECT_EQ(tb.conn.publish("t", "12", 0, false, {}, &e), 0);
  EXPECT_EQ(e, LocalError::kQueueFull);
  tb.connect();
  EXPECT_EQ(tb.out().size(), 1u);  // the buffered QoS 0 message goes out on connect
}

TEST(ClientConnection, InvalidPublishIsRefused) {
  Session t;
  t.connect();
  LocalError e;
  EXPECT_EQ(t.conn.publish("a/+", "x", 0, false, {}, &e), 0);
  EXPECT_EQ(e, LocalError::kInvalid);
  EXPECT_EQ(t.conn.publish("a", "x", 3, false, {}, &e), 0);
}

TEST(ClientConnection, ServerLimitsRefuseQosRetainAndSize) {
  ClientSettings s;
  s.version = codec::Version::kV5;
  Session t(s);
  codec::Properties props;
  props.maximum_qos = 1;
  props.retain_available = 0;
  props.maximum_packet_size = 20;
  t.connect(false, props);
  LocalError e;
  EXPECT_EQ(t.conn.publish("t", "x", 2, false, {}, &e), 0);
  EXPECT_EQ(e, LocalError::kQosNotSupported);
  EXPECT_EQ(t.conn.publish("t", "x", 0, true, {}, &e), 0);
  EXPECT_EQ(e, LocalError::kRetainNotSupported);
  auto mid = t.conn.publish("t", std::string(100, 'x'), 1, false, {}, &e);
  EXPECT_NE(mid, 0);
  EXPECT_TRUE(t.out().empty());  // never sent: larger than the server's Maximum Packet Size
  ASSERT_EQ(t.rec.published.size(), 1u);
  EXPECT_EQ(t.rec.published[0].second, 0x95);
  EXPECT_EQ(t.conn.inflight(), 0u);
}

TEST(ClientConnection, MQTT_4_3_3_1_InboundQos2DeliveredOnceOnPubrel) {
  Session t;
  t.connect();
  codec::Publish p;
  p.qos = 2;
  p.topic = "in";
  p.packet_id = 7;
  p.payload = "m";
  t.serve(p);
  EXPECT_TRUE(t.rec.messages.empty());  // held until PUBREL
  p.dup = true;
  t.serve(p);  // resent before PUBREL: acknowledged, not stored twice
  auto out = t.out();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(as<codec::Ack>(out[0]).type, PacketType::kPubrec);
  EXPECT_EQ(as<codec::Ack>(out[1]).type, PacketType::kPubrec);
  t.serve(codec::Ack{PacketType::kPubrel, 7, 0, {}});
  EXPECT_EQ(t.rec.messages, std::vector<std::string>{"in=m q2"});
  out = t.out();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(out[0]).type, PacketType::kPubcomp);
  t.serve(codec::Ack{PacketType::kPubrel, 7, 0, {}});  // a resent PUBREL: PUBCOMP again, no message
  EXPECT_EQ(t.rec.messages.size(), 1u);
  EXPECT_EQ(t.out().size(), 1u);
  p.dup = false;
  t.serve(p);  // a new message with the id reused
  t.serve(codec::Ack{PacketType::kPubrel, 7, 0, {}});
  EXPECT_EQ(t.rec.messages.size(), 2u);
}

TEST(ClientConnection, InboundQos1IsAcknowledged) {
  Session t;
  t.connect();
  codec::Publish p;
  p.qos = 1;
  p.topic = "in";
  p.packet_id = 9;
  p.payload = "m";
  t.serve(p);
  auto out = t.out();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(out[0]).type, PacketType::kPuback);
  EXPECT_EQ(as<codec::Ack>(out[0]).packet_id, 9);
}

TEST(ClientConnection, PacketsSplitAcrossReads) {
  Session t;
  t.connect();
  codec::Publish p;
  p.topic = "split";
  p.payload = "abcdef";
  std::string b;
  codec::encode_packet(p, codec::Version::kV311, b);
  codec::encode_packet(p, codec::Version::kV311, b);
  for (char ch : b) t.conn.on_bytes(reinterpret_cast<const std::uint8_t*>(&ch), 1, at(1));
  EXPECT_EQ(t.rec.messages.size(), 2u);
}

TEST(ClientConnection, KeepalivePingsAndTimesOut) {
  ClientSettings s;
  s.keepalive = 10;
  Session t(s);
  t.connect();
  t.conn.on_tick(at(5));
  EXPECT_TRUE(t.out().empty());
  t.conn.on_tick(at(10));
  auto p = t.out();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<codec::Pingreq>(p[0]));
  t.serve(codec::Pingresp{}, 11);
  t.conn.on_tick(at(20));
  EXPECT_EQ(t.out().size(), 1u);  // the next PINGREQ
  t.conn.on_tick(at(29));
  EXPECT_TRUE(t.conn.connected());
  t.conn.on_tick(at(30));  // no PINGRESP within the keepalive
  EXPECT_EQ(t.conn.close_cause(), ClientCloseCause::kKeepaliveTimeout);
}

TEST(ClientConnection, ServerKeepAliveOverridesOurs) {
  ClientSettings s;
  s.version = codec::Version::kV5;
  s.keepalive = 100;
  Session t(s);
  codec::Properties props;
  props.server_keep_alive = 5;
  t.connect(false, props);
  t.conn.on_tick(at(5));
  EXPECT_EQ(t.out().size(), 1u);
}

TEST(ClientConnection, InboundTopicAliases) {
  ClientSettings s;
  s.version = codec::Version::kV5;
  s.connect_props.topic_alias_maximum = 2;
  Session t(s);
  t.connect();
  codec::Publish p;
  p.topic = "long/topic";
  p.props.topic_alias = 1;
  p.payload = "1";
  t.serve(p);
  p.topic.clear();
  p.payload = "2";
  t.serve(p);
  EXPECT_EQ(t.rec.messages, (std::vector<std::string>{"long/topic=1 q0", "long/topic=2 q0"}));
  p.props.topic_alias = 2;  // never set
  t.serve(p);
  EXPECT_EQ(t.conn.close_cause(), ClientCloseCause::kProtocolError);
  auto out = t.out();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(out[0]).reason, 0x82);
}

TEST(ClientConnection, AliasAboveOurMaximumIsAnError) {
  ClientSettings s;
  s.version = codec::Version::kV5;
  Session t(s);  // Topic Alias Maximum 0: the server may not use aliases
  t.connect();
  codec::Publish p;
  p.topic = "x";
  p.props.topic_alias = 1;
  t.serve(p);
  EXPECT_EQ(t.conn.close_cause(), ClientCloseCause::kProtocolError);
}

TEST(ClientConnection, SubscribeAndUnsubscribe) {
  Session t;
  EXPECT_EQ(t.conn.subscribe({{"a/#", 1}}), 0);  // not connected
  t.connect();
  auto mid = t.conn.subscribe({{"a/#", 1}, {"b", 2}});
  auto p = t.out();
  ASSERT_EQ(as<codec::Subscribe>(p[0]).topics.size(), 2u);
  t.serve(codec::SubAck{PacketType::kSuback, mid, {1, 0x80}, {}});
  ASSERT_EQ(t.rec.subacks.size(), 1u);
  EXPECT_EQ(t.rec.subacks[0], (std::vector<std::uint8_t>{1, 0x80}));
  auto umid = t.conn.unsubscribe({"a/#"});
  EXPECT_TRUE(std::holds_alternative<codec::Unsubscribe>(t.out()[0]));
  t.serve(codec::SubAck{PacketType::kUnsuback, umid, {}, {}});
  EXPECT_TRUE(t.conn.connected());
  t.serve(codec::SubAck{PacketType::kSuback, 999, {0}, {}});  // never asked
  EXPECT_EQ(t.conn.close_cause(), ClientCloseCause::kProtocolError);
}

TEST(ClientConnection, ServerDisconnectAndClientDisconnect) {
  ClientSettings s;
  s.version = codec::Version::kV5;
  Session t(s);
  t.connect();
  t.serve(codec::Disconnect{0x8B, {}});
  EXPECT_EQ(t.conn.close_cause(), ClientCloseCause::kServerDisconnect);
  Session u(s);
  u.connect();
  u.conn.disconnect(0x04);
  auto p = u.out();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(p[0]).reason, 0x04);
  EXPECT_EQ(u.conn.close_cause(), ClientCloseCause::kClientDisconnect);
}

// The -d lines, compared with what mosquitto_pub/mosquitto_sub 2.0.11 print (captured from them).
namespace debug_lines {

using tern::client::packet_log_lines;

std::string one(std::string_view id, bool sent, const codec::Packet& p, std::size_t size = 0, std::uint16_t mid = 0) {
  auto lines = packet_log_lines(id, sent, p, size, mid);
  EXPECT_EQ(lines.size(), 1u);
  return lines.empty() ? "" : lines[0];
}

TEST(ClientDebugLog, MatchesLibmosquittoWording) {
  EXPECT_EQ(one("", true, codec::Connect{}), "Client (null) sending CONNECT");
  EXPECT_EQ(one("", false, codec::Connack{}), "Client (null) received CONNACK (0)");
  codec::Connack assigned;
  assigned.props.assigned_client_id = "auto-1";
  EXPECT_EQ(one("", false, assigned), "Client auto-1 received CONNACK (0)");
  codec::Publish p;
  p.qos = 2;
  p.topic = "a/b";
  EXPECT_EQ(one("", true, p, 5, 1), "Client (null) sending PUBLISH (d0, q2, r0, m1, 'a/b', ... (5 bytes))");
  p.qos = 1;
  p.packet_id = 2;
  EXPECT_EQ(one("subby", false, p, 3), "Client subby received PUBLISH (d0, q1, r0, m2, 'a/b', ... (3 bytes))");
  EXPECT_EQ(one("me", false, codec::Ack{PacketType::kPuback, 1, 16, {}}), "Client me received PUBACK (Mid: 1, RC:16)");
  EXPECT_EQ(one("x", false, codec::Ack{PacketType::kPubrec, 1, 0, {}}), "Client x received PUBREC (Mid: 1)");
  EXPECT_EQ(one("x", true, codec::Ack{PacketType::kPubrel, 1, 0, {}}), "Client x sending PUBREL (m1)");
  EXPECT_EQ(one("x", false, codec::Ack{PacketType::kPubcomp, 1, 0, {}}), "Client x received PUBCOMP (Mid: 1, RC:0)");
  EXPECT_EQ(one("subby", true, codec::Ack{PacketType::kPuback, 1, 0, {}}), "Client subby sending PUBACK (m1, rc0)");
  EXPECT_EQ(one("subby", true, codec::Ack{PacketType::kPubrec, 2, 0, {}}), "Client subby sending PUBREC (m2, rc0)");
  EXPECT_EQ(one("subby", false, codec::Ack{PacketType::kPubrel, 2, 0, {}}), "Client subby received PUBREL (Mid: 2)");
  EXPECT_EQ(one("subby", true, codec::Ack{PacketType::kPubcomp, 2, 0, {}}), "Client subby sending PUBCOMP (m2)");
  EXPECT_EQ(one("s", false, codec::SubAck{PacketType::kSuback, 1, {1}, {}}), "Client s received SUBACK");
  EXPECT_EQ(one("s", false, codec::SubAck{PacketType::kUnsuback, 2, {}, {}}), "Client s received UNSUBACK");
  EXPECT_EQ(one("p", true, codec::Pingreq{}), "Client p sending PINGREQ");
  EXPECT_EQ(one("p", false, codec::Pingresp{}), "Client p received PINGRESP");
  EXPECT_EQ(one("p", true, codec::Disconnect{}), "Client p sending DISCONNECT");
  codec::Subscribe s;
  s.packet_id = 1;
  s.topics = {{"a/b", 1}, {"x/#", 1}};
  EXPECT_EQ(packet_log_lines("c", true, s, 0, 0),
            (std::vector<std::string>{"Client c sending SUBSCRIBE (Mid: 1, Topic: a/b, QoS: 1, Options: 0x00)",
                                      "Client c sending SUBSCRIBE (Mid: 1, Topic: x/#, QoS: 1, Options: 0x00)"}));
  EXPECT_EQ(one("c", true, codec::Unsubscribe{2, {"z"}, {}}), "Client c sending UNSUBSCRIBE (Mid: 2, Topic: z)");
}

}  // namespace debug_lines

}  // namespace
