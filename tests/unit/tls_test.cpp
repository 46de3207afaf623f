// Unit tests of the TLS byte filter (net::TlsFilter, net::TlsContext) against an OpenSSL client in
// memory, and of psk_file parsing. Certificates are made here with OpenSSL's API (P-256 keys).
#include "net/tls.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

namespace {

using tern::net::TlsContext;
using tern::net::TlsFilter;

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("tern-tls-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return file(name);
  }
};

// A key and a certificate for `subject` ("/"-free: pairs of field and value), signed by `issuer`
// (itself when null); written as PEM to dir/name.crt and dir/name.key.
struct Cert {
  EVP_PKEY* key = nullptr;
  X509* x509 = nullptr;
  std::string crt, pem_key;
  ~Cert() {
    EVP_PKEY_free(key);
    X509_free(x509);
  }
};

void make_cert(Cert& c, const TempDir& dir, const std::string& name,
               std::initializer_list<std::pair<const char*, const char*>> subject, const Cert* issuer, bool ca) {
  static long serial = 1;
  c.key = EVP_EC_gen("P-256");
  ASSERT_NE(c.key, nullptr);
  c.x509 = X509_new();
  X509_set_version(c.x509, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c.x509), serial++);
  X509_gmtime_adj(X509_getm_notBefore(c.x509), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c.x509), 86400);
  X509_set_pubkey(c.x509, c.key);
  X509_NAME* n = X509_get_subject_name(c.x509);
  for (auto& [field, value] : subject) {
    X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value), -1, -1, 0);
  }
  X509_set_issuer_name(c.x509, issuer ? X509_get_subject_name(issuer->x509) : n);
  if (ca) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, c.x509, c.x509, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(c.x509, ext, -1);
    X509_EXTENSION_free(ext);
  }
  ASSERT_GT(X509_sign(c.x509, issuer ? issuer->key : c.key, EVP_sha256()), 0);
  c.crt = dir.file(name + ".crt");
  c.pem_key = dir.file(name + ".key");
  std::FILE* f = std::fopen(c.crt.c_str(), "w");
  PEM_write_X509(f, c.x509);
  std::fclose(f);
  f = std::fopen(c.pem_key.c_str(), "w");
  PEM_write_PrivateKey(f, c.key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

// CA, server and client certificates, made once for all tests.
struct Pki {
  TempDir dir;
  Cert ca, server, client;
  Pki() {
    make_cert(ca, dir, "ca", {{"CN", "Tern unit test CA"}}, nullptr, true);
    make_cert(server, dir, "server", {{"CN", "localhost"}}, &ca, false);
    make_cert(client, dir, "client", {{"C", "DE"}, {"O", "Tern, Inc"}, {"CN", "sensor 1"}}, &ca, false);
  }
  static Pki& get() {
    static Pki pki;
    return pki;
  }
  tern::config::Listener listener() const {
    tern::config::Listener l;
    l.certfile = server.crt;
    l.keyfile = server.pem_key;
    return l;
  }
};

// An OpenSSL client in memory: what it writes collects in its write BIO, what it reads is put in its
// read BIO.
struct TlsClient {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = nullptr;
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  std::string psk_identity, psk_key;

  explicit TlsClient(const Cert* cert = nullptr, int max_version = 0) {
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), Pki::get().ca.x509);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (cert) {
      SSL_CTX_use_certificate(ctx, cert->x509);
      SSL_CTX_use_PrivateKey(ctx, cert->key);
    }
    if (max_version) SSL_CTX_set_max_proto_version(ctx, max_version);
  }
  void use_psk(std::string identity, std::string key) {
    psk_identity = std::move(identity);
    psk_key = std::move(key);
    SSL_CTX_set_cipher_list(ctx, "PSK");  // TLS 1.2: offer PSK suites only, as a PSK-only client does
    SSL_CTX_set_ex_data(ctx, 0, this);
    SSL_CTX_set_psk_client_callback(ctx, [](SSL* s, const char*, char* id, unsigned id_max, unsigned char* psk,
                                            unsigned psk_max) -> unsigned {
      auto* self = static_cast<TlsClient*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), 0));
      if (self->psk_identity.size() + 1 > id_max || self->psk_key.size() > psk_max) return 0;
      std::memcpy(id, self->psk_identity.c_str(), self->psk_identity.size() + 1);
      std::memcpy(psk, self->psk_key.data(), self->psk_key.size());
      return static_cast<unsigned>(self->psk_key.size());
    });
  }
  void start() {
    ssl = SSL_new(ctx);
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set1_host(ssl, "localhost");
  }
  ~TlsClient() {
    if (ssl) {
      SSL_free(ssl);
    } else {
      BIO_free(in);
      BIO_free(out);
    }
    SSL_CTX_free(ctx);
  }
  std::string take() {
    std::string s(static_cast<std::size_t>(BIO_pending(out)), '\0');
    if (!s.empty()) BIO_read(out, s.data(), static_cast<int>(s.size()));
    return s;
  }
  void give(const std::string& bytes) { BIO_write(in, bytes.data(), static_cast<int>(bytes.size())); }
  // Handshake step: 1 done, 0 wants more, -1 failed.
  int step() {
    const int r = SSL_do_handshake(ssl);
    if (r == 1) return 1;
    return SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ ? 0 : -1;
  }
  std::string read_all() {
    std::string s;
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) s.append(buf, static_cast<std::size_t>(n));
    return s;
  }
};

