// Unit tests of the sans-I/O server state machine (protocol::ServerConnection): bytes and time go in,
// bytes to send and handler calls come out. Test names quote the MQTT statement they check.
#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "codec/codec.hpp"
#include "protocol/server_connection.hpp"

namespace {

using namespace std::chrono_literals;
using tern::Reason;
using tern::codec::Version;
using tern::protocol::CloseCause;
using tern::protocol::Delivery;
using tern::protocol::Message;
using tern::protocol::MessagePtr;
using tern::protocol::OutboundFlight;
using tern::protocol::ServerConnection;
using tern::protocol::ServerLimits;
using tern::protocol::SessionState;
using tern::protocol::TimePoint;
namespace codec = tern::codec;

// Records every call; accepts on a SessionState it owns, or refuses when told to.
struct FakeHandler : tern::protocol::ConnectionHandler {
  SessionState state;
  bool session_present = false;
  std::optional<Reason> refuse_with;
  Reason publish_reason = Reason::kSuccess;
  Reason authorize = Reason::kSuccess;

  int connects = 0;
  std::optional<codec::Connect> last_connect;
  std::vector<MessagePtr> published;
  std::vector<std::size_t> out_size_at_publish;  // bytes queued when on_publish ran
  std::vector<std::vector<std::uint8_t>> subscribe_codes;
  int subscribed_calls = 0;
  int unsubscribes = 0;
  int closes = 0;
  CloseCause closed_cause = CloseCause::kNone;
  bool will_at_close = false;
  std::vector<std::string> logs;

  Reason authorize_publish(ServerConnection&, const Message&) override { return authorize; }
  void on_connect(ServerConnection& c, codec::Connect& connect) override {
    ++connects;
    last_connect = connect;
    if (refuse_with) {
      c.refuse(*refuse_with);
      return;
    }
    // Like the broker (shard.cpp): CONNACK properties the protocol layer decided go back in accept().
    codec::Properties props;
    if (connect.props.assigned_client_id) props.assigned_client_id = connect.props.assigned_client_id;
    if (connect.props.server_keep_alive) props.server_keep_alive = connect.props.server_keep_alive;
    c.accept(&state, session_present, std::move(props));
  }
  Reason on_publish(ServerConnection& c, const MessagePtr& m) override {
    published.push_back(m);
    out_size_at_publish.push_back(c.out().size());
    return publish_reason;
  }
  void on_subscribe(ServerConnection&, const codec::Subscribe&, std::vector<std::uint8_t>& codes) override {
    subscribe_codes.push_back(codes);
  }
  void on_subscribed(ServerConnection&, const codec::Subscribe&, const std::vector<std::uint8_t>&) override {
    ++subscribed_calls;
  }
  void on_unsubscribe(ServerConnection&, const codec::Unsubscribe&, std::vector<std::uint8_t>&) override {
    ++unsubscribes;
  }
  void on_closed(ServerConnection& c, CloseCause cause) override {
    ++closes;
    closed_cause = cause;
    will_at_close = c.will() != nullptr;
  }
  void log(int, const std::string& line) override { logs.push_back(line); }
};

// One connection, a fake clock (t0 plus offsets) and a decoder for what the server sends.
struct Harness {
  FakeHandler h;
  ServerLimits limits;
  TimePoint t0 = TimePoint{} + 1000h;
  std::unique_ptr<ServerConnection> c;
  std::deque<std::string> storage;  // keeps decoded payload views valid

  Harness() = default;
  void start() { c = std::make_unique<ServerConnection>(h, limits, "127.0.0.1:50000", t0); }

  void feed(const std::string& bytes, std::chrono::milliseconds at = 0ms) {
    c->on_bytes(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), t0 + at);
  }
  void feed(const codec::Packet& p, Version v, std::chrono::milliseconds at = 0ms) {
    feed(encode(p, v), at);
  }
  static std::string encode(const codec::Packet& p, Version v) {
    std::string b;
    codec::encode_packet(p, v, b);
    return b;
  }

  // Everything queued for sending (bytes with spliced payloads), then cleared.
  std::string take_raw() {
    auto& o = c->out();
    std::string flat;
    std::size_t pos = 0;
    for (const auto& s : o.splices) {
      flat.append(o.bytes, pos, s.offset - pos);
      flat.append(s.msg->payload);
      pos = s.offset;
    }
    flat.append(o.bytes, pos, std::string::npos);
    o.clear();
    return flat;
  }

  // Decodes everything queued for sending with the connection's version.
  std::vector<codec::Packet> take(std::optional<Version> v = std::nullopt) {
    storage.push_back(take_raw());
    const std::string& raw = storage.back();
    std::vector<codec::Packet> out;
    std::size_t off = 0;
    const auto* data = reinterpret_cast<const std::uint8_t*>(raw.data());
    while (off < raw.size()) {
      codec::FrameHeader fh;
      codec::DecodeError err;
      auto st = codec::parse_frame(data + off, raw.size() - off, 0, fh, err);
      EXPECT_EQ(st, codec::FrameStatus::kComplete) << "server sent an incomplete or bad frame";
      if (st != codec::FrameStatus::kComplete) break;
      codec::Packet p;
      auto e = codec::decode_packet(fh, data + off + fh.header_size, v.value_or(c->version()), p);
      EXPECT_FALSE(e) << "server sent an undecodable packet: " << (e.what ? e.what : "");
      if (e) break;
      out.push_back(std::move(p));
      off += fh.total();
    }
    return out;
  }

  // CONNECT and the CONNACK it gets; the CONNACK is consumed.
  void connect(Version v, std::string id = "client-1", bool clean = true, std::uint16_t keepalive = 60,
               std::optional<codec::Will> will = std::nullopt, codec::Properties props = {}) {
    if (!c) start();
    feed(connect_packet(v, std::move(id), clean, keepalive, std::move(will), std::move(props)), v);
    ASSERT_EQ(c->state(), ServerConnection::State::kConnected);
    auto ps = take();
    ASSERT_EQ(ps.size(), 1u);
    ASSERT_TRUE(std::holds_alternative<codec::Connack>(ps[0]));
    ASSERT_EQ(std::get<codec::Connack>(ps[0]).code, 0);
  }

  static codec::Connect connect_packet(Version v, std::string id = "client-1", bool clean = true,
                                       std::uint16_t keepalive = 60,
                                       std::optional<codec::Will> will = std::nullopt,
                                       codec::Properties props = {}) {
    codec::Connect cp;
    cp.protocol_name = v == Version::kV31 ? "MQIsdp" : "MQTT";
    cp.version = v;
    cp.client_id = std::move(id);
    cp.clean_start = clean;
    cp.keepalive = keepalive;
    cp.will = std::move(will);
    cp.props = std::move(props);
    return cp;
  }
};

codec::Publish publish(std::string topic, std::string_view payload, std::uint8_t qos, std::uint16_t id = 0,
                       bool dup = false) {
  codec::Publish p;
  p.topic = std::move(topic);
  p.payload = payload;
  p.qos = qos;
  p.packet_id = id;
  p.dup = dup;
  return p;
}

codec::Ack ack(codec::PacketType t, std::uint16_t id, std::uint8_t reason = 0) {
  return codec::Ack{t, id, reason, {}};
}

MessagePtr message(std::string topic, std::string payload, std::uint8_t qos = 1) {
  return Message::make(topic, payload, qos, false, {}, {});
}

template <typename T>
const T& as(const codec::Packet& p) {
  EXPECT_TRUE(std::holds_alternative<T>(p)) << "unexpected packet variant index " << p.index();
  static const T empty{};
  return std::holds_alternative<T>(p) ? std::get<T>(p) : empty;
}

const std::string kPingreq("\xC0\x00", 2);
const std::string kPingresp("\xD0\x00", 2);

// ---------------------------------------------------------------------------------------------------
// CONNECT handling

TEST(ServerConnection, MQTT_3_1_0_1_FirstPacketMustBeConnect) {
  Harness t;
  t.start();
  t.feed(kPingreq);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kProtocolError);
  EXPECT_TRUE(t.c->out().empty()) << "nothing may be sent, not even a CONNACK";
  EXPECT_EQ(t.h.connects, 0);
  EXPECT_EQ(t.h.closes, 1);
}

// The first byte is enough: a client speaking something else (HTTP on the MQTT port) is not kept
// waiting for the rest of a "packet" until the connect timeout.
TEST(ServerConnection, MQTT_3_1_0_1_FirstByteThatIsNotConnectClosesAtOnce) {
  Harness t;
  t.start();
  t.feed("G");
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kProtocolError);
  EXPECT_TRUE(t.c->out().empty());
  Harness u;
  u.start();
  u.feed(std::string("\x10", 1));  // a CONNECT's first byte: wait for the rest
  EXPECT_FALSE(u.c->closed());
}

TEST(ServerConnection, MQTT_3_1_0_1_FirstPacketPublishIsNotForwarded) {
  Harness t;
  t.start();
  t.feed(publish("a/b", "x", 0), Version::kV311);
  EXPECT_TRUE(t.c->closed());
  EXPECT_TRUE(t.c->out().empty());
  EXPECT_TRUE(t.h.published.empty());
  // Anything after the close is ignored.
  t.feed(Harness::connect_packet(Version::kV311), Version::kV311);
  EXPECT_EQ(t.h.connects, 0);
  EXPECT_TRUE(t.c->out().empty());
  EXPECT_EQ(t.h.closes, 1);
}

TEST(ServerConnection, MQTT_3_1_0_2_SecondConnectClosesV311) {
  Harness t;
  t.connect(Version::kV311);
  t.feed(Harness::connect_packet(Version::kV311, "client-1"), Version::kV311);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kProtocolError);
  EXPECT_TRUE(t.c->out().empty()) << "3.1.1 has no DISCONNECT from the server";
  EXPECT_EQ(t.h.connects, 1);
}

TEST(ServerConnection, MQTT_3_1_0_2_SecondConnectGetsDisconnect0x82OnV5) {
  Harness t;
  t.connect(Version::kV5);
  t.feed(Harness::connect_packet(Version::kV5, "client-1"), Version::kV5);
  EXPECT_TRUE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x82);
  EXPECT_EQ(t.h.connects, 1);
}

// Found by fuzz_server_connection: a malformed second CONNECT must not change the version of an
// established connection (a 3.1.1 client was sent a 5.0 DISCONNECT; a 5.0 client got none).
TEST(ServerConnection, MalformedSecondConnectKeepsTheVersion) {
  Harness t;
  t.connect(Version::kV311);
  // Level 5 with the reserved flag bit set: malformed.
  t.feed(std::string("\x10\x0e\x00\x04MQTT\x05\x03\x00\x3c\x00\x00\x01x", 16));
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->version(), Version::kV311);
  EXPECT_TRUE(t.c->out().empty()) << "3.1.1 has no DISCONNECT from the server";

  Harness t5;
  t5.connect(Version::kV5);
  t5.feed(std::string("\x10\x00", 2));
  EXPECT_TRUE(t5.c->closed());
  EXPECT_EQ(t5.c->version(), Version::kV5);
  auto ps = t5.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x81);
}

TEST(ServerConnection, SecondConnectWithUnsupportedLevelIsAProtocolError) {
  // [MQTT-3.1.0-2] a second CONNECT is a Protocol Error whatever its content: the decoder's 0x84
  // (Unsupported Protocol Version) is a CONNACK reason code and must not reach a DISCONNECT.
  Harness t;
  t.connect(Version::kV5);
  t.feed(std::string("\x10\x0d\x00\x04MQTT\x00\x02\x00\x3c\x00\x00\x01x", 15));
  EXPECT_TRUE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x82);
}

TEST(ServerConnection, MQTT_3_1_2_1_UnknownProtocolNameClosesWithoutConnack) {
  Harness t;
  t.start();
  auto cp = Harness::connect_packet(Version::kV311);
  cp.protocol_name = "MQTX";
  t.feed(cp, Version::kV311);
  EXPECT_TRUE(t.c->closed());
  EXPECT_TRUE(t.c->out().empty());
  EXPECT_EQ(t.h.connects, 0);
}

TEST(ServerConnection, MQTT_3_1_2_2_UnsupportedLevelGetsConnack1ThenClose) {
  Harness t;
  t.start();
  auto cp = Harness::connect_packet(Version::kV311);
  cp.version = static_cast<Version>(6);
  t.feed(cp, Version::kV311);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->out().bytes, std::string("\x20\x02\x00\x01", 4)) << "CONNACK 0x01 in the 3.1.1 form";
  EXPECT_EQ(t.h.connects, 0);
}

TEST(ServerConnection, MQTT_3_1_3_8_EmptyClientIdWithoutCleanSessionRefusedV311) {
  Harness t;
  t.start();
  t.feed(Harness::connect_packet(Version::kV311, "", /*clean=*/false), Version::kV311);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kRefused);
  EXPECT_EQ(t.c->out().bytes, std::string("\x20\x02\x00\x02", 4));
  EXPECT_EQ(t.h.connects, 0);
}

TEST(ServerConnection, MQTT_3_1_3_6_EmptyClientIdWithCleanSessionGetsIdentifierV311) {
  Harness t;
  t.start();
  t.feed(Harness::connect_packet(Version::kV311, "", /*clean=*/true), Version::kV311);
  ASSERT_EQ(t.c->state(), ServerConnection::State::kConnected);
  EXPECT_EQ(t.c->client_id().rfind("auto-", 0), 0u) << t.c->client_id();
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps[0]).code, 0);
}

