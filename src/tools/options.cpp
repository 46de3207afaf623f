// Option parsing of tern pub / sub / rr. Every message text, check order and numeric conversion
// below reproduces what mosquitto_pub/sub/rr 2.0.11 were observed to do (docs/tools-options.md);
// the code itself is Tern's own.
#include "tools/options.hpp"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#ifndef TERN_VERSION_STRING
#define TERN_VERSION_STRING "unknown"
#endif

namespace tern::tools {

const char* tool_name(Tool tool) {
  switch (tool) {
    case Tool::kPub:
      return "tern pub";
    case Tool::kSub:
      return "tern sub";
    case Tool::kRr:
      return "tern rr";
  }
  return "tern";
}

int ClientOptions::effective_port() const {
  if (port) return *port;
  return (cafile || capath || psk) ? 8883 : 1883;
}

std::uint32_t ClientOptions::effective_session_expiry() const {
  if (session_expiry) return *session_expiry;
  return clean_session ? 0 : 0xFFFFFFFFu;
}

namespace {

constexpr std::uint32_t kNoExpiry = 0xFFFFFFFFu;

// The option file shares Mosquitto's name so that existing files keep working.
const char* option_file_name(Tool tool) {
  switch (tool) {
    case Tool::kPub:
      return "mosquitto_pub";
    case Tool::kSub:
      return "mosquitto_sub";
    case Tool::kRr:
      return "mosquitto_rr";
  }
  return "mosquitto_pub";
}

// The tools convert numbers with the C library's atoi/atol/strtod: leading blanks and a sign are
// accepted, parsing stops at the first non-digit, "abc" is 0. atoi is a long conversion truncated to
// int (so 99999999999 becomes 1215752191, which the tools then print).
int c_atoi(const std::string& s) { return static_cast<int>(std::strtol(s.c_str(), nullptr, 10)); }
long long c_atol(const std::string& s) { return std::strtoll(s.c_str(), nullptr, 10); }
double c_atof(const std::string& s) { return std::strtod(s.c_str(), nullptr); }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// UTF-8 as the Mosquitto tools accept it in topics and string properties: well-formed, shortest
// form, no surrogates, nothing above U+10FFFF, and also no control characters (U+0000..U+001F,
// U+007F..U+009F) and no non-characters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF); at most 65536 bytes.
// Stricter than tern::valid_mqtt_utf8, which implements only the MQTT "must" rules.
bool tool_utf8(std::string_view s) {
  if (s.size() > 65536) return false;
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::uint32_t cp;
    std::size_t len;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      len = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      len = 4;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    if (cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F)) return false;
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) return false;
    i += len;
  }
  return true;
}

// A topic to publish to: no wildcard anywhere. Empty is accepted here (the broker or the publish
// call rejects it later, as with Mosquitto).
bool valid_publish_topic(std::string_view t) {
  return t.size() <= 65535 && t.find_first_of("+#") == std::string_view::npos;
}

// A subscription filter: '+' fills a whole level, '#' is a whole last level.
bool valid_subscribe_topic(std::string_view t) {
  if (t.size() > 65535) return false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const bool level_start = i == 0 || t[i - 1] == '/';
    if (t[i] == '+') {
      if (!level_start || (i + 1 < t.size() && t[i + 1] != '/')) return false;
    } else if (t[i] == '#') {
      if (!level_start || i + 1 != t.size()) return false;
    }
  }
  return true;
}

// --- MQTT 5 properties for -D ------------------------------------------------------------------

enum class PropType { kByte, kInt16, kInt32, kVarint, kBinary, kString, kStringPair };

struct PropInfo {
  const char* name;
  std::uint8_t id;
  PropType type;
};

// MQTT 5.0 section 2.2.2.2, with the names Mosquitto uses ('-' between words).
constexpr std::array<PropInfo, 27> kProperties{{
    {"payload-format-indicator", 0x01, PropType::kByte},
    {"message-expiry-interval", 0x02, PropType::kInt32},
    {"content-type", 0x03, PropType::kString},
    {"response-topic", 0x08, PropType::kString},
    {"correlation-data", 0x09, PropType::kBinary},
    {"subscription-identifier", 0x0B, PropType::kVarint},
    {"session-expiry-interval", 0x11, PropType::kInt32},
    {"assigned-client-identifier", 0x12, PropType::kString},
    {"server-keep-alive", 0x13, PropType::kInt16},
    {"authentication-method", 0x15, PropType::kString},
    {"authentication-data", 0x16, PropType::kBinary},
    {"request-problem-information", 0x17, PropType::kByte},
    {"will-delay-interval", 0x18, PropType::kInt32},
    {"request-response-information", 0x19, PropType::kByte},
    {"response-information", 0x1A, PropType::kString},
    {"server-reference", 0x1C, PropType::kString},
    {"reason-string", 0x1F, PropType::kString},
    {"receive-maximum", 0x21, PropType::kInt16},
    {"topic-alias-maximum", 0x22, PropType::kInt16},
    {"topic-alias", 0x23, PropType::kInt16},
    {"maximum-qos", 0x24, PropType::kByte},
    {"retain-available", 0x25, PropType::kByte},
    {"user-property", 0x26, PropType::kStringPair},
    {"maximum-packet-size", 0x27, PropType::kInt32},
    {"wildcard-subscription-available", 0x28, PropType::kByte},
    {"subscription-identifier-available", 0x29, PropType::kByte},
    {"shared-subscription-available", 0x2A, PropType::kByte},
}};

constexpr std::uint8_t kUserProperty = 0x26;
constexpr std::uint8_t kSessionExpiry = 0x11;

enum class Cmd {
  kConnect,
  kConnack,
  kPublish,
  kPuback,
  kPubrec,
  kPubrel,
  kPubcomp,
  kSubscribe,
  kUnsubscribe,
  kDisconnect,
  kAuth,
  kWill
};

struct CmdInfo {
  const char* name;
  Cmd cmd;
};

// SUBACK, UNSUBACK, PINGREQ and PINGRESP are not accepted as -D commands by the tools (measured).
constexpr std::array<CmdInfo, 12> kCommands{{
    {"connect", Cmd::kConnect},
    {"connack", Cmd::kConnack},
    {"publish", Cmd::kPublish},
    {"puback", Cmd::kPuback},
    {"pubrec", Cmd::kPubrec},
    {"pubrel", Cmd::kPubrel},
    {"pubcomp", Cmd::kPubcomp},
    {"subscribe", Cmd::kSubscribe},
    {"unsubscribe", Cmd::kUnsubscribe},
    {"disconnect", Cmd::kDisconnect},
    {"auth", Cmd::kAuth},
    {"will", Cmd::kWill},
}};

