// mosquitto_sub 2.0.11 output, rebuilt from its measured behaviour (docs/tools-format.md). Every
// rule below that looks odd (padding of %-p, truncated %12x, "Z+0100", %j's "topic-alias") is
// what the real program prints; tests/unit/format_test.cpp holds the captured bytes.
#include "tools/format.hpp"

#include <algorithm>
#include <array>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <ctime>

namespace tern::tools {
namespace {

// mosquitto_sub reads widths into an int and overflows; Tern clamps them instead.
constexpr std::size_t kMaxWidth = std::size_t{1} << 20;
// Deepest nesting of arrays and objects a %J payload may have (1000 passes, 1001 is "not JSON").
constexpr int kMaxJsonNesting = 1000;

// ---------------------------------------------------------------------------------------------
// Format specifiers: '%' ['-'] [width, a leading '0' meaning zero padding] ['.' [precision]] conv.

struct Spec {
  bool left = false;
  bool zero = false;
  std::size_t width = 0;
  std::optional<std::size_t> precision;
  char conv = 0;
};

enum class SpecResult { kOk, kIncomplete, kInvalid };

constexpr std::string_view kConversions = "%ACDEFIJPRSUXjlmpqrtx";
constexpr std::string_view kEscapes = "\\0aenrtv";

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// `i` indexes the character after '%'; on return it indexes the character after the specifier.
SpecResult parse_spec(std::string_view fmt, std::size_t& i, Spec& s) {
  const std::size_t n = fmt.size();
  if (i == n) return SpecResult::kIncomplete;
  if (fmt[i] == '-') {
    s.left = true;
    if (++i == n) return SpecResult::kIncomplete;
  }
  if (fmt[i] == '0') s.zero = true;
  for (; i < n && is_digit(fmt[i]); ++i) s.width = std::min(s.width * 10 + std::size_t(fmt[i] - '0'), kMaxWidth);
  if (i == n) return SpecResult::kIncomplete;
  if (fmt[i] == '.') {
    std::size_t p = 0;
    for (++i; i < n && is_digit(fmt[i]); ++i) p = std::min(p * 10 + std::size_t(fmt[i] - '0'), kMaxWidth);
    s.precision = p;
    if (i == n) return SpecResult::kIncomplete;
  }
  s.conv = fmt[i++];
  return kConversions.find(s.conv) == std::string_view::npos ? SpecResult::kInvalid : SpecResult::kOk;
}

// ---------------------------------------------------------------------------------------------
// Padding, as printf's %*s / %0*d do it.

void pad(std::string& out, std::string_view s, const Spec& spec, char fill = ' ') {
  const std::size_t w = spec.width;
  if (s.size() >= w) {
    out.append(s);
  } else if (spec.left) {
    out.append(s);
    out.append(w - s.size(), ' ');
  } else {
    out.append(w - s.size(), fill);
    out.append(s);
  }
}

// A string parameter (%t %C %R %I): precision cuts, width pads with blanks (the 0 flag is ignored).
void put_string(std::string& out, std::string_view s, const Spec& spec) {
  if (spec.precision && s.size() > *spec.precision) s = s.substr(0, *spec.precision);
  pad(out, s, spec);
}

// A number parameter (%A %E %F %l %m %S): printf's %d with width and the 0 and - flags; precision
// is ignored. An absent property is an empty string padded with zeros when the 0 flag is given,
// even with '-' (%-05E prints "00000"), else with blanks.
void put_number(std::string& out, std::optional<std::int64_t> v, const Spec& spec) {
  if (!v) {
    out.append(spec.width, spec.zero ? '0' : ' ');
    return;
  }
  char buf[24];
  const std::string_view s(buf, std::size_t(std::to_chars(buf, buf + sizeof buf, *v).ptr - buf));
  const bool zeros = spec.zero && !spec.left;
  if (zeros && s[0] == '-' && s.size() < spec.width) {
    out.push_back('-');
    out.append(spec.width - s.size(), '0');
    out.append(s.substr(1));
    return;
  }
  pad(out, s, spec, zeros ? '0' : ' ');
}

constexpr char kHexLower[] = "0123456789abcdef";
constexpr char kHexUpper[] = "0123456789ABCDEF";

void append_hex(std::string& out, std::string_view bytes, const char* digits) {
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
}

// %p, %x and %X. With a width w, mosquitto_sub prints at most w payload bytes (%p), or the hex
// of at most min(w, length) / 2 bytes (%x, %X), padded to w. With '-' and no width it pads the
// full payload (or its hex) with as many blanks as the payload has bytes.
void put_payload(std::string& out, std::string_view payload, const Spec& spec, const char* hex) {
  const char fill = spec.zero && !spec.left ? '0' : ' ';
  if (spec.width == 0) {
    if (hex) {
      append_hex(out, payload, hex);
    } else {
      out.append(payload);
    }
    if (spec.left) out.append(payload.size(), ' ');
    return;
  }
  const std::size_t shown = hex ? std::min(spec.width, payload.size()) & ~std::size_t{1}
                                : std::min(spec.width, payload.size());
  if (!spec.left) out.append(spec.width - shown, fill);
  if (hex) {
    append_hex(out, payload.substr(0, shown / 2), hex);
  } else {
    out.append(payload.substr(0, shown));
  }
  if (spec.left) out.append(spec.width - shown, ' ');
}

// ---------------------------------------------------------------------------------------------
// JSON output, byte for byte as mosquitto_sub writes it (compact, or --pretty with tabs).

// Bytes a JSON string escapes: control characters, '"' and '\\'.
constexpr auto kNeedsEscape = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[std::size_t(c)] = true;
  t['"'] = t['\\'] = true;
  return t;
}();

// A JSON string of `s` up to its first NUL byte (mosquitto_sub treats payload, topic and binary
// properties as C strings here). Bytes >= 0x80 and 0x7F pass unchanged, valid UTF-8 or not.
void append_json_string(std::string& out, std::string_view s) {
  if (const auto nul = s.find('\0'); nul != std::string_view::npos) s = s.substr(0, nul);
  out.reserve(out.size() + s.size() + 2);
  out.push_back('"');
  std::size_t run = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (!kNeedsEscape[c]) continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        out.append("\\u00");
        out.push_back(kHexLower[c >> 4]);
        out.push_back(kHexLower[c & 15]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

// Numbers print as "%1.15g", or "%1.17g" when the shorter form does not read back as the same
// value within a relative DBL_EPSILON; infinities print as null.
void append_json_number(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out.append("null");
    return;
  }
  // to_chars with a precision prints as printf's %.*g does, without printf's cost or locale.
  char buf[40];
  char* end = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::general, 15).ptr;
  double back = 0;
  std::from_chars(buf, end, back);
  if (std::fabs(back - d) > std::max(std::fabs(back), std::fabs(d)) * DBL_EPSILON) {
    end = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::general, 17).ptr;
  }
  out.append(buf, std::size_t(end - buf));
}

