// Checks UTF-8 and topic name/filter validation and matching against reference implementations.
#include <string>
#include <string_view>
#include <vector>

#include "core/topic.hpp"
#include "core/utf8.hpp"
#include "fuzz_common.hpp"

namespace {

// Well-formed UTF-8 per the Unicode standard's table 3-7 (which excludes overlongs, surrogates and
// code points above U+10FFFF), minus U+0000.
bool ref_utf8(std::string_view s) {
  auto in = [](unsigned char c, unsigned lo, unsigned hi) { return c >= lo && c <= hi; };
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    unsigned char lo = 0x80, hi = 0xBF;
    std::size_t len;
    if (c == 0) return false;
    if (c < 0x80) { ++i; continue; }
    if (in(c, 0xC2, 0xDF)) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if (in(c, 0xE1, 0xEC) || in(c, 0xEE, 0xEF)) len = 3;
    else if (c == 0xED) { len = 3; hi = 0x9F; }
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (in(c, 0xF1, 0xF3)) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; }
    else return false;
    if (n - i < len) return false;
    if (!in(static_cast<unsigned char>(s[i + 1]), lo, hi)) return false;
    for (std::size_t k = 2; k < len; ++k) {
      if (!in(static_cast<unsigned char>(s[i + k]), 0x80, 0xBF)) return false;
    }
    i += len;
  }
  return true;
}

std::vector<std::string_view> levels(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

// Topic matching level by level (MQTT 5.0 section 4.7), for a valid filter and a valid name.
bool ref_matches(std::string_view filter, std::string_view topic) {
  // [MQTT-4.7.2-1] a wildcard first level does not match a topic name starting with '$'.
  if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
  auto f = levels(filter);
  auto t = levels(topic);
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;  // also matches the parent level: "a/#" matches "a"
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

bool ref_filter(std::string_view filter) {
  if (filter.empty()) return false;
  auto f = levels(filter);
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "+" || (f[i] == "#" && i + 1 == f.size())) continue;
    if (f[i].find_first_of("+#") != std::string_view::npos) return false;
  }
  return true;
}

void check_pair(std::string_view filter, std::string_view topic) {
  const bool name_ok = tern::valid_topic_name(topic);
  const bool filter_ok = tern::valid_topic_filter(filter);
  FUZZ_CHECK(filter_ok == ref_filter(filter));
  FUZZ_CHECK(name_ok == (!topic.empty() && topic.find_first_of("+#") == std::string_view::npos));
  (void)tern::topic_matches(filter, topic);  // any input: must not crash
  (void)tern::topic_levels(filter);
  if (name_ok) {
    FUZZ_CHECK(tern::valid_topic_filter(topic));  // every topic name is also a valid filter
    FUZZ_CHECK(tern::topic_matches(topic, topic));
    FUZZ_CHECK(tern::topic_levels(topic) == levels(topic).size());
    const bool dollar = topic[0] == '$';
    FUZZ_CHECK(tern::topic_matches("#", topic) == !dollar);
    FUZZ_CHECK(tern::topic_matches("+", topic) == (!dollar && topic.find('/') == std::string_view::npos));
  }
  if (name_ok && filter_ok) {
    const bool m = tern::topic_matches(filter, topic);
    FUZZ_CHECK(m == ref_matches(filter, topic));
    // A filter without wildcards matches exactly the identical name.
    if (tern::valid_topic_name(filter)) FUZZ_CHECK(m == (filter == topic));
    // Appending "/#" to a filter that does not end in '#' keeps every match.
    if (m && filter.back() != '#') FUZZ_CHECK(tern::topic_matches(std::string(filter) + "/#", topic));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view all(reinterpret_cast<const char*>(data), size);
  FUZZ_CHECK(tern::valid_mqtt_utf8(all) == ref_utf8(all));
  // NUL is never valid in an MQTT string, so it is free to use as the separator.
  std::size_t nul = all.find('\0');
  std::string_view filter = all.substr(0, nul);
  std::string_view topic = nul == std::string_view::npos ? std::string_view{} : all.substr(nul + 1);
  FUZZ_CHECK(tern::valid_mqtt_utf8(filter) == ref_utf8(filter));
  FUZZ_CHECK(tern::valid_mqtt_utf8(topic) == ref_utf8(topic));
  if (tern::valid_mqtt_utf8(filter) && tern::valid_mqtt_utf8(topic)) {
    FUZZ_CHECK(tern::valid_mqtt_utf8(std::string(filter) + std::string(topic)));
  }
  check_pair(filter, topic);
  check_pair(topic, filter);
  return 0;
}