// Which property may appear in which packet: MQTT 5.0 section 2.2.2.2. The will additionally accepts
// reason-string, as the Mosquitto tools do.
bool property_allowed(Cmd cmd, std::uint8_t id) {
  if (id == kUserProperty) return true;
  switch (cmd) {
    case Cmd::kConnect:
      return id == 0x11 || id == 0x15 || id == 0x16 || id == 0x17 || id == 0x19 || id == 0x21 || id == 0x22 ||
             id == 0x27;
    case Cmd::kConnack:
      return id == 0x11 || id == 0x12 || id == 0x13 || id == 0x15 || id == 0x16 || id == 0x1A || id == 0x1C ||
             id == 0x1F || id == 0x21 || id == 0x22 || id == 0x24 || id == 0x25 || id == 0x27 || id == 0x28 ||
             id == 0x29 || id == 0x2A;
    case Cmd::kPublish:
      return id == 0x01 || id == 0x02 || id == 0x03 || id == 0x08 || id == 0x09 || id == 0x0B || id == 0x23;
    case Cmd::kPuback:
    case Cmd::kPubrec:
    case Cmd::kPubrel:
    case Cmd::kPubcomp:
      return id == 0x1F;
    case Cmd::kSubscribe:
      return id == 0x0B;
    case Cmd::kUnsubscribe:
      return false;
    case Cmd::kDisconnect:
      return id == 0x11 || id == 0x1C || id == 0x1F;
    case Cmd::kAuth:
      return id == 0x15 || id == 0x16 || id == 0x1F;
    case Cmd::kWill:
      return id == 0x01 || id == 0x02 || id == 0x03 || id == 0x08 || id == 0x09 || id == 0x18 || id == 0x1F;
  }
  return false;
}

// The property lists the tools keep, in the order their checks run after parsing.
enum PropList { kConnectList, kPublishList, kSubscribeList, kUnsubscribeList, kDisconnectList, kWillList, kNumLists };
constexpr std::array<const char*, kNumLists> kListNames{"CONNECT",     "PUBLISH",    "SUBSCRIBE",
                                                        "UNSUBSCRIBE", "DISCONNECT", "Will"};

struct PropValue {
  std::uint8_t id = 0;
  std::uint32_t number = 0;
  std::string text;   // string or binary value, or user property name
  std::string value;  // user property value
};

void store_property(const PropValue& p, codec::Properties& props) {
  switch (p.id) {
    case 0x01:
      props.payload_format = static_cast<std::uint8_t>(p.number);
      break;
    case 0x02:
      props.message_expiry = p.number;
      break;
    case 0x03:
      props.content_type = p.text;
      break;
    case 0x08:
      props.response_topic = p.text;
      break;
    case 0x09:
      props.correlation_data = p.text;
      break;
    case 0x0B:
      props.subscription_ids.push_back(p.number);
      break;
    case 0x11:
      props.session_expiry = p.number;
      break;
    case 0x15:
      props.auth_method = p.text;
      break;
    case 0x16:
      props.auth_data = p.text;
      break;
    case 0x17:
      props.request_problem_info = static_cast<std::uint8_t>(p.number);
      break;
    case 0x18:
      props.will_delay = p.number;
      break;
    case 0x19:
      props.request_response_info = static_cast<std::uint8_t>(p.number);
      break;
    case 0x1C:
      props.server_reference = p.text;
      break;
    case 0x1F:
      props.reason_string = p.text;
      break;
    case 0x21:
      props.receive_maximum = static_cast<std::uint16_t>(p.number);
      break;
    case 0x22:
      props.topic_alias_maximum = static_cast<std::uint16_t>(p.number);
      break;
    case 0x23:
      props.topic_alias = static_cast<std::uint16_t>(p.number);
      break;
    case 0x26:
      props.user_properties.push_back({p.text, p.value});
      break;
    case 0x27:
      props.maximum_packet_size = p.number;
      break;
    default:
      break;  // not allowed in any list a client sends
  }
}

// Value rules the tools check once all options are read: MQTT 5.0 sections 3.1.2.11.4-3.1.2.11.7
// and 3.3.2.3.4 (the values that are a Protocol Error).
bool property_value_ok(const PropValue& p) {
  switch (p.id) {
    case 0x17:  // request-problem-information
    case 0x19:  // request-response-information
      return p.number <= 1;
    case 0x21:  // receive-maximum
    case 0x23:  // topic-alias
    case 0x27:  // maximum-packet-size
      return p.number != 0;
    default:
      return true;
  }
}

// --- -F format strings (sub, rr) ----------------------------------------------------------------

// Returns the error text for an invalid format, or "" when the format is usable.
std::string check_format(std::string_view f) {
  constexpr std::string_view kSpecifiers = "ACDEFIJPRSUXjlmpqrtx%";
  constexpr std::string_view kEscapes = "\\0aenrtv";
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '%') {
      ++i;
      if (i < f.size() && f[i] == '-') ++i;
      if (i < f.size() && f[i] == '0') ++i;
      while (i < f.size() && is_digit(f[i])) ++i;
      if (i < f.size() && f[i] == '.') {
        ++i;
        while (i < f.size() && is_digit(f[i])) ++i;
      }
      if (i >= f.size()) return "Error: Incomplete format specifier.\n";
      if (kSpecifiers.find(f[i]) == std::string_view::npos) {
        return fmt::format("Error: Invalid format specifier '{}'.\n", f[i]);
      }
    } else if (f[i] == '@') {
      ++i;
      if (i >= f.size()) return "Error: Incomplete format specifier.\n";
    } else if (f[i] == '\\') {
      ++i;
      if (i >= f.size()) return "Error: Incomplete escape specifier.\n";
      if (kEscapes.find(f[i]) == std::string_view::npos) {
        return fmt::format("Error: Invalid escape specifier '{}'.\n", f[i]);
      }
    }
  }
  return "";
}

