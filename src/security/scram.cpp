// SCRAM (RFC 5802, RFC 7677) for MQTT 5 enhanced authentication: see scram.hpp.
#include "security/scram.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/utf8.hpp"
#include "security/read_file.hpp"

namespace tern::security {

namespace {

const EVP_MD* md_of(ScramHash h) {
  switch (h) {
    case ScramHash::kSha1: return EVP_sha1();
    case ScramHash::kSha256: return EVP_sha256();
    case ScramHash::kSha512: return EVP_sha512();
  }
  return EVP_sha512();
}

std::string hmac(ScramHash h, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (HMAC(md_of(h), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
           data.size(), out, &len) == nullptr) {
    return {};  // only without memory; every comparison against it then fails
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string digest(ScramHash h, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md_of(h), nullptr) != 1) return {};
  return std::string(reinterpret_cast<const char*>(out), len);
}

// The secret behind the decoys of unknown users: random, made once per process. Without random bytes
// there is no decoy worth the name, and no server nonce either: the exchange fails.
struct DecoySecret {
  bool ok = false;
  std::string key;
};

const DecoySecret& decoy_secret() {
  static const DecoySecret secret = [] {
    DecoySecret s;
    s.key.resize(32);
    s.ok = RAND_bytes(reinterpret_cast<unsigned char*>(s.key.data()), static_cast<int>(s.key.size())) == 1;
    return s;
  }();
  return secret;
}

// What the decoy of `user` is made of: `n` bytes from HMAC-SHA-512(secret, purpose 0 mechanism 0 user
// counter), so the same user always gets the same bytes and nobody without the secret can tell them
// from a random salt.
std::string decoy_bytes(ScramHash h, std::string_view purpose, std::string_view user, std::size_t n) {
  std::string out;
  std::string input;
  input.append(purpose).push_back('\0');
  input.append(scram_mechanism(h)).push_back('\0');
  input.append(user);
  input.push_back('\0');
  for (char counter = 0; out.size() < n; ++counter) {
    input.back() = counter;
    out += hmac(ScramHash::kSha512, decoy_secret().key, input);
  }
  out.resize(n);
  return out;
}

// RFC 5802 section 7: printable = %x21-2B / %x2D-7E (no ',').
bool printable(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7E || c == ',') return false;
  }
  return true;
}

// saslname: "=2C" is ',' and "=3D" is '='; any other '=' is invalid. The result must be a name
// SASLprep would not refuse: valid UTF-8, no ASCII or C1 control characters (RFC 4013 section 5,
// RFC 3454 C.2.1 and C.2.2), not empty.
bool decode_saslname(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out += in[i];
      continue;
    }
    std::string_view esc = in.substr(i + 1, 2);
    if (esc == "2C") {
      out += ',';
    } else if (esc == "3D") {
      out += '=';
    } else {
      return false;
    }
    i += 2;
  }
  if (out.empty() || !valid_mqtt_utf8(out)) return false;
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto c = static_cast<unsigned char>(out[i]);
    if (c < 0x20 || c == 0x7F) return false;
    if (c == 0xC2 && i + 1 < out.size() && static_cast<unsigned char>(out[i + 1]) <= 0x9F) return false;
  }
  return true;
}

// Splits "a=1,b=2" at ','.
std::vector<std::string_view> split_attrs(std::string_view s) {
  std::vector<std::string_view> out;
  for (;;) {
    auto comma = s.find(',');
    out.push_back(s.substr(0, comma));
    if (comma == std::string_view::npos) return out;
    s.remove_prefix(comma + 1);
  }
}

// attr-val = ALPHA "=" value, value non-empty (RFC 5802 section 7).
bool attr(std::string_view a, char name, std::string_view& value) {
  if (a.size() < 3 || a[0] != name || a[1] != '=') return false;
  value = a.substr(2);
  return true;
}

bool extension(std::string_view a) {
  return a.size() >= 3 && ((a[0] >= 'a' && a[0] <= 'z') || (a[0] >= 'A' && a[0] <= 'Z')) && a[1] == '=';
}

bool parse_positive(std::string_view s, int& out) {
  if (s.empty() || s.size() > 10 || s[0] == '0') return false;
  long long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 1 || v > 0x7FFFFFFF) return false;
  out = static_cast<int>(v);
  return true;
}

