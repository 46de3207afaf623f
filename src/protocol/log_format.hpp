#pragma once
// Log lines in the format of Mosquitto 2.0's verbose log, so the lecture's case studies read the same.
#include <string>
#include <string_view>

#include "protocol/session_state.hpp"

namespace tern::protocol {

// "Received PUBLISH from ID (d0, q1, r0, m1, 'topic', ... (5 bytes))" ("Sending PUBLISH to ID ...").
std::string publish_log_line(bool sending, std::string_view client_id, bool dup, int qos, bool retain,
                             int mid, std::string_view topic, std::size_t payload_size);

}  // namespace tern::protocol
