#pragma once
// The global subscription index: a trie over topic levels with '+' and '#' children. One instance per
// broker, read by every worker. Reads lock one of several reader slots (each thread keeps to its own
// slot, on its own cache line, so concurrent readers never touch a shared line) and only collect
// targets; delivery happens after the lock is released. Writes (SUBSCRIBE/UNSUBSCRIBE) lock every
// slot. Subscribing is rare next to publishing, so the reads are made cheap at the writers' expense.
//
// Shared subscriptions ($share/GROUP/FILTER, MQTT 5.0 section 4.8.2) live in the same trie, under
// their inner filter, as groups of members. The group is global across workers: whichever worker
// routes a message picks one member under its reader slot, from the members' per-session presence
// and congestion flags and a per-group atomic round-robin counter, so every worker chooses from the
// same state and each message goes to exactly one member.
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
// The session's number on its worker.
inline std::uint64_t local_of(SessionKey k) { return k & 0xFFFFFFFFFFFFull; }
inline SessionKey make_key(unsigned worker, std::uint64_t local) { return (SessionKey{worker} << 48) | local; }

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
  std::uint32_t group = 0;  // the shared subscription group that chose this session; 0 = an ordinary one
  // The session is persistent and the broker has a store: QoS 1/2 deliveries to it are stored.
  // Then `client` is the index of its client identifier in the `ids` vector given to match() (kept
  // out of Target, so the fan-out path moves no strings).
  bool durable = false;
  std::uint32_t client = 0;
};

// Where a session is, for choosing among the members of a shared subscription group. Written by the
// session's worker, read by any worker inside the router's lock (like the congestion flag).
enum Presence : std::uint8_t {
  kGone = 0,     // ending: never chosen
  kOffline = 1,  // persistent session without a connection: chosen only when no member is connected
  kOnline = 2,   // connected
};

// The sticky strategy's memory for one publisher: the member each shared group last gave it. Owned
// by the publisher's worker; Router::match reads and updates it on that thread.
struct StickyChoices {
  std::vector<std::pair<std::uint32_t, SessionKey>> chosen;  // (group id, member)
};

class Router {
 public:
  Router();
  ~Router();
  // Adds or replaces the subscription of `key` to `filter`. Returns true when it is new.
  // `congested` (optional) is the session's back-pressure flag and `presence` (optional, a Presence;
  // none counts as kOnline) its connection state; both must stay valid until the session's
  // subscriptions are removed, and are read under the router's lock. A filter "$share/NAME/F" makes
  // the session a member of group NAME on F (the caller has validated it; an invalid one is ignored).
  // `durable` (optional) is the session's "deliveries are stored" flag, read like the others.
  bool subscribe(std::string_view filter, SessionKey key, const std::string& client_id, SubOptions opts,
                 const std::atomic<bool>* congested = nullptr, const std::atomic<std::uint8_t>* presence = nullptr,
                 const std::atomic<bool>* durable = nullptr);
  // Returns true when a subscription (or shared group membership) existed.
  bool unsubscribe(std::string_view filter, SessionKey key);
  // Appends every subscription matching `topic`. Subscriptions with No Local whose client is
  // `publisher` are skipped [MQTT-3.8.3-3]. Each shared group that matches adds one member, with
  // Target::group set: a connected member that is not congested, round robin; else a connected one;
  // else an offline (persistent) one. With `sticky` (the sticky strategy), a group keeps giving this
  // publisher the member it gave it last, while that member is connected.
  // `ids` (optional) receives the client ids of durable targets (Target::client indexes it).
  void match(std::string_view topic, std::string_view publisher, std::vector<Target>& out,
             StickyChoices* sticky = nullptr, std::vector<std::string>* ids = nullptr) const;
  // Picks another member of shared group `group` for a message that `exclude` will not take (it went
  // offline, or its session ended), in the same order of preference as match. With `connected_only`,
  // offline members are not considered. False when there is none (or the group is gone).
  // `client` (optional) receives a durable member's client id.
  bool choose(std::uint32_t group, SessionKey exclude, bool connected_only, Target& out,
              std::string* client = nullptr) const;
  // Subscriptions, counting each shared group membership as one.
  std::size_t size() const;
  // Whether any shared subscription exists (a hint for the caller's fast path; no lock).
  bool has_shared() const { return shared_groups_.load(std::memory_order_relaxed) != 0; }

 private:
  struct Node;
  struct Member;
  struct Group;
  class SlotLock;
  const Member* pick(const Group& g, SessionKey exclude, bool connected_only) const;
  void add_shared(const Node& n, StickyChoices* sticky, std::vector<Target>& out,
                  std::vector<std::string>* ids) const;
  std::unique_ptr<SlotLock> lock_;
  std::unique_ptr<Node> root_;
  std::size_t count_ = 0;
  std::uint32_t next_group_id_ = 1;
  std::unordered_map<std::uint32_t, Group*> groups_;  // by id, for choose()
  std::atomic<std::size_t> shared_groups_{0};
};

}  // namespace tern::broker
