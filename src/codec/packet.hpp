#pragma once
// Packet structs for MQTT 3.1, 3.1.1 and 5.0. Plain values: no I/O, no threads. A decoded Publish
// refers to its payload inside the caller's buffer (string_view); copy it before the buffer moves.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tern/mqtt.hpp"

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

// The value types a client library user sees too (Version, UserProperty, Properties, Will) are public:
// include/tern/mqtt.hpp.
using tern::Properties;
using tern::UserProperty;
using tern::Version;
using tern::Will;

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
