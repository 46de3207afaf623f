// Unit tests of the tern pub / sub / rr option parser (tools/options.hpp).
#include "tools/options.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace {

using tern::codec::Version;
using tern::tools::ClientOptions;
using tern::tools::parse_options;
using tern::tools::ParseOutcome;
using tern::tools::PayloadSource;
using tern::tools::Tool;
using tern::tools::usage;

using Env = std::map<std::string, std::string>;

struct Parsed {
  ParseOutcome r;
  ClientOptions o;
};

// Parses without an option file unless `env` names one.
Parsed parse(Tool tool, const std::vector<std::string>& args, const Env& env = {}) {
  Parsed p;
  p.r = parse_options(tool, args, env, p.o);
  return p;
}

// The stderr text of a failed parse (and checks that it failed with exit code 1).
std::string error_of(Tool tool, const std::vector<std::string>& args, const Env& env = {}) {
  const Parsed p = parse(tool, args, env);
  EXPECT_FALSE(p.r.proceed);
  EXPECT_EQ(p.r.exit_code, 1);
  return p.r.err;
}

std::string hint(Tool tool) {
  return std::string("\nUse '") + tern::tools::tool_name(tool) + " --help' to see usage.\n";
}

// A fresh HOME with an option file for `tool`, removed at the end of the test.
struct TempHome {
  std::filesystem::path path;
  TempHome() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("tern-options-test-" + std::to_string(rd()));
    std::filesystem::create_directories(path / ".config");
  }
  ~TempHome() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / ".config" / name, std::ios::binary) << text;
  }
  Env env() const { return {{"HOME", path.string()}}; }
};

}  // namespace

// --- Defaults and basic options ------------------------------------------------------------------

TEST(ToolOptions, PubDefaults) {
  const Parsed p = parse(Tool::kPub, {"-t", "a", "-m", "b"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.r.exit_code, 0);
  EXPECT_EQ(p.o.tool, Tool::kPub);
  EXPECT_EQ(p.o.host, "localhost");
  EXPECT_FALSE(p.o.port);
  EXPECT_EQ(p.o.effective_port(), 1883);
  EXPECT_EQ(p.o.keepalive, 60);
  EXPECT_EQ(p.o.qos, 0);
  EXPECT_EQ(p.o.version, Version::kV311);
  EXPECT_TRUE(p.o.clean_session);
  EXPECT_EQ(p.o.effective_session_expiry(), 0u);
  EXPECT_EQ(p.o.max_inflight, 20);
  EXPECT_EQ(p.o.topics, std::vector<std::string>{"a"});
  EXPECT_EQ(p.o.payload_source, PayloadSource::kMessage);
  EXPECT_EQ(p.o.message, "b");
  EXPECT_EQ(p.o.repeat_count, 1);
  EXPECT_FALSE(p.o.client_id);
  EXPECT_TRUE(p.o.connect_props.empty());
  EXPECT_TRUE(p.o.unsupported.empty());
}

TEST(ToolOptions, RrDefaultsToMqtt5) {
  const Parsed p = parse(Tool::kRr, {"-t", "req", "-e", "resp", "-m", "x"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.version, Version::kV5);
  EXPECT_EQ(p.o.response_topic, "resp");
  EXPECT_EQ(p.o.topics, std::vector<std::string>{"req"});
}

TEST(ToolOptions, ConnectionOptions) {
  const Parsed p = parse(Tool::kSub, {"-h", "broker",   "--port",    "1884",   "-u",     "user", "--pw", "pass",
                                      "-A", "10.0.0.1", "--nodelay", "--unix", "/tmp/s", "-k",   "30",   "-i",
                                      "me", "-d",       "--quiet",   "-t",     "x",      "-M",   "7"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.host, "broker");
  EXPECT_EQ(p.o.effective_port(), 1884);
  EXPECT_EQ(p.o.username, "user");
  EXPECT_EQ(p.o.password, "pass");
  EXPECT_EQ(p.o.bind_address, "10.0.0.1");
  EXPECT_TRUE(p.o.nodelay);
  EXPECT_EQ(p.o.unix_socket, "/tmp/s");
  EXPECT_EQ(p.o.keepalive, 30);
  EXPECT_EQ(p.o.client_id, "me");
  EXPECT_TRUE(p.o.debug);
  EXPECT_TRUE(p.o.quiet);
  EXPECT_EQ(p.o.max_inflight, 7);
}

TEST(ToolOptions, LaterValuesReplaceEarlierOnes) {
  const Parsed p = parse(Tool::kPub, {"-t", "a",  "-t", "b",  "-m", "x",  "-u", "u1", "-u",  "u2", "-q", "1",  "-q",
                                      "2",  "-k", "10", "-k", "20", "-V", "5",  "-V", "311", "-h", "h1", "-h", "h2"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.topics, std::vector<std::string>{"b"});
  EXPECT_EQ(p.o.username, "u2");
  EXPECT_EQ(p.o.qos, 2);
  EXPECT_EQ(p.o.keepalive, 20);
  EXPECT_EQ(p.o.version, Version::kV311);
  EXPECT_EQ(p.o.host, "h2");
}

TEST(ToolOptions, DefaultPortFollowsTls) {
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "--cafile", "ca.pem"}).o.effective_port(), 8883);
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "--capath", "/etc/ssl"}).o.effective_port(), 8883);
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "--psk", "00", "--psk-identity", "i"}).o.effective_port(), 8883);
  // Measured: --tls-use-os-certs alone keeps 1883.
  const Parsed os = parse(Tool::kPub, {"-t", "a", "-n", "--tls-use-os-certs"});
  EXPECT_EQ(os.o.effective_port(), 1883);
  EXPECT_TRUE(os.o.tls());
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "--cafile", "ca.pem", "-p", "1234"}).o.effective_port(), 1234);
}

TEST(ToolOptions, NumbersConvertLikeAtoi) {
  // "abc" is 0 for -q and --will-qos; "1x" is 1; trailing text is ignored.
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "-q", "abc"}).o.qos, 0);
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "-q", "1x"}).o.qos, 1);
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "-p", "12abc"}).o.port, 12);
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "-p", "0"}).o.port, 0);  // accepted, as by Mosquitto
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "-k", "65535"}).o.keepalive, 65535);
}

TEST(ToolOptions, PubPublishOptions) {
  const Parsed p = parse(Tool::kPub, {"-t", "a", "-m", "x", "-r", "--repeat", "3", "--repeat-delay", "0.5", "-q", "1"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_TRUE(p.o.retain);
  EXPECT_EQ(p.o.repeat_count, 3);
  EXPECT_DOUBLE_EQ(p.o.repeat_delay, 0.5);
  EXPECT_EQ(p.o.qos, 1);
}

TEST(ToolOptions, PayloadSources) {
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-m", "hi"}).o.payload_source, PayloadSource::kMessage);
  const Parsed f = parse(Tool::kPub, {"-t", "a", "--file", "/tmp/data"});
  EXPECT_EQ(f.o.payload_source, PayloadSource::kFile);
  EXPECT_EQ(f.o.file, "/tmp/data");
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-l"}).o.payload_source, PayloadSource::kStdinLine);
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "--stdin-line"}).o.payload_source, PayloadSource::kStdinLine);
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-s"}).o.payload_source, PayloadSource::kStdinFile);
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "--null-message"}).o.payload_source, PayloadSource::kNull);
  EXPECT_EQ(parse(Tool::kRr, {"-t", "a", "-e", "r", "-n"}).o.payload_source, PayloadSource::kNull);
  EXPECT_EQ(parse(Tool::kRr, {"-t", "a", "-e", "r", "-s"}).o.payload_source, PayloadSource::kStdinFile);
  // -l is pub only.
  EXPECT_EQ(error_of(Tool::kRr, {"-l"}), "Error: Unknown option '-l'.\n" + hint(Tool::kRr));
}

TEST(ToolOptions, OnlyOneMessageSource) {
  const std::string e = "Error: Only one type of message can be sent at once.\n\n" + hint(Tool::kPub);
  EXPECT_EQ(error_of(Tool::kPub, {"-m", "a", "-f", "b"}), e);
  EXPECT_EQ(error_of(Tool::kPub, {"-n", "-n"}), e);
  EXPECT_EQ(error_of(Tool::kPub, {"-l", "-s"}), e);
}

TEST(ToolOptions, PubWithoutTopicOrMessagePrintsUsage) {
  const Parsed p = parse(Tool::kPub, {"-t", "a"});
  EXPECT_FALSE(p.r.proceed);
  EXPECT_EQ(p.r.exit_code, 1);
  EXPECT_EQ(p.r.err, "Error: Both topic and message must be supplied.\n");
  EXPECT_EQ(p.r.out, usage(Tool::kPub));
  // --quiet does not hide it.
  EXPECT_EQ(parse(Tool::kPub, {"--quiet", "-m", "x"}).r.err, "Error: Both topic and message must be supplied.\n");
}

// --- Topics ------------------------------------------------------------------------------------

TEST(ToolOptions, SubTopicsFiltersAndUnsubscribes) {
  const Parsed p = parse(Tool::kSub, {"-t", "a/#", "--topic", "+/b", "-T", "a/x", "--filter-out", "a/+", "-U", "old/#",
                                      "--unsubscribe", "older", "-t", ""});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.topics, (std::vector<std::string>{"a/#", "+/b", ""}));
  EXPECT_EQ(p.o.filter_out, (std::vector<std::string>{"a/x", "a/+"}));
  EXPECT_EQ(p.o.unsubscribe, (std::vector<std::string>{"old/#", "older"}));
}