[[noreturn]] void reject(std::string_view why) { throw PasswordError(std::string(why)); }

}  // namespace

std::string_view scram_mechanism(ScramHash h) {
  switch (h) {
    case ScramHash::kSha1: return "SCRAM-SHA-1";
    case ScramHash::kSha256: return "SCRAM-SHA-256";
    case ScramHash::kSha512: return "SCRAM-SHA-512";
  }
  return "SCRAM";
}

std::optional<ScramHash> scram_offered(std::string_view method) {
  if (method == "SCRAM-SHA-256") return ScramHash::kSha256;
  if (method == "SCRAM-SHA-512") return ScramHash::kSha512;
  return std::nullopt;
}

std::size_t scram_digest_size(ScramHash h) { return static_cast<std::size_t>(EVP_MD_get_size(md_of(h))); }

ScramCredentials scram_from_salted_password(ScramHash h, std::string_view salted_password, std::string_view salt,
                                            int iterations) {
  ScramCredentials c;
  c.salt = std::string(salt);
  c.iterations = iterations;
  c.stored_key = digest(h, hmac(h, salted_password, "Client Key"));
  c.server_key = hmac(h, salted_password, "Server Key");
  return c;
}

ScramCredentials scram_from_password(ScramHash h, std::string_view password, std::string_view salt, int iterations) {
  std::string salted(scram_digest_size(h), '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), iterations,
                        md_of(h), static_cast<int>(salted.size()),
                        reinterpret_cast<unsigned char*>(salted.data())) != 1) {
    throw std::runtime_error("PBKDF2 failed");
  }
  ScramCredentials c = scram_from_salted_password(h, salted, salt, iterations);
  OPENSSL_cleanse(salted.data(), salted.size());
  return c;
}

ScramCredentials make_scram_credentials(ScramHash h, std::string_view password, int iterations) {
  if (iterations < 1) throw std::invalid_argument("iterations must be > 0");
  std::string salt(kScramSaltBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size())) != 1) {
    throw std::runtime_error("no random bytes for a SCRAM salt");
  }
  return scram_from_password(h, password, salt, iterations);
}

std::string scram_encode(ScramHash h, const ScramCredentials& c) {
  return std::string(scram_mechanism(h)) + "$" + std::to_string(c.iterations) + ":" + base64_encode(c.salt) + "$" +
         base64_encode(c.stored_key) + ":" + base64_encode(c.server_key);
}

ScramCredentials scram_decode(ScramHash h, std::string_view text) {
  const std::string prefix = std::string(scram_mechanism(h)) + "$";
  const std::string form = prefix + "ITERATIONS:SALT$STOREDKEY:SERVERKEY";
  if (text.empty()) reject("no SCRAM credentials after ':'");
  if (!text.starts_with(prefix)) {
    auto end = text.find('$');
    reject("not " + std::string(scram_mechanism(h)) + " credentials ('" +
         std::string(text.substr(0, std::min<std::size_t>(end, 24))) + "'; expected " + form + ")");
  }
  text.remove_prefix(prefix.size());
  auto dollar = text.find('$');
  if (dollar == std::string_view::npos) reject("malformed credentials: expected " + form);
  std::string_view params = text.substr(0, dollar);
  std::string_view keys = text.substr(dollar + 1);
  auto c1 = params.find(':');
  auto c2 = keys.find(':');
  if (c1 == std::string_view::npos || c2 == std::string_view::npos) reject("malformed credentials: expected " + form);
  ScramCredentials c;
  if (!parse_positive(params.substr(0, c1), c.iterations)) reject("bad iteration count (a number from 1)");
  if (!base64_decode(params.substr(c1 + 1), c.salt) || c.salt.empty()) reject("malformed salt (expected base64)");
  const std::size_t n = scram_digest_size(h);
  if (!base64_decode(keys.substr(0, c2), c.stored_key) || c.stored_key.size() != n) {
    reject("malformed StoredKey (expected " + std::to_string(n) + " bytes in base64)");
  }
  if (!base64_decode(keys.substr(c2 + 1), c.server_key) || c.server_key.size() != n) {
    reject("malformed ServerKey (expected " + std::to_string(n) + " bytes in base64)");
  }
  return c;
}

