// Unit tests for tern::tools::format_message and check_format: the output of `tern sub` must be
// byte for byte what Debian 12's mosquitto_sub 2.0.11 prints.
//
// Where the expected bytes come from: every expectation below marked "captured" was printed by the
// real mosquitto_sub 2.0.11 (package mosquitto-clients 2.0.11-1.2+deb12u2), run as
// `mosquitto_sub -V 5 -q 1 -C 1 -t '#' -D connect topic-alias-maximum 100 <options>` against a
// small raw-socket server that sent it exactly the PUBLISH described by the test (properties in
// identifier order), with its clock frozen by libfaketime at 2024-05-06 22:12:00.123456789 UTC
// (FAKETIME='2024-05-06 22:12:00.123456789') and TZ as the test sets it. The tests below were
// generated from those captures; only the message setup is written by hand.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <utility>

#include "tools/format.hpp"

namespace {

using tern::codec::Publish;
using tern::tools::OutputFormat;

// The frozen clock of the captures: 2024-05-06 22:12:00.123456789 UTC.
const std::chrono::system_clock::time_point kWhen{std::chrono::duration_cast<std::chrono::system_clock::duration>(
    std::chrono::seconds(1715033520) + std::chrono::nanoseconds(123456789))};

Publish message(std::string topic, const std::string& payload, std::uint8_t qos, bool retain, std::uint16_t mid) {
  Publish m;
  m.topic = std::move(topic);
  m.payload = payload;
  m.qos = qos;
  m.retain = retain;
  m.packet_id = mid;
  return m;
}

class SubFormat : public ::testing::Test {
 protected:
  void SetUp() override { set_tz("UTC"); }
  void TearDown() override { set_tz("UTC"); }

  static void set_tz(const char* tz) {
    setenv("TZ", tz, 1);
    tzset();
  }

  // format_message appends: check that it keeps what `out` held and adds exactly `expected`.
  static void expect_output(const OutputFormat& f, const Publish& m, const std::string& expected,
                            const std::string& expected_err) {
    std::string out = "kept|";
    const std::string err = tern::tools::format_message(f, m, kWhen, out);
    EXPECT_EQ(out, "kept|" + expected);
    EXPECT_EQ(err, expected_err);
  }
};

// The envelope mosquitto_sub printed around the payload of %J for a 0-QoS message on "a/b" at kWhen.
std::string envelope(std::size_t payloadlen) {
  return "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payloadlen\":" +
         std::to_string(payloadlen) + ",\"payload\":";
}

// Nesting limit of %J, measured with the real mosquitto_sub: 1000 nested arrays or objects are
// printed back unchanged, 1001 are "not valid JSON".
TEST_F(SubFormat, JsonPayloadNestingLimit) {
  for (const bool objects : {false, true}) {
    for (const int depth : {999, 1000, 1001}) {
      std::string payload;
      for (int i = 0; i < depth; ++i) payload += objects ? "{\"a\":" : "[";
      if (objects) payload += "1";
      for (int i = 0; i < depth; ++i) payload += objects ? "}" : "]";
      const Publish m = message("a/b", payload, 0, false, 0);
      std::string out;
      const std::string err = tern::tools::format_message(OutputFormat{.format = "%J"}, m, kWhen, out);
      if (depth <= 1000) {
        EXPECT_EQ(out, envelope(payload.size()) + payload + "}\n") << depth;
        EXPECT_EQ(err, "");
      } else {
        EXPECT_EQ(out, "\n") << depth;
        EXPECT_EQ(err, "Error: Message payload is not valid JSON on topic a/b.\n");
      }
    }
  }
}

// The default and -v paths must not need time: they print the same for any `when`.
TEST_F(SubFormat, DefaultModesIgnoreTime) {
  const std::string payload = "p";
  const Publish m = message("a/b", payload, 0, false, 0);
  std::string a, b;
  tern::tools::format_message(OutputFormat{.verbose = true}, m, kWhen, a);
  tern::tools::format_message(OutputFormat{.verbose = true}, m, std::chrono::system_clock::time_point{}, b);
  EXPECT_EQ(a, "a/b p\n");
  EXPECT_EQ(a, b);
}

// -------------------------------------------------------------------------------------------------
// Default output (payload only), -v, -N and --pretty without -F.
// Expected bytes captured from the real mosquitto_sub 2.0.11 (see the top of this file).

TEST_F(SubFormat, DefaultPrintsPayloadAndNewline) {
  const std::string payload = "hello";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{}, m,
                "hello\n",
                "");
}

TEST_F(SubFormat, DefaultEmptyPayloadPrintsNothing) {
  const std::string payload = "";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{}, m,
                "",
                "");
}

