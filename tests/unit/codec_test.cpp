// Unit tests for the codec layer (bytes <-> packets) on MQTT 3.1, 3.1.1 and 5.0.
//
// Packets are written as raw wire bytes with bytes(): hex pairs, whitespace ignored, and 'quoted'
// ASCII copied verbatim, e.g. bytes("10 0e 0004'MQTT' 04 02 003c 0002'c1'").
#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "codec/codec.hpp"
#include "codec/packet.hpp"
#include "core/reason_code.hpp"

namespace {

using namespace tern;
using namespace tern::codec;

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Hex (whitespace ignored) with 'quoted' ASCII runs -> raw bytes.
std::string bytes(std::string_view spec) {
  std::string out;
  int pending = -1;
  for (std::size_t i = 0; i < spec.size(); ++i) {
    char c = spec[i];
    if (c == '\'') {
      EXPECT_EQ(pending, -1) << "odd hex digit before quote in: " << spec;
      std::size_t close = spec.find('\'', i + 1);
      EXPECT_NE(close, std::string_view::npos) << "unterminated quote in: " << spec;
      if (close == std::string_view::npos) return out;
      out.append(spec.substr(i + 1, close - i - 1));
      i = close;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    int d = hex_digit(c);
    EXPECT_GE(d, 0) << "bad hex character '" << c << "' in: " << spec;
    if (d < 0) continue;
    if (pending < 0) {
      pending = d;
    } else {
      out.push_back(static_cast<char>(pending * 16 + d));
      pending = -1;
    }
  }
  EXPECT_EQ(pending, -1) << "odd number of hex digits in: " << spec;
  return out;
}

std::string to_hex(std::string_view b) {
  static const char* const kDigits = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    if (!s.empty()) s.push_back(' ');
    s.push_back(kDigits[c >> 4]);
    s.push_back(kDigits[c & 0x0F]);
  }
  return s;
}

std::string reason_hex(Reason r) {
  static const char* const kDigits = "0123456789abcdef";
  auto b = to_byte(r);
  return std::string("0x") + kDigits[b >> 4] + kDigits[b & 0x0F];
}

const std::uint8_t* u8(const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

// Result of framing + decoding one buffer. The buffer is owned through a shared_ptr so the string
// views in a decoded Publish stay valid when the result is moved.
struct Decoded {
  std::shared_ptr<const std::string> buf;
  FrameStatus status = FrameStatus::kError;
  FrameHeader header;
  DecodeError err;
  Packet packet;
  bool ok() const { return status == FrameStatus::kComplete && !err; }
};

Decoded decode(std::string wire, Version v, std::uint32_t max_packet_size = 0) {
  Decoded d;
  d.buf = std::make_shared<const std::string>(std::move(wire));
  d.status = parse_frame(u8(*d.buf), d.buf->size(), max_packet_size, d.header, d.err);
  if (d.status == FrameStatus::kComplete) {
    d.err = decode_packet(d.header, u8(*d.buf) + d.header.header_size, v, d.packet);
  }
  return d;
}

std::string encode(const Packet& p, Version v) {
  std::string out;
  encode_packet(p, v, out);
  return out;
}

const char* status_name(FrameStatus s) {
  switch (s) {
    case FrameStatus::kIncomplete: return "kIncomplete";
    case FrameStatus::kComplete: return "kComplete";
    case FrameStatus::kError: return "kError";
  }
  return "?";
}

// Succeeds when decoding `wire` fails (at framing or decoding) with exactly `want`.
::testing::AssertionResult DecodeFails(const std::string& wire, Version v, Reason want,
                                       std::uint32_t max_packet_size = 0) {
  Decoded d = decode(wire, v, max_packet_size);
  if (d.status == FrameStatus::kIncomplete) {
    return ::testing::AssertionFailure() << "frame incomplete for " << to_hex(wire);
  }
  if (d.ok()) {
    return ::testing::AssertionFailure() << "decoded successfully, expected " << reason_hex(want)
                                         << " for " << to_hex(wire);
  }
  if (d.err.reason != want) {
    return ::testing::AssertionFailure()
           << "got " << reason_hex(d.err.reason) << " (" << (d.err.what ? d.err.what : "?")
           << ") at " << status_name(d.status) << ", expected " << reason_hex(want) << " for "
           << to_hex(wire);
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult DecodesOk(const std::string& wire, Version v) {
  Decoded d = decode(wire, v);
  if (d.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << status_name(d.status) << " "
                                       << (d.err.what ? d.err.what : "") << " for " << to_hex(wire);
}

// decode(wire) == expected, encode(expected) == wire, encode(decode(wire)) == wire.
void ExpectRoundTrip(const std::string& wire, Version v, const Packet& expected) {
  Decoded d = decode(wire, v);
  ASSERT_EQ(d.status, FrameStatus::kComplete) << to_hex(wire);
  EXPECT_EQ(d.header.total(), wire.size());
  ASSERT_FALSE(d.err) << d.err.what << " for " << to_hex(wire);
  EXPECT_EQ(d.packet.index(), expected.index());
  EXPECT_TRUE(d.packet == expected) << "decoded packet differs from expected for " << to_hex(wire);
  EXPECT_EQ(to_hex(encode(expected, v)), to_hex(wire)) << "encode(expected) != wire";
  EXPECT_EQ(to_hex(encode(d.packet, v)), to_hex(wire)) << "encode(decode(wire)) != wire";
}

#define EXPECT_ROUND_TRIP(wire, version, packet)  \
  do {                                            \
    SCOPED_TRACE("round trip of " #packet);       \
    ExpectRoundTrip((wire), (version), (packet)); \
  } while (0)

// decode(encode(p)) == p for a packet built in code.
void ExpectEncodeDecode(const Packet& p, Version v) {
  std::string wire = encode(p, v);
  Decoded d = decode(wire, v);
  ASSERT_TRUE(d.ok()) << status_name(d.status) << " " << (d.err.what ? d.err.what : "") << " for "
                      << to_hex(wire);
  EXPECT_TRUE(d.packet == p) << "decode(encode(p)) != p, wire " << to_hex(wire);
}

constexpr Version kAllVersions[] = {Version::kV31, Version::kV311, Version::kV5};
constexpr Version kV3Versions[] = {Version::kV31, Version::kV311};

const char* version_name(Version v) {
  switch (v) {
    case Version::kV31: return "3.1";
    case Version::kV311: return "3.1.1";
    case Version::kV5: return "5.0";
  }
  return "?";
}

// ------------------------------------------------------------------------------------------------
// Helper self-checks
// ------------------------------------------------------------------------------------------------

TEST(Codec, HexHelperParsesHexAndQuotedAscii) {
  EXPECT_EQ(bytes("00 ff 0A'ab' 7f"), std::string("\x00\xff\x0a" "ab\x7f", 6));
  EXPECT_EQ(to_hex(std::string("\x00\xff", 2)), "00 ff");
}

TEST(Codec, PacketNames) {
  EXPECT_STREQ(packet_name(PacketType::kConnect), "CONNECT");
  EXPECT_STREQ(packet_name(PacketType::kPubrel), "PUBREL");
  EXPECT_STREQ(packet_name(PacketType::kUnsuback), "UNSUBACK");
  EXPECT_STREQ(packet_name(PacketType::kAuth), "AUTH");
  EXPECT_STREQ(packet_name(PacketType::kReserved), "RESERVED");
}

// ------------------------------------------------------------------------------------------------
// Variable byte integers (section 1.5.5) and the property block helpers
// ------------------------------------------------------------------------------------------------

TEST(Codec, MQTT_1_5_5_VariableByteIntegerEncoding) {
  struct Case {
    std::uint32_t value;
    const char* wire;
  };
  const Case cases[] = {
      {0, "00"},           {1, "01"},          {127, "7f"},          {128, "80 01"},
      {321, "c1 02"},      {16383, "ff 7f"},   {16384, "80 80 01"},  {2097151, "ff ff 7f"},
      {2097152, "80 80 80 01"}, {268435455, "ff ff ff 7f"},
  };
  for (const auto& c : cases) {
    std::string out;
    put_varint(c.value, out);
    EXPECT_EQ(to_hex(out), to_hex(bytes(c.wire))) << c.value;
    EXPECT_EQ(varint_size(c.value), out.size()) << c.value;
  }
}

TEST(Codec, PropertiesSizeMatchesEncodedSize) {
  Properties p;
  EXPECT_EQ(properties_size(p), 0u);
  p.payload_format = 1;
  p.message_expiry = 10;
  p.content_type = "text/plain";
  p.response_topic = "r";
  p.correlation_data = std::string("\x00\x01", 2);
  p.subscription_ids = {1, 128, 16384, 268435455};
  p.session_expiry = 5;
  p.assigned_client_id = "id";
  p.server_keep_alive = 30;
  p.auth_method = "m";
  p.auth_data = "d";
  p.request_problem_info = 0;
  p.will_delay = 3;
  p.request_response_info = 1;
  p.response_info = "ri";
  p.server_reference = "sr";
  p.reason_string = "rs";
  p.receive_maximum = 10;
  p.topic_alias_maximum = 4;
  p.topic_alias = 2;
  p.maximum_qos = 1;
  p.retain_available = 1;
  p.user_properties = {{"k", "v"}, {"k", "v2"}};
  p.maximum_packet_size = 1000;
  p.wildcard_sub_available = 0;
  p.sub_id_available = 1;
  p.shared_sub_available = 0;
  std::string out;
  encode_properties(p, out);
  EXPECT_EQ(properties_size(p), out.size());
}

// ------------------------------------------------------------------------------------------------
// CONNECT
// ------------------------------------------------------------------------------------------------

TEST(Codec, ConnectV311MinimalRoundTrip) {
  Connect c;
  c.version = Version::kV311;
  c.clean_start = true;
  c.keepalive = 60;
  c.client_id = "c1";
  EXPECT_ROUND_TRIP(bytes("10 0e 0004'MQTT' 04 02 003c 0002'c1'"), Version::kV311, c);
}

TEST(Codec, ConnectV311EmptyClientIdRoundTrip) {
  Connect c;
  c.version = Version::kV311;
  c.keepalive = 0;
  c.client_id = "";
  EXPECT_ROUND_TRIP(bytes("10 0c 0004'MQTT' 04 02 0000 0000"), Version::kV311, c);
}

TEST(Codec, ConnectV311WithWillUsernamePasswordRoundTrip) {
  Connect c;
  c.version = Version::kV311;
  c.clean_start = false;
  c.keepalive = 10;
  c.client_id = "cid";
  c.will = Will{"w/t", "bye", 1, true, {}};
  c.username = "user";
  c.password = "pass";
  EXPECT_ROUND_TRIP(
      bytes("10 25 0004'MQTT' 04 ec 000a 0003'cid' 0003'w/t' 0003'bye' 0004'user' 0004'pass'"),
      Version::kV311, c);
}

TEST(Codec, ConnectV31MQIsdpRoundTrip) {
  Connect c;
  c.protocol_name = "MQIsdp";
  c.version = Version::kV31;
  c.clean_start = true;
  c.keepalive = 60;
  c.client_id = "c31";
  c.will = Will{"t", "hi", 2, false, {}};
  c.username = "me";
  EXPECT_ROUND_TRIP(bytes("10 1c 0006'MQIsdp' 03 96 003c 0003'c31' 0001't' 0002'hi' 0002'me'"),
                    Version::kV31, c);
}

TEST(Codec, ConnectV5WithAllPropertiesWillAndCredentialsRoundTrip) {
  Connect c;
  c.version = Version::kV5;
  c.clean_start = true;
  c.keepalive = 30;
  c.client_id = "c-v5";
  c.props.session_expiry = 3600;
  c.props.auth_method = "SCRAM";
  c.props.auth_data = std::string("\x01\x02", 2);
  c.props.request_problem_info = 0;
  c.props.request_response_info = 1;
  c.props.receive_maximum = 20;
  c.props.topic_alias_maximum = 5;
  c.props.user_properties = {{"k1", "v1"}, {"k1", "v2"}};  // repeated keys are allowed
  c.props.maximum_packet_size = 1024;
  Will w;
  w.topic = "w/t";
  w.payload = "gone";
  w.qos = 1;
  w.retain = false;
  w.props.payload_format = 1;
  w.props.message_expiry = 60;
  w.props.content_type = "text";
  w.props.response_topic = "r/t";
  w.props.correlation_data = std::string("\xab\xcd", 2);
  w.props.will_delay = 30;
  w.props.user_properties = {{"a", "b"}};
  c.will = w;
  c.username = "u";
  c.password = std::string("\x00\xff\x01", 3);  // binary data, not UTF-8
  const std::string wire = bytes(
      "10 7d 0004'MQTT' 05 ce 001e"
      " 33 11 00000e10 15 0005'SCRAM' 16 0002 0102 17 00 19 01 21 0014 22 0005"
      "    26 0002'k1' 0002'v1' 26 0002'k1' 0002'v2' 27 00000400"
      " 0004'c-v5'"
      " 25 01 01 02 0000003c 03 0004'text' 08 0003'r/t' 09 0002 abcd 18 0000001e 26 0001'a' 0001'b'"
      " 0003'w/t' 0004'gone' 0001'u' 0003 00ff01");
  EXPECT_ROUND_TRIP(wire, Version::kV5, c);
}

TEST(Codec, ConnectV5PasswordWithoutUsernameIsAllowed) {
  // MQTT 5.0 (section 3.1.2.9) dropped [MQTT-3.1.2-22]: a password without a user name is fine.
  Connect c;
  c.version = Version::kV5;
  c.client_id = "c1";
  c.password = "pw";
  EXPECT_ROUND_TRIP(bytes("10 13 0004'MQTT' 05 42 003c 00 0002'c1' 0002'pw'"), Version::kV5, c);
}

TEST(Codec, ConnectCarriesItsOwnVersionRegardlessOfConnectionVersion) {
  // decode_packet ignores the connection version for CONNECT.
  const std::string v5 = bytes("10 0f 0004'MQTT' 05 02 003c 00 0002'c1'");
  for (Version v : kAllVersions) {
    Decoded d = decode(v5, v);
    ASSERT_TRUE(d.ok()) << version_name(v);
    const auto* c = std::get_if<Connect>(&d.packet);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->version, Version::kV5);
    EXPECT_EQ(c->protocol_name, "MQTT");
    EXPECT_EQ(c->client_id, "c1");
  }
}

TEST(Codec, ConnectEncodeDecodeAllVersions) {
  for (Version v : kAllVersions) {
    SCOPED_TRACE(version_name(v));
    Connect c;
    c.version = v;
    c.protocol_name = v == Version::kV31 ? "MQIsdp" : "MQTT";
    c.clean_start = false;
    c.keepalive = 65535;
    c.client_id = "client-\xC3\xA9";
    c.will = Will{"will/topic", std::string("\x00\x01\x02", 3), 2, true, {}};
    c.username = "user";
    c.password = "secret";
    if (v == Version::kV5) {
      c.props.session_expiry = 0xFFFFFFFF;
      c.props.user_properties = {{"x", "y"}};
      c.will->props.will_delay = 5;
    }
    ExpectEncodeDecode(c, v);
  }
}

// ------------------------------------------------------------------------------------------------
// CONNACK
// ------------------------------------------------------------------------------------------------

TEST(Codec, ConnackV3RoundTrip) {
  for (Version v : kV3Versions) {
    SCOPED_TRACE(version_name(v));
    Connack a;
    a.session_present = true;
    a.code = 0;
    EXPECT_ROUND_TRIP(bytes("20 02 01 00"), v, a);
    Connack refused;
    refused.code = static_cast<std::uint8_t>(ConnackV3::kNotAuthorized);
    EXPECT_ROUND_TRIP(bytes("20 02 00 05"), v, refused);
  }
}

TEST(Codec, ConnackV5NoPropertiesRoundTrip) {
  Connack a;
  a.code = to_byte(Reason::kNotAuthorized);
  EXPECT_ROUND_TRIP(bytes("20 03 00 87 00"), Version::kV5, a);
}

TEST(Codec, ConnackV5AllPropertiesRoundTrip) {
  Connack a;
  a.session_present = false;
  a.code = 0;
  a.props.session_expiry = 30;
  a.props.assigned_client_id = "auto";
  a.props.server_keep_alive = 20;
  a.props.auth_method = "M";
  a.props.auth_data = "D";
  a.props.response_info = "ri";
  a.props.server_reference = "sr";
  a.props.reason_string = "ok";
  a.props.receive_maximum = 10;
  a.props.topic_alias_maximum = 8;
  a.props.maximum_qos = 1;
  a.props.retain_available = 0;
  a.props.user_properties = {{"x", "y"}};
  a.props.maximum_packet_size = 65536;
  a.props.wildcard_sub_available = 1;
  a.props.sub_id_available = 0;
  a.props.shared_sub_available = 1;
  const std::string wire = bytes(
      "20 45 00 00 42 11 0000001e 12 0004'auto' 13 0014 15 0001'M' 16 0001'D' 1a 0002'ri'"
      " 1c 0002'sr' 1f 0002'ok' 21 000a 22 0008 24 01 25 00 26 0001'x' 0001'y' 27 00010000"
      " 28 01 29 00 2a 01");
  EXPECT_ROUND_TRIP(wire, Version::kV5, a);
}

TEST(Codec, ConnackReservedFlagsAreMalformed) {
  // MQTT 3.1.1 section 3.2.2.1 / MQTT 5.0 section 3.2.2.1: bits 7-1 are reserved and set to 0.
  EXPECT_TRUE(DecodeFails(bytes("20 02 02 00"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("20 03 80 00 00"), Version::kV5, Reason::kMalformedPacket));
}

// ------------------------------------------------------------------------------------------------
// PUBLISH
// ------------------------------------------------------------------------------------------------

Publish make_publish(std::uint8_t qos, bool dup, bool retain, std::string topic, std::uint16_t id,
                     std::string_view payload) {
  Publish p;
  p.qos = qos;
  p.dup = dup;
  p.retain = retain;
  p.topic = std::move(topic);
  p.packet_id = id;
  p.payload = payload;
  return p;
}

TEST(Codec, PublishV3Qos0Qos1Qos2RoundTrip) {
  for (Version v : kV3Versions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_ROUND_TRIP(bytes("30 0a 0003'a/b' 'hello'"), v, make_publish(0, false, false, "a/b", 0, "hello"));
    EXPECT_ROUND_TRIP(bytes("30 05 0003'a/b'"), v, make_publish(0, false, false, "a/b", 0, ""));
    EXPECT_ROUND_TRIP(bytes("31 06 0003'a/b' 'x'"), v, make_publish(0, false, true, "a/b", 0, "x"));
    EXPECT_ROUND_TRIP(bytes("33 08 0003'a/b' 0102 'x'"), v, make_publish(1, false, true, "a/b", 0x0102, "x"));
    EXPECT_ROUND_TRIP(bytes("3a 08 0003'a/b' 0001 'x'"), v, make_publish(1, true, false, "a/b", 1, "x"));
    EXPECT_ROUND_TRIP(bytes("34 08 0003'a/b' 1234 'y'"), v, make_publish(2, false, false, "a/b", 0x1234, "y"));
    EXPECT_ROUND_TRIP(bytes("3c 08 0003'a/b' ffff 'y'"), v, make_publish(2, true, false, "a/b", 0xffff, "y"));
    // Payload bytes are opaque: NUL and invalid UTF-8 are fine there.
    EXPECT_ROUND_TRIP(bytes("30 06 0001't' 00 ff c0"), v,
                      make_publish(0, false, false, "t", 0, std::string_view("\x00\xff\xc0", 3)));
  }
}

TEST(Codec, PublishV5WithoutPropertiesRoundTrip) {
  EXPECT_ROUND_TRIP(bytes("30 0b 0003'a/b' 00 'hello'"), Version::kV5,
                    make_publish(0, false, false, "a/b", 0, "hello"));
  EXPECT_ROUND_TRIP(bytes("32 09 0003'a/b' 0007 00 'z'"), Version::kV5,
                    make_publish(1, false, false, "a/b", 7, "z"));
  EXPECT_ROUND_TRIP(bytes("3d 08 0003'a/b' 0008 00"), Version::kV5,
                    make_publish(2, true, true, "a/b", 8, ""));
}

TEST(Codec, PublishV5WithEveryPublishPropertyRoundTrip) {
  // Table 2-4: PUBLISH may carry 0x01, 0x02, 0x03, 0x08, 0x09, 0x0B (repeatable), 0x23, 0x26.
  Publish p = make_publish(2, false, true, "a/b", 0x1234, "{}");
  p.props.payload_format = 1;
  p.props.message_expiry = 3600;
  p.props.content_type = "application/json";
  p.props.response_topic = "reply";
  p.props.correlation_data = std::string("\x00\x01\x02", 3);
  p.props.subscription_ids = {1, 128, 268435455};
  p.props.topic_alias = 3;
  p.props.user_properties = {{"k", "v"}, {"k", "v"}};  // identical pairs may repeat
  const std::string wire = bytes(
      "35 4d 0003'a/b' 1234"
      " 43 01 01 02 00000e10 03 0010'application/json' 08 0005'reply' 09 0003 000102"
      "    0b 01 0b 8001 0b ffffff7f 23 0003 26 0001'k' 0001'v' 26 0001'k' 0001'v'"
      " '{}'");
  EXPECT_ROUND_TRIP(wire, Version::kV5, p);
}

TEST(Codec, PublishV5Qos0And1WithPropertiesRoundTrip) {
  Publish p0 = make_publish(0, false, false, "t", 0, "x");
  p0.props.message_expiry = 1;
  EXPECT_ROUND_TRIP(bytes("30 0a 0001't' 05 02 00000001 'x'"), Version::kV5, p0);
  Publish p1 = make_publish(1, false, false, "t", 9, "x");
  p1.props.subscription_ids = {5, 6};
  EXPECT_ROUND_TRIP(bytes("32 0b 0001't' 0009 04 0b 05 0b 06 'x'"), Version::kV5, p1);
}

TEST(Codec, PublishV5EmptyTopicWithTopicAliasIsDecoded) {
  // MQTT 5.0 section 3.3.2.1: a zero-length topic name is allowed when a Topic Alias is used; the
  // protocol layer checks the alias.
  Publish p = make_publish(0, false, false, "", 0, "x");
  p.props.topic_alias = 1;
  EXPECT_ROUND_TRIP(bytes("30 07 0000 03 23 0001 'x'"), Version::kV5, p);
}

TEST(Codec, PublishLargePayloadUsesMultiByteRemainingLength) {
  const std::string payload(200, 'p');
  const std::string wire = bytes("30 cb01 0001't'") + payload;
  for (Version v : kV3Versions) {
    Decoded d = decode(wire, v);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d.header.header_size, 3u);
    EXPECT_EQ(d.header.remaining_length, 203u);
    EXPECT_ROUND_TRIP(wire, v, make_publish(0, false, false, "t", 0, payload));
  }
}

TEST(Codec, PublishPayloadPointsIntoDecodedBuffer) {
  Decoded d = decode(bytes("30 0a 0003'a/b' 'hello'"), Version::kV311);
  ASSERT_TRUE(d.ok());
  const auto& p = std::get<Publish>(d.packet);
  EXPECT_EQ(p.payload, "hello");
  EXPECT_EQ(p.payload.data(), d.buf->data() + 7);
}

TEST(Codec, EncodePublishHeaderPlusPayloadEqualsEncodePacket) {
  for (Version v : kAllVersions) {
    SCOPED_TRACE(version_name(v));
    Publish p = make_publish(1, false, true, "a/b/c", 77, "payload bytes");
    if (v == Version::kV5) {
      p.props.subscription_ids = {3};
      p.props.user_properties = {{"a", "b"}};
    }
    std::string header;
    encode_publish_header(p, v, p.payload.size(), header);
    EXPECT_EQ(to_hex(header + std::string(p.payload)), to_hex(encode(p, v)));
    // The header alone is a frame whose remaining length covers the payload that follows.
    FrameHeader h;
    DecodeError err;
    EXPECT_EQ(parse_frame(u8(header), header.size(), 0, h, err), FrameStatus::kIncomplete);
    EXPECT_EQ(h.total(), header.size() + p.payload.size());
  }
}

// ------------------------------------------------------------------------------------------------
// PUBACK / PUBREC / PUBREL / PUBCOMP
// ------------------------------------------------------------------------------------------------

Ack make_ack(PacketType t, std::uint16_t id, std::uint8_t reason = 0) {
  Ack a;
  a.type = t;
  a.packet_id = id;
  a.reason = reason;
  return a;
}

TEST(Codec, AcksV3RoundTrip) {
  for (Version v : kV3Versions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_ROUND_TRIP(bytes("40 02 0001"), v, make_ack(PacketType::kPuback, 1));
    EXPECT_ROUND_TRIP(bytes("50 02 0002"), v, make_ack(PacketType::kPubrec, 2));
    EXPECT_ROUND_TRIP(bytes("62 02 0003"), v, make_ack(PacketType::kPubrel, 3));
    EXPECT_ROUND_TRIP(bytes("70 02 ffff"), v, make_ack(PacketType::kPubcomp, 0xffff));
  }
}

TEST(Codec, AcksV5RoundTrip) {
  const Version v = Version::kV5;
  // Success without properties: reason code omitted (section 3.4.2.1).
  EXPECT_ROUND_TRIP(bytes("40 02 0005"), v, make_ack(PacketType::kPuback, 5));
  EXPECT_ROUND_TRIP(bytes("62 02 0005"), v, make_ack(PacketType::kPubrel, 5));
  // Reason code only: property length omitted.
  EXPECT_ROUND_TRIP(bytes("40 03 0005 10"), v, make_ack(PacketType::kPuback, 5, 0x10));
  EXPECT_ROUND_TRIP(bytes("70 03 0005 92"), v, make_ack(PacketType::kPubcomp, 5, 0x92));
  // Reason code and reason string, for each acknowledgement type.
  struct Row {
    PacketType type;
    const char* first;
    std::uint8_t reason;
  };
  const Row rows[] = {{PacketType::kPuback, "40", 0x10},
                      {PacketType::kPubrec, "50", 0x80},
                      {PacketType::kPubrel, "62", 0x92},
                      {PacketType::kPubcomp, "70", 0x92}};
  for (const auto& r : rows) {
    SCOPED_TRACE(packet_name(r.type));
    Ack a = make_ack(r.type, 5, r.reason);
    a.props.reason_string = "abc";
    const char hexdigits[] = "0123456789abcdef";
    std::string reason{hexdigits[r.reason >> 4], hexdigits[r.reason & 0xF]};
    EXPECT_ROUND_TRIP(bytes(std::string(r.first) + " 0a 0005 " + reason + " 06 1f 0003'abc'"), v, a);
    // Success with a user property must still carry the reason code byte.
    Ack b = make_ack(r.type, 6, 0);
    b.props.user_properties = {{"k", "v"}};
    EXPECT_ROUND_TRIP(bytes(std::string(r.first) + " 0b 0006 00 07 26 0001'k' 0001'v'"), v, b);
  }
}

TEST(Codec, AckV5ExplicitSuccessAndEmptyPropertiesDecode) {
  Decoded d = decode(bytes("40 04 0005 00 00"), Version::kV5);
  ASSERT_TRUE(d.ok()) << d.err.what;
  EXPECT_TRUE(d.packet == Packet(make_ack(PacketType::kPuback, 5, 0)));
}

TEST(Codec, AckV3WithReasonCodeIsMalformed) {
  // MQTT 3.1.1 section 3.4.1: remaining length is exactly 2.
  EXPECT_TRUE(DecodeFails(bytes("40 03 0001 00"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("40 01 00"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("40 01 00"), Version::kV5, Reason::kMalformedPacket));
}

// ------------------------------------------------------------------------------------------------
// SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK
// ------------------------------------------------------------------------------------------------

TEST(Codec, SubscribeV3RoundTrip) {
  Subscribe s;
  s.packet_id = 10;
  s.topics = {{"a/b", 1}, {"#", 2}, {"c/+", 0}};
  for (Version v : kV3Versions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_ROUND_TRIP(bytes("82 12 000a 0003'a/b' 01 0001'#' 02 0003'c/+' 00"), v, s);
  }
}

TEST(Codec, SubscribeV5WithOptionsAndPropertiesRoundTrip) {
  Subscribe s;
  s.packet_id = 10;
  s.props.subscription_ids = {42};
  s.props.user_properties = {{"k", "v"}};
  SubscribeTopic t1{"a/b", 1, /*no_local=*/true, /*retain_as_published=*/true, /*retain_handling=*/1};
  SubscribeTopic t2{"c", 2, false, false, 2};
  SubscribeTopic t3{"d", 0, false, false, 0};
  s.topics = {t1, t2, t3};
  EXPECT_ROUND_TRIP(
      bytes("82 1a 000a 09 0b 2a 26 0001'k' 0001'v' 0003'a/b' 1d 0001'c' 22 0001'd' 00"),
      Version::kV5, s);
}

TEST(Codec, SubscribeV5EachOptionBitDecodes) {
  struct Row {
    const char* opt;
    SubscribeTopic want;
  };
  const Row rows[] = {
      {"04", {"a", 0, true, false, 0}},  {"08", {"a", 0, false, true, 0}},
      {"10", {"a", 0, false, false, 1}}, {"20", {"a", 0, false, false, 2}},
      {"02", {"a", 2, false, false, 0}}, {"2e", {"a", 2, true, true, 2}},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.opt);
    Subscribe s;
    s.packet_id = 1;
    s.topics = {r.want};
    EXPECT_ROUND_TRIP(bytes(std::string("82 07 0001 00 0001'a' ") + r.opt), Version::kV5, s);
  }
}

TEST(Codec, SubscribeV3EncodingDropsV5OnlyOptions) {
  Subscribe s;
  s.packet_id = 1;
  s.topics = {{"a", 1, true, true, 2}};
  EXPECT_EQ(to_hex(encode(s, Version::kV311)), to_hex(bytes("82 06 0001 0001'a' 01")));
}

TEST(Codec, SubackRoundTrip) {
  SubAck a;
  a.type = PacketType::kSuback;
  a.packet_id = 10;
  a.codes = {0x00, 0x01, 0x80};
  for (Version v : kV3Versions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_ROUND_TRIP(bytes("90 05 000a 00 01 80"), v, a);
  }
  SubAck b;
  b.type = PacketType::kSuback;
  b.packet_id = 10;
  b.codes = {0x00, 0x01, 0x02, 0x87};
  b.props.reason_string = "bad";
  EXPECT_ROUND_TRIP(bytes("90 0d 000a 06 1f 0003'bad' 00 01 02 87"), Version::kV5, b);
  b.props = {};
  EXPECT_ROUND_TRIP(bytes("90 07 000a 00 00 01 02 87"), Version::kV5, b);
}

TEST(Codec, UnsubscribeRoundTrip) {
  Unsubscribe u;
  u.packet_id = 11;
  u.filters = {"a/b", "c/#"};
  for (Version v : kV3Versions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_ROUND_TRIP(bytes("a2 0c 000b 0003'a/b' 0003'c/#'"), v, u);
  }
  Unsubscribe u5;
  u5.packet_id = 11;
  u5.filters = {"a/b"};
  u5.props.user_properties = {{"k", "v"}};
  EXPECT_ROUND_TRIP(bytes("a2 0f 000b 07 26 0001'k' 0001'v' 0003'a/b'"), Version::kV5, u5);
  u5.props = {};
  EXPECT_ROUND_TRIP(bytes("a2 08 000b 00 0003'a/b'"), Version::kV5, u5);
}

TEST(Codec, UnsubackV3HasNoPayload) {
  SubAck a;
  a.type = PacketType::kUnsuback;
  a.packet_id = 11;
  for (Version v : kV3Versions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_ROUND_TRIP(bytes("b0 02 000b"), v, a);
    // Reason codes do not exist before MQTT 5: the encoder leaves them out ...
    SubAck with_codes = a;
    with_codes.codes = {0x00};
    EXPECT_EQ(to_hex(encode(with_codes, v)), to_hex(bytes("b0 02 000b")));
    // ... and the decoder rejects them (MQTT 3.1.1 section 3.11.1: remaining length 2).
    EXPECT_TRUE(DecodeFails(bytes("b0 03 000b 00"), v, Reason::kMalformedPacket));
  }
}

TEST(Codec, UnsubackV5RoundTrip) {
  SubAck a;
  a.type = PacketType::kUnsuback;
  a.packet_id = 11;
  a.codes = {0x00, 0x11};
  EXPECT_ROUND_TRIP(bytes("b0 05 000b 00 00 11"), Version::kV5, a);
  a.props.reason_string = "r";
  EXPECT_ROUND_TRIP(bytes("b0 09 000b 04 1f 0001'r' 00 11"), Version::kV5, a);
}

// ------------------------------------------------------------------------------------------------
// PINGREQ / PINGRESP / DISCONNECT / AUTH
// ------------------------------------------------------------------------------------------------

TEST(Codec, PingRoundTrip) {
  for (Version v : kAllVersions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_ROUND_TRIP(bytes("c0 00"), v, Pingreq{});
    EXPECT_ROUND_TRIP(bytes("d0 00"), v, Pingresp{});
  }
}

TEST(Codec, DisconnectRoundTrip) {
  for (Version v : kAllVersions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_ROUND_TRIP(bytes("e0 00"), v, Disconnect{});
  }
  Disconnect d;
  d.reason = to_byte(Reason::kDisconnectWithWill);
  d.props.session_expiry = 0;
  d.props.reason_string = "bye";
  EXPECT_ROUND_TRIP(bytes("e0 0d 04 0b 11 00000000 1f 0003'bye'"), Version::kV5, d);
  Disconnect taken;
  taken.reason = to_byte(Reason::kSessionTakenOver);
  EXPECT_ROUND_TRIP(bytes("e0 01 8e"), Version::kV5, taken);
  Disconnect moved;
  moved.reason = to_byte(Reason::kServerMoved);
  moved.props.server_reference = "other:1883";
  moved.props.user_properties = {{"a", "b"}};
  EXPECT_ROUND_TRIP(bytes("e0 16 9d 14 1c 000a'other:1883' 26 0001'a' 0001'b'"), Version::kV5, moved);
}

TEST(Codec, DisconnectV5ReasonWithEmptyPropertiesDecodes) {
  Decoded d = decode(bytes("e0 02 00 00"), Version::kV5);
  ASSERT_TRUE(d.ok()) << d.err.what;
  EXPECT_TRUE(d.packet == Packet(Disconnect{}));
}

TEST(Codec, DisconnectV3WithBodyIsMalformed) {
  for (Version v : kV3Versions) {
    EXPECT_TRUE(DecodeFails(bytes("e0 01 00"), v, Reason::kMalformedPacket)) << version_name(v);
  }
}

TEST(Codec, AuthV5RoundTrip) {
  Auth a;
  a.reason = to_byte(Reason::kContinueAuthentication);
  a.props.auth_method = "SCRAM";
  a.props.auth_data = std::string("\x01\x02\x03", 3);
  a.props.reason_string = "go";
  EXPECT_ROUND_TRIP(bytes("f0 15 18 13 15 0005'SCRAM' 16 0003 010203 1f 0002'go'"), Version::kV5, a);
  // Success with no properties: remaining length 0 (section 3.15.2.1).
  EXPECT_ROUND_TRIP(bytes("f0 00"), Version::kV5, Auth{});
  Auth re;
  re.reason = to_byte(Reason::kReAuthenticate);
  re.props.auth_method = "M";
  EXPECT_ROUND_TRIP(bytes("f0 06 19 04 15 0001'M'"), Version::kV5, re);
}

// ------------------------------------------------------------------------------------------------
// decode(encode(p)) == p for every packet type on every version
// ------------------------------------------------------------------------------------------------

TEST(Codec, EncodeDecodeEveryPacketTypeEveryVersion) {
  for (Version v : kAllVersions) {
    SCOPED_TRACE(version_name(v));
    const bool v5 = v == Version::kV5;
    Connack ca;
    ca.session_present = true;
    ca.code = v5 ? 0x00 : 0x00;
    if (v5) ca.props.assigned_client_id = "gen-1";
    ExpectEncodeDecode(ca, v);

    for (std::uint8_t qos : {0, 1, 2}) {
      Publish p = make_publish(qos, qos > 0, true, "x/y", qos ? 300 : 0, "data");
      if (v5) {
        p.props.content_type = "text/plain";
        p.props.subscription_ids = {1, 2, 3};
      }
      ExpectEncodeDecode(p, v);
    }
    for (PacketType t : {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubrel,
                         PacketType::kPubcomp}) {
      // A failure code each type allows: 0x80 for PUBACK/PUBREC, 0x92 for PUBREL/PUBCOMP.
      const bool rel = t == PacketType::kPubrel || t == PacketType::kPubcomp;
      Ack a = make_ack(t, 1000, v5 ? (rel ? 0x92 : 0x80) : 0);
      if (v5) a.props.reason_string = "nope";
      ExpectEncodeDecode(a, v);
    }
    Subscribe s;
    s.packet_id = 2;
    s.topics = {{"a/+", 1, v5, v5, std::uint8_t(v5 ? 2 : 0)}, {"b/#", 0}};
    if (v5) s.props.subscription_ids = {268435455};
    ExpectEncodeDecode(s, v);

    SubAck sa;
    sa.packet_id = 2;
    sa.codes = {1, 0x80};
    ExpectEncodeDecode(sa, v);

    Unsubscribe u;
    u.packet_id = 3;
    u.filters = {"a/+", "b/#"};
    ExpectEncodeDecode(u, v);

    SubAck ua;
    ua.type = PacketType::kUnsuback;
    ua.packet_id = 3;
    if (v5) ua.codes = {0, 0x11};
    ExpectEncodeDecode(ua, v);

    ExpectEncodeDecode(Pingreq{}, v);
    ExpectEncodeDecode(Pingresp{}, v);

    Disconnect d;
    if (v5) {
      d.reason = 0x8b;
      d.props.reason_string = "shutting down";
    }
    ExpectEncodeDecode(d, v);

    if (v5) {
      Auth a;
      a.reason = 0x18;
      a.props.auth_method = "PLAIN";
      a.props.auth_data = "data";
      ExpectEncodeDecode(a, v);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Framing: incremental decoding, remaining length, maximum packet size
// ------------------------------------------------------------------------------------------------

void ExpectIncrementalFraming(const std::string& wire, Version v) {
  FrameHeader h;
  DecodeError err;
  for (std::size_t n = 0; n < wire.size(); ++n) {
    EXPECT_EQ(parse_frame(u8(wire), n, 0, h, err), FrameStatus::kIncomplete)
        << "prefix of " << n << " of " << wire.size() << " bytes";
    EXPECT_FALSE(err) << "prefix of " << n << " bytes";
  }
  ASSERT_EQ(parse_frame(u8(wire), wire.size(), 0, h, err), FrameStatus::kComplete);
  EXPECT_EQ(h.total(), wire.size());
  Packet p;
  EXPECT_FALSE(decode_packet(h, u8(wire) + h.header_size, v, p));
}

TEST(Codec, IncrementalFramingOneByteAtATime) {
  {
    SCOPED_TRACE("v5 CONNECT");
    Connect c;
    c.version = Version::kV5;
    c.client_id = "incremental";
    c.props.session_expiry = 10;
    c.props.user_properties = {{"key", "value"}};
    c.will = Will{"w", "payload", 1, false, {}};
    c.username = "u";
    c.password = "p";
    ExpectIncrementalFraming(encode(c, Version::kV5), Version::kV5);
  }
  {
    SCOPED_TRACE("3.1.1 PUBLISH with 2-byte remaining length");
    ExpectIncrementalFraming(bytes("30 cb01 0001't'") + std::string(200, 'p'), Version::kV311);
  }
  {
    SCOPED_TRACE("PUBLISH with 3-byte remaining length");
    std::string payload(20000, 'q');
    std::string wire = encode(make_publish(1, false, false, "big", 1, payload), Version::kV311);
    ASSERT_EQ(static_cast<unsigned char>(wire[3]) & 0x80, 0);
    ASSERT_NE(static_cast<unsigned char>(wire[2]) & 0x80, 0);
    ExpectIncrementalFraming(wire, Version::kV311);
  }
  {
    SCOPED_TRACE("PINGREQ");
    ExpectIncrementalFraming(bytes("c0 00"), Version::kV311);
  }
}

TEST(Codec, FrameStopsAtFirstPacketWhenBufferHoldsMore) {
  const std::string wire = bytes("c0 00 30 05 0003'a/b' d0 00");
  FrameHeader h;
  DecodeError err;
  ASSERT_EQ(parse_frame(u8(wire), wire.size(), 0, h, err), FrameStatus::kComplete);
  EXPECT_EQ(h.type(), PacketType::kPingreq);
  EXPECT_EQ(h.total(), 2u);
  ASSERT_EQ(parse_frame(u8(wire) + 2, wire.size() - 2, 0, h, err), FrameStatus::kComplete);
  EXPECT_EQ(h.type(), PacketType::kPublish);
  EXPECT_EQ(h.total(), 7u);
  EXPECT_EQ(h.header_size, 2u);
  EXPECT_EQ(h.remaining_length, 5u);
}

TEST(Codec, MQTT_1_5_5_1_RemainingLengthOfFourBytesIsAccepted) {
  // 268435455 is the largest remaining length; the header parses and waits for the body.
  const std::string wire = bytes("30 ff ff ff 7f");
  FrameHeader h;
  DecodeError err;
  EXPECT_EQ(parse_frame(u8(wire), wire.size(), 0, h, err), FrameStatus::kIncomplete);
  EXPECT_FALSE(err);
  EXPECT_EQ(h.remaining_length, 268435455u);
  EXPECT_EQ(h.header_size, 5u);
}

TEST(Codec, MQTT_1_5_5_1_RemainingLengthOfFiveBytesIsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("30 ff ff ff ff 7f"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("30 80 80 80 80 01"), Version::kV5, Reason::kMalformedPacket));
  // Detected as soon as the fifth length byte arrives.
  EXPECT_TRUE(DecodeFails(bytes("30 80 80 80 80"), Version::kV5, Reason::kMalformedPacket));
}

TEST(Codec, MQTT_1_5_5_1_NonMinimalRemainingLengthIsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("c0 80 00"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("30 85 00 0003'a/b'"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("30 80 80 00"), Version::kV5, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("30 ff ff 80 00"), Version::kV5, Reason::kMalformedPacket));
}

TEST(Codec, PacketLargerThanMaximumPacketSizeIsRejected) {
  const std::string wire = bytes("30 0a 0003'a/b' 'hello'");  // 12 bytes in total
  EXPECT_TRUE(DecodeFails(wire, Version::kV5, Reason::kPacketTooLarge, 11));
  EXPECT_TRUE(DecodeFails(wire, Version::kV311, Reason::kPacketTooLarge, 2));
  // Exactly at the limit is fine.
  Decoded d = decode(wire, Version::kV5, 12);
  EXPECT_EQ(d.status, FrameStatus::kComplete);
  // The size check happens on the header alone, before the body has arrived.
  const std::string head = bytes("30 cb 01");
  FrameHeader h;
  DecodeError err;
  EXPECT_EQ(parse_frame(u8(head), head.size(), 100, h, err), FrameStatus::kError);
  EXPECT_EQ(err.reason, Reason::kPacketTooLarge);
  // 0 means no limit.
  DecodeError none;
  EXPECT_EQ(parse_frame(u8(head), head.size(), 0, h, none), FrameStatus::kIncomplete);
  EXPECT_FALSE(none);
}

// ------------------------------------------------------------------------------------------------
// Fixed header flags [MQTT-2.2.2-2] and packet types
// ------------------------------------------------------------------------------------------------

TEST(Codec, MQTT_2_2_2_2_InvalidFixedHeaderFlagsAreMalformed) {
  struct Row {
    const char* name;
    const char* wire;
    Version v;
  };
  const Row rows[] = {
      {"CONNECT", "11 0e 0004'MQTT' 04 02 003c 0002'c1'", Version::kV311},
      {"CONNECT", "18 0e 0004'MQTT' 04 02 003c 0002'c1'", Version::kV311},
      {"CONNACK", "21 02 00 00", Version::kV311},
      {"CONNACK", "24 03 00 00 00", Version::kV5},
      {"PUBACK", "42 02 0001", Version::kV311},
      {"PUBACK", "48 02 0001", Version::kV5},
      {"PUBREC", "51 02 0001", Version::kV311},
      {"PUBREC", "52 02 0001", Version::kV5},
      {"PUBREL", "60 02 0001", Version::kV311},
      {"PUBREL", "63 02 0001", Version::kV5},
      {"PUBREL", "6a 02 0001", Version::kV31},
      {"PUBCOMP", "78 02 0001", Version::kV311},
      {"PUBCOMP", "72 02 0001", Version::kV5},
      {"SUBSCRIBE", "80 06 0001 0001'a' 00", Version::kV311},
      {"SUBSCRIBE", "83 07 0001 00 0001'a' 00", Version::kV5},
      {"SUBSCRIBE", "8a 06 0001 0001'a' 00", Version::kV31},
      {"SUBACK", "92 03 0001 00", Version::kV311},
      {"UNSUBSCRIBE", "a0 05 0001 0001'a'", Version::kV311},
      {"UNSUBSCRIBE", "a6 06 0001 00 0001'a'", Version::kV5},
      {"UNSUBACK", "b1 02 0001", Version::kV311},
      {"PINGREQ", "c1 00", Version::kV311},
      {"PINGREQ", "c2 00", Version::kV5},
      {"PINGRESP", "d8 00", Version::kV311},
      {"DISCONNECT", "e2 00", Version::kV311},
      {"DISCONNECT", "ef 00", Version::kV5},
      {"AUTH", "f1 00", Version::kV5},
  };
  for (const auto& r : rows) {
    EXPECT_TRUE(DecodeFails(bytes(r.wire), r.v, Reason::kMalformedPacket))
        << r.name << " on " << version_name(r.v);
  }
}

TEST(Codec, MQTT_2_2_2_2_ReservedFlagsWithCorrectValueAreAccepted) {
  // Counterpart of the table above: the same packets with the right flags decode.
  EXPECT_TRUE(DecodesOk(bytes("10 0e 0004'MQTT' 04 02 003c 0002'c1'"), Version::kV311));
  EXPECT_TRUE(DecodesOk(bytes("62 02 0001"), Version::kV311));
  EXPECT_TRUE(DecodesOk(bytes("82 06 0001 0001'a' 00"), Version::kV311));
  EXPECT_TRUE(DecodesOk(bytes("a2 05 0001 0001'a'"), Version::kV311));
  EXPECT_TRUE(DecodesOk(bytes("f0 00"), Version::kV5));
}

TEST(Codec, ReservedPacketType0IsMalformed) {
  for (Version v : kAllVersions) {
    EXPECT_TRUE(DecodeFails(bytes("00 00"), v, Reason::kMalformedPacket)) << version_name(v);
    EXPECT_TRUE(DecodeFails(bytes("00 02 0001"), v, Reason::kMalformedPacket)) << version_name(v);
  }
}

TEST(Codec, AuthBeforeMqtt5IsMalformed) {
  // Packet type 15 is reserved in MQTT 3.1/3.1.1.
  for (Version v : kV3Versions) {
    EXPECT_TRUE(DecodeFails(bytes("f0 00"), v, Reason::kMalformedPacket)) << version_name(v);
    EXPECT_TRUE(DecodeFails(bytes("f0 02 18 00"), v, Reason::kMalformedPacket)) << version_name(v);
  }
}

TEST(Codec, PingWithBodyIsMalformed) {
  for (Version v : kAllVersions) {
    EXPECT_TRUE(DecodeFails(bytes("c0 01 00"), v, Reason::kMalformedPacket)) << version_name(v);
    EXPECT_TRUE(DecodeFails(bytes("d0 01 00"), v, Reason::kMalformedPacket)) << version_name(v);
  }
}

// ------------------------------------------------------------------------------------------------
// PUBLISH malformed cases
// ------------------------------------------------------------------------------------------------

TEST(Codec, MQTT_3_3_1_4_PublishQos3IsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("36 08 0003'a/b' 0001 'x'"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("37 09 0003'a/b' 0001 00 'x'"), Version::kV5, Reason::kMalformedPacket));
}

TEST(Codec, MQTT_3_3_1_2_PublishDupOnQos0IsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("38 06 0003'a/b' 'x'"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("39 07 0003'a/b' 00 'x'"), Version::kV5, Reason::kMalformedPacket));
}

TEST(Codec, MQTT_2_3_1_1_PublishQos1And2WithPacketId0IsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("32 08 0003'a/b' 0000 'x'"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("34 08 0003'a/b' 0000 'x'"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("32 09 0003'a/b' 0000 00 'x'"), Version::kV5, Reason::kMalformedPacket));
}

TEST(Codec, MQTT_2_3_1_1_AcksWithPacketId0AreMalformed) {
  for (Version v : kAllVersions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_TRUE(DecodeFails(bytes("40 02 0000"), v, Reason::kMalformedPacket));
    EXPECT_TRUE(DecodeFails(bytes("50 02 0000"), v, Reason::kMalformedPacket));
    EXPECT_TRUE(DecodeFails(bytes("62 02 0000"), v, Reason::kMalformedPacket));
    EXPECT_TRUE(DecodeFails(bytes("70 02 0000"), v, Reason::kMalformedPacket));
  }
}

TEST(Codec, MQTT_2_3_1_1_SubscribeWithPacketId0IsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("82 06 0000 0001'a' 00"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("82 07 0000 00 0001'a' 00"), Version::kV5, Reason::kMalformedPacket));
}

TEST(Codec, MQTT_2_3_1_1_UnsubscribeWithPacketId0IsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("a2 05 0000 0001'a'"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("a2 06 0000 00 0001'a'"), Version::kV5, Reason::kMalformedPacket));
}

TEST(Codec, MQTT_3_3_2_2_WildcardInPublishTopicIsInvalid) {
  for (Version v : kV3Versions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_TRUE(DecodeFails(bytes("30 05 0003'a/+'"), v, Reason::kTopicNameInvalid));
    EXPECT_TRUE(DecodeFails(bytes("30 05 0003'a/#'"), v, Reason::kTopicNameInvalid));
    EXPECT_TRUE(DecodeFails(bytes("30 03 0001'#'"), v, Reason::kTopicNameInvalid));
  }
  EXPECT_TRUE(DecodeFails(bytes("30 07 0003'+/b' 00 'x'"), Version::kV5, Reason::kTopicNameInvalid));
}

TEST(Codec, MQTT_4_7_3_1_EmptyTopicInV3PublishIsInvalid) {
  for (Version v : kV3Versions) {
    EXPECT_TRUE(DecodeFails(bytes("30 03 0000 'x'"), v, Reason::kTopicNameInvalid)) << version_name(v);
    EXPECT_TRUE(DecodeFails(bytes("32 05 0000 0001 'x'"), v, Reason::kTopicNameInvalid)) << version_name(v);
  }
}

TEST(Codec, MQTT_1_5_3_1_InvalidUtf8InPublishTopicIsMalformed) {
  // U+D800 encoded as ED A0 80.
  EXPECT_TRUE(DecodeFails(bytes("30 05 0003 eda080"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("30 06 0003 eda080 00"), Version::kV5, Reason::kMalformedPacket));
  // Overlong '/' and a truncated sequence.
  EXPECT_TRUE(DecodeFails(bytes("30 04 0002 c0af"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("30 04 0002 'a' e2"), Version::kV311, Reason::kMalformedPacket));
}

TEST(Codec, MQTT_1_5_3_2_NullCharacterInPublishTopicIsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("30 05 0003 'a' 00 'b'"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("30 06 0003 'a' 00 'b' 00"), Version::kV5, Reason::kMalformedPacket));
}

TEST(Codec, PublishTruncatedFieldsAreMalformed) {
  // Topic length runs past the end of the packet.
  EXPECT_TRUE(DecodeFails(bytes("30 03 0005 'a'"), Version::kV311, Reason::kMalformedPacket));
  // Missing packet identifier on QoS 1.
  EXPECT_TRUE(DecodeFails(bytes("32 03 0001 't'"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("32 04 0001 't' 01"), Version::kV311, Reason::kMalformedPacket));
  // v5: missing property length.
  EXPECT_TRUE(DecodeFails(bytes("30 03 0001't'"), Version::kV5, Reason::kMalformedPacket));
  // v5: property length beyond the packet.
  EXPECT_TRUE(DecodeFails(bytes("30 05 0001't' 05 01"), Version::kV5, Reason::kMalformedPacket));
  // v5: property value truncated inside the property block.
  EXPECT_TRUE(DecodeFails(bytes("30 07 0001't' 03 02 0000"), Version::kV5, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("30 07 0001't' 03 26 0005"), Version::kV5, Reason::kMalformedPacket));
}

// ------------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------------

TEST(Codec, MQTT_1_5_3_1_InvalidUtf8InUserPropertyIsMalformed) {
  // Key 0xff.
  EXPECT_TRUE(DecodeFails(bytes("30 0b 0001't' 07 26 0001 ff 0001'v'"), Version::kV5,
                          Reason::kMalformedPacket));
  // Value is a surrogate.
  EXPECT_TRUE(DecodeFails(bytes("30 0d 0001't' 09 26 0001'k' 0003 eda080"), Version::kV5,
                          Reason::kMalformedPacket));
  // Value contains U+0000 [MQTT-1.5.3-2].
  EXPECT_TRUE(DecodeFails(bytes("30 0b 0001't' 07 26 0001'k' 0001 00"), Version::kV5,
                          Reason::kMalformedPacket));
  // In CONNECT too.
  EXPECT_TRUE(DecodeFails(bytes("10 16 0004'MQTT' 05 02 003c 07 26 0001'k' 0001 ff 0002'c1'"),
                          Version::kV5, Reason::kMalformedPacket));
}

TEST(Codec, InvalidUtf8InStringPropertiesIsMalformed) {
  // Content type (0x03) and reason string (0x1F) are UTF-8 strings.
  EXPECT_TRUE(DecodeFails(bytes("30 09 0001't' 05 03 0002 c328"), Version::kV5, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("40 08 0001 80 04 1f 0001 ff"), Version::kV5, Reason::kMalformedPacket));
}

TEST(Codec, DuplicatedPropertyIsProtocolError) {
  // Two message expiry intervals in PUBLISH (section 3.3.2.3.3).
  EXPECT_TRUE(DecodeFails(bytes("30 0f 0001't' 0a 02 0000000a 02 0000000b 'x'"), Version::kV5,
                          Reason::kProtocolError));
  // Two session expiry intervals in CONNECT (section 3.1.2.11.2).
  EXPECT_TRUE(DecodeFails(bytes("10 19 0004'MQTT' 05 02 003c 0a 11 00000001 11 00000002 0002'c1'"),
                          Version::kV5, Reason::kProtocolError));
  // Two reason strings in PUBACK (section 3.4.2.2.2).
  EXPECT_TRUE(DecodeFails(bytes("40 0c 0001 80 08 1f 0001'a' 1f 0001'b'"), Version::kV5,
                          Reason::kProtocolError));
  // Two topic aliases.
  EXPECT_TRUE(DecodeFails(bytes("30 0a 0001't' 06 23 0001 23 0002"), Version::kV5, Reason::kProtocolError));
  // Two payload format indicators in a will.
  EXPECT_TRUE(DecodeFails(
      bytes("10 1a 0004'MQTT' 05 06 003c 00 0002'c1' 04 01 01 01 00 0001't' 0001'm'"),
      Version::kV5, Reason::kProtocolError));
}

TEST(Codec, UserPropertiesAndPublishSubscriptionIdsMayRepeat) {
  Decoded d = decode(bytes("30 12 0001't' 0e 26 0001'k' 0001'a' 26 0001'k' 0001'b'"), Version::kV5);
  ASSERT_TRUE(d.ok()) << d.err.what;
  const auto& p = std::get<Publish>(d.packet);
  ASSERT_EQ(p.props.user_properties.size(), 2u);
  EXPECT_EQ(p.props.user_properties[0], (UserProperty{"k", "a"}));
  EXPECT_EQ(p.props.user_properties[1], (UserProperty{"k", "b"}));
}

TEST(Codec, PropertyNotAllowedInPacketIsMalformed) {
  // Session expiry (0x11) in PUBLISH.
  EXPECT_TRUE(DecodeFails(bytes("30 09 0001't' 05 11 0000000a"), Version::kV5, Reason::kMalformedPacket));
  // Will delay (0x18) in the CONNECT properties rather than the will properties.
  EXPECT_TRUE(DecodeFails(bytes("10 14 0004'MQTT' 05 02 003c 05 18 0000000a 0002'c1'"), Version::kV5,
                          Reason::kMalformedPacket));
  // Session expiry (0x11) in the will properties.
  EXPECT_TRUE(DecodeFails(
      bytes("10 1b 0004'MQTT' 05 06 003c 00 0002'c1' 05 11 0000000a 0001't' 0001'm'"), Version::kV5,
      Reason::kMalformedPacket));
  // Topic alias (0x23) in CONNECT.
  EXPECT_TRUE(DecodeFails(bytes("10 12 0004'MQTT' 05 02 003c 03 23 0001 0002'c1'"), Version::kV5,
                          Reason::kMalformedPacket));
  // Reason string (0x1F) in SUBSCRIBE.
  EXPECT_TRUE(DecodeFails(bytes("82 0b 0001 04 1f 0001'r' 0001'a' 00"), Version::kV5,
                          Reason::kMalformedPacket));
  // Subscription identifier (0x0B) in UNSUBSCRIBE.
  EXPECT_TRUE(DecodeFails(bytes("a2 08 0001 02 0b 01 0001'a'"), Version::kV5, Reason::kMalformedPacket));
  // Maximum QoS (0x24) in DISCONNECT.
  EXPECT_TRUE(DecodeFails(bytes("e0 04 00 02 24 01"), Version::kV5, Reason::kMalformedPacket));
  // Session expiry in AUTH.
  EXPECT_TRUE(DecodeFails(bytes("f0 07 18 05 11 00000001"), Version::kV5, Reason::kMalformedPacket));
  // Unknown property identifiers.
  EXPECT_TRUE(DecodeFails(bytes("30 06 0001't' 02 05 00"), Version::kV5, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("30 07 0001't' 03 80 01 00"), Version::kV5, Reason::kMalformedPacket));
}

TEST(Codec, ReceiveMaximumZeroIsProtocolError) {
  // Section 3.1.2.11.3: "It is a Protocol Error to include the Receive Maximum value more than once
  // or for it to have the value 0."
  EXPECT_TRUE(DecodeFails(bytes("10 12 0004'MQTT' 05 02 003c 03 21 0000 0002'c1'"), Version::kV5,
                          Reason::kProtocolError));
  EXPECT_TRUE(DecodeFails(bytes("20 06 00 00 03 21 0000"), Version::kV5, Reason::kProtocolError));
  EXPECT_TRUE(DecodesOk(bytes("10 12 0004'MQTT' 05 02 003c 03 21 0001 0002'c1'"), Version::kV5));
}

TEST(Codec, MaximumPacketSizeZeroIsProtocolError) {
  // Section 3.1.2.11.4.
  EXPECT_TRUE(DecodeFails(bytes("10 14 0004'MQTT' 05 02 003c 05 27 00000000 0002'c1'"), Version::kV5,
                          Reason::kProtocolError));
}

TEST(Codec, BooleanPropertyOtherThan0Or1IsProtocolError) {
  // Request Problem Information (section 3.1.2.11.7) and Request Response Information (3.1.2.11.6).
  EXPECT_TRUE(DecodeFails(bytes("10 11 0004'MQTT' 05 02 003c 02 17 02 0002'c1'"), Version::kV5,
                          Reason::kProtocolError));
  EXPECT_TRUE(DecodeFails(bytes("10 11 0004'MQTT' 05 02 003c 02 19 02 0002'c1'"), Version::kV5,
                          Reason::kProtocolError));
  // Maximum QoS (3.2.2.3.4) and Retain Available (3.2.2.3.5) in CONNACK.
  EXPECT_TRUE(DecodeFails(bytes("20 05 00 00 02 24 02"), Version::kV5, Reason::kProtocolError));
  EXPECT_TRUE(DecodeFails(bytes("20 05 00 00 02 25 02"), Version::kV5, Reason::kProtocolError));
}

TEST(Codec, ResponseTopicWithWildcardIsRejected) {
  // [MQTT-3.3.2-14] The Response Topic MUST NOT contain wildcard characters.
  Decoded d = decode(bytes("30 09 0001't' 05 08 0002'a#'"), Version::kV5);
  EXPECT_FALSE(d.ok());
  EXPECT_NE(d.err.reason, Reason::kSuccess);
}

TEST(Codec, TwoSubscriptionIdentifiersInSubscribeIsProtocolError) {
  // Section 3.8.2.1.2: "It is a Protocol Error to include the Subscription Identifier more than once."
  EXPECT_TRUE(DecodeFails(bytes("82 0b 0001 04 0b 01 0b 02 0001'a' 00"), Version::kV5,
                          Reason::kProtocolError));
}

TEST(Codec, SubscriptionIdentifier0IsProtocolError) {
  // Section 3.8.2.1.2: "It is a Protocol Error if the Subscription Identifier has a value of 0."
  EXPECT_TRUE(DecodeFails(bytes("82 09 0001 02 0b 00 0001'a' 00"), Version::kV5, Reason::kProtocolError));
  EXPECT_TRUE(DecodeFails(bytes("30 07 0001't' 02 0b 00 'x'"), Version::kV5, Reason::kProtocolError));
}

TEST(Codec, SubscriptionIdentifierLongerThanFourBytesIsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("82 0d 0001 06 0b 80 80 80 80 01 0001'a' 00"), Version::kV5,
                          Reason::kMalformedPacket));
}

// Non-minimal Variable Byte Integers inside the body (property length, subscription identifier). [MQTT-1.5.5-1] requires the minimum number of bytes for every Variable Byte
// Integer, so these packets are malformed.
TEST(Codec, MQTT_1_5_5_1_NonMinimalVariableByteIntegerInBodyIsMalformed) {
  // Property length 0 encoded as 80 00.
  EXPECT_TRUE(DecodeFails(bytes("30 06 0001't' 80 00 'x'"), Version::kV5, Reason::kMalformedPacket));
  // Subscription identifier 1 encoded as 81 00.
  EXPECT_TRUE(DecodeFails(bytes("82 0a 0001 03 0b 81 00 0001'a' 00"), Version::kV5,
                          Reason::kMalformedPacket));
}

// ------------------------------------------------------------------------------------------------
// SUBSCRIBE / UNSUBSCRIBE malformed cases
// ------------------------------------------------------------------------------------------------

TEST(Codec, MQTT_3_8_3_3_SubscribeWithoutTopicFiltersIsProtocolError) {
  EXPECT_TRUE(DecodeFails(bytes("82 02 0001"), Version::kV311, Reason::kProtocolError));
  EXPECT_TRUE(DecodeFails(bytes("82 02 0001"), Version::kV31, Reason::kProtocolError));
  EXPECT_TRUE(DecodeFails(bytes("82 03 0001 00"), Version::kV5, Reason::kProtocolError));
}

TEST(Codec, MQTT_3_8_3_4_SubscribeV311ReservedOptionBitsAreMalformed) {
  // In 3.1.1 bits 7-2 of the requested QoS byte are reserved; QoS 3 is malformed too.
  for (const char* opt : {"04", "08", "10", "20", "40", "80", "fd", "03"}) {
    EXPECT_TRUE(DecodeFails(bytes(std::string("82 06 0001 0001'a' ") + opt), Version::kV311,
                            Reason::kMalformedPacket))
        << opt;
  }
}

TEST(Codec, MQTT_3_8_3_5_SubscribeV5ReservedOptionBitsAreMalformed) {
  for (const char* opt : {"40", "80", "c0", "41"}) {
    EXPECT_TRUE(DecodeFails(bytes(std::string("82 07 0001 00 0001'a' ") + opt), Version::kV5,
                            Reason::kMalformedPacket))
        << opt;
  }
}

TEST(Codec, SubscribeV5RetainHandling3IsProtocolError) {
  // Section 3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
  EXPECT_TRUE(DecodeFails(bytes("82 07 0001 00 0001'a' 30"), Version::kV5, Reason::kProtocolError));
}

// MQTT 5.0 section 3.8.3.1 says "It is a Protocol Error if the Maximum QoS field has
// the value 3", so on 5.0 the reason is 0x82 (3.1.1 [MQTT-3-8.3-4] is malformed, tested above).
TEST(Codec, SubscribeV5MaximumQos3IsProtocolError) {
  EXPECT_TRUE(DecodeFails(bytes("82 07 0001 00 0001'a' 03"), Version::kV5, Reason::kProtocolError));
}

TEST(Codec, SubscribeTruncatedEntriesAreMalformed) {
  // Filter without its options byte.
  EXPECT_TRUE(DecodeFails(bytes("82 05 0001 0001'a'"), Version::kV311, Reason::kMalformedPacket));
  // Filter length beyond the packet.
  EXPECT_TRUE(DecodeFails(bytes("82 05 0001 0005'a'"), Version::kV311, Reason::kMalformedPacket));
  // Packet identifier cut short.
  EXPECT_TRUE(DecodeFails(bytes("82 01 00"), Version::kV311, Reason::kMalformedPacket));
}

TEST(Codec, MQTT_1_5_3_1_InvalidUtf8InTopicFilterIsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("82 06 0001 0001 ff 00"), Version::kV311, Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("a2 05 0001 0001 00"), Version::kV311, Reason::kMalformedPacket));
}

TEST(Codec, MQTT_3_10_3_2_UnsubscribeWithoutTopicFiltersIsProtocolError) {
  EXPECT_TRUE(DecodeFails(bytes("a2 02 0001"), Version::kV311, Reason::kProtocolError));
  EXPECT_TRUE(DecodeFails(bytes("a2 03 0001 00"), Version::kV5, Reason::kProtocolError));
}

// ------------------------------------------------------------------------------------------------
// CONNECT malformed cases
// ------------------------------------------------------------------------------------------------

DecodeError connect_error(const std::string& wire, Version v = Version::kV311) {
  Decoded d = decode(wire, v);
  EXPECT_EQ(d.status, FrameStatus::kComplete) << to_hex(wire);
  return d.err;
}

TEST(Codec, MQTT_3_1_2_3_ConnectReservedFlagIsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("10 0e 0004'MQTT' 04 03 003c 0002'c1'"), Version::kV311,
                          Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("10 0f 0004'MQTT' 05 01 003c 00 0002'c1'"), Version::kV5,
                          Reason::kMalformedPacket));
}

