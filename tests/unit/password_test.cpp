// Tests for src/security/password_file.*: Mosquitto's password file format, checked against entries
// that Debian 12's mosquitto_passwd 2.0.11 wrote.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "security/password_file.hpp"

namespace {

using tern::security::make_hash;
using tern::security::PasswordEntry;
using tern::security::PasswordError;
using tern::security::PasswordFile;
using Result = tern::security::PasswordFile::Result;

// Written by `mosquitto_passwd -b` (2.0.11); the passwords are in the comments.
constexpr const char* kMosquittoFile =
    // correct horse
    "alice:$7$101$R7IhUuybTxzm60/o$BM6yVlzhE9yDnA2G71NlORcHVURBH4"
    "2tNXtsVobpfnOIEWPlAIbO2VqYR7now/cHXc8wnniIOCXKuPxMmFCsaQ==\n"
    // pässwörd € (UTF-8)
    "bob:$7$101$xL5rCbCv0kzmLN03$vwT4viPBS1IN8KycyWt1FofXG5AmvmI"
    "N/P1WIWHS1jZncrQrlI97AxWKLhYatOLihB0/9bZiqmBzoES7xUVOZw==\n"
    // legacy-1.6, -H sha512
    "carol:$6$v+tWJyVf3n2iMF0F$1a5Ivyx/iK4L/0QcU9q7xdyIvPPOjHTQ"
    "Yba5VgtxLu5SLFot3G7YZ+KOaEa8yhwmJVu7ALKienbBobJtOxoCBQ==\n"
    // thousand, -I 1000
    "dave:$7$1000$Asy3rLssT9i2fKFC$SDNJA5rUYLTgiDZww/SFXFy9v2HTawjliur4f"
    "MHEnSEnz0nBZENVxWni29U4w4PExU6E9Q5FpCBa66Hw8/RsPA==\n"
    // the empty password
    "erin:$7$101$d2bJP+oCezto44xE$Foz2LKiIbfLMboB3nJ8qo4nYsM2BGG"
    "chMUYWZeiOmEt06/zd4NNlrV2qxTaMV6757Y4gnc9q0iZlp1vrjZXmrg==\n"
    // the empty password, -H sha512
    "frank:$6$x3E7pGkLHyMxRtpn$OmUlhFsa24lx0swyIqdtNAJUznt0k39i"
    "hQ/LlfbsbRBnH5sz6x/3uv0C81/84b/SMCdHc/m+e9qOfPdCsaIh5A==\n";

constexpr const char* kAliceHash =
    "$7$101$R7IhUuybTxzm60/o$BM6yVlzhE9yDnA2G71NlORcHVURBH4"
    "2tNXtsVobpfnOIEWPlAIbO2VqYR7now/cHXc8wnniIOCXKuPxMmFCsaQ==";

std::string error_of(const std::string& text, const std::string& name = "passwords.txt") {
  try {
    PasswordFile::parse(text, name);
  } catch (const PasswordError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_CONTAINS(haystack, needle)                          \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

TEST(PasswordFile, VerifiesMosquittoPasswdPbkdf2Entries) {
  auto f = PasswordFile::parse(kMosquittoFile, "fixture");
  EXPECT_EQ(f.size(), 6u);
  EXPECT_EQ(f.check("alice", "correct horse"), Result::kOk);
  EXPECT_EQ(f.check("alice", "correct horsE"), Result::kWrongPassword);
  EXPECT_EQ(f.check("alice", "correct horse "), Result::kWrongPassword);
  EXPECT_EQ(f.check("alice", ""), Result::kWrongPassword);
  EXPECT_EQ(f.check("bob", "p\xC3\xA4ssw\xC3\xB6rd \xE2\x82\xAC"), Result::kOk);
  EXPECT_EQ(f.check("bob", "passwrd"), Result::kWrongPassword);
  EXPECT_EQ(f.check("dave", "thousand"), Result::kOk);
  EXPECT_EQ(f.check("dave", "thousanD"), Result::kWrongPassword);
  EXPECT_EQ(f.check("erin", ""), Result::kOk);
  EXPECT_EQ(f.check("erin", " "), Result::kWrongPassword);
}

TEST(PasswordFile, VerifiesMosquittoPasswdSha512Entries) {
  auto f = PasswordFile::parse(kMosquittoFile, "fixture");
  EXPECT_EQ(f.check("carol", "legacy-1.6"), Result::kOk);
  EXPECT_EQ(f.check("carol", "legacy-1.7"), Result::kWrongPassword);
  EXPECT_EQ(f.check("frank", ""), Result::kOk);
  EXPECT_EQ(f.check("frank", "x"), Result::kWrongPassword);
}

TEST(PasswordFile, DecodesTheFieldsOfAnEntry) {
  auto f = PasswordFile::parse(kMosquittoFile, "fixture");
  const PasswordEntry* a = f.find("alice");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->user, "alice");
  EXPECT_EQ(a->kind, PasswordEntry::kPbkdf2Sha512);
  EXPECT_EQ(a->iterations, 101);
  EXPECT_EQ(a->salt.size(), 12u);  // Mosquitto's salt length
  EXPECT_EQ(a->hash.size(), 64u);
  const PasswordEntry* d = f.find("dave");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->iterations, 1000);
  const PasswordEntry* c = f.find("carol");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->kind, PasswordEntry::kSha512);
  EXPECT_EQ(c->salt.size(), 12u);
  EXPECT_EQ(f.find("nobody"), nullptr);
  EXPECT_EQ(f.find("Alice"), nullptr);  // usernames are case-sensitive
}