TEST(ServerConnection, MQTT_3_2_2_16_V5EmptyClientIdGetsAssignedClientIdentifier) {
  Harness t;
  t.start();
  t.feed(Harness::connect_packet(Version::kV5, ""), Version::kV5);
  ASSERT_EQ(t.c->state(), ServerConnection::State::kConnected);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  const auto& ack = as<codec::Connack>(ps[0]);
  EXPECT_EQ(ack.code, 0);
  ASSERT_TRUE(ack.props.assigned_client_id.has_value());
  static const std::regex kId("auto-[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}");
  EXPECT_TRUE(std::regex_match(*ack.props.assigned_client_id, kId)) << *ack.props.assigned_client_id;
  EXPECT_EQ(*ack.props.assigned_client_id, t.c->client_id());
}

TEST(ServerConnection, GeneratedClientIdsAreUppercaseUuidsAndDiffer) {
  static const std::regex kId("p-[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto id = tern::protocol::generate_client_id("p-");
    EXPECT_TRUE(std::regex_match(id, kId)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(ServerConnection, V31ClientIdOf24CharactersRefusedWithConnack2) {
  Harness t;
  t.start();
  t.feed(Harness::connect_packet(Version::kV31, std::string(24, 'x')), Version::kV31);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->out().bytes, std::string("\x20\x02\x00\x02", 4));
  EXPECT_EQ(t.h.connects, 0);
}

TEST(ServerConnection, V31ClientIdOf23CharactersAccepted) {
  Harness t;
  t.connect(Version::kV31, std::string(23, 'x'));
  EXPECT_EQ(t.c->version(), Version::kV31);
  EXPECT_EQ(t.h.connects, 1);
}

TEST(ServerConnection, HandlerRefusalSendsConnackAndCloses) {
  Harness t;
  t.h.refuse_with = Reason::kNotAuthorized;
  t.start();
  t.feed(Harness::connect_packet(Version::kV311), Version::kV311);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kRefused);
  EXPECT_EQ(t.c->out().bytes, std::string("\x20\x02\x00\x05", 4));
}

// use_identity_as_username / use_subject_as_username (TLS listeners): the transport's name replaces
// the CONNECT's username and the password is dropped, for the log and for the broker's checks.
TEST(ServerConnection, TransportIdentityReplacesUsernameAndDropsPassword) {
  Harness t;
  t.start();
  t.c->set_transport_identity("CN=device 7,O=Plant");
  auto cp = Harness::connect_packet(Version::kV311, "dev-7");
  cp.username = "claimed";
  cp.password = "secret";
  t.feed(cp, Version::kV311);
  ASSERT_EQ(t.c->state(), ServerConnection::State::kConnected);
  EXPECT_EQ(t.c->username(), std::optional<std::string>("CN=device 7,O=Plant"));
  EXPECT_TRUE(t.c->identity_from_transport());
  ASSERT_TRUE(t.h.last_connect);
  EXPECT_EQ(t.h.last_connect->username, std::optional<std::string>("CN=device 7,O=Plant"));
  EXPECT_FALSE(t.h.last_connect->password);
  ASSERT_FALSE(t.h.logs.empty());
  EXPECT_NE(t.h.logs.back().find("as dev-7 (p2, c1, k60, u'CN=device 7,O=Plant')."), std::string::npos)
      << t.h.logs.back();
}

TEST(ServerConnection, EmptyTransportIdentityRefusesAsBadUsernameOrPassword) {
  for (Version v : {Version::kV311, Version::kV5}) {
    Harness t;
    t.start();
    t.c->set_transport_identity("");  // the client sent no certificate
    auto cp = Harness::connect_packet(v, "no-cert");
    cp.username = "claimed";
    cp.password = "secret";
    t.feed(cp, v);
    EXPECT_TRUE(t.c->closed());
    EXPECT_EQ(t.h.connects, 0) << "the broker is not asked";
    auto ps = t.take(v);
    ASSERT_EQ(ps.size(), 1u);
    EXPECT_EQ(as<codec::Connack>(ps[0]).code, v == Version::kV5 ? 0x86 : 4);
  }
}

TEST(ServerConnection, WithoutTransportIdentityTheConnectUsernameCounts) {
  Harness t;
  t.start();
  auto cp = Harness::connect_packet(Version::kV311, "plain");
  cp.username = "alice";
  cp.password = "pw";
  t.feed(cp, Version::kV311);
  EXPECT_EQ(t.c->username(), std::optional<std::string>("alice"));
  EXPECT_FALSE(t.c->identity_from_transport());
  ASSERT_TRUE(t.h.last_connect);
  EXPECT_EQ(t.h.last_connect->password, std::optional<std::string>("pw"));
}

// ---------------------------------------------------------------------------------------------------
// Timers

TEST(ServerConnection, MQTT_3_1_2_24_KeepaliveTimeoutAtOneAndAHalfPeriodsV311) {
  Harness t;
  t.connect(Version::kV311, "k", true, /*keepalive=*/10);
  t.c->on_tick(t.t0 + 14s);
  EXPECT_FALSE(t.c->closed()) << "1.4 x keepalive must not close";
  t.c->on_tick(t.t0 + 16s);
  EXPECT_TRUE(t.c->closed()) << "1.6 x keepalive must close";
  EXPECT_EQ(t.c->close_cause(), CloseCause::kKeepaliveTimeout);
  EXPECT_TRUE(t.c->out().empty());
}

TEST(ServerConnection, MQTT_3_1_2_24_KeepaliveTimeoutSendsDisconnect0x8DOnV5) {
  Harness t;
  t.connect(Version::kV5, "k", true, /*keepalive=*/10);
  t.c->on_tick(t.t0 + 14s);
  EXPECT_FALSE(t.c->closed());
  t.c->on_tick(t.t0 + 16s);
  ASSERT_TRUE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x8D);
}

TEST(ServerConnection, MQTT_3_1_2_23_AnyPacketResetsKeepaliveTimer) {
  Harness t;
  t.connect(Version::kV311, "k", true, /*keepalive=*/10);
  t.feed(kPingreq, 10s);
  EXPECT_EQ(t.take_raw(), kPingresp);
  t.c->on_tick(t.t0 + 24s);  // 14 s after the PINGREQ
  EXPECT_FALSE(t.c->closed());
  t.c->on_tick(t.t0 + 26s);  // 16 s after the PINGREQ
  EXPECT_TRUE(t.c->closed());
}

TEST(ServerConnection, KeepaliveZeroNeverTimesOut) {
  Harness t;
  t.connect(Version::kV311, "k", true, /*keepalive=*/0);
  t.c->on_tick(t.t0 + 100000s);
  EXPECT_FALSE(t.c->closed());
}

TEST(ServerConnection, ConnectTimeoutClosesWithoutSending) {
  Harness t;
  t.limits.connect_timeout = 5000ms;
  t.start();
  t.c->on_tick(t.t0 + 4900ms);
  EXPECT_FALSE(t.c->closed());
  t.c->on_tick(t.t0 + 5100ms);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kConnectTimeout);
  EXPECT_TRUE(t.c->out().empty());
  EXPECT_EQ(t.h.closes, 1);
}

TEST(ServerConnection, NoConnectTimeoutOnceConnected) {
  Harness t;
  t.limits.connect_timeout = 5000ms;
  t.connect(Version::kV311, "k", true, /*keepalive=*/0);
  t.c->on_tick(t.t0 + 60s);
  EXPECT_FALSE(t.c->closed());
}

// ---------------------------------------------------------------------------------------------------
// PINGREQ, PUBLISH and acknowledgements

TEST(ServerConnection, MQTT_3_12_4_1_PingreqGetsPingresp) {
  Harness t;
  t.connect(Version::kV311);
  t.feed(kPingreq);
  EXPECT_EQ(t.take_raw(), kPingresp);
  EXPECT_FALSE(t.c->closed());
}

TEST(ServerConnection, Qos0PublishForwardedWithoutAck) {
  Harness t;
  t.connect(Version::kV311);
  t.feed(publish("a/b", "hello", 0), Version::kV311);
  ASSERT_EQ(t.h.published.size(), 1u);
  EXPECT_EQ(t.h.published[0]->topic, "a/b");
  EXPECT_EQ(t.h.published[0]->payload, "hello");
  EXPECT_EQ(t.h.published[0]->qos, 0);
  EXPECT_EQ(t.h.published[0]->origin, "client-1");
  EXPECT_TRUE(t.c->out().empty());
}

TEST(ServerConnection, MQTT_4_3_2_2_Qos1PublishForwardedThenPubackWithSameId) {
  Harness t;
  t.connect(Version::kV311);
  t.feed(publish("a/b", "hello", 1, 4242), Version::kV311);
  ASSERT_EQ(t.h.published.size(), 1u);
  EXPECT_EQ(t.h.published[0]->topic, "a/b");
  EXPECT_EQ(t.h.published[0]->payload, "hello");
  EXPECT_EQ(t.h.published[0]->qos, 1);
  EXPECT_EQ(t.h.out_size_at_publish[0], 0u) << "the message is handed on before PUBACK is sent";
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  const auto& a = as<codec::Ack>(ps[0]);
  EXPECT_EQ(a.type, codec::PacketType::kPuback);
  EXPECT_EQ(a.packet_id, 4242);
}

TEST(ServerConnection, V5PubackCarriesHandlerReason) {
  Harness t;
  t.h.publish_reason = Reason::kNoMatchingSubscribers;
  t.connect(Version::kV5);
  t.feed(publish("a/b", "x", 1, 9), Version::kV5);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).packet_id, 9);
  EXPECT_EQ(as<codec::Ack>(ps[0]).reason, 0x10);
}

TEST(ServerConnection, MQTT_4_3_3_2_Qos2PublishHeldUntilPubrelThenForwardedOnce) {
  Harness t;
  t.connect(Version::kV311);
  t.feed(publish("q/2", "two", 2, 77), Version::kV311);
  EXPECT_TRUE(t.h.published.empty()) << "not forwarded before PUBREL";
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).type, codec::PacketType::kPubrec);
  EXPECT_EQ(as<codec::Ack>(ps[0]).packet_id, 77);

  t.feed(ack(codec::PacketType::kPubrel, 77), Version::kV311);
  ASSERT_EQ(t.h.published.size(), 1u);
  EXPECT_EQ(t.h.published[0]->topic, "q/2");
  EXPECT_EQ(t.h.published[0]->payload, "two");
  EXPECT_EQ(t.h.published[0]->qos, 2);
  ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).type, codec::PacketType::kPubcomp);
  EXPECT_EQ(as<codec::Ack>(ps[0]).packet_id, 77);
  EXPECT_TRUE(t.h.state.inbound_qos2.empty());

  // A repeated PUBREL gets PUBCOMP again and forwards nothing [MQTT-4.3.3-11].
  t.feed(ack(codec::PacketType::kPubrel, 77), Version::kV311);
  EXPECT_EQ(t.h.published.size(), 1u);
  ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).type, codec::PacketType::kPubcomp);
  EXPECT_EQ(as<codec::Ack>(ps[0]).packet_id, 77);
}

TEST(ServerConnection, MQTT_4_3_3_9_ResentQos2PublishGetsPubrecAndIsNotForwardedTwice) {
  Harness t;
  t.connect(Version::kV311);
  t.feed(publish("q/2", "two", 2, 5), Version::kV311);
  t.feed(publish("q/2", "two", 2, 5, /*dup=*/true), Version::kV311);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 2u);
  for (const auto& p : ps) {
    EXPECT_EQ(as<codec::Ack>(p).type, codec::PacketType::kPubrec);
    EXPECT_EQ(as<codec::Ack>(p).packet_id, 5);
  }
  EXPECT_TRUE(t.h.published.empty());
  t.feed(ack(codec::PacketType::kPubrel, 5), Version::kV311);
  EXPECT_EQ(t.h.published.size(), 1u);
}

TEST(ServerConnection, MQTT_4_6_0_2_PubacksSentInTheOrderPublishesArrived) {
  Harness t;
  t.connect(Version::kV311);
  const std::uint16_t ids[] = {5, 3, 9, 1, 65535, 2};
  std::string all;
  for (auto id : ids) all += Harness::encode(publish("o", "p", 1, id), Version::kV311);
  t.feed(all);  // one read, several packets
  auto ps = t.take();
  ASSERT_EQ(ps.size(), std::size(ids));
  for (std::size_t i = 0; i < ps.size(); ++i) {
    EXPECT_EQ(as<codec::Ack>(ps[i]).type, codec::PacketType::kPuback);
    EXPECT_EQ(as<codec::Ack>(ps[i]).packet_id, ids[i]) << "at position " << i;
  }
  EXPECT_EQ(t.h.published.size(), std::size(ids));
}

TEST(ServerConnection, MQTT_4_6_0_3_PubrecsSentInTheOrderPublishesArrived) {
  Harness t;
  t.connect(Version::kV311);
  const std::uint16_t ids[] = {8, 2, 6};
  std::string all;
  for (auto id : ids) all += Harness::encode(publish("o", "p", 2, id), Version::kV311);
  t.feed(all);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), std::size(ids));
  for (std::size_t i = 0; i < ps.size(); ++i) {
    EXPECT_EQ(as<codec::Ack>(ps[i]).type, codec::PacketType::kPubrec);
    EXPECT_EQ(as<codec::Ack>(ps[i]).packet_id, ids[i]);
  }
}

// ---------------------------------------------------------------------------------------------------
// Outbound deliveries