TEST_F(SubFormat, DefaultBinaryPayloadRaw) {
  const std::string payload = std::string("ab\000cd\377", 6);
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{}, m,
                std::string("ab\000cd\377\n", 7),
                "");
}

TEST_F(SubFormat, NoEolPayloadOnly) {
  const std::string payload = "hello";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.eol = false}, m,
                "hello",
                "");
}

TEST_F(SubFormat, VerboseTopicSpacePayload) {
  const std::string payload = "hello";
  Publish m = message("a/b", payload, 1, true, 7);
  expect_output(OutputFormat{.verbose = true}, m,
                "a/b hello\n",
                "");
}

TEST_F(SubFormat, VerboseEmptyPayloadPrintsNull) {
  const std::string payload = "";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.verbose = true}, m,
                "a/b (null)\n",
                "");
}

TEST_F(SubFormat, VerboseNoEolEmptyPayloadPrintsNothing) {
  const std::string payload = "";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.verbose = true, .eol = false}, m,
                "",
                "");
}

TEST_F(SubFormat, VerboseNoEol) {
  const std::string payload = "x";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.verbose = true, .eol = false}, m,
                "a/b x",
                "");
}

TEST_F(SubFormat, PrettyWithoutFormatChangesNothing) {
  const std::string payload = "{\"a\": 1}";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.verbose = true, .pretty = true}, m,
                "a/b {\"a\": 1}\n",
                "");
}

TEST_F(SubFormat, VerboseBinaryNonUtf8) {
  const std::string payload = std::string("\377\376\000\200", 4);
  Publish m = message("t/\303\251", payload, 0, false, 0);
  expect_output(OutputFormat{.verbose = true}, m,
                std::string("t/\303\251 \377\376\000\200\n", 10),
                "");
}

// -------------------------------------------------------------------------------------------------
// -F: every % parameter, \ escapes, 5.0 properties, v3.1.1.
// Expected bytes captured from the real mosquitto_sub 2.0.11 (see the top of this file).

TEST_F(SubFormat, FormatEmptyPayload) {
  const std::string payload = "";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "X%pY"}, m,
                "XY\n",
                "");
}

TEST_F(SubFormat, FormatEmptyString) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = ""}, m,
                "\n",
                "");
}

TEST_F(SubFormat, FormatOverridesVerbose) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.verbose = true, .format = "%t"}, m,
                "a/b\n",
                "");
}

TEST_F(SubFormat, FormatNoEol) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.eol = false, .format = "%t|%p"}, m,
                "a/b|hi",
                "");
}

TEST_F(SubFormat, AllParametersWithProperties) {
  const std::string payload = "hi\377";
  Publish m = message("a/b", payload, 1, true, 4660);
  m.props.payload_format = 1;
  m.props.message_expiry = 100u;
  m.props.content_type = "text/plain";
  m.props.response_topic = "re/sp";
  m.props.correlation_data = "cor";
  m.props.subscription_ids = {42u};
  m.props.topic_alias = 10;
  m.props.user_properties = {{"k", "v"}, {"k2", "v2"}};
  expect_output(OutputFormat{.format = "A=%A|C=%C|D=%D|E=%E|F=%F|l=%l|m=%m|P=%P|q=%q|R=%R|r=%r|S=%S|t=%t|x=%x|"
                    "X=%X|p=%p"},
                m,
                "A=10|C=text/plain|D=cor|E=100|F=1|l=3|m=4660|P=k:v k2:v2|q=1|R=re/sp|r=1|S=42|t=a/b|x=6869ff|X=6"
                "869FF|p=hi\377\n",
                "");
}

TEST_F(SubFormat, AllParametersWithoutProperties) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "A=%A|C=%C|D=%D|E=%E|F=%F|P=%P|R=%R|S=%S|m=%m|q=%q|r=%r"},
                m,
                "A=|C=|D=|E=|F=|P=|R=|S=|m=0|q=0|r=0\n",
                "");
}

TEST_F(SubFormat, Qos2MaxMid) {
  const std::string payload = "z";
  Publish m = message("a/b", payload, 2, false, 65535);
  expect_output(OutputFormat{.format = "%q %m %r"}, m,
                "2 65535 0\n",
                "");
}

TEST_F(SubFormat, V311HasNoProperties) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 1, false, 3);
  expect_output(OutputFormat{.format = "%C|%5C|%5E|%P|%D|%j"}, m,
                "|     |     |||{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":1,\"retai"
                "n\":0,\"payloadlen\":2,\"mid\":3,\"payload\":\"hi\"}\n",
                "");
}