TEST(ToolOptions, TopicValidation) {
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a/#/b"}),
            "Error: Invalid subscription topic 'a/#/b', are all '+' and '#' wildcards correct?\n" + hint(Tool::kSub));
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "#/"}),
            "Error: Invalid subscription topic '#/', are all '+' and '#' wildcards correct?\n" + hint(Tool::kSub));
  EXPECT_TRUE(parse(Tool::kSub, {"-t", "+", "-t", "#", "-t", "+/#", "-t", "/#", "-t", "a/+/b"}).r.proceed);
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a+b"}),
            "Error: Invalid publish topic 'a+b', does it contain '+' or '#'?\n" + hint(Tool::kPub));
  EXPECT_EQ(error_of(Tool::kRr, {"-e", "r+"}),
            "Error: Invalid response topic 'r+', does it contain '+' or '#'?\n" + hint(Tool::kRr));
  // $-topics and empty topics pass the option check (as with Mosquitto).
  EXPECT_TRUE(parse(Tool::kPub, {"-t", "$SYS/x", "-n"}).r.proceed);
  EXPECT_TRUE(parse(Tool::kPub, {"-t", "", "-n"}).r.proceed);
}

TEST(ToolOptions, TopicUtf8IsCheckedLikeMosquitto) {
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "\xff"}), "Error: Malformed UTF-8 in -t argument.\n\n" + hint(Tool::kPub));
  // Control characters are refused too (Mosquitto's validator), printable non-ASCII is fine.
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a\x01"}), "Error: Malformed UTF-8 in -t argument.\n\n" + hint(Tool::kSub));
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-T", "\xc0\x80"}),
            "Error: Malformed UTF-8 in -T argument.\n\n" + hint(Tool::kSub));
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-U", "\xed\xa0\x80"}),
            "Error: Malformed UTF-8 in -U argument.\n\n" + hint(Tool::kSub));
  EXPECT_EQ(error_of(Tool::kPub, {"--will-topic", "\xef\xbf\xbf"}),
            "Error: Malformed UTF-8 in --will-topic argument.\n\n" + hint(Tool::kPub));
  EXPECT_TRUE(parse(Tool::kPub, {"-t", "caf\xc3\xa9/\xf0\x9f\x98\x80", "-n"}).r.proceed);
}

// --- sub and rr output options -------------------------------------------------------------------

TEST(ToolOptions, SubOutputOptions) {
  const Parsed p =
      parse(Tool::kSub, {"-t", "a", "-C", "5", "-W", "10", "-E", "-N", "-R", "-v", "--pretty", "--remove-retained",
                         "--retain-as-published", "--random-filter", "12.5", "-F", "%t %p", "-q", "2"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.msg_count, 5);
  EXPECT_EQ(p.o.timeout, 10);
  EXPECT_TRUE(p.o.exit_after_subscribe);
  EXPECT_TRUE(p.o.no_eol);
  EXPECT_TRUE(p.o.no_retained);
  EXPECT_TRUE(p.o.verbose);
  EXPECT_TRUE(p.o.pretty);
  EXPECT_TRUE(p.o.remove_retained);
  EXPECT_TRUE(p.o.retain_as_published);
  ASSERT_TRUE(p.o.random_filter.has_value());
  EXPECT_DOUBLE_EQ(*p.o.random_filter, 12.5);
  EXPECT_EQ(p.o.format, "%t %p");
  EXPECT_EQ(p.o.qos, 2);
  EXPECT_TRUE(parse(Tool::kSub, {"-t", "a", "--retained-only"}).o.retained_only);
}

TEST(ToolOptions, RandomFilterRangeAsMeasured) {
  // Mosquitto keeps tenths of a percent in an int: 0.1 up to 1000.0x are accepted.
  EXPECT_TRUE(parse(Tool::kSub, {"-t", "a", "--random-filter", "0.1"}).r.proceed);
  EXPECT_TRUE(parse(Tool::kSub, {"-t", "a", "--random-filter", "1000.01"}).r.proceed);
  const std::string e = "Error: --random-filter chance must be between 0.1-100.0\n\n" + hint(Tool::kSub);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "--random-filter", "1000.1"}), e);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "--random-filter", "0.0999"}), e);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "--random-filter", "abc"}), e);
}

TEST(ToolOptions, FormatStringValidation) {
  for (const char* good : {"%-10.5t", "%0x", "%.t", "%00t", "%-0t", "@Z", "@@", "\\\\z", "%%", "\\0\\a\\e\\n\\r\\t\\v",
                           "%A%C%D%E%F%I%J%P%R%S%U%X%j%l%m%p%q%r%t%x", ""}) {
    EXPECT_TRUE(parse(Tool::kSub, {"-t", "a", "-F", good}).r.proceed) << good;
  }
  const std::string h = hint(Tool::kRr);
  EXPECT_EQ(error_of(Tool::kRr, {"-F", "%Z"}), "Error: Invalid format specifier 'Z'.\n" + h);
  EXPECT_EQ(error_of(Tool::kRr, {"-F", "%0-5t"}), "Error: Invalid format specifier '-'.\n" + h);
  EXPECT_EQ(error_of(Tool::kRr, {"-F", "%5.5.5t"}), "Error: Invalid format specifier '.'.\n" + h);
  EXPECT_EQ(error_of(Tool::kRr, {"-F", "abc%"}), "Error: Incomplete format specifier.\n" + h);
  EXPECT_EQ(error_of(Tool::kRr, {"-F", "%5."}), "Error: Incomplete format specifier.\n" + h);
  EXPECT_EQ(error_of(Tool::kRr, {"-F", "@"}), "Error: Incomplete format specifier.\n" + h);
  EXPECT_EQ(error_of(Tool::kRr, {"-F", "\\"}), "Error: Incomplete escape specifier.\n" + h);
  EXPECT_EQ(error_of(Tool::kRr, {"-F", "\\q"}), "Error: Invalid escape specifier 'q'.\n" + h);
}

TEST(ToolOptions, RrRequiresTopicMessageAndResponseTopic) {
  const std::string e = "Error: All of topic, message, and response topic must be supplied.\n" + hint(Tool::kRr);
  EXPECT_EQ(error_of(Tool::kRr, {"-t", "a", "-m", "x"}), e);
  EXPECT_EQ(error_of(Tool::kRr, {"-e", "r", "-m", "x"}), e);
  EXPECT_EQ(error_of(Tool::kRr, {"-t", "a", "-e", "r"}), e);
  EXPECT_TRUE(parse(Tool::kRr, {"-t", "a", "-e", "", "-m", "x"}).r.proceed);  // given, even if empty
}

// --- Protocol version, client id, session -----------------------------------------------------------

TEST(ToolOptions, ProtocolVersionSpellings) {
  const std::vector<std::pair<std::string, Version>> cases = {{"mqttv31", Version::kV31},   {"31", Version::kV31},
                                                              {"mqttv311", Version::kV311}, {"311", Version::kV311},
                                                              {"mqttv5", Version::kV5},     {"5", Version::kV5}};
  for (const auto& [text, version] : cases) {
    const Parsed p = parse(Tool::kPub, {"-t", "a", "-n", "--protocol-version", text});
    ASSERT_TRUE(p.r.proceed) << text;
    EXPECT_EQ(p.o.version, version) << text;
  }
  for (const char* bad : {"3", "4", "MQTTV5", "mqttv50", ""}) {
    EXPECT_EQ(error_of(Tool::kPub, {"-V", bad}),
              "Error: Invalid protocol version argument given.\n\n" + hint(Tool::kPub))
        << bad;
  }
}

TEST(ToolOptions, ClientIdAndPrefix) {
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "--id-prefix", "pre"}).o.client_id_prefix, "pre");
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "-i", "x", "-i", "y"}).o.client_id, "y");
  const std::string e = "Error: -i and -I argument cannot be used together.\n\n" + hint(Tool::kPub);
  EXPECT_EQ(error_of(Tool::kPub, {"-i", "x", "-I", "p"}), e);
  EXPECT_EQ(error_of(Tool::kPub, {"-I", "p", "--id", "x"}), e);
}

TEST(ToolOptions, PersistentSessionNeedsClientId) {
  const std::string v3 = "Error: You must provide a client id if you are using the -c option.\n" + hint(Tool::kSub);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-c"}), v3);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-c", "-I", "pre"}), v3);  // a prefix does not count
  const std::string v5 =
      "Error: You must provide a client id if you are using an infinite session expiry interval.\n" + hint(Tool::kSub);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-c", "-V", "5"}), v5);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-x", "-1", "-V", "5"}), v5);
  EXPECT_EQ(error_of(Tool::kRr, {"-c"}),
            "Error: You must provide a client id if you are using an infinite session "
            "expiry interval.\n" +
                hint(Tool::kRr));
  // -x -1 on 3.1.1 and -c -x 0 on 5 pass the option checks.
  EXPECT_TRUE(parse(Tool::kSub, {"-t", "a", "-x", "-1"}).r.proceed);
  EXPECT_TRUE(parse(Tool::kSub, {"-t", "a", "-c", "-x", "0", "-V", "5"}).r.proceed);
  const Parsed ok = parse(Tool::kSub, {"-t", "a", "-c", "-i", "me"});
  ASSERT_TRUE(ok.r.proceed);
  EXPECT_FALSE(ok.o.clean_session);
  EXPECT_EQ(ok.o.effective_session_expiry(), 0xFFFFFFFFu);
}