// %25, %3A and %40 in a proxy user name or password.
std::string url_decode_userinfo(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const std::string_view code = s.substr(i + 1, 2);
      if (code == "25") {
        out += '%';
        i += 2;
        continue;
      }
      if (iequals(code, "3a")) {
        out += ':';
        i += 2;
        continue;
      }
      if (code == "40") {
        out += '@';
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// --- The parser ---------------------------------------------------------------------------------

class Parser {
 public:
  Parser(Tool tool, ClientOptions& o, ParseOutcome& r) : tool_(tool), o_(o), r_(r) {}

  // Parses one argument list (the option file's or the command line's). False: stop, r_ is set.
  bool run(const std::vector<std::string>& a);
  // The checks the tools run once every argument is read. False: stop, r_ is set.
  bool finish();

 private:
  bool pub() const { return tool_ == Tool::kPub; }
  bool sub() const { return tool_ == Tool::kSub; }
  bool rr() const { return tool_ == Tool::kRr; }

  // An option error: the message, then the hint every tool prints after it.
  bool fail(std::string_view msg) {
    r_.err = fmt::format("{}\nUse '{} --help' to see usage.\n", msg, tool_name(tool_));
    r_.exit_code = 1;
    r_.proceed = false;
    return false;
  }
  // Messages the tools print through their --quiet aware error printer.
  bool fail_quiet(std::string_view msg) { return fail(o_.quiet ? std::string_view() : msg); }
  // Errors the tools print without the usage hint.
  bool fail_plain(std::string_view msg) {
    r_.err = std::string(msg);
    r_.exit_code = 1;
    r_.proceed = false;
    return false;
  }
  bool stop_with_output(std::string out) {
    r_.out = std::move(out);
    r_.exit_code = 1;  // the tools exit 1 after --help and --version
    r_.proceed = false;
    return false;
  }

  bool set_payload(PayloadSource source) {
    if (o_.payload_source != PayloadSource::kNone) {
      return fail("Error: Only one type of message can be sent at once.\n\n");
    }
    o_.payload_source = source;
    return true;
  }
  bool set_topic(const std::string& t);
  bool property(const std::vector<std::string>& a, std::size_t& i);
  bool url(const std::string& u);
  bool proxy(const std::string& u);
  bool session_expiry(const std::string& v);

  Tool tool_;
  ClientOptions& o_;
  ParseOutcome& r_;
  std::array<std::vector<PropValue>, kNumLists> lists_;
};

bool Parser::set_topic(const std::string& t) {
  if (!tool_utf8(t)) return fail("Error: Malformed UTF-8 in -t argument.\n\n");
  if (sub()) {
    if (!valid_subscribe_topic(t)) {
      return fail(fmt::format("Error: Invalid subscription topic '{}', are all '+' and '#' wildcards correct?\n", t));
    }
    o_.topics.push_back(t);
  } else {
    if (!valid_publish_topic(t)) {
      return fail(fmt::format("Error: Invalid publish topic '{}', does it contain '+' or '#'?\n", t));
    }
    o_.topics.assign(1, t);
  }
  return true;
}

bool Parser::session_expiry(const std::string& v) {
  if (v == "\u221E") {  // "∞"
    o_.session_expiry = kNoExpiry;
    return true;
  }
  errno = 0;
  char* end = nullptr;
  const long long n = std::strtoll(v.c_str(), &end, 0);
  if (end == v.c_str() || *end != '\0') return fail("Error: session-expiry-interval not a number.\n\n");
  if (n < -1 || n > static_cast<long long>(kNoExpiry)) {
    return fail("Error: session-expiry-interval out of range.\n\n");
  }
  o_.session_expiry = n == -1 ? kNoExpiry : static_cast<std::uint32_t>(n);
  return true;
}

// -D command identifier value, or -D command user-property name value.
bool Parser::property(const std::vector<std::string>& a, std::size_t& i) {
  constexpr std::string_view kNotEnough = "Error: --property argument given but not enough arguments specified.\n\n";
  if (i + 3 >= a.size()) return fail(kNotEnough);
  const std::string& cmd_name = a[i + 1];
  const std::string& prop_name = a[i + 2];
  const CmdInfo* cmd = nullptr;
  for (const auto& c : kCommands) {
    if (iequals(cmd_name, c.name)) cmd = &c;
  }
  if (cmd == nullptr) return fail("Error: Invalid command given in --property argument.\n\n");
  const PropInfo* info = nullptr;
  for (const auto& p : kProperties) {
    if (iequals(prop_name, p.name)) info = &p;
  }
  if (info == nullptr) return fail("Error: Invalid property name given in --property argument.\n\n");
  if (!property_allowed(cmd->cmd, info->id)) {
    return fail(fmt::format("Error: {} property not allowed for {} in --property argument.\n\n", prop_name, cmd_name));
  }
  std::size_t used = 3;
  if (info->type == PropType::kStringPair) {
    if (i + 4 >= a.size()) return fail(kNotEnough);
    used = 4;
  }
  PropList list;
  switch (cmd->cmd) {
    case Cmd::kConnect:
      list = kConnectList;
      break;
    case Cmd::kPublish:
      list = kPublishList;
      break;
    case Cmd::kSubscribe:
      list = kSubscribeList;
      break;
    case Cmd::kUnsubscribe:
      list = kUnsubscribeList;
      break;
    case Cmd::kDisconnect:
      list = kDisconnectList;
      break;
    case Cmd::kWill:
      list = kWillList;
      break;
    case Cmd::kConnack:
      return fail("");  // the tools stop here without a message (measured)
    default:
      return fail(
          fmt::format("Error: {} property not supported for {} in --property argument.\n\n", prop_name, cmd_name));
  }
  if (list == kPublishList && info->id == 0x0B) {
    return fail(
        fmt::format("Error: {} property not supported for {} in --property argument.\n\n", prop_name, cmd_name));
  }
  const std::string& v = a[i + 3];
  PropValue pv;
  pv.id = info->id;
  switch (info->type) {
    case PropType::kByte:
    case PropType::kInt16:
    case PropType::kInt32:
    case PropType::kVarint: {
      const long long n = c_atol(v);
      const long long max = info->type == PropType::kByte    ? 0xFF
                            : info->type == PropType::kInt16 ? 0xFFFF
                                                             : 0xFFFFFFFFLL;
      if (n < 0 || n > max) {
        return fail(fmt::format("Error: Property value ({}) out of range for property {}.\n\n", n, prop_name));
      }
      // A Variable Byte Integer holds at most 268,435,455 (MQTT 5.0 section 1.5.5).
      if (info->type == PropType::kVarint && n > 268435455) {
        return fail(fmt::format("Error adding property {} {}\n", prop_name, 4));
      }
      pv.number = static_cast<std::uint32_t>(n);
      break;
    }
    case PropType::kBinary:
      if (v.size() > 65535) {
        return fail(fmt::format("Error: Property value too long for property {}.\n\n", prop_name));
      }
      pv.text = v;
      break;
    case PropType::kString:
      // The number is Mosquitto's property type code (6: string, 7: string pair).
      if (!tool_utf8(v)) return fail(fmt::format("Error adding property {} {}\n", prop_name, 6));
      pv.text = v;
      break;
    case PropType::kStringPair:
      // Only the name is checked, as the tools do.
      if (!tool_utf8(v)) return fail(fmt::format("Error adding property {} {}\n", prop_name, 7));
      pv.text = v;
      pv.value = a[i + 4];
      break;
  }
  lists_[list].push_back(std::move(pv));
  o_.version = codec::Version::kV5;  // properties make the client an MQTT 5 client
  i += used;
  return true;
}

// -L mqtt(s)://[username[:password]@]host[:port]/topic
bool Parser::url(const std::string& u) {
  std::string_view s = u;
  bool secure = false;
  if (s.size() >= 7 && iequals(s.substr(0, 7), "mqtt://")) {
    s.remove_prefix(7);
  } else if (s.size() >= 8 && iequals(s.substr(0, 8), "mqtts://")) {
    s.remove_prefix(8);
    secure = true;
  } else {
    return fail("Error: unsupported URL scheme.\n\n");
  }
  const std::size_t slash = s.find('/');
  if (slash == std::string_view::npos) {
    return fail("Error: Invalid URL for -L argument specified - topic missing.\n");
  }
  const std::string topic(s.substr(slash + 1));
  std::string_view hostport = s.substr(0, slash);
  if (!tool_utf8(topic)) return fail("Error: Malformed UTF-8 in -L topic argument.\n\n");
  if (sub()) {
    if (!valid_subscribe_topic(topic)) {
      return fail(
          fmt::format("Error: Invalid subscription topic '{}', are all '+' and '#' wildcards correct?\n", topic));
    }
    o_.topics.push_back(topic);
  } else {
    if (!valid_publish_topic(topic)) {
      return fail(fmt::format("Error: Invalid publish topic '{}', does it contain '+' or '#'?\n", topic));
    }
    o_.topics.assign(1, topic);
  }
  // The first '@' ends the user part and the first ':' splits each part (measured with "a@b@h" and
  // "u:p:q@h"); no percent-decoding.
  const std::size_t at = hostport.find('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = hostport.substr(0, at);
    hostport.remove_prefix(at + 1);
    const std::size_t colon = userinfo.find(':');
    if (colon != std::string_view::npos) {
      o_.username = std::string(userinfo.substr(0, colon));
      o_.password = std::string(userinfo.substr(colon + 1));
    } else {
      o_.username = std::string(userinfo);
    }
  }
  const std::size_t colon = hostport.find(':');
  if (colon != std::string_view::npos) {
    o_.host = std::string(hostport.substr(0, colon));
    o_.port = c_atoi(std::string(hostport.substr(colon + 1)));
  } else {
    o_.host = std::string(hostport);
    o_.port = secure ? 8883 : 1883;
  }
  if (secure) o_.tls_use_os_certs = true;
  return true;
}

// --proxy socks5h://[username[:password]@]host[:port]. The acceptance rules (which malformed URLs
// fail silently, "Invalid proxy." or with a port message) were mapped by experiment.
bool Parser::proxy(const std::string& u) {
  constexpr std::string_view kPrefix = "socks5h://";
  if (u.compare(0, kPrefix.size(), kPrefix) != 0) {
    return fail(fmt::format("Error: Unsupported proxy protocol: {}\n", u));
  }
  const std::string_view s = std::string_view(u).substr(kPrefix.size());
  enum class State { kFirst, kAfterColon, kHost, kPort } state = State::kFirst;
  std::size_t start = 0;
  std::string_view first;  // user or host before the first ':'
  std::optional<std::string_view> user, pass;
  std::string_view host;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == ':') {
      if (i == start) return fail("");
      if (state == State::kFirst) {
        first = s.substr(start, i - start);
        state = State::kAfterColon;
        start = i + 1;
      } else if (state == State::kHost) {
        host = s.substr(start, i - start);
        state = State::kPort;
        start = i + 1;
      } else if (state == State::kPort) {
        return fail("");
      }
      // kAfterColon: a further ':' belongs to the password (or the port text).
    } else if (c == '@') {
      if (i == start || state == State::kHost || state == State::kPort) return fail("");
      if (state == State::kFirst) {
        user = s.substr(start, i - start);
      } else {
        user = first;
        pass = s.substr(start, i - start);
      }
      state = State::kHost;
      start = i + 1;
    }
  }
  std::optional<std::string_view> port_text;
  switch (state) {
    case State::kFirst:
      host = s.substr(start);
      if (host.empty()) return fail("Error: Invalid proxy.\n");
      break;
    case State::kAfterColon:
      host = first;
      port_text = s.substr(start);
      if (port_text->empty()) return fail("Error: Invalid proxy.\n");
      break;
    case State::kHost:
      host = s.substr(start);
      if (host.empty()) return fail("Error: Invalid proxy.\n");
      break;
    case State::kPort:
      if (start < s.size()) port_text = s.substr(start);
      break;
  }
  int port = 1080;
  if (port_text) {
    port = c_atoi(std::string(*port_text));
    if (port < 1 || port > 65535) return fail(fmt::format("Error: Invalid proxy port {}\n", port));
  }
  o_.proxy = u;
  o_.proxy_host = std::string(host);
  o_.proxy_port = port;
  o_.proxy_username.reset();
  o_.proxy_password.reset();
  if (user) o_.proxy_username = url_decode_userinfo(*user);
  if (pass) o_.proxy_password = url_decode_userinfo(*pass);
  return true;
}