TEST(Codec, MQTT_3_1_2_14_WillQos3IsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("10 14 0004'MQTT' 04 1e 003c 0002'c1' 0001't' 0001'm'"),
                          Version::kV311, Reason::kMalformedPacket));
}

TEST(Codec, MQTT_3_1_2_11_WillQosOrRetainWithoutWillFlagIsMalformed) {
  // Will retain without will flag [MQTT-3.1.2-15].
  EXPECT_TRUE(DecodeFails(bytes("10 0e 0004'MQTT' 04 22 003c 0002'c1'"), Version::kV311,
                          Reason::kMalformedPacket));
  // Will QoS 1 without will flag [MQTT-3.1.2-13].
  EXPECT_TRUE(DecodeFails(bytes("10 0e 0004'MQTT' 04 0a 003c 0002'c1'"), Version::kV311,
                          Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("10 0f 0004'MQTT' 05 22 003c 00 0002'c1'"), Version::kV5,
                          Reason::kMalformedPacket));
}

TEST(Codec, MQTT_3_1_2_22_PasswordWithoutUsernameIsMalformedOnV311) {
  EXPECT_TRUE(DecodeFails(bytes("10 12 0004'MQTT' 04 42 003c 0002'c1' 0002'pw'"), Version::kV311,
                          Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("10 14 0006'MQIsdp' 03 42 003c 0002'c1' 0002'pw'"), Version::kV31,
                          Reason::kMalformedPacket));
}

