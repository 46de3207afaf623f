#include "net/tls.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace tern::net {

namespace {

// Largest plaintext of one TLS record (RFC 8446 section 5.1, RFC 5246 section 6.2.1).
constexpr std::size_t kRecord = 16384;
// Capacity an idle connection may keep in each of its ciphertext buffers: one full record (with its
// header and tag) is written without allocating; what a burst of large messages grew is given back.
constexpr std::size_t kKeepCapacity = kRecord + 1024;
// OpenSSL's PSK_MAX_PSK_LEN.
constexpr std::size_t kMaxPsk = 512;

// Small writes are gathered here into whole records. Per thread: a flush encrypts everything it
// writes before returning, so no other connection can use the buffer meanwhile.
thread_local std::array<std::uint8_t, kRecord> stage;

// Every error on this thread's OpenSSL error queue, oldest first, and empties the queue.
std::string openssl_errors() {
  std::string out;
  char buf[256];
  while (unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

// A clear "cannot read" before OpenSSL's less direct "no such file" / "no start line".
void check_readable(const char* key, const std::string& path, bool directory = false) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(std::string(key) + " " + path + ": cannot read: " + std::strerror(errno));
  if (directory != S_ISDIR(st.st_mode)) {
    fail(std::string(key) + " " + path + (directory ? ": not a directory" : ": is a directory, not a file"));
  }
  if (::access(path.c_str(), directory ? (R_OK | X_OK) : R_OK) != 0) {
    fail(std::string(key) + " " + path + ": cannot read: " + std::strerror(errno));
  }
}

int psk_keys_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Encrypted private keys are not supported: OpenSSL would otherwise ask for the passphrase on the
// terminal, which a service cannot answer.
int no_passphrase(char*, int, int, void*) { return 0; }

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

int hex_value(char c) {
  if (c <= '9') return c - '0';
  return (c | 0x20) - 'a' + 10;
}

}  // namespace

PskKeys load_psk_file(const std::string& path) {
  check_readable("psk_file", path);
  std::ifstream in(path);
  if (!in) fail("psk_file " + path + ": cannot read: " + std::strerror(errno));
  PskKeys keys;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const std::string at = "psk_file " + path + ":" + std::to_string(n) + ": ";
    const auto colon = line.find(':');
    if (colon == std::string::npos) fail(at + "expects identity:hexkey");
    std::string identity = line.substr(0, colon);
    std::string hex = line.substr(colon + 1);
    if (identity.empty()) fail(at + "empty identity");
    if (hex.empty()) fail(at + "empty key for identity '" + identity + "'");
    if (!std::all_of(hex.begin(), hex.end(), is_hex)) {
      fail(at + "the key for identity '" + identity + "' contains non-hexadecimal characters");
    }
    // An odd number of digits has an implied leading zero, as Mosquitto and its clients read keys.
    if (hex.size() % 2 != 0) hex.insert(hex.begin(), '0');
    if (hex.size() / 2 > kMaxPsk) fail(at + "the key for identity '" + identity + "' is longer than 512 bytes");
    std::string key(hex.size() / 2, '\0');
    for (std::size_t i = 0; i < key.size(); ++i) {
      key[i] = static_cast<char>(hex_value(hex[2 * i]) << 4 | hex_value(hex[2 * i + 1]));
    }
    if (!keys.emplace(identity, std::move(key)).second) fail(at + "identity '" + identity + "' appears twice");
  }
  return keys;
}

