// Unit tests for the I/O-free core layer: MQTT UTF-8 validation, topic names / filters / matching,
// reason codes. Test names carry the spec statement they check where there is one.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>

#include "core/reason_code.hpp"
#include "core/topic.hpp"
#include "core/utf8.hpp"

namespace {

using tern::topic_levels;
using tern::topic_matches;
using tern::valid_mqtt_utf8;
using tern::valid_topic_filter;
using tern::valid_topic_name;

// Builds a string from raw bytes (string literals cannot hold an embedded NUL conveniently).
std::string raw(std::initializer_list<unsigned> bytes) {
  std::string s;
  for (unsigned b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

// ------------------------------------------------------------------------------------------------
// valid_mqtt_utf8
// ------------------------------------------------------------------------------------------------

TEST(Utf8, EmptyStringIsValid) { EXPECT_TRUE(valid_mqtt_utf8("")); }

TEST(Utf8, PlainAsciiIsValid) {
  EXPECT_TRUE(valid_mqtt_utf8("a"));
  EXPECT_TRUE(valid_mqtt_utf8("sport/tennis/player1"));
  EXPECT_TRUE(valid_mqtt_utf8(" !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~"));
  EXPECT_TRUE(valid_mqtt_utf8(raw({0x7F})));  // DEL is a valid (if discouraged) code point
  EXPECT_TRUE(valid_mqtt_utf8(raw({0x01})));  // control characters are allowed, only U+0000 is not
}

TEST(Utf8, MultiByteSequencesAreValid) {
  EXPECT_TRUE(valid_mqtt_utf8(raw({0xC2, 0x80})));              // U+0080, smallest 2-byte
  EXPECT_TRUE(valid_mqtt_utf8(raw({0xC3, 0xA9})));              // U+00E9 e acute
  EXPECT_TRUE(valid_mqtt_utf8(raw({0xDF, 0xBF})));              // U+07FF, largest 2-byte
  EXPECT_TRUE(valid_mqtt_utf8(raw({0xE0, 0xA0, 0x80})));        // U+0800, smallest 3-byte
  EXPECT_TRUE(valid_mqtt_utf8(raw({0xE2, 0x82, 0xAC})));        // U+20AC euro sign
  EXPECT_TRUE(valid_mqtt_utf8(raw({0xED, 0x9F, 0xBF})));        // U+D7FF, just below surrogates
  EXPECT_TRUE(valid_mqtt_utf8(raw({0xEE, 0x80, 0x80})));        // U+E000, just above surrogates
  EXPECT_TRUE(valid_mqtt_utf8(raw({0xEF, 0xBB, 0xBF})));        // U+FEFF BOM [MQTT-1.5.3-3]
  EXPECT_TRUE(valid_mqtt_utf8(raw({0xEF, 0xBF, 0xBF})));        // U+FFFF
  EXPECT_TRUE(valid_mqtt_utf8(raw({0xF0, 0x90, 0x80, 0x80})));  // U+10000, smallest 4-byte
  EXPECT_TRUE(valid_mqtt_utf8(raw({0xF0, 0x9F, 0x98, 0x80})));  // U+1F600 emoji
  EXPECT_TRUE(valid_mqtt_utf8(raw({0xF4, 0x8F, 0xBF, 0xBF})));  // U+10FFFF, largest code point
  // Mixed with ASCII on both sides.
  EXPECT_TRUE(valid_mqtt_utf8("caf" + raw({0xC3, 0xA9}) + "/" + raw({0xE2, 0x82, 0xAC}) + "x"));
}

TEST(Utf8, MQTT_1_5_3_2_NullCharacterIsRejected) {
  EXPECT_FALSE(valid_mqtt_utf8(raw({0x00})));
  EXPECT_FALSE(valid_mqtt_utf8(raw({'a', 0x00, 'b'})));
  EXPECT_FALSE(valid_mqtt_utf8(raw({'a', 'b', 0x00})));
  // The "modified UTF-8" overlong form of U+0000 is rejected too.
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xC0, 0x80})));
}