ScramFile ScramFile::parse(std::string_view text, const std::string& name) {
  ScramFile f;
  std::unordered_map<std::string_view, std::size_t> first_line;
  std::map<std::pair<int, std::size_t>, std::size_t> params;  // (iterations, salt bytes) -> entries
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    auto where = [&] { return name + ":" + std::to_string(line_no) + ": "; };
    std::string_view user;
    std::string_view rest;
    LineKind kind = split_line(line, user, rest);
    if (kind == LineKind::kComment) continue;
    if (kind == LineKind::kNoColon) throw PasswordError(where() + "no ':' between username and SCRAM credentials");
    if (user.empty()) throw PasswordError(where() + "empty username");
    if (user.size() > 65535) throw PasswordError(where() + "username longer than 65535 bytes");
    if (auto it = first_line.find(user); it != first_line.end()) {
      throw PasswordError(where() + "user '" + std::string(user) + "' is listed twice (also at line " +
                          std::to_string(it->second) + ")");
    }
    ScramCredentials c;
    try {
      c = scram_decode(ScramHash::kSha256, rest);
    } catch (const PasswordError& err) {
      std::string hint;
      if (rest.starts_with("SCRAM-SHA-512$")) hint = " (SCRAM-SHA-512 uses the $7$ entries of the password_file)";
      throw PasswordError(where() + "user '" + std::string(user) + "': " + err.what() + hint);
    }
    first_line.emplace(user, line_no);
    ++params[{c.iterations, c.salt.size()}];
    f.entries_.emplace(std::string(user), std::move(c));
  }
  std::size_t best = 0;
  for (const auto& [p, n] : params) {
    if (n > best) {
      best = n;
      f.usual_iterations_ = p.first;
      f.usual_salt_bytes_ = p.second;
    }
  }
  return f;
}

ScramFile ScramFile::load(const std::string& path) {
  std::string text;
  if (std::string why = read_file(path, "scram_file", text); !why.empty()) throw PasswordError(why);
  return parse(text, path);
}

const ScramCredentials* ScramFile::find(std::string_view user) const {
  auto it = entries_.find(user);
  return it == entries_.end() ? nullptr : &it->second;
}

ScramServer::ScramServer(ScramHash h, std::string fixed_nonce) : hash_(h), nonce_(std::move(fixed_nonce)) {}

ScramServer::Step ScramServer::fail(std::string error, std::string data) {
  stage_ = Stage::kFailed;
  creds_ = {};
  return Step{Status::kFail, std::move(data), std::move(error)};
}

ScramServer::Step ScramServer::client_first(std::string_view msg) {
  if (stage_ != Stage::kFirst) return fail("client-first-message out of order");
  // gs2-header = gs2-cbind-flag "," [authzid] ","
  if (msg.starts_with("p=")) return fail("the client requires channel binding, which is not supported");
  if (msg.size() < 2 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',') {
    return fail("malformed GS2 header (expected \"n,,\")");
  }
  auto comma = msg.find(',', 2);
  if (comma == std::string_view::npos) return fail("malformed GS2 header (expected \"n,,\")");
  std::string_view authzid = msg.substr(2, comma - 2);
  gs2_header_ = std::string(msg.substr(0, comma + 1));
  std::string_view bare = msg.substr(comma + 1);
  client_first_bare_ = std::string(bare);
  auto attrs = split_attrs(bare);
  std::string_view value;
  if (attrs[0].starts_with("m=")) return fail("a mandatory extension (m=) is not supported");
  if (attrs.size() < 2 || !attr(attrs[0], 'n', value) || !decode_saslname(value, user_)) {
    return fail("malformed or missing user name (n=)");
  }
  std::string_view client_nonce;
  if (!attr(attrs[1], 'r', client_nonce) || !printable(client_nonce)) return fail("malformed or missing nonce (r=)");
  for (std::size_t i = 2; i < attrs.size(); ++i) {
    if (!extension(attrs[i])) return fail("malformed attribute after the nonce");
  }
  if (!authzid.empty()) {
    // An authorization identity only as the user itself, where it changes nothing (scram.hpp).
    std::string as;
    if (!attr(authzid, 'a', value) || !decode_saslname(value, as)) return fail("malformed authorization identity");
    if (as != user_) return fail("authorization identity '" + as + "' differs from the user name");
  }
  if (nonce_.empty()) {
    unsigned char r[18];
    if (RAND_bytes(r, sizeof r) != 1) return fail("no random bytes for the server nonce");
    nonce_ = base64_encode(std::string_view(reinterpret_cast<const char*>(r), sizeof r));
  }
  nonce_.insert(0, client_nonce);
  stage_ = Stage::kChallenge;
  return Step{Status::kContinue, {}, {}};
}

