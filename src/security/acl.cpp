#include "security/acl.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/topic.hpp"
#include "security/read_file.hpp"

namespace tern::security {

namespace {

constexpr std::string_view kBlanks = " \t\r\n\v\f";

std::string_view trim(std::string_view s) {
  auto b = s.find_first_not_of(kBlanks);
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(kBlanks);
  return s.substr(b, e - b + 1);
}

// Splits off the first blank-separated word of a trimmed string; `rest` is the trimmed remainder.
std::string_view first_word(std::string_view s, std::string_view& rest) {
  auto end = s.find_first_of(" \t");
  if (end == std::string_view::npos) {
    rest = {};
    return s;
  }
  rest = trim(s.substr(end));
  return s.substr(0, end);
}

// Walks the levels of a topic or filter: level() is the current one; next() moves on and returns
// false after the last ("a/" has two levels, the second empty).
class Levels {
 public:
  explicit Levels(std::string_view s) : s_(s) { find_end(); }
  std::string_view level() const { return s_.substr(pos_, end_ - pos_); }
  bool next() {
    if (end_ == s_.size()) return false;
    pos_ = end_ + 1;
    find_end();
    return true;
  }

 private:
  void find_end() {
    end_ = s_.find('/', pos_);
    if (end_ == std::string_view::npos) end_ = s_.size();
  }
  std::string_view s_;
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
};

bool is_wildcard(std::string_view level) { return level == "+" || level == "#"; }
bool starts_with_dollar(std::string_view level) { return !level.empty() && level[0] == '$'; }

// A value that must not be substituted into a granting pattern (see acl.hpp).
bool dangerous(std::string_view v) { return v.find_first_of("+#/") != std::string_view::npos; }

}  // namespace

bool filters_intersect(std::string_view a, std::string_view b) {
  Levels la(a);
  Levels lb(b);
  // [MQTT-4.7.2-1] a first-level wildcard matches no topic starting with '$'; when both start with a
  // wildcard, a topic without '$' serves.
  bool wa = is_wildcard(la.level());
  bool wb = is_wildcard(lb.level());
  if (wa && !wb && starts_with_dollar(lb.level())) return false;
  if (wb && !wa && starts_with_dollar(la.level())) return false;
  while (true) {
    if (la.level() == "#" || lb.level() == "#") return true;
    if (la.level() != "+" && lb.level() != "+" && la.level() != lb.level()) return false;
    bool more_a = la.next();
    bool more_b = lb.next();
    if (!more_a && !more_b) return true;
    // One ended: the other must go on with only "#", which also matches its parent ("a/#" matches "a").
    if (!more_a) return lb.level() == "#";
    if (!more_b) return la.level() == "#";
  }
}

bool filter_covers(std::string_view outer, std::string_view inner) {
  Levels lo(outer);
  Levels li(inner);
  // [MQTT-4.7.2-1] an outer first-level wildcard misses the '$' topics an inner literal "$..." matches.
  if (is_wildcard(lo.level()) && !is_wildcard(li.level()) && starts_with_dollar(li.level())) return false;
  // "+/#" matches every topic "#" matches: one level or more, and neither matches '$' topics.
  if (inner == "#" && outer == "+/#") return true;
  while (true) {
    if (lo.level() == "#") return true;
    if (li.level() == "#") return false;  // inner matches this level's parent and any depth below
    if (lo.level() != "+" && (li.level() == "+" || li.level() != lo.level())) return false;
    bool more_o = lo.next();
    bool more_i = li.next();
    if (!more_o && !more_i) return true;
    if (!more_i) return lo.level() == "#";  // "a/#" covers "a"
    if (!more_o) return false;              // inner matches deeper topics
  }
}

// A trie of rule filters: one path per filter level; '+', '#', %c and %u levels have their own
// children. Rules ending at a node leave their access there.
struct Acl::Node {
  // Literal children. Most nodes have a few, and comparing a few short strings beats hashing the level
  // (measured: checks on a 1,000-rule file about 15% faster); wide nodes switch to a hash map.
  static constexpr std::size_t kSmall = 8;
  std::vector<std::pair<std::string, std::unique_ptr<Node>>> few;
  std::unordered_map<std::string, std::unique_ptr<Node>, StringHash, std::equal_to<>> many;
  std::unique_ptr<Node> plus;
  std::unique_ptr<Node> hash;
  std::unique_ptr<Node> client_id;  // %c (patterns only)
  std::unique_ptr<Node> username;   // %u (patterns only)
  std::uint8_t grant = 0;           // Rule::Kind bits of the granting rules ending here
  bool deny = false;                // a deny rule ends here

  const Node* find(std::string_view level) const {
    if (!many.empty()) {
      auto it = many.find(level);
      return it == many.end() ? nullptr : it->second.get();
    }
    for (const auto& [name, node] : few) {
      if (name == level) return node.get();
    }
    return nullptr;
  }