TEST(ServerConnection, OutboundQos1RespectsInflightWindow) {
  Harness t;
  t.limits.max_inflight = 2;
  t.connect(Version::kV311);
  for (int i = 0; i < 3; ++i) t.c->deliver(Delivery{message("d", "m" + std::to_string(i)), 1, false, {}});
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 2u) << "only two in flight";
  const auto& p0 = as<codec::Publish>(ps[0]);
  const auto& p1 = as<codec::Publish>(ps[1]);
  EXPECT_EQ(p0.payload, "m0");
  EXPECT_EQ(p1.payload, "m1");
  EXPECT_EQ(p0.qos, 1);
  EXPECT_FALSE(p0.dup);
  EXPECT_NE(p0.packet_id, 0);
  EXPECT_NE(p1.packet_id, 0);
  EXPECT_NE(p0.packet_id, p1.packet_id);
  EXPECT_EQ(t.h.state.inflight.size(), 2u);
  EXPECT_EQ(t.h.state.queue.size(), 1u);

  std::uint16_t still_in_flight = p1.packet_id;
  t.feed(ack(codec::PacketType::kPuback, p0.packet_id), Version::kV311);
  ps = t.take();
  ASSERT_EQ(ps.size(), 1u) << "PUBACK frees a slot for the queued message";
  const auto& p2 = as<codec::Publish>(ps[0]);
  EXPECT_EQ(p2.payload, "m2");
  EXPECT_NE(p2.packet_id, 0);
  EXPECT_NE(p2.packet_id, still_in_flight);
  EXPECT_TRUE(t.h.state.queue.empty());
  EXPECT_EQ(t.h.state.inflight.size(), 2u);
}

TEST(ServerConnection, MQTT_2_3_1_2_OutboundPacketIdsAreNonZeroAndUniqueInFlight) {
  Harness t;
  t.limits.max_inflight = 20;
  t.connect(Version::kV311);
  // Start near the wrap-around to make sure 0 is skipped.
  t.h.state.next_packet_id = 65530;
  for (int i = 0; i < 20; ++i) t.c->deliver(Delivery{message("d", "x"), 1, false, {}});
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 20u);
  std::set<std::uint16_t> ids;
  for (const auto& p : ps) {
    EXPECT_NE(as<codec::Publish>(p).packet_id, 0);
    ids.insert(as<codec::Publish>(p).packet_id);
  }
  EXPECT_EQ(ids.size(), 20u);
  // Ack one, deliver one: the new id is not one still in flight.
  t.feed(ack(codec::PacketType::kPuback, as<codec::Publish>(ps[5]).packet_id), Version::kV311);
  ids.erase(as<codec::Publish>(ps[5]).packet_id);
  t.c->deliver(Delivery{message("d", "y"), 1, false, {}});
  auto more = t.take();
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(ids.count(as<codec::Publish>(more[0]).packet_id), 0u);
  EXPECT_NE(as<codec::Publish>(more[0]).packet_id, 0);
}

TEST(ServerConnection, OutboundQos2FlowPubrecPubrelPubcomp) {
  Harness t;
  t.limits.max_inflight = 1;
  t.connect(Version::kV311);
  t.c->deliver(Delivery{message("d", "a", 2), 2, false, {}});
  t.c->deliver(Delivery{message("d", "b", 2), 2, false, {}});
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  auto id = as<codec::Publish>(ps[0]).packet_id;
  EXPECT_EQ(as<codec::Publish>(ps[0]).qos, 2);
  t.feed(ack(codec::PacketType::kPubrec, id), Version::kV311);
  ps = t.take();
  ASSERT_EQ(ps.size(), 1u) << "PUBREL only; the slot is still taken until PUBCOMP";
  EXPECT_EQ(as<codec::Ack>(ps[0]).type, codec::PacketType::kPubrel);
  EXPECT_EQ(as<codec::Ack>(ps[0]).packet_id, id);
  t.feed(ack(codec::PacketType::kPubcomp, id), Version::kV311);
  ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Publish>(ps[0]).payload, "b");
}

TEST(ServerConnection, MQTT_3_3_4_9_V5ClientReceiveMaximumLimitsTheWindow) {
  Harness t;
  t.limits.max_inflight = 20;
  codec::Properties props;
  props.receive_maximum = 1;
  t.connect(Version::kV5, "rm", true, 60, std::nullopt, props);
  t.c->deliver(Delivery{message("d", "a"), 1, false, {}});
  t.c->deliver(Delivery{message("d", "b"), 1, false, {}});
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u) << "the client allows one unacknowledged QoS 1 PUBLISH";
  t.feed(ack(codec::PacketType::kPuback, as<codec::Publish>(ps[0]).packet_id), Version::kV5);
  ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Publish>(ps[0]).payload, "b");
}

TEST(ServerConnection, MQTT_3_1_2_25_PublishLargerThanClientMaximumPacketSizeIsDiscardedAsIfSent) {
  // "Where a Packet is too large to send, the Server MUST discard it without sending it and then
  // behave as if it had completed sending that Application Message" [MQTT-3.1.2-25]: a discarded QoS 1
  // message must not hold an in-flight slot waiting for a PUBACK that can never come.
  Harness t;
  t.limits.max_inflight = 1;
  codec::Properties props;
  props.maximum_packet_size = 64;
  t.connect(Version::kV5, "small", true, 60, std::nullopt, props);
  t.c->deliver(Delivery{message("big", std::string(200, 'x')), 1, false, {}});
  EXPECT_TRUE(t.c->out().empty()) << "too large to send";
  t.c->deliver(Delivery{message("small", "ok"), 1, false, {}});
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u) << "the small message is sent: the large one no longer occupies the window";
  EXPECT_EQ(as<codec::Publish>(ps[0]).payload, "ok");
  EXPECT_EQ(t.h.state.inflight.size(), 1u);
  EXPECT_TRUE(t.h.state.queue.empty());
}

TEST(ServerConnection, InboundPacketLargerThanMaximumGetsDisconnect0x95OnV5) {
  Harness t;
  t.limits.max_packet_size = 100;
  t.connect(Version::kV5);
  t.feed(publish("t", std::string(200, 'x'), 0), Version::kV5);
  EXPECT_TRUE(t.c->closed());
  EXPECT_TRUE(t.h.published.empty());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x95);
}

TEST(ServerConnection, MQTT_3_3_4_9_V5InboundQos2BeyondReceiveMaximumIsError0x93) {
  Harness t;
  t.limits.receive_maximum = 2;
  t.start();
  t.feed(Harness::connect_packet(Version::kV5, "rm"), Version::kV5);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps[0]).props.receive_maximum, std::optional<std::uint16_t>(2));
  t.feed(publish("q", "1", 2, 1), Version::kV5);
  t.feed(publish("q", "2", 2, 2), Version::kV5);
  EXPECT_FALSE(t.c->closed());
  t.feed(publish("q", "3", 2, 3), Version::kV5);
  EXPECT_TRUE(t.c->closed());
  ps = t.take();
  ASSERT_EQ(ps.size(), 3u);
  EXPECT_EQ(as<codec::Disconnect>(ps[2]).reason, 0x93);
}

TEST(ServerConnection, MQTT_3_2_2_21_V5KeepaliveAboveMaximumGetsServerKeepAlive) {
  Harness t;
  t.limits.max_keepalive = 30;
  t.start();
  t.feed(Harness::connect_packet(Version::kV5, "ka", true, 120), Version::kV5);
  ASSERT_EQ(t.c->state(), ServerConnection::State::kConnected);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps[0]).props.server_keep_alive, std::optional<std::uint16_t>(30));
  EXPECT_EQ(t.c->keepalive(), 30);
  t.c->on_tick(t.t0 + 44s);
  EXPECT_FALSE(t.c->closed());
  t.c->on_tick(t.t0 + 46s);
  EXPECT_TRUE(t.c->closed()) << "the server keep alive applies";
}

TEST(ServerConnection, LargePayloadIsSplicedNotCopied) {
  Harness t;
  t.connect(Version::kV311);
  std::string big(600, 'z');
  big[0] = 'A';
  big.back() = 'Z';
  t.c->deliver(Delivery{message("big", big, 0), 0, false, {}});
  t.c->deliver(Delivery{message("small", "s", 0), 0, false, {}});
  EXPECT_EQ(t.c->out().splices.size(), 1u);
  EXPECT_EQ(t.c->out().size(), t.c->out().bytes.size() + 600);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(as<codec::Publish>(ps[0]).topic, "big");
  EXPECT_EQ(as<codec::Publish>(ps[0]).payload, big);
  EXPECT_EQ(as<codec::Publish>(ps[1]).payload, "s");
}

TEST(ServerConnection, MQTT_4_4_0_1_UnacknowledgedFlightsResentWithDupInOriginalOrder) {
  Harness t;
  // A session left over from an earlier connection: QoS 1 unacked, QoS 2 released (PUBREC seen),
  // QoS 2 unacked.
  t.h.state.inflight.push_back(OutboundFlight{10, Delivery{message("s/1", "one", 1), 1, false, {}}, false});
  t.h.state.inflight.push_back(OutboundFlight{11, Delivery{nullptr, 2, false, {}}, true});
  t.h.state.inflight.push_back(OutboundFlight{12, Delivery{message("s/3", "three", 2), 2, false, {}}, false});
  t.h.state.next_packet_id = 13;
  t.h.session_present = true;
  t.start();
  t.feed(Harness::connect_packet(Version::kV311, "persist", /*clean=*/false), Version::kV311);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 4u);
  EXPECT_TRUE(as<codec::Connack>(ps[0]).session_present);
  const auto& a = as<codec::Publish>(ps[1]);
  EXPECT_EQ(a.packet_id, 10);
  EXPECT_TRUE(a.dup);
  EXPECT_EQ(a.qos, 1);
  EXPECT_EQ(a.topic, "s/1");
  EXPECT_EQ(a.payload, "one");
  const auto& b = as<codec::Ack>(ps[2]);
  EXPECT_EQ(b.type, codec::PacketType::kPubrel);
  EXPECT_EQ(b.packet_id, 11);
  const auto& c = as<codec::Publish>(ps[3]);
  EXPECT_EQ(c.packet_id, 12);
  EXPECT_TRUE(c.dup);
  EXPECT_EQ(c.qos, 2);
  EXPECT_EQ(c.payload, "three");
}

TEST(ServerConnection, QueuedMessagesSentAfterResentFlightsOnReconnect) {
  Harness t;
  t.limits.max_inflight = 2;
  t.h.state.inflight.push_back(OutboundFlight{1, Delivery{message("s", "old", 1), 1, false, {}}, false});
  t.h.state.queue.push_back(Delivery{message("s", "q1", 1), 1, false, {}});
  t.h.state.queue.push_back(Delivery{message("s", "q2", 1), 1, false, {}});
  t.h.state.queued_bytes = 4;
  t.h.state.next_packet_id = 2;
  t.start();
  t.feed(Harness::connect_packet(Version::kV311, "persist", false), Version::kV311);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 3u) << "CONNACK, resent flight, one queued message (window 2)";
  EXPECT_EQ(as<codec::Publish>(ps[1]).payload, "old");
  EXPECT_TRUE(as<codec::Publish>(ps[1]).dup);
  EXPECT_EQ(as<codec::Publish>(ps[2]).payload, "q1");
  EXPECT_FALSE(as<codec::Publish>(ps[2]).dup);
  EXPECT_NE(as<codec::Publish>(ps[2]).packet_id, 1);
  EXPECT_EQ(t.h.state.queue.size(), 1u);
}

// ---------------------------------------------------------------------------------------------------
// DISCONNECT and the will

codec::Will test_will() {
  codec::Will w;
  w.topic = "will/t";
  w.payload = "gone";
  w.qos = 1;
  return w;
}

TEST(ServerConnection, MQTT_3_14_4_3_DisconnectDiscardsWillV311) {
  Harness t;
  t.connect(Version::kV311, "w", true, 60, test_will());
  ASSERT_TRUE((t.c->will() != nullptr));
  t.feed(std::string("\xE0\x00", 2));
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kClientDisconnect);
  EXPECT_FALSE((t.c->will() != nullptr));
  EXPECT_FALSE(t.h.will_at_close) << "the will is gone before on_closed runs";
  EXPECT_TRUE(t.c->out().empty());
}

TEST(ServerConnection, MQTT_3_1_2_8_WillKeptWhenConnectionDropsWithoutDisconnect) {
  Harness t;
  t.connect(Version::kV311, "w", true, 60, test_will());
  t.c->on_transport_closed();
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kSocketError);
  EXPECT_TRUE((t.c->will() != nullptr));
  EXPECT_TRUE(t.h.will_at_close);
  EXPECT_EQ(t.h.closes, 1);
  t.c->on_transport_closed();
  EXPECT_EQ(t.h.closes, 1) << "on_closed is called once";
}

TEST(ServerConnection, MQTT_3_14_2_V5DisconnectWithWillMessageKeepsWill) {
  Harness t;
  t.connect(Version::kV5, "w", true, 60, test_will());
  t.feed(codec::Disconnect{0x04, {}}, Version::kV5);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kClientDisconnect);
  EXPECT_TRUE((t.c->will() != nullptr));
}

TEST(ServerConnection, MQTT_3_14_4_3_V5NormalDisconnectDiscardsWill) {
  Harness t;
  t.connect(Version::kV5, "w", true, 60, test_will());
  t.feed(codec::Disconnect{0x00, {}}, Version::kV5);
  EXPECT_TRUE(t.c->closed());
  EXPECT_FALSE((t.c->will() != nullptr));
}