TEST_F(SubFormat, HexOfBinaryPayload) {
  const std::string payload = std::string("\000\001\177\200\376\377", 6);
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%x|%X|%l"}, m,
                "00017f80feff|00017F80FEFF|6\n",
                "");
}

TEST_F(SubFormat, EscapesAndPercent) {
  const std::string payload = "p";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "\\\\|\\0|\\a|\\e|\\n|\\r|\\t|\\v|%%|@@"}, m,
                std::string("\\|\000|\007|\033|\n|\015|\t|\013|%|@\n", 20),
                "");
}

TEST_F(SubFormat, UserPropertiesDuplicateKeys) {
  const std::string payload = "p";
  Publish m = message("a/b", payload, 0, false, 0);
  m.props.user_properties = {{"k", "v"}, {"k", "v3"}, {"q\"k", "v\\w"}, {"", ""}};
  expect_output(OutputFormat{.format = "%P"}, m,
                "k:v k:v3 q\"k:v\\w :\n",
                "");
}

TEST_F(SubFormat, MessageExpiryIsSigned) {
  const std::string payload = "p";
  Publish m = message("a/b", payload, 0, false, 0);
  m.props.message_expiry = 4294967295u;
  expect_output(OutputFormat{.format = "%E|%05E|%-5E|%12E|%j"}, m,
                "-1|-0001|-1   |          -1|{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qo"
                "s\":0,\"retain\":0,\"payloadlen\":1,\"properties\":{\"message-expiry-interval\":4294967295},\"pa"
                "yload\":\"p\"}\n",
                "");
}

TEST_F(SubFormat, CorrelationDataBinary) {
  const std::string payload = "p";
  Publish m = message("a/b", payload, 0, false, 0);
  m.props.correlation_data = std::string("a\000k\377", 4);
  expect_output(OutputFormat{.format = "%D|%8D|%j"}, m,
                std::string("a\000k\377|a\000k\377|{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\""
                "a/b\",\"qos\":0,\"retain\":0,\"payloadlen\":1,\"properties\":{\"correlation-data"
                "\":\"a\"},\"payload\":\"p\"}\n", 153),
                "");
}

// -------------------------------------------------------------------------------------------------
// -F: flags, field widths and precision (mosquitto_sub's own rules for %p, %x, %X, %R).
// Expected bytes captured from the real mosquitto_sub 2.0.11 (see the top of this file).

TEST_F(SubFormat, TopicWidthAndPrecision) {
  const std::string payload = "hello";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%10t|%-10t|%010t|%.2t|%5.2t|%-5.2t|%.t|%5.t|%.9t"}, m,
                "       a/b|a/b       |       a/b|a/|   a/|a/   ||     |a/b\n",
                "");
}

TEST_F(SubFormat, PayloadWidthTruncates) {
  const std::string payload = "hello";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%10p|%-10p|%010p|%3p|%-3p|%03p|%.2p|%5.2p|%-05p"}, m,
                "     hello|hello     |00000hello|hel|hel|hel|hello|hello|hello\n",
                "");
}

TEST_F(SubFormat, PayloadLeftNoWidthPadsByLength) {
  const std::string payload = "hello";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "[%-p][%-0p][%0p]"}, m,
                "[hello     ][hello     ][hello]\n",
                "");
}

TEST_F(SubFormat, HexWidthShowsFewerBytes) {
  const std::string payload = "hello";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%12x|%-12x|%012x|%3x|%4x|%5x|%.2x|%0x"}, m,
                "        6865|6865        |000000006865| 68|6865| 6865|68656c6c6f|68656c6c6f\n",
                "");
}

TEST_F(SubFormat, HexWidthLongPayload) {
  const std::string payload = "helloworld";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%9X|%12X|%30x|%-30x|%1x|%2x"}, m,
                " 68656C6C|  68656C6C6F|                    68656c6c6f|68656c6c6f                    | |68\n",
                "");
}

TEST_F(SubFormat, HexLeftNoWidthPadsByLength) {
  const std::string payload = "helloworld";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "[%-x][%-0X]"}, m,
                "[68656c6c6f776f726c64          ][68656C6C6F776F726C64          ]\n",
                "");
}

TEST_F(SubFormat, WidthsOnEmptyPayload) {
  const std::string payload = "";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "[%5p][%-5p][%-p][%5x][%05x][%-x][%5l][%-05l]"}, m,
                "[     ][     ][][     ][00000][][    0][0    ]\n",
                "");
}

TEST_F(SubFormat, WidthsOnNulPayload) {
  const std::string payload = std::string("ab\000cd", 5);
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%p|%10p|%-10p|%-p|%010p|%2p|%x|%10x|%-x|%l"}, m,
                std::string("ab\000cd|     ab\000cd|ab\000cd     |ab\000cd     |00000ab\000cd|ab|6162006364| "
                "     6162|6162006364     |5\n", 93),
                "");
}