bool Parser::run(const std::vector<std::string>& a) {
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::string& opt = a[i];
    const bool has_value = i + 1 < a.size();
    // The value of an option that takes one; `missing` is the tool's text when it is absent.
    const std::string* value = nullptr;
    const auto take = [&](std::string_view missing) {
      if (!has_value) return fail(fmt::format("Error: {}\n\n", missing));
      value = &a[++i];
      return true;
    };
    const bool pub_or_rr = pub() || rr();
    const bool sub_or_rr = sub() || rr();

    if (opt == "-A") {
      if (!take("-A argument given but no address specified.")) return false;
      o_.bind_address = *value;
    } else if (opt == "--cafile") {
      if (!take("--cafile argument given but no file specified.")) return false;
      o_.cafile = *value;
    } else if (opt == "--capath") {
      if (!take("--capath argument given but no directory specified.")) return false;
      o_.capath = *value;
    } else if (opt == "--cert") {
      if (!take("--cert argument given but no file specified.")) return false;
      o_.certfile = *value;
    } else if (opt == "--ciphers") {
      if (!take("--ciphers argument given but no ciphers specified.")) return false;
      o_.ciphers = *value;
    } else if (opt == "-C" && sub()) {
      if (!take("-C argument given but no count specified.")) return false;
      o_.msg_count = c_atoi(*value);
      if (o_.msg_count < 1) return fail(fmt::format("Error: Invalid message count \"{}\".\n\n", o_.msg_count));
    } else if (opt == "-c" || opt == "--disable-clean-session") {
      o_.clean_session = false;
    } else if (opt == "-d" || opt == "--debug") {
      o_.debug = true;
    } else if (opt == "-D" || opt == "--property") {
      if (!property(a, i)) return false;
    } else if (opt == "-e" && rr()) {
      if (!take("-e argument given but no response topic specified.")) return false;
      if (!tool_utf8(*value)) return fail("Error: Malformed UTF-8 in -e argument.\n\n");
      if (!valid_publish_topic(*value)) {
        return fail(fmt::format("Error: Invalid response topic '{}', does it contain '+' or '#'?\n", *value));
      }
      o_.response_topic = *value;
    } else if (opt == "-E" && sub()) {
      o_.exit_after_subscribe = true;
    } else if ((opt == "-f" || opt == "--file") && pub_or_rr) {
      if (!take("-f argument given but no file specified.")) return false;
      if (!set_payload(PayloadSource::kFile)) return false;
      o_.file = *value;
    } else if (opt == "-F" && sub_or_rr) {
      if (!take("-F argument given but no format specified.")) return false;
      if (const std::string e = check_format(*value); !e.empty()) return fail(e);
      o_.format = *value;
    } else if (opt == "--help") {
      return stop_with_output(usage(tool_));
    } else if (opt == "--version") {
      return stop_with_output(fmt::format("{} version {}.\n", tool_name(tool_), TERN_VERSION_STRING));
    } else if (opt == "-h" || opt == "--host") {
      if (!take("-h argument given but no host specified.")) return false;
      o_.host = *value;
    } else if (opt == "-i" || opt == "--id") {
      if (!take("-i argument given but no id specified.")) return false;
      if (o_.client_id_prefix) return fail("Error: -i and -I argument cannot be used together.\n\n");
      o_.client_id = *value;
    } else if (opt == "-I" || opt == "--id-prefix") {
      if (!take("-I argument given but no id prefix specified.")) return false;
      if (o_.client_id) return fail("Error: -i and -I argument cannot be used together.\n\n");
      o_.client_id_prefix = *value;
    } else if (opt == "--insecure") {
      o_.insecure = true;
    } else if (opt == "-k" || opt == "--keepalive") {
      if (!take("-k argument given but no keepalive specified.")) return false;
      const int k = c_atoi(*value);
      if (k < 5 || k > 65535) {
        return fail("Error: Invalid keepalive given, it must be between 5 and 65535 inclusive.\n\n");
      }
      o_.keepalive = static_cast<std::uint16_t>(k);
    } else if (opt == "--key") {
      if (!take("--key argument given but no file specified.")) return false;
      o_.keyfile = *value;
    } else if (opt == "--keyform") {
      if (!take("--keyform argument given but no keyform specified.")) return false;
      o_.keyform = *value;
    } else if ((opt == "-l" || opt == "--stdin-line") && pub()) {
      if (!set_payload(PayloadSource::kStdinLine)) return false;
    } else if (opt == "-L" || opt == "--url") {
      if (!take("-L argument given but no URL specified.")) return false;
      if (!url(*value)) return false;
    } else if ((opt == "-m" || opt == "--message") && pub_or_rr) {
      if (!take("-m argument given but no message specified.")) return false;
      if (!set_payload(PayloadSource::kMessage)) return false;
      o_.message = *value;
    } else if (opt == "-M") {
      if (!take("-M argument given but max_inflight not specified.")) return false;
      o_.max_inflight = c_atoi(*value);
      if (o_.max_inflight < 1) return fail("Error: Maximum inflight messages must be greater than 0.\n\n");
    } else if ((opt == "-n" || opt == "--null-message") && pub_or_rr) {
      if (!set_payload(PayloadSource::kNull)) return false;
    } else if (opt == "-N" && sub_or_rr) {
      o_.no_eol = true;
    } else if (opt == "--nodelay") {
      o_.nodelay = true;
    } else if (opt == "-p" || opt == "--port") {
      if (!take("-p argument given but no port specified.")) return false;
      const int p = c_atoi(*value);
      if (p < 0 || p > 65535) return fail(fmt::format("Error: Invalid port given: {}\n", p));
      o_.port = p;
    } else if (opt == "-P" || opt == "--pw") {
      if (!take("-P argument given but no password specified.")) return false;
      o_.password = *value;
    } else if (opt == "--pretty" && sub_or_rr) {
      o_.pretty = true;
    } else if (opt == "--proxy") {
      if (!take("--proxy argument given but no proxy url specified.")) return false;
      if (!proxy(*value)) return false;
    } else if (opt == "--psk") {
      if (!take("--psk argument given but no key specified.")) return false;
      o_.psk = *value;
    } else if (opt == "--psk-identity") {
      if (!take("--psk-identity argument given but no identity specified.")) return false;
      o_.psk_identity = *value;
    } else if (opt == "-q" || opt == "--qos") {
      if (!take("-q argument given but no QoS specified.")) return false;
      const int q = c_atoi(*value);
      if (q < 0 || q > 2) return fail(fmt::format("Error: Invalid QoS given: {}\n", q));
      o_.qos = static_cast<std::uint8_t>(q);
    } else if (opt == "--quiet") {
      o_.quiet = true;
    } else if ((opt == "-r" || opt == "--retain") && pub()) {
      o_.retain = true;
    } else if (opt == "-R" && sub_or_rr) {
      o_.no_retained = true;
    } else if (opt == "--random-filter" && sub()) {
      if (!take("--random-filter argument given but no chance specified.")) return false;
      // The tools keep tenths of a percent as an int and accept 1..10000 of them, so 0.1 to 1000.
      const double chance = c_atof(*value);
      const double tenths = chance * 10.0;
      if (!(tenths >= 1.0 && tenths < 10001.0)) {
        return fail("Error: --random-filter chance must be between 0.1-100.0\n\n");
      }
      o_.random_filter = chance;
    } else if (opt == "--remove-retained" && sub()) {
      o_.remove_retained = true;
    } else if (opt == "--repeat" && pub()) {
      if (!take("--repeat argument given but no count specified.")) return false;
      o_.repeat_count = c_atoi(*value);
      if (o_.repeat_count < 1) return fail("Error: --repeat argument must be >0.\n\n");
    } else if (opt == "--repeat-delay" && pub()) {
      if (!take("--repeat-delay argument given but no time specified.")) return false;
      o_.repeat_delay = c_atof(*value);
      if (o_.repeat_delay < 0.0) return fail("Error: --repeat-delay argument must be >=0.0.\n\n");
    } else if (opt == "--retained-only" && sub()) {
      o_.retained_only = true;
    } else if (opt == "--retain-as-published" && sub_or_rr) {
      o_.retain_as_published = true;
    } else if ((opt == "-s" || opt == "--stdin-file") && pub_or_rr) {
      if (!set_payload(PayloadSource::kStdinFile)) return false;
    } else if (opt == "-S") {
      // In the man pages of all three tools; Debian's build lacks SRV support and rejects it.
      o_.srv_lookup = true;
    } else if (opt == "-t" || opt == "--topic") {
      if (!take("-t argument given but no topic specified.")) return false;
      if (!set_topic(*value)) return false;
    } else if ((opt == "-T" || opt == "--filter-out") && sub()) {
      if (!take("-T argument given but no topic filter specified.")) return false;
      if (!tool_utf8(*value)) return fail("Error: Malformed UTF-8 in -T argument.\n\n");
      if (!valid_subscribe_topic(*value)) {
        return fail(fmt::format("Error: Invalid filter topic '{}', are all '+' and '#' wildcards correct?\n", *value));
      }
      o_.filter_out.push_back(*value);
    } else if (opt == "--tls-alpn") {
      if (!take("--tls-alpn argument given but no protocol specified.")) return false;
      o_.tls_alpn = *value;
    } else if (opt == "--tls-engine") {
      if (!take("--tls-engine argument given but no engine_id specified.")) return false;
      o_.tls_engine = *value;
    } else if (opt == "--tls-engine-kpass-sha1") {
      if (!take("--tls-engine-kpass-sha1 argument given but no kpass sha1 specified.")) return false;
      o_.tls_engine_kpass_sha1 = *value;
    } else if (opt == "--tls-use-os-certs") {
      o_.tls_use_os_certs = true;
    } else if (opt == "--tls-version") {
      if (!take("--tls-version argument given but no version specified.")) return false;
      o_.tls_version = *value;
    } else if (opt == "-u" || opt == "--username") {
      if (!take("-u argument given but no username specified.")) return false;
      o_.username = *value;
    } else if (opt == "--unix") {
      if (!take("--unix argument given but no socket path specified.")) return false;
      o_.unix_socket = *value;
    } else if ((opt == "-U" || opt == "--unsubscribe") && sub()) {
      if (!take("-U argument given but no unsubscribe topic specified.")) return false;
      if (!tool_utf8(*value)) return fail("Error: Malformed UTF-8 in -U argument.\n\n");
      if (!valid_subscribe_topic(*value)) {
        return fail(
            fmt::format("Error: Invalid unsubscribe topic '{}', are all '+' and '#' wildcards correct?\n", *value));
      }
      o_.unsubscribe.push_back(*value);
    } else if ((opt == "-v" || opt == "--verbose") && sub_or_rr) {
      o_.verbose = true;
    } else if (opt == "-V" || opt == "--protocol-version") {
      if (!take("--protocol-version argument given but no version specified.")) return false;
      if (*value == "mqttv31" || *value == "31") {
        o_.version = codec::Version::kV31;
      } else if (*value == "mqttv311" || *value == "311") {
        o_.version = codec::Version::kV311;
      } else if (*value == "mqttv5" || *value == "5") {
        o_.version = codec::Version::kV5;
      } else {
        return fail("Error: Invalid protocol version argument given.\n\n");
      }
    } else if (opt == "-W" && sub_or_rr) {
      if (!take("-W argument given but no timeout specified.")) return false;
      o_.timeout = c_atoi(*value);
      if (o_.timeout < 1) return fail(fmt::format("Error: Invalid timeout \"{}\".\n\n", o_.timeout));
    } else if (opt == "--will-payload") {
      if (!take("--will-payload argument given but no will payload specified.")) return false;
      o_.will_payload = *value;
    } else if (opt == "--will-qos") {
      if (!take("--will-qos argument given but no will QoS specified.")) return false;
      const int q = c_atoi(*value);
      if (q < 0 || q > 2) return fail(fmt::format("Error: Invalid will QoS {}.\n\n", q));
      o_.will_qos = static_cast<std::uint8_t>(q);
    } else if (opt == "--will-retain") {
      o_.will_retain = true;
    } else if (opt == "--will-topic") {
      if (!take("--will-topic argument given but no will topic specified.")) return false;
      if (!tool_utf8(*value)) return fail("Error: Malformed UTF-8 in --will-topic argument.\n\n");
      if (!valid_publish_topic(*value)) {
        return fail(fmt::format("Error: Invalid will topic '{}', does it contain '+' or '#'?\n", *value));
      }
      o_.will_topic = *value;
    } else if (opt == "-x") {
      if (!take("-x argument given but no session expiry interval specified.")) return false;
      if (!session_expiry(*value)) return false;
    } else {
      return fail(fmt::format("Error: Unknown option '{}'.\n", opt));
    }
  }
  return true;
}

