// The ACL file parser and its decisions (src/security/acl.*) on arbitrary input. The parser may throw
// only AclError (naming the file and the line); an accepted file's decisions are compared with a
// reference that applies the documented rules (acl.hpp) to the rule lists one by one, where the Acl
// walks its tries; the filter relations used by the SUBSCRIBE check are tested against topic names
// built from the filters.
// Input: the ACL file's text; optionally NUL, a flags byte (bit 0: the client has a username), then
// NUL-separated fields: client id, username, and up to kMaxItems topic names or filters to check.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/topic.hpp"
#include "fuzz_common.hpp"
#include "security/acl.hpp"

namespace {

using tern::security::Access;
using tern::security::Acl;
using tern::security::AclError;
using tern::security::filter_covers;
using tern::security::filters_intersect;

constexpr std::size_t kMaxItems = 8;

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    auto p = s.find(sep);
    out.push_back(s.substr(0, p));
    if (p == std::string_view::npos) return out;
    s.remove_prefix(p + 1);
  }
}

bool has_wildcard(std::string_view s) { return s.find_first_of("+#") != std::string_view::npos; }

// acl.hpp's pattern substitution, written out: nothing when the rule does not apply to this client.
std::optional<std::string> ref_substitute(const Acl::Rule& r, std::string_view client_id, const std::string* username) {
  std::string out;
  bool first = true;
  for (std::string_view level : split(r.filter, '/')) {
    if (!first) out += '/';
    first = false;
    if (level != "%c" && level != "%u") {
      out += level;
      continue;
    }
    if (level == "%u" && username == nullptr) return std::nullopt;  // %u needs a username
    std::string_view v = level == "%c" ? client_id : std::string_view(*username);
    if (has_wildcard(v)) return std::nullopt;  // grant: refused; deny: could match no topic name
    if (r.kind != Acl::Rule::kDeny && v.find('/') != std::string_view::npos) return std::nullopt;
    out += v;
  }
  return out;
}

bool ref_allowed(const Acl& acl, std::string_view client_id, const std::string* username, std::string_view topic,
                 Access a) {
  bool deny = false;
  unsigned grant = 0;
  auto apply = [&](Acl::Rule::Kind kind, std::string_view filter) {
    if (!tern::topic_matches(filter, topic)) return;
    if (kind == Acl::Rule::kDeny) {
      deny = true;
    } else {
      grant |= kind;
    }
  };
  if (const auto* rules = acl.section_rules(username)) {
    for (const auto& r : *rules) apply(r.kind, r.filter);
  }
  for (const auto& r : acl.patterns()) {
    if (auto f = ref_substitute(r, client_id, username)) apply(r.kind, *f);
  }
  return !deny && (grant & (a == Access::kRead ? Acl::Rule::kRead : Acl::Rule::kWrite)) != 0;
}

// Topic names that `filter` may match, built from its own levels and those of `other`: '+' becomes a
// word, an empty level or the other's level at that depth, '#' nothing (the parent), one or two words,
// or the other's remaining levels. The caller keeps those the filter really matches.
std::vector<std::string> witnesses(std::string_view filter, std::string_view other) {
  const auto fl = split(filter, '/');
  const auto ol = split(other, '/');
  std::vector<std::string> out;
  for (int variant = 0; variant < 4; ++variant) {
    std::vector<std::string> levels;
    for (std::size_t i = 0; i < fl.size(); ++i) {
      std::string_view o = i < ol.size() && !has_wildcard(ol[i]) ? ol[i] : std::string_view("y");
      if (fl[i] == "+") {
        levels.emplace_back(variant == 0 ? "x" : variant == 1 ? "" : o);
      } else if (fl[i] == "#") {
        if (variant == 1) {
          levels.emplace_back("x");
          levels.emplace_back("y");
        } else if (variant == 2) {
          for (std::size_t k = i; k < ol.size(); ++k) levels.emplace_back(has_wildcard(ol[k]) ? "z" : ol[k]);
        } else if (variant == 3) {
          levels.emplace_back(o);
        }
      } else {
        levels.emplace_back(fl[i]);
      }
    }
    std::string t;
    for (std::size_t i = 0; i < levels.size(); ++i) t += (i ? "/" : "") + levels[i];
    if (tern::valid_topic_name(t) && tern::topic_matches(filter, t)) out.push_back(std::move(t));
  }
  return out;
}

