#pragma once
// The limits the broker enforces against clients (docs/security.md, "Limits and defences"), for
// counting how often each was hit: $SYS/broker/tern/limits/<configuration key>.
#include <array>
#include <cstdint>

namespace tern::protocol {

enum class Limit : std::uint8_t {
  kMaxConnectSize,       // a packet before CONNACK larger than max_connect_size
  kMaxClientidLen,       // a client identifier longer than max_clientid_len
  kMaxTopicLevels,       // a topic or filter deeper than max_topic_levels
  kMaxTopicLength,       // a topic or filter longer than max_topic_length
  kMaxPacketProperties,  // a packet with more than max_packet_properties properties
  kMaxSubscriptions,     // a filter refused because the session has max_subscriptions
  kMessagesRate,         // a connection paused by messages_rate
  kBytesRate,            // a connection paused by bytes_rate
  kMaxPacketSize,        // a packet after CONNACK larger than max_packet_size
  kMessageSizeLimit,     // a payload larger than message_size_limit
  kConnectTimeout,       // no CONNECT (or no end of the authentication) within connect_timeout
  kMaxConnections,       // a connection closed at once: max_connections are open
  kMaxConnRate,          // accepting paused by a listener's max_conn_rate
  kOpenFiles,            // accepting paused: no file descriptor left (EMFILE, ENFILE, ENOBUFS, ENOMEM)
  kMaxInflightMessages,  // a QoS 1/2 delivery that waited in the queue: the in-flight window was full
  kMaxQueuedMessages,    // a message dropped: the session's queue held max_queued_messages
  kMaxQueuedBytes,       // a message dropped: the offline queue would pass max_queued_bytes
  kSlowSubscriberTimeout,  // a subscriber disconnected after slow_subscriber_timeout without reading
  kCount,
};

constexpr std::size_t kLimitCount = static_cast<std::size_t>(Limit::kCount);

// The configuration key of each limit, which is also its $SYS topic's last level. kOpenFiles has no
// key: it is the process's open-file limit (RLIMIT_NOFILE).
constexpr const char* limit_name(Limit l) {
  constexpr const char* kNames[kLimitCount] = {
      "max_connect_size", "max_clientid_len", "max_topic_levels", "max_topic_length", "max_packet_properties",
      "max_subscriptions", "messages_rate", "bytes_rate", "max_packet_size", "message_size_limit",
      "connect_timeout", "max_connections", "max_conn_rate", "open_files", "max_inflight_messages",
      "max_queued_messages", "max_queued_bytes", "slow_subscriber_timeout"};
  return kNames[static_cast<std::size_t>(l)];
}

// Hits counted by one connection since the network layer last collected them (plain integers, owner
// thread). A connection allocates them on its first hit only: most never hit a limit.
struct LimitHits {
  std::array<std::uint32_t, kLimitCount> n{};
};

}  // namespace tern::protocol