// Runs the server filter with its input cut into `chunk`-byte pushes.
void push_in_chunks(TlsFilter& f, const std::string& bytes, std::size_t chunk, std::string* plain = nullptr,
                    bool handshake = true) {
  std::uint8_t buf[1024];
  for (std::size_t off = 0; off < bytes.size(); off += chunk) {
    const std::size_t n = std::min(chunk, bytes.size() - off);
    f.push(reinterpret_cast<const std::uint8_t*>(bytes.data()) + off, n);
    if (handshake && !f.established() && f.handshake() != TlsFilter::Step::kDone) continue;
    while (std::size_t m = f.read(buf, sizeof buf)) {
      if (plain) plain->append(reinterpret_cast<char*>(buf), m);
    }
  }
}

// Handshake between a client and the filter; false when either side failed.
bool handshake(TlsClient& c, TlsFilter& f, std::size_t chunk = 1 << 20) {
  c.start();
  for (int round = 0; round < 10; ++round) {
    const int cs = c.step();
    if (cs < 0) return false;
    push_in_chunks(f, c.take(), chunk);
    if (f.input() == TlsFilter::Input::kFailed) return false;
    c.give(f.output());
    f.output().clear();
    if (cs == 1 && f.established()) return c.step() == 1;
  }
  return false;
}

TEST(Tls, HandshakeAndDataWithInputOneByteAtATime) {
  TlsContext ctx(Pki::get().listener(), nullptr);
  TlsFilter f(ctx);
  TlsClient c;
  ASSERT_TRUE(handshake(c, f, 1)) << f.error();
  EXPECT_NE(f.description().find("TLSv1.3"), std::string::npos) << f.description();
  EXPECT_EQ(f.identity(), "") << "the listener takes no usernames from TLS";
  // 100 KiB from the client, cut into records by the client and into single bytes by the network.
  std::string sent;
  for (int i = 0; i < 100 * 1024; ++i) sent += static_cast<char>(i * 7);
  ASSERT_EQ(SSL_write(c.ssl, sent.data(), static_cast<int>(sent.size())), static_cast<int>(sent.size()));
  std::string got;
  push_in_chunks(f, c.take(), 1, &got, false);
  EXPECT_EQ(got, sent);
  EXPECT_EQ(f.input(), TlsFilter::Input::kOpen);
}

TEST(Tls, Tls12Handshake) {
  TlsContext ctx(Pki::get().listener(), nullptr);
  TlsFilter f(ctx);
  TlsClient c(nullptr, TLS1_2_VERSION);
  ASSERT_TRUE(handshake(c, f, 7)) << f.error();
  EXPECT_NE(f.description().find("TLSv1.2"), std::string::npos) << f.description();
}

TEST(Tls, SmallWritesAreGatheredIntoWholeRecords) {
  TlsContext ctx(Pki::get().listener(), nullptr);
  TlsFilter f(ctx);
  TlsClient c;
  ASSERT_TRUE(handshake(c, f)) << f.error();
  std::string plain;
  f.begin_write();
  for (int i = 0; i < 1000; ++i) {
    const std::string piece = "piece " + std::to_string(i) + ";";
    f.write(piece.data(), piece.size());
    plain += piece;
  }
  const std::string large(40000, 'L');  // whole records straight from the caller's buffer, then the rest
  f.write(large.data(), large.size());
  plain += large;
  f.end_write();
  ASSERT_TRUE(f.has_output());
  const std::string records = f.begin_send();
  // 1000 records of one piece each would add about 22 bytes apiece; gathered, ~4 records do.
  EXPECT_LT(records.size(), plain.size() + 8 * 30) << "records were not gathered";
  c.give(records);
  f.sent();
  EXPECT_FALSE(f.has_output());
  EXPECT_EQ(c.read_all(), plain);
}

