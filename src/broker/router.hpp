#pragma once
// The global subscription index: a trie over topic levels with '+' and '#' children. One instance per
// broker, read by every worker. Reads lock one of several reader slots (each thread keeps to its own
// slot, on its own cache line, so concurrent readers never touch a shared line) and only collect
// targets; delivery happens after the lock is released. Writes (SUBSCRIBE/UNSUBSCRIBE) lock every
// slot. Subscribing is rare next to publishing, so the reads are made cheap at the writers' expense.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tern::broker {

// Identifies a session: owner worker in the top 16 bits, the worker-local session number below.
using SessionKey = std::uint64_t;
inline std::uint32_t worker_of(SessionKey k) { return static_cast<std::uint32_t>(k >> 48); }

struct SubOptions {
  std::uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  std::uint32_t subscription_id = 0;  // 0 = none
};

struct Target {
  SessionKey key;
  SubOptions opts;
  bool congested = false;  // the session's queue is above its high-water mark
};

class Router {
 public:
  Router();
  ~Router();
  // Adds or replaces the subscription of `key` to `filter`. Returns true when it is new.
  // `congested` (optional) is the session's back-pressure flag; it must stay valid until the
  // session's subscriptions are removed, and is read under the router's lock.
  bool subscribe(std::string_view filter, SessionKey key, const std::string& client_id, SubOptions opts,
                 const std::atomic<bool>* congested = nullptr);
  // Returns true when a subscription existed.
  bool unsubscribe(std::string_view filter, SessionKey key);
  // Appends every subscription matching `topic`. Subscriptions with No Local whose client is
  // `publisher` are skipped [MQTT-3.8.3-3].
  void match(std::string_view topic, std::string_view publisher, std::vector<Target>& out) const;
  std::size_t size() const;

 private:
  struct Node;
  class SlotLock;
  std::unique_ptr<SlotLock> lock_;
  std::unique_ptr<Node> root_;
  std::size_t count_ = 0;
};

}  // namespace tern::broker