TEST(ServerConnection, MQTT_3_14_2_2_V5DisconnectSettingSessionExpiryFromZeroIsProtocolError) {
  Harness t;
  t.connect(Version::kV5, "w", true, 60, test_will());  // no Session Expiry Interval: 0
  codec::Disconnect d;
  d.props.session_expiry = 3600;
  t.feed(d, Version::kV5);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kProtocolError);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x82);
  EXPECT_EQ(t.c->session_expiry(), 0u);
  EXPECT_TRUE((t.c->will() != nullptr)) << "a protocol error is not a normal disconnect";
}

TEST(ServerConnection, V5DisconnectMayChangeNonZeroSessionExpiry) {
  Harness t;
  codec::Properties props;
  props.session_expiry = 60;
  t.connect(Version::kV5, "w", false, 60, std::nullopt, props);
  EXPECT_EQ(t.c->session_expiry(), 60u);
  codec::Disconnect d;
  d.props.session_expiry = 0;
  t.feed(d, Version::kV5);
  EXPECT_EQ(t.c->close_cause(), CloseCause::kClientDisconnect);
  EXPECT_EQ(t.c->session_expiry(), 0u);
  EXPECT_TRUE(t.c->out().empty());
}

// ---------------------------------------------------------------------------------------------------
// Malformed packets and protocol errors after CONNACK

TEST(ServerConnection, MQTT_4_13_1_1_MalformedPacketAfterConnackGetsDisconnect0x81OnV5) {
  Harness t;
  t.connect(Version::kV5);
  t.feed(std::string("\xC0\x01\x00", 3));  // PINGREQ with a body
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kProtocolError);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x81);
}

TEST(ServerConnection, MQTT_4_8_0_1_MalformedPacketAfterConnackJustClosesV311) {
  Harness t;
  t.connect(Version::kV311);
  t.feed(std::string("\x36\x05\x00\x01t\x00\x01", 7));  // PUBLISH with QoS 3
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kProtocolError);
  EXPECT_TRUE(t.c->out().empty());
  EXPECT_TRUE(t.h.published.empty());
}

TEST(ServerConnection, PacketsAfterAFatalErrorInTheSameReadAreIgnored) {
  Harness t;
  t.connect(Version::kV311);
  std::string bytes("\x36\x05\x00\x01t\x00\x01", 7);
  bytes += Harness::encode(publish("a", "b", 1, 1), Version::kV311);
  bytes += kPingreq;
  t.feed(bytes);
  EXPECT_TRUE(t.c->closed());
  EXPECT_TRUE(t.h.published.empty());
  EXPECT_TRUE(t.c->out().empty());
}

// ---------------------------------------------------------------------------------------------------
// Topic aliases (5.0)

TEST(ServerConnection, MQTT_3_3_2_8_TopicAliasZeroIsInvalid) {
  Harness t;
  t.connect(Version::kV5);
  auto p = publish("a/b", "x", 0);
  p.props.topic_alias = 0;
  t.feed(p, Version::kV5);
  EXPECT_TRUE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x94);
  EXPECT_TRUE(t.h.published.empty());
}

TEST(ServerConnection, MQTT_3_3_2_9_TopicAliasAboveMaximumIsInvalid) {
  Harness t;
  t.limits.max_topic_alias = 10;
  t.connect(Version::kV5);
  auto p = publish("a/b", "x", 0);
  p.props.topic_alias = 11;
  t.feed(p, Version::kV5);
  EXPECT_TRUE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x94);
}

TEST(ServerConnection, TopicAliasAtMaximumIsAccepted) {
  Harness t;
  t.limits.max_topic_alias = 10;
  t.connect(Version::kV5);
  auto p = publish("a/b", "x", 0);
  p.props.topic_alias = 10;
  t.feed(p, Version::kV5);
  EXPECT_FALSE(t.c->closed());
  EXPECT_EQ(t.h.published.size(), 1u);
}

TEST(ServerConnection, UnknownTopicAliasWithEmptyTopicIsProtocolError) {
  Harness t;
  t.connect(Version::kV5);
  auto p = publish("", "x", 0);
  p.props.topic_alias = 3;
  t.feed(p, Version::kV5);
  EXPECT_TRUE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x82);
  EXPECT_TRUE(t.h.published.empty());
}

TEST(ServerConnection, TopicAliasMapsEmptyTopicToTheRegisteredTopic) {
  Harness t;
  t.connect(Version::kV5);
  auto p1 = publish("sensors/temp", "20", 1, 1);
  p1.props.topic_alias = 2;
  t.feed(p1, Version::kV5);
  auto p2 = publish("", "21", 1, 2);
  p2.props.topic_alias = 2;
  t.feed(p2, Version::kV5);
  EXPECT_FALSE(t.c->closed());
  ASSERT_EQ(t.h.published.size(), 2u);
  EXPECT_EQ(t.h.published[1]->topic, "sensors/temp");
  EXPECT_EQ(t.h.published[1]->payload, "21");
  EXPECT_FALSE(t.h.published[1]->props().topic_alias.has_value()) << "alias is not forwarded";
  // Re-mapping the alias to another topic.
  auto p3 = publish("other", "x", 0);
  p3.props.topic_alias = 2;
  t.feed(p3, Version::kV5);
  auto p4 = publish("", "y", 0);
  p4.props.topic_alias = 2;
  t.feed(p4, Version::kV5);
  ASSERT_EQ(t.h.published.size(), 4u);
  EXPECT_EQ(t.h.published[3]->topic, "other");
}

TEST(ServerConnection, V5EmptyTopicWithoutAliasIsProtocolError) {
  Harness t;
  t.connect(Version::kV5);
  t.feed(publish("", "x", 0), Version::kV5);
  EXPECT_TRUE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x82);
}

// ---------------------------------------------------------------------------------------------------
// Incremental decoding

TEST(ServerConnection, PublishSplitIntoOneByteChunksHandledExactlyOnce) {
  Harness t;
  t.connect(Version::kV311);
  std::string payload(300, 'p');
  std::string bytes = Harness::encode(publish("split/topic", payload, 1, 321), Version::kV311);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    t.feed(bytes.substr(i, 1));
    if (i + 1 < bytes.size()) {
      EXPECT_TRUE(t.h.published.empty()) << "handled early at byte " << i;
      EXPECT_TRUE(t.c->out().empty());
    }
  }
  ASSERT_EQ(t.h.published.size(), 1u);
  EXPECT_EQ(t.h.published[0]->topic, "split/topic");
  EXPECT_EQ(t.h.published[0]->payload, payload);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).packet_id, 321);
}

TEST(ServerConnection, ConnectAndPublishesSplitAtEveryOffset) {
  std::string bytes = Harness::encode(Harness::connect_packet(Version::kV5, "c"), Version::kV5);
  bytes += Harness::encode(publish("x/1", "one", 1, 1), Version::kV5);
  bytes += Harness::encode(publish("x/2", "two", 0), Version::kV5);
  bytes += kPingreq;
  for (std::size_t cut = 1; cut < bytes.size(); ++cut) {
    Harness t;
    t.start();
    t.feed(bytes.substr(0, cut));
    t.feed(bytes.substr(cut));
    ASSERT_FALSE(t.c->closed()) << "cut at " << cut;
    ASSERT_EQ(t.h.connects, 1) << "cut at " << cut;
    ASSERT_EQ(t.h.published.size(), 2u) << "cut at " << cut;
    EXPECT_EQ(t.h.published[0]->payload, "one");
    EXPECT_EQ(t.h.published[1]->payload, "two");
    auto ps = t.take();
    ASSERT_EQ(ps.size(), 3u) << "CONNACK, PUBACK, PINGRESP; cut at " << cut;
    EXPECT_TRUE(std::holds_alternative<codec::Pingresp>(ps[2]));
  }
}

// ---------------------------------------------------------------------------------------------------
// SUBSCRIBE / UNSUBSCRIBE

codec::Subscribe subscribe(std::uint16_t id, std::vector<std::pair<std::string, std::uint8_t>> filters) {
  codec::Subscribe s;
  s.packet_id = id;
  for (auto& [f, q] : filters) {
    codec::SubscribeTopic st;
    st.filter = f;
    st.qos = q;
    s.topics.push_back(st);
  }
  return s;
}

TEST(ServerConnection, MQTT_3_8_4_1_SubscribeGetsSubackWithSameIdAndOneCodePerFilter) {
  Harness t;
  t.connect(Version::kV311);
  t.feed(subscribe(17, {{"a/+", 1}, {"b/#", 2}, {"c", 0}}), Version::kV311);
  ASSERT_EQ(t.h.subscribe_codes.size(), 1u);
  EXPECT_EQ(t.h.subscribed_calls, 1);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  const auto& s = as<codec::SubAck>(ps[0]);
  EXPECT_EQ(s.type, codec::PacketType::kSuback);
  EXPECT_EQ(s.packet_id, 17);
  EXPECT_EQ(s.codes, (std::vector<std::uint8_t>{1, 2, 0}));
}

TEST(ServerConnection, MQTT_4_7_1_InvalidFilterClosesConnectionV311) {
  Harness t;
  t.connect(Version::kV311);
  t.feed(subscribe(3, {{"a/#/b", 1}}), Version::kV311);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kProtocolError);
  EXPECT_TRUE(t.c->out().empty()) << "no SUBACK";
  EXPECT_EQ(t.h.subscribed_calls, 0);
}

TEST(ServerConnection, InvalidFilterGetsSubackCode0x8FOnV5) {
  Harness t;
  t.connect(Version::kV5);
  t.feed(subscribe(3, {{"a/#/b", 1}, {"ok/+", 1}}), Version::kV5);
  EXPECT_FALSE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  const auto& s = as<codec::SubAck>(ps[0]);
  EXPECT_EQ(s.packet_id, 3);
  EXPECT_EQ(s.codes, (std::vector<std::uint8_t>{0x8F, 1}));
}

TEST(ServerConnection, MQTT_3_10_4_4_UnsubscribeGetsUnsuback) {
  Harness t;
  t.connect(Version::kV311);
  codec::Unsubscribe u;
  u.packet_id = 99;
  u.filters = {"a/+", "b"};
  t.feed(u, Version::kV311);
  EXPECT_EQ(t.h.unsubscribes, 1);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::SubAck>(ps[0]).type, codec::PacketType::kUnsuback);
  EXPECT_EQ(as<codec::SubAck>(ps[0]).packet_id, 99);
}

TEST(ServerConnection, ServerOnlyPacketFromClientIsProtocolError) {
  Harness t;
  t.connect(Version::kV5);
  t.feed(kPingresp);
  EXPECT_TRUE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x82);
}

TEST(ServerConnection, QueueOfflineRespectsLimits) {
  ServerLimits limits;
  limits.max_queued_messages = 2;
  SessionState s;
  EXPECT_TRUE(tern::protocol::queue_offline(s, Delivery{message("t", "abc"), 1, false, {}}, limits));
  EXPECT_TRUE(tern::protocol::queue_offline(s, Delivery{message("t", "de"), 1, false, {}}, limits));
  EXPECT_FALSE(tern::protocol::queue_offline(s, Delivery{message("t", "f"), 1, false, {}}, limits));
  EXPECT_EQ(s.queue.size(), 2u);
  EXPECT_EQ(s.queued_bytes, 5u);

  ServerLimits bytes_limit;
  bytes_limit.max_queued_messages = 0;
  bytes_limit.max_queued_bytes = 4;
  SessionState s2;
  EXPECT_TRUE(tern::protocol::queue_offline(s2, Delivery{message("t", "abcd"), 1, false, {}}, bytes_limit));
  EXPECT_FALSE(tern::protocol::queue_offline(s2, Delivery{message("t", "e"), 1, false, {}}, bytes_limit));
  EXPECT_EQ(s2.queued_bytes, 4u);
}

}  // namespace

// Loss policy: an online subscriber's QoS 1/2 queue is never cut at max_queued_messages; above the
// high-water mark the session is flagged congested (publishers pause), and the flag clears when the
// queue has drained to half.
TEST(ServerConnection, OnlineQos1QueueIsNotDroppedAndFlagsCongestion) {
  Harness t;
  t.limits.max_inflight = 1;
  t.limits.max_queued_messages = 4;
  t.connect(Version::kV311);
  for (int i = 0; i < 10; ++i) t.c->deliver(Delivery{message("d", "m" + std::to_string(i)), 1, false, {}});
  EXPECT_EQ(t.h.state.queue.size(), 9u) << "nothing dropped for a connected subscriber";
  EXPECT_EQ(t.c->dropped_queue(), 0u);
  EXPECT_TRUE(t.h.state.congested.load());
  for (int i = 0; i < 7; ++i) {
    auto ps = t.take();
    ASSERT_EQ(ps.size(), 1u);
    t.feed(ack(codec::PacketType::kPuback, as<codec::Publish>(ps[0]).packet_id), Version::kV311);
  }
  EXPECT_EQ(t.h.state.queue.size(), 2u);
  EXPECT_FALSE(t.h.state.congested.load()) << "cleared at half the high-water mark";
}