TEST_F(SubFormat, NumberWidths) {
  const std::string payload = "hello";
  Publish m = message("a/b", payload, 1, false, 1);
  expect_output(OutputFormat{.format = "%10l|%-10l|%010l|%-010l|%.2l|%5.3l|%00007l|%-007l|%4m|%04m|%-4m|%3q|%0"
                    "3q|%3r|%-5q|%05r"},
                m,
                "         5|5         |0000000005|5         |5|    5|0000005|5      |   1|0001|1   |1|1|0|1|0\n",
                "");
}

TEST_F(SubFormat, PropertyWidths) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  m.props.payload_format = 1;
  m.props.message_expiry = 77u;
  m.props.content_type = "text/plain";
  m.props.response_topic = "re/sp";
  m.props.subscription_ids = {42u};
  m.props.topic_alias = 261;
  m.props.user_properties = {{"k", "v"}};
  expect_output(OutputFormat{.format = "%12C|%-12C|%012C|%.4C|%8.4C|%-8.4C|%12R|%.2R|%-7.3R|%.0R|%5.0R|%5E|%05"
                    "E|%-5E|%.1E|%4F|%04F|%-4F|%5S|%-5S|%05S|%.1S|%5A|%05A|%-5A|%8P|%.1P"},
                m,
                "  text/plain|text/plain  |  text/plain|text|    text|text    |       re/sp|re|re/    ||     |   "
                "77|00077|77   |77|   1|0001|1   |   42|42   |00042|42|  261|00261|261  |k:v|k:v\n",
                "");
}

TEST_F(SubFormat, AbsentPropertyWidths) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "[%5C][%-5C][%05C][%5E][%05E][%-05E][%5F][%5R][%-5R][%5S][%05S][%5A][%5"
                    "D][%5P]"},
                m,
                "[     ][     ][     ][     ][00000][00000][     ][][][     ][00000][     ][][]\n",
                "");
}

TEST_F(SubFormat, AbsentNumberZeroFlagWinsOverLeft) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "[%-05S][%-05A][%-05F][%-05C][%-05E][%-5E][%-0E]"}, m,
                "[00000][00000][00000][     ][00000][     ][]\n",
                "");
}

TEST_F(SubFormat, PresentNumberLeftFlagWinsOverZero) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  m.props.message_expiry = 77u;
  m.props.subscription_ids = {42u};
  expect_output(OutputFormat{.format = "[%-05E][%-05S][%-0E]"}, m,
                "[77   ][42   ][77]\n",
                "");
}

TEST_F(SubFormat, IsoTimeWidth) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%30I|%-30I|%.10I|%30.10I|%030I"}, m,
                "      2024-05-06T22:12:00+0000|2024-05-06T22:12:00+0000      |2024-05-06|                    202"
                "4-05-06|      2024-05-06T22:12:00+0000\n",
                "");
}

TEST_F(SubFormat, FlagsIgnored) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  m.props.correlation_data = "xyz";
  m.props.user_properties = {{"k", "v"}};
  expect_output(OutputFormat{.format = "%5%|%-5%|%.1%|%5U|%-5q|%05r|%8D|%.3P"}, m,
                "%|%|%|1715033520.123456789|0|0|xyz|k:v\n",
                "");
}

// -------------------------------------------------------------------------------------------------
// -F: %I, %U, @N and @-strftime sequences, in several time zones.
// Expected bytes captured from the real mosquitto_sub 2.0.11 (see the top of this file).

TEST_F(SubFormat, TimeParametersUtc) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%I|%U|@N"}, m,
                "2024-05-06T22:12:00+0000|1715033520.123456789|123456789\n",
                "");
}

TEST_F(SubFormat, StrftimeSequences) {
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "@Y-@m-@dT@H:@M:@S|@z|@Z|@s|@c|@@|@%|@q|@5Y|@E|@-Y|@e|@j|@p|@a@b"},
                m,
                "2024-05-06T22:12:00|+0000|UTC|1715033520|Mon May  6 22:12:00 2024|@|%|%q|   %5Y|%E|%-Y| 6|127|PM"
                "|MonMay\n",
                "");
}

TEST_F(SubFormat, TimeZoneNewfoundland) {
  set_tz("America/St_Johns");
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%I|@z|@Z|@H|%j"}, m,
                "2024-05-06T19:42:00-0230|-0230|NDT|19|{\"tst\":\"2024-05-06T19:42:00.123456Z-0230\",\"topic\":\""
                "a/b\",\"qos\":0,\"retain\":0,\"payloadlen\":2,\"payload\":\"hi\"}\n",
                "");
}

