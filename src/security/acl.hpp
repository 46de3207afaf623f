#pragma once
// Mosquitto's acl_file (mosquitto.conf(5), "acl_file"; Mosquitto 2.0.11).
//
// File format, one statement a line; blank lines and lines whose first non-blank character is '#' are
// comments; keywords are lower case; blanks are spaces or tabs:
//   topic [read|write|readwrite|deny] TOPIC    a rule for the current section
//   pattern [read|write|readwrite|deny] TOPIC  a rule for every client, wherever the line stands
//   user USERNAME                              starts the section of USERNAME (may repeat)
// The access word is optional (readwrite); with a single word after the keyword that word is the
// TOPIC, so `topic read` is a rule on the topic "read", as in Mosquitto. TOPIC is the rest of the line
// (it may contain spaces) and must be a valid topic filter. `topic` lines before the first `user` line
// form the anonymous section. In a `pattern`, a level that is exactly %c is the client id and a level
// that is exactly %u the username; %c or %u mixed with other text in one level is an error (the man
// page requires it alone, and "a/%u%c" would let user "ab" + client "c" pose as user "a" + client "bc").
// In `topic` lines %c and %u are literal text. Any other line is an error naming file and line
// (AclError), and so is a file that cannot be read.
//
// Decision for a client (client id, username or none) and a concrete topic name:
//   rules  = the section of the client's username (for a client without username: the anonymous
//            section; a user without a section has none), plus every pattern, substituted.
//   denied = any applicable `deny` rule matches the topic; else allowed = any rule granting the access
//            (read: read/readwrite, write: write/readwrite) matches; no matching rule = denied.
//   Unlike Mosquitto 2.0.11, a deny wins over every grant: there the client's section is checked first
//   and a grant in it ends the check, so a deny pattern does not stop a grant of the section (a deny
//   in the section does stop a granting pattern, as here).
//   Matching is MQTT's: '+' one level, '#' any number including the parent ("a/#" matches "a"); a
//   rule whose first level is '+' or '#' does not match topics starting with '$' [MQTT-4.7.2-1].
// Pattern substitution:
//   - %u patterns never apply to clients without a username (as Mosquitto); an empty username is
//     substituted as an empty level.
//   - A granting pattern never matches when the client id or username it substitutes contains '+',
//     '#' or '/' (CVE-2017-7650: a client id "#" would turn "pattern read dev/%c/#" into "dev/#", and
//     "a/b" would reach into client "a"'s tree). Mosquitto 2.0.11 checks only '+' and '#', and then
//     turns off every pattern for that client.
//   - A deny pattern substitutes such a value as literal text: with '/' it denies exactly the topic
//     that spells the value; a value with '+' or '#' can appear in no topic name, so it denies nothing
//     more (never broader, never narrower than its intent).
// SUBSCRIBE (Mosquitto's acl_file never refuses one; it checks only deliveries): refused when no rule
// granting read intersects the filter (no topic it matches could be delivered), or when one deny rule
// covers the filter (every topic the filter matches is denied). Otherwise granted, and every delivery
// is still checked with allowed(kRead). A shared subscription "$share/NAME/F" is judged by F.
//
// Owner and threads: built once (startup or reload) on one thread and immutable afterwards; any
// thread may call the const members concurrently. allowed() does not allocate: it walks two small
// tries (the client's section and the patterns), so its cost grows with the topic's levels, not with
// the number of rules. A ClientView points into its Acl's rules (which stay put when the Acl is
// moved): keep the Acl alive (e.g. a shared_ptr held with the view) while views of it exist, also
// across a reload.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/string_hash.hpp"

namespace tern::security {

// A malformed ACL file. what() is "FILE:LINE: reason" (or "FILE: reason" when it cannot be read).
struct AclError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Access { kRead, kWrite };

// Filter relations used by the SUBSCRIBE check; both arguments are valid topic filters (a topic name
// is a filter without wildcards). '$' topics follow [MQTT-4.7.2-1].
// True when some topic name matches both filters.
bool filters_intersect(std::string_view a, std::string_view b);
// True when every topic name that `inner` matches is matched by `outer`.
bool filter_covers(std::string_view outer, std::string_view inner);

class Acl {
  struct Section;

 public:
  struct Rule {
    enum Kind : std::uint8_t { kDeny = 0, kRead = 1, kWrite = 2, kReadWrite = 3 };  // bits: read 1, write 2
    Kind kind = kReadWrite;
    std::string filter;  // as written; a pattern's keeps %c and %u
  };

  Acl();
  ~Acl();
  Acl(Acl&&) noexcept;
  Acl& operator=(Acl&&) noexcept;

  static Acl load(const std::string& path);                          // throws AclError
  static Acl parse(std::string_view text, const std::string& name);  // `name` for error messages

  // `topic` is a concrete topic name (PUBLISH: kWrite; deliveries and retained messages: kRead).
  // `username` null = the client sent no username.
  bool allowed(std::string_view client_id, const std::string* username, std::string_view topic, Access a) const;
  bool subscribe_allowed(std::string_view client_id, const std::string* username, std::string_view filter) const;

  // One client's view, built once (at CONNECT): the section lookup is done and the identity copied,
  // so each check only walks the tries. Cheap to build (no per-rule work). Same answers as the
  // members above for the same identity.
  class ClientView {
   public:
    ClientView() = default;  // denies everything
    bool allowed(std::string_view topic, Access a) const;
    bool subscribe_allowed(std::string_view filter) const;

   private:
    friend class Acl;
    const Section* section_ = nullptr;   // null: the client's username has no section
    const Section* patterns_ = nullptr;  // null: a default-constructed view
    std::string client_id_;
    std::string username_;
    bool has_username_ = false;
  };
  ClientView view(std::string_view client_id, const std::string* username) const;

  std::size_t rules() const { return rules_; }  // topic and pattern lines
  // The rules of one section, in file order (null section: none); for tests and diagnostics.
  const std::vector<Rule>* section_rules(const std::string* username) const;
  const std::vector<Rule>& patterns() const;

 private:
  struct Node;
  struct Section {
    std::vector<Rule> rules;
    std::unique_ptr<Node> root;
  };
  const Section* section_of(const std::string* username) const;
  static bool check(const Section* section, const Section& patterns, std::string_view client_id,
                    const std::string* username, std::string_view topic, Access a);
  static bool check_subscribe(const Section* section, const Section& patterns, std::string_view client_id,
                              const std::string* username, std::string_view filter);

  std::unique_ptr<Section> anonymous_;
  std::unordered_map<std::string, std::unique_ptr<Section>, StringHash, std::equal_to<>> users_;
  std::unique_ptr<Section> patterns_;
  std::size_t rules_ = 0;
};

}  // namespace tern::security
