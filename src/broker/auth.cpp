#include "broker/auth.hpp"

namespace tern::broker {

std::shared_ptr<const Auth> Auth::load(const config::Config& cfg) {
  auto a = std::make_shared<Auth>();
  a->clientid_prefixes_ = cfg.clientid_prefixes;
  auto passwords = [&a](const std::string& path) -> const security::PasswordFile* {
    if (path.empty()) return nullptr;
    auto& slot = a->password_files_[path];
    if (!slot) slot = std::make_unique<security::PasswordFile>(security::PasswordFile::load(path));
    return slot.get();
  };
  auto acl = [&a](const std::string& path) -> const security::Acl* {
    if (path.empty()) return nullptr;
    auto& slot = a->acl_files_[path];
    if (!slot) slot = std::make_unique<security::Acl>(security::Acl::load(path));
    a->any_acl_ = true;
    return slot.get();
  };
  auto scram = [&a](const std::string& path) -> const security::ScramFile* {
    if (path.empty()) return nullptr;
    auto& slot = a->scram_files_[path];
    if (!slot) slot = std::make_unique<security::ScramFile>(security::ScramFile::load(path));
    return slot.get();
  };
  a->global_ = Rules{passwords(cfg.password_file), acl(cfg.acl_file), cfg.effective_allow_anonymous()};
  a->global_.scram = scram(cfg.scram_file);
  for (const auto& l : cfg.listeners) {
    a->listeners_.push_back(Rules{passwords(cfg.password_file_of(&l)), acl(cfg.acl_file_of(&l)), cfg.allow_anonymous_on(&l)});
    a->listeners_.back().scram = scram(cfg.scram_file_of(&l));
  }
  return a;
}

const Auth::Rules& Auth::rules(int listener) const {
  if (listener < 0 || static_cast<std::size_t>(listener) >= listeners_.size()) return global_;
  return listeners_[static_cast<std::size_t>(listener)];
}

Reason Auth::authenticate(int listener, std::string_view client_id, const std::optional<std::string>& username,
                          const std::optional<std::string>& password, bool from_transport) const {
  if (!clientid_prefixes_.empty() && !client_id.starts_with(clientid_prefixes_)) return Reason::kNotAuthorized;
  const Rules& r = rules(listener);
  if (!username) return r.anonymous ? Reason::kSuccess : Reason::kNotAuthorized;
  // The TLS layer authenticated this name (certificate or PSK identity): no password is checked, as
  // in Mosquitto; the ACL still applies to it.
  if (from_transport) return Reason::kSuccess;
  // Without a password file a username proves nothing: such a client is treated as anonymous
  // (Mosquitto 2.0.11 refuses it with allow_anonymous false too).
  if (r.passwords == nullptr) return r.anonymous ? Reason::kSuccess : Reason::kNotAuthorized;
  if (!password) {
    // Known or not, the answer and the time taken are those of a wrong password.
    (void)r.passwords->check(*username, std::string_view{});
    return Reason::kBadUserNameOrPassword;
  }
  return r.passwords->check(*username, *password) == security::PasswordFile::Result::kOk
             ? Reason::kSuccess
             : Reason::kBadUserNameOrPassword;
}

}  // namespace tern::broker