TEST(Tls, CloseNotifyBothWays) {
  TlsContext ctx(Pki::get().listener(), nullptr);
  TlsFilter f(ctx);
  TlsClient c;
  ASSERT_TRUE(handshake(c, f)) << f.error();
  f.begin_write();
  f.write("bye", 3);
  f.end_write();
  f.close();
  f.close();  // once only
  EXPECT_TRUE(f.close_queued());
  c.give(f.begin_send());
  f.sent();
  EXPECT_EQ(c.read_all(), "bye");
  char b;
  EXPECT_EQ(SSL_get_error(c.ssl, SSL_read(c.ssl, &b, 1)), SSL_ERROR_ZERO_RETURN);
  // The client's close_notify ends the server's input.
  TlsFilter f2(ctx);
  TlsClient c2;
  ASSERT_TRUE(handshake(c2, f2)) << f2.error();
  SSL_write(c2.ssl, "last", 4);
  SSL_shutdown(c2.ssl);
  std::string got;
  push_in_chunks(f2, c2.take(), 1 << 20, &got, false);
  EXPECT_EQ(got, "last");
  EXPECT_EQ(f2.input(), TlsFilter::Input::kClosed);
}

TEST(Tls, GarbageFailsTheHandshakeWithOpenSslsReason) {
  TlsContext ctx(Pki::get().listener(), nullptr);
  for (const std::string& garbage : {std::string("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14),
                                    std::string("GET / HTTP/1.1\r\n\r\n"), std::string(300, '\xff')}) {
    TlsFilter f(ctx);
    f.push(reinterpret_cast<const std::uint8_t*>(garbage.data()), garbage.size());
    EXPECT_EQ(f.handshake(), TlsFilter::Step::kFailed);
    EXPECT_EQ(f.input(), TlsFilter::Input::kFailed);
    EXPECT_NE(f.error().find("error:"), std::string::npos) << f.error();
    std::uint8_t buf[16];
    EXPECT_EQ(f.read(buf, sizeof buf), 0u);
  }
}

TEST(Tls, RequireCertificateAndIdentities) {
  auto l = Pki::get().listener();
  l.cafile = Pki::get().ca.crt;
  l.require_certificate = true;
  l.use_identity_as_username = true;
  TlsContext cn(l, nullptr);
  EXPECT_TRUE(cn.identity_as_username());
  {
    TlsFilter f(cn);
    TlsClient c(&Pki::get().client);
    ASSERT_TRUE(handshake(c, f)) << f.error();
    EXPECT_EQ(f.identity(), "sensor 1");
  }
  {
    TlsFilter f(cn);
    TlsClient c;  // no certificate
    EXPECT_FALSE(handshake(c, f));
    EXPECT_NE(f.error().find("peer did not return a certificate"), std::string::npos) << f.error();
  }
  l.use_identity_as_username = false;
  l.use_subject_as_username = true;
  TlsContext subject(l, nullptr);
  TlsFilter f(subject);
  TlsClient c(&Pki::get().client);
  ASSERT_TRUE(handshake(c, f)) << f.error();
  EXPECT_EQ(f.identity(), "CN=sensor 1,O=Tern\\, Inc,C=DE");
}

TEST(Tls, PskHandshakeGivesTheIdentity) {
  tern::net::PskKeys keys{{"dev-1", std::string("\x01\x02\x03\x04", 4)}};
  tern::config::Listener l;
  l.psk_hint = "hint";
  l.use_identity_as_username = true;
  TlsContext ctx(l, &keys);
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    TlsFilter f(ctx);
    TlsClient c(nullptr, version);
    c.use_psk("dev-1", std::string("\x01\x02\x03\x04", 4));
    ASSERT_TRUE(handshake(c, f)) << f.error();
    EXPECT_EQ(f.identity(), "dev-1");
  }
  TlsFilter f(ctx);
  TlsClient c;
  c.use_psk("dev-1", "wrong");
  EXPECT_FALSE(handshake(c, f));
  // certfile and psk_hint together: PSK clients, and clients that only check the server's certificate
  // (they have no name then). require_certificate true refuses PSK clients, as OpenSSL (and so
  // Mosquitto) asks every client for a certificate.
  auto both = Pki::get().listener();
  both.psk_hint = "hint";
  both.use_identity_as_username = true;
  TlsContext mixed(both, &keys);
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    TlsFilter fp(mixed);
    TlsClient cp(nullptr, version);
    cp.use_psk("dev-1", std::string("\x01\x02\x03\x04", 4));
    ASSERT_TRUE(handshake(cp, fp)) << version << " " << fp.error();
    EXPECT_EQ(fp.identity(), "dev-1");
  }
  TlsFilter fc(mixed);
  TlsClient cc(&Pki::get().client);
  ASSERT_TRUE(handshake(cc, fc)) << fc.error();
  EXPECT_EQ(fc.identity(), "") << "no certificate was asked for";
  both.cafile = Pki::get().ca.crt;
  both.require_certificate = true;
  TlsContext strict(both, &keys);
  TlsFilter fs(strict);
  TlsClient cs(nullptr);
  cs.use_psk("dev-1", std::string("\x01\x02\x03\x04", 4));
  EXPECT_FALSE(handshake(cs, fs));
  EXPECT_NE(fs.error().find("peer did not return a certificate"), std::string::npos) << fs.error();
}