TEST(Utf8, MQTT_1_5_3_1_SurrogateCodePointsAreRejected) {
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xED, 0xA0, 0x80})));  // U+D800
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xED, 0xAD, 0xBF})));  // U+DB7F
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xED, 0xB0, 0x80})));  // U+DC00
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xED, 0xBF, 0xBF})));  // U+DFFF
  // A CESU-8 style surrogate pair for U+1F600.
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80})));
  EXPECT_FALSE(valid_mqtt_utf8("ok" + raw({0xED, 0xA0, 0x80}) + "ok"));
}

TEST(Utf8, MQTT_1_5_3_1_OverlongEncodingsAreRejected) {
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xC0, 0xAF})));              // '/' in 2 bytes
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xC1, 0xBF})));              // U+007F in 2 bytes
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xE0, 0x80, 0xAF})));        // '/' in 3 bytes
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xE0, 0x9F, 0xBF})));        // U+07FF in 3 bytes
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xF0, 0x80, 0x80, 0xAF})));  // '/' in 4 bytes
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xF0, 0x8F, 0xBF, 0xBF})));  // U+FFFF in 4 bytes
}

TEST(Utf8, MQTT_1_5_3_1_TruncatedSequencesAreRejected) {
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xC3})));
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xE2, 0x82})));
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xF0, 0x9F, 0x98})));
  EXPECT_FALSE(valid_mqtt_utf8(raw({'a', 0xF0})));
  // A lead byte followed by something that is not a continuation byte.
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xC3, 'A'})));
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xE2, 0x82, 'A'})));
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xF0, 0x9F, 0x98, 0xC3, 0xA9})));
}

TEST(Utf8, MQTT_1_5_3_1_StrayContinuationAndInvalidLeadBytesAreRejected) {
  EXPECT_FALSE(valid_mqtt_utf8(raw({0x80})));
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xBF})));
  EXPECT_FALSE(valid_mqtt_utf8(raw({'a', 0x80, 'b'})));
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xC3, 0xA9, 0xA9})));  // extra continuation byte
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xF8, 0x88, 0x80, 0x80, 0x80})));  // 5-byte form
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xFC, 0x84, 0x80, 0x80, 0x80, 0x80})));  // 6-byte form
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xFE})));
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xFF})));
}

TEST(Utf8, MQTT_1_5_3_1_CodePointsAboveU10FFFFAreRejected) {
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xF4, 0x90, 0x80, 0x80})));  // U+110000
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xF5, 0x80, 0x80, 0x80})));
  EXPECT_FALSE(valid_mqtt_utf8(raw({0xF7, 0xBF, 0xBF, 0xBF})));  // U+1FFFFF
}

// ------------------------------------------------------------------------------------------------
// valid_topic_name
// ------------------------------------------------------------------------------------------------

TEST(Topic, ValidTopicNames) {
  for (const char* t : {"a", "/", "//", "a/b", "a//b", "/a", "a/", "sport/tennis/player1", "$SYS/x",
                        " ", "a b/c d", "\xC3\xA9t\xC3\xA9"}) {
    EXPECT_TRUE(valid_topic_name(t)) << t;
  }
}

TEST(Topic, MQTT_4_7_3_1_EmptyTopicNameIsInvalid) { EXPECT_FALSE(valid_topic_name("")); }

TEST(Topic, MQTT_3_3_2_2_WildcardsInTopicNameAreInvalid) {
  for (const char* t : {"+", "#", "a/+", "a/#", "+/a", "a/+/b", "a+", "a#b", "sport/tennis#"}) {
    EXPECT_FALSE(valid_topic_name(t)) << t;
  }
}

// ------------------------------------------------------------------------------------------------
// valid_topic_filter
// ------------------------------------------------------------------------------------------------

TEST(Topic, ValidTopicFilters) {
  for (const char* f : {"a", "/", "a/b", "a//b", "#", "+", "a/#", "/#", "a/+", "+/a", "a/+/b", "+/+",
                        "/+", "+/", "+/#", "+/+/#", "//#", "$SYS/#", "$SYS/+/x",
                        "sport/tennis/player1/#", "sport/+/player1"}) {
    EXPECT_TRUE(valid_topic_filter(f)) << f;
  }
}

TEST(Topic, MQTT_4_7_3_1_EmptyTopicFilterIsInvalid) { EXPECT_FALSE(valid_topic_filter("")); }

