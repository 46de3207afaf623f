// The SCRAM server (src/security/scram.*) on arbitrary client messages: the client-first and
// client-final parsers never crash, a known and an unknown user get server-first messages of the same
// shape, only the right proof for a known user succeeds, a failure says no more than "e=...", and a
// finished or failed exchange accepts nothing further.
// Input: byte 0 picks the hash (SHA-1, SHA-256, SHA-512; value % 3) and, with bit 2, an unknown user;
// then the client-first-message, NUL, and the client-final-message. The known user is RFC 5802's and
// RFC 7677's ("user", password "pencil", their salts, 4096 iterations) and the server nonces are the
// RFCs' too, so their example exchanges succeed.
#include <string>
#include <string_view>

#include "core/utf8.hpp"
#include "fuzz_common.hpp"
#include "security/password_file.hpp"
#include "security/scram.hpp"

namespace {

using namespace tern::security;
using Status = ScramServer::Status;

struct Known {
  ScramHash hash;
  const char* salt_b64;
  const char* server_nonce;
  ScramCredentials creds;
};

Known* known() {
  // Computed once: 4096 rounds of PBKDF2 per hash.
  static Known k[3] = {
      {ScramHash::kSha1, "QSXCR+Q6sek8bf92", "3rfcNHYJY1ZVvWVs7j", {}},
      {ScramHash::kSha256, "W22ZaJ0SNY7soEsUEjb6gQ==", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", {}},
      {ScramHash::kSha512, "W22ZaJ0SNY7soEsUEjb6gQ==", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", {}},
  };
  static bool ready = [] {
    for (auto& e : k) {
      std::string salt;
      base64_decode(e.salt_b64, salt);
      e.creds = scram_from_password(e.hash, "pencil", salt, 4096);
    }
    return true;
  }();
  (void)ready;
  return k;
}

void check_fail(const ScramServer::Step& s) {
  FUZZ_CHECK(s.status == Status::kFail);
  FUZZ_CHECK(!s.error.empty());
  FUZZ_CHECK(s.data.empty() || s.data.starts_with("e="));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const Known& k = known()[data[0] % 3];
  const bool unknown = (data[0] & 4) != 0;
  const std::string_view all(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto nul = all.find('\0');
  const std::string_view first = all.substr(0, nul);
  const std::string_view final_msg = nul == std::string_view::npos ? std::string_view() : all.substr(nul + 1);

  ScramServer s(k.hash, k.server_nonce);
  const ScramDecoy decoy{4096, k.creds.salt.size()};  // what the known user's entry looks like
  auto a = s.client_first(first);
  if (a.status != Status::kContinue) {
    check_fail(a);
    check_fail(s.challenge(&k.creds, decoy));  // nothing goes on after a failure
    FUZZ_CHECK(!s.authenticated());
    return 0;
  }
  FUZZ_CHECK(a.data.empty());
  FUZZ_CHECK(!s.user().empty() && tern::valid_mqtt_utf8(s.user()));
  check_fail(ScramServer(k.hash, k.server_nonce).client_final(final_msg));  // out of order

  auto b = s.challenge(unknown ? nullptr : &k.creds, decoy);
  FUZZ_CHECK(b.status == Status::kContinue);
  // "r=" client nonce + server nonce ",s=" salt ",i=4096", the same length for a decoy.
  const std::string tail = std::string(k.server_nonce) + ",s=";
  const auto at = b.data.find(tail);
  FUZZ_CHECK(b.data.starts_with("r=") && at != std::string::npos && at > 2);
  FUZZ_CHECK(b.data.ends_with(",i=4096"));
  FUZZ_CHECK(b.data.size() == at + tail.size() + base64_encode(k.creds.salt).size() + 7);
  if (!unknown) FUZZ_CHECK(b.data.find(",s=" + base64_encode(k.creds.salt) + ",") != std::string::npos);

  auto c = s.client_final(final_msg);
  if (c.status == Status::kSuccess) {
    FUZZ_CHECK(!unknown && s.authenticated());
    std::string signature;
    FUZZ_CHECK(c.data.starts_with("v=") && base64_decode(std::string_view(c.data).substr(2), signature));
    FUZZ_CHECK(signature.size() == scram_digest_size(k.hash));
  } else {
    check_fail(c);
    FUZZ_CHECK(!s.authenticated());
  }
  check_fail(s.client_final(final_msg));
  check_fail(s.client_first(first));
  return 0;
}