// Loss policy: a subscriber that stays congested for slow_subscriber_timeout is disconnected (5.0:
// DISCONNECT 0x97); its session keeps the queue, and going offline clears the flag so that its
// publishers are no longer held back.
TEST(ServerConnection, SlowSubscriberIsDisconnectedAfterTimeout) {
  Harness t;
  t.limits.max_inflight = 1;
  t.limits.max_queued_messages = 4;
  t.limits.slow_subscriber_timeout = std::chrono::seconds(30);
  t.connect(Version::kV5, "slow", true, 0);
  for (int i = 0; i < 6; ++i) t.c->deliver(Delivery{message("d", "m" + std::to_string(i)), 1, false, {}});
  ASSERT_TRUE(t.h.state.congested.load());
  t.take();
  t.c->on_tick(t.t0 + 1s);
  t.c->on_tick(t.t0 + 30s);
  EXPECT_FALSE(t.c->closed()) << "29 s congested: still within the timeout";
  t.c->on_tick(t.t0 + 31s);
  ASSERT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), tern::protocol::CloseCause::kSlowConsumer);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x97);
  EXPECT_EQ(t.h.state.queue.size(), 5u) << "the queue stays with the session";
  EXPECT_FALSE(t.h.state.congested.load()) << "an offline session does not pause publishers";
}

TEST(ServerConnection, CongestionThatClearsResetsTheSlowSubscriberClock) {
  Harness t;
  t.limits.max_inflight = 1;
  t.limits.max_queued_messages = 4;
  t.limits.slow_subscriber_timeout = std::chrono::seconds(30);
  t.connect(Version::kV311, "slow", true, 0);
  for (int i = 0; i < 6; ++i) t.c->deliver(Delivery{message("d", "m" + std::to_string(i)), 1, false, {}});
  t.c->on_tick(t.t0 + 1s);
  for (int i = 0; i < 5; ++i) {
    auto ps = t.take();
    ASSERT_EQ(ps.size(), 1u);
    t.feed(ack(codec::PacketType::kPuback, as<codec::Publish>(ps[0]).packet_id), Version::kV311, 20s);
  }
  ASSERT_FALSE(t.h.state.congested.load());
  t.c->on_tick(t.t0 + 25s);
  for (int i = 0; i < 6; ++i) t.c->deliver(Delivery{message("d", "n" + std::to_string(i)), 1, false, {}});
  t.c->on_tick(t.t0 + 40s);
  EXPECT_FALSE(t.c->closed()) << "congested again at 25-40 s: the clock restarted";
  t.c->on_tick(t.t0 + 71s);
  EXPECT_TRUE(t.c->closed());
}

// Back-pressure: a paused connection handles no further packet until resume().
TEST(ServerConnection, PausedConnectionKeepsInputUntilResumed) {
  Harness t;
  t.connect(Version::kV311);
  t.c->pause();
  t.feed(publish("a", "x", 1, 5), Version::kV311);
  EXPECT_TRUE(t.h.published.empty());
  EXPECT_TRUE(t.take().empty()) << "no PUBACK while paused";
  t.c->resume(t.t0);
  ASSERT_EQ(t.h.published.size(), 1u);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).packet_id, 5);
}

// ---- MQTT 5.0 features: message expiry, outbound topic aliases, response information, feature
// switches, payload format validation.
namespace {

TimePoint g_fake_now;
TimePoint fake_now() { return g_fake_now; }

MessagePtr expiring(std::string_view topic, std::uint32_t expiry, TimePoint created) {
  codec::Properties props;
  props.message_expiry = expiry;
  return Message::make(topic, "x", 1, false, {}, created, &props);
}

codec::Connack connack_of(Harness& t, const codec::Connect& cp) {
  t.start();
  t.feed(cp, cp.version);
  auto ps = t.take();
  EXPECT_EQ(ps.size(), 1u);
  return as<codec::Connack>(ps.at(0));
}

}  // namespace

TEST(ServerConnection, MQTT_3_3_2_6_ForwardedExpiryIsReducedByTheWait) {
  Harness t;
  t.limits.clock = &fake_now;
  t.connect(Version::kV5);
  g_fake_now = t.t0 + 4s;
  t.c->deliver(Delivery{expiring("e", 10, t.t0), 1, false, {}});
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Publish>(ps[0]).props.message_expiry, 6u);
}

TEST(ServerConnection, MQTT_3_3_2_5_ExpiredMessageIsNotSent) {
  Harness t;
  t.limits.clock = &fake_now;
  t.limits.max_inflight = 1;
  t.connect(Version::kV5);
  g_fake_now = t.t0;
  t.c->deliver(Delivery{message("first", "a"), 1, false, {}});
  t.c->deliver(Delivery{expiring("late", 10, t.t0), 1, false, {}});  // queued behind the window
  t.c->deliver(Delivery{message("after", "b"), 1, false, {}});
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  g_fake_now = t.t0 + 11s;
  t.feed(ack(codec::PacketType::kPuback, as<codec::Publish>(ps[0]).packet_id), Version::kV5);
  ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Publish>(ps[0]).topic, "after") << "the expired message was skipped";
  EXPECT_EQ(t.c->dropped_expired(), 1u);
}

TEST(ServerConnection, MessageExpiryAlsoAppliesToV311Subscribers) {
  Harness t;
  t.limits.clock = &fake_now;
  t.connect(Version::kV311);
  g_fake_now = t.t0 + 20s;
  t.c->deliver(Delivery{expiring("e", 10, t.t0), 1, false, {}});
  EXPECT_TRUE(t.take().empty());
}

// Outbound topic aliases: the first Topic Alias Maximum distinct topics get an alias; a repeated
// topic goes out as an empty topic plus the alias; later topics go out in full.
TEST(ServerConnection, OutboundTopicAliasesFollowTheClientsMaximum) {
  Harness t;
  codec::Properties props;
  props.topic_alias_maximum = 2;
  t.connect(Version::kV5, "aliased", true, 60, std::nullopt, props);
  for (const char* topic : {"a/1", "a/1", "b/2", "c/3", "a/1", "c/3"}) t.c->deliver(Delivery{message(topic, "p", 0), 0, false, {}});
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 6u);
  auto check = [&](std::size_t i, const char* topic, std::optional<std::uint16_t> alias) {
    const auto& p = as<codec::Publish>(ps[i]);
    EXPECT_EQ(p.topic, topic) << i;
    EXPECT_EQ(p.props.topic_alias, alias) << i;
  };
  check(0, "a/1", 1);
  check(1, "", 1);
  check(2, "b/2", 2);
  check(3, "c/3", std::nullopt);
  check(4, "", 1);
  check(5, "c/3", std::nullopt);
}

TEST(ServerConnection, NoOutboundTopicAliasesWithoutTheClientsMaximum) {
  Harness t;
  t.connect(Version::kV5);
  t.c->deliver(Delivery{message("a/1", "p", 0), 0, false, {}});
  t.c->deliver(Delivery{message("a/1", "p", 0), 0, false, {}});
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(as<codec::Publish>(ps[1]).topic, "a/1");
  EXPECT_FALSE(as<codec::Publish>(ps[1]).props.topic_alias.has_value());
}

TEST(ServerConnection, ResponseInformationOnRequest) {
  Harness t;
  codec::Properties props;
  props.request_response_info = 1;
  auto ack = connack_of(t, Harness::connect_packet(Version::kV5, "rr-client", true, 60, std::nullopt, props));
  EXPECT_EQ(ack.props.response_info, "response/rr-client");
  Harness t2;
  auto ack2 = connack_of(t2, Harness::connect_packet(Version::kV5, "plain"));
  EXPECT_FALSE(ack2.props.response_info.has_value()) << "only when requested";
}

TEST(ServerConnection, MaxQosIsAdvertisedAndEnforced) {
  Harness t;
  t.limits.max_qos = 1;
  auto ack = connack_of(t, Harness::connect_packet(Version::kV5));
  EXPECT_EQ(ack.props.maximum_qos, 1);
  // SUBSCRIBE above it is granted the maximum [MQTT-3.2.2-10].
  codec::Subscribe s;
  s.packet_id = 1;
  s.topics.push_back({"x", 2});
  t.feed(s, Version::kV5);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::SubAck>(ps[0]).codes, std::vector<std::uint8_t>{1});
  // PUBLISH above it: DISCONNECT 0x9B.
  t.feed(publish("x", "y", 2, 1), Version::kV5);
  EXPECT_TRUE(t.c->closed());
  ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x9B);
}

TEST(ServerConnection, MQTT_3_2_2_12_WillAboveMaxQosIsRefused) {
  Harness t;
  t.limits.max_qos = 0;
  codec::Will w;
  w.topic = "w";
  w.payload = "bye";
  w.qos = 1;
  auto ack = connack_of(t, Harness::connect_packet(Version::kV5, "c", true, 60, w));
  EXPECT_EQ(ack.code, 0x9B);
  EXPECT_TRUE(t.c->closed());
}

TEST(ServerConnection, RetainUnavailableIsAdvertisedAndEnforced) {
  Harness t;
  t.limits.retain_available = false;
  auto ack = connack_of(t, Harness::connect_packet(Version::kV5));
  EXPECT_EQ(ack.props.retain_available, 0);
  auto p = publish("r", "v", 0);
  p.retain = true;
  t.feed(p, Version::kV5);
  EXPECT_TRUE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x9A);
  EXPECT_TRUE(t.h.published.empty());
}

TEST(ServerConnection, MQTT_3_2_2_13_RetainedWillRefusedWhenRetainUnavailable) {
  Harness t;
  t.limits.retain_available = false;
  codec::Will w;
  w.topic = "w";
  w.payload = "bye";
  w.retain = true;
  auto ack = connack_of(t, Harness::connect_packet(Version::kV5, "c", true, 60, w));
  EXPECT_EQ(ack.code, 0x9A);
}

TEST(ServerConnection, PayloadFormatIndicatorIsValidated) {
  Harness t;
  t.connect(Version::kV5);
  auto bad = publish("u", "\xff\xfe", 1, 1);
  bad.props.payload_format = 1;
  t.feed(bad, Version::kV5);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).reason, 0x99);
  EXPECT_TRUE(t.h.published.empty());
  auto good = publish("u", std::string_view("ok\0ok", 5), 1, 2);
  good.props.payload_format = 1;
  t.feed(good, Version::kV5);
  EXPECT_EQ(t.h.published.size(), 1u) << "U+0000 is valid character data";
  auto bad0 = publish("u", "\xc0\x80", 0);
  bad0.props.payload_format = 1;
  t.feed(bad0, Version::kV5);
  EXPECT_TRUE(t.c->closed());
  ps = t.take();
  ASSERT_GE(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps.back()).reason, 0x99);
}

// ---- Enhanced authentication (section 4.12): a toy challenge-response method run by the handler.
namespace {

struct AuthHandler : FakeHandler {
  int starts = 0;
  bool last_reauth = false;
  tern::protocol::AuthStep auth_start(ServerConnection&, const std::string& method, const std::string& data,
                                      bool reauth) override {
    ++starts;
    last_reauth = reauth;
    if (method != "TOY") return {};
    if (data != "hello") return {tern::protocol::AuthStep::kFail, {}, Reason::kNotAuthorized};
    return {tern::protocol::AuthStep::kContinue, "challenge"};
  }
  tern::protocol::AuthStep auth_continue(ServerConnection&, const std::string& data) override {
    if (data == "answer") return {tern::protocol::AuthStep::kSuccess, "server-proof"};
    return {tern::protocol::AuthStep::kFail, {}, Reason::kNotAuthorized};
  }
};

struct AuthHarness {
  AuthHandler h;
  ServerLimits limits;
  TimePoint t0 = TimePoint{} + 1000h;
  std::unique_ptr<ServerConnection> c;
  std::deque<std::string> storage;
  AuthHarness() { c = std::make_unique<ServerConnection>(h, limits, "127.0.0.1:1", t0); }
  void feed(const codec::Packet& p) {
    std::string b;
    codec::encode_packet(p, Version::kV5, b);
    c->on_bytes(reinterpret_cast<const std::uint8_t*>(b.data()), b.size(), t0);
  }
  std::vector<codec::Packet> take() {
    storage.push_back(c->out().bytes);
    c->out().clear();
    std::vector<codec::Packet> out;
    const auto* d = reinterpret_cast<const std::uint8_t*>(storage.back().data());
    std::size_t off = 0;
    while (off < storage.back().size()) {
      codec::FrameHeader fh;
      codec::DecodeError err;
      if (codec::parse_frame(d + off, storage.back().size() - off, 0, fh, err) != codec::FrameStatus::kComplete) break;
      codec::Packet p;
      EXPECT_FALSE(codec::decode_packet(fh, d + off + fh.header_size, Version::kV5, p));
      out.push_back(std::move(p));
      off += fh.total();
    }
    return out;
  }
};

codec::Connect auth_connect(const std::string& method, const std::string& data) {
  codec::Properties props;
  props.auth_method = method;
  props.auth_data = data;
  return Harness::connect_packet(Version::kV5, "authed", true, 60, std::nullopt, props);
}

codec::Auth auth_packet(std::uint8_t reason, const std::string& method, const std::string& data) {
  codec::Auth a;
  a.reason = reason;
  a.props.auth_method = method;
  a.props.auth_data = data;
  return a;
}

}  // namespace

TEST(ServerConnection, EnhancedAuthChallengeResponseThenConnack) {
  AuthHarness t;
  t.feed(auth_connect("TOY", "hello"));
  EXPECT_EQ(t.c->state(), ServerConnection::State::kAuthenticating);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  const auto& challenge = as<codec::Auth>(ps[0]);
  EXPECT_EQ(challenge.reason, 0x18);
  EXPECT_EQ(challenge.props.auth_method, "TOY") << "every AUTH carries the CONNECT's method";
  EXPECT_EQ(challenge.props.auth_data, "challenge");
  EXPECT_EQ(t.h.connects, 0) << "the session waits for the exchange";
  t.feed(auth_packet(0x18, "TOY", "answer"));
  ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  const auto& ack = as<codec::Connack>(ps[0]);
  EXPECT_EQ(ack.code, 0);
  EXPECT_EQ(ack.props.auth_method, "TOY");
  EXPECT_EQ(ack.props.auth_data, "server-proof");
  EXPECT_EQ(t.h.connects, 1);
  EXPECT_EQ(t.c->state(), ServerConnection::State::kConnected);
}