TEST_F(SubFormat, TimeZoneKolkata) {
  set_tz("Asia/Kolkata");
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%I|%U|%j"}, m,
                "2024-05-07T03:42:00+0530|1715033520.123456789|{\"tst\":\"2024-05-07T03:42:00.123456Z+0530\",\"to"
                "pic\":\"a/b\",\"qos\":0,\"retain\":0,\"payloadlen\":2,\"payload\":\"hi\"}\n",
                "");
}

TEST_F(SubFormat, TimeZoneBerlinSummer) {
  set_tz("Europe/Berlin");
  const std::string payload = "hi";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%I|@Z|%j"}, m,
                "2024-05-07T00:12:00+0200|CEST|{\"tst\":\"2024-05-07T00:12:00.123456Z+0200\",\"topic\":\"a/b\",\""
                "qos\":0,\"retain\":0,\"payloadlen\":2,\"payload\":\"hi\"}\n",
                "");
}

// -------------------------------------------------------------------------------------------------
// %j: the JSON envelope, escaping, properties, --pretty.
// Expected bytes captured from the real mosquitto_sub 2.0.11 (see the top of this file).

TEST_F(SubFormat, JsonSimple) {
  const std::string payload = "hello world";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%j"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":11,\"payload\":\"hello world\"}\n",
                "");
}

TEST_F(SubFormat, JsonQos1RetainedHasMid) {
  const std::string payload = "keep";
  Publish m = message("a/b", payload, 1, true, 513);
  expect_output(OutputFormat{.format = "%j"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":1,\"retain\":1,\"payload"
                "len\":4,\"mid\":513,\"payload\":\"keep\"}\n",
                "");
}

TEST_F(SubFormat, JsonEmptyPayloadIsNull) {
  const std::string payload = "";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%j|%J"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":0,\"payload\":null}|{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos"
                "\":0,\"retain\":0,\"payloadlen\":0,\"payload\":null}\n",
                "");
}

TEST_F(SubFormat, JsonBinaryPayloadStopsAtNul) {
  const std::string payload = std::string("hi\377\000\001rest", 9);
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%j"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":9,\"payload\":\"hi\377\"}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadStartingWithNul) {
  const std::string payload = std::string("\000abc", 4);
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%j"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":4,\"payload\":\"\"}\n",
                "");
}

TEST_F(SubFormat, JsonEscapes) {
  const std::string payload = "a\"b\\c/d\n\te\001\037\177\303\251\377\010\014\015";
  Publish m = message("a/\"b\\", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%j"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/\\\"b\\\\\",\"qos\":0,\"retain\":0,"
                "\"payloadlen\":19,\"payload\":\"a\\\"b\\\\c/d\\n\\te\\u0001\\u001f\177\303\251\377\\b\\f\\r\"}\n",
                "");
}

