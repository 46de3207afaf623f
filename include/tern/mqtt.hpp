#pragma once
// MQTT value types shared by the broker and the client library's public API: the protocol version,
// MQTT 5.0 properties and the will. Plain values, no I/O.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tern {

// Protocol level byte of CONNECT.
enum class Version : std::uint8_t { kV31 = 3, kV311 = 4, kV5 = 5 };

struct UserProperty {
  std::string key;
  std::string value;
  bool operator==(const UserProperty&) const = default;
};

// Every MQTT 5.0 property (section 2.2.2.2). Absent properties are nullopt / empty.
struct Properties {
  std::optional<std::uint8_t> payload_format;          // 0x01
  std::optional<std::uint32_t> message_expiry;         // 0x02
  std::optional<std::string> content_type;             // 0x03
  std::optional<std::string> response_topic;           // 0x08
  std::optional<std::string> correlation_data;         // 0x09 (binary)
  std::vector<std::uint32_t> subscription_ids;         // 0x0B
  std::optional<std::uint32_t> session_expiry;         // 0x11
  std::optional<std::string> assigned_client_id;       // 0x12
  std::optional<std::uint16_t> server_keep_alive;      // 0x13
  std::optional<std::string> auth_method;              // 0x15
  std::optional<std::string> auth_data;                // 0x16 (binary)
  std::optional<std::uint8_t> request_problem_info;    // 0x17
  std::optional<std::uint32_t> will_delay;             // 0x18
  std::optional<std::uint8_t> request_response_info;   // 0x19
  std::optional<std::string> response_info;            // 0x1A
  std::optional<std::string> server_reference;         // 0x1C
  std::optional<std::string> reason_string;            // 0x1F
  std::optional<std::uint16_t> receive_maximum;        // 0x21
  std::optional<std::uint16_t> topic_alias_maximum;    // 0x22
  std::optional<std::uint16_t> topic_alias;            // 0x23
  std::optional<std::uint8_t> maximum_qos;             // 0x24
  std::optional<std::uint8_t> retain_available;        // 0x25
  std::vector<UserProperty> user_properties;           // 0x26
  std::optional<std::uint32_t> maximum_packet_size;    // 0x27
  std::optional<std::uint8_t> wildcard_sub_available;  // 0x28
  std::optional<std::uint8_t> sub_id_available;        // 0x29
  std::optional<std::uint8_t> shared_sub_available;    // 0x2A

  bool operator==(const Properties&) const = default;
  // True when no property is present (cheaper than comparing with an empty set).
  bool empty() const {
    return !payload_format && !message_expiry && !content_type && !response_topic && !correlation_data &&
           subscription_ids.empty() && !session_expiry && !assigned_client_id && !server_keep_alive &&
           !auth_method && !auth_data && !request_problem_info && !will_delay && !request_response_info &&
           !response_info && !server_reference && !reason_string && !receive_maximum && !topic_alias_maximum &&
           !topic_alias && !maximum_qos && !retain_available && user_properties.empty() && !maximum_packet_size &&
           !wildcard_sub_available && !sub_id_available && !shared_sub_available;
  }
};

struct Will {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  Properties props;
  bool operator==(const Will&) const = default;
};

}  // namespace tern