TEST(ToolOptions, SessionExpiryValues) {
  const auto x = [](const std::string& v) {
    return parse(Tool::kPub, {"-t", "a", "-n", "-i", "c", "-x", v}).o.session_expiry;
  };
  EXPECT_EQ(x("0"), 0u);
  EXPECT_EQ(x("10"), 10u);
  EXPECT_EQ(x("-1"), 0xFFFFFFFFu);
  EXPECT_EQ(x("4294967295"), 0xFFFFFFFFu);
  EXPECT_EQ(x("\u221E"), 0xFFFFFFFFu);  // "∞"
  EXPECT_EQ(x("0x10"), 16u);            // strtoll base 0, as measured
  EXPECT_EQ(x("010"), 8u);
  EXPECT_EQ(x(" 7"), 7u);
  EXPECT_EQ(x("+5"), 5u);
  const std::string nan = "Error: session-expiry-interval not a number.\n\n" + hint(Tool::kPub);
  const std::string range = "Error: session-expiry-interval out of range.\n\n" + hint(Tool::kPub);
  EXPECT_EQ(error_of(Tool::kPub, {"-x", ""}), nan);
  EXPECT_EQ(error_of(Tool::kPub, {"-x", "10 "}), nan);
  EXPECT_EQ(error_of(Tool::kPub, {"-x", "1e3"}), nan);
  EXPECT_EQ(error_of(Tool::kPub, {"-x", "-2"}), range);
  EXPECT_EQ(error_of(Tool::kPub, {"-x", "4294967296"}), range);
  EXPECT_EQ(error_of(Tool::kPub, {"-x", "99999999999999999999"}), range);
}

TEST(ToolOptions, SessionExpiryBecomesConnectPropertyOnV5) {
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "-V", "5", "-x", "10"}).o.connect_props.session_expiry, 10u);
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "-V", "5", "-c", "-i", "c"}).o.connect_props.session_expiry,
            0xFFFFFFFFu);
  EXPECT_FALSE(parse(Tool::kPub, {"-t", "a", "-n", "-V", "5", "-x", "0"}).o.connect_props.session_expiry);
  EXPECT_FALSE(parse(Tool::kPub, {"-t", "a", "-n", "-x", "10"}).o.connect_props.session_expiry);  // 3.1.1
  // -x and a -D session-expiry-interval are duplicates.
  EXPECT_EQ(
      error_of(Tool::kPub, {"-t", "a", "-n", "-V", "5", "-x", "7", "-D", "connect", "session-expiry-interval", "5"}),
      "Error in CONNECT properties: Duplicate property in property list\n" + hint(Tool::kPub));
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "-D", "connect", "session-expiry-interval", "5"})
                .o.connect_props.session_expiry,
            5u);
}

// --- Will -----------------------------------------------------------------------------------------

TEST(ToolOptions, WillOptions) {
  const Parsed p = parse(Tool::kPub, {"-t", "a", "-n", "--will-topic", "dead", "--will-payload", "bye", "--will-qos",
                                      "2", "--will-retain"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.will_topic, "dead");
  EXPECT_EQ(p.o.will_payload, "bye");
  EXPECT_EQ(p.o.will_qos, 2);
  EXPECT_TRUE(p.o.will_retain);
  // Without --will-payload the will is empty; --will-qos alone is accepted and ignored.
  EXPECT_FALSE(parse(Tool::kPub, {"-t", "a", "-n", "--will-topic", "w"}).o.will_payload);
  EXPECT_TRUE(parse(Tool::kPub, {"-t", "a", "-n", "--will-qos", "1"}).r.proceed);
}

TEST(ToolOptions, WillErrors) {
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a", "-n", "--will-payload", "x"}),
            "Error: Will payload given, but no will topic given.\n" + hint(Tool::kPub));
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a", "-n", "--will-retain"}),
            "Error: Will retain given, but no will topic given.\n" + hint(Tool::kPub));
  EXPECT_EQ(error_of(Tool::kPub, {"--will-qos", "3"}), "Error: Invalid will QoS 3.\n\n" + hint(Tool::kPub));
  EXPECT_EQ(error_of(Tool::kPub, {"--will-topic", "a/#"}),
            "Error: Invalid will topic 'a/#', does it contain '+' or '#'?\n" + hint(Tool::kPub));
}

// --- TLS, PSK, proxy ------------------------------------------------------------------------------

