#include "security/password_file.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <utility>

#include "security/read_file.hpp"

namespace tern::security {

namespace {

constexpr std::size_t kHashBytes = 64;       // SHA-512 digest and Mosquitto's PBKDF2 output length
constexpr std::size_t kMaxUsername = 65535;  // an MQTT string [MQTT-1.5.3]
constexpr std::string_view kBlanks = " \t\r\n\v\f";

std::string_view trim(std::string_view s) {
  auto b = s.find_first_not_of(kBlanks);
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(kBlanks);
  return s.substr(b, e - b + 1);
}

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

namespace {

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

bool base64_decode(std::string_view in, std::string& out) {
  while (!in.empty() && in.back() == '=' && in.size() % 4 != 1) in.remove_suffix(1);
  if (in.size() % 4 == 1) return false;
  out.clear();
  unsigned acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = base64_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return true;
}

namespace {

// Digits only, 1..INT_MAX.
bool parse_iterations(std::string_view s, int& out) {
  if (s.empty() || s.size() > 10) return false;
  long long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < 1 || v > 0x7FFFFFFF) return false;
  out = static_cast<int>(v);
  return true;
}

// The digest of `entry`'s kind and parameters over `password`, into out[kHashBytes].
bool compute(const PasswordEntry& entry, std::string_view password, unsigned char* out) {
  if (entry.kind == PasswordEntry::kPbkdf2Sha512) {
    return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                             reinterpret_cast<const unsigned char*>(entry.salt.data()),
                             static_cast<int>(entry.salt.size()), entry.iterations, EVP_sha512(),
                             static_cast<int>(kHashBytes), out) == 1;
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned len = 0;
  return ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha512(), nullptr) == 1 &&
         EVP_DigestUpdate(ctx.get(), password.data(), password.size()) == 1 &&
         EVP_DigestUpdate(ctx.get(), entry.salt.data(), entry.salt.size()) == 1 &&
         EVP_DigestFinal_ex(ctx.get(), out, &len) == 1 && len == kHashBytes;
}

std::string encode(const PasswordEntry& e) {
  if (e.kind == PasswordEntry::kSha512) return "$6$" + base64_encode(e.salt) + "$" + base64_encode(e.hash);
  return "$7$" + std::to_string(e.iterations) + "$" + base64_encode(e.salt) + "$" + base64_encode(e.hash);
}

[[noreturn]] void fail(std::string_view why) { throw PasswordError(std::string(why)); }

}  // namespace

LineKind split_line(std::string_view line, std::string_view& user, std::string_view& rest) {
  std::string_view t = trim(line);
  // Mosquitto reads '#' as a comment only in the first column; its mosquitto_passwd writes every
  // username there, so a user whose name starts with '#' never worked. Indented comments are
  // accepted here too.
  if (t.empty() || t[0] == '#') return LineKind::kComment;
  auto colon = t.find(':');
  if (colon == std::string_view::npos) return LineKind::kNoColon;
  user = trim(t.substr(0, colon));
  rest = trim(t.substr(colon + 1));
  return LineKind::kEntry;
}

PasswordEntry decode_hash(std::string_view user, std::string_view hash) {
  PasswordEntry e;
  e.user = std::string(user);
  std::string_view rest;
  std::string_view salt;
  std::string_view digest;
  if (hash.empty()) fail("no password hash after ':'");
  if (hash.substr(0, 10) == "$argon2id$") {
    fail(
        "argon2id password hashes (Mosquitto 2.1) are not supported: set this password again with "
        "`tern passwd` or mosquitto_passwd 2.0 (sha512-pbkdf2)");
  }
  if (hash.substr(0, 3) == "$7$") {
    e.kind = PasswordEntry::kPbkdf2Sha512;
    rest = hash.substr(3);
    auto d = rest.find('$');
    if (d == std::string_view::npos || !parse_iterations(rest.substr(0, d), e.iterations)) {
      fail("bad iteration count in $7$ hash (expected $7$ITERATIONS$SALT$HASH, ITERATIONS > 0)");
    }
    rest = rest.substr(d + 1);
  } else if (hash.substr(0, 3) == "$6$") {
    e.kind = PasswordEntry::kSha512;
    rest = hash.substr(3);
  } else if (hash[0] == '$') {
    auto end = hash.find('$', 1);
    fail("unsupported password hash type '" + std::string(hash.substr(0, end == std::string_view::npos ? 1 : end + 1)) +
         "' (supported: $7$ sha512-pbkdf2, $6$ sha512)");
  } else {
    fail("not a password hash (a plain-text password? convert the file with `tern passwd -U`)");
  }
  auto d = rest.find('$');
  if (d == std::string_view::npos) fail("malformed hash: no '$' between salt and hash");
  salt = rest.substr(0, d);
  digest = rest.substr(d + 1);
  if (!base64_decode(salt, e.salt) || e.salt.empty()) fail("malformed salt (expected base64)");
  if (!base64_decode(digest, e.hash)) fail("malformed hash (expected base64)");
  if (e.hash.size() != kHashBytes) {
    fail("malformed hash: " + std::to_string(e.hash.size()) + " bytes instead of " + std::to_string(kHashBytes));
  }
  return e;
}

PasswordFile PasswordFile::parse(std::string_view text, const std::string& name) {
  PasswordFile f;
  std::unordered_map<std::string_view, std::size_t> first_line;
  std::map<std::pair<int, int>, std::size_t> params;  // (kind, iterations) -> entries, for the dummy
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    auto where = [&] { return name + ":" + std::to_string(line_no) + ": "; };
    std::string_view user;
    std::string_view hash;
    LineKind kind = split_line(line, user, hash);
    if (kind == LineKind::kComment) continue;
    if (kind == LineKind::kNoColon) throw PasswordError(where() + "no ':' between username and password hash");
    if (user.empty()) throw PasswordError(where() + "empty username");
    if (user.size() > kMaxUsername) throw PasswordError(where() + "username longer than 65535 bytes");
    if (auto it = first_line.find(user); it != first_line.end()) {
      throw PasswordError(where() + "user '" + std::string(user) + "' is listed twice (also at line " +
                          std::to_string(it->second) + ")");
    }
    PasswordEntry e;
    try {
      e = decode_hash(user, hash);
    } catch (const PasswordError& err) {
      throw PasswordError(where() + "user '" + std::string(user) + "': " + err.what());
    }
    first_line.emplace(user, line_no);
    ++params[{e.kind, e.kind == PasswordEntry::kPbkdf2Sha512 ? e.iterations : 0}];
    std::string key = e.user;
    f.entries_.emplace(std::move(key), std::move(e));
  }
  // The dummy of unknown users costs what most entries cost.
  f.dummy_.kind = PasswordEntry::kPbkdf2Sha512;
  f.dummy_.iterations = kDefaultIterations;
  std::size_t best = 0;
  for (const auto& [p, n] : params) {
    if (n > best) {
      best = n;
      f.dummy_.kind = static_cast<PasswordEntry::Kind>(p.first);
      f.dummy_.iterations = p.second;
    }
  }
  f.dummy_.salt.assign(kSaltBytes, '\0');
  f.dummy_.hash.assign(kHashBytes, '\xFF');
  return f;
}

