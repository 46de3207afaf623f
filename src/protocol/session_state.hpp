#pragma once
// MQTT session state that outlives a network connection: in-flight QoS 1/2 in both directions and the
// queue of messages waiting for the in-flight window or for the client to come back. Owned by one
// broker session on one worker thread; only that thread touches it.
#include <atomic>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "protocol/message.hpp"

namespace tern::protocol {

using SubIds = std::vector<std::uint32_t>;

// One delivery to one client: the shared message plus per-delivery fields.
struct Delivery {
  MessagePtr msg;
  std::uint8_t qos = 0;
  bool retain = false;
  SubIds sub_ids;
  // The shared subscription group (the broker's id) this delivery was chosen for; 0 = none. Lets the
  // broker give the message to another member when this session goes away (section 4.8.2).
  std::uint32_t share = 0;
  // The delivery's queue entry in the store (its sequence number; 0 = not stored), and whether it
  // may have been sent before a restart (then it goes out with DUP=1).
  std::uint64_t seq = 0;
  bool dup = false;
  bool stored_inline = false;  // the entry holds the message itself (no message record to refer to)
};

struct OutboundFlight {
  std::uint16_t packet_id = 0;
  Delivery delivery;
  bool released = false;  // QoS 2: PUBREC received and PUBREL sent, waiting for PUBCOMP
};

struct SessionState {
  std::deque<OutboundFlight> inflight;  // in send order [MQTT-4.6.0-1]
  std::deque<Delivery> queue;           // waiting for the window or for the client
  std::size_t queued_bytes = 0;
  // Inbound QoS 2: packet id -> message held until PUBREL (then forwarded) [MQTT-4.3.3-x].
  std::unordered_map<std::uint16_t, MessagePtr> inbound_qos2;
  std::uint16_t next_packet_id = 1;
  // Set by the owner thread while the queue of an online session is above its high-water mark;
  // read by publishers' workers (inside the router's lock) to pause themselves: the loss policy's
  // back-pressure for QoS 1/2.
  std::atomic<bool> congested{false};
  // Set by the broker while QoS 1/2 deliveries to this session are stored (a persistent session and
  // a store); read like `congested`, and next to it, so routing reads one cache line per target.
  std::atomic<bool> durable{false};

  // Returns true when the flag was just cleared (the publishers waiting on it may go on).
  bool update_congestion(std::size_t high_water) {
    if (queue.size() >= high_water) {
      if (!congested.load(std::memory_order_relaxed)) congested.store(true, std::memory_order_relaxed);
    } else if (queue.size() <= high_water / 2 && congested.load(std::memory_order_relaxed)) {
      congested.store(false, std::memory_order_relaxed);
      return true;
    }
    return false;
  }

  std::uint16_t allocate_packet_id();
  bool id_in_flight(std::uint16_t id) const;
};

inline bool SessionState::id_in_flight(std::uint16_t id) const {
  for (const auto& f : inflight) {
    if (f.packet_id == id) return true;
  }
  return false;
}

inline std::uint16_t SessionState::allocate_packet_id() {
  // [MQTT-2.3.1-2] a new packet id must not be in use by an unacknowledged PUBLISH.
  for (;;) {
    std::uint16_t id = next_packet_id++;
    if (next_packet_id == 0) next_packet_id = 1;
    if (id != 0 && !id_in_flight(id)) return id;
  }
}

}  // namespace tern::protocol