TEST(ToolOptions, TlsOptionsAreStored) {
  const Parsed p = parse(Tool::kSub, {"-t",        "a",          "--cafile",  "ca",         "--capath",
                                      "dir",       "--cert",     "c",         "--key",      "k",
                                      "--keyform", "pem",        "--ciphers", "HIGH",       "--tls-version",
                                      "tlsv1.3",   "--tls-alpn", "mqtt",      "--insecure", "--tls-use-os-certs"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.cafile, "ca");
  EXPECT_EQ(p.o.capath, "dir");
  EXPECT_EQ(p.o.certfile, "c");
  EXPECT_EQ(p.o.keyfile, "k");
  EXPECT_EQ(p.o.keyform, "pem");
  EXPECT_EQ(p.o.ciphers, "HIGH");
  EXPECT_EQ(p.o.tls_version, "tlsv1.3");
  EXPECT_EQ(p.o.tls_alpn, "mqtt");
  EXPECT_TRUE(p.o.insecure);
  EXPECT_TRUE(p.o.tls_use_os_certs);
  EXPECT_TRUE(p.o.unsupported.empty());
  const Parsed psk = parse(Tool::kSub, {"-t", "a", "--psk", "deadbeef", "--psk-identity", "me"});
  EXPECT_EQ(psk.o.psk, "deadbeef");
  EXPECT_EQ(psk.o.psk_identity, "me");
}

TEST(ToolOptions, UnsupportedOptionsAreListed) {
  const Parsed p =
      parse(Tool::kPub, {"-t", "a", "-n", "--cert", "c", "--key", "k", "--keyform", "engine", "--tls-engine", "tpm",
                         "--tls-engine-kpass-sha1", "ab", "--proxy", "socks5h://u:p@proxy:1081", "-S"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.unsupported,
            (std::vector<std::string>{"-S", "--keyform", "--tls-engine", "--tls-engine-kpass-sha1", "--proxy"}));
  EXPECT_TRUE(p.o.srv_lookup);
  EXPECT_EQ(p.o.tls_engine, "tpm");
}

TEST(ToolOptions, ProxyUrls) {
  const Parsed p = parse(Tool::kPub, {"-t", "a", "-n", "--proxy", "socks5h://us%40er:p%3Ass@proxy:1081"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.proxy_host, "proxy");
  EXPECT_EQ(p.o.proxy_port, 1081);
  EXPECT_EQ(p.o.proxy_username, "us@er");
  EXPECT_EQ(p.o.proxy_password, "p:ss");
  const Parsed d = parse(Tool::kPub, {"-t", "a", "-n", "--proxy", "socks5h://proxy"});
  EXPECT_EQ(d.o.proxy_port, 1080);
  EXPECT_FALSE(d.o.proxy_username);
  const std::string h = hint(Tool::kPub);
  EXPECT_EQ(error_of(Tool::kPub, {"--proxy", "socks5://h"}), "Error: Unsupported proxy protocol: socks5://h\n" + h);
  EXPECT_EQ(error_of(Tool::kPub, {"--proxy", "socks5h://u@"}), "Error: Invalid proxy.\n" + h);
  EXPECT_EQ(error_of(Tool::kPub, {"--proxy", "socks5h://h:"}), "Error: Invalid proxy.\n" + h);
  EXPECT_EQ(error_of(Tool::kPub, {"--proxy", "socks5h://a:b"}), "Error: Invalid proxy port 0\n" + h);
  EXPECT_EQ(error_of(Tool::kPub, {"--proxy", "socks5h://h:70000:1"}), "Error: Invalid proxy port 70000\n" + h);
  // Measured: these fail without a message.
  for (const char* silent :
       {"socks5h://:1", "socks5h://@h", "socks5h://u:@h", "socks5h://h::1", "socks5h://a@b@h", "socks5h://u:p@h:1:2"}) {
    EXPECT_EQ(error_of(Tool::kPub, {"--proxy", silent}), h) << silent;
  }
  EXPECT_TRUE(parse(Tool::kPub, {"-t", "a", "-n", "--proxy", "socks5h://u:p:q@h:1"}).r.proceed);
}

TEST(ToolOptions, TlsConsistencyChecks) {
  const std::string h = hint(Tool::kPub);
  EXPECT_EQ(error_of(Tool::kPub, {"--key", "k"}),
            "Error: Both certfile and keyfile must be provided if one of them is set.\n" + h);
  EXPECT_EQ(error_of(Tool::kPub, {"--keyform", "der"}),
            "Error: If keyform is set, keyfile must be also specified.\n" + h);
  EXPECT_EQ(error_of(Tool::kPub, {"--tls-engine-kpass-sha1", "x", "--tls-engine", "e"}),
            "Error: when using tls-engine-kpass-sha1, both tls-engine and keyform must also be provided.\n" + h);
  EXPECT_EQ(error_of(Tool::kPub, {"--psk", "00", "--cafile", "ca"}),
            "Error: Only one of --psk or --cafile/--capath may be used at once.\n" + h);
  // Checked before the topic: the order of the tools' checks is kept.
  EXPECT_EQ(error_of(Tool::kSub, {"--psk", "00"}),
            "Error: --psk-identity required if --psk used.\n" + hint(Tool::kSub));
}

// --- -L URLs --------------------------------------------------------------------------------------

TEST(ToolOptions, UrlSetsUserHostPortTopic) {
  const Parsed p = parse(Tool::kPub, {"-m", "x", "-L", "mqtt://user:pa:ss@broker:1884/a/b"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.username, "user");
  EXPECT_EQ(p.o.password, "pa:ss");  // the first ':' splits
  EXPECT_EQ(p.o.host, "broker");
  EXPECT_EQ(p.o.port, 1884);
  EXPECT_EQ(p.o.topics, std::vector<std::string>{"a/b"});
  EXPECT_FALSE(p.o.tls_use_os_certs);
}

TEST(ToolOptions, UrlDefaultsAndSchemes) {
  const Parsed plain = parse(Tool::kPub, {"-m", "x", "--url", "MQTT://h/t"});
  EXPECT_EQ(plain.o.port, 1883);  // -L always sets the port
  const Parsed tls = parse(Tool::kPub, {"-m", "x", "-L", "mqtts://h/t"});
  EXPECT_EQ(tls.o.port, 8883);
  EXPECT_TRUE(tls.o.tls_use_os_certs);
  EXPECT_TRUE(tls.o.tls());
  // No percent-decoding, '@' after the first '/' is part of the topic, user without password.
  const Parsed u = parse(Tool::kPub, {"-m", "x", "-u", "old", "-P", "pw", "-L", "mqtt://u%40x@h/t@x"});
  EXPECT_EQ(u.o.username, "u%40x");
  EXPECT_EQ(u.o.password, "pw");
  EXPECT_EQ(u.o.topics, std::vector<std::string>{"t@x"});
  // The port text is not range checked (atoi).
  EXPECT_EQ(parse(Tool::kPub, {"-m", "x", "-L", "mqtt://h:abc/t"}).o.port, 0);
  EXPECT_EQ(parse(Tool::kPub, {"-m", "x", "-L", "mqtt://h/"}).o.topics, std::vector<std::string>{""});
}

TEST(ToolOptions, UrlOrderWithOtherOptions) {
  EXPECT_EQ(parse(Tool::kPub, {"-m", "x", "-L", "mqtt://h:1/t", "-p", "2", "-t", "other"}).o.port, 2);
  EXPECT_EQ(parse(Tool::kPub, {"-m", "x", "-L", "mqtt://h:1/t", "-t", "other"}).o.topics,
            std::vector<std::string>{"other"});
  EXPECT_EQ(parse(Tool::kPub, {"-m", "x", "-p", "2", "-L", "mqtt://h:1/t"}).o.port, 1);
  // sub adds the URL topic to the -t topics.
  EXPECT_EQ(parse(Tool::kSub, {"-L", "mqtt://h/lt", "-t", "a"}).o.topics, (std::vector<std::string>{"lt", "a"}));
}

TEST(ToolOptions, UrlErrors) {
  EXPECT_EQ(error_of(Tool::kPub, {"-L", "mqtt:/h/t"}), "Error: unsupported URL scheme.\n\n" + hint(Tool::kPub));
  EXPECT_EQ(error_of(Tool::kPub, {"-L", "ws://h/t"}), "Error: unsupported URL scheme.\n\n" + hint(Tool::kPub));
  EXPECT_EQ(error_of(Tool::kSub, {"-L", "mqtt://h"}),
            "Error: Invalid URL for -L argument specified - topic missing.\n" + hint(Tool::kSub));
  EXPECT_EQ(error_of(Tool::kSub, {"-L", "mqtt://h/a#"}),
            "Error: Invalid subscription topic 'a#', are all '+' and '#' wildcards correct?\n" + hint(Tool::kSub));
  EXPECT_EQ(error_of(Tool::kRr, {"-L", "mqtt://h/\xff"}),
            "Error: Malformed UTF-8 in -L topic argument.\n\n" + hint(Tool::kRr));
}

// --- -D properties ----------------------------------------------------------------------------------

TEST(ToolOptions, PropertiesGoToTheirPacket) {
  const Parsed p =
      parse(Tool::kPub, {"-t", "a", "-n", "--will-topic", "w",
                         // connect
                         "-D", "connect", "authentication-data", "ad", "-D", "connect", "authentication-method", "am",
                         "-D", "connect", "maximum-packet-size", "1000", "-D", "connect", "receive-maximum", "10", "-D",
                         "connect", "request-problem-information", "1", "-D", "connect", "request-response-information",
                         "0", "-D", "connect", "topic-alias-maximum", "5", "-D", "connect", "user-property", "ck", "cv",
                         // publish
                         "-D", "publish", "content-type", "text/plain", "-D", "publish", "correlation-data", "corr",
                         "-D", "publish", "message-expiry-interval", "4294967295", "-D", "publish",
                         "payload-format-indicator", "1", "-D", "publish", "response-topic", "resp", "-D", "publish",
                         "topic-alias", "3", "-D", "publish", "user-property", "pk", "pv",
                         // subscribe, unsubscribe, disconnect
                         "-D", "subscribe", "subscription-identifier", "268435455", "-D", "subscribe", "user-property",
                         "sk", "sv", "-D", "unsubscribe", "user-property", "uk", "uv", "-D", "disconnect",
                         "session-expiry-interval", "9", "-D", "disconnect", "reason-string", "bye", "-D", "disconnect",
                         "server-reference", "other", "-D", "disconnect", "user-property", "dk", "dv",
                         // will
                         "-D", "will", "will-delay-interval", "30", "-D", "will", "content-type", "wct", "-D", "will",
                         "correlation-data", "wcd", "-D", "will", "message-expiry-interval", "60", "-D", "will",
                         "payload-format-indicator", "0", "-D", "will", "response-topic", "wrt", "-D", "will",
                         "reason-string", "wrs", "-D", "will", "user-property", "wk", "wv"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.version, Version::kV5);  // -D makes the client an MQTT 5 client
  const auto& c = p.o.connect_props;
  EXPECT_EQ(c.auth_data, "ad");
  EXPECT_EQ(c.auth_method, "am");
  EXPECT_EQ(c.maximum_packet_size, 1000u);
  EXPECT_EQ(c.receive_maximum, 10);
  EXPECT_EQ(c.request_problem_info, 1);
  EXPECT_EQ(c.request_response_info, 0);
  EXPECT_EQ(c.topic_alias_maximum, 5);
  ASSERT_EQ(c.user_properties.size(), 1u);
  EXPECT_EQ(c.user_properties[0].key, "ck");
  EXPECT_EQ(c.user_properties[0].value, "cv");
  const auto& pp = p.o.publish_props;
  EXPECT_EQ(pp.content_type, "text/plain");
  EXPECT_EQ(pp.correlation_data, "corr");
  EXPECT_EQ(pp.message_expiry, 4294967295u);
  EXPECT_EQ(pp.payload_format, 1);
  EXPECT_EQ(pp.response_topic, "resp");
  EXPECT_EQ(pp.topic_alias, 3);
  EXPECT_EQ(pp.user_properties.size(), 1u);
  EXPECT_EQ(p.o.subscribe_props.subscription_ids, std::vector<std::uint32_t>{268435455});
  EXPECT_EQ(p.o.subscribe_props.user_properties.size(), 1u);
  EXPECT_EQ(p.o.unsubscribe_props.user_properties.size(), 1u);
  EXPECT_EQ(p.o.disconnect_props.session_expiry, 9u);
  EXPECT_EQ(p.o.disconnect_props.reason_string, "bye");
  EXPECT_EQ(p.o.disconnect_props.server_reference, "other");
  const auto& w = p.o.will_props;
  EXPECT_EQ(w.will_delay, 30u);
  EXPECT_EQ(w.content_type, "wct");
  EXPECT_EQ(w.correlation_data, "wcd");
  EXPECT_EQ(w.message_expiry, 60u);
  EXPECT_EQ(w.payload_format, 0);
  EXPECT_EQ(w.response_topic, "wrt");
  EXPECT_EQ(w.reason_string, "wrs");
  EXPECT_EQ(w.user_properties.size(), 1u);
}

TEST(ToolOptions, PropertyNamesAreCaseInsensitive) {
  const Parsed p = parse(Tool::kSub, {"-t", "a", "--property", "CONNECT", "User-Property", "k", "v", "-D", "Subscribe",
                                      "SUBSCRIPTION-IDENTIFIER", "4"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.connect_props.user_properties.size(), 1u);
  EXPECT_EQ(p.o.subscribe_props.subscription_ids, std::vector<std::uint32_t>{4});
  // User properties may repeat, with the same key too.
  EXPECT_EQ(parse(Tool::kSub,
                  {"-t", "a", "-D", "connect", "user-property", "k", "1", "-D", "connect", "user-property", "k", "2"})
                .o.connect_props.user_properties.size(),
            2u);
  // A later -V 311 wins over the switch to MQTT 5 (Mosquitto then fails at connect time).
  EXPECT_EQ(parse(Tool::kSub, {"-t", "a", "-D", "connect", "user-property", "k", "v", "-V", "311"}).o.version,
            Version::kV311);
}

TEST(ToolOptions, PropertyCommandErrors) {
  const std::string h = hint(Tool::kSub);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-D", "suback", "user-property", "k", "v"}),
            "Error: Invalid command given in --property argument.\n\n" + h);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-D", "pingreq", "user-property", "k", "v"}),
            "Error: Invalid command given in --property argument.\n\n" + h);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-D", "connect", "USER-PROP", "k", "v"}),
            "Error: Invalid property name given in --property argument.\n\n" + h);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-D", "connect", "topic-alias", "1"}),
            "Error: topic-alias property not allowed for connect in --property argument.\n\n" + h);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-D", "Unsubscribe", "Reason-String", "x"}),
            "Error: Reason-String property not allowed for Unsubscribe in --property argument.\n\n" + h);
  for (const char* cmd : {"puback", "pubrec", "pubrel", "pubcomp"}) {
    EXPECT_EQ(
        error_of(Tool::kSub, {"-t", "a", "-D", cmd, "reason-string", "x"}),
        std::string("Error: reason-string property not supported for ") + cmd + " in --property argument.\n\n" + h);
  }
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-D", "auth", "authentication-method", "m"}),
            "Error: authentication-method property not supported for auth in --property argument.\n\n" + h);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-D", "publish", "subscription-identifier", "1"}),
            "Error: subscription-identifier property not supported for publish in --property argument.\n\n" + h);
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-D", "connack", "reason-string", "x"}), h);  // silent, as measured
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "-D", "connect", "user-property", "k"}),
            "Error: --property argument given but not enough arguments specified.\n\n" + h);
}

