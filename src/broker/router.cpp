#include "broker/router.hpp"

#include <atomic>
#include <mutex>

namespace tern::broker {

namespace {
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
}  // namespace

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

struct Router::Node {
  struct Entry {
    SessionKey key;
    SubOptions opts;
    std::string client_id;
    const std::atomic<bool>* congested;
  };
  std::unordered_map<std::string, std::unique_ptr<Node>, StringHash, std::equal_to<>> children;
  std::unique_ptr<Node> plus;
  std::unique_ptr<Node> hash;
  std::vector<Entry> subs;
  bool empty() const { return children.empty() && !plus && !hash && subs.empty(); }
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
                       const std::atomic<bool>* congested) {
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
  for (auto& e : n->subs) {
    if (e.key == key) {
      e.opts = opts;  // [MQTT-3.8.4-3] an identical filter replaces the subscription
      return false;
    }
  }
  n->subs.push_back({key, opts, client_id, congested});
  ++count_;
  return true;
}

bool Router::unsubscribe(std::string_view filter, SessionKey key) {
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
  auto& subs = n->subs;
  bool found = false;
  for (auto it = subs.begin(); it != subs.end(); ++it) {
    if (it->key == key) {
      subs.erase(it);
      --count_;
      found = true;
      break;
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

void Router::match(std::string_view topic, std::string_view publisher, std::vector<Target>& out) const {
  std::lock_guard lock(lock_->reader());
  auto add = [&](const Node& n) {
    for (const auto& e : n.subs) {
      if (e.opts.no_local && e.client_id == publisher) continue;
      out.push_back({e.key, e.opts, e.congested && e.congested->load(std::memory_order_relaxed)});
    }
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