TEST_F(SubFormat, JsonAllProperties) {
  const std::string payload = "x";
  Publish m = message("a/b", payload, 1, false, 9);
  m.props.payload_format = 1;
  m.props.message_expiry = 100u;
  m.props.content_type = "text/plain";
  m.props.response_topic = "re/sp";
  m.props.correlation_data = "cor";
  m.props.subscription_ids = {42u};
  m.props.topic_alias = 10;
  m.props.user_properties = {{"k", "v"}, {"q\"k", "v\\w"}, {"k", "v3"}};
  expect_output(OutputFormat{.format = "%j"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":1,\"retain\":0,\"payload"
                "len\":1,\"mid\":9,\"properties\":{\"payload-format-indicator\":1,\"message-expiry-interval\":100"
                ",\"content-type\":\"text/plain\",\"response-topic\":\"re/sp\",\"correlation-data\":\"cor\",\"sub"
                "scription-identifier\":42,\"topic-alias\":3,\"user-properties\":{\"k\":\"v\",\"q\\\"k\":\"v\\\\w"
                "\",\"k\":\"v3\"}},\"payload\":\"x\"}\n",
                "");
}

TEST_F(SubFormat, JsonPrettyAllProperties) {
  const std::string payload = "x";
  Publish m = message("a/b", payload, 2, true, 9);
  m.props.payload_format = 1;
  m.props.message_expiry = 100u;
  m.props.content_type = "text/plain";
  m.props.response_topic = "re/sp";
  m.props.correlation_data = "cor";
  m.props.subscription_ids = {42u};
  m.props.topic_alias = 10;
  m.props.user_properties = {{"k", "v"}, {"k2", "v2"}};
  expect_output(OutputFormat{.pretty = true, .format = "%j"}, m,
                "{\n\t\"tst\":\t\"2024-05-06T22:12:00.123456Z+0000\",\n"
                "\t\"topic\":\t\"a/b\",\n"
                "\t\"qos\":\t2,\n\t\"retain\":\t1,\n"
                "\t\"payloadlen\":\t1,\n"
                "\t\"mid\":\t9,\n\t\"properties\":\t{\n"
                "\t\t\"payload-format-indicator\":\t1,\n"
                "\t\t\"message-expiry-interval\":\t100,\n"
                "\t\t\"content-type\":\t\"text/plain\",\n"
                "\t\t\"response-topic\":\t\"re/sp\",\n"
                "\t\t\"correlation-data\":\t\"cor\",\n"
                "\t\t\"subscription-identifier\":\t42,\n"
                "\t\t\"topic-alias\":\t3,\n"
                "\t\t\"user-properties\":\t{\n"
                "\t\t\t\"k\":\t\"v\",\n"
                "\t\t\t\"k2\":\t\"v2\"\n"
                "\t\t}\n\t},\n\t\"payload\":\t\"x\"\n"
                "}\n",
                "");
}

TEST_F(SubFormat, JsonTopicAliasPrintsZero) {
  const std::string payload = "x";
  Publish m = message("a/b", payload, 0, false, 0);
  m.props.topic_alias = 261;
  expect_output(OutputFormat{.format = "%A|%j"}, m,
                "261|{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"pay"
                "loadlen\":1,\"properties\":{\"topic-alias\":0},\"payload\":\"x\"}\n",
                "");
}

TEST_F(SubFormat, JsonTopicAliasPrintsCorrelationDataLength) {
  const std::string payload = "x";
  Publish m = message("a/b", payload, 0, false, 0);
  m.props.correlation_data = std::string("a\000cdefg", 7);
  m.props.topic_alias = 261;
  expect_output(OutputFormat{.format = "%A|%j"}, m,
                "261|{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"pay"
                "loadlen\":1,\"properties\":{\"correlation-data\":\"a\",\"topic-alias\":7},\"payload\":\"x\"}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadFormatTwoAndContentType) {
  const std::string payload = "";
  Publish m = message("a/b", payload, 0, false, 0);
  m.props.payload_format = 2;
  m.props.content_type = "c\"t";
  expect_output(OutputFormat{.format = "%F|%j"}, m,
                "2|{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"paylo"
                "adlen\":0,\"properties\":{\"payload-format-indicator\":2,\"content-type\":\"c\\\"t\"},\"payload"
                "\":null}\n",
                "");
}

// -------------------------------------------------------------------------------------------------
// %J: the payload re-printed as JSON, and the stderr line when it is not JSON.
// Expected bytes captured from the real mosquitto_sub 2.0.11 (see the top of this file).

TEST_F(SubFormat, JsonPayloadObjectReprinted) {
  const std::string payload = "{\"temperature\":27.0,\"humidity\":57}";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":34,\"payload\":{\"temperature\":27,\"humidity\":57}}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadNumbers) {
  const std::string payload = "[1, 2.5, -0, 1e10, 1e20, 0.1, 1.5e-7, 123456789012345678, 3.1415926535"
                              "89793238, 2147483648, -2147483649, 1.0000000000000002, 100000000000000"
                              "000000000, 4.35, 5e-324, 1e400, -1e400, 1e-400, -1e-400, 01, 1., -.5, "
                              "1.e5, 1E+2, 0e0]";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":226,\"payload\":[1,2.5,-0,10000000000,1e+20,0.1,1.5e-07,1.2345678901234568e+17,3.141592653"
                "5897931,2147483648,-2147483649,1,1e+23,4.35,4.94065645841247e-324,null,null,0,-0,1,1,-0.5,100000"
                ",100,0]}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadScalars) {
  const std::string payload = "\"str\"";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J|"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":5,\"payload\":\"str\"}|\n",
                "");
}

TEST_F(SubFormat, JsonPayloadNumberTopLevel) {
  const std::string payload = "42";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":2,\"payload\":42}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadLiterals) {
  const std::string payload = " [true , false,null ] ";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":22,\"payload\":[true,false,null]}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadControlBytesAreSpace) {
  const std::string payload = "\001 {\"a\"\001:\0011,\"b\" : [ ] , \"c\":{}} \037";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":32,\"payload\":{\"a\":1,\"b\":[],\"c\":{}}}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadInvalid) {
  const std::string payload = "nope";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "A%tB%JC%pD"}, m,
                "Aa/bBCnopeD\n",
                "Error: Message payload is not valid JSON on topic a/b.\n");
}