TEST(ToolOptions, PropertyValueErrors) {
  const std::string h = hint(Tool::kPub);
  const auto e = [](std::vector<std::string> d) {
    std::vector<std::string> args{"-t", "a", "-n", "-D"};
    args.insert(args.end(), d.begin(), d.end());
    return error_of(Tool::kPub, args);
  };
  EXPECT_EQ(e({"publish", "payload-format-indicator", "256"}),
            "Error: Property value (256) out of range for property payload-format-indicator.\n\n" + h);
  EXPECT_EQ(e({"connect", "receive-maximum", "-1"}),
            "Error: Property value (-1) out of range for property receive-maximum.\n\n" + h);
  EXPECT_EQ(e({"connect", "RECEIVE-MAXIMUM", "70000"}),
            "Error: Property value (70000) out of range for property RECEIVE-MAXIMUM.\n\n" + h);
  EXPECT_EQ(e({"publish", "message-expiry-interval", "4294967296"}),
            "Error: Property value (4294967296) out of range for property message-expiry-interval.\n\n" + h);
  EXPECT_EQ(e({"connect", "maximum-packet-size", "18446744073709551615"}),
            "Error: Property value (9223372036854775807) out of range for property maximum-packet-size.\n\n" + h);
  EXPECT_EQ(e({"subscribe", "subscription-identifier", "268435456"}),
            "Error adding property subscription-identifier 4\n" + h);
  EXPECT_EQ(e({"will", "correlation-data", std::string(65536, 'a')}),
            "Error: Property value too long for property correlation-data.\n\n" + h);
  EXPECT_EQ(e({"publish", "content-type", "\xff"}), "Error adding property content-type 6\n" + h);
  EXPECT_EQ(e({"connect", "authentication-method", "\t"}), "Error adding property authentication-method 6\n" + h);
  EXPECT_EQ(e({"connect", "user-property", "\xff", "v"}), "Error adding property user-property 7\n" + h);
  // Only the user property's name is checked; text numbers are 0 (atol).
  EXPECT_TRUE(parse(Tool::kPub, {"-t", "a", "-n", "-D", "connect", "user-property", "k", "\xff"}).r.proceed);
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a", "-n", "-D", "publish", "message-expiry-interval", "abc"})
                .o.publish_props.message_expiry,
            0u);
}

TEST(ToolOptions, PropertySetChecksAfterParsing) {
  const std::string h = hint(Tool::kPub);
  const std::string protocol = "A network protocol error occurred when communicating with the broker.\n";
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a", "-n", "-D", "connect", "request-problem-information", "2"}),
            "Error in CONNECT properties: " + protocol + h);
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a", "-n", "-D", "connect", "maximum-packet-size", "0"}),
            "Error in CONNECT properties: " + protocol + h);
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a", "-n", "-D", "publish", "topic-alias", "0"}),
            "Error in PUBLISH properties: " + protocol + h);
  // Property by property in the order given: a duplicate before a bad value is reported first.
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a", "-n", "-D", "connect", "receive-maximum", "5", "-D", "connect",
                                  "receive-maximum", "0"}),
            "Error in CONNECT properties: Duplicate property in property list\n" + h);
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a", "-n", "-D", "connect", "receive-maximum", "0", "-D", "connect",
                                  "receive-maximum", "5"}),
            "Error in CONNECT properties: " + protocol + h);
  // CONNECT is checked before PUBLISH whatever the order on the command line.
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a", "-n", "-D", "publish", "topic-alias", "0", "-D", "connect",
                                  "request-problem-information", "2"}),
            "Error in CONNECT properties: " + protocol + h);
  EXPECT_EQ(
      error_of(Tool::kPub, {"-t", "a", "-n", "-D", "will", "content-type", "a", "-D", "will", "content-type", "b"}),
      "Error in Will properties: Duplicate property in property list\n" + h);
  // Values MQTT forbids but Mosquitto's tools accept.
  EXPECT_TRUE(parse(Tool::kPub, {"-t", "a", "-n", "-D", "publish", "payload-format-indicator", "2"}).r.proceed);
  EXPECT_TRUE(parse(Tool::kSub, {"-t", "a", "-D", "subscribe", "subscription-identifier", "0"}).r.proceed);
}

TEST(ToolOptions, QuietHidesOnlyWhatMosquittoHides) {
  EXPECT_EQ(error_of(Tool::kPub, {"--quiet", "-t", "a", "-n", "-D", "publish", "topic-alias", "0"}), hint(Tool::kPub));
  EXPECT_EQ(error_of(Tool::kRr, {"--quiet", "-t", "a", "-e", "r", "-m", "x", "-D", "publish", "response-topic", "z"}),
            "");
  EXPECT_EQ(error_of(Tool::kPub, {"--quiet", "--bogus"}), "Error: Unknown option '--bogus'.\n" + hint(Tool::kPub));
  EXPECT_EQ(error_of(Tool::kPub, {"--quiet", "-c"}),
            "Error: You must provide a client id if you are using the -c option.\n" + hint(Tool::kPub));
}

// --- Option files -----------------------------------------------------------------------------------

TEST(ToolOptions, OptionFileLines) {
  TempHome home;
  home.write("mosquitto_pub",
             "# a comment\n"
             "\n"
             "   -q 1\n"
             "-m hello  world \r\n"
             "--retain\n"
             "-t 'quoted'\n");
  const Parsed p = parse(Tool::kPub, {}, home.env());
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.qos, 1);
  EXPECT_EQ(p.o.message, "hello  world ");  // everything after the first space, trailing CR/LF removed
  EXPECT_TRUE(p.o.retain);
  EXPECT_EQ(p.o.topics, std::vector<std::string>{"'quoted'"});  // quotes are literal
}

TEST(ToolOptions, OptionFileIsOverriddenByCommandLine) {
  TempHome home;
  home.write("mosquitto_pub", "-q 2\n-t fromfile\n-h filehost\n");
  const Parsed p = parse(Tool::kPub, {"-q", "0", "-t", "cli", "-n"}, home.env());
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.qos, 0);
  EXPECT_EQ(p.o.topics, std::vector<std::string>{"cli"});
  EXPECT_EQ(p.o.host, "filehost");
  // A message in the file conflicts with one on the command line.
  home.write("mosquitto_pub", "-m fromfile\n");
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a", "-m", "cli"}, home.env()),
            "Error: Only one type of message can be sent at once.\n\n" + hint(Tool::kPub));
}

TEST(ToolOptions, OptionFileSubTopicsAccumulate) {
  TempHome home;
  home.write("mosquitto_sub", "-t fromfile\n-T skip\n");
  const Parsed p = parse(Tool::kSub, {"-t", "cli"}, home.env());
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.topics, (std::vector<std::string>{"fromfile", "cli"}));
  EXPECT_EQ(p.o.filter_out, std::vector<std::string>{"skip"});
  // rr reads mosquitto_rr.
  home.write("mosquitto_rr", "-e resp\n-m req\n");
  const Parsed rr = parse(Tool::kRr, {"-t", "a"}, home.env());
  ASSERT_TRUE(rr.r.proceed) << rr.r.err;
  EXPECT_EQ(rr.o.response_topic, "resp");
}

TEST(ToolOptions, OptionFileErrorsAndLineRules) {
  TempHome home;
  const std::string h = hint(Tool::kPub);
  home.write("mosquitto_pub", "-m\ttab\n");  // tabs do not separate
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a"}, home.env()), "Error: Unknown option '-m\ttab'.\n" + h);
  home.write("mosquitto_pub", " # not a comment\n");  // '#' only counts as the first character
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a"}, home.env()), "Error: Unknown option '#'.\n" + h);
  home.write("mosquitto_pub", "-r  \n");  // the text after the first space is an argument
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a"}, home.env()), "Error: Unknown option ' '.\n" + h);
  home.write("mosquitto_pub", "-m \n");
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a"}, home.env()),
            "Error: -m argument given but no message specified.\n\n" + h);
  home.write("mosquitto_pub", "-t\n");  // a line does not take its value from the command line
  EXPECT_EQ(error_of(Tool::kPub, {"foo", "-m", "x"}, home.env()),
            "Error: -t argument given but no topic specified.\n\n" + h);
  home.write("mosquitto_pub", "-D publish user-property k v\n-m x\n");  // each line is parsed alone
  EXPECT_EQ(error_of(Tool::kPub, {"-t", "a"}, home.env()),
            "Error: --property argument given but not enough arguments specified.\n\n" + h);
  home.write("mosquitto_pub", std::string("-m x\n\0-q 7\n", 12));  // a NUL ends the line
  EXPECT_TRUE(parse(Tool::kPub, {"-t", "a"}, home.env()).r.proceed);
}

