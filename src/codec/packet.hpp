#pragma once
// Packet structs for MQTT 3.1, 3.1.1 and 5.0. Plain values: no I/O, no threads. A decoded Publish
// refers to its payload inside the caller's buffer (string_view); copy it before the buffer moves.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tern::codec {

enum class PacketType : std::uint8_t {
  kReserved = 0,
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,
};

const char* packet_name(PacketType t);

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

struct Connect {
  std::string protocol_name = "MQTT";
  Version version = Version::kV311;
  bool clean_start = true;
  std::uint16_t keepalive = 60;
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;
  Properties props;
  bool operator==(const Connect&) const = default;
};

struct Connack {
  bool session_present = false;
  std::uint8_t code = 0;  // 3.x return code or 5.0 reason code
  Properties props;
  bool operator==(const Connack&) const = default;
};

struct Publish {
  std::uint8_t qos = 0;
  bool dup = false;
  bool retain = false;
  std::string topic;
  std::uint16_t packet_id = 0;
  Properties props;
  std::string_view payload;  // points into the decoded buffer
  bool operator==(const Publish&) const = default;
};

// PUBACK, PUBREC, PUBREL, PUBCOMP.
struct Ack {
  PacketType type = PacketType::kPuback;
  std::uint16_t packet_id = 0;
  std::uint8_t reason = 0;
  Properties props;
  bool operator==(const Ack&) const = default;
};

struct SubscribeTopic {
  std::string filter;
  std::uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  std::uint8_t retain_handling = 0;
  bool operator==(const SubscribeTopic&) const = default;
};

struct Subscribe {
  std::uint16_t packet_id = 0;
  std::vector<SubscribeTopic> topics;
  Properties props;
  bool operator==(const Subscribe&) const = default;
};

// SUBACK and UNSUBACK (UNSUBACK has no codes on 3.x).
struct SubAck {
  PacketType type = PacketType::kSuback;
  std::uint16_t packet_id = 0;
  std::vector<std::uint8_t> codes;
  Properties props;
  bool operator==(const SubAck&) const = default;
};

struct Unsubscribe {
  std::uint16_t packet_id = 0;
  std::vector<std::string> filters;
  Properties props;
  bool operator==(const Unsubscribe&) const = default;
};

struct Pingreq {
  bool operator==(const Pingreq&) const = default;
};
struct Pingresp {
  bool operator==(const Pingresp&) const = default;
};

struct Disconnect {
  std::uint8_t reason = 0;
  Properties props;
  bool operator==(const Disconnect&) const = default;
};

struct Auth {
  std::uint8_t reason = 0;
  Properties props;
  bool operator==(const Auth&) const = default;
};

using Packet = std::variant<Connect, Connack, Publish, Ack, Subscribe, SubAck, Unsubscribe, Pingreq,
                            Pingresp, Disconnect, Auth>;

}  // namespace tern::codec
