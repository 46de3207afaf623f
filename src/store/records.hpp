#pragma once
// The records of the embedded store (docs/store.md) and their binary encoding. Plain values: any
// thread may build, encode or decode them; nothing here touches the disk.
//
// Every record is a key and a value. The key starts with a one-byte prefix naming the kind, so that
// each kind is one contiguous range and a session's queue entries are contiguous and ordered by
// their sequence number (big-endian). The value starts with the record's encoding version. The
// decoders never trust a length: any truncation, trailing byte, out-of-range field or invalid
// string is an error, never a crash or a guess.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/mqtt.hpp"

namespace tern::store {

// Version of the key layout and record encodings as a whole (the format-version key's value).
// A store written by a newer version is refused.
constexpr std::uint32_t kFormatVersion = 1;

// Key prefixes. Their order is the order of the kinds in the key space.
enum class Kind : std::uint8_t {
  kMeta = 0x00,      // the format-version key
  kInbound = 'I',    // client id, packet id
  kMessage = 'M',    // message id
  kQueue = 'Q',      // client id, sequence number
  kRetained = 'R',   // topic
  kSession = 'S',    // client id
};

// Times are wall-clock milliseconds since the Unix epoch (system_clock), so they survive restarts.
using WallMs = std::uint64_t;

// An application message, stored once however many sessions it is queued to (QueueEntry refers to
// it by id). Reference counts are not stored: recovery rebuilds them and deletes unreferenced ones.
struct MessageRecord {
  std::uint64_t id = 0;  // chosen by the writer; unique in the store (0 inside a RetainedRecord)
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  Properties props;             // MQTT 5 properties forwarded to subscribers (PUBLISH rules)
  std::optional<WallMs> expiry;  // absolute expiry (Message Expiry Interval); none = never
  std::string origin;           // publishing client id (No Local)
  bool operator==(const MessageRecord&) const = default;
};

struct SubscriptionRecord {
  std::string filter;  // as subscribed, including "$share/GROUP/FILTER"
  std::uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  std::uint8_t retain_handling = 0;
  std::uint32_t subscription_id = 0;  // 0 = none; at most 268,435,455
  bool operator==(const SubscriptionRecord&) const = default;
};

struct WillRecord {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  Properties props;        // will properties other than the delay (PUBLISH rules)
  std::uint32_t delay = 0;  // Will Delay Interval, seconds
  bool operator==(const WillRecord&) const = default;
};

struct SessionRecord {
  std::string client_id;
  Version version = Version::kV311;
  std::vector<SubscriptionRecord> subscriptions;
  std::uint32_t expiry_interval = 0;     // seconds; 0xFFFFFFFF = never
  std::optional<WallMs> disconnected_at;  // none = connected when written
  std::optional<WillRecord> will;         // pending (delayed) will, or the will of the live connection
  bool operator==(const SessionRecord&) const = default;
};

enum class QueueState : std::uint8_t {
  kQueued = 0,    // not sent (packet id 0)
  kSent = 1,      // PUBLISH sent, awaiting PUBACK (QoS 1) or PUBREC (QoS 2)
  kReleased = 2,  // QoS 2: PUBREC received and PUBREL sent, awaiting PUBCOMP
};

// One delivery of a stored message to one session, in the session's queue or in flight.
struct QueueEntry {
  std::string client_id;
  std::uint64_t seq = 0;  // order within the session
  // The MessageRecord it refers to; 0 when the message is in `message` instead (a message that
  // lands in one persistent session only is stored with its entry: one record instead of two).
  std::uint64_t message_id = 0;
  std::optional<MessageRecord> message;  // id 0
  std::uint8_t qos = 0;  // delivered QoS
  bool retain = false;   // RETAIN flag of the delivery (Retain As Published)
  std::vector<std::uint32_t> subscription_ids;
  QueueState state = QueueState::kQueued;
  std::uint16_t packet_id = 0;  // 0 while queued
  bool dup = false;
  bool operator==(const QueueEntry&) const = default;
  // The message it delivers is stored in it.
  bool inline_message() const { return message_id == 0; }
};

// An inbound QoS 2 packet id acknowledged with PUBREC and awaiting PUBREL. When the broker holds the
// message until PUBREL instead of routing it at once, message_id refers to it (0 = none).
struct InboundQos2 {
  std::string client_id;
  std::uint16_t packet_id = 0;
  std::uint64_t message_id = 0;
  bool operator==(const InboundQos2&) const = default;
};

// A retained message; the key is its topic. message.id is not stored (always 0).
struct RetainedRecord {
  MessageRecord message;
  bool operator==(const RetainedRecord&) const = default;
};

// Why a record could not be decoded (a static string), or none.
struct RecordError {
  const char* what = nullptr;
  explicit operator bool() const { return what != nullptr; }
};

// Keys.
std::string format_version_key();
std::string message_key(std::uint64_t id);
std::string session_key(std::string_view client_id);
std::string queue_key(std::string_view client_id, std::uint64_t seq);
std::string inbound_key(std::string_view client_id, std::uint16_t packet_id);
std::string retained_key(std::string_view topic);
// A record's own key (the one it is stored and read under).
std::string key_of(const MessageRecord& r);
std::string key_of(const SessionRecord& r);
std::string key_of(const QueueEntry& r);
std::string key_of(const InboundQos2& r);
std::string key_of(const RetainedRecord& r);
// [first, last) of every queue entry (inbound id) of one session.
std::string queue_prefix(std::string_view client_id);
std::string inbound_prefix(std::string_view client_id);
// The smallest key greater than every key that starts with `prefix`.
std::string prefix_end(std::string_view prefix);

// Values (append to `out`).
void encode_format_version(std::uint32_t version, std::string& out);
void encode_value(const MessageRecord& r, std::string& out);
void encode_value(const SessionRecord& r, std::string& out);
void encode_value(const QueueEntry& r, std::string& out);
void encode_value(const InboundQos2& r, std::string& out);
void encode_value(const RetainedRecord& r, std::string& out);

// Decoders: `key` must be a key of the kind, `value` its value; on error `out` is unspecified.
RecordError decode_format_version(std::string_view value, std::uint32_t& version);
RecordError decode(std::string_view key, std::string_view value, MessageRecord& out);
RecordError decode(std::string_view key, std::string_view value, SessionRecord& out);
RecordError decode(std::string_view key, std::string_view value, QueueEntry& out);
RecordError decode(std::string_view key, std::string_view value, InboundQos2& out);
RecordError decode(std::string_view key, std::string_view value, RetainedRecord& out);

// Whether a record of this kind is valid to write (the decoder's rules). Batch::put asserts it.
bool valid(const MessageRecord& r);
bool valid(const SessionRecord& r);
bool valid(const QueueEntry& r);
bool valid(const InboundQos2& r);
bool valid(const RetainedRecord& r);

}  // namespace tern::store