TlsContext::TlsContext(const config::Listener& l, const PskKeys* psk)
    : identity_(l.use_identity_as_username), subject_(l.use_subject_as_username && !l.use_identity_as_username) {
  ERR_clear_error();
  // Owned here until the end: when a check below throws, the destructor does not run.
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> owner(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  ctx_ = owner.get();
  if (ctx_ == nullptr) fail("cannot create a TLS context: " + openssl_errors());
  // tls_version is the minimum, as in Mosquitto 2.0. TLS 1.1 (RFC 8996) is never offered, and
  // OpenSSL 3 refuses it at its default security level anyway.
  SSL_CTX_set_min_proto_version(ctx_, l.tls_version == "tlsv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  // Client-initiated renegotiation costs the server a handshake per request: refused.
  SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION);
  // OpenSSL's record buffers (about 34 KiB) are freed while a connection is idle, as in Mosquitto:
  // idle connections are the common case of a broker.
  SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS);
  // Resuming a session whose client certificate was verified needs a session id context.
  static const unsigned char kSessionContext[] = "tern";
  SSL_CTX_set_session_id_context(ctx_, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_default_passwd_cb(ctx_, no_passphrase);

  if (!l.ciphers.empty() && SSL_CTX_set_cipher_list(ctx_, l.ciphers.c_str()) != 1) {
    fail("ciphers '" + l.ciphers + "': no usable cipher: " + openssl_errors());
  }
  if (!l.ciphers_tls13.empty() && SSL_CTX_set_ciphersuites(ctx_, l.ciphers_tls13.c_str()) != 1) {
    fail("ciphers_tls1.3 '" + l.ciphers_tls13 + "': no usable ciphersuite: " + openssl_errors());
  }
  if (!l.dhparamfile.empty()) {
    check_readable("dhparamfile", l.dhparamfile);
    BIO* bio = BIO_new_file(l.dhparamfile.c_str(), "r");
    EVP_PKEY* dh = bio != nullptr ? PEM_read_bio_Parameters(bio, nullptr) : nullptr;
    BIO_free(bio);
    if (dh == nullptr || EVP_PKEY_get_base_id(dh) != EVP_PKEY_DH) {
      EVP_PKEY_free(dh);
      fail("dhparamfile " + l.dhparamfile + ": no PEM DH parameters: " + openssl_errors());
    }
    if (SSL_CTX_set0_tmp_dh_pkey(ctx_, dh) != 1) {
      EVP_PKEY_free(dh);
      fail("dhparamfile " + l.dhparamfile + ": " + openssl_errors());
    }
  }
  if (!l.certfile.empty()) {
    check_readable("certfile", l.certfile);
    if (SSL_CTX_use_certificate_chain_file(ctx_, l.certfile.c_str()) != 1) {
      fail("certfile " + l.certfile + ": cannot load the certificate: " + openssl_errors());
    }
    check_readable("keyfile", l.keyfile);
    // Read apart from SSL_CTX_use_PrivateKey, so that a key that does not parse and a key of another
    // certificate get their own messages.
    BIO* bio = BIO_new_file(l.keyfile.c_str(), "r");
    EVP_PKEY* key = bio != nullptr ? PEM_read_bio_PrivateKey(bio, nullptr, no_passphrase, nullptr) : nullptr;
    BIO_free(bio);
    if (key == nullptr) {
      fail("keyfile " + l.keyfile + ": cannot load the private key (PEM, not encrypted): " + openssl_errors());
    }
    const int used = SSL_CTX_use_PrivateKey(ctx_, key);
    EVP_PKEY_free(key);
    if (used != 1 || SSL_CTX_check_private_key(ctx_) != 1) {
      fail("keyfile " + l.keyfile + " does not match certfile " + l.certfile + ": " + openssl_errors());
    }
  }
  if (!l.cafile.empty() || !l.capath.empty()) {
    if (!l.cafile.empty()) {
      check_readable("cafile", l.cafile);
      if (SSL_CTX_load_verify_file(ctx_, l.cafile.c_str()) != 1) {
        fail("cafile " + l.cafile + ": cannot load CA certificates: " + openssl_errors());
      }
    }
    if (!l.capath.empty()) {
      check_readable("capath", l.capath, true);
      if (SSL_CTX_load_verify_dir(ctx_, l.capath.c_str()) != 1) {
        fail("capath " + l.capath + ": cannot use as a CA directory: " + openssl_errors());
      }
    }
  }
  if (!l.crlfile.empty()) {
    check_readable("crlfile", l.crlfile);
    X509_STORE* store = SSL_CTX_get_cert_store(ctx_);
    X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lookup == nullptr || X509_load_crl_file(lookup, l.crlfile.c_str(), X509_FILETYPE_PEM) < 1) {
      fail("crlfile " + l.crlfile + ": cannot load the revocation list: " + openssl_errors());
    }
    // As Mosquitto: the client's own certificate is checked against the CRL, not its issuers.
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  // Without require_certificate no certificate is asked for, as in Mosquitto: the listener is like an
  // HTTPS server, and use_identity_as_username then refuses every certificate client.
  SSL_CTX_set_verify(ctx_, l.require_certificate ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE,
                     nullptr);
  if (!l.psk_hint.empty()) {
    if (psk == nullptr) fail("psk_hint needs psk_file");
    SSL_CTX_set_ex_data(ctx_, psk_keys_index(), const_cast<PskKeys*>(psk));
    SSL_CTX_set_psk_server_callback(ctx_, &TlsFilter::psk_callback);
    if (SSL_CTX_use_psk_identity_hint(ctx_, l.psk_hint.c_str()) != 1) {
      fail("psk_hint '" + l.psk_hint + "': " + openssl_errors());
    }
  }
  ERR_clear_error();
  (void)owner.release();  // the destructor frees ctx_ from now on
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

void TlsContext::replace_with(TlsContext& fresh) {
  std::swap(ctx_, fresh.ctx_);  // `fresh` now holds the old context and releases it when it goes
  identity_ = fresh.identity_;
  subject_ = fresh.subject_;
}

// ---- The filter ----------------------------------------------------------------------------------

// Ciphertext goes through a BIO of this kind: reads take the bytes the network layer pushed, without
// copying them first (a memory BIO would), and writes append to the connection's output buffer.
bio_st* TlsFilter::new_bio(TlsFilter* owner) {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tern connection");
    BIO_meth_set_read(m, &TlsFilter::bio_read);
    BIO_meth_set_write(m, &TlsFilter::bio_write);
    BIO_meth_set_ctrl(m, &TlsFilter::bio_ctrl);
    BIO_meth_set_create(m, [](BIO* b) {
      BIO_set_init(b, 1);
      return 1;
    });
    return m;
  }();
  BIO* b = BIO_new(method);
  if (b != nullptr) BIO_set_data(b, owner);
  return b;
}

int TlsFilter::bio_read(bio_st* b, char* buf, int len) {
  auto* f = static_cast<TlsFilter*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (f->in_len_ == 0) {
    BIO_set_retry_read(b);  // OpenSSL keeps an unfinished record and asks again after the next push
    return -1;
  }
  const std::size_t n = std::min(f->in_len_, static_cast<std::size_t>(len));
  std::memcpy(buf, f->in_, n);
  f->in_ += n;
  f->in_len_ -= n;
  return static_cast<int>(n);
}

int TlsFilter::bio_write(bio_st* b, const char* buf, int len) {
  auto* f = static_cast<TlsFilter*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  f->out_.append(buf, static_cast<std::size_t>(len));
  return len;
}

long TlsFilter::bio_ctrl(bio_st* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;  // output is written by the network layer
    case BIO_CTRL_PENDING: return static_cast<long>(static_cast<TlsFilter*>(BIO_get_data(b))->in_len_);
    default: return 0;
  }
}