ScramServer::Step ScramServer::challenge(const ScramCredentials* creds, const ScramDecoy& decoy) {
  if (stage_ != Stage::kChallenge) return fail("challenge out of order");
  if (!decoy_secret().ok) return fail("no random bytes for the decoy secret");
  // The decoy is computed for every user, so a known user costs what an unknown one does.
  ScramCredentials fake = scram_from_salted_password(
      hash_, decoy_bytes(hash_, "salted", user_, scram_digest_size(hash_)),
      decoy_bytes(hash_, "salt", user_, std::max<std::size_t>(1, std::min<std::size_t>(decoy.salt_bytes, 1024))),
      decoy.iterations > 0 ? decoy.iterations : kScramDefaultIterations);
  known_ = creds != nullptr && !creds->salt.empty() && creds->iterations > 0 &&
           creds->stored_key.size() == scram_digest_size(hash_) && creds->server_key.size() == scram_digest_size(hash_);
  creds_ = known_ ? *creds : std::move(fake);
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(creds_.salt) + ",i=" + std::to_string(creds_.iterations);
  stage_ = Stage::kFinal;
  return Step{Status::kContinue, server_first_, {}};
}

ScramServer::Step ScramServer::client_final(std::string_view msg) {
  if (stage_ != Stage::kFinal) return fail("client-final-message out of order");
  // client-final-message = channel-binding "," nonce ["," extensions] "," proof; the proof is last.
  auto p = msg.rfind(",p=");
  if (p == std::string_view::npos) return fail("no proof (p=)", "e=invalid-encoding");
  std::string_view without_proof = msg.substr(0, p);
  std::string proof;
  if (!base64_decode(msg.substr(p + 3), proof)) return fail("malformed proof", "e=invalid-encoding");
  auto attrs = split_attrs(without_proof);
  std::string_view value;
  std::string binding;
  if (attrs.size() < 2 || !attr(attrs[0], 'c', value) || !base64_decode(value, binding)) {
    return fail("malformed or missing channel binding (c=)", "e=invalid-encoding");
  }
  // Without channel binding, c= carries the GS2 header itself ("biws" is "n,,").
  if (binding != gs2_header_) {
    return fail("channel binding differs from the GS2 header", "e=channel-bindings-dont-match");
  }
  if (!attr(attrs[1], 'r', value) || value != nonce_) return fail("wrong nonce", "e=other-error");
  for (std::size_t i = 2; i < attrs.size(); ++i) {
    if (!extension(attrs[i])) return fail("malformed attribute before the proof", "e=invalid-encoding");
  }
  // RFC 5802 section 3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) must be
  // StoredKey. Everything is computed for a wrong length or an unknown user too.
  const std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  std::string client_key = hmac(hash_, creds_.stored_key, auth_message);
  const bool length_ok = proof.size() == client_key.size();
  for (std::size_t i = 0; i < client_key.size(); ++i) client_key[i] ^= i < proof.size() ? proof[i] : '\0';
  const std::string stored = digest(hash_, client_key);
  const std::string server_signature = hmac(hash_, creds_.server_key, auth_message);
  const bool match = stored.size() == creds_.stored_key.size() && !stored.empty() &&
                     CRYPTO_memcmp(stored.data(), creds_.stored_key.data(), stored.size()) == 0;
  OPENSSL_cleanse(client_key.data(), client_key.size());
  if (!(match && length_ok && known_)) {
    // An unknown user ends here too, with the answer a wrong password gets.
    return fail(known_ ? "wrong proof (wrong password)" : "unknown user, or one without credentials for this mechanism",
                "e=invalid-proof");
  }
  stage_ = Stage::kDone;
  creds_ = {};
  return Step{Status::kSuccess, "v=" + base64_encode(server_signature), {}};
}

}  // namespace tern::security