TEST_F(SubFormat, JsonPayloadInvalidTwice) {
  const std::string payload = "nope";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.eol = false, .format = "%J|%J"}, m,
                "|",
                "Error: Message payload is not valid JSON on topic a/b.\n"
                "Error: Message payload is not valid JSON on topic a/b.\n");
}

TEST_F(SubFormat, JsonPayloadTrailingGarbage) {
  const std::string payload = "{\"a\":1} trailing";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "\n",
                "Error: Message payload is not valid JSON on topic a/b.\n");
}

TEST_F(SubFormat, JsonPayloadNulIsInvalid) {
  const std::string payload = std::string("42\000", 3);
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "\n",
                "Error: Message payload is not valid JSON on topic a/b.\n");
}

TEST_F(SubFormat, JsonPayloadNulInStringIsInvalid) {
  const std::string payload = std::string("\"a\000b\"", 5);
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "\n",
                "Error: Message payload is not valid JSON on topic a/b.\n");
}

TEST_F(SubFormat, JsonPayloadUnicodeEscapes) {
  const std::string payload = "[\"\\u00e9\\u20ac\", \"\\ud83d\\ude00\", \"A\\u0000B\", \"a\\u00zzb\","
                              " \"\\/\\b\\f\\n\\r\\t\\\"\\\\\", \"\\uFFFF\"]";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":86,\"payload\":[\"\303\251\342\202\254\",\"\360\237\230\200\",\"A\",\"a\",\"/\\b\\f\\n\\r"
                "\\t\\\"\\\\\",\"\357\277\277\"]}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadLoneSurrogateInvalid) {
  const std::string payload = "{\"a\":\"\\ud800\"}";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "\n",
                "Error: Message payload is not valid JSON on topic a/b.\n");
}

TEST_F(SubFormat, JsonPayloadShortUnicodeEscapeInvalid) {
  const std::string payload = "\"\\u12\"x\"";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "\n",
                "Error: Message payload is not valid JSON on topic a/b.\n");
}

TEST_F(SubFormat, JsonPayloadBadHexEscapeSwallowsBackslash) {
  const std::string payload = "[\"\\u00\177\\\\\"]";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":11,\"payload\":[\"\"]}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadBadHexEscapeThenValidEscape) {
  const std::string payload = "\"a\\u00\\\\x\"";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":10,\"payload\":\"a\"}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadRawControlAndNonUtf8InString) {
  const std::string payload = "[\"a\001b\tc\", \"\377\376\", \"\303\251\"]";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":21,\"payload\":[\"a\\u0001b\\tc\",\"\377\376\",\"\303\251\"]}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadDuplicateKeys) {
  const std::string payload = "{\"a\":1,\"a\":2,\"\":3}";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payload"
                "len\":18,\"payload\":{\"a\":1,\"a\":2,\"\":3}}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadPrettyNested) {
  const std::string payload = "{\"a\":[1,2,{\"b\":[]},{}],\"c\":{\"d\":{\"e\":[[1],[]]}},\"s\":\"x\\t"
                              "y\",\"n\":null,\"t\":true,\"f\":1.5, \"em\":{}}";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.pretty = true, .format = "%J"}, m,
                "{\n\t\"tst\":\t\"2024-05-06T22:12:00.123456Z+0000\",\n"
                "\t\"topic\":\t\"a/b\",\n"
                "\t\"qos\":\t0,\n\t\"retain\":\t0,\n"
                "\t\"payloadlen\":\t94,\n"
                "\t\"payload\":\t{\n\t\t\"a\":\t[1, 2, {\n"
                "\t\t\t\t\"b\":\t[]\n\t\t\t}, {\n"
                "\t\t\t}],\n\t\t\"c\":\t{\n"
                "\t\t\t\"d\":\t{\n\t\t\t\t\"e\":\t[[1], []]\n"
                "\t\t\t}\n\t\t},\n\t\t\"s\":\t\"x\\ty\",\n"
                "\t\t\"n\":\tnull,\n\t\t\"t\":\ttrue,\n"
                "\t\t\"f\":\t1.5,\n\t\t\"em\":\t{\n"
                "\t\t}\n\t}\n}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadPrettyEmptyContainers) {
  const std::string payload = "[{}, [], [[]], [{}], [1,[2,3]]]";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.pretty = true, .format = "%J"}, m,
                "{\n\t\"tst\":\t\"2024-05-06T22:12:00.123456Z+0000\",\n"
                "\t\"topic\":\t\"a/b\",\n"
                "\t\"qos\":\t0,\n\t\"retain\":\t0,\n"
                "\t\"payloadlen\":\t31,\n"
                "\t\"payload\":\t[{\n\t\t}, [], [[]], [{\n"
                "\t\t\t}], [1, [2, 3]]]\n"
                "}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadPrettyScalarAndEmptyObject) {
  const std::string payload = "{}";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.pretty = true, .format = "%J|%j"}, m,
                "{\n\t\"tst\":\t\"2024-05-06T22:12:00.123456Z+0000\",\n"
                "\t\"topic\":\t\"a/b\",\n"
                "\t\"qos\":\t0,\n\t\"retain\":\t0,\n"
                "\t\"payloadlen\":\t2,\n"
                "\t\"payload\":\t{\n\t}\n"
                "}|{\n\t\"tst\":\t\"2024-05-06T22:12:00.123456Z+0000\",\n"
                "\t\"topic\":\t\"a/b\",\n"
                "\t\"qos\":\t0,\n\t\"retain\":\t0,\n"
                "\t\"payloadlen\":\t2,\n"
                "\t\"payload\":\t\"{}\"\n"
                "}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadWithPropertiesRetained) {
  const std::string payload = "[1]";
  Publish m = message("a/b", payload, 1, true, 2);
  m.props.content_type = "application/json";
  m.props.user_properties = {{"k", "v"}};
  expect_output(OutputFormat{.format = "%J"}, m,
                "{\"tst\":\"2024-05-06T22:12:00.123456Z+0000\",\"topic\":\"a/b\",\"qos\":1,\"retain\":1,\"payload"
                "len\":3,\"mid\":2,\"properties\":{\"content-type\":\"application/json\",\"user-properties\":{\"k"
                "\":\"v\"}},\"payload\":[1]}\n",
                "");
}

