#pragma once
// The broker's authentication and access control: the password, SCRAM and ACL files of the
// configuration (global, or one per listener with per_listener_settings), loaded together into one
// immutable object. A reload (SIGHUP) builds a new one and swaps it in whole; sessions keep the one
// they were checked with alive until they are checked again (docs/security.md).
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "core/reason_code.hpp"
#include "security/acl.hpp"
#include "security/password_file.hpp"
#include "security/scram.hpp"

namespace tern::broker {

class Auth {
 public:
  // What applies on one listener.
  struct Rules {
    const security::PasswordFile* passwords = nullptr;  // null: no password file
    const security::Acl* acl = nullptr;                 // null: no ACL, every topic allowed
    bool anonymous = false;                             // clients without a username may connect
    const security::ScramFile* scram = nullptr;         // scram_file: SCRAM-SHA-256 users (null: none)
  };

  // Reads every file the configuration names. Throws std::runtime_error naming the file (and line).
  static std::shared_ptr<const Auth> load(const config::Config& cfg);

  // The rules of listener `index` in the configuration's listener list (-1 or unknown: the global ones).
  const Rules& rules(int listener) const;

  // The CONNECT check, as Mosquitto 2.0 does it:
  //   - client id without the clientid_prefixes prefix: not authorized;
  //   - no username: allowed only when anonymous access is (allow_anonymous, Mosquitto 2.0 defaults);
  //   - a username with a password file: the user must be in it with this password; a name the TLS
  //     layer authenticated (`from_transport`) is not checked against it;
  //   - a username without a password file: as a client without one (no user database to check it).
  // Returns kSuccess, kNotAuthorized or kBadUserNameOrPassword.
  Reason authenticate(int listener, std::string_view client_id, const std::optional<std::string>& username,
                      const std::optional<std::string>& password, bool from_transport) const;

  bool any_acl() const { return any_acl_; }

 private:
  std::string clientid_prefixes_;
  Rules global_;
  std::vector<Rules> listeners_;
  bool any_acl_ = false;
  // The loaded files, shared by the listeners that name the same path.
  std::map<std::string, std::unique_ptr<security::PasswordFile>> password_files_;
  std::map<std::string, std::unique_ptr<security::Acl>> acl_files_;
  std::map<std::string, std::unique_ptr<security::ScramFile>> scram_files_;
};

}  // namespace tern::broker