TEST(Codec, MQTT_3_1_2_1_UnknownProtocolNameClosesWithoutConnack) {
  for (const char* name : {"'MQTX'", "'mqtt'", "'MQIsdP'"}) {
    std::string wire = bytes(std::string("10 0e 0004") + name + " 04 02 003c 0002'c1'");
    if (std::string_view(name) == "'MQIsdP'") {
      wire = bytes("10 10 0006'MQIsdP' 03 02 003c 0002'c1'");
    }
    DecodeError e = connect_error(wire);
    EXPECT_TRUE(e) << name;
    EXPECT_EQ(e.reason, Reason::kMalformedPacket) << name;
    EXPECT_TRUE(e.no_connack) << name;
  }
  // An empty protocol name.
  DecodeError e = connect_error(bytes("10 0a 0000 04 02 003c 0002'c1'"));
  EXPECT_TRUE(e);
  EXPECT_TRUE(e.no_connack);
}

TEST(Codec, MQTT_3_1_2_2_UnsupportedProtocolLevelGetsConnack) {
  struct Row {
    const char* wire;
    const char* what;
  };
  const Row rows[] = {
      {"10 0e 0004'MQTT' 06 02 003c 0002'c1'", "MQTT level 6"},
      {"10 0e 0004'MQTT' 03 02 003c 0002'c1'", "MQTT level 3"},
      {"10 0e 0004'MQTT' 00 02 003c 0002'c1'", "MQTT level 0"},
      {"10 10 0006'MQIsdp' 04 02 003c 0002'c1'", "MQIsdp level 4"},
      {"10 10 0006'MQIsdp' 05 02 003c 0002'c1'", "MQIsdp level 5"},
  };
  for (const auto& r : rows) {
    DecodeError e = connect_error(bytes(r.wire));
    EXPECT_TRUE(e) << r.what;
    EXPECT_EQ(e.reason, Reason::kUnsupportedProtocolVersion) << r.what;
    // The server answers with CONNACK 0x84 (5.0) / return code 0x01 (3.1.1) before closing.
    EXPECT_FALSE(e.no_connack) << r.what;
  }
}

