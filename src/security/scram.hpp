#pragma once
// SCRAM, the Salted Challenge Response Authentication Mechanism (RFC 5802), server side, for MQTT 5
// enhanced authentication (MQTT 5.0 section 4.12): SCRAM-SHA-256 (RFC 7677) and SCRAM-SHA-512. SHA-1
// is here only so that RFC 5802's own example runs in the tests; the broker does not offer it.
//
// No I/O: ScramServer takes the client's messages and returns the server's. The exchange is
//   client-first  "n,,n=USER,r=CNONCE"
//   server-first  "r=CNONCE SNONCE,s=SALT,i=ITERATIONS"        (then kContinue: MQTT AUTH 0x18)
//   client-final  "c=biws,r=CNONCE SNONCE,p=PROOF"
//   server-final  "v=SERVERSIGNATURE"                          (kSuccess: CONNACK / AUTH 0x00)
// and the server keeps per user only {salt, iterations, StoredKey, ServerKey} (RFC 5802 section 3):
// neither the password nor anything that lets one log in without a captured exchange.
//
// Decisions (docs/security.md, "Enhanced authentication (SCRAM)"):
// - Channel binding is not supported: the GS2 flag must be "n" (client does not support it) or "y"
//   (client supports it but thinks the server does not; right, since no -PLUS mechanism is offered,
//   RFC 5802 section 6). "p=" fails with "channel-binding-not-supported".
// - An authorization identity ("a=" in the GS2 header) is accepted only when it names the user
//   itself, where it changes nothing; any other fails: a user cannot act as another.
// - SASLprep (RFC 4013) is not applied: user names are compared byte for byte with the file's, after
//   saslname decoding ("=2C" is ',', "=3D" is '='), and must be valid UTF-8 without control
//   characters (which SASLprep prohibits). Printable ASCII is left unchanged by SASLprep, so such
//   names and passwords always work; others only when already in the form SASLprep gives them.
// - A mandatory extension ("m=") fails with "extensions-not-supported"; other extensions are ignored.
// - Unknown users get a decoy: a salt derived from the user name with a secret of this process (the
//   same name gets the same salt for the life of the process) and the iteration count of most real
//   entries; the exchange runs to its end, costs the same and fails with "invalid-proof", exactly as
//   a wrong password does, so user names cannot be probed.
//
// Owner and threads: a ScramServer belongs to one connection and is used on its thread; the free
// functions and ScramFile's const members may be called from any thread.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/string_hash.hpp"
#include "security/password_file.hpp"

namespace tern::security {

enum class ScramHash : std::uint8_t { kSha1, kSha256, kSha512 };

// "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512".
std::string_view scram_mechanism(ScramHash h);
// The mechanism a broker may offer for an MQTT Authentication Method: SCRAM-SHA-256 and SCRAM-SHA-512
// (exact, case-sensitive: RFC 5802 registers upper-case names); nullopt for anything else.
std::optional<ScramHash> scram_offered(std::string_view method);
// Output length of the hash: 20, 32, 64.
std::size_t scram_digest_size(ScramHash h);

// What the server keeps for one user.
struct ScramCredentials {
  std::string salt;  // raw bytes
  int iterations = 0;
  std::string stored_key;  // H(ClientKey), ClientKey = HMAC(SaltedPassword, "Client Key")
  std::string server_key;  // HMAC(SaltedPassword, "Server Key")
};

// SaltedPassword = Hi(password, salt, i) is PBKDF2-HMAC with the hash's own output length: for SHA-512
// exactly the 64-byte hash of a Mosquitto `$7$` password file entry.
ScramCredentials scram_from_salted_password(ScramHash h, std::string_view salted_password, std::string_view salt,
                                            int iterations);
ScramCredentials scram_from_password(ScramHash h, std::string_view password, std::string_view salt, int iterations);

// New credentials with a random salt of kScramSaltBytes (`tern passwd -S`). Throws std::runtime_error
// when no random bytes are available.
inline constexpr int kScramDefaultIterations = 4096;  // RFC 7677 section 4: at least 4096
inline constexpr std::size_t kScramSaltBytes = 16;
ScramCredentials make_scram_credentials(ScramHash h, std::string_view password,
                                        int iterations = kScramDefaultIterations);

// RFC 5803's text form: "SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY" (standard base64).
std::string scram_encode(ScramHash h, const ScramCredentials& c);
// Parses that form for mechanism `h`. Throws PasswordError with the reason only (no file or line).
ScramCredentials scram_decode(ScramHash h, std::string_view text);

// The scram_file: SCRAM-SHA-256 credentials, one user a line, "username:SCRAM-SHA-256$I:SALT$SK:SK".
// Comments, blanks and errors as in the password file (password_file.hpp): a malformed line, another
// mechanism or a user listed twice is an error naming the file and the line.
class ScramFile {
 public:
  // Throws PasswordError ("FILE:LINE: reason").
  static ScramFile load(const std::string& path);
  static ScramFile parse(std::string_view text, const std::string& name);

  const ScramCredentials* find(std::string_view user) const;
  std::size_t size() const { return entries_.size(); }
  // The iteration count and salt length of most entries, for the decoy of unknown users.
  int usual_iterations() const { return usual_iterations_; }
  std::size_t usual_salt_bytes() const { return usual_salt_bytes_; }

 private:
  std::unordered_map<std::string, ScramCredentials, StringHash, std::equal_to<>> entries_;
  int usual_iterations_ = kScramDefaultIterations;
  std::size_t usual_salt_bytes_ = kScramSaltBytes;
};

// What an unknown user's server-first-message looks like.
struct ScramDecoy {
  int iterations = kScramDefaultIterations;
  std::size_t salt_bytes = kScramSaltBytes;
};

class ScramServer {
 public:
  enum class Status { kContinue, kSuccess, kFail };
  struct Step {
    Status status = Status::kFail;
    std::string data;   // the server's message: server-first, server-final, or "e=..." on a final failure
    std::string error;  // kFail: why, for the log (the client learns no more than "e=..." says)
  };

  // `fixed_nonce`: tests only (RFC vectors); empty, the server nonce is 18 random bytes in base64.
  explicit ScramServer(ScramHash h, std::string fixed_nonce = {});

  // Step 1: the client-first-message. kContinue means it is well formed; user() then names the user,
  // whose credentials the caller looks up before calling challenge(). kFail otherwise.
  Step client_first(std::string_view msg);
  const std::string& user() const { return user_; }
  // Step 2: the server-first-message, for the user's credentials, or for null (unknown user, or one
  // without usable credentials) the decoy. The same work is done either way.
  Step challenge(const ScramCredentials* creds, const ScramDecoy& decoy);
  // Step 3: the client-final-message. kSuccess with the server-final-message, or kFail.
  Step client_final(std::string_view msg);

  ScramHash hash() const { return hash_; }
  // The proof was right: user() is authenticated.
  bool authenticated() const { return stage_ == Stage::kDone; }

 private:
  enum class Stage : std::uint8_t { kFirst, kChallenge, kFinal, kDone, kFailed };
  Step fail(std::string error, std::string data = {});

  ScramHash hash_;
  Stage stage_ = Stage::kFirst;
  bool known_ = false;
  std::string user_;
  std::string gs2_header_;   // as sent, e.g. "n,,": the channel binding the client-final must echo
  std::string client_first_bare_;
  std::string nonce_;        // client nonce + server nonce
  std::string server_first_;
  ScramCredentials creds_;
};

}  // namespace tern::security
