#pragma once
// Retained messages, one per topic. Shared by all workers behind a mutex; a lookup copies the
// matching message references out and releases the lock before anything is sent.
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocol/message.hpp"
#include "store/records.hpp"

namespace tern::store {
class Store;
}

namespace tern::broker {

// A message as a store record with id `id` (durable.cpp).
store::MessageRecord to_record(const protocol::Message& m, std::uint64_t id);

class RetainedStore {
 public:
  // Stores or replaces the retained message of its topic; an empty payload clears the topic and is
  // never stored [MQTT-3.3.1-10], [MQTT-3.3.1-11].
  // With `store`, the change is submitted to it under the same lock, so the store sees the changes
  // of a topic in the order they were made (the caller's acknowledgement waits for a later batch).
  void set(const protocol::MessagePtr& msg, store::Store* store = nullptr);
  // Appends the retained messages matching `filter` that have not expired at `now`.
  void match(std::string_view filter, std::vector<protocol::MessagePtr>& out,
             protocol::TimePoint now = protocol::Clock::now()) const;
  // Removes retained messages whose Message Expiry Interval has passed (and, with `store`, their
  // records). Returns how many.
  std::size_t purge_expired(protocol::TimePoint now, store::Store* store = nullptr);
  std::size_t size() const;
  std::size_t bytes() const;  // payload bytes stored
  // Every retained message (for snapshots).
  std::vector<protocol::MessagePtr> all() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, protocol::MessagePtr> by_topic_;
  std::size_t with_expiry_ = 0;
  std::size_t bytes_ = 0;  // stored messages with a Message Expiry Interval
};

}  // namespace tern::broker