TEST(PasswordFile, UnknownUserIsReportedAsSuch) {
  auto f = PasswordFile::parse(kMosquittoFile, "fixture");
  EXPECT_EQ(f.check("mallory", "correct horse"), Result::kUnknownUser);
  EXPECT_EQ(f.check("", ""), Result::kUnknownUser);
  EXPECT_EQ(f.check("alice ", "correct horse"), Result::kUnknownUser);
  // An empty file knows nobody, and still hashes (the dummy) without failing.
  auto empty = PasswordFile::parse("", "empty");
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(empty.check("alice", "x"), Result::kUnknownUser);
}

TEST(PasswordFile, UnknownUserCostsWhatAKnownOneCosts) {
  // Entries with 2,000 rounds: the dummy hashed for an unknown user must use them too, not the default
  // 101 (which would answer 20 times faster and tell which users exist).
  std::string text;
  for (int i = 0; i < 3; ++i) {
    text += "u" + std::to_string(i) + ":" + make_hash("pw", PasswordEntry::kPbkdf2Sha512, 2000) + "\n";
  }
  auto f = PasswordFile::parse(text, "t");
  using Clock = std::chrono::steady_clock;
  Clock::duration known{};
  Clock::duration unknown{};
  for (int i = 0; i < 40; ++i) {  // interleaved, so a busy machine slows both alike
    auto t0 = Clock::now();
    EXPECT_EQ(f.check("u1", "wrong"), Result::kWrongPassword);
    auto t1 = Clock::now();
    EXPECT_EQ(f.check("nobody", "wrong"), Result::kUnknownUser);
    auto t2 = Clock::now();
    known += t1 - t0;
    unknown += t2 - t1;
  }
  EXPECT_GT(unknown * 2, known) << "unknown " << unknown.count() << " known " << known.count();
  EXPECT_GT(known * 2, unknown) << "unknown " << unknown.count() << " known " << known.count();
}

TEST(PasswordFile, CommentsBlankLinesAndBlanksAroundFields) {
  std::string text = std::string("# users\n\n   \n\t# indented comment\n  alice  :  ") + kAliceHash + "  \r\n";
  auto f = PasswordFile::parse(text, "t");
  EXPECT_EQ(f.size(), 1u);
  EXPECT_EQ(f.check("alice", "correct horse"), Result::kOk);
  // No newline at the end of the last line.
  auto g = PasswordFile::parse(std::string("alice:") + kAliceHash, "t");
  EXPECT_EQ(g.check("alice", "correct horse"), Result::kOk);
}

TEST(PasswordFile, MalformedLinesNameFileAndLine) {
  std::string ok = std::string("alice:") + kAliceHash + "\n";
  EXPECT_EQ(error_of(ok), "");
  EXPECT_CONTAINS(error_of("# c\n" + ok + "bob\n"), "passwords.txt:3: no ':'");
  EXPECT_CONTAINS(error_of(":" + std::string(kAliceHash) + "\n"), "passwords.txt:1: empty username");
  EXPECT_CONTAINS(error_of("\n\nbob:\n"), "passwords.txt:3: user 'bob': no password hash");
  EXPECT_CONTAINS(error_of("bob:secret\n"), "passwords.txt:1: user 'bob': not a password hash");
  EXPECT_CONTAINS(error_of("bob:secret\n"), "tern passwd -U");
  EXPECT_CONTAINS(error_of("bob:$5$abc$def\n"), "passwords.txt:1: user 'bob': unsupported password hash type '$5$'");
  EXPECT_CONTAINS(error_of("bob:$7$0$R7IhUuybTxzm60/o$" + std::string(kAliceHash + 24) + "\n"), "iteration count");
  EXPECT_CONTAINS(error_of("bob:$7$x1$R7IhUuybTxzm60/o$AAAA\n"), "iteration count");
  EXPECT_CONTAINS(error_of("bob:$7$101$R7IhUuybTxzm60/o\n"), "no '$' between salt and hash");
  EXPECT_CONTAINS(error_of("bob:$7$101$R7Ih!uybTxzm60/o$AAAA\n"), "malformed salt");
  EXPECT_CONTAINS(error_of("bob:$7$101$$AAAA\n"), "malformed salt");
  EXPECT_CONTAINS(error_of("bob:$7$101$R7IhUuybTxzm60/o$AAAA\n"), "3 bytes instead of 64");
  EXPECT_CONTAINS(error_of("bob:$6$R7IhUuybTxzm60/o$A*AA\n"), "malformed hash");
  EXPECT_CONTAINS(error_of(ok + "x:" + std::string(kAliceHash) + ":extra\n"),
                  "passwords.txt:2: user 'x': malformed hash");
  // A user listed twice: Mosquitto keeps the last silently, leaving an old password behind.
  EXPECT_CONTAINS(error_of(ok + "\n" + ok), "passwords.txt:3: user 'alice' is listed twice (also at line 1)");
}