TEST(Topic, MQTT_4_7_1_2_MultiLevelWildcardMustBeWholeLastLevel) {
  for (const char* f : {"a#", "#a", "a/#/b", "#/a", "sport/tennis#", "a/b#", "##", "a/##", "#/#",
                        "a/#/"}) {
    EXPECT_FALSE(valid_topic_filter(f)) << f;
  }
}

TEST(Topic, MQTT_4_7_1_3_SingleLevelWildcardMustOccupyWholeLevel) {
  for (const char* f : {"a+", "+a", "a/+b", "a/b+", "a/b+/c", "sport+", "++", "+/++", "a/++/b",
                        "+#", "#+"}) {
    EXPECT_FALSE(valid_topic_filter(f)) << f;
  }
}

// ------------------------------------------------------------------------------------------------
// topic_matches
// ------------------------------------------------------------------------------------------------

struct MatchCase {
  const char* filter;
  const char* topic;
  bool matches;
};

TEST(Topic, MQTT_4_7_TopicMatchingTable) {
  const MatchCase cases[] = {
      // Exact matches.
      {"a", "a", true},
      {"a/b", "a/b", true},
      {"a/b", "a/c", false},
      {"a/b", "a", false},
      {"a", "a/b", false},
      {"a/b", "a/b/", false},
      {"a/b/", "a/b", false},
      {"/a", "a", false},
      {"a", "A", false},  // topic names and filters are case sensitive (section 4.7.3)
      // Multi-level wildcard (section 4.7.1.2).
      {"sport/tennis/player1/#", "sport/tennis/player1", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
      {"sport/tennis/player1/#", "sport/tennis/player2", false},
      {"sport/tennis/player1/#", "sport/tennis", false},
      {"sport/#", "sport", true},
      {"sport/#", "sport/", true},
      {"sport/#", "sports", false},
      {"#", "a", true},
      {"#", "a/b/c", true},
      {"#", "/", true},
      {"#", "/finance", true},
      {"a/#", "a/", true},
      {"a/#", "b/a", false},
      // Single-level wildcard (section 4.7.1.3).
      {"+", "a", true},
      {"+", "a/b", false},
      {"+", "/finance", false},
      {"+/+", "/finance", true},
      {"/+", "/finance", true},
      {"/+", "finance", false},
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/tennis/+", "sport/tennis/player2", true},
      {"sport/tennis/+", "sport/tennis/player1/ranking", false},
      {"sport/+", "sport", false},
      {"sport/+", "sport/", true},
      {"+/tennis/#", "sport/tennis/player1", true},
      {"+/tennis/#", "sport/tennis", true},
      {"+/tennis/#", "sport/golf", false},
      {"a/+/c", "a/b/c", true},
      {"a/+/c", "a/b/d", false},
      {"a/+/c", "a/b/x/c", false},
      {"+/+/+", "a/b/c", true},
      {"+/+/+", "a/b", false},
      {"+/#", "a", true},
      // Empty levels.
      {"a//b", "a//b", true},
      {"a//b", "a/b", false},
      {"a/b", "a//b", false},
      {"a/+/b", "a//b", true},
      {"a/+", "a/", true},
      {"+/b", "/b", true},
      {"a/#", "a//b", true},
      {"//", "//", true},
      {"+/+/+", "//", true},
      // Topics starting with '$' [MQTT-4.7.2-1].
      {"#", "$SYS", false},
      {"#", "$SYS/x", false},
      {"+", "$SYS", false},
      {"+/x", "$SYS/x", false},
      {"+/monitor/Clients", "$SYS/monitor/Clients", false},
      {"+/#", "$SYS/x", false},
      {"$SYS/#", "$SYS/x", true},
      {"$SYS/#", "$SYS", true},
      {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
      {"$SYS/x", "$SYS/x", true},
      {"$SYS/+", "$SYS/x/y", false},
      // '$' not in first position is an ordinary character.
      {"#", "a/$SYS", true},
      {"a/+", "a/$x", true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(topic_matches(c.filter, c.topic), c.matches)
        << "filter '" << c.filter << "' topic '" << c.topic << "'";
  }
}

TEST(Topic, TopicLevels) {
  EXPECT_EQ(topic_levels("a"), 1u);
  EXPECT_EQ(topic_levels("a/b/c"), 3u);
  EXPECT_EQ(topic_levels("/"), 2u);
  EXPECT_EQ(topic_levels("/finance"), 2u);
  EXPECT_EQ(topic_levels("a//b"), 3u);
  EXPECT_EQ(topic_levels("a/b/"), 3u);
}

// ------------------------------------------------------------------------------------------------
// Reason codes
// ------------------------------------------------------------------------------------------------

TEST(Core, ReasonCodeValuesMatchSpecTable2_6) {
  using tern::Reason;
  using tern::to_byte;
  EXPECT_EQ(to_byte(Reason::kSuccess), 0x00);
  EXPECT_EQ(to_byte(Reason::kGrantedQos2), 0x02);
  EXPECT_EQ(to_byte(Reason::kDisconnectWithWill), 0x04);
  EXPECT_EQ(to_byte(Reason::kNoMatchingSubscribers), 0x10);
  EXPECT_EQ(to_byte(Reason::kContinueAuthentication), 0x18);
  EXPECT_EQ(to_byte(Reason::kMalformedPacket), 0x81);
  EXPECT_EQ(to_byte(Reason::kProtocolError), 0x82);
  EXPECT_EQ(to_byte(Reason::kUnsupportedProtocolVersion), 0x84);
  EXPECT_EQ(to_byte(Reason::kTopicFilterInvalid), 0x8F);
  EXPECT_EQ(to_byte(Reason::kTopicNameInvalid), 0x90);
  EXPECT_EQ(to_byte(Reason::kPacketTooLarge), 0x95);
  EXPECT_EQ(to_byte(Reason::kWildcardSubscriptionsNotSupported), 0xA2);
}

TEST(Core, ReasonNamesAreDistinctAndKnown) {
  using tern::Reason;
  EXPECT_STREQ(tern::reason_name(Reason::kMalformedPacket), "malformed packet");
  EXPECT_STREQ(tern::reason_name(Reason::kProtocolError), "protocol error");
  EXPECT_STREQ(tern::reason_name(Reason::kPacketTooLarge), "packet too large");
  EXPECT_STREQ(tern::reason_name(static_cast<Reason>(0x7F)), "unknown reason");
  const Reason all[] = {Reason::kSuccess, Reason::kUnspecifiedError, Reason::kMalformedPacket,
                        Reason::kProtocolError, Reason::kTopicNameInvalid, Reason::kPacketTooLarge,
                        Reason::kServerShuttingDown, Reason::kSessionTakenOver};
  for (Reason a : all) {
    EXPECT_STRNE(tern::reason_name(a), "unknown reason");
    for (Reason b : all) {
      if (a != b) {
        EXPECT_STRNE(tern::reason_name(a), tern::reason_name(b));
      }
    }
  }
}

TEST(Core, V5ReasonsMapToV3ConnackReturnCodes) {
  using tern::ConnackV3;
  using tern::Reason;
  using tern::to_v3_connack;
  EXPECT_EQ(to_v3_connack(Reason::kSuccess), ConnackV3::kAccepted);
  EXPECT_EQ(to_v3_connack(Reason::kUnsupportedProtocolVersion), ConnackV3::kUnacceptableProtocolVersion);
  EXPECT_EQ(to_v3_connack(Reason::kClientIdentifierNotValid), ConnackV3::kIdentifierRejected);
  EXPECT_EQ(to_v3_connack(Reason::kBadUserNameOrPassword), ConnackV3::kBadUserNameOrPassword);
  EXPECT_EQ(to_v3_connack(Reason::kNotAuthorized), ConnackV3::kNotAuthorized);
  EXPECT_EQ(to_v3_connack(Reason::kBanned), ConnackV3::kNotAuthorized);
  EXPECT_EQ(to_v3_connack(Reason::kServerUnavailable), ConnackV3::kServerUnavailable);
  EXPECT_EQ(to_v3_connack(Reason::kServerBusy), ConnackV3::kServerUnavailable);
  EXPECT_EQ(static_cast<int>(ConnackV3::kNotAuthorized), 5);
  EXPECT_EQ(static_cast<int>(ConnackV3::kUnacceptableProtocolVersion), 1);
}

}  // namespace
