#pragma once
// An application message, decoded once and shared read-only by every delivery (any thread may hold a
// reference; nothing mutates it after creation).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "codec/packet.hpp"

namespace tern::protocol {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

struct Message {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  // Properties forwarded to subscribers (topic alias and subscription identifiers removed).
  codec::Properties props;
  std::string origin;  // publishing client id, for No Local
  TimePoint created{};
};
using MessagePtr = std::shared_ptr<const Message>;

}  // namespace tern::protocol
