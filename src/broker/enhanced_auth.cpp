// Shard: MQTT 5 enhanced authentication (MQTT 5.0 section 4.12) with SCRAM-SHA-256 and SCRAM-SHA-512
// (security/scram.hpp; docs/security.md, "Enhanced authentication (SCRAM)").
//
// Where the users are, on the client's listener: SCRAM-SHA-512 takes the password file's `$7$`
// entries (Mosquitto's PBKDF2-HMAC-SHA512 hash is SCRAM-SHA-512's SaltedPassword, so no password is
// needed); SCRAM-SHA-256 takes the scram_file. A method whose file the listener does not have is not
// offered: CONNACK 0x8C, as for any unknown method.
//
// State: one ScramServer per connection in the middle of an exchange, in scram_ by the connection's
// serial. It goes when the exchange fails, when a re-authentication ends, when on_connect takes the
// user of a successful one, or when the connection closes. The protocol core holds the CONNECT until
// the exchange ends and calls on_connect only after success, within connect_timeout.
#include <fmt/format.h>

#include "broker/shard.hpp"

namespace tern::broker {

using protocol::AuthStep;
using protocol::ServerConnection;
using security::ScramHash;
using Status = security::ScramServer::Status;

AuthStep Shard::scram_failed(ServerConnection& c, ScramHash h, const std::string& why) {
  std::string user;
  if (auto it = scram_.find(c.serial); c.serial != 0 && it != scram_.end()) {
    user = it->second.user();
    scram_.erase(it);
  }
  const bool connecting = c.state() == ServerConnection::State::kAuthenticating;
  log(1, fmt::format("Client {} from {} failed {}{}{}: {}.", c.client_id(), c.peer(), security::scram_mechanism(h),
                     connecting ? "" : " re-authentication", user.empty() ? "" : " as '" + user + "'", why));
  if (connecting) stats_.connections_refused.fetch_add(1, std::memory_order_relaxed);
  // Every failure gets the same answer: CONNACK 0x87 Not authorized, or DISCONNECT 0x87 after a
  // failed re-authentication (section 4.12: a reason of 0x80 or more, then the connection closes
  // [MQTT-4.12.0-4]). 0x86 Bad User Name or Password names CONNECT's fields, which SCRAM does not use;
  // and an unknown user must look like a wrong password, so no answer may tell them apart.
  AuthStep step;
  step.kind = AuthStep::kFail;
  step.reason = Reason::kNotAuthorized;
  return step;
}

AuthStep Shard::auth_start(ServerConnection& c, const std::string& method, const std::string& data, bool reauth) {
  const auto h = security::scram_offered(method);
  if (!h) return {};  // not supported: CONNACK 0x8C Bad authentication method (section 4.12)
  std::shared_ptr<const Auth> auth = broker_.auth();
  const Auth::Rules& rules = auth->rules(c.listener);
  if (*h == ScramHash::kSha512 ? rules.passwords == nullptr : rules.scram == nullptr) return {};
  if (c.serial == 0) c.serial = next_serial_++;
  security::ScramServer& x = scram_.insert_or_assign(c.serial, security::ScramServer(*h)).first->second;
  auto first = x.client_first(data);
  if (first.status != Status::kContinue) return scram_failed(c, *h, first.error);
  if (c.username() && *c.username() != x.user()) {
    // A CONNECT that names a user as well must name the same one: the two names cannot disagree.
    return scram_failed(c, *h, "CONNECT's user name '" + *c.username() + "' is another user");
  }
  if (reauth) {
    // Re-authentication proves the same identity again; the session's ACL view is that user's.
    const auto* s = static_cast<const Session*>(c.user);
    if (s == nullptr || !s->username || *s->username != x.user()) {
      return scram_failed(c, *h, "re-authentication as another user");
    }
  }
  security::ScramDecoy decoy;
  security::ScramServer::Step challenge;
  if (*h == ScramHash::kSha512) {
    // The file's dummy entry gives the parameters of most entries, which unknown users get too.
    const security::PasswordEntry& d = rules.passwords->dummy();
    const bool pbkdf2 = d.kind == security::PasswordEntry::kPbkdf2Sha512;
    decoy = {pbkdf2 ? d.iterations : security::kDefaultIterations, security::kSaltBytes};
    const security::PasswordEntry* e = rules.passwords->find(x.user());
    // A `$6$` entry (one SHA-512 of password and salt) gives nothing SCRAM can use: that user fails as
    // a wrong password does. The keys are derived for every user, so the time taken is the same.
    const bool usable = e != nullptr && e->kind == security::PasswordEntry::kPbkdf2Sha512;
    const security::PasswordEntry& from = usable ? *e : d;
    security::ScramCredentials creds =
        security::scram_from_salted_password(ScramHash::kSha512, from.hash, from.salt, from.iterations);
    challenge = x.challenge(usable ? &creds : nullptr, decoy);
  } else {
    decoy = {rules.scram->usual_iterations(), rules.scram->usual_salt_bytes()};
    challenge = x.challenge(rules.scram->find(x.user()), decoy);
  }
  if (challenge.status != Status::kContinue) return scram_failed(c, *h, challenge.error);
  AuthStep step;
  step.kind = AuthStep::kContinue;
  step.data = std::move(challenge.data);
  return step;
}

AuthStep Shard::auth_continue(ServerConnection& c, const std::string& data) {
  auto it = c.serial != 0 ? scram_.find(c.serial) : scram_.end();
  if (it == scram_.end()) {
    // Cannot happen: the core sends AUTH 0x18 here only after auth_start answered kContinue.
    AuthStep step;
    step.kind = AuthStep::kFail;
    return step;
  }
  security::ScramServer& x = it->second;
  auto fin = x.client_final(data);
  if (fin.status != Status::kSuccess) return scram_failed(c, x.hash(), fin.error);
  if (c.state() == ServerConnection::State::kAuthenticating) {
    // on_connect takes the user (take_scram_identity), then the entry goes.
    log(1, fmt::format("Client {} from {} authenticated as '{}' ({}).", c.client_id(), c.peer(), x.user(),
                       security::scram_mechanism(x.hash())));
  } else {
    log(1, fmt::format("Client {} re-authenticated as '{}' ({}).", c.client_id(), x.user(),
                       security::scram_mechanism(x.hash())));
    scram_.erase(it);
  }
  AuthStep step;
  step.kind = AuthStep::kSuccess;
  step.data = std::move(fin.data);  // server-final-message "v=...": the client checks the server too
  return step;
}

std::optional<ScramHash> Shard::take_scram_identity(const ServerConnection& c, std::optional<std::string>& user) {
  auto it = c.serial != 0 ? scram_.find(c.serial) : scram_.end();
  if (it == scram_.end()) return std::nullopt;
  std::optional<ScramHash> h;
  if (it->second.authenticated()) {
    h = it->second.hash();
    user = it->second.user();
  }
  scram_.erase(it);
  return h;
}

Reason Shard::scram_recheck(const Auth& auth, const std::string& client_id, const Session& s) {
  // The name was proven by the exchange: only clientid_prefixes applies of the CONNECT checks.
  if (!s.username || auth.authenticate(s.listener, client_id, s.username, std::nullopt, true) != Reason::kSuccess) {
    return Reason::kNotAuthorized;
  }
  const Auth::Rules& rules = auth.rules(s.listener);
  if (*s.scram == ScramHash::kSha512) {
    const security::PasswordEntry* e = rules.passwords ? rules.passwords->find(*s.username) : nullptr;
    return e != nullptr && e->kind == security::PasswordEntry::kPbkdf2Sha512 ? Reason::kSuccess
                                                                              : Reason::kNotAuthorized;
  }
  return rules.scram != nullptr && rules.scram->find(*s.username) != nullptr ? Reason::kSuccess
                                                                              : Reason::kNotAuthorized;
}

}  // namespace tern::broker