bool Parser::finish() {
  if (o_.will_payload && !o_.will_topic) return fail("Error: Will payload given, but no will topic given.\n");
  if (o_.will_retain && !o_.will_topic) return fail("Error: Will retain given, but no will topic given.\n");
  if (o_.certfile.has_value() != o_.keyfile.has_value()) {
    return fail("Error: Both certfile and keyfile must be provided if one of them is set.\n");
  }
  if (o_.keyform && !o_.keyfile) return fail("Error: If keyform is set, keyfile must be also specified.\n");
  if (o_.tls_engine_kpass_sha1 && (!o_.tls_engine || !o_.keyform)) {
    return fail("Error: when using tls-engine-kpass-sha1, both tls-engine and keyform must also be provided.\n");
  }
  if (o_.psk && (o_.cafile || o_.capath)) {
    return fail("Error: Only one of --psk or --cafile/--capath may be used at once.\n");
  }
  if (o_.psk && !o_.psk_identity) return fail("Error: --psk-identity required if --psk used.\n");
  // A session that outlives the connection needs a client id to come back to ([MQTT-3.1.3-8] for
  // 3.1.1; on 5.0 an empty id with an unending session is pointless). -I does not count.
  const std::uint32_t expiry = o_.effective_session_expiry();
  if (o_.version == codec::Version::kV5) {
    if (expiry == kNoExpiry && !o_.client_id) {
      return fail("Error: You must provide a client id if you are using an infinite session expiry interval.\n");
    }
  } else if (!o_.clean_session && !o_.client_id) {
    return fail("Error: You must provide a client id if you are using the -c option.\n");
  }
  if (sub() && o_.topics.empty()) return fail("Error: You must specify a topic to subscribe to.\n");

  if (o_.version == codec::Version::kV5 && expiry != 0) {
    PropValue pv;
    pv.id = kSessionExpiry;
    pv.number = expiry;
    lists_[kConnectList].push_back(pv);
  }
  // Checked property by property, in the order given: the first bad value or duplicate wins.
  for (int l = 0; l < kNumLists; ++l) {
    const auto& list = lists_[l];
    for (std::size_t k = 0; k < list.size(); ++k) {
      if (!property_value_ok(list[k])) {
        return fail_quiet(fmt::format(
            "Error in {} properties: A network protocol error occurred when communicating with the broker.\n",
            kListNames[l]));
      }
      if (list[k].id == kUserProperty) continue;
      for (std::size_t m = k + 1; m < list.size(); ++m) {
        if (list[m].id == list[k].id) {
          return fail_quiet(
              fmt::format("Error in {} properties: Duplicate property in property list\n", kListNames[l]));
        }
      }
    }
  }
  codec::Properties* targets[kNumLists] = {&o_.connect_props,     &o_.publish_props,    &o_.subscribe_props,
                                           &o_.unsubscribe_props, &o_.disconnect_props, &o_.will_props};
  for (int l = 0; l < kNumLists; ++l) {
    for (const auto& p : lists_[l]) store_property(p, *targets[l]);
  }

  if (pub() && (o_.topics.empty() || o_.payload_source == PayloadSource::kNone)) {
    r_.out = usage(tool_);
    return fail_plain("Error: Both topic and message must be supplied.\n");
  }
  if (rr()) {
    if (o_.topics.empty() || o_.payload_source == PayloadSource::kNone || !o_.response_topic) {
      return fail("Error: All of topic, message, and response topic must be supplied.\n");
    }
    // rr sets the response topic itself (-e).
    if (o_.publish_props.response_topic) {
      return fail_plain(o_.quiet ? "" : "Error in PUBLISH properties: Duplicate response topic.\n");
    }
  }
  if (sub() && o_.no_retained && o_.retained_only) {
    return fail_plain("\nError: Combining '-R' and '--retained-only' makes no sense.\n");
  }

  const auto unsupported = [&](const char* name) { o_.unsupported.emplace_back(name); };
  if (o_.srv_lookup) unsupported("-S");
  if (o_.keyform && iequals(*o_.keyform, "engine")) unsupported("--keyform");
  if (o_.tls_engine) unsupported("--tls-engine");
  if (o_.tls_engine_kpass_sha1) unsupported("--tls-engine-kpass-sha1");
  if (o_.proxy) unsupported("--proxy");
  return true;
}

