#include "broker/router.hpp"

#include "core/string_hash.hpp"

#include <atomic>
#include <mutex>

#include "core/topic.hpp"

namespace tern::broker {

class Router::SlotLock {
 public:
  static constexpr unsigned kSlots = 16;
  // The calling thread's slot (threads are given slots round-robin on first use).
  std::mutex& reader() const {
    static std::atomic<unsigned> next{0};
    thread_local unsigned mine = next.fetch_add(1, std::memory_order_relaxed) % kSlots;
    return slots_[mine].mu;
  }
  // Exclusive access for writers: every reader slot held.
  class Writer {
   public:
    explicit Writer(const SlotLock& l) : l_(l) {
      for (auto& s : l_.slots_) s.mu.lock();
    }
    ~Writer() {
      for (auto& s : l_.slots_) s.mu.unlock();
    }

   private:
    const SlotLock& l_;
  };

 private:
  struct alignas(64) Slot {
    std::mutex mu;
  };
  mutable Slot slots_[kSlots];
};

struct Router::Member {
  SessionKey key;
  SubOptions opts;
  const std::atomic<bool>* congested;
  const std::atomic<std::uint8_t>* presence;
  const std::atomic<bool>* durable;
  std::string client_id;
};

namespace {
// A target's durable flag and, for a durable session, its client id (under the router's lock).
void mark_durable(Target& t, const std::atomic<bool>* durable, const std::string& client_id,
                  std::vector<std::string>* ids) {
  if (ids && durable && durable->load(std::memory_order_relaxed)) {
    t.durable = true;
    t.client = static_cast<std::uint32_t>(ids->size());
    ids->push_back(client_id);
  }
}
}  // namespace

struct Router::Group {
  std::uint32_t id;
  std::string name;
  std::vector<Member> members;
  // Round-robin position, shared by every worker that routes to this group.
  mutable std::atomic<std::uint32_t> next{0};
};

struct Router::Node {
  struct Entry {
    SessionKey key;
    SubOptions opts;
    std::string client_id;
    const std::atomic<bool>* congested;
    const std::atomic<bool>* durable;
  };
  std::unordered_map<std::string, std::unique_ptr<Node>, StringHash, std::equal_to<>> children;
  std::unique_ptr<Node> plus;
  std::unique_ptr<Node> hash;
  std::vector<Entry> subs;
  std::vector<std::unique_ptr<Group>> groups;  // shared subscriptions on this filter
  bool empty() const { return children.empty() && !plus && !hash && subs.empty() && groups.empty(); }
};

Router::Router() : lock_(std::make_unique<SlotLock>()), root_(std::make_unique<Node>()) {}
Router::~Router() = default;

namespace {

// Splits the next level off `rest`; returns false after the last level.
bool next_level(std::string_view& rest, std::string_view& level, bool& done) {
  if (done) return false;
  auto p = rest.find('/');
  if (p == std::string_view::npos) {
    level = rest;
    done = true;
  } else {
    level = rest.substr(0, p);
    rest.remove_prefix(p + 1);
  }
  return true;
}

}  // namespace

bool Router::subscribe(std::string_view filter, SessionKey key, const std::string& client_id, SubOptions opts,
                       const std::atomic<bool>* congested, const std::atomic<std::uint8_t>* presence,
                       const std::atomic<bool>* durable) {
  std::string_view share_name;
  std::string_view inner;
  auto shared = parse_shared_subscription(filter, share_name, inner);
  if (shared == SharedFilter::kInvalid) return false;
  if (shared == SharedFilter::kShared) filter = inner;
  SlotLock::Writer guard(*lock_);
  Node* n = root_.get();
  std::string_view rest = filter;
  std::string_view level;
  bool done = false;
  while (next_level(rest, level, done)) {
    std::unique_ptr<Node>* slot;
    if (level == "+") {
      slot = &n->plus;
    } else if (level == "#") {
      slot = &n->hash;
    } else {
      auto it = n->children.find(level);
      if (it == n->children.end()) it = n->children.emplace(std::string(level), nullptr).first;
      slot = &it->second;
    }
    if (!*slot) *slot = std::make_unique<Node>();
    n = slot->get();
  }
  if (shared == SharedFilter::kShared) {
    Group* g = nullptr;
    for (auto& gp : n->groups) {
      if (gp->name == share_name) g = gp.get();
    }
    if (!g) {
      auto fresh = std::make_unique<Group>();
      fresh->id = next_group_id_++;
      if (next_group_id_ == 0) next_group_id_ = 1;  // 0 means "not shared"
      fresh->name = std::string(share_name);
      g = fresh.get();
      n->groups.push_back(std::move(fresh));
      groups_[g->id] = g;
      shared_groups_.fetch_add(1, std::memory_order_relaxed);
    }
    for (auto& m : g->members) {
      if (m.key == key) {
        m.opts = opts;  // [MQTT-3.8.4-3] the same session subscribing again replaces its options
        return false;
      }
    }
    g->members.push_back({key, opts, congested, presence, durable, client_id});
    ++count_;
    return true;
  }
  for (auto& e : n->subs) {
    if (e.key == key) {
      e.opts = opts;  // [MQTT-3.8.4-3] an identical filter replaces the subscription
      return false;
    }
  }
  n->subs.push_back({key, opts, client_id, congested, durable});
  ++count_;
  return true;
}

bool Router::unsubscribe(std::string_view filter, SessionKey key) {
  std::string_view share_name;
  std::string_view inner;
  auto shared = parse_shared_subscription(filter, share_name, inner);
  if (shared == SharedFilter::kInvalid) return false;
  if (shared == SharedFilter::kShared) filter = inner;
  SlotLock::Writer guard(*lock_);
  // Walk down remembering the path so empty nodes can be pruned.
  std::vector<std::pair<Node*, std::string_view>> path;
  Node* n = root_.get();
  std::string_view rest = filter;
  std::string_view level;
  bool done = false;
  while (next_level(rest, level, done)) {
    Node* child = nullptr;
    if (level == "+") {
      child = n->plus.get();
    } else if (level == "#") {
      child = n->hash.get();
    } else {
      auto it = n->children.find(level);
      if (it != n->children.end()) child = it->second.get();
    }
    if (!child) return false;
    path.emplace_back(n, level);
    n = child;
  }
  bool found = false;
  if (shared == SharedFilter::kShared) {
    for (auto git = n->groups.begin(); git != n->groups.end(); ++git) {
      Group& g = **git;
      if (g.name != share_name) continue;
      for (auto it = g.members.begin(); it != g.members.end(); ++it) {
        if (it->key == key) {
          g.members.erase(it);
          --count_;
          found = true;
          break;
        }
      }
      if (g.members.empty()) {
        // The last member left: the group ends (section 4.8.2).
        groups_.erase(g.id);
        n->groups.erase(git);
        shared_groups_.fetch_sub(1, std::memory_order_relaxed);
      }
      break;
    }
  } else {
    auto& subs = n->subs;
    for (auto it = subs.begin(); it != subs.end(); ++it) {
      if (it->key == key) {
        subs.erase(it);
        --count_;
        found = true;
        break;
      }
    }
  }
  // Prune empty nodes from the bottom up.
  for (auto it = path.rbegin(); it != path.rend(); ++it) {
    Node* parent = it->first;
    std::string_view lv = it->second;
    Node* child = lv == "+" ? parent->plus.get() : lv == "#" ? parent->hash.get() : parent->children.find(lv)->second.get();
    if (!child->empty()) break;
    if (lv == "+") {
      parent->plus.reset();
    } else if (lv == "#") {
      parent->hash.reset();
    } else {
      parent->children.erase(parent->children.find(lv));
    }
  }
  return found;
}

const Router::Member* Router::pick(const Group& g, SessionKey exclude, bool connected_only) const {
  // Tiers in order of preference: 0 connected and not congested, 1 connected but congested (its
  // publishers will be paused), 2 offline persistent session (the message waits in its queue).
  auto tier = [&](const Member& m) -> int {
    if (m.key == exclude) return -1;
    std::uint8_t p = m.presence ? m.presence->load(std::memory_order_relaxed) : std::uint8_t{kOnline};
    if (p == kOnline) return m.congested && m.congested->load(std::memory_order_relaxed) ? 1 : 0;
    if (p == kOffline && !connected_only) return 2;
    return -1;
  };
  std::size_t count[3] = {0, 0, 0};
  for (const auto& m : g.members) {
    int t = tier(m);
    if (t >= 0) ++count[t];
  }
  int t = count[0] ? 0 : count[1] ? 1 : count[2] ? 2 : -1;
  if (t < 0) return nullptr;
  // Round robin within the tier: the k-th eligible member, k from the group's shared counter, so
  // members are taken in turn whichever worker routes, and an offline member does not give its turn
  // to its neighbour.
  std::size_t k = g.next.fetch_add(1, std::memory_order_relaxed) % count[t];
  const Member* any = nullptr;
  for (const auto& m : g.members) {
    int mt = tier(m);  // flags may have changed since the count: fall back to any eligible member
    if (mt < 0) continue;
    if (mt == t && k-- == 0) return &m;
    if (!any || mt < tier(*any)) any = &m;
  }
  return any;
}

void Router::add_shared(const Node& n, StickyChoices* sticky, std::vector<Target>& out,
                        std::vector<std::string>* ids) const {
  for (const auto& gp : n.groups) {
    const Group& g = *gp;
    const Member* m = nullptr;
    std::pair<std::uint32_t, SessionKey>* memo = nullptr;
    if (sticky) {
      for (auto& c : sticky->chosen) {
        if (c.first == g.id) memo = &c;
      }
      if (memo) {
        // Keep the publisher's member while it is connected (even congested: affinity is the point).
        for (const auto& cand : g.members) {
          if (cand.key == memo->second &&
              (!cand.presence || cand.presence->load(std::memory_order_relaxed) == kOnline)) {
            m = &cand;
            break;
          }
        }
      }
    }
    if (!m) {
      m = pick(g, 0, false);  // session keys are never 0
      if (!m) continue;
      if (sticky && (!m->presence || m->presence->load(std::memory_order_relaxed) == kOnline)) {
        if (memo) {
          memo->second = m->key;
        } else {
          // Entries of groups that have ended are never looked up again; keep the list short.
          if (sticky->chosen.size() >= 64) sticky->chosen.clear();
          sticky->chosen.emplace_back(g.id, m->key);
        }
      }
    }
    out.push_back({m->key, m->opts, m->congested && m->congested->load(std::memory_order_relaxed), g.id});
    mark_durable(out.back(), m->durable, m->client_id, ids);
  }
}

bool Router::choose(std::uint32_t group, SessionKey exclude, bool connected_only, Target& out,
                    std::string* client) const {
  std::lock_guard lock(lock_->reader());
  auto it = groups_.find(group);
  if (it == groups_.end()) return false;
  const Member* m = pick(*it->second, exclude, connected_only);
  if (!m) return false;
  out = Target{m->key, m->opts, m->congested && m->congested->load(std::memory_order_relaxed), group};
  if (client && m->durable && m->durable->load(std::memory_order_relaxed)) {
    out.durable = true;
    *client = m->client_id;
  }
  return true;
}

void Router::match(std::string_view topic, std::string_view publisher, std::vector<Target>& out,
                   StickyChoices* sticky, std::vector<std::string>* ids) const {
  std::lock_guard lock(lock_->reader());
  auto add = [&](const Node& n) {
    for (const auto& e : n.subs) {
      if (e.opts.no_local && e.client_id == publisher) continue;
      out.push_back({e.key, e.opts, e.congested && e.congested->load(std::memory_order_relaxed)});
      mark_durable(out.back(), e.durable, e.client_id, ids);
    }
    // No Local never applies here: it is a protocol error on a shared subscription [MQTT-3.8.3-4].
    if (!n.groups.empty()) add_shared(n, sticky, out, ids);
  };
  // Iterative walk with an explicit stack of (node, offset of the next level, first level?).
  struct Frame {
    const Node* node;
    std::size_t pos;  // start of the next level in topic; npos when all levels are consumed
  };
  const bool dollar = !topic.empty() && topic[0] == '$';
  Frame stack[64];
  std::vector<Frame> overflow;
  std::size_t sp = 0;
  auto push = [&](const Node* n, std::size_t pos) {
    if (sp < 64) {
      stack[sp++] = {n, pos};
    } else {
      overflow.push_back({n, pos});
    }
  };
  push(root_.get(), 0);
  while (sp > 0 || !overflow.empty()) {
    Frame f;
    if (!overflow.empty()) {
      f = overflow.back();
      overflow.pop_back();
    } else {
      f = stack[--sp];
    }
    const Node* n = f.node;
    const bool first = f.node == root_.get();
    // '#' matches this level and everything below, including the parent level ("a/#" matches "a");
    // wildcards at the first level never match '$' topics [MQTT-4.7.2-1].
    if (n->hash && !(first && dollar)) add(*n->hash);
    if (f.pos == std::string_view::npos) {
      add(*n);
      continue;
    }
    std::size_t end = topic.find('/', f.pos);
    std::string_view level = topic.substr(f.pos, end == std::string_view::npos ? std::string_view::npos : end - f.pos);
    std::size_t next = end == std::string_view::npos ? std::string_view::npos : end + 1;
    auto it = n->children.find(level);
    if (it != n->children.end()) push(it->second.get(), next);
    if (n->plus && !(first && dollar)) push(n->plus.get(), next);
  }
}

std::size_t Router::size() const {
  std::lock_guard lock(lock_->reader());
  return count_;
}

}  // namespace tern::broker