void check_relations(std::string_view a, std::string_view b) {
  const bool inter = filters_intersect(a, b);
  const bool covers = filter_covers(a, b);
  FUZZ_CHECK(inter == filters_intersect(b, a));
  FUZZ_CHECK(!covers || inter);  // every valid filter matches some topic name
  if (!has_wildcard(b)) {
    // A topic name: both relations are plain matching.
    FUZZ_CHECK(inter == tern::topic_matches(a, b));
    FUZZ_CHECK(covers == tern::topic_matches(a, b));
  }
  for (const auto& w : witnesses(b, a)) {
    const bool in_a = tern::topic_matches(a, w);
    if (covers) FUZZ_CHECK(in_a);
    if (in_a) FUZZ_CHECK(inter);
  }
}

void check_client(const Acl& acl, std::string_view client_id, const std::string* username,
                  const std::vector<std::string_view>& items) {
  const Acl::ClientView view = acl.view(client_id, username);
  for (std::string_view item : items) {
    if (tern::valid_topic_name(item)) {
      for (Access a : {Access::kRead, Access::kWrite}) {
        const bool got = acl.allowed(client_id, username, item, a);
        FUZZ_CHECK(got == ref_allowed(acl, client_id, username, item, a));
        FUZZ_CHECK(got == view.allowed(item, a));
      }
    }
    if (!tern::valid_topic_filter(item)) continue;
    const bool sub = acl.subscribe_allowed(client_id, username, item);
    FUZZ_CHECK(sub == view.subscribe_allowed(item));
    std::string_view share;
    std::string_view inner = item;
    auto shared = tern::parse_shared_subscription(item, share, inner);
    if (shared == tern::SharedFilter::kInvalid || !tern::valid_topic_filter(inner)) continue;
    if (!has_wildcard(inner)) {
      FUZZ_CHECK(sub == acl.allowed(client_id, username, inner, Access::kRead));
    }
    // A topic the filter matches that could be delivered means the SUBSCRIBE is granted.
    for (std::string_view other : items) {
      for (const auto& w : witnesses(inner, other)) {
        if (acl.allowed(client_id, username, w, Access::kRead)) FUZZ_CHECK(sub);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const auto nul = all.find('\0');
  Acl acl;
  try {
    acl = Acl::parse(all.substr(0, nul), "acl");
  } catch (const AclError& e) {
    const std::string what = e.what();
    FUZZ_CHECK(what.starts_with("acl:") && what.size() > 4 && what[4] >= '1' && what[4] <= '9');
    return 0;
  }
  // Every rule kept is a valid filter; a pattern's %c and %u are whole levels.
  std::size_t rules = acl.patterns().size();
  for (const auto& r : acl.patterns()) {
    FUZZ_CHECK(tern::valid_topic_filter(r.filter));
    for (std::string_view level : split(r.filter, '/')) {
      const bool has = level.find("%c") != std::string_view::npos || level.find("%u") != std::string_view::npos;
      FUZZ_CHECK(!has || level == "%c" || level == "%u");
    }
  }
  if (const auto* anon = acl.section_rules(nullptr)) {
    for (const auto& r : *anon) FUZZ_CHECK(tern::valid_topic_filter(r.filter));
    rules += anon->size();
  }
  FUZZ_CHECK(rules <= acl.rules());
  if (nul == std::string_view::npos || nul + 1 >= all.size()) return 0;

  const std::uint8_t flags = static_cast<std::uint8_t>(all[nul + 1]);
  auto fields = split(all.substr(nul + 2), '\0');
  const std::string_view client_id = fields[0];
  const std::string username(fields.size() > 1 ? fields[1] : std::string_view());
  const std::string* user = (flags & 1) ? &username : nullptr;
  std::vector<std::string_view> items;
  for (std::size_t i = 2; i < fields.size() && items.size() < kMaxItems; ++i) items.push_back(fields[i]);
  // The rules of the client's section take part in the relation checks too.
  std::vector<std::string_view> filters;
  for (std::string_view item : items) {
    if (tern::valid_topic_filter(item)) filters.push_back(item);
  }
  if (const auto* section = acl.section_rules(user)) {
    for (std::size_t i = 0; i < section->size() && i < kMaxItems; ++i) filters.push_back((*section)[i].filter);
  }
  check_client(acl, client_id, user, items);
  for (std::string_view a : filters) {
    for (std::string_view b : filters) check_relations(a, b);
  }
  return 0;
}