TEST(ToolOptions, OptionFileLocation) {
  TempHome home;
  TempHome xdg;
  home.write("mosquitto_pub", "-m fromhome\n");
  std::ofstream(xdg.path / "mosquitto_pub") << "-m fromxdg\n";
  Env env = home.env();
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a"}, env).o.message, "fromhome");
  env["XDG_CONFIG_HOME"] = xdg.path.string();
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a"}, env).o.message, "fromxdg");
  // XDG_CONFIG_HOME set (even empty) replaces HOME entirely.
  env["XDG_CONFIG_HOME"] = (xdg.path / "nothing-here").string();
  EXPECT_EQ(parse(Tool::kPub, {"-t", "a"}, env).r.err, "Error: Both topic and message must be supplied.\n");
  env["XDG_CONFIG_HOME"] = "";
  EXPECT_FALSE(parse(Tool::kPub, {"-t", "a"}, env).r.proceed);
  // Without HOME and XDG_CONFIG_HOME no file is read; a directory in its place is ignored.
  EXPECT_FALSE(parse(Tool::kPub, {"-t", "a"}, {}).r.proceed);
  TempHome dir;
  std::filesystem::create_directories(dir.path / ".config" / "mosquitto_pub");
  EXPECT_TRUE(parse(Tool::kPub, {"-t", "a", "-n"}, dir.env()).r.proceed);
}

// --- Help, version, unknown options, usage ----------------------------------------------------------

TEST(ToolOptions, HelpAndVersion) {
  for (Tool tool : {Tool::kPub, Tool::kSub, Tool::kRr}) {
    const Parsed help = parse(tool, {"--help", "--bogus"});
    EXPECT_FALSE(help.r.proceed);
    EXPECT_EQ(help.r.exit_code, 1);  // as mosquitto_pub --help
    EXPECT_EQ(help.r.out, usage(tool));
    EXPECT_EQ(help.r.err, "");
    const Parsed version = parse(tool, {"--version"});
    EXPECT_FALSE(version.r.proceed);
    EXPECT_EQ(version.r.exit_code, 1);
    EXPECT_EQ(version.r.out.rfind(std::string(tern::tools::tool_name(tool)) + " version ", 0), 0u) << version.r.out;
  }
  // Options before --help are still checked.
  EXPECT_EQ(error_of(Tool::kPub, {"-q", "3", "--help"}), "Error: Invalid QoS given: 3\n" + hint(Tool::kPub));
}

TEST(ToolOptions, OptionsBelongToTheirTool) {
  for (const char* o : {"-C", "-E", "-T", "-U", "-F", "-N", "-R", "-v", "-W", "-e", "--pretty", "--random-filter"}) {
    EXPECT_EQ(error_of(Tool::kPub, {o}), std::string("Error: Unknown option '") + o + "'.\n" + hint(Tool::kPub)) << o;
  }
  for (const char* o : {"-m", "-f", "-l", "-n", "-s", "-r", "-e", "--repeat", "--repeat-delay"}) {
    EXPECT_EQ(error_of(Tool::kSub, {o}), std::string("Error: Unknown option '") + o + "'.\n" + hint(Tool::kSub)) << o;
  }
  for (const char* o :
       {"-C", "-E", "-T", "-U", "-l", "-r", "--retained-only", "--remove-retained", "--random-filter"}) {
    EXPECT_EQ(error_of(Tool::kRr, {o}), std::string("Error: Unknown option '") + o + "'.\n" + hint(Tool::kRr)) << o;
  }
}

TEST(ToolOptions, UsageListsEveryOption) {
  const std::vector<std::string> common = {" -A ",
                                           " -c ",
                                           " -d ",
                                           " -D ",
                                           " -h ",
                                           " -i ",
                                           " -I ",
                                           " -k ",
                                           " -L ",
                                           " -M ",
                                           " -p ",
                                           " -P ",
                                           " -q ",
                                           " -S ",
                                           " -t ",
                                           " -u ",
                                           " -V ",
                                           " -x ",
                                           " --help ",
                                           " --nodelay ",
                                           " --quiet ",
                                           " --unix ",
                                           " --version ",
                                           " --will-payload ",
                                           " --will-qos ",
                                           " --will-retain ",
                                           " --will-topic ",
                                           " --cafile ",
                                           " --capath ",
                                           " --cert ",
                                           " --key ",
                                           " --keyform ",
                                           " --ciphers ",
                                           " --tls-version ",
                                           " --insecure ",
                                           " --tls-alpn ",
                                           " --tls-engine ",
                                           " --tls-engine-kpass-sha1 ",
                                           " --tls-use-os-certs ",
                                           " --psk ",
                                           " --psk-identity ",
                                           " --proxy "};
  const std::map<Tool, std::vector<std::string>> own = {
      {Tool::kPub, {" -f ", " -l ", " -m ", " -n ", " -r ", " -s ", " --repeat ", " --repeat-delay "}},
      {Tool::kSub,
       {" -C ", " -E ", " -F ", " -N ", " -R ", " -T ", " -U ", " -v ", " -W ", " --pretty ", " --random-filter ",
        " --retained-only ", " --remove-retained ", " --retain-as-published "}},
      {Tool::kRr,
       {" -e ", " -f ", " -F ", " -m ", " -n ", " -N ", " -R ", " -s ", " -v ", " -W ", " --pretty ",
        " --retain-as-published "}}};
  for (const auto& [tool, options] : own) {
    const std::string text = usage(tool);
    EXPECT_EQ(text.find("mosquitto_pub --help"), std::string::npos);
    EXPECT_NE(text.find(std::string("Usage: ") + tern::tools::tool_name(tool) + " "), std::string::npos);
    for (const auto& o : common) EXPECT_NE(text.find("\n" + o + ":"), std::string::npos) << o;
    for (const auto& o : options) EXPECT_NE(text.find("\n" + o + ":"), std::string::npos) << o;
  }
  EXPECT_EQ(usage(Tool::kSub).find("\n -m :"), std::string::npos);
}

// --- Numeric and missing-value errors ---------------------------------------------------------------

TEST(ToolOptions, PortAndKeepaliveErrors) {
  const std::string h = hint(Tool::kPub);
  EXPECT_EQ(error_of(Tool::kPub, {"-p", "65536"}), "Error: Invalid port given: 65536\n" + h);
  EXPECT_EQ(error_of(Tool::kPub, {"-p", "-1"}), "Error: Invalid port given: -1\n" + h);
  // atoi truncation: 99999999999 becomes 1215752191.
  EXPECT_EQ(error_of(Tool::kPub, {"-p", "99999999999"}), "Error: Invalid port given: 1215752191\n" + h);
  const std::string k = "Error: Invalid keepalive given, it must be between 5 and 65535 inclusive.\n\n" + h;
  EXPECT_EQ(error_of(Tool::kPub, {"-k", "4"}), k);
  EXPECT_EQ(error_of(Tool::kPub, {"-k", "0"}), k);
  EXPECT_EQ(error_of(Tool::kPub, {"-k", "65536"}), k);
  EXPECT_EQ(error_of(Tool::kPub, {"-q", "-1"}), "Error: Invalid QoS given: -1\n" + h);
}

TEST(ToolOptions, CountTimeoutInflightRepeatErrors) {
  EXPECT_EQ(error_of(Tool::kSub, {"-C", "0"}), "Error: Invalid message count \"0\".\n\n" + hint(Tool::kSub));
  EXPECT_EQ(error_of(Tool::kSub, {"-C", "abc"}), "Error: Invalid message count \"0\".\n\n" + hint(Tool::kSub));
  EXPECT_EQ(error_of(Tool::kRr, {"-W", "-1"}), "Error: Invalid timeout \"-1\".\n\n" + hint(Tool::kRr));
  EXPECT_EQ(error_of(Tool::kSub, {"-M", "0"}),
            "Error: Maximum inflight messages must be greater than 0.\n\n" + hint(Tool::kSub));
  EXPECT_EQ(error_of(Tool::kPub, {"--repeat", "abc"}), "Error: --repeat argument must be >0.\n\n" + hint(Tool::kPub));
  EXPECT_EQ(error_of(Tool::kPub, {"--repeat-delay", "-0.5"}),
            "Error: --repeat-delay argument must be >=0.0.\n\n" + hint(Tool::kPub));
  EXPECT_DOUBLE_EQ(parse(Tool::kPub, {"-t", "a", "-n", "--repeat-delay", "abc"}).o.repeat_delay, 0.0);
}