void append_tabs(std::string& out, int n) { out.append(std::size_t(n), '\t'); }

// Writes one JSON object member by member; `depth` is the nesting of the object itself (0 for
// the outermost), which sets the tabs of --pretty.
class ObjectWriter {
 public:
  ObjectWriter(std::string& out, bool pretty, int depth) : out_(out), pretty_(pretty), depth_(depth) {
    out_.push_back('{');
    if (pretty_) out_.push_back('\n');
  }
  // Starts a member; the caller appends its value next.
  void key(std::string_view k) {
    if (!first_) {
      out_.push_back(',');
      if (pretty_) out_.push_back('\n');
    }
    first_ = false;
    if (pretty_) append_tabs(out_, depth_ + 1);
    append_json_string(out_, k);
    out_.push_back(':');
    if (pretty_) out_.push_back('\t');
  }
  void close() {
    if (pretty_) {
      if (!first_) out_.push_back('\n');
      append_tabs(out_, depth_);
    }
    out_.push_back('}');
  }
  std::string& out() { return out_; }
  int child_depth() const { return depth_ + 1; }

 private:
  std::string& out_;
  bool pretty_;
  int depth_;
  bool first_ = true;
};

// Parses a %J payload and prints it again, compact or pretty, the way mosquitto_sub (cJSON)
// reads and writes JSON: duplicate keys are kept, numbers are re-printed from a double, control
// bytes 0x01-0x20 count as white space, a NUL byte anywhere makes the payload invalid, and a string
// ends at its first \u0000 (or \u escape with a non-hex digit).
class JsonReprinter {
 public:
  JsonReprinter(std::string_view in, std::string& out, bool pretty)
      : p_(in.data()), end_(in.data() + in.size()), out_(out), pretty_(pretty) {}

