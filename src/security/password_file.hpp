#pragma once
// Mosquitto's password file (password_file, written by mosquitto_passwd 2.0.11 or `tern passwd`).
//
// Format, one entry a line: `username:hash`.
//   $7$ITERATIONS$SALT$HASH  PBKDF2-HMAC-SHA512 of the password with SALT, ITERATIONS rounds (Mosquitto's
//                            default since 2.0: 101 rounds, 12-byte salt, 64-byte HASH)
//   $6$SALT$HASH             SHA-512 over the password bytes followed by the salt bytes (Mosquitto 1.x)
// SALT and HASH are standard base64 ('=' padding optional). Blanks around the username and around the
// hash are ignored, as Mosquitto trims them. A line that is empty, only blanks, or whose first non-blank
// character is '#' is a comment. Anything else is an error that names the file and the line, where
// Mosquitto would log and skip the line: a line without ':', an empty username, a hash Tern does not
// know ($argon2id$ of Mosquitto 2.1 included), a malformed salt, hash or iteration count, and a user
// listed twice (Mosquitto silently keeps the last one; here an old password left behind is refused).
//
// Owner and threads: loaded once (startup or reload) on one thread, immutable afterwards; any thread
// may call the const members concurrently. check() costs one hash computation (~0.1 ms at 101 rounds):
// it runs on the worker thread that handles the CONNECT.
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/string_hash.hpp"

namespace tern::security {

// A malformed password file. what() is "FILE:LINE: reason" (or "FILE: reason" when it cannot be read).
struct PasswordError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct PasswordEntry {
  enum Kind { kSha512, kPbkdf2Sha512 };
  std::string user;
  Kind kind = kPbkdf2Sha512;
  int iterations = 0;  // kPbkdf2Sha512 only
  std::string salt;    // raw bytes
  std::string hash;    // raw bytes: 64 (SHA-512 digest length) for both kinds
};

// Mosquitto's defaults for new hashes.
inline constexpr int kDefaultIterations = 101;
inline constexpr std::size_t kSaltBytes = 12;

class PasswordFile {
 public:
  // Throws PasswordError.
  static PasswordFile load(const std::string& path);
  // `name` is the file name used in error messages.
  static PasswordFile parse(std::string_view text, const std::string& name);

  enum class Result { kOk, kWrongPassword, kUnknownUser };
  // The password is MQTT binary data: any bytes. An unknown user costs the same hash computation as a
  // known one (a dummy entry with the file's most common parameters is hashed), and the comparison is
  // constant-time, so the time taken says neither whether the user exists nor how much matched.
  Result check(std::string_view user, std::string_view password) const;

  const PasswordEntry* find(std::string_view user) const;
  std::size_t size() const { return entries_.size(); }
  // The entry unknown users are checked against: the kind and iteration count of most entries (SCRAM
  // gives unknown users a decoy with these parameters, scram.hpp).
  const PasswordEntry& dummy() const { return dummy_; }

 private:
  std::unordered_map<std::string, PasswordEntry, StringHash, std::equal_to<>> entries_;
  PasswordEntry dummy_;
};

// A new hash text ("$7$101$SALT$HASH" or "$6$SALT$HASH") with a fresh random salt. `iterations` applies
// to kPbkdf2Sha512 only and must be > 0. Throws std::runtime_error when no random bytes are available.
std::string make_hash(std::string_view password, PasswordEntry::Kind kind = PasswordEntry::kPbkdf2Sha512,
                      int iterations = kDefaultIterations);

// True when `password` hashes to `entry`'s hash (constant-time comparison).
bool verify(const PasswordEntry& entry, std::string_view password);

// Standard base64 (RFC 4648 section 4). Decoding accepts the text with or without its '=' padding and
// fails on any other character or an impossible length.
std::string base64_encode(std::string_view in);
bool base64_decode(std::string_view in, std::string& out);

// One line of a password file, split as the loader splits it (used by `tern passwd` to rewrite a file
// line by line). kEntry sets `user` and `rest` (the text after the first ':'), both trimmed of blanks.
enum class LineKind { kComment, kEntry, kNoColon };
LineKind split_line(std::string_view line, std::string_view& user, std::string_view& rest);

// Decodes a hash text for `user`. Throws PasswordError with the reason only (no file or line).
PasswordEntry decode_hash(std::string_view user, std::string_view hash);

}  // namespace tern::security