TEST(ToolOptions, MissingValueMessages) {
  // Option (as typed), tool, the name the message uses for what is missing.
  const std::vector<std::tuple<std::string, Tool, std::string>> cases = {
      {"-A", Tool::kPub, "-A argument given but no address specified."},
      {"--cafile", Tool::kPub, "--cafile argument given but no file specified."},
      {"--capath", Tool::kSub, "--capath argument given but no directory specified."},
      {"--cert", Tool::kRr, "--cert argument given but no file specified."},
      {"--ciphers", Tool::kPub, "--ciphers argument given but no ciphers specified."},
      {"-C", Tool::kSub, "-C argument given but no count specified."},
      {"--property", Tool::kPub, "--property argument given but not enough arguments specified."},
      {"-e", Tool::kRr, "-e argument given but no response topic specified."},
      {"--file", Tool::kRr, "-f argument given but no file specified."},
      {"-F", Tool::kSub, "-F argument given but no format specified."},
      {"--host", Tool::kPub, "-h argument given but no host specified."},
      {"--id", Tool::kPub, "-i argument given but no id specified."},
      {"--id-prefix", Tool::kSub, "-I argument given but no id prefix specified."},
      {"--keepalive", Tool::kPub, "-k argument given but no keepalive specified."},
      {"--key", Tool::kPub, "--key argument given but no file specified."},
      {"--keyform", Tool::kPub, "--keyform argument given but no keyform specified."},
      {"--url", Tool::kSub, "-L argument given but no URL specified."},
      {"--message", Tool::kPub, "-m argument given but no message specified."},
      {"-M", Tool::kRr, "-M argument given but max_inflight not specified."},
      {"--port", Tool::kPub, "-p argument given but no port specified."},
      {"--pw", Tool::kPub, "-P argument given but no password specified."},
      {"--proxy", Tool::kPub, "--proxy argument given but no proxy url specified."},
      {"--psk", Tool::kPub, "--psk argument given but no key specified."},
      {"--psk-identity", Tool::kPub, "--psk-identity argument given but no identity specified."},
      {"--qos", Tool::kSub, "-q argument given but no QoS specified."},
      {"--random-filter", Tool::kSub, "--random-filter argument given but no chance specified."},
      {"--repeat", Tool::kPub, "--repeat argument given but no count specified."},
      {"--repeat-delay", Tool::kPub, "--repeat-delay argument given but no time specified."},
      {"--topic", Tool::kSub, "-t argument given but no topic specified."},
      {"--filter-out", Tool::kSub, "-T argument given but no topic filter specified."},
      {"--tls-alpn", Tool::kPub, "--tls-alpn argument given but no protocol specified."},
      {"--tls-engine", Tool::kPub, "--tls-engine argument given but no engine_id specified."},
      {"--tls-engine-kpass-sha1", Tool::kPub, "--tls-engine-kpass-sha1 argument given but no kpass sha1 specified."},
      {"--tls-version", Tool::kPub, "--tls-version argument given but no version specified."},
      {"--username", Tool::kPub, "-u argument given but no username specified."},
      {"--unix", Tool::kPub, "--unix argument given but no socket path specified."},
      {"--unsubscribe", Tool::kSub, "-U argument given but no unsubscribe topic specified."},
      {"-V", Tool::kRr, "--protocol-version argument given but no version specified."},
      {"-W", Tool::kRr, "-W argument given but no timeout specified."},
      {"--will-payload", Tool::kPub, "--will-payload argument given but no will payload specified."},
      {"--will-qos", Tool::kPub, "--will-qos argument given but no will QoS specified."},
      {"--will-topic", Tool::kPub, "--will-topic argument given but no will topic specified."},
      {"-x", Tool::kSub, "-x argument given but no session expiry interval specified."},
  };
  for (const auto& [option, tool, text] : cases) {
    EXPECT_EQ(error_of(tool, {option}), "Error: " + text + "\n\n" + hint(tool)) << option;
  }
}

TEST(ToolOptions, UnknownOptionForms) {
  for (const char* o : {"foo", "-tfoo", "--topic=foo", "--", "-", "", "-rq", "--clean-session"}) {
    EXPECT_EQ(error_of(Tool::kPub, {o}), std::string("Error: Unknown option '") + o + "'.\n" + hint(Tool::kPub)) << o;
  }
}

TEST(ToolOptions, SubSpecificFinalChecks) {
  EXPECT_EQ(error_of(Tool::kSub, {"-T", "a"}), "Error: You must specify a topic to subscribe to.\n" + hint(Tool::kSub));
  EXPECT_EQ(error_of(Tool::kSub, {"-U", "a"}), "Error: You must specify a topic to subscribe to.\n" + hint(Tool::kSub));
  // Printed without the usage hint, with a leading newline (measured).
  EXPECT_EQ(error_of(Tool::kSub, {"-t", "a", "--retained-only", "-R"}),
            "\nError: Combining '-R' and '--retained-only' makes no sense.\n");
  // The topic check comes before the property checks in sub.
  EXPECT_EQ(error_of(Tool::kSub, {"-D", "connect", "receive-maximum", "0"}),
            "Error: You must specify a topic to subscribe to.\n" + hint(Tool::kSub));
}

TEST(ToolOptions, RrSetsTheResponseTopicItself) {
  EXPECT_EQ(error_of(Tool::kRr, {"-t", "a", "-e", "r", "-m", "x", "-D", "publish", "response-topic", "z"}),
            "Error in PUBLISH properties: Duplicate response topic.\n");
  const Parsed p = parse(Tool::kRr, {"-t", "a", "-e", "r", "-m", "x", "-D", "publish", "correlation-data", "id-1", "-R",
                                     "-v", "-N", "--pretty", "-W", "5", "-F", "%p", "--retain-as-published"});
  ASSERT_TRUE(p.r.proceed) << p.r.err;
  EXPECT_EQ(p.o.publish_props.correlation_data, "id-1");
  EXPECT_FALSE(p.o.publish_props.response_topic);
  EXPECT_TRUE(p.o.no_retained && p.o.verbose && p.o.no_eol && p.o.pretty && p.o.retain_as_published);
  EXPECT_EQ(p.o.timeout, 5);
}

// --- Error table ------------------------------------------------------------------------------------

// stderr, exit code and whether the usage went to stdout, captured from Debian 12's mosquitto_pub,
// mosquitto_sub and mosquitto_rr 2.0.11 (run with an empty HOME, against 127.0.0.1 port 1 when the
// options were valid), with "mosquitto_pub" replaced by "tern pub" etc.
struct ErrorRow {
  Tool tool;
  std::vector<std::string> args;
  int exit_code;
  bool usage_on_stdout;
  std::string err;
};