  Node& literal_child(std::string_view level) {
    if (const Node* n = find(level)) return const_cast<Node&>(*n);
    auto node = std::make_unique<Node>();
    Node& added = *node;
    if (many.empty() && few.size() < kSmall) {
      few.emplace_back(std::string(level), std::move(node));
      return added;
    }
    for (auto& [name, child] : few) many.emplace(std::move(name), std::move(child));
    few.clear();
    many.emplace(std::string(level), std::move(node));
    return added;
  }

  static Node& child(std::unique_ptr<Node>& p) {
    if (!p) p = std::make_unique<Node>();
    return *p;
  }

  void insert(const Rule& rule, bool pattern) {
    Node* n = this;
    Levels l(rule.filter);
    do {
      std::string_view level = l.level();
      if (level == "+") {
        n = &child(n->plus);
      } else if (level == "#") {
        n = &child(n->hash);
      } else if (pattern && level == "%c") {
        n = &child(n->client_id);
      } else if (pattern && level == "%u") {
        n = &child(n->username);
      } else {
        n = &n->literal_child(level);
      }
    } while (l.next());
    if (rule.kind == Rule::kDeny) {
      n->deny = true;
    } else {
      n->grant |= rule.kind;
    }
  }

  // What the rules matching one topic add up to.
  struct Match {
    std::string_view topic;
    std::string_view client_id;
    const std::string* username;
    std::uint8_t grant = 0;
    bool deny = false;
  };

  void take(Match& m, bool deny_only) const {
    m.deny |= deny;
    if (!deny_only) m.grant |= grant;
  }

  // `pos` is where the topic's next level starts, npos when it has no more levels.
  void match(Match& m, std::size_t pos, bool at_root, bool deny_only) const {
    // [MQTT-4.7.2-1] first-level wildcards do not match topics starting with '$'.
    bool wild_ok = !(at_root && !m.topic.empty() && m.topic[0] == '$');
    if (hash && wild_ok) hash->take(m, deny_only);  // '#' matches here and below, the parent included
    if (pos == std::string_view::npos) {
      take(m, deny_only);
      return;
    }
    std::size_t end = m.topic.find('/', pos);
    if (end == std::string_view::npos) end = m.topic.size();
    std::size_t next = end == m.topic.size() ? std::string_view::npos : end + 1;
    if (const Node* n = find(m.topic.substr(pos, end - pos))) n->match(m, next, false, deny_only);
    if (plus && wild_ok) plus->match(m, next, false, deny_only);
    if (client_id) client_id->match_value(m, m.client_id, pos, deny_only);
    if (username && m.username != nullptr) username->match_value(m, *m.username, pos, deny_only);
  }

  // A %c or %u level: the value is literal text, spanning several topic levels when it contains '/'.
  // A granting rule never matches through a dangerous value; a deny still does (acl.hpp).
  void match_value(Match& m, std::string_view value, std::size_t pos, bool deny_only) const {
    if (m.topic.compare(pos, value.size(), value) != 0) return;
    std::size_t end = pos + value.size();
    if (end != m.topic.size() && m.topic[end] != '/') return;
    match(m, end == m.topic.size() ? std::string_view::npos : end + 1, false, deny_only || dangerous(value));
  }
};

namespace {

// A pattern's filter with %c and %u replaced, or nothing when the rule does not apply to the client
// (see acl.hpp): %u without a username, a dangerous value in a granting rule, '+' or '#' in a deny's.
std::optional<std::string> substituted(const Acl::Rule& rule, std::string_view client_id, const std::string* username) {
  std::string out;
  Levels l(rule.filter);
  bool first = true;
  do {
    std::string_view level = l.level();
    if (!first) out += '/';
    first = false;
    if (level == "%c" || level == "%u") {
      if (level == "%u" && username == nullptr) return std::nullopt;
      std::string_view v = level == "%c" ? client_id : std::string_view(*username);
      if (rule.kind != Acl::Rule::kDeny && dangerous(v)) return std::nullopt;
      // A deny with '+' or '#' in the value would deny only topic names that cannot exist.
      if (v.find_first_of("+#") != std::string_view::npos) return std::nullopt;
      out += v;
    } else {
      out += level;
    }
  } while (l.next());
  return out;
}

}  // namespace

Acl::Acl() : anonymous_(std::make_unique<Section>()), patterns_(std::make_unique<Section>()) {}
Acl::~Acl() = default;
Acl::Acl(Acl&&) noexcept = default;
Acl& Acl::operator=(Acl&&) noexcept = default;

Acl Acl::parse(std::string_view text, const std::string& name) {
  Acl acl;
  Section* current = acl.anonymous_.get();
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    auto fail = [&](const std::string& why) { throw AclError(name + ":" + std::to_string(line_no) + ": " + why); };
    // Mosquitto takes '#' as a comment only in the first column; an indented one is accepted here.
    if (line.empty() || line[0] == '#') continue;
    std::string_view rest;
    std::string_view keyword = first_word(line, rest);
    if (keyword == "user") {
      if (rest.empty()) fail("user: missing username");
      auto it = acl.users_.find(rest);
      if (it == acl.users_.end()) it = acl.users_.emplace(std::string(rest), std::make_unique<Section>()).first;
      current = it->second.get();
      continue;
    }
    if (keyword != "topic" && keyword != "pattern") {
      fail("unknown statement '" + std::string(keyword) + "' (expected topic, pattern or user)");
    }
    bool pattern = keyword == "pattern";
    if (rest.empty()) fail(std::string(keyword) + ": missing topic");
    std::string_view topic;
    std::string_view access = first_word(rest, topic);
    Rule rule;
    if (topic.empty()) {
      topic = access;  // the access word is optional: a single word is the topic
    } else if (access == "read") {
      rule.kind = Rule::kRead;
    } else if (access == "write") {
      rule.kind = Rule::kWrite;
    } else if (access == "readwrite") {
      rule.kind = Rule::kReadWrite;
    } else if (access == "deny") {
      rule.kind = Rule::kDeny;
    } else {
      fail(std::string(keyword) + ": invalid access '" + std::string(access) +
           "' (read, write, readwrite or deny; a topic with spaces needs one)");
    }
    if (!valid_topic_filter(topic)) fail(std::string(keyword) + ": invalid topic filter '" + std::string(topic) + "'");
    if (pattern) {
      Levels l(topic);
      do {
        std::string_view level = l.level();
        bool has = level.find("%c") != std::string_view::npos || level.find("%u") != std::string_view::npos;
        if (has && level != "%c" && level != "%u") {
          fail("pattern: %c and %u must each be a whole topic level, in '" + std::string(topic) + "'");
        }
      } while (l.next());
    }
    rule.filter = std::string(topic);
    (pattern ? *acl.patterns_ : *current).rules.push_back(std::move(rule));
    ++acl.rules_;
  }
  auto build = [](Section& s, bool pattern) {
    s.root = std::make_unique<Node>();
    for (const Rule& r : s.rules) s.root->insert(r, pattern);
  };
  build(*acl.anonymous_, false);
  build(*acl.patterns_, true);
  for (auto& [user, section] : acl.users_) build(*section, false);
  return acl;
}