TEST(Codec, MQTT_1_5_3_1_InvalidUtf8InClientIdIsMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("10 0e 0004'MQTT' 04 02 003c 0002 c328"), Version::kV311,
                          Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("10 0f 0004'MQTT' 04 02 003c 0003 eda080"), Version::kV311,
                          Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("10 0e 0004'MQTT' 04 02 003c 0002 'a' 00"), Version::kV311,
                          Reason::kMalformedPacket));
}

TEST(Codec, MQTT_1_5_3_1_InvalidUtf8InUsernameAndWillTopicIsMalformed) {
  // [MQTT-3.1.3-11] user name must be UTF-8.
  EXPECT_TRUE(DecodeFails(bytes("10 12 0004'MQTT' 04 82 003c 0002'c1' 0002 c0af"), Version::kV311,
                          Reason::kMalformedPacket));
  // [MQTT-3.1.3-10] will topic must be UTF-8.
  EXPECT_TRUE(DecodeFails(bytes("10 14 0004'MQTT' 04 06 003c 0002'c1' 0001 ff 0001'm'"),
                          Version::kV311, Reason::kMalformedPacket));
}

TEST(Codec, WillTopicWithWildcardIsInvalid) {
  EXPECT_TRUE(DecodeFails(bytes("10 14 0004'MQTT' 04 06 003c 0002'c1' 0001'#' 0001'm'"), Version::kV311,
                          Reason::kTopicNameInvalid));
}

