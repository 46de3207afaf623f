// The password file and scram_file parsers (src/security/password_file.*, scram.*) on arbitrary text:
// the only exception they may throw is PasswordError, whose message names the file and the line;
// whatever they accept holds well-formed entries, and base64 round-trips.
// Input: the file's text, optionally followed by NUL, a user name, NUL and a password, which are
// checked against the parsed file when that costs little (no hash of more than kMaxIterations rounds).
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "security/password_file.hpp"
#include "security/scram.hpp"

namespace {

using namespace tern::security;

constexpr int kMaxIterations = 1000;

// The entry lines of `text`, split as the parsers split them.
template <typename F>
void for_each_entry(std::string_view text, F&& f) {
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    std::string_view user;
    std::string_view rest;
    if (split_line(line, user, rest) == LineKind::kEntry) f(user, rest);
  }
}

void check_error(const PasswordError& e, std::string_view name) {
  const std::string what = e.what();
  // "NAME:LINE: reason": the file and a line number from 1.
  FUZZ_CHECK(what.size() > name.size() + 3 && what.compare(0, name.size(), name) == 0 && what[name.size()] == ':');
  FUZZ_CHECK(what[name.size() + 1] >= '1' && what[name.size() + 1] <= '9');
}

void check_base64(std::string_view s) {
  std::string enc = base64_encode(s);
  FUZZ_CHECK(enc.size() % 4 == 0);
  std::string dec;
  FUZZ_CHECK(base64_decode(enc, dec) && dec == s);
  // Decoding accepts non-canonical trailing bits, so only the decoded bytes must survive a round trip.
  if (base64_decode(s, dec)) {
    std::string again;
    FUZZ_CHECK(base64_decode(base64_encode(dec), again) && again == dec);
  }
}

void password_file(std::string_view text, std::string_view user, std::string_view password, bool query) {
  PasswordFile f;
  try {
    f = PasswordFile::parse(text, "passwd");
  } catch (const PasswordError& e) {
    check_error(e, "passwd");
    return;
  }
  std::size_t entries = 0;
  for_each_entry(text, [&](std::string_view u, std::string_view) {
    ++entries;
    const PasswordEntry* e = f.find(u);
    FUZZ_CHECK(e != nullptr && e->user == u);
    FUZZ_CHECK(!e->salt.empty() && e->hash.size() == 64);
    FUZZ_CHECK(e->kind == PasswordEntry::kSha512 || e->iterations > 0);
  });
  FUZZ_CHECK(f.size() == entries);  // a user listed twice is an error
  if (!query) return;
  const PasswordEntry* e = f.find(user);
  const PasswordEntry& cost = e ? *e : f.dummy();
  if (cost.kind == PasswordEntry::kPbkdf2Sha512 && cost.iterations > kMaxIterations) return;
  auto r = f.check(user, password);
  if (e == nullptr) {
    FUZZ_CHECK(r == PasswordFile::Result::kUnknownUser);
  } else {
    FUZZ_CHECK(r == (verify(*e, password) ? PasswordFile::Result::kOk : PasswordFile::Result::kWrongPassword));
  }
}

void scram_file(std::string_view text, std::string_view user, bool query) {
  ScramFile f;
  try {
    f = ScramFile::parse(text, "scram");
  } catch (const PasswordError& e) {
    check_error(e, "scram");
    return;
  }
  std::size_t entries = 0;
  for_each_entry(text, [&](std::string_view u, std::string_view) {
    ++entries;
    const ScramCredentials* c = f.find(u);
    FUZZ_CHECK(c != nullptr && c->iterations > 0 && !c->salt.empty());
    FUZZ_CHECK(c->stored_key.size() == 32 && c->server_key.size() == 32);
    // The text form written back decodes to the same credentials.
    ScramCredentials back = scram_decode(ScramHash::kSha256, scram_encode(ScramHash::kSha256, *c));
    FUZZ_CHECK(back.salt == c->salt && back.iterations == c->iterations && back.stored_key == c->stored_key &&
               back.server_key == c->server_key);
  });
  FUZZ_CHECK(f.size() == entries);
  FUZZ_CHECK(f.usual_iterations() > 0 && f.usual_salt_bytes() > 0);
  if (query) (void)f.find(user);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const auto nul = all.find('\0');
  const std::string_view text = all.substr(0, nul);
  std::string_view user;
  std::string_view password;
  const bool query = nul != std::string_view::npos;
  if (query) {
    std::string_view rest = all.substr(nul + 1);
    auto nul2 = rest.find('\0');
    user = rest.substr(0, nul2);
    password = nul2 == std::string_view::npos ? std::string_view() : rest.substr(nul2 + 1);
  }
  password_file(text, user, password, query);
  scram_file(text, user, query);
  check_base64(query ? password : text.substr(0, 256));
  return 0;
}
