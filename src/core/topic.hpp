#pragma once
// Topic name and topic filter rules (MQTT 3.1.1 section 4.7, MQTT 5.0 section 4.7).
#include <string_view>

namespace tern {

// A topic name for PUBLISH: at least one character [MQTT-4.7.3-1], no wildcards [MQTT-3.3.2-2],
// valid UTF-8 (checked by the decoder).
bool valid_topic_name(std::string_view topic);

// A topic filter for SUBSCRIBE/UNSUBSCRIBE: at least one character [MQTT-4.7.3-1]; '#' only as the
// whole last level [MQTT-4.7.1-2]; '+' only as a whole level [MQTT-4.7.1-3]. Shared subscriptions
// ($share/NAME/filter) are not handled specially yet.
bool valid_topic_filter(std::string_view filter);

// True when the filter matches the topic name. Wildcards at the first level never match topics that
// start with '$' [MQTT-4.7.2-1].
bool topic_matches(std::string_view filter, std::string_view topic);

// Counts topic levels ("a/b/c" has 3).
std::size_t topic_levels(std::string_view topic);

}  // namespace tern