unsigned TlsFilter::psk_callback(ssl_st* ssl, const char* identity, unsigned char* psk, unsigned max_len) {
  const auto* keys = static_cast<const PskKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_keys_index()));
  auto* f = static_cast<TlsFilter*>(SSL_get_app_data(ssl));
  if (keys == nullptr || f == nullptr || identity == nullptr) return 0;
  auto it = keys->find(identity);
  if (it == keys->end() || it->second.size() > max_len) return 0;  // the handshake fails
  std::memcpy(psk, it->second.data(), it->second.size());
  f->psk_identity_ = identity;
  return static_cast<unsigned>(it->second.size());
}

TlsFilter::TlsFilter(const TlsContext& ctx) : ctx_(ctx) {
  ssl_ = SSL_new(ctx.ctx_);
  BIO* bio = ssl_ != nullptr ? new_bio(this) : nullptr;
  if (bio == nullptr) {
    input_ = Input::kFailed;
    error_ = "cannot create a TLS session: " + openssl_errors();
    return;
  }
  SSL_set_app_data(ssl_, this);
  SSL_set_bio(ssl_, bio, bio);  // one reference, used for both directions
  SSL_set_accept_state(ssl_);
}

TlsFilter::~TlsFilter() { SSL_free(ssl_); }

void TlsFilter::fail(int ssl_error) {
  input_ = Input::kFailed;
  if (ssl_error == SSL_ERROR_SSL) {
    error_ = openssl_errors();
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) error_ += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
  } else {
    ERR_clear_error();
    error_ = "TLS error " + std::to_string(ssl_error);
  }
}

