#pragma once
// Topic name and topic filter rules (MQTT 3.1.1 section 4.7, MQTT 5.0 section 4.7).
#include <string_view>

namespace tern {

// A topic name for PUBLISH: at least one character [MQTT-4.7.3-1], no wildcards [MQTT-3.3.2-2],
// valid UTF-8 (checked by the decoder).
bool valid_topic_name(std::string_view topic);

// A topic filter for SUBSCRIBE/UNSUBSCRIBE: at least one character [MQTT-4.7.3-1]; '#' only as the
// whole last level [MQTT-4.7.1-2]; '+' only as a whole level [MQTT-4.7.1-3]. A shared subscription
// ($share/NAME/filter) is checked with parse_shared_subscription first, then its inner filter here.
bool valid_topic_filter(std::string_view filter);

// MQTT 5.0 section 4.8.2: a filter whose first level is "$share" names a shared subscription.
enum class SharedFilter {
  kNotShared,  // an ordinary filter
  kShared,     // "$share/NAME/FILTER": `name` and `filter` are set (FILTER still needs valid_topic_filter)
  kInvalid,    // "$share" with no share name, a name with '+' or '#', or no filter after the name
};
// [MQTT-4.8.2-1] the filter starts with "$share/" and the ShareName has at least one character;
// [MQTT-4.8.2-2] the ShareName has no '/', '+' or '#' and is followed by '/' and a Topic Filter.
SharedFilter parse_shared_subscription(std::string_view filter, std::string_view& name, std::string_view& inner);

// True when the filter matches the topic name. Wildcards at the first level never match topics that
// start with '$' [MQTT-4.7.2-1].
bool topic_matches(std::string_view filter, std::string_view topic);

// Counts topic levels ("a/b/c" has 3).
std::size_t topic_levels(std::string_view topic);

}  // namespace tern