TEST(ServerConnection, EnhancedAuthWrongAnswerGetsConnack0x87) {
  AuthHarness t;
  t.feed(auth_connect("TOY", "hello"));
  t.take();
  t.feed(auth_packet(0x18, "TOY", "wrong"));
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps[0]).code, 0x87);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.h.connects, 0);
}

TEST(ServerConnection, EnhancedAuthUnknownMethodGetsConnack0x8C) {
  AuthHarness t;
  t.feed(auth_connect("SCRAM-SHA-1", "x"));
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps[0]).code, 0x8C);
  EXPECT_TRUE(t.c->closed());
}

TEST(ServerConnection, EnhancedAuthOtherPacketDuringExchangeIsProtocolError) {
  AuthHarness t;
  t.feed(auth_connect("TOY", "hello"));
  t.take();
  t.feed(codec::Pingreq{});
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps[0]).code, 0x82);
  EXPECT_TRUE(t.c->closed());
}

TEST(ServerConnection, EnhancedAuthChangedMethodIsProtocolError) {
  AuthHarness t;
  t.feed(auth_connect("TOY", "hello"));
  t.take();
  t.feed(auth_packet(0x18, "OTHER", "answer"));
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps[0]).code, 0x82);
}

TEST(ServerConnection, ReAuthenticationSucceedsWithAuth0x00) {
  AuthHarness t;
  t.feed(auth_connect("TOY", "hello"));
  t.feed(auth_packet(0x18, "TOY", "answer"));
  t.take();
  t.feed(auth_packet(0x19, "TOY", "hello"));
  EXPECT_TRUE(t.h.last_reauth);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Auth>(ps[0]).reason, 0x18);
  t.feed(auth_packet(0x18, "TOY", "answer"));
  ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Auth>(ps[0]).reason, 0x00);
  EXPECT_EQ(as<codec::Auth>(ps[0]).props.auth_data, "server-proof");
  EXPECT_FALSE(t.c->closed());
}

TEST(ServerConnection, FailedReAuthenticationDisconnects) {
  AuthHarness t;
  t.feed(auth_connect("TOY", "hello"));
  t.feed(auth_packet(0x18, "TOY", "answer"));
  t.take();
  t.feed(auth_packet(0x19, "TOY", "hello"));
  t.take();
  t.feed(auth_packet(0x18, "TOY", "nope"));
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x87);
  EXPECT_TRUE(t.c->closed());
}

TEST(ServerConnection, AuthWithoutMethodInConnectIsProtocolError) {
  Harness t;
  t.connect(Version::kV5);
  t.feed(auth_packet(0x19, "TOY", "hello"), Version::kV5);
  EXPECT_TRUE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x82);
}

TEST(ServerConnection, AuthExchangeIsBoundByConnectTimeout) {
  AuthHarness t;
  t.limits.connect_timeout = std::chrono::seconds(10);
  t.c = std::make_unique<ServerConnection>(t.h, t.limits, "127.0.0.1:1", t.t0);
  t.feed(auth_connect("TOY", "hello"));
  t.c->on_tick(t.t0 + 5s);
  EXPECT_FALSE(t.c->closed());
  t.c->on_tick(t.t0 + 11s);
  EXPECT_TRUE(t.c->closed());
}

// A refused PUBLISH (access control, $SYS): 5.0 hears the reason in PUBACK/PUBREC, 3.1.1 is
// acknowledged as usual [MQTT-3.3.5-2]; nothing is routed.
TEST(ServerConnection, RefusedPublishIsAcknowledgedAndDropped) {
  Harness t5;
  t5.h.authorize = Reason::kNotAuthorized;
  t5.connect(Version::kV5);
  t5.feed(publish("$SYS/x", "1", 1, 1), Version::kV5);
  t5.feed(publish("$SYS/x", "2", 2, 2), Version::kV5);
  auto ps = t5.take();
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).reason, 0x87);
  EXPECT_EQ(as<codec::Ack>(ps[1]).type, codec::PacketType::kPubrec);
  EXPECT_EQ(as<codec::Ack>(ps[1]).reason, 0x87) << "refused before PUBREC";
  EXPECT_TRUE(t5.h.published.empty());

  Harness t3;
  t3.h.authorize = Reason::kNotAuthorized;
  t3.connect(Version::kV311);
  t3.feed(publish("$SYS/x", "2", 2, 7), Version::kV311);
  ps = t3.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).type, codec::PacketType::kPubrec);
  t3.feed(ack(codec::PacketType::kPubrel, 7), Version::kV311);
  ps = t3.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).type, codec::PacketType::kPubcomp);
  EXPECT_TRUE(t3.h.published.empty()) << "acknowledged, never routed";
}

// Feature switches for subscriptions: advertised in CONNACK, refused per filter.
TEST(ServerConnection, SubscriptionFeatureSwitchesAreAdvertisedAndEnforced) {
  Harness t;
  t.limits.wildcard_subscription_available = false;
  t.limits.subscription_identifier_available = false;
  t.limits.shared_subscription_available = false;
  auto ack = connack_of(t, Harness::connect_packet(Version::kV5));
  EXPECT_EQ(ack.props.wildcard_sub_available, 0);
  EXPECT_EQ(ack.props.sub_id_available, 0);
  EXPECT_EQ(ack.props.shared_sub_available, 0);
  codec::Subscribe s;
  s.packet_id = 1;
  s.topics.push_back({"a/+", 1});
  s.topics.push_back({"$share/g/a", 1});
  s.topics.push_back({"a/b", 1});
  t.feed(s, Version::kV5);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::SubAck>(ps[0]).codes, (std::vector<std::uint8_t>{0xA2, 0x9E, 1}));
  codec::Subscribe with_id;
  with_id.packet_id = 2;
  with_id.props.subscription_ids.push_back(7);
  with_id.topics.push_back({"c/d", 0});
  t.feed(with_id, Version::kV5);
  ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::SubAck>(ps[0]).codes, std::vector<std::uint8_t>{0xA1});

  Harness t3;
  t3.limits.wildcard_subscription_available = false;
  t3.connect(Version::kV311);
  codec::Subscribe w;
  w.packet_id = 3;
  w.topics.push_back({"#", 0});
  t3.feed(w, Version::kV311);
  ps = t3.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::SubAck>(ps[0]).codes, std::vector<std::uint8_t>{0x80});
}

// [MQTT-3.15.2-2], [MQTT-3.15.2-3]: an AUTH never carries a Reason String or User Property that could
// exceed the client's Maximum Packet Size; Tern sends neither on AUTH.
TEST(ServerConnection, AuthPacketsCarryNoReasonStringOrUserProperty) {
  AuthHarness t;
  codec::Connect cp = auth_connect("TOY", "hello");
  cp.props.maximum_packet_size = 32;
  t.feed(cp);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  const auto& a = as<codec::Auth>(ps[0]);
  EXPECT_FALSE(a.props.reason_string.has_value());
  EXPECT_TRUE(a.props.user_properties.empty());
  EXPECT_LE(t.storage.back().size(), 32u);
  t.feed(auth_packet(0x18, "TOY", "answer"));
  t.take();
  t.feed(auth_packet(0x19, "TOY", "hello"));
  ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_FALSE(as<codec::Auth>(ps[0]).props.reason_string.has_value());
  EXPECT_LE(t.storage.back().size(), 32u);
}

// ---------------------------------------------------------------------------------------------
// Durable acknowledgements (docs/durability.md): the handler holds an acknowledgement until the
// store has written what it needs; output keeps its order; a failure answers 0x97 on 5.0 and closes
// the connection otherwise.

namespace {

struct HoldingHandler : FakeHandler {
  bool hold_publish = true;
  bool hold_subscribe = false;
  bool hold_qos2 = false;
  bool hold_flights = false;
  std::vector<std::uint64_t> tickets;
  std::vector<std::pair<tern::protocol::ConnectionHandler::Flight, std::uint16_t>> flights;
  Reason on_publish(ServerConnection& c, const MessagePtr& m) override {
    Reason r = FakeHandler::on_publish(c, m);
    if (hold_publish) tickets.push_back(c.hold());
    return r;
  }
  void on_subscribe(ServerConnection& c, const codec::Subscribe& s, std::vector<std::uint8_t>& codes) override {
    FakeHandler::on_subscribe(c, s, codes);
    if (hold_subscribe) tickets.push_back(c.hold());
  }
  void on_subscribed(ServerConnection& c, const codec::Subscribe& s, const std::vector<std::uint8_t>& codes) override {
    FakeHandler::on_subscribed(c, s, codes);
    Delivery d;
    d.msg = message("kept", "retained");
    d.qos = 0;
    d.retain = true;
    c.deliver(std::move(d));  // like a retained message: after the SUBACK [MQTT-3.8.4-3]
  }
  Reason on_qos2_held(ServerConnection& c, std::uint16_t, const MessagePtr&) override {
    if (hold_qos2) tickets.push_back(c.hold());
    return Reason::kSuccess;
  }
  void on_stored_flight(ServerConnection& c, const Delivery&, std::uint16_t id, Flight f) override {
    flights.emplace_back(f, id);
    if (hold_flights && f != Flight::kDone) tickets.push_back(c.hold());
  }
};

struct HoldingHarness {
  HoldingHandler h;
  Harness t;
  HoldingHarness() {
    t.start();
    t.c = std::make_unique<ServerConnection>(h, t.limits, "127.0.0.1:50000", t.t0);
  }
  void connect(Version v) {
    t.feed(Harness::connect_packet(v), v);
    auto ps = t.take();
    ASSERT_EQ(ps.size(), 1u);
    ASSERT_TRUE(std::holds_alternative<codec::Connack>(ps[0]));
  }
};

}  // namespace

TEST(DurableAcks, PubackWaitsForItsTicketAndLaterAcksKeepTheirOrder) {
  HoldingHarness x;
  x.connect(Version::kV311);
  x.t.feed(publish("a", "1", 1, 1), Version::kV311);
  EXPECT_TRUE(x.t.take().empty()) << "PUBACK before the store wrote the message";
  x.h.hold_publish = false;  // a message that needs no store
  x.t.feed(publish("b", "2", 1, 2), Version::kV311);
  x.t.feed(codec::Pingreq{}, Version::kV311);
  EXPECT_TRUE(x.t.take().empty()) << "a later acknowledgement overtook one that waits";
  ASSERT_EQ(x.h.tickets.size(), 1u);
  EXPECT_EQ(x.t.c->held(), 1u);
  x.t.c->complete(x.h.tickets[0], true);
  auto ps = x.t.take();
  ASSERT_EQ(ps.size(), 3u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).packet_id, 1);
  EXPECT_EQ(as<codec::Ack>(ps[1]).packet_id, 2);
  EXPECT_TRUE(std::holds_alternative<codec::Pingresp>(ps[2]));
  EXPECT_EQ(x.t.c->held(), 0u);
}

TEST(DurableAcks, TicketsCompleteOutOfOrderButAcksGoOutInOrder) {
  HoldingHarness x;
  x.connect(Version::kV5);
  x.t.feed(publish("a", "1", 1, 1), Version::kV5);
  x.t.feed(publish("a", "2", 1, 2), Version::kV5);
  ASSERT_EQ(x.h.tickets.size(), 2u);
  EXPECT_NE(x.h.tickets[0], x.h.tickets[1]);
  x.t.c->complete(x.h.tickets[1], true);
  EXPECT_TRUE(x.t.take().empty());
  x.t.c->complete(x.h.tickets[0], true);
  auto ps = x.t.take();
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).packet_id, 1);
  EXPECT_EQ(as<codec::Ack>(ps[1]).packet_id, 2);
}

TEST(DurableAcks, StoreFailureAnswers0x97OnV5) {
  HoldingHarness x;
  x.connect(Version::kV5);
  x.t.feed(publish("a", "1", 1, 9), Version::kV5);
  x.t.c->complete(x.h.tickets.at(0), false);
  auto ps = x.t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).type, codec::PacketType::kPuback);
  EXPECT_EQ(as<codec::Ack>(ps[0]).reason, tern::to_byte(Reason::kQuotaExceeded));
  EXPECT_FALSE(x.t.c->closed());
}

TEST(DurableAcks, StoreFailureClosesA311ConnectionWithoutPuback) {
  HoldingHarness x;
  x.connect(Version::kV311);
  x.t.feed(publish("a", "1", 1, 9), Version::kV311);
  x.t.c->complete(x.h.tickets.at(0), false);
  EXPECT_TRUE(x.t.take().empty()) << "3.1.1 has no negative PUBACK: nothing may acknowledge it";
  EXPECT_TRUE(x.t.c->closed());
  EXPECT_EQ(x.t.c->close_cause(), CloseCause::kStoreFailure);
}

TEST(DurableAcks, SubackWaitsAndRetainedMessagesFollowIt) {
  HoldingHarness x;
  x.h.hold_subscribe = true;
  x.connect(Version::kV311);
  codec::Subscribe s;
  s.packet_id = 4;
  s.topics.push_back({"kept", 0, false, false, 0});
  x.t.feed(s, Version::kV311);
  EXPECT_TRUE(x.t.take().empty());
  x.t.c->complete(x.h.tickets.at(0), true);
  auto ps = x.t.take();
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(as<codec::SubAck>(ps[0]).packet_id, 4);
  EXPECT_EQ(as<codec::Publish>(ps[1]).topic, "kept");
}