// Splits the option file into lines of one or two arguments (rules in options.hpp). Each line is
// parsed on its own, as the tools do: "-D publish user-property k v" on one line is "-D" with a
// single argument, whatever the next line holds. Lines have no length limit (the Mosquitto tools
// split lines longer than 1023 bytes, a buffer artefact not reproduced).
std::vector<std::vector<std::string>> option_file_lines(const std::string& text) {
  std::vector<std::vector<std::string>> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    // The tools read lines as C strings: a NUL ends the line.
    if (const std::size_t nul = line.find('\0'); nul != std::string::npos) line.resize(nul);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
    if (!line.empty() && line[0] == '#') continue;
    const std::size_t first = line.find_first_not_of(' ');
    if (first == std::string::npos) continue;
    line.erase(0, first);
    const std::size_t space = line.find(' ');
    if (space == std::string::npos) {
      lines.push_back({line});
    } else if (space + 1 < line.size()) {
      lines.push_back({line.substr(0, space), line.substr(space + 1)});
    } else {
      lines.push_back({line.substr(0, space)});
    }
  }
  return lines;
}

std::optional<std::string> option_file_path(Tool tool, const std::map<std::string, std::string>& env) {
  if (const auto xdg = env.find("XDG_CONFIG_HOME"); xdg != env.end()) {
    return xdg->second + "/" + option_file_name(tool);
  }
  if (const auto home = env.find("HOME"); home != env.end()) {
    return home->second + "/.config/" + option_file_name(tool);
  }
  return std::nullopt;
}

}  // namespace