Acl Acl::load(const std::string& path) {
  std::string text;
  if (std::string why = read_file(path, "ACL file", text); !why.empty()) throw AclError(why);
  return parse(text, path);
}

const Acl::Section* Acl::section_of(const std::string* username) const {
  if (username == nullptr) return anonymous_.get();
  auto it = users_.find(*username);
  return it == users_.end() ? nullptr : it->second.get();
}

const std::vector<Acl::Rule>* Acl::section_rules(const std::string* username) const {
  const Section* s = section_of(username);
  return s ? &s->rules : nullptr;
}

const std::vector<Acl::Rule>& Acl::patterns() const { return patterns_->rules; }

bool Acl::check(const Section* section, const Section& patterns, std::string_view client_id,
                const std::string* username, std::string_view topic, Access a) {
  Node::Match m{topic, client_id, username};
  if (section != nullptr && section->root) section->root->match(m, 0, true, false);
  if (patterns.root) patterns.root->match(m, 0, true, false);
  std::uint8_t need = a == Access::kRead ? Rule::kRead : Rule::kWrite;
  return !m.deny && (m.grant & need) != 0;
}

bool Acl::check_subscribe(const Section* section, const Section& patterns, std::string_view client_id,
                          const std::string* username, std::string_view filter) {
  std::string_view share;
  std::string_view inner;
  if (parse_shared_subscription(filter, share, inner) == SharedFilter::kShared) filter = inner;
  bool readable = false;
  // Returns false when a deny rule covers the whole filter.
  auto consider = [&](const Rule& rule, std::string_view f) {
    if (rule.kind == Rule::kDeny) return !filter_covers(f, filter);
    if ((rule.kind & Rule::kRead) != 0 && !readable) readable = filters_intersect(f, filter);
    return true;
  };
  if (section != nullptr) {
    for (const Rule& r : section->rules) {
      if (!consider(r, r.filter)) return false;
    }
  }
  for (const Rule& r : patterns.rules) {
    auto f = substituted(r, client_id, username);
    if (f && !consider(r, *f)) return false;
  }
  return readable;
}

bool Acl::allowed(std::string_view client_id, const std::string* username, std::string_view topic, Access a) const {
  return check(section_of(username), *patterns_, client_id, username, topic, a);
}

bool Acl::subscribe_allowed(std::string_view client_id, const std::string* username, std::string_view filter) const {
  return check_subscribe(section_of(username), *patterns_, client_id, username, filter);
}

Acl::ClientView Acl::view(std::string_view client_id, const std::string* username) const {
  ClientView v;
  v.section_ = section_of(username);
  v.patterns_ = patterns_.get();
  v.client_id_ = std::string(client_id);
  v.has_username_ = username != nullptr;
  if (username != nullptr) v.username_ = *username;
  return v;
}

bool Acl::ClientView::allowed(std::string_view topic, Access a) const {
  if (patterns_ == nullptr) return false;
  return check(section_, *patterns_, client_id_, has_username_ ? &username_ : nullptr, topic, a);
}

bool Acl::ClientView::subscribe_allowed(std::string_view filter) const {
  if (patterns_ == nullptr) return false;
  return check_subscribe(section_, *patterns_, client_id_, has_username_ ? &username_ : nullptr, filter);
}

}  // namespace tern::security