TEST_F(SubFormat, JsonPayloadInvalidNumbers) {
  const std::string payload = "[-]";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "\n",
                "Error: Message payload is not valid JSON on topic a/b.\n");
}

TEST_F(SubFormat, JsonPayloadBadLiteral) {
  const std::string payload = "tru";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "\n",
                "Error: Message payload is not valid JSON on topic a/b.\n");
}

TEST_F(SubFormat, JsonPayloadTrailingComma) {
  const std::string payload = "[1,]";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "\n",
                "Error: Message payload is not valid JSON on topic a/b.\n");
}

TEST_F(SubFormat, JsonPayloadSpaceOnly) {
  const std::string payload = " ";
  Publish m = message("a/b", payload, 0, false, 0);
  expect_output(OutputFormat{.format = "%J"}, m,
                "\n",
                "Error: Message payload is not valid JSON on topic a/b.\n");
}

// check_format: the first line mosquitto_sub 2.0.11 prints for a bad -F (captured); "" when it
// accepted the format (it then tried to connect).
TEST_F(SubFormat, CheckFormatMatchesMosquittoSub) {
  const std::pair<std::string, std::string> cases[] = {
      {"%z", "Error: Invalid format specifier 'z'."},
      {"a%", "Error: Incomplete format specifier."},
      {"%", "Error: Incomplete format specifier."},
      {"@", "Error: Incomplete format specifier."},
      {"a@", "Error: Incomplete format specifier."},
      {"\\", "Error: Incomplete escape specifier."},
      {"\\z", "Error: Invalid escape specifier 'z'."},
      {"\\5n", "Error: Invalid escape specifier '5'."},
      {"%--x", "Error: Invalid format specifier '-'."},
      {"%0-8x", "Error: Invalid format specifier '-'."},
      {"%-0-8x", "Error: Invalid format specifier '-'."},
      {"%5", "Error: Incomplete format specifier."},
      {"%5.", "Error: Incomplete format specifier."},
      {"%.", "Error: Incomplete format specifier."},
      {"%.5", "Error: Incomplete format specifier."},
      {"%-", "Error: Incomplete format specifier."},
      {"%0", "Error: Incomplete format specifier."},
      {"%1.2.3t", "Error: Invalid format specifier '.'."},
      {"%.-3t", "Error: Invalid format specifier '-'."},
      {"%+5t", "Error: Invalid format specifier '+'."},
      {"% 5t", "Error: Invalid format specifier ' '."},
      {"%#x", "Error: Invalid format specifier '#'."},
      {"%5.3.t", "Error: Invalid format specifier '.'."},
      {"%5z", "Error: Invalid format specifier 'z'."},
      {"%%%", "Error: Incomplete format specifier."},
      {"ok%-08x%.t@q%5%%-10.10t%08x%5l@@@N\\e", ""},
  };
  for (const auto& [format, error] : cases) EXPECT_EQ(tern::tools::check_format(format), error) << format;
}

}  // namespace