TEST(Tls, ContextErrorsNameTheFile) {
  TempDir d;
  auto message = [](const tern::config::Listener& l) -> std::string {
    try {
      TlsContext ctx(l, nullptr);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  };
  auto l = Pki::get().listener();
  l.certfile = d.file("missing.crt");
  EXPECT_EQ(message(l), "certfile " + l.certfile + ": cannot read: No such file or directory");
  l.certfile = d.write("bad.crt", "not a certificate\n");
  EXPECT_NE(message(l).find("certfile " + l.certfile + ": cannot load the certificate: error:"), std::string::npos);
  l = Pki::get().listener();
  l.keyfile = Pki::get().client.pem_key;
  EXPECT_NE(message(l).find("does not match certfile"), std::string::npos) << message(l);
  l = Pki::get().listener();
  l.capath = d.file("bad.crt");
  EXPECT_EQ(message(l), "capath " + l.capath + ": not a directory");
  l = Pki::get().listener();
  l.keyfile = d.file("encrypted.key");  // no passphrase can be given: refused, never asked for
  std::FILE* f = std::fopen(l.keyfile.c_str(), "w");
  static const char kPass[] = "secret";
  PEM_write_PrivateKey(f, Pki::get().server.key, EVP_aes_128_cbc(), nullptr, 0, nullptr, const_cast<char*>(kPass));
  std::fclose(f);
  EXPECT_NE(message(l).find("keyfile " + l.keyfile + ": cannot load the private key (PEM, not encrypted)"),
            std::string::npos)
      << message(l);
  l = Pki::get().listener();
  l.ciphers_tls13 = "NOPE";
  EXPECT_NE(message(l).find("ciphers_tls1.3 'NOPE': no usable ciphersuite"), std::string::npos) << message(l);
}

TEST(Tls, PskFile) {
  TempDir d;
  auto keys = tern::net::load_psk_file(
      d.write("psk", "# comment\n\n  # indented comment\ndev-1:00ff10\ndev-2:abc\r\nwith space:0102  \n"));
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys["dev-1"], std::string("\x00\xff\x10", 3)) << "leading zero bytes are kept";
  EXPECT_EQ(keys["dev-2"], std::string("\x0a\xbc", 2)) << "an odd digit count has an implied leading zero";
  EXPECT_EQ(keys["with space"], std::string("\x01\x02", 2));
  auto error = [&](const std::string& text) -> std::string {
    try {
      tern::net::load_psk_file(d.write("bad", text));
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  };
  const std::string at = "psk_file " + d.file("bad");
  EXPECT_EQ(error("ok:01\nno colon here\n"), at + ":2: expects identity:hexkey");
  EXPECT_EQ(error(":01\n"), at + ":1: empty identity");
  EXPECT_EQ(error("id:\n"), at + ":1: empty key for identity 'id'");
  EXPECT_EQ(error("id:0x01\n"), at + ":1: the key for identity 'id' contains non-hexadecimal characters");
  EXPECT_EQ(error("id:" + std::string(1026, 'a') + "\n"),
            at + ":1: the key for identity 'id' is longer than 512 bytes");
  EXPECT_EQ(error("id:01\nid:02\n"), at + ":2: identity 'id' appears twice");
  EXPECT_EQ(error("id:" + std::string(1024, 'a') + "\n"), "");
  try {
    tern::net::load_psk_file(d.file("none"));
    FAIL() << "a missing psk_file loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "psk_file " + d.file("none") + ": cannot read: No such file or directory");
  }
}

}  // namespace
