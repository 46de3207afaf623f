#include "core/topic.hpp"

#include <algorithm>

namespace tern {

bool valid_topic_name(std::string_view topic) {
  if (topic.empty()) return false;
  return topic.find_first_of("+#") == std::string_view::npos;
}

bool valid_topic_filter(std::string_view filter) {
  if (filter.empty()) return false;
  std::size_t level_start = 0;
  for (std::size_t i = 0; i < filter.size(); ++i) {
    char c = filter[i];
    if (c == '/') {
      level_start = i + 1;
      continue;
    }
    if (c == '+') {
      bool alone = i == level_start && (i + 1 == filter.size() || filter[i + 1] == '/');
      if (!alone) return false;
    } else if (c == '#') {
      if (i != level_start || i + 1 != filter.size()) return false;
    }
  }
  return true;
}

SharedFilter parse_shared_subscription(std::string_view filter, std::string_view& name, std::string_view& inner) {
  constexpr std::string_view kPrefix = "$share";
  if (filter.substr(0, kPrefix.size()) != kPrefix) return SharedFilter::kNotShared;
  if (filter.size() > kPrefix.size() && filter[kPrefix.size()] != '/') return SharedFilter::kNotShared;  // "$shared/x"
  std::string_view rest = filter.substr(std::min(filter.size(), kPrefix.size() + 1));
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return SharedFilter::kInvalid;  // "$share", "$share/g": no filter
  name = rest.substr(0, slash);
  inner = rest.substr(slash + 1);
  if (name.empty() || inner.empty()) return SharedFilter::kInvalid;  // [MQTT-4.8.2-1], [MQTT-4.8.2-2]
  if (name.find_first_of("+#") != std::string_view::npos) return SharedFilter::kInvalid;  // [MQTT-4.8.2-2]
  return SharedFilter::kShared;
}

bool topic_matches(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic[0] == '$' && !filter.empty() && (filter[0] == '+' || filter[0] == '#')) {
    return false;  // [MQTT-4.7.2-1]
  }
  std::size_t f = 0;
  std::size_t t = 0;
  while (true) {
    // Current level of each.
    std::size_t fe = filter.find('/', f);
    if (fe == std::string_view::npos) fe = filter.size();
    std::string_view flevel = filter.substr(f, fe - f);
    if (flevel == "#") return true;  // matches parent and all children
    bool topic_done = t > topic.size();
    if (topic_done) return false;
    std::size_t te = topic.find('/', t);
    if (te == std::string_view::npos) te = topic.size();
    std::string_view tlevel = topic.substr(t, te - t);
    if (flevel != "+" && flevel != tlevel) return false;
    bool flast = fe == filter.size();
    bool tlast = te == topic.size();
    if (flast && tlast) return true;
    if (flast) return false;
    if (tlast) {
      // Topic ended; the filter may still match with a trailing "/#" ("a/#" matches "a").
      std::string_view rest = filter.substr(fe + 1);
      return rest == "#";
    }
    f = fe + 1;
    t = te + 1;
  }
}

std::size_t topic_levels(std::string_view topic) {
  std::size_t n = 1;
  for (char c : topic) n += c == '/';
  return n;
}

}  // namespace tern