  // Prints the value at `depth`; false (with partial output) when the input is not JSON.
  bool run(int depth) {
    if (std::string_view(p_, std::size_t(end_ - p_)).find('\0') != std::string_view::npos) return false;
    skip_space();
    if (!value(depth, 0)) return false;
    skip_space();
    return p_ == end_;
  }

 private:
  void skip_space() {
    while (p_ < end_ && static_cast<unsigned char>(*p_) <= 32) ++p_;
  }

  bool literal(std::string_view word) {
    if (std::size_t(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    out_.append(word);
    p_ += word.size();
    return true;
  }

  bool value(int depth, int nesting) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '{': return object(depth, nesting + 1);
      case '[': return array(depth, nesting + 1);
      case '"': return string();
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default:
        if (*p_ == '-' || is_digit(*p_)) return number();
        return false;
    }
  }

  bool object(int depth, int nesting) {
    if (nesting > kMaxJsonNesting) return false;
    ++p_;
    ObjectWriter w(out_, pretty_, depth);
    skip_space();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      w.close();
      return true;
    }
    bool first = true;
    while (true) {
      skip_space();
      if (p_ == end_ || *p_ != '"') return false;
      // The key goes through the string parser, so write the separator and indentation here.
      if (!first) {
        out_.push_back(',');
        if (pretty_) out_.push_back('\n');
      }
      first = false;
      if (pretty_) append_tabs(out_, depth + 1);
      if (!string()) return false;
      skip_space();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      out_.push_back(':');
      if (pretty_) out_.push_back('\t');
      skip_space();
      if (!value(depth + 1, nesting)) return false;
      skip_space();
      if (p_ < end_ && *p_ == ',') {
        ++p_;
        continue;
      }
      if (p_ == end_ || *p_ != '}') return false;
      ++p_;
      if (pretty_) {
        out_.push_back('\n');
        append_tabs(out_, depth);
      }
      out_.push_back('}');
      return true;
    }
  }

  bool array(int depth, int nesting) {
    if (nesting > kMaxJsonNesting) return false;
    ++p_;
    out_.push_back('[');
    skip_space();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      out_.push_back(']');
      return true;
    }
    while (true) {
      skip_space();
      if (!value(depth + 1, nesting)) return false;
      skip_space();
      if (p_ < end_ && *p_ == ',') {
        ++p_;
        out_.append(pretty_ ? ", " : ",");
        continue;
      }
      if (p_ == end_ || *p_ != ']') return false;
      ++p_;
      out_.push_back(']');
      return true;
    }
  }

  static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // Four hex digits; any other character makes the whole escape 0 (which ends the string).
  static std::uint32_t hex4(const char* s) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int d = hex_digit(s[i]);
      if (d < 0) return 0;
      v = v * 16 + std::uint32_t(d);
    }
    return v;
  }

  static void append_utf8(std::string& s, std::uint32_t cp) {
    if (cp < 0x80) {
      s.push_back(char(cp));
    } else if (cp < 0x800) {
      s.push_back(char(0xC0 | (cp >> 6)));
      s.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s.push_back(char(0xE0 | (cp >> 12)));
      s.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(char(0x80 | (cp & 0x3F)));
    } else {
      s.push_back(char(0xF0 | (cp >> 18)));
      s.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      s.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(char(0x80 | (cp & 0x3F)));
    }
  }

  // The closing quote is found first (skipping the character after each backslash); every escape
  // must then fit before it, so "\u12" followed by a quote is invalid rather than read across it.
  bool string() {
    const char* close = p_ + 1;
    while (close < end_ && *close != '"') close += *close == '\\' ? 2 : 1;
    if (close >= end_) return false;
    std::string decoded;  // only strings with escapes land here
    const char* s = p_ + 1;
    const char* run = s;
    bool has_escape = false;
    while (s < close) {
      if (*s != '\\') {
        ++s;
        continue;
      }
      has_escape = true;
      decoded.append(run, std::size_t(s - run));
      const char e = s[1];
      std::size_t used = 2;
      switch (e) {
        case 'b': decoded.push_back('\b'); break;
        case 'f': decoded.push_back('\f'); break;
        case 'n': decoded.push_back('\n'); break;
        case 'r': decoded.push_back('\r'); break;
        case 't': decoded.push_back('\t'); break;
        case '"':
        case '\\':
        case '/': decoded.push_back(e); break;
        case 'u': {
          if (close - s < 6) return false;
          std::uint32_t cp = hex4(s + 2);
          used = 6;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (close - s < 12 || s[6] != '\\' || s[7] != 'u') return false;
            const std::uint32_t low = hex4(s + 8);
            if (low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + (((cp & 0x3FF) << 10) | (low & 0x3FF));
            used = 12;
          }
          append_utf8(decoded, cp);
          break;
        }
        default: return false;
      }
      s += used;
      run = s;
    }
    if (has_escape) {
      // A \u with non-hex digits can swallow the first half of a later escape, whose second half
      // may then be the closing quote: `run` is past it, and the string already ends at the NUL.
      if (run < close) decoded.append(run, std::size_t(close - run));
      append_json_string(out_, decoded);
    } else {
      append_json_string(out_, std::string_view(p_ + 1, std::size_t(close - p_ - 1)));
    }
    p_ = close + 1;
    return true;
  }

  // The longest run of number characters goes to strtod, which must take at least one of them;
  // what it leaves is parsed as what follows the number (and so is usually an error).
  bool number() {
    const char* run_end = p_;
    while (run_end < end_ && (is_digit(*run_end) || *run_end == '+' || *run_end == '-' || *run_end == 'e' ||
                              *run_end == 'E' || *run_end == '.')) {
      ++run_end;
    }
    // strtod needs a terminated copy (and stops where the run does); long runs are rare. It reads
    // '.' as the decimal point in the "C" locale, which `tern` never changes. (from_chars would not
    // tell an overflow, printed null, from an underflow, printed 0.)
    const std::size_t len = std::size_t(run_end - p_);
    char small[64];
    std::string large;
    char* text = small;
    if (len >= sizeof small) {
      large.assign(p_, len);
      text = large.data();
    } else {
      std::copy(p_, run_end, small);
      small[len] = '\0';
    }
    char* stop = nullptr;
    const double d = std::strtod(text, &stop);
    if (stop == text) return false;
    p_ += stop - text;
    append_json_number(out_, d);
    return true;
  }

  const char* p_;
  const char* end_;
  std::string& out_;
  bool pretty_;
};