TEST(PasswordFile, Argon2idIsRefusedClearly) {
  std::string e = error_of(
      "# made by Mosquitto 2.1\n"
      "zoe:$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\n");
  EXPECT_CONTAINS(e, "passwords.txt:2: user 'zoe': argon2id");
  EXPECT_CONTAINS(e, "not supported");
}

TEST(PasswordFile, LoadReadsAFileAndNamesItInErrors) {
  std::random_device rd;
  auto dir = std::filesystem::temp_directory_path() / ("tern-password-test-" + std::to_string(rd()));
  std::filesystem::create_directories(dir);
  auto good = (dir / "good").string();
  auto bad = (dir / "bad").string();
  std::ofstream(good) << kMosquittoFile;
  std::ofstream(bad) << kMosquittoFile << "broken line\n";
  EXPECT_EQ(PasswordFile::load(good).check("carol", "legacy-1.6"), Result::kOk);
  try {
    PasswordFile::load(bad);
    ADD_FAILURE() << "loaded a broken file";
  } catch (const PasswordError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(bad + ":7: ", 0), 0u) << e.what();
  }
  try {
    PasswordFile::load((dir / "missing").string());
    ADD_FAILURE() << "loaded a missing file";
  } catch (const PasswordError& e) {
    EXPECT_CONTAINS(e.what(), "missing: cannot open password file");
  }
  std::filesystem::remove_all(dir);
}

TEST(PasswordFile, MakeHashRoundTrips) {
  std::string h7 = make_hash("s3cret");
  EXPECT_EQ(h7.rfind("$7$101$", 0), 0u) << h7;
  // Mosquitto's layout: 12-byte salt (16 base64 characters), 64-byte hash (88 with padding).
  std::string_view rest = std::string_view(h7).substr(7);
  EXPECT_EQ(rest.find('$'), 16u);
  EXPECT_EQ(rest.size(), 16u + 1 + 88);
  std::string h6 = make_hash("s3cret", PasswordEntry::kSha512);
  EXPECT_EQ(h6.rfind("$6$", 0), 0u) << h6;
  std::string h5 = make_hash("s3cret", PasswordEntry::kPbkdf2Sha512, 5);
  EXPECT_EQ(h5.rfind("$7$5$", 0), 0u) << h5;
  auto f = PasswordFile::parse("a:" + h7 + "\nb:" + h6 + "\nc:" + h5 + "\n", "t");
  for (const char* u : {"a", "b", "c"}) {
    EXPECT_EQ(f.check(u, "s3cret"), Result::kOk) << u;
    EXPECT_EQ(f.check(u, "s3cret!"), Result::kWrongPassword) << u;
  }
  // A fresh salt each time.
  EXPECT_NE(make_hash("s3cret"), h7);
  EXPECT_THROW(make_hash("x", PasswordEntry::kPbkdf2Sha512, 0), std::invalid_argument);
}

TEST(PasswordFile, PasswordsAreBinaryData) {
  std::string pw("a\0b\xFF", 4);  // MQTT passwords are binary: NUL and non-UTF-8 bytes included
  auto f = PasswordFile::parse("u:" + make_hash(pw) + "\n", "t");
  EXPECT_EQ(f.check("u", pw), Result::kOk);
  EXPECT_EQ(f.check("u", std::string("a", 1)), Result::kWrongPassword);
  EXPECT_EQ(f.check("u", std::string(65535, 'x')), Result::kWrongPassword);
}

TEST(PasswordFile, SplitLineAsTheLoaderDoes) {
  using tern::security::LineKind;
  std::string_view user;
  std::string_view rest;
  EXPECT_EQ(tern::security::split_line("  # x:y", user, rest), LineKind::kComment);
  EXPECT_EQ(tern::security::split_line("\t\r", user, rest), LineKind::kComment);
  EXPECT_EQ(tern::security::split_line("nouser", user, rest), LineKind::kNoColon);
  ASSERT_EQ(tern::security::split_line(" a b : pa:ss \r", user, rest), LineKind::kEntry);
  EXPECT_EQ(user, "a b");
  EXPECT_EQ(rest, "pa:ss");
}

}  // namespace