TEST(DurableAcks, FailedQos2PubrecForgetsTheIdSoAResendIsNew) {
  HoldingHarness x;
  x.h.hold_publish = false;
  x.h.hold_qos2 = true;
  x.connect(Version::kV5);
  x.t.feed(publish("q", "x", 2, 3), Version::kV5);
  EXPECT_TRUE(x.t.take().empty());
  x.t.c->complete(x.h.tickets.at(0), false);
  auto ps = x.t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).type, codec::PacketType::kPubrec);
  EXPECT_EQ(as<codec::Ack>(ps[0]).reason, tern::to_byte(Reason::kQuotaExceeded));
  EXPECT_TRUE(x.h.state.inbound_qos2.empty()) << "an id the store did not take must not be acknowledged later";
  x.t.feed(publish("q", "x", 2, 3, true), Version::kV5);
  EXPECT_EQ(x.h.tickets.size(), 2u) << "the resend is held and stored as a new message";
}

TEST(DurableAcks, StoredQos2PublishAndPubrelWaitForTheirState) {
  HoldingHarness x;
  x.h.hold_flights = true;
  x.connect(Version::kV311);
  Delivery d;
  d.msg = message("t", "p", 2);
  d.qos = 2;
  d.seq = 77;
  x.t.c->deliver(std::move(d));
  ASSERT_EQ(x.h.flights.size(), 1u);
  EXPECT_EQ(x.h.flights[0].first, tern::protocol::ConnectionHandler::Flight::kSent);
  EXPECT_TRUE(x.t.take().empty()) << "QoS 2 PUBLISH before its packet id was stored";
  x.t.c->complete(x.h.tickets.at(0), true);
  auto ps = x.t.take();
  ASSERT_EQ(ps.size(), 1u);
  const auto id = as<codec::Publish>(ps[0]).packet_id;
  x.t.feed(ack(codec::PacketType::kPubrec, id), Version::kV311);
  EXPECT_EQ(x.h.flights.back().first, tern::protocol::ConnectionHandler::Flight::kReleased);
  EXPECT_TRUE(x.t.take().empty()) << "PUBREL before \"released\" was stored";
  x.t.c->complete(x.h.tickets.at(1), true);
  ps = x.t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).type, codec::PacketType::kPubrel);
  x.t.feed(ack(codec::PacketType::kPubcomp, id), Version::kV311);
  EXPECT_EQ(x.h.flights.back().first, tern::protocol::ConnectionHandler::Flight::kDone);
  EXPECT_TRUE(x.h.state.inflight.empty());
}

TEST(DurableAcks, TooManyHeldAcknowledgementsPauseReading) {
  HoldingHarness x;
  x.connect(Version::kV311);
  std::string many;
  for (std::size_t i = 0; i < ServerConnection::kMaxHeld + 10; ++i) {
    many += Harness::encode(publish("a", "x", 1, static_cast<std::uint16_t>(i % 60000 + 1)), Version::kV311);
  }
  x.t.feed(many);
  EXPECT_EQ(x.h.tickets.size(), ServerConnection::kMaxHeld) << "reading must stop at the bound";
  EXPECT_TRUE(x.t.c->paused());
  for (auto t : x.h.tickets) x.t.c->complete(t, true);
  EXPECT_FALSE(x.t.c->paused());
  x.t.c->resume(x.t.t0);
  EXPECT_EQ(x.h.tickets.size(), ServerConnection::kMaxHeld + 10);
}

namespace {
// Holds the PUBCOMP twice: once while routing the released message, once while releasing its id.
struct TwiceHandler : HoldingHandler {
  void on_qos2_released(ServerConnection& c, std::uint16_t, const MessagePtr&) override { tickets.push_back(c.hold()); }
};
}  // namespace

TEST(DurableAcks, AnAcknowledgementHeldTwiceWaitsForBothCompletions) {
  // PUBREL: the deliveries and the release of the id may be written by two batches; PUBCOMP waits
  // for both (a PUBCOMP sent after the first only would let a crash keep the id).
  TwiceHandler h;
  Harness t;
  t.start();
  t.c = std::make_unique<ServerConnection>(h, t.limits, "127.0.0.1:50001", t.t0);
  t.feed(Harness::connect_packet(Version::kV5), Version::kV5);
  t.take();
  h.hold_publish = false;
  t.feed(publish("q", "z", 2, 7), Version::kV5);
  t.take();  // PUBREC
  h.hold_publish = true;
  t.feed(ack(codec::PacketType::kPubrel, 7), Version::kV5);
  ASSERT_EQ(h.tickets.size(), 2u);
  EXPECT_EQ(h.tickets[0], h.tickets[1]) << "one packet, one gate";
  t.c->complete(h.tickets[0], true);
  EXPECT_TRUE(t.take().empty()) << "PUBCOMP after the first of two batches";
  t.c->complete(h.tickets[1], true);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).type, codec::PacketType::kPubcomp);
}

// Message references: the router takes them in bulk (RefBatch) and a drain loop gives them back in
// bulk (ReleaseBatch); the count must come out exact either way.

TEST(MessageRefs, RefBatchTakesAndReturnsInOneStep) {
  MessagePtr m = message("t", "x");
  MessagePtr kept;
  {
    tern::protocol::RefBatch refs(m, 3);
    EXPECT_EQ(m.use_count(), 4u);
    kept = refs.take();
    MessagePtr sent = refs.take();
    refs.give_back(sent);
    EXPECT_FALSE(sent);
    EXPECT_EQ(m.use_count(), 4u) << "returned references stay in the batch until it ends";
  }
  EXPECT_EQ(m.use_count(), 2u) << "the caller's and the one kept";
  kept.reset();
  EXPECT_EQ(m.use_count(), 1u);
}

TEST(MessageRefs, RefBatchCountsPastItsSize) {
  MessagePtr m = message("t", "x");
  std::vector<MessagePtr> held;
  {
    tern::protocol::RefBatch refs(m, 1);
    for (int i = 0; i < 3; ++i) held.push_back(refs.take());
  }
  EXPECT_EQ(m.use_count(), 4u);
  held.clear();
  EXPECT_EQ(m.use_count(), 1u);
}

TEST(MessageRefs, ReleaseBatchReleasesRunsAndFreesTheLast) {
  MessagePtr a = message("a", "x");
  MessagePtr b = message("b", "y");
  std::vector<MessagePtr> refs{a, a, a, b, b, a};
  EXPECT_EQ(a.use_count(), 5u);
  EXPECT_EQ(b.use_count(), 3u);
  tern::protocol::ReleaseBatch done;
  for (auto& r : refs) done.add(r);
  MessagePtr none;
  done.add(none);  // an empty pointer is ignored
  done.flush();
  for (auto& r : refs) EXPECT_FALSE(r);
  EXPECT_EQ(a.use_count(), 1u);
  EXPECT_EQ(b.use_count(), 1u);
  // The batch may hold the last reference: the message is freed by flush() (ASan checks the free).
  MessagePtr c = message("c", "z");
  done.add(c);
  done.flush();
}

TEST(ServerConnection, Qos0DeliveryLeavesTheMessageToTheCaller) {
  Harness t;
  t.connect(Version::kV311);
  MessagePtr m = message("d", "x", 1);
  Delivery q0{m, 0, false, {}};
  t.c->deliver(std::move(q0));
  EXPECT_TRUE(q0.msg) << "written at once: nothing kept, the router gives the reference back";
  Delivery q1{m, 1, false, {}};
  t.c->deliver(std::move(q1));
  EXPECT_FALSE(q1.msg) << "kept in flight";
  EXPECT_EQ(t.take().size(), 2u);
}

// ---------------------------------------------------------------------------------------------------
// Limits and defences (docs/security.md): each limit is exceeded, and the connection reacts and
// counts the hit for $SYS/broker/tern/limits/<key>.

namespace limits_test {

using tern::protocol::Limit;

std::uint32_t hits(ServerConnection& c, Limit l) {
  const auto* h = c.limit_hits();
  return h ? h->n[static_cast<std::size_t>(l)] : 0;
}

codec::Properties user_properties(std::size_t n) {
  codec::Properties p;
  for (std::size_t i = 0; i < n; ++i) p.user_properties.push_back({"k" + std::to_string(i), "v"});
  return p;
}

std::string deep_topic(std::size_t levels) {
  std::string t = "l";
  for (std::size_t i = 1; i < levels; ++i) t += "/l";
  return t;
}

}  // namespace limits_test

TEST(ServerConnectionLimits, ConnectAboveMaxConnectSizeIsRefusedFromItsFirstBytesV5) {
  using namespace limits_test;
  Harness t;
  t.limits.max_connect_size = 1024;
  t.start();
  codec::Will w = test_will();
  w.payload = std::string(4000, 'w');
  std::string bytes = Harness::encode(Harness::connect_packet(Version::kV5, "big", true, 60, w), Version::kV5);
  // The fixed header and the protocol level are enough: the rest is never read.
  t.feed(bytes.substr(0, 16));
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.h.connects, 0);
  auto ps = t.take(Version::kV5);
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps[0]).code, 0x95) << "Packet too large";
  EXPECT_EQ(hits(*t.c, Limit::kMaxConnectSize), 1u);
}

TEST(ServerConnectionLimits, ConnectAboveMaxConnectSizeClosesWithoutConnackV311) {
  using namespace limits_test;
  Harness t;
  t.limits.max_connect_size = 1024;
  t.start();
  codec::Will w = test_will();
  w.payload = std::string(4000, 'w');
  t.feed(Harness::connect_packet(Version::kV311, "big", true, 60, w), Version::kV311);
  EXPECT_TRUE(t.c->closed());
  EXPECT_TRUE(t.take_raw().empty()) << "3.1.1 has no return code for it";
  EXPECT_EQ(hits(*t.c, Limit::kMaxConnectSize), 1u);
}

TEST(ServerConnectionLimits, MaxConnectSizeAppliesBeforeConnackOnly) {
  using namespace limits_test;
  Harness t;
  t.limits.max_connect_size = 1024;
  codec::Will w = test_will();
  w.payload = std::string(900, 'w');
  t.connect(Version::kV5, "fits", true, 60, w);
  t.feed(publish("t", std::string(5000, 'x'), 0), Version::kV5);
  EXPECT_FALSE(t.c->closed()) << "after CONNACK max_packet_size applies";
  ASSERT_EQ(t.h.published.size(), 1u);
  EXPECT_EQ(t.c->limit_hits(), nullptr) << "nothing counted, nothing allocated";
}

TEST(ServerConnectionLimits, ClientIdLongerThanMaxClientidLenGetsConnack0x85) {
  using namespace limits_test;
  Harness t;
  t.limits.max_client_id_length = 8;
  t.start();
  t.feed(Harness::connect_packet(Version::kV5, "123456789"), Version::kV5);
  EXPECT_TRUE(t.c->closed());
  auto ps = t.take(Version::kV5);
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps[0]).code, 0x85);
  EXPECT_EQ(hits(*t.c, Limit::kMaxClientidLen), 1u);

  Harness v3;
  v3.limits.max_client_id_length = 8;
  v3.start();
  v3.feed(Harness::connect_packet(Version::kV311, "123456789"), Version::kV311);
  auto ps3 = v3.take(Version::kV311);
  ASSERT_EQ(ps3.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps3[0]).code, 0x02) << "identifier rejected";

  Harness ok;
  ok.limits.max_client_id_length = 8;
  ok.connect(Version::kV311, "12345678");
}

TEST(ServerConnectionLimits, PublishTopicDeeperThanMaxTopicLevelsGetsDisconnect0x90V5) {
  using namespace limits_test;
  Harness t;
  t.limits.max_topic_levels = 8;
  t.connect(Version::kV5);
  t.feed(publish(deep_topic(8), "ok", 0), Version::kV5);
  EXPECT_EQ(t.h.published.size(), 1u) << "exactly at the limit";
  t.feed(publish(deep_topic(9), "no", 1, 5), Version::kV5);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.h.published.size(), 1u);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x90) << "Topic Name invalid";
  EXPECT_EQ(hits(*t.c, Limit::kMaxTopicLevels), 1u);
}

TEST(ServerConnectionLimits, PublishTopicLongerThanMaxTopicLengthClosesV311) {
  using namespace limits_test;
  Harness t;
  t.limits.max_topic_length = 32;
  t.connect(Version::kV311);
  t.feed(publish(std::string(32, 'a'), "ok", 0), Version::kV311);
  EXPECT_EQ(t.h.published.size(), 1u);
  t.feed(publish(std::string(33, 'a'), "no", 0), Version::kV311);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.c->close_cause(), CloseCause::kProtocolError);
  EXPECT_TRUE(t.take().empty()) << "3.1.1: closed without a packet";
  EXPECT_EQ(hits(*t.c, Limit::kMaxTopicLength), 1u);
}

TEST(ServerConnectionLimits, TopicSetThroughAnAliasMeetsTheLimitsToo) {
  using namespace limits_test;
  Harness t;
  t.limits.max_topic_levels = 4;
  t.connect(Version::kV5);
  codec::Publish p = publish(deep_topic(5), "x", 0);
  p.props.topic_alias = 1;
  t.feed(p, Version::kV5);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(hits(*t.c, Limit::kMaxTopicLevels), 1u);
}