// ---------------------------------------------------------------------------------------------
// One message being printed with -F.

// Room for "-2147481748-12-31T23:59:59.999999Z+2359".
constexpr std::size_t kIsoTimeSize = 48;

// `v` in decimal with at least `width` digits (zeros in front), as printf's %0*lld does for v >= 0.
char* put_zero_padded(char* p, std::int64_t v, int width) {
  char tmp[24];
  const char* end = std::to_chars(tmp, tmp + sizeof tmp, v).ptr;
  for (auto len = end - tmp; len < width; ++len) *p++ = '0';
  for (const char* q = tmp; q < end; ++q) *p++ = *q;
  return p;
}

class Renderer {
 public:
  Renderer(const codec::Publish& msg, std::chrono::system_clock::time_point when, bool pretty, std::string& out)
      : msg_(msg), pretty_(pretty), out_(out) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
    secs_ = ns / 1'000'000'000;
    nsec_ = ns % 1'000'000'000;
    if (nsec_ < 0) {
      nsec_ += 1'000'000'000;
      --secs_;
    }
  }

  void run(std::string_view fmt) {
    const std::size_t n = fmt.size();
    std::size_t i = 0;
    while (i < n) {
      const char c = fmt[i];
      if (c == '%') {
        const std::size_t start = i++;
        Spec spec;
        if (parse_spec(fmt, i, spec) != SpecResult::kOk) {
          out_.append(fmt.substr(start, i - start));  // not valid: check_format reports it
          continue;
        }
        conversion(spec);
      } else if (c == '@') {
        if (i + 1 == n) {
          out_.push_back('@');
          break;
        }
        time_sequence(fmt[i + 1]);
        i += 2;
      } else if (c == '\\') {
        if (i + 1 == n) {
          out_.push_back('\\');
          break;
        }
        escape(fmt[i + 1]);
        i += 2;
      } else {
        const std::size_t next = fmt.find_first_of("%@\\", i);
        const std::size_t stop = next == std::string_view::npos ? n : next;
        out_.append(fmt.substr(i, stop - i));
        i = stop;
      }
    }
  }

  std::string take_errors() { return std::move(errors_); }

 private:
  const codec::Properties& props() const { return msg_.props; }

  const std::tm& local() {
    if (!tm_) {
      std::tm tm{};
      const std::time_t t = static_cast<std::time_t>(secs_);
      localtime_r(&t, &tm);
      tm_ = tm;
    }
    return *tm_;
  }

  // "2024-05-06T22:12:00+0100" (strftime's %Y-%m-%dT%H:%M:%S%z); for %j's "tst" the microseconds
  // and a literal 'Z' come before the offset (sic: local time, 'Z', then the offset). Written by
  // hand: snprintf costs ten times as much, and %j may run a million times a second.
  std::size_t iso_time(char (&buf)[kIsoTimeSize], bool micro) {
    const std::tm& tm = local();
    char* p = buf;
    p = put_zero_padded(p, tm.tm_year + 1900, 4);
    *p++ = '-';
    p = put_zero_padded(p, tm.tm_mon + 1, 2);
    *p++ = '-';
    p = put_zero_padded(p, tm.tm_mday, 2);
    *p++ = 'T';
    p = put_zero_padded(p, tm.tm_hour, 2);
    *p++ = ':';
    p = put_zero_padded(p, tm.tm_min, 2);
    *p++ = ':';
    p = put_zero_padded(p, tm.tm_sec, 2);
    if (micro) {
      *p++ = '.';
      p = put_zero_padded(p, nsec_ / 1000, 6);
      *p++ = 'Z';
    }
    const long off = tm.tm_gmtoff;
    const long mins = (off < 0 ? -off : off) / 60;
    *p++ = off < 0 ? '-' : '+';
    p = put_zero_padded(p, mins / 60, 2);
    p = put_zero_padded(p, mins % 60, 2);
    return std::size_t(p - buf);
  }

  void conversion(const Spec& spec) {
    const codec::Properties& p = props();
    switch (spec.conv) {
      case '%': out_.push_back('%'); break;
      case 'A': put_number(out_, opt(p.topic_alias), spec); break;
      case 'C':
        put_string(out_, p.content_type ? std::string_view(*p.content_type) : std::string_view(), spec);
        break;
      case 'D':
        if (p.correlation_data) out_.append(*p.correlation_data);
        break;
      case 'E':
        // Printed as a signed int: 4294967295 shows as -1 (but as 4294967295 in %j).
        put_number(out_, p.message_expiry ? std::optional<std::int64_t>(std::int32_t(*p.message_expiry)) : std::nullopt,
                   spec);
        break;
      case 'F': put_number(out_, opt(p.payload_format), spec); break;
      case 'I': {
        char buf[kIsoTimeSize];
        put_string(out_, std::string_view(buf, iso_time(buf, false)), spec);
        break;
      }
      case 'j': json(false); break;
      case 'J': json(true); break;
      case 'l': put_number(out_, std::int64_t(msg_.payload.size()), spec); break;
      case 'm': put_number(out_, std::int64_t(msg_.packet_id), spec); break;
      case 'P':
        for (std::size_t k = 0; k < p.user_properties.size(); ++k) {
          if (k) out_.push_back(' ');
          out_.append(p.user_properties[k].key);
          out_.push_back(':');
          out_.append(p.user_properties[k].value);
        }
        break;
      case 'p': put_payload(out_, msg_.payload, spec, nullptr); break;
      case 'q': out_.push_back(char('0' + msg_.qos)); break;
      case 'R':
        // Unlike %C, an absent response topic is not padded.
        if (p.response_topic) put_string(out_, *p.response_topic, spec);
        break;
      case 'r': out_.push_back(msg_.retain ? '1' : '0'); break;
      case 'S':
        put_number(out_,
                   p.subscription_ids.empty() ? std::nullopt
                                              : std::optional<std::int64_t>(std::int32_t(p.subscription_ids[0])),
                   spec);
        break;
      case 't': put_string(out_, msg_.topic, spec); break;
      case 'U': {
        char buf[40];
        char* p = std::to_chars(buf, buf + 24, secs_).ptr;
        *p++ = '.';
        p = put_zero_padded(p, nsec_, 9);
        out_.append(buf, std::size_t(p - buf));
        break;
      }
      case 'x': put_payload(out_, msg_.payload, spec, kHexLower); break;
      case 'X': put_payload(out_, msg_.payload, spec, kHexUpper); break;
      default: break;
    }
  }

  template <typename T>
  static std::optional<std::int64_t> opt(const std::optional<T>& v) {
    return v ? std::optional<std::int64_t>(std::int64_t(*v)) : std::nullopt;
  }

  static bool has_publish_props(const codec::Properties& p) {
    return p.payload_format || p.message_expiry || p.content_type || p.response_topic || p.correlation_data ||
           !p.subscription_ids.empty() || p.topic_alias || !p.user_properties.empty();
  }

  static void append_uint(std::string& out, std::uint64_t v) {
    char buf[24];
    out.append(buf, std::size_t(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
  }

  // %j and %J: one object with the message's fields; %J embeds the payload as JSON, and prints
  // nothing (but an error line) when the payload is not JSON.
  void json(bool payload_as_json) {
    const std::size_t mark = out_.size();
    ObjectWriter root(out_, pretty_, 0);
    char tst[kIsoTimeSize];
    root.key("tst");
    append_json_string(out_, std::string_view(tst, iso_time(tst, true)));
    root.key("topic");
    append_json_string(out_, msg_.topic);
    root.key("qos");
    append_uint(out_, msg_.qos);
    root.key("retain");
    append_uint(out_, msg_.retain ? 1 : 0);
    root.key("payloadlen");
    append_uint(out_, msg_.payload.size());
    if (msg_.qos > 0) {
      root.key("mid");
      append_uint(out_, msg_.packet_id);
    }
    const codec::Properties& p = props();
    if (has_publish_props(p)) {
      // mosquitto_sub lists properties in the order of the packet; the decoded Publish does not
      // keep it, so Tern uses the order of property identifiers (the order Tern's broker sends).
      root.key("properties");
      ObjectWriter w(out_, pretty_, root.child_depth());
      if (p.payload_format) {
        w.key("payload-format-indicator");
        append_uint(out_, *p.payload_format);
      }
      if (p.message_expiry) {
        w.key("message-expiry-interval");
        append_uint(out_, *p.message_expiry);
      }
      if (p.content_type) {
        w.key("content-type");
        append_json_string(out_, *p.content_type);
      }
      if (p.response_topic) {
        w.key("response-topic");
        append_json_string(out_, *p.response_topic);
      }
      if (p.correlation_data) {
        w.key("correlation-data");
        append_json_string(out_, *p.correlation_data);
      }
      for (auto id : p.subscription_ids) {
        w.key("subscription-identifier");
        append_uint(out_, id);
      }
      if (p.topic_alias) {
        w.key("topic-alias");
        // mosquitto_sub 2.0.11 does not print the alias here (%A has it) but the byte length of the
        // correlation data read before it, or 0: measured, see JsonTopicAlias* in the tests.
        append_uint(out_, p.correlation_data ? p.correlation_data->size() : 0);
      }
      if (!p.user_properties.empty()) {
        w.key("user-properties");
        ObjectWriter u(out_, pretty_, w.child_depth());
        for (const auto& up : p.user_properties) {
          u.key(up.key);
          append_json_string(out_, up.value);
        }
        u.close();
      }
      w.close();
    }
    root.key("payload");
    if (msg_.payload.empty()) {
      out_.append("null");
    } else if (!payload_as_json) {
      append_json_string(out_, msg_.payload);
    } else if (!JsonReprinter(msg_.payload, out_, pretty_).run(root.child_depth())) {
      out_.resize(mark);
      errors_.append("Error: Message payload is not valid JSON on topic ");
      errors_.append(msg_.topic);
      errors_.append(".\n");
      return;
    }
    root.close();
  }

  void time_sequence(char c) {
    if (c == '@') {
      out_.push_back('@');
      return;
    }
    if (c == 'N') {
      char buf[16];
      out_.append(buf, std::size_t(put_zero_padded(buf, nsec_, 9) - buf));
      return;
    }
    // Only the one character after '@' goes to strftime, whatever it is ("@5Y" is "%5" then "Y").
    const char f[3] = {'%', c, '\0'};
    char buf[256];
    const std::size_t n = std::strftime(buf, sizeof buf, f, &local());
    out_.append(buf, n);
  }

  void escape(char c) {
    switch (c) {
      case '\\': out_.push_back('\\'); break;
      case '0': out_.push_back('\0'); break;
      case 'a': out_.push_back('\a'); break;
      case 'e': out_.push_back('\x1b'); break;
      case 'n': out_.push_back('\n'); break;
      case 'r': out_.push_back('\r'); break;
      case 't': out_.push_back('\t'); break;
      case 'v': out_.push_back('\v'); break;
      default:  // not valid: check_format reports it
        out_.push_back('\\');
        out_.push_back(c);
    }
  }

  const codec::Publish& msg_;
  bool pretty_;
  std::string& out_;
  std::int64_t secs_ = 0;
  std::int64_t nsec_ = 0;
  std::optional<std::tm> tm_;
  std::string errors_;
};

}  // namespace