TEST(Codec, ConnectTrailingBytesAreMalformed) {
  EXPECT_TRUE(DecodeFails(bytes("10 0f 0004'MQTT' 04 02 003c 0002'c1' 00"), Version::kV311,
                          Reason::kMalformedPacket));
  EXPECT_TRUE(DecodeFails(bytes("10 12 0004'MQTT' 05 02 003c 00 0002'c1' 'xyz'"), Version::kV5,
                          Reason::kMalformedPacket));
}

TEST(Codec, ConnectTruncatedFieldsAreMalformed) {
  // Flags set for a will but no will fields.
  EXPECT_TRUE(DecodeFails(bytes("10 0e 0004'MQTT' 04 06 003c 0002'c1'"), Version::kV311,
                          Reason::kMalformedPacket));
  // User name flag but no user name.
  EXPECT_TRUE(DecodeFails(bytes("10 0e 0004'MQTT' 04 82 003c 0002'c1'"), Version::kV311,
                          Reason::kMalformedPacket));
  // Keep alive cut short.
  EXPECT_TRUE(DecodeFails(bytes("10 09 0004'MQTT' 04 02 00"), Version::kV311, Reason::kMalformedPacket));
  // No client identifier.
  EXPECT_TRUE(DecodeFails(bytes("10 0a 0004'MQTT' 04 02 003c"), Version::kV311, Reason::kMalformedPacket));
}

}  // namespace