TEST(ServerConnectionLimits, SubscribeFilterBeyondLimitsFailsAloneWith0x8F) {
  using namespace limits_test;
  Harness t;
  t.limits.max_topic_levels = 4;
  t.limits.max_topic_length = 40;
  t.connect(Version::kV5);
  codec::Subscribe s;
  s.packet_id = 3;
  s.topics = {{"a/b/c/d", 1}, {"a/b/c/d/e", 1}, {std::string(41, 'x'), 0},
              {"$share/g/a/b/c/d", 1},  // levels of the shared filter's own filter
              {"$share/g/a/b/c/d/#", 1}};
  t.feed(s, Version::kV5);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::SubAck>(ps[0]).codes, (std::vector<std::uint8_t>{1, 0x8F, 0x8F, 1, 0x8F}));
  EXPECT_EQ(hits(*t.c, Limit::kMaxTopicLevels), 2u);
  EXPECT_EQ(hits(*t.c, Limit::kMaxTopicLength), 1u);
  EXPECT_FALSE(t.c->closed());
}

TEST(ServerConnectionLimits, SubscribeFilterBeyondLimitsGets0x80V311) {
  using namespace limits_test;
  Harness t;
  t.limits.max_topic_levels = 2;
  t.connect(Version::kV311);
  codec::Subscribe s;
  s.packet_id = 4;
  s.topics = {{"a/+/c", 0}, {"a/#", 2}};
  t.feed(s, Version::kV311);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::SubAck>(ps[0]).codes, (std::vector<std::uint8_t>{0x80, 2}));
}

TEST(ServerConnectionLimits, WillTopicBeyondLimitsGetsConnack0x90V5) {
  using namespace limits_test;
  Harness t;
  t.limits.max_topic_levels = 2;
  t.start();
  codec::Will w = test_will();
  w.topic = "a/b/c";
  t.feed(Harness::connect_packet(Version::kV5, "w", true, 60, w), Version::kV5);
  auto ps = t.take(Version::kV5);
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps[0]).code, 0x90);
  EXPECT_EQ(t.h.connects, 0) << "the broker never sees it";
  EXPECT_EQ(hits(*t.c, Limit::kMaxTopicLevels), 1u);
}

TEST(ServerConnectionLimits, MorePropertiesThanMaxPacketPropertiesIsQuotaExceeded) {
  using namespace limits_test;
  Harness t;
  t.limits.max_packet_properties = 16;
  t.connect(Version::kV5);
  codec::Publish ok = publish("t", "ok", 0);
  ok.props = user_properties(16);
  t.feed(ok, Version::kV5);
  ASSERT_EQ(t.h.published.size(), 1u);
  codec::Publish many = publish("t", "no", 0);
  many.props = user_properties(17);
  t.feed(many, Version::kV5);
  EXPECT_TRUE(t.c->closed());
  EXPECT_EQ(t.h.published.size(), 1u);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x97) << "an administrative limit: Quota exceeded";
  EXPECT_EQ(hits(*t.c, Limit::kMaxPacketProperties), 1u);
}

TEST(ServerConnectionLimits, ConnectWithTooManyPropertiesGetsConnack0x97) {
  using namespace limits_test;
  Harness t;
  t.limits.max_packet_properties = 8;
  t.start();
  // The CONNECT's own properties and its will's count together: 5 + 5 > 8.
  codec::Will w = test_will();
  w.props = user_properties(5);
  t.feed(Harness::connect_packet(Version::kV5, "p", true, 60, w, user_properties(5)), Version::kV5);
  auto ps = t.take(Version::kV5);
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps[0]).code, 0x97);
  EXPECT_EQ(hits(*t.c, Limit::kMaxPacketProperties), 1u);
}

TEST(ServerConnectionLimits, DecoderStopsAtThePropertyBound) {
  codec::Publish p = publish("t", "x", 0);
  p.props = limits_test::user_properties(1000);
  std::string bytes = Harness::encode(p, Version::kV5);
  codec::FrameHeader h;
  codec::DecodeError err;
  ASSERT_EQ(codec::parse_frame(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), 0, h, err),
            codec::FrameStatus::kComplete);
  codec::Packet out;
  auto e = codec::decode_packet(h, reinterpret_cast<const std::uint8_t*>(bytes.data()) + h.header_size,
                                Version::kV5, out, 10);
  ASSERT_TRUE(e);
  EXPECT_EQ(e.reason, Reason::kQuotaExceeded);
  EXPECT_EQ(std::get<codec::Publish>(out).props.user_properties.size(), 10u) << "no growth past the bound";
  codec::Packet all;
  EXPECT_FALSE(codec::decode_packet(h, reinterpret_cast<const std::uint8_t*>(bytes.data()) + h.header_size,
                                    Version::kV5, all))
      << "0 (the default) is no bound";
}

TEST(ServerConnectionLimits, MessagesRatePausesTheConnectionUntilTokensAreBack) {
  using namespace limits_test;
  Harness t;
  t.limits.messages_rate = {10, std::chrono::seconds(1)};  // 100 ms per message, 10 at once
  t.connect(Version::kV311, "r", true, 10);
  std::string burst;
  for (int i = 0; i < 30; ++i) burst += Harness::encode(publish("t", "m", 0), Version::kV311);
  t.feed(burst, 1000ms);
  // The bucket held 10; the 11th was already read, so it is handled, and reading stops there.
  EXPECT_EQ(t.h.published.size(), 11u);
  EXPECT_TRUE(t.c->paused());
  EXPECT_EQ(t.c->throttled_until(), t.t0 + 1000ms + 100ms + 50ms) << "one message late, plus 50 ms of slack";
  EXPECT_EQ(hits(*t.c, Limit::kMessagesRate), 1u);
  t.c->resume(t.t0 + 1100ms);
  EXPECT_EQ(t.h.published.size(), 11u) << "too early: still held";
  t.c->resume(t.t0 + 1150ms);
  EXPECT_EQ(t.h.published.size(), 12u) << "one token back; the next message empties the bucket again";
  // Held for longer than the keepalive allows: the silence is the broker's doing.
  t.c->on_tick(t.t0 + 30s);
  EXPECT_FALSE(t.c->closed());
  // Resumed whenever it asks: one message per 100 ms from now on, the rate.
  const TimePoint before = t.c->throttled_until();
  while (t.h.published.size() < 30 && t.c->paused()) t.c->resume(t.c->throttled_until());
  EXPECT_EQ(t.h.published.size(), 30u);
  EXPECT_EQ(t.c->throttled_until() - before, 18 * 100ms);
  t.c->resume(t.c->throttled_until());
  EXPECT_FALSE(t.c->paused()) << "nothing left to hold";
}

TEST(ServerConnectionLimits, BytesRateCountsWholePublishPackets) {
  using namespace limits_test;
  Harness t;
  t.limits.bytes_rate = {1000, std::chrono::seconds(1)};
  t.connect(Version::kV311);
  const std::string one = Harness::encode(publish("t", std::string(394, 'x'), 0), Version::kV311);  // 400 bytes
  ASSERT_EQ(one.size(), 400u);
  t.feed(one + one + one + one, 1000ms);
  EXPECT_EQ(t.h.published.size(), 3u) << "1000 bytes of tokens: the third is over and stops reading";
  EXPECT_EQ(t.c->throttled_until(), t.t0 + 1000ms + 200ms + 50ms);
  EXPECT_EQ(hits(*t.c, Limit::kBytesRate), 1u);
  EXPECT_EQ(hits(*t.c, Limit::kMessagesRate), 0u);
  t.c->resume(t.t0 + 1250ms);
  EXPECT_EQ(t.h.published.size(), 4u);
}

TEST(ServerConnectionLimits, WithoutRateLimitsNothingIsHeld) {
  Harness t;
  t.connect(Version::kV311);
  std::string burst;
  for (int i = 0; i < 5000; ++i) burst += Harness::encode(publish("t", "m", 0), Version::kV311);
  t.feed(burst);
  EXPECT_EQ(t.h.published.size(), 5000u);
  EXPECT_FALSE(t.c->paused());
  EXPECT_EQ(t.c->limit_hits(), nullptr);
}

TEST(ServerConnectionLimits, ConnectTimeoutAndOversizedPacketsAreCounted) {
  using namespace limits_test;
  Harness t;
  t.limits.connect_timeout = 1000ms;
  t.start();
  t.c->on_tick(t.t0 + 1500ms);
  EXPECT_EQ(hits(*t.c, Limit::kConnectTimeout), 1u);

  Harness big;
  big.limits.max_packet_size = 100;
  big.limits.message_size_limit = 10;
  big.connect(Version::kV5);
  big.feed(publish("t", std::string(11, 'x'), 1, 1), Version::kV5);
  EXPECT_EQ(hits(*big.c, Limit::kMessageSizeLimit), 1u);
  big.feed(publish("t", std::string(200, 'x'), 0), Version::kV5);
  EXPECT_EQ(hits(*big.c, Limit::kMaxPacketSize), 1u);
  EXPECT_EQ(hits(*big.c, Limit::kMaxConnectSize), 0u);
}

TEST(TokenBucket, HoldsOnePeriodAndRefillsAtTheRate) {
  using Bucket = tern::TokenBucket<TimePoint>;
  const tern::Rate r{4, std::chrono::seconds(1)};
  const TimePoint t0 = TimePoint{} + 1000h;
  Bucket b;
  for (int i = 0; i < 4; ++i) EXPECT_LE(b.take(r, 1, t0), t0) << "a full bucket: " << i;
  EXPECT_EQ(b.take(r, 1, t0), t0 + 250ms) << "the fifth waits one interval";
  EXPECT_EQ(b.take(r, 1, t0 + 2s), t0 + 2s - 750ms) << "idle long enough: full again, never more";
  Bucket huge;
  const tern::Rate bytes{1, std::chrono::hours(24)};
  EXPECT_GT(huge.take(bytes, 1u << 28, t0), t0 + 24h * 1000) << "no overflow for large costs";
}

// ---------------------------------------------------------------------------------------------------
// Found by the bad-input table (tests/integration/test_bad_input.py)

TEST(ServerConnection, MQTT_3_1_2_24_BytesOfAnUnfinishedPacketDoNotResetKeepalive) {
  Harness t;
  t.connect(Version::kV311, "k", true, /*keepalive=*/10);
  // A PUBLISH trickled a byte at a time never completes: only whole packets count.
  std::string pub = Harness::encode(publish("slow/t", std::string(100, 'x'), 0), Version::kV311);
  for (int i = 0; i < 20; ++i) t.feed(pub.substr(static_cast<std::size_t>(i), 1), std::chrono::seconds(i));
  t.c->on_tick(t.t0 + 16s);
  EXPECT_TRUE(t.c->closed()) << "1.6 x keepalive after the last whole packet";
  EXPECT_EQ(t.c->close_cause(), CloseCause::kKeepaliveTimeout);
}

TEST(ServerConnection, MQTT_3_1_2_8_V5DisconnectWithAnErrorKeepsTheWill) {
  for (std::uint8_t reason : {0x80, 0x81, 0x83, 0x97}) {
    Harness t;
    t.connect(Version::kV5, "w", true, 60, test_will());
    t.feed(codec::Disconnect{reason, {}}, Version::kV5);
    EXPECT_TRUE(t.c->closed());
    EXPECT_TRUE(t.h.will_at_close) << "only 0x00 deletes the will; reason " << int(reason);
  }
}

TEST(ServerConnection, MQTT_3_14_2_1_V5DisconnectWithAnInvalidReasonIsAProtocolError) {
  Harness t;
  t.connect(Version::kV5, "w", true, 60, test_will());
  t.feed(std::string("\xE0\x01\x03", 3));
  ASSERT_TRUE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x82);
  EXPECT_TRUE(t.h.will_at_close) << "not a normal disconnection: the will goes out";
}

TEST(ServerConnection, MQTT_3_6_2_1_V5PubrelWithAnInvalidReasonIsAProtocolError) {
  Harness t;
  t.connect(Version::kV5);
  t.feed(publish("a", "x", 2, 9), Version::kV5);
  t.take();
  t.feed(std::string("\x62\x03\x00\x09\x05", 5));
  ASSERT_TRUE(t.c->closed());
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Disconnect>(ps[0]).reason, 0x82);
  EXPECT_TRUE(t.h.published.empty()) << "the held message is not released by a bad PUBREL";
}

TEST(ServerConnection, V5AuthenticationDataWithoutMethodIsRefused) {
  Harness t;
  t.start();
  codec::Properties props;
  props.auth_data = "x";
  t.feed(Harness::connect_packet(Version::kV5, "a", true, 60, std::nullopt, props), Version::kV5);
  ASSERT_TRUE(t.c->closed());
  auto ps = t.take(Version::kV5);
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Connack>(ps[0]).code, 0x82);  // section 3.1.2.11.10
}

TEST(ServerConnection, V5Qos1WithTheIdOfAnUnreleasedQos2GetsPacketIdentifierInUse) {
  Harness t;
  t.connect(Version::kV5);
  t.feed(publish("a", "two", 2, 8), Version::kV5);
  t.take();
  t.feed(publish("a", "one", 1, 8), Version::kV5);
  auto ps = t.take();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(as<codec::Ack>(ps[0]).reason, 0x91);
  EXPECT_TRUE(t.h.published.empty()) << "not forwarded";
  t.feed(ack(codec::PacketType::kPubrel, 8), Version::kV5);
  ASSERT_EQ(t.h.published.size(), 1u);
  EXPECT_EQ(t.h.published[0]->payload, "two");
}