ParseOutcome parse_options(Tool tool, const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env, ClientOptions& opts) {
  opts = ClientOptions{};
  opts.tool = tool;
  if (tool == Tool::kRr) opts.version = codec::Version::kV5;
  ParseOutcome outcome;
  Parser parser(tool, opts, outcome);
  if (const auto path = option_file_path(tool, env)) {
    // C stdio rather than streams: reading a directory makes libstdc++ throw, and a directory or an
    // unreadable file simply counts as no file.
    std::string text;
    if (std::FILE* f = std::fopen(path->c_str(), "rb")) {
      char buf[4096];
      std::size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
      std::fclose(f);
    }
    for (const auto& line : option_file_lines(text)) {
      if (!parser.run(line)) return outcome;
    }
  }
  if (!parser.run(args)) return outcome;
  parser.finish();
  return outcome;
}

// --- Usage ---------------------------------------------------------------------------------------

namespace {

constexpr unsigned kPub = 1, kSub = 2, kRr = 4, kAll = kPub | kSub | kRr;

unsigned tool_bit(Tool tool) { return tool == Tool::kPub ? kPub : tool == Tool::kSub ? kSub : kRr; }

struct HelpLine {
  unsigned tools;
  const char* text;
};

// One entry per option, in the order Mosquitto's help lists them; descriptions in Tern's words.
constexpr HelpLine kHelp[] = {
    {kAll,
     " -A : bind the outgoing socket to this local host name or IP address, which selects the\n"
     "      network interface the client uses.\n"},
    {kAll,
     " -c : disable clean session (persistent client mode). The broker keeps the session of\n"
     "      this client id after it disconnects, and the session never expires; an MQTT v5\n"
     "      client can choose its expiry interval with -x. Needs -i.\n"},
    {kSub, " -C : disconnect and exit after receiving msg_count messages.\n"},
    {kAll, " -d : print debug messages.\n"},
    {kAll,
     " -D : add an MQTT v5 property: -D command identifier value, or\n"
     "      -D command user-property name value. Makes the client an MQTT v5 client.\n"},
    {kRr, " -e : response topic. The client subscribes to it and waits there for the response.\n"},
    {kSub, " -E : exit as soon as the broker has acknowledged all subscriptions.\n"},
    {kPub, " -f : send the contents of a file as the message.\n"},
    {kRr, " -f : send the contents of a file as the request.\n"},
    {kSub | kRr, " -F : output format of each received message (%t topic, %p payload, %j JSON, ...).\n"},
    {kAll, " -h : host name of the MQTT broker. Defaults to localhost.\n"},
    {kAll, " -i : client id. Without it the broker assigns one (MQTT v3.1: a random mosq- id).\n"},
    {kAll,
     " -I : client id prefix: the id is the prefix followed by the process id, for brokers\n"
     "      that use the clientid_prefixes option.\n"},
    {kAll, " -k : keep alive interval in seconds, 5 to 65535. Defaults to 60.\n"},
    {kAll,
     " -L : user, password, host, port and topic as one URL:\n"
     "      mqtt(s)://[username[:password]@]host[:port]/topic\n"},
    {kPub, " -l : read messages from stdin and send each line as a separate message.\n"},
    {kPub, " -m : payload of the message to send.\n"},
    {kRr, " -m : payload of the request to send.\n"},
    {kAll, " -M : the maximum number of QoS 1 and 2 messages in flight. Defaults to 20.\n"},
    {kPub, " -n : send a null (zero length) message.\n"},
    {kRr, " -n : send a null (zero length) request.\n"},
    {kSub | kRr, " -N : do not print a newline after each payload.\n"},
    {kAll,
     " -p : network port of the broker. Defaults to 1883, or 8883 with --cafile, --capath\n"
     "      or --psk.\n"},
    {kAll, " -P : password for authentication.\n"},
    {kPub, " -q : quality of service of the messages: 0, 1 or 2. Defaults to 0.\n"},
    {kSub, " -q : quality of service of the subscriptions: 0, 1 or 2. Defaults to 0.\n"},
    {kRr, " -q : quality of service of the request and the response subscription. Defaults to 0.\n"},
    {kPub, " -r : have the broker retain the message.\n"},
    {kSub | kRr, " -R : do not print stale messages (those with the retain flag set).\n"},
    {kPub, " -s : read all of stdin and send it as one message.\n"},
    {kRr, " -s : read all of stdin and send it as the request.\n"},
    {kAll, " -S : find the broker through a DNS SRV lookup.\n"},
    {kPub, " -t : topic to publish to.\n"},
    {kSub, " -t : topic filter to subscribe to. May be repeated.\n"},
    {kRr, " -t : topic to send the request to.\n"},
    {kSub, " -T : topic filter whose messages are not printed. May be repeated.\n"},
    {kAll, " -u : username for authentication.\n"},
    {kSub, " -U : topic filter to unsubscribe from after subscribing. May be repeated.\n"},
    {kSub | kRr, " -v : print the topic before each payload.\n"},
    {kPub | kSub,
     " -V : MQTT protocol version: mqttv5 (or 5), mqttv311 (311) or mqttv31 (31).\n"
     "      Defaults to mqttv311.\n"},
    {kRr,
     " -V : MQTT protocol version: mqttv5 (or 5), mqttv311 (311) or mqttv31 (31).\n"
     "      Defaults to mqttv5.\n"},
    {kSub, " -W : stop processing messages and disconnect after this many seconds.\n"},
    {kRr, " -W : give up waiting for the response after this many seconds.\n"},
    {kAll,
     " -x : session-expiry-interval of the CONNECT packet (MQTT v5 only): 0 to 4294967294\n"
     "      seconds after the disconnection, or -1, 4294967295 or \u221E for a session that\n"
     "      never expires. Defaults to -1 with -c, otherwise 0.\n"},
    {kAll, " --help : print this help.\n"},
    {kAll,
     " --nodelay : disable Nagle's algorithm: lower latency per message at the cost of\n"
     "             possibly more packets.\n"},
    {kSub | kRr, " --pretty : indent the JSON of the %j and %J output formats.\n"},
    {kAll, " --quiet : print no runtime errors.\n"},
    {kSub,
     " --random-filter : print only this percentage of the received messages on average,\n"
     "                   e.g. 50.0 for half of them. 100 prints all.\n"},
    {kPub, " --repeat : with -f, -m or -s, publish the message N times.\n"},
    {kPub,
     " --repeat-delay : with --repeat, wait this many seconds (fractions allowed) between\n"
     "                  publishes. Defaults to 0.\n"},
    {kSub,
     " --retained-only : handle only retained messages, and exit at the first message\n"
     "                   without the retain flag.\n"},
    {kSub,
     " --remove-retained : clear every retained message received, by publishing an empty\n"
     "                     retained message to its topic. -T exempts topics.\n"},
    {kSub | kRr, " --retain-as-published : subscribe with the MQTT v5 \"retain as published\" option.\n"},
    {kAll,
     " --unix : connect through this unix domain socket instead of TCP,\n"
     "          e.g. /tmp/mosquitto.sock\n"},
    {kAll, " --version : print the version.\n"},
    {kAll,
     " --will-payload : payload of the client's Will, which the broker publishes if the\n"
     "                  client disconnects unexpectedly. Without it the Will payload is\n"
     "                  empty.\n"},
    {kAll, " --will-qos : QoS of the Will.\n"},
    {kAll, " --will-retain : make the Will a retained message.\n"},
    {kAll, " --will-topic : topic of the Will.\n"},
    {kAll, " --cafile : file of trusted CA certificates; enables TLS.\n"},
    {kAll, " --capath : directory of trusted CA certificates; enables TLS.\n"},
    {kAll, " --cert : client certificate, for servers that require one (with --key).\n"},
    {kAll, " --key : private key of the client certificate (with --cert).\n"},
    {kAll, " --keyform : type of the key file: \"pem\" or \"engine\".\n"},
    {kAll, " --ciphers : OpenSSL list of the TLS ciphers to offer.\n"},
    {kAll,
     " --tls-version : TLS version: tlsv1.3, tlsv1.2 or tlsv1.1. Defaults to tlsv1.2 if\n"
     "                 available.\n"},
    {kAll,
     " --insecure : do not check that the server certificate matches the host name. Anyone\n"
     "              who can redirect the connection can then pose as the server: use it\n"
     "              for tests only, never in production.\n"},
    {kAll,
     " --tls-alpn : ALPN protocol to ask for, for brokers that serve several protocols on\n"
     "              one port.\n"},
    {kAll, " --tls-engine : OpenSSL engine to use for TLS.\n"},
    {kAll, " --tls-engine-kpass-sha1 : SHA1 of the key password, for the TLS engine.\n"},
    {kAll, " --tls-use-os-certs : trust the CA certificates of the operating system.\n"},
    {kAll, " --psk : pre-shared key in hexadecimal (no leading 0x); enables TLS-PSK.\n"},
    {kAll, " --psk-identity : client identity for TLS-PSK.\n"},
    {kAll,
     " --proxy : SOCKS5 proxy URL: socks5h://[username[:password]@]hostname[:port]\n"
     "           with \"none\" or \"username\" authentication.\n"},
};

}  // namespace