// Properties::empty() must know every field: each one set alone makes the set non-empty.
TEST(Codec, PropertiesEmptyKnowsEveryField) {
  using tern::codec::Properties;
  EXPECT_TRUE(Properties{}.empty());
  std::vector<void (*)(Properties&)> setters = {
      [](Properties& p) { p.payload_format = 1; }, [](Properties& p) { p.message_expiry = 1; },
      [](Properties& p) { p.content_type = "x"; }, [](Properties& p) { p.response_topic = "x"; },
      [](Properties& p) { p.correlation_data = "x"; }, [](Properties& p) { p.subscription_ids.push_back(1); },
      [](Properties& p) { p.session_expiry = 1; }, [](Properties& p) { p.assigned_client_id = "x"; },
      [](Properties& p) { p.server_keep_alive = 1; }, [](Properties& p) { p.auth_method = "x"; },
      [](Properties& p) { p.auth_data = "x"; }, [](Properties& p) { p.request_problem_info = 1; },
      [](Properties& p) { p.will_delay = 1; }, [](Properties& p) { p.request_response_info = 1; },
      [](Properties& p) { p.response_info = "x"; }, [](Properties& p) { p.server_reference = "x"; },
      [](Properties& p) { p.reason_string = "x"; }, [](Properties& p) { p.receive_maximum = 1; },
      [](Properties& p) { p.topic_alias_maximum = 1; }, [](Properties& p) { p.topic_alias = 1; },
      [](Properties& p) { p.maximum_qos = 1; }, [](Properties& p) { p.retain_available = 1; },
      [](Properties& p) { p.user_properties.push_back({"k", "v"}); },
      [](Properties& p) { p.maximum_packet_size = 1; }, [](Properties& p) { p.wildcard_sub_available = 1; },
      [](Properties& p) { p.sub_id_available = 1; }, [](Properties& p) { p.shared_sub_available = 1; },
  };
  for (std::size_t i = 0; i < setters.size(); ++i) {
    Properties p;
    setters[i](p);
    EXPECT_FALSE(p.empty()) << "field " << i;
    std::string enc;
    tern::codec::encode_properties(p, enc);
    EXPECT_GT(enc.size(), 1u) << "field " << i << " is encoded";
  }
  // Every field of the struct is covered: its size is what these fields take.
  static_assert(sizeof(Properties) == 488, "a field was added: add it to empty() and to this test");
}