TlsFilter::Step TlsFilter::handshake() {
  if (input_ != Input::kOpen) return Step::kFailed;
  if (established_) return Step::kDone;
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    established_ = true;
    return Step::kDone;
  }
  const int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ) return Step::kMore;
  fail(e);
  in_len_ = 0;
  return Step::kFailed;
}

std::size_t TlsFilter::read(std::uint8_t* out, std::size_t cap) {
  std::size_t got = 0;
  while (got < cap && input_ == Input::kOpen) {
    ERR_clear_error();
    std::size_t n = 0;
    const int r = SSL_read_ex(ssl_, out + got, cap - got, &n);
    if (r == 1) {
      got += n;
      continue;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ) break;  // every pushed byte is used
    if (e == SSL_ERROR_ZERO_RETURN) {
      input_ = Input::kClosed;  // close_notify
    } else {
      fail(e);
    }
  }
  if (input_ != Input::kOpen) in_len_ = 0;  // nothing after the end is read
  return got;
}

void TlsFilter::write(const void* data, std::size_t n) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  while (n > 0) {
    if (staged_ == 0 && n >= kRecord) {
      // Whole records straight from the caller's buffer (large payloads are not copied first).
      const std::size_t whole = n - n % kRecord;
      encrypt(p, whole);
      p += whole;
      n -= whole;
      continue;
    }
    const std::size_t take = std::min(n, kRecord - staged_);
    std::memcpy(stage.data() + staged_, p, take);
    staged_ += take;
    p += take;
    n -= take;
    if (staged_ == kRecord) {
      encrypt(stage.data(), kRecord);
      staged_ = 0;
    }
  }
}

void TlsFilter::end_write() {
  if (staged_ != 0) encrypt(stage.data(), staged_);
  staged_ = 0;
}

void TlsFilter::encrypt(const void* data, std::size_t n) {
  if (closed_ || !established_ || input_ == Input::kFailed) return;
  ERR_clear_error();
  std::size_t written = 0;
  // The BIO takes everything, so a write is never partial and never has to be retried.
  const int r = SSL_write_ex(ssl_, data, n, &written);
  if (r != 1) fail(SSL_get_error(ssl_, r));
}

void TlsFilter::close() {
  if (closed_) return;
  closed_ = true;
  if (!established_ || input_ == Input::kFailed) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // writes close_notify; the peer's is not waited for
  ERR_clear_error();
}

void TlsFilter::sent() {
  sending_.clear();
  if (sending_.capacity() > kKeepCapacity) std::string().swap(sending_);
  if (out_.empty() && out_.capacity() > kKeepCapacity) std::string().swap(out_);
}

std::string TlsFilter::description() const {
  return std::string(SSL_get_version(ssl_)) + " " + SSL_get_cipher_name(ssl_);
}

std::string TlsFilter::identity() const {
  if (!ctx_.identity_ && !ctx_.subject_) return {};
  // A PSK session has no certificate; its identity is the name (Mosquitto: only with
  // use_identity_as_username).
  if (!psk_identity_.empty()) return ctx_.identity_ ? psk_identity_ : std::string();
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr) return {};
  X509_NAME* name = X509_get_subject_name(cert);
  if (name == nullptr) return {};
  if (ctx_.identity_) {
    const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i < 0) return {};
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
    if (len < 0) return {};
    std::string cn(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
    if (cn.find('\0') != std::string::npos) return {};  // an embedded NUL could impersonate a shorter name
    return cn;
  }
  // The subject as Mosquitto prints it, e.g. "CN=test client,OU=Production,O=Server,C=GB".
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string subject(data != nullptr && len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string());
  BIO_free(bio);
  return subject;
}

}  // namespace tern::net