PasswordFile PasswordFile::load(const std::string& path) {
  std::string text;
  if (std::string why = read_file(path, "password file", text); !why.empty()) throw PasswordError(why);
  return parse(text, path);
}

const PasswordEntry* PasswordFile::find(std::string_view user) const {
  auto it = entries_.find(user);
  return it == entries_.end() ? nullptr : &it->second;
}

PasswordFile::Result PasswordFile::check(std::string_view user, std::string_view password) const {
  const PasswordEntry* e = find(user);
  if (e == nullptr) {
    (void)verify(dummy_, password);  // the same work as for a known user
    return Result::kUnknownUser;
  }
  return verify(*e, password) ? Result::kOk : Result::kWrongPassword;
}

bool verify(const PasswordEntry& entry, std::string_view password) {
  unsigned char out[kHashBytes];
  if (!compute(entry, password, out)) return false;
  if (entry.hash.size() != kHashBytes) return false;
  return CRYPTO_memcmp(out, entry.hash.data(), kHashBytes) == 0;
}

std::string make_hash(std::string_view password, PasswordEntry::Kind kind, int iterations) {
  if (kind == PasswordEntry::kPbkdf2Sha512 && iterations < 1) throw std::invalid_argument("iterations must be > 0");
  PasswordEntry e;
  e.kind = kind;
  e.iterations = kind == PasswordEntry::kPbkdf2Sha512 ? iterations : 0;
  e.salt.resize(kSaltBytes);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(e.salt.data()), static_cast<int>(kSaltBytes)) != 1) {
    throw std::runtime_error("no random bytes for a password salt");
  }
  unsigned char out[kHashBytes];
  if (!compute(e, password, out)) throw std::runtime_error("password hashing failed");
  e.hash.assign(reinterpret_cast<const char*>(out), kHashBytes);
  return encode(e);
}

}  // namespace tern::security