TEST(ToolOptions, ErrorTableFromMosquitto2011) {
  const std::vector<ErrorRow> rows = {
      {Tool::kPub, {"--bogus"}, 1, false, "Error: Unknown option '--bogus'.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kSub, {"--bogus"}, 1, false, "Error: Unknown option '--bogus'.\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kRr, {"--bogus"}, 1, false, "Error: Unknown option '--bogus'.\n\nUse 'tern rr --help' to see usage.\n"},
      {Tool::kPub, {"-C", "--bogus"}, 1, false, "Error: Unknown option '-C'.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kSub, {"-m"}, 1, false, "Error: Unknown option '-m'.\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kRr, {"-T"}, 1, false, "Error: Unknown option '-T'.\n\nUse 'tern rr --help' to see usage.\n"},
      {Tool::kPub, {"foo"}, 1, false, "Error: Unknown option 'foo'.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub, {"-tfoo"}, 1, false, "Error: Unknown option '-tfoo'.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"--topic=foo"},
       1,
       false,
       "Error: Unknown option '--topic=foo'.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t"},
       1,
       false,
       "Error: -t argument given but no topic specified.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kSub,
       {"-U"},
       1,
       false,
       "Error: -U argument given but no unsubscribe topic specified.\n\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kRr,
       {"-e"},
       1,
       false,
       "Error: -e argument given but no response topic specified.\n\n\nUse 'tern rr --help' to see usage.\n"},
      {Tool::kPub,
       {"-q"},
       1,
       false,
       "Error: -q argument given but no QoS specified.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-D"},
       1,
       false,
       "Error: --property argument given but not enough arguments specified.\n\n\nUse 'tern pub --help' to see "
       "usage.\n"},
      {Tool::kSub,
       {"-W"},
       1,
       false,
       "Error: -W argument given but no timeout specified.\n\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kSub,
       {"-C"},
       1,
       false,
       "Error: -C argument given but no count specified.\n\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kPub,
       {"-x"},
       1,
       false,
       "Error: -x argument given but no session expiry interval specified.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"--tls-engine-kpass-sha1"},
       1,
       false,
       "Error: --tls-engine-kpass-sha1 argument given but no kpass sha1 specified.\n\n\nUse 'tern pub --help' to see "
       "usage.\n"},
      {Tool::kPub,
       {"-M"},
       1,
       false,
       "Error: -M argument given but max_inflight not specified.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"--proxy"},
       1,
       false,
       "Error: --proxy argument given but no proxy url specified.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-V"},
       1,
       false,
       "Error: --protocol-version argument given but no version specified.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-q", "3", "-t", "a", "-m", "b"},
       1,
       false,
       "Error: Invalid QoS given: 3\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-q", "-1"},
       1,
       false,
       "Error: Invalid QoS given: -1\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "65536"},
       1,
       false,
       "Error: Invalid port given: 65536\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "99999999999"},
       1,
       false,
       "Error: Invalid port given: 1215752191\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-k", "4"},
       1,
       false,
       "Error: Invalid keepalive given, it must be between 5 and 65535 inclusive.\n\n\nUse 'tern pub --help' to see "
       "usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-k", "abc"},
       1,
       false,
       "Error: Invalid keepalive given, it must be between 5 and 65535 inclusive.\n\n\nUse 'tern pub --help' to see "
       "usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--will-qos", "3", "--will-topic", "w"},
       1,
       false,
       "Error: Invalid will QoS 3.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-V", "3"},
       1,
       false,
       "Error: Invalid protocol version argument given.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-V", "MQTTV5"},
       1,
       false,
       "Error: Invalid protocol version argument given.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-x", "4294967296"},
       1,
       false,
       "Error: session-expiry-interval out of range.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-x", "10abc"},
       1,
       false,
       "Error: session-expiry-interval not a number.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-c"},
       1,
       false,
       "Error: You must provide a client id if you are using the -c option.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-c", "-V", "5"},
       1,
       false,
       "Error: You must provide a client id if you are using an infinite session expiry interval.\n\nUse 'tern pub "
       "--help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-I", "pre", "-i", "id"},
       1,
       false,
       "Error: -i and -I argument cannot be used together.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-m", "c"},
       1,
       false,
       "Error: Only one type of message can be sent at once.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-m", "x", "-L", "foo"},
       1,
       false,
       "Error: unsupported URL scheme.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-m", "x", "-L", "mqtt://host"},
       1,
       false,
       "Error: Invalid URL for -L argument specified - topic missing.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-m", "x", "-L", "mqtt://127.0.0.1:1/a/#"},
       1,
       false,
       "Error: Invalid publish topic 'a/#', does it contain '+' or '#'?\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-t", "a/+"},
       1,
       false,
       "Error: Invalid publish topic 'a/+', does it contain '+' or '#'?\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--will-topic", "a/#"},
       1,
       false,
       "Error: Invalid will topic 'a/#', does it contain '+' or '#'?\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--will-payload", "x"},
       1,
       false,
       "Error: Will payload given, but no will topic given.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--will-retain"},
       1,
       false,
       "Error: Will retain given, but no will topic given.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a/#x"},
       1,
       false,
       "Error: Invalid subscription topic 'a/#x', are all '+' and '#' wildcards correct?\n\nUse 'tern sub --help' to "
       "see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-T", "a#", "-t", "a"},
       1,
       false,
       "Error: Invalid filter topic 'a#', are all '+' and '#' wildcards correct?\n\nUse 'tern sub --help' to see "
       "usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-U", "a#"},
       1,
       false,
       "Error: Invalid unsubscribe topic 'a#', are all '+' and '#' wildcards correct?\n\nUse 'tern sub --help' to see "
       "usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-U", "a"},
       1,
       false,
       "Error: You must specify a topic to subscribe to.\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kSub,
       {},
       1,
       false,
       "Error: You must specify a topic to subscribe to.\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kRr,
       {},
       1,
       false,
       "Error: All of topic, message, and response topic must be supplied.\n\nUse 'tern rr --help' to see usage.\n"},
      {Tool::kPub, {}, 1, true, "Error: Both topic and message must be supplied.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-C", "0", "-t", "a"},
       1,
       false,
       "Error: Invalid message count \"0\".\n\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-C", "abc", "-t", "a"},
       1,
       false,
       "Error: Invalid message count \"0\".\n\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-W", "-1", "-t", "a"},
       1,
       false,
       "Error: Invalid timeout \"-1\".\n\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "--random-filter", "0.09"},
       1,
       false,
       "Error: --random-filter chance must be between 0.1-100.0\n\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-F", "%Z"},
       1,
       false,
       "Error: Invalid format specifier 'Z'.\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-F", "%10"},
       1,
       false,
       "Error: Incomplete format specifier.\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-F", "\\q"},
       1,
       false,
       "Error: Invalid escape specifier 'q'.\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-F", "\\"},
       1,
       false,
       "Error: Incomplete escape specifier.\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-R", "--retained-only"},
       1,
       false,
       "\nError: Combining '-R' and '--retained-only' makes no sense.\n"},
      {Tool::kRr,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-e", "r/#", "-m", "x"},
       1,
       false,
       "Error: Invalid response topic 'r/#', does it contain '+' or '#'?\n\nUse 'tern rr --help' to see usage.\n"},
      {Tool::kRr,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-e", "r"},
       1,
       false,
       "Error: All of topic, message, and response topic must be supplied.\n\nUse 'tern rr --help' to see usage.\n"},
      {Tool::kRr,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-e", "r", "-m", "x", "-D", "publish", "response-topic", "z"},
       1,
       false,
       "Error in PUBLISH properties: Duplicate response topic.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-D", "bogus", "user-property", "k", "v"},
       1,
       false,
       "Error: Invalid command given in --property argument.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-D", "connect", "bogus", "1"},
       1,
       false,
       "Error: Invalid property name given in --property argument.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-D", "connect", "user-property", "k"},
       1,
       false,
       "Error: --property argument given but not enough arguments specified.\n\n\nUse 'tern pub --help' to see "
       "usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-D", "PUBLISH", "receive-maximum", "10"},
       1,
       false,
       "Error: receive-maximum property not allowed for PUBLISH in --property argument.\n\n\nUse 'tern pub --help' to "
       "see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-D", "Auth", "User-Property", "k", "v"},
       1,
       false,
       "Error: User-Property property not supported for Auth in --property argument.\n\n\nUse 'tern pub --help' to see "
       "usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-D", "CONNACK", "user-property", "k", "v"},
       1,
       false,
       "\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-D", "connect", "receive-maximum", "65536"},
       1,
       false,
       "Error: Property value (65536) out of range for property receive-maximum.\n\n\nUse 'tern pub --help' to see "
       "usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-D", "connect", "receive-maximum", "0"},
       1,
       false,
       "Error in CONNECT properties: A network protocol error occurred when communicating with the broker.\n\nUse "
       "'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-D", "publish", "topic-alias", "0"},
       1,
       false,
       "Error in PUBLISH properties: A network protocol error occurred when communicating with the broker.\n\nUse "
       "'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-D", "subscribe", "subscription-identifier", "268435456"},
       1,
       false,
       "Error adding property subscription-identifier 4\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-D", "publish", "subscription-identifier", "99999999999"},
       1,
       false,
       "Error: subscription-identifier property not supported for publish in --property argument.\n\n\nUse 'tern sub "
       "--help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-D", "connect", "receive-maximum", "99999999999999999999"},
       1,
       false,
       "Error: Property value (9223372036854775807) out of range for property receive-maximum.\n\n\nUse 'tern sub "
       "--help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-D", "subscribe", "subscription-identifier", "1", "-D", "subscribe",
        "subscription-identifier", "2"},
       1,
       false,
       "Error in SUBSCRIBE properties: Duplicate property in property list\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-D", "will", "message-expiry-interval", "1", "-D", "will",
        "message-expiry-interval", "2", "--will-topic", "w"},
       1,
       false,
       "Error in Will properties: Duplicate property in property list\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kSub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-D", "disconnect", "reason-string", "1", "-D", "disconnect",
        "reason-string", "2"},
       1,
       false,
       "Error in DISCONNECT properties: Duplicate property in property list\n\nUse 'tern sub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "x", "--psk", "00", "--capath", "/tmp"},
       1,
       false,
       "Error: Only one of --psk or --cafile/--capath may be used at once.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--psk", "00"},
       1,
       false,
       "Error: --psk-identity required if --psk used.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--cert", "c"},
       1,
       false,
       "Error: Both certfile and keyfile must be provided if one of them is set.\n\nUse 'tern pub --help' to see "
       "usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--keyform", "pem"},
       1,
       false,
       "Error: If keyform is set, keyfile must be also specified.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--tls-engine-kpass-sha1", "abc"},
       1,
       false,
       "Error: when using tls-engine-kpass-sha1, both tls-engine and keyform must also be provided.\n\nUse 'tern pub "
       "--help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--proxy", "foo"},
       1,
       false,
       "Error: Unsupported proxy protocol: foo\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--proxy", "socks5h://"},
       1,
       false,
       "Error: Invalid proxy.\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--proxy", "socks5h://h:70000"},
       1,
       false,
       "Error: Invalid proxy port 70000\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--proxy", "socks5h://:1"},
       1,
       false,
       "\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "-M", "0"},
       1,
       false,
       "Error: Maximum inflight messages must be greater than 0.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--repeat", "0"},
       1,
       false,
       "Error: --repeat argument must be >0.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"-t", "a", "-m", "b", "-h", "127.0.0.1", "-p", "1", "--repeat-delay", "-1"},
       1,
       false,
       "Error: --repeat-delay argument must be >=0.0.\n\n\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kPub,
       {"--quiet", "-t", "a", "-m", "x", "-D", "publish", "topic-alias", "0"},
       1,
       false,
       "\nUse 'tern pub --help' to see usage.\n"},
      {Tool::kRr, {"--quiet", "-t", "a", "-e", "r", "-m", "x", "-D", "publish", "response-topic", "z"}, 1, false, ""},
      {Tool::kPub,
       {"-h", "127.0.0.1", "-p", "1", "-t", "a", "-m", "x", "-c", "-V", "5", "-i", "x", "-D", "connect",
        "session-expiry-interval", "5"},
       1,
       false,
       "Error in CONNECT properties: Duplicate property in property list\n\nUse 'tern pub --help' to see usage.\n"},
  };
  for (const auto& row : rows) {
    std::string line = tern::tools::tool_name(row.tool);
    for (const auto& a : row.args) line += " " + a;
    const Parsed p = parse(row.tool, row.args);
    EXPECT_FALSE(p.r.proceed) << line;
    EXPECT_EQ(p.r.exit_code, row.exit_code) << line;
    EXPECT_EQ(p.r.err, row.err) << line;
    EXPECT_EQ(!p.r.out.empty(), row.usage_on_stdout) << line;
  }
}
