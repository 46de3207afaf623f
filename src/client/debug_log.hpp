#pragma once
// Debug lines for each packet a client sends or receives, in the words libmosquitto's clients use
// with -d ("Client ID sending PUBLISH (d0, q1, r0, m1, 'topic', ... (5 bytes))"), so `tern pub -d`
// and `tern sub -d` print what mosquitto_pub and mosquitto_sub print.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "codec/packet.hpp"

namespace tern::client {

// One line per packet; SUBSCRIBE and UNSUBSCRIBE give one line per topic filter. An empty client id
// prints as "(null)"; a received CONNACK that assigns an identifier prints with it.
std::vector<std::string> packet_log_lines(std::string_view client_id, bool sent, const codec::Packet& p,
                                          std::size_t payload_size, std::uint16_t mid);

}  // namespace tern::client