// Stored records (snapshot, store) write properties with encode_property_block and read them with
// decode_publish_properties: the two must agree (a snapshot with MQTT 5 properties once failed to
// load because the writer left out the block's length).
TEST(Codec, PropertyBlockRoundTrip) {
  tern::codec::Properties p;
  p.user_properties.push_back({"k", "v"});
  p.content_type = "text/plain";
  p.message_expiry = 60;
  p.correlation_data = std::string("\x00\x01", 2);
  std::string block;
  tern::codec::encode_property_block(p, block);
  tern::codec::Properties back;
  EXPECT_FALSE(tern::codec::decode_publish_properties(reinterpret_cast<const std::uint8_t*>(block.data()), block.size(), back));
  EXPECT_EQ(back, p);
  std::string bare;
  tern::codec::encode_properties(p, bare);
  EXPECT_TRUE(tern::codec::decode_publish_properties(reinterpret_cast<const std::uint8_t*>(bare.data()), bare.size(), back))
      << "a block without its length is not a block";
}

TEST(Codec, ReasonCodesOutsideEachPacketsListAreProtocolErrors) {
  // [MQTT-3.4.2-1], [MQTT-3.6.2-1], [MQTT-3.14.2-1], [MQTT-3.15.2-1]: only the listed values.
  struct Case {
    const char* hex;
    bool ok;
  };
  for (const Case& c : {Case{"40 03 0001 10", true}, Case{"40 03 0001 92", false}, Case{"50 03 0001 91", true},
                        Case{"62 03 0001 92", true}, Case{"62 03 0001 05", false}, Case{"70 03 0001 80", false},
                        Case{"e0 01 04", true}, Case{"e0 01 03", false}, Case{"e0 01 a2", true}, Case{"e0 01 a3", false},
                        Case{"f0 02 19 00", true}, Case{"f0 02 10 00", false}}) {
    SCOPED_TRACE(c.hex);
    const std::string raw = bytes(c.hex);
    const auto* data = reinterpret_cast<const std::uint8_t*>(raw.data());
    FrameHeader h;
    DecodeError err;
    ASSERT_EQ(parse_frame(data, raw.size(), 0, h, err), FrameStatus::kComplete);
    Packet p;
    DecodeError e = decode_packet(h, data + h.header_size, Version::kV5, p);
    EXPECT_EQ(!e, c.ok);
    if (!c.ok) {
      EXPECT_EQ(e.reason, tern::Reason::kProtocolError);
    }
  }
}