std::string usage(Tool tool) {
  const std::string name = tool_name(tool);
  const std::string pad(std::string("Usage: ").size() + name.size() + 1, ' ');
  std::string text;
  switch (tool) {
    case Tool::kPub:
      text += name + " is a simple MQTT client that publishes a message on a topic and exits.\n";
      break;
    case Tool::kSub:
      text += name + " is a simple MQTT client that subscribes to topics and prints the messages it receives.\n";
      break;
    case Tool::kRr:
      text += name + " is an MQTT client that publishes a request message and waits for the response.\n" +
              std::string(name.size() + 1, ' ') +
              "It uses the MQTT v5 request-response feature by default; -V 311 works with\n" +
              std::string(name.size() + 1, ' ') + "MQTT v3.1.1 brokers.\n";
      break;
  }
  text += fmt::format("{} version {} (Tern), with the options of mosquitto_{} 2.0.11.\n\n", name, TERN_VERSION_STRING,
                      tool == Tool::kPub   ? "pub"
                      : tool == Tool::kSub ? "sub"
                                           : "rr");
  text += "Usage: " + name + " {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL";
  switch (tool) {
    case Tool::kPub:
      text += "}\n";
      text += pad + "{-f file | -l | -n | -m message | -s}\n";
      text += pad + "[-c] [-k keepalive] [-q qos] [-r] [--repeat N] [--repeat-delay time] [-x session-expiry]\n";
      break;
    case Tool::kSub:
      text += " [-t topic]}\n";
      text += pad + "[-c] [-k keepalive] [-q qos] [-x session-expiry-interval]\n";
      text += pad + "[-C msg_count] [-E] [-R] [--retained-only] [--remove-retained] [-T filter_out] [-U topic ...]\n";
      text += pad + "[-F format] [--pretty] [-N] [-v] [--random-filter chance] [--retain-as-published]\n";
      text += pad + "[-W timeout_secs]\n";
      break;
    case Tool::kRr:
      text += "} -e response-topic\n";
      text += pad + "{-f file | -m message | -n | -s}\n";
      text += pad + "[-c] [-k keepalive] [-q qos] [-R] [-x session-expiry-interval]\n";
      text += pad + "[-F format] [--pretty] [-N] [-v] [--retain-as-published]\n";
      text += pad + "[-W timeout_secs]\n";
      break;
  }
  text += pad + "[-A bind_address] [--nodelay] [-S]\n";
  text += pad + "[-i id] [-I id_prefix] [-M max_inflight]\n";
  text += pad + "[-d] [--quiet]\n";
  text += pad + "[--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n";
  text += pad + "[{--cafile file | --capath dir} [--cert file] [--key file]\n";
  text += pad + "  [--ciphers ciphers] [--insecure] [--tls-version version]\n";
  text += pad + "  [--tls-alpn protocol]\n";
  text += pad + "  [--tls-engine engine] [--keyform keyform] [--tls-engine-kpass-sha1 kpass-sha1]]\n";
  text += pad + "  [--tls-use-os-certs]\n";
  text += pad + "[--psk hex-key --psk-identity identity [--ciphers ciphers]]\n";
  text += pad + "[--proxy socks-url]\n";
  text += pad + "[-D command identifier value]\n";
  text += "       " + name + " --help\n\n";
  const unsigned bit = tool_bit(tool);
  for (const auto& line : kHelp) {
    if ((line.tools & bit) != 0) text += line.text;
  }
  const char* file = tool == Tool::kPub ? "mosquitto_pub" : tool == Tool::kSub ? "mosquitto_sub" : "mosquitto_rr";
  text += fmt::format(
      "\nDefault options are read from $XDG_CONFIG_HOME/{0} or ~/.config/{0}, one option\n"
      "(and its value) per line.\n"
      "Tern: -S, --proxy, --tls-engine, --tls-engine-kpass-sha1 and --keyform engine are\n"
      "accepted but not supported.\n"
      "See docs/tools-options.md for every option.\n",
      file);
  return text;
}

}  // namespace tern::tools