std::string check_format(std::string_view fmt) {
  const std::size_t n = fmt.size();
  for (std::size_t i = 0; i < n;) {
    const char c = fmt[i];
    if (c == '%') {
      ++i;
      Spec spec;
      switch (parse_spec(fmt, i, spec)) {
        case SpecResult::kOk: break;
        case SpecResult::kIncomplete: return "Error: Incomplete format specifier.";
        case SpecResult::kInvalid: return std::string("Error: Invalid format specifier '") + spec.conv + "'.";
      }
    } else if (c == '@') {
      if (i + 1 == n) return "Error: Incomplete format specifier.";
      i += 2;
    } else if (c == '\\') {
      if (i + 1 == n) return "Error: Incomplete escape specifier.";
      if (kEscapes.find(fmt[i + 1]) == std::string_view::npos) {
        return std::string("Error: Invalid escape specifier '") + fmt[i + 1] + "'.";
      }
      i += 2;
    } else {
      ++i;
    }
  }
  return {};
}

std::string format_message(const OutputFormat& f, const codec::Publish& msg, std::chrono::system_clock::time_point when,
                           std::string& out) {
  if (!f.format) {
    // An empty payload prints nothing, except "topic (null)" with -v (and not even that with -N).
    if (msg.payload.empty()) {
      if (f.verbose && f.eol) {
        out.append(msg.topic);
        out.append(" (null)\n");
      }
      return {};
    }
    if (f.verbose) {
      out.append(msg.topic);
      out.push_back(' ');
    }
    out.append(msg.payload);
    if (f.eol) out.push_back('\n');
    return {};
  }
  Renderer r(msg, when, f.pretty, out);
  r.run(*f.format);
  if (f.eol) out.push_back('\n');
  return r.take_errors();
}

}  // namespace tern::tools
