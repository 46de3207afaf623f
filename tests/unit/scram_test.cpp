// Tests for src/security/scram.*: the server side of SCRAM (RFC 5802) against the RFCs' own exchanges
// (SCRAM-SHA-1 from RFC 5802 section 5, SCRAM-SHA-256 from RFC 7677 section 3), SCRAM-SHA-512
// exchanges computed with Python's hashlib/hmac (the client side, independent of this code), a
// password file entry written by Debian's mosquitto_passwd, malformed messages, and unknown users;
// then the broker's use of it (src/broker/enhanced_auth.cpp): a Shard and a ServerConnection fed with
// MQTT packets, through CONNECT, re-authentication and a reload of the files.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "broker/auth.hpp"
#include "broker/broker.hpp"
#include "broker/shard.hpp"
#include "codec/codec.hpp"
#include "protocol/server_connection.hpp"
#include "security/password_file.hpp"
#include "security/scram.hpp"

namespace {

using tern::security::base64_decode;
using tern::security::PasswordError;
using tern::security::PasswordFile;
using tern::security::scram_from_password;
using tern::security::scram_from_salted_password;
using tern::security::ScramCredentials;
using tern::security::ScramDecoy;
using tern::security::ScramFile;
using tern::security::ScramHash;
using tern::security::ScramServer;
using Status = ScramServer::Status;

std::string b64d(std::string_view s) {
  std::string out;
  EXPECT_TRUE(base64_decode(s, out)) << s;
  return out;
}

// One whole exchange with a fixed server nonce; returns the server-final (or "FAIL: why").
struct Exchange {
  ScramHash h;
  std::string server_nonce;
  std::string client_first;
  std::string client_final;
};

std::string run(const Exchange& x, const ScramCredentials* creds, std::string* server_first = nullptr) {
  ScramServer s(x.h, x.server_nonce);
  auto a = s.client_first(x.client_first);
  if (a.status != Status::kContinue) return "FAIL: " + a.error;
  auto b = s.challenge(creds, ScramDecoy{});
  if (b.status != Status::kContinue) return "FAIL: " + b.error;
  if (server_first) *server_first = b.data;
  auto c = s.client_final(x.client_final);
  if (c.status != Status::kSuccess) return "FAIL: " + c.error + " " + c.data;
  EXPECT_TRUE(s.authenticated());
  return c.data;
}

TEST(Scram, Rfc5802Sha1Example) {
  // RFC 5802 section 5: user "user", password "pencil".
  ScramCredentials creds = scram_from_password(ScramHash::kSha1, "pencil", b64d("QSXCR+Q6sek8bf92"), 4096);
  std::string first;
  EXPECT_EQ(run({ScramHash::kSha1, "3rfcNHYJY1ZVvWVs7j", "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
                 "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="},
                &creds, &first),
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
  EXPECT_EQ(first, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
}

TEST(Scram, Rfc7677Sha256Example) {
  // RFC 7677 section 3: user "user", password "pencil".
  ScramCredentials creds = scram_from_password(ScramHash::kSha256, "pencil", b64d("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
  std::string first;
  EXPECT_EQ(run({ScramHash::kSha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                 "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                 "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="},
                &creds, &first),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  EXPECT_EQ(first, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
}

TEST(Scram, Sha512ExchangeComputedByPython) {
  // RFC 7677's messages with SHA-512; the client's proof and the expected signature come from
  // Python's hashlib.pbkdf2_hmac and hmac.
  ScramCredentials creds = scram_from_password(ScramHash::kSha512, "pencil", b64d("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
  EXPECT_EQ(creds.stored_key,
            b64d("6AAub3065EYRmyFpM2RNwqK+eGnrkYuEWbXn19LsEmBqzu8QaCXNc1FwpnX9NhH2hK/60dzj9DoO5DvVkOHbvg=="));
  EXPECT_EQ(creds.server_key,
            b64d("jZHbYjC1aHh0/hKbxyBuGFjDrgjgKTT1esA7awWiKcRZ0o/0b1yWEebBeSVkkCFewf91nLDfKF24mvD5nmE6rA=="));
  EXPECT_EQ(run({ScramHash::kSha512, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                 "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                 "p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ=="},
                &creds),
            "v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==");
}

TEST(Scram, Sha512FromAMosquittoPasswdEntryWithoutThePassword) {
  // mosquitto_passwd 2.0.11 wrote this for alice / "correct horse": its hash is SCRAM-SHA-512's
  // SaltedPassword, so the server needs no password. The client side is Python's.
  PasswordFile f = PasswordFile::parse(
      "alice:$7$101$R7IhUuybTxzm60/o$BM6yVlzhE9yDnA2G71NlORcHVURBH42tNXtsVobpfnOIEWPlAIbO2VqYR7now/cHXc8wnniIOCXKuPxMm"
      "FCsaQ==\n",
      "passwd");
  const auto* e = f.find("alice");
  ASSERT_NE(e, nullptr);
  ScramCredentials creds = scram_from_salted_password(ScramHash::kSha512, e->hash, e->salt, e->iterations);
  ScramCredentials from_pw = scram_from_password(ScramHash::kSha512, "correct horse", e->salt, e->iterations);
  EXPECT_EQ(creds.stored_key, from_pw.stored_key);
  EXPECT_EQ(creds.server_key, from_pw.server_key);
  std::string first;
  EXPECT_EQ(run({ScramHash::kSha512, "0f1e-server", "n,,n=alice,r=7b2d0a9e-client",
                 "c=biws,r=7b2d0a9e-client0f1e-server,"
                 "p=LK9bfgyfVAFjDYGmTnB4acJFs510JjY/blCT/r5eNv/MreUd+WK4xXAzIfpNVNzGyz"
                 "L/47806TWTPipZFaADNQ=="},
                &creds, &first),
            "v=6VhgxKHvZmuYz7wnUsXbGs6hSNkpAdjRWEyddOz6AQT2Gfh7c8GGmf1WK61hoXL/O1qDfKtfGDXLWK7xITrQHQ==");
  EXPECT_EQ(first, "r=7b2d0a9e-client0f1e-server,s=R7IhUuybTxzm60/o,i=101");
}

// A client for the tests below, written with OpenSSL's primitives directly (RFC 5802 section 3).
std::string hmac(ScramHash h, std::string_view key, std::string_view data) {
  const EVP_MD* md = h == ScramHash::kSha256 ? EVP_sha256() : h == ScramHash::kSha512 ? EVP_sha512() : EVP_sha1();
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string field(std::string_view msg, char name) {
  const std::string tag = std::string(1, name) + "=";
  auto p = msg.starts_with(tag) ? 0 : msg.find("," + tag) + 1;
  auto e = msg.find(',', p);
  return std::string(msg.substr(p + 2, e == std::string_view::npos ? e : e - p - 2));
}

std::string client_final_for(ScramHash h, std::string_view password, std::string_view client_first_bare,
                             std::string_view server_first, std::string_view cbind = "biws") {
  const std::string salt = b64d(field(server_first, 's'));
  const int iterations = std::stoi(field(server_first, 'i'));
  const EVP_MD* md = h == ScramHash::kSha256 ? EVP_sha256() : h == ScramHash::kSha512 ? EVP_sha512() : EVP_sha1();
  std::string salted(static_cast<std::size_t>(EVP_MD_get_size(md)), '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), iterations, md,
                    static_cast<int>(salted.size()), reinterpret_cast<unsigned char*>(salted.data()));
  std::string client_key = hmac(h, salted, "Client Key");
  unsigned char stored[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(client_key.data(), client_key.size(), stored, &n, md, nullptr);
  const std::string without_proof = "c=" + std::string(cbind) + ",r=" + field(server_first, 'r');
  const std::string auth_message =
      std::string(client_first_bare) + "," + std::string(server_first) + "," + without_proof;
  std::string proof = hmac(h, std::string_view(reinterpret_cast<const char*>(stored), n), auth_message);
  for (std::size_t i = 0; i < proof.size(); ++i) proof[i] ^= client_key[i];
  return without_proof + ",p=" + tern::security::base64_encode(proof);
}

// The credentials of `tern passwd -S` for a password.
ScramCredentials creds_of(ScramHash h, std::string_view password, int iterations = 4096) {
  return tern::security::make_scram_credentials(h, password, iterations);
}

struct Outcome {
  std::string server_first;
  ScramServer::Step final;
};

Outcome login(ScramHash h, std::string_view client_first, const ScramCredentials* creds, std::string_view password,
              ScramDecoy decoy = {}) {
  ScramServer s(h);
  auto a = s.client_first(client_first);
  EXPECT_EQ(a.status, Status::kContinue) << a.error;
  auto b = s.challenge(creds, decoy);
  EXPECT_EQ(b.status, Status::kContinue) << b.error;
  const std::string bare(client_first.substr(client_first.find(",,") + 2));
  return {b.data, s.client_final(client_final_for(h, password, bare, b.data))};
}

TEST(Scram, RightPasswordSucceedsWrongPasswordFailsWithInvalidProof) {
  for (ScramHash h : {ScramHash::kSha256, ScramHash::kSha512}) {
    ScramCredentials c = creds_of(h, "s3cret", 1000);
    auto ok = login(h, "n,,n=bob,r=abcdefgh", &c, "s3cret");
    EXPECT_EQ(ok.final.status, Status::kSuccess) << ok.final.error;
    EXPECT_TRUE(ok.final.data.starts_with("v="));
    EXPECT_EQ(field(ok.server_first, 'i'), "1000");
    EXPECT_EQ(b64d(field(ok.server_first, 's')), c.salt);
    EXPECT_TRUE(field(ok.server_first, 'r').starts_with("abcdefgh"));
    EXPECT_EQ(field(ok.server_first, 'r').size(), 8u + 24u) << "18 random bytes of server nonce, in base64";

    auto bad = login(h, "n,,n=bob,r=abcdefgh", &c, "s3cret!");
    EXPECT_EQ(bad.final.status, Status::kFail);
    EXPECT_EQ(bad.final.data, "e=invalid-proof");
  }
}

TEST(Scram, ServerNoncesDiffer) {
  ScramCredentials c = creds_of(ScramHash::kSha256, "pw", 1);
  std::set<std::string> nonces;
  for (int i = 0; i < 20; ++i) {
    nonces.insert(field(login(ScramHash::kSha256, "n,,n=u,r=x", &c, "pw").server_first, 'r'));
  }
  EXPECT_EQ(nonces.size(), 20u);
}

TEST(Scram, UnknownUserLooksLikeAKnownOneAndFailsLikeAWrongPassword) {
  const ScramDecoy decoy{4096, 16};
  ScramCredentials known = creds_of(ScramHash::kSha256, "pw", 4096);
  auto k = login(ScramHash::kSha256, "n,,n=alice,r=nonce1", &known, "wrong", decoy);
  auto u1 = login(ScramHash::kSha256, "n,,n=mallory,r=nonce1", nullptr, "wrong", decoy);
  auto u2 = login(ScramHash::kSha256, "n,,n=mallory,r=nonce2", nullptr, "pw", decoy);
  auto other = login(ScramHash::kSha256, "n,,n=trudy,r=nonce1", nullptr, "pw", decoy);
  // The same user always gets the same salt; another user another one.
  EXPECT_EQ(field(u1.server_first, 's'), field(u2.server_first, 's'));
  EXPECT_NE(field(u1.server_first, 's'), field(other.server_first, 's'));
  // The same shape as a known user's: salt length, iteration count, nonce length.
  EXPECT_EQ(field(u1.server_first, 's').size(), field(k.server_first, 's').size());
  EXPECT_EQ(field(u1.server_first, 'i'), field(k.server_first, 'i'));
  EXPECT_EQ(field(u1.server_first, 'r').size(), field(k.server_first, 'r').size());
  // Run to the end and refused exactly as a wrong password.
  for (const auto* o : {&u1, &u2, &other}) {
    EXPECT_EQ(o->final.status, Status::kFail);
    EXPECT_EQ(o->final.data, k.final.data);
  }
  // The decoy follows the file's usual parameters.
  auto d = login(ScramHash::kSha512, "n,,n=nobody,r=n", nullptr, "pw", ScramDecoy{101, 12});
  EXPECT_EQ(field(d.server_first, 'i'), "101");
  EXPECT_EQ(b64d(field(d.server_first, 's')).size(), 12u);
  EXPECT_EQ(d.final.status, Status::kFail);
}

TEST(Scram, SaslnameEscapesAndAuthzid) {
  ScramServer s(ScramHash::kSha256);
  ASSERT_EQ(s.client_first("n,,n=a=2Cb=3Dc,r=xyz").status, Status::kContinue);
  EXPECT_EQ(s.user(), "a,b=c");

  ScramServer self(ScramHash::kSha256);
  EXPECT_EQ(self.client_first("n,a=bob,n=bob,r=xyz").status, Status::kContinue) << "authzid naming the user itself";
  ScramServer other(ScramHash::kSha256);
  auto r = other.client_first("n,a=admin,n=bob,r=xyz");
  EXPECT_EQ(r.status, Status::kFail) << "acting as another user is refused";

  // With an authzid, the channel binding echoes the whole GS2 header.
  ScramCredentials c = creds_of(ScramHash::kSha256, "pw", 1);
  ScramServer a(ScramHash::kSha256);
  ASSERT_EQ(a.client_first("n,a=bob,n=bob,r=xyz").status, Status::kContinue);
  auto first = a.challenge(&c, {});
  const std::string final = client_final_for(ScramHash::kSha256, "pw", "n=bob,r=xyz", first.data, "bixhPWJvYiw=");
  EXPECT_EQ(a.client_final(final).status, Status::kSuccess);
}

TEST(Scram, GsFlagYIsAcceptedPIsRefused) {
  ScramCredentials c = creds_of(ScramHash::kSha256, "pw", 1);
  ScramServer y(ScramHash::kSha256);
  ASSERT_EQ(y.client_first("y,,n=u,r=abc").status, Status::kContinue) << "the client could bind, we offer no -PLUS";
  auto first = y.challenge(&c, {});
  EXPECT_EQ(y.client_final(client_final_for(ScramHash::kSha256, "pw", "n=u,r=abc", first.data, "eSws")).status,
            Status::kSuccess);

  ScramServer y2(ScramHash::kSha256);
  ASSERT_EQ(y2.client_first("y,,n=u,r=abc").status, Status::kContinue);
  first = y2.challenge(&c, {});
  auto r = y2.client_final(client_final_for(ScramHash::kSha256, "pw", "n=u,r=abc", first.data, "biws"));
  EXPECT_EQ(r.status, Status::kFail) << "c= must echo the header actually sent";
  EXPECT_EQ(r.data, "e=channel-bindings-dont-match");

  ScramServer p(ScramHash::kSha256);
  auto pr = p.client_first("p=tls-unique,,n=u,r=abc");
  EXPECT_EQ(pr.status, Status::kFail);
  EXPECT_NE(pr.error.find("channel binding"), std::string::npos) << pr.error;
}

TEST(Scram, MalformedClientFirstMessagesFail) {
  for (const char* m : {
           "",
           "n",
           "n,",
           "n,,",
           "x,,n=u,r=abc",
           "n,,n=u",
           "n,,r=abc,n=u",
           "n,,n=,r=abc",
           "n,,n=u=2,r=abc",     // a bad escape
           "n,,n=u=41,r=abc",    // only =2C and =3D exist
           "n,,n=u,r=",
           "n,,n=u,r=ab c",      // the nonce is printable ASCII
           "n,,n=u,r=abc,junk",  // an extension is ALPHA "=" value
           "n,,m=ext,n=u,r=abc", // a mandatory extension
           "n,,n=a\x01z,r=abc",  // control characters: SASLprep prohibits them
           "n,,n=\xC3,r=abc",    // not UTF-8
           "n,a,n=u,r=abc",
       }) {
    ScramServer s(ScramHash::kSha256);
    EXPECT_EQ(s.client_first(m).status, Status::kFail) << m;
    EXPECT_EQ(s.challenge(nullptr, {}).status, Status::kFail) << "no second step after a failure";
  }
  ScramServer ext(ScramHash::kSha256);
  EXPECT_EQ(ext.client_first("n,,n=u,r=abc,x=optional").status, Status::kContinue) << "optional extensions are ignored";
  ScramServer utf8(ScramHash::kSha256);
  ASSERT_EQ(utf8.client_first("n,,n=J\xC3\xBCrgen,r=abc").status, Status::kContinue)
      << "UTF-8 names, compared as bytes";
  EXPECT_EQ(utf8.user(), "J\xC3\xBCrgen");
}

TEST(Scram, MalformedOrWrongClientFinalMessagesFail) {
  ScramCredentials c = creds_of(ScramHash::kSha256, "pw", 1);
  auto attempt = [&](auto make_final) {
    ScramServer s(ScramHash::kSha256);
    EXPECT_EQ(s.client_first("n,,n=u,r=abc").status, Status::kContinue);
    auto first = s.challenge(&c, {});
    const std::string good = client_final_for(ScramHash::kSha256, "pw", "n=u,r=abc", first.data);
    auto r = s.client_final(make_final(good, field(first.data, 'r')));
    EXPECT_FALSE(s.authenticated());
    return r;
  };
  auto r = attempt([](const std::string& good, const std::string&) { return good.substr(0, good.find(",p=")); });
  EXPECT_EQ(r.data, "e=invalid-encoding") << "no proof";
  r = attempt([](const std::string&, const std::string& nonce) { return "c=biws,r=" + nonce + "x,p=AAAA"; });
  EXPECT_EQ(r.data, "e=other-error") << "another nonce";
  r = attempt([](const std::string& good, const std::string&) {
    return "c=bix3,r" + good.substr(good.find(",r=") + 2);
  });
  EXPECT_EQ(r.data, "e=channel-bindings-dont-match");
  r = attempt([](const std::string& good, const std::string&) { return good.substr(0, good.size() - 4) + "AA=="; });
  EXPECT_EQ(r.data, "e=invalid-proof") << "one byte of the proof changed";
  r = attempt([](const std::string& good, const std::string&) { return good.substr(0, good.find(",p=")) + ",p=AAAA"; });
  EXPECT_EQ(r.data, "e=invalid-proof") << "a proof of the wrong length";
  r = attempt([](const std::string& good, const std::string&) { return good.substr(0, good.find(",p=")) + ",p=!!"; });
  EXPECT_EQ(r.data, "e=invalid-encoding");
  r = attempt([](const std::string& good, const std::string&) {
    return good.substr(0, good.find(",p=")) + ",x=ext" + good.substr(good.find(",p="));
  });
  EXPECT_EQ(r.status, Status::kFail) << "an extension changes the AuthMessage, so the proof no longer fits";

  // Out of order: a final message before the challenge, and a second try after a failure.
  ScramServer early(ScramHash::kSha256);
  EXPECT_EQ(early.client_final("c=biws,r=x,p=AAAA").status, Status::kFail);
  ScramServer twice(ScramHash::kSha256);
  ASSERT_EQ(twice.client_first("n,,n=u,r=abc").status, Status::kContinue);
  auto first = twice.challenge(&c, {});
  EXPECT_EQ(twice.client_final("c=biws,r=abc,p=AAAA").status, Status::kFail);
  EXPECT_EQ(twice.client_final(client_final_for(ScramHash::kSha256, "pw", "n=u,r=abc", first.data)).status,
            Status::kFail)
      << "one attempt per exchange";
}

TEST(Scram, CredentialsTextRoundTripsInRfc5803Form) {
  ScramCredentials c = scram_from_password(ScramHash::kSha256, "pencil", b64d("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
  const std::string text = tern::security::scram_encode(ScramHash::kSha256, c);
  EXPECT_EQ(text,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
            "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
  ScramCredentials back = tern::security::scram_decode(ScramHash::kSha256, text);
  EXPECT_EQ(back.salt, c.salt);
  EXPECT_EQ(back.iterations, 4096);
  EXPECT_EQ(back.stored_key, c.stored_key);
  EXPECT_EQ(back.server_key, c.server_key);
}

TEST(ScramFile, LoadsEntriesAndRefusesBadLines) {
  const std::string good =
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
      "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
  ScramFile f = ScramFile::parse("# users\n\nuser:" + good + "\n  other : " + good + "  \n", "scram");
  EXPECT_EQ(f.size(), 2u);
  ASSERT_NE(f.find("user"), nullptr);
  EXPECT_NE(f.find("other"), nullptr) << "blanks around the name and the credentials are ignored";
  EXPECT_EQ(f.find("nobody"), nullptr);
  EXPECT_EQ(f.usual_iterations(), 4096);
  EXPECT_EQ(f.usual_salt_bytes(), 16u);

  auto error_of = [](const std::string& text) {
    try {
      ScramFile::parse(text, "scram");
    } catch (const PasswordError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of("ok:" + good + "\nok:" + good + "\n"), "scram:2: user 'ok' is listed twice (also at line 1)");
  EXPECT_NE(error_of("u:" + good.substr(0, good.size() - 4) + "\n").find("scram:1: user 'u': malformed ServerKey"),
            std::string::npos);
  EXPECT_NE(error_of("u\n").find("scram:1: no ':'"), std::string::npos);
  EXPECT_NE(error_of(":" + good).find("empty username"), std::string::npos);
  EXPECT_NE(error_of("u:$7$101$abc$def").find("not SCRAM-SHA-256 credentials"), std::string::npos);
  EXPECT_NE(error_of("u:SCRAM-SHA-512$4096:W22Z$AAAA:AAAA").find("password_file"), std::string::npos)
      << "points SCRAM-SHA-512 users to the password file";
  EXPECT_NE(error_of("u:SCRAM-SHA-256$0:W22Z$AAAA:AAAA").find("iteration"), std::string::npos);
  EXPECT_EQ(error_of(""), "no error");
}

TEST(Scram, OfferedMethods) {
  EXPECT_EQ(tern::security::scram_offered("SCRAM-SHA-256"), ScramHash::kSha256);
  EXPECT_EQ(tern::security::scram_offered("SCRAM-SHA-512"), ScramHash::kSha512);
  EXPECT_FALSE(tern::security::scram_offered("SCRAM-SHA-1")) << "SHA-1 is for RFC 5802's example only";
  EXPECT_FALSE(tern::security::scram_offered("scram-sha-256"));
  EXPECT_FALSE(tern::security::scram_offered("SCRAM-SHA-256-PLUS")) << "no channel binding";
}

// ---------------------------------------------------------------------------------------------------
// The broker: Shard::auth_start / auth_continue behind a real ServerConnection.

namespace codec = tern::codec;
using tern::broker::Auth;
using tern::broker::Broker;
using tern::protocol::ServerConnection;

struct Rig {
  std::filesystem::path dir;
  tern::config::Config cfg;
  std::unique_ptr<Broker> broker;

  Rig() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tern-scram-XXXXXX").string();
    dir = mkdtemp(tmpl.data());
    cfg.allow_anonymous = false;
  }
  ~Rig() {
    broker.reset();
    std::filesystem::remove_all(dir);
  }
  std::string write(const std::string& name, const std::string& text) {
    const auto path = (dir / name).string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path;
  }
  void start() {
    broker = std::make_unique<Broker>(cfg, 1);
    broker->set_auth(Auth::load(cfg));
  }
  tern::broker::Shard& shard() { return broker->shard(0); }
  std::size_t reload() { return shard().apply_auth(Auth::load(cfg)); }
};

struct Conn {
  Rig& rig;
  std::unique_ptr<ServerConnection> c;
  std::vector<std::string> kept;  // decoded packets point into these bytes

  explicit Conn(Rig& r)
      : rig(r),
        c(std::make_unique<ServerConnection>(r.shard(), r.broker->limits(), "127.0.0.1:5000",
                                             tern::protocol::Clock::now())) {}
  ~Conn() {
    if (!c->closed()) c->on_transport_closed();
  }
  void feed(const codec::Packet& p) {
    std::string b;
    codec::encode_packet(p, codec::Version::kV5, b);
    c->on_bytes(reinterpret_cast<const std::uint8_t*>(b.data()), b.size(), tern::protocol::Clock::now());
  }
  std::vector<codec::Packet> take() {
    kept.push_back(c->out().bytes);
    c->out().clear();
    const std::string& raw = kept.back();
    std::vector<codec::Packet> out;
    for (std::size_t off = 0; off < raw.size();) {
      codec::FrameHeader fh;
      codec::DecodeError err;
      const auto* data = reinterpret_cast<const std::uint8_t*>(raw.data()) + off;
      if (codec::parse_frame(data, raw.size() - off, 0, fh, err) != codec::FrameStatus::kComplete) break;
      codec::Packet p;
      if (codec::decode_packet(fh, data + fh.header_size, codec::Version::kV5, p)) break;
      out.push_back(std::move(p));
      off += fh.total();
    }
    return out;
  }
  // The one packet the server answered with.
  template <typename T>
  T one() {
    auto ps = take();
    EXPECT_EQ(ps.size(), 1u);
    if (ps.size() != 1 || !std::holds_alternative<T>(ps[0])) {
      ADD_FAILURE() << "unexpected answer";
      return T{};
    }
    return std::get<T>(ps[0]);
  }

  void connect(const std::string& method, const std::string& data, std::optional<std::string> username = {},
               const std::string& client_id = "c1") {
    codec::Connect cp;
    cp.version = codec::Version::kV5;
    cp.client_id = client_id;
    cp.username = std::move(username);
    cp.props.auth_method = method;
    cp.props.auth_data = data;
    feed(cp);
  }
  void auth(std::uint8_t reason, const std::string& method, const std::string& data) {
    codec::Auth a;
    a.reason = reason;
    a.props.auth_method = method;
    a.props.auth_data = data;
    feed(a);
  }
  // A whole SCRAM exchange from CONNECT (or, with reauth, from AUTH 0x19): the last answer.
  codec::Packet scram(ScramHash h, const std::string& user, const std::string& password, bool reauth = false,
                      std::optional<std::string> connect_user = {}) {
    const std::string method(tern::security::scram_mechanism(h));
    const std::string bare = "n=" + user + ",r=cnonce" + std::to_string(++nonces);
    if (reauth) {
      auth(0x19, method, "n,," + bare);
    } else {
      connect(method, "n,," + bare, std::move(connect_user));
    }
    auto ps = take();
    if (ps.size() != 1 || !std::holds_alternative<codec::Auth>(ps[0])) return ps.empty() ? codec::Packet{} : ps[0];
    const auto& challenge = std::get<codec::Auth>(ps[0]);
    EXPECT_EQ(challenge.reason, 0x18) << "Continue authentication";
    EXPECT_EQ(challenge.props.auth_method, method);
    auth(0x18, method, client_final_for(h, password, bare, challenge.props.auth_data.value_or("")));
    ps = take();
    EXPECT_EQ(ps.size(), 1u);
    return ps.empty() ? codec::Packet{} : ps[0];
  }
  int nonces = 0;
};

std::uint8_t connack_code(const codec::Packet& p) {
  EXPECT_TRUE(std::holds_alternative<codec::Connack>(p));
  return std::holds_alternative<codec::Connack>(p) ? std::get<codec::Connack>(p).code : 0xFF;
}

TEST(ScramBroker, Sha512FromThePasswordFileThenReauthenticationThenAReloadWithoutTheUser) {
  Rig r;
  r.cfg.password_file = r.write("passwd", "alice:" + tern::security::make_hash("secret1") + "\n");
  r.start();
  Conn c(r);
  auto ack = c.scram(ScramHash::kSha512, "alice", "secret1");
  ASSERT_EQ(connack_code(ack), 0);
  const auto& props = std::get<codec::Connack>(ack).props;
  EXPECT_EQ(props.auth_method, "SCRAM-SHA-512") << "CONNACK names the method";
  EXPECT_TRUE(props.auth_data.value_or("").starts_with("v=")) << "and carries server-final-message";
  const auto& s = *r.shard().sessions().at("c1");
  EXPECT_EQ(s.username, "alice") << "the SCRAM user is the client's username, for the ACL too";
  EXPECT_EQ(s.scram, ScramHash::kSha512);
  EXPECT_EQ(s.password, nullptr);
  EXPECT_EQ(r.shard().scram_exchanges(), 0u) << "the exchange's state is freed once on_connect took the user";

  // Re-authentication: AUTH 0x19 ... AUTH 0x00 with server-final-message [MQTT-4.12.1].
  auto done = c.scram(ScramHash::kSha512, "alice", "secret1", true);
  ASSERT_TRUE(std::holds_alternative<codec::Auth>(done));
  EXPECT_EQ(std::get<codec::Auth>(done).reason, 0x00);
  EXPECT_TRUE(std::get<codec::Auth>(done).props.auth_data.value_or("").starts_with("v="));
  EXPECT_EQ(r.shard().scram_exchanges(), 0u);

  EXPECT_EQ(r.reload(), 0u) << "alice is still in the file";
  r.write("passwd", "bob:" + tern::security::make_hash("secret2") + "\n");
  EXPECT_EQ(r.reload(), 1u) << "alice is gone: her SCRAM client is disconnected";
  EXPECT_EQ(c.one<codec::Disconnect>().reason, 0x87);
  EXPECT_TRUE(c.c->closed());
}

TEST(ScramBroker, Sha256FromTheScramFile) {
  Rig r;
  r.cfg.scram_file = r.write(
      "scram", "bob:" + tern::security::scram_encode(ScramHash::kSha256, creds_of(ScramHash::kSha256, "pw", 4096)));
  r.start();
  {
    Conn c(r);
    ASSERT_EQ(connack_code(c.scram(ScramHash::kSha256, "bob", "pw", false, "bob")), 0) << "CONNECT's user may match";
    EXPECT_EQ(r.shard().sessions().at("c1")->scram, ScramHash::kSha256);
    r.write("scram", "# nobody\n");
    EXPECT_EQ(r.reload(), 1u);
  }
  Conn off(r);
  off.connect("SCRAM-SHA-512", "n,,n=bob,r=x");
  EXPECT_EQ(connack_code(off.one<codec::Connack>()), 0x8C) << "no password file: SCRAM-SHA-512 is not offered here";
}

TEST(ScramBroker, FailuresAreNotAuthorizedAndUnknownMethodsBadAuthenticationMethod) {
  Rig r;
  const std::string legacy = tern::security::make_hash("secret3", tern::security::PasswordEntry::kSha512);
  r.cfg.password_file =
      r.write("passwd", "alice:" + tern::security::make_hash("secret1") + "\n" + "carol:" + legacy + "\n");
  r.start();
  auto refused = [&](auto&& run) {
    Conn c(r);
    const std::uint8_t code = connack_code(run(c));
    EXPECT_TRUE(c.c->closed());
    return code;
  };
  EXPECT_EQ(refused([](Conn& c) { return c.scram(ScramHash::kSha512, "alice", "wrong"); }), 0x87);
  EXPECT_EQ(refused([](Conn& c) { return c.scram(ScramHash::kSha512, "mallory", "secret1"); }), 0x87)
      << "an unknown user fails at the end, as a wrong password";
  EXPECT_EQ(refused([](Conn& c) { return c.scram(ScramHash::kSha512, "carol", "secret3"); }), 0x87)
      << "a $6$ entry cannot do SCRAM";
  EXPECT_EQ(refused([](Conn& c) { return c.scram(ScramHash::kSha512, "alice", "secret1", false, "bob"); }), 0x87)
      << "CONNECT names another user";
  EXPECT_EQ(refused([](Conn& c) {
              c.connect("SCRAM-SHA-512", "p=tls-unique,,n=alice,r=x");
              return c.one<codec::Connack>();
            }),
            0x87);
  EXPECT_EQ(refused([](Conn& c) {
              c.connect("SCRAM-SHA-256", "n,,n=alice,r=x");
              return c.one<codec::Connack>();
            }),
            0x8C)
      << "no scram_file";
  EXPECT_EQ(refused([](Conn& c) {
              c.connect("PLAIN", "\0alice\0secret1");
              return c.one<codec::Connack>();
            }),
            0x8C);
  EXPECT_EQ(r.shard().scram_exchanges(), 0u) << "nothing left behind by failures";

  // A connection that closes in the middle of an exchange leaves nothing either.
  {
    Conn c(r);
    c.connect("SCRAM-SHA-512", "n,,n=alice,r=x");
    EXPECT_TRUE(std::holds_alternative<codec::Auth>(c.take().at(0)));
    EXPECT_EQ(r.shard().scram_exchanges(), 1u);
  }
  EXPECT_EQ(r.shard().scram_exchanges(), 0u);
}

TEST(ScramBroker, FailedReauthenticationDisconnects) {
  Rig r;
  r.cfg.password_file = r.write("passwd", "alice:" + tern::security::make_hash("secret1") + "\n" + "bob:" +
                                              tern::security::make_hash("secret2") + "\n");
  r.start();
  {
    Conn c(r);
    ASSERT_EQ(connack_code(c.scram(ScramHash::kSha512, "alice", "secret1")), 0);
    auto d = c.scram(ScramHash::kSha512, "alice", "wrong", true);
    ASSERT_TRUE(std::holds_alternative<codec::Disconnect>(d));
    EXPECT_EQ(std::get<codec::Disconnect>(d).reason, 0x87);
    EXPECT_TRUE(c.c->closed());
  }
  {
    Conn c(r);
    ASSERT_EQ(connack_code(c.scram(ScramHash::kSha512, "alice", "secret1")), 0);
    c.auth(0x19, "SCRAM-SHA-512", "n,,n=bob,r=x");
    EXPECT_EQ(c.one<codec::Disconnect>().reason, 0x87) << "re-authentication as another user";
  }
  EXPECT_EQ(r.shard().scram_exchanges(), 0u);
}

TEST(ScramBroker, ScramFileIsGlobalOrPerListenerLikeThePasswordFile) {
  Rig r;
  const std::string creds =
      tern::security::scram_encode(ScramHash::kSha256, creds_of(ScramHash::kSha256, "pw", 4096));
  const std::string a = r.write("scram-a", "ann:" + creds + "\n");
  const std::string b = r.write("scram-b", "ben:" + creds + "\n");
  tern::config::Config global;
  tern::config::load_string("listener 1883\nscram_file " + a + "\nlistener 1884\n", "t.conf", global);
  EXPECT_EQ(global.scram_file_of(&global.listeners[1]), a);
  const std::string text =
      "per_listener_settings true\nlistener 1883\nscram_file " + a + "\nlistener 1884\nscram_file " + b + "\n";
  tern::config::load_string(text, "t.conf", r.cfg);
  ASSERT_EQ(r.cfg.listeners.size(), 2u);
  EXPECT_EQ(r.cfg.scram_file, "");
  EXPECT_EQ(r.cfg.scram_file_of(&r.cfg.listeners[0]), a);
  EXPECT_EQ(r.cfg.scram_file_of(&r.cfg.listeners[1]), b);
  r.start();
  for (int listener : {0, 1}) {
    for (const char* user : {"ann", "ben"}) {
      Conn c(r);
      c.c->listener = listener;
      const bool mine = (listener == 0) == (std::string(user) == "ann");
      EXPECT_EQ(connack_code(c.scram(ScramHash::kSha256, user, "pw")), mine ? 0 : 0x87) << listener << user;
    }
  }
}

}  // namespace
