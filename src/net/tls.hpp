#pragma once
// TLS on the broker's listeners, as a byte filter between the socket and the MQTT (or WebSocket)
// bytes, like the WebSocket framing: an OpenSSL SSL object whose ciphertext comes from and goes to
// buffers the network layer owns, so sockets stay plain TCP sockets, the handshake can run on the
// acceptor thread, and the connection moves to its worker afterwards. OpenSSL's headers stay in
// tls.cpp; the SSL types are only named here.
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "config/config.hpp"

struct ssl_st;
struct ssl_ctx_st;
struct bio_st;

namespace tern::net {

// A psk_file: PSK identity -> key bytes.
using PskKeys = std::unordered_map<std::string, std::string>;

// Reads a psk_file (`identity:hexkey` lines, `#` comments). Throws std::runtime_error naming the file
// and the line for a file that cannot be read, a line without a colon, an empty identity, a key that
// is not hexadecimal or longer than 512 bytes, and a repeated identity.
PskKeys load_psk_file(const std::string& path);

// One TLS listener's settings: certificate, key, CAs, CRL, versions, ciphers, PSK. Built on the main
// thread at start; afterwards read-only and shared by all the listener's connections on any thread
// (an SSL_CTX may be used by several threads once configured).
class TlsContext {
 public:
  // psk: the keys for a psk_hint listener (kept by the caller for the context's lifetime), else null.
  // Throws std::runtime_error naming the listener key, the file and OpenSSL's reason when a file
  // cannot be read or does not parse, or a cipher list is not understood.
  TlsContext(const config::Listener& l, const PskKeys* psk);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // use_identity_as_username / use_subject_as_username: the connection's username comes from TLS.
  bool identity_as_username() const { return identity_ || subject_; }
  // SIGHUP: takes over the OpenSSL context of `fresh` (built from the files as they are now), for the
  // connections accepted from now on; open connections keep the context they started with (OpenSSL
  // counts its references). Acceptor thread only.
  void replace_with(TlsContext& fresh);

 private:
  friend class TlsFilter;
  ssl_ctx_st* ctx_ = nullptr;
  bool identity_ = false;
  bool subject_ = false;
};

// One connection's TLS state. Owned by the connection; used by one thread at a time (the acceptor
// during the handshake, then the connection's worker).
//
// Input: push() the ciphertext just read (not copied first: OpenSSL's record layer reads it straight
// from the caller's buffer), then handshake() until it is done, then read() plaintext until it returns 0, which means
// every pushed byte was used (an unfinished record stays inside OpenSSL).
// Output: handshake messages, alerts and encrypted data collect in output(); begin_send() moves them
// to the buffer being written, which stays untouched (so an asynchronous write may point into it)
// until sent() says the write is over.
class TlsFilter {
 public:
  enum class Step { kMore, kDone, kFailed };
  enum class Input { kOpen, kClosed, kFailed };

  explicit TlsFilter(const TlsContext& ctx);
  ~TlsFilter();
  TlsFilter(const TlsFilter&) = delete;
  TlsFilter& operator=(const TlsFilter&) = delete;

  void push(const std::uint8_t* data, std::size_t n) {
    in_ = data;
    in_len_ = n;
  }
  // Runs the handshake on the pushed bytes. kFailed: error() says why (output() may hold an alert).
  Step handshake();
  bool established() const { return established_; }
  // Decrypts pushed bytes into out (up to cap). 0: nothing more for now; input() then says whether
  // the peer ended the stream (close_notify) or it failed (error()).
  std::size_t read(std::uint8_t* out, std::size_t cap);
  Input input() const { return input_; }
  const std::string& error() const { return error_; }

  // Encrypts plaintext given in pieces between begin_write() and end_write(). Small pieces are gathered
  // into full 16 KiB records first (in a per-thread buffer), larger ones are encrypted in place.
  void begin_write() { staged_ = 0; }
  void write(const void* data, std::size_t n);
  void end_write();
  // Queues close_notify once, after anything written before.
  void close();
  bool close_queued() const { return closed_; }

  bool has_output() const { return !out_.empty(); }
  std::string& output() { return out_; }
  // Moves the output to the buffer being written and returns it; call only when no write is active.
  const std::string& begin_send() {
    sending_.swap(out_);
    out_.clear();
    return sending_;
  }
  void sent();

  // The name use_identity_as_username / use_subject_as_username asks for, once established: the
  // PSK identity, or the client certificate's Common Name or subject (RFC 2253, as Mosquitto prints
  // it). Empty when there is none (no certificate, no CN).
  std::string identity() const;
  // "TLSv1.3 TLS_AES_256_GCM_SHA384", for the log.
  std::string description() const;

  // OpenSSL's PSK server callback: looks the client's identity up in the listener's psk_file keys.
  static unsigned psk_callback(ssl_st* ssl, const char* identity, unsigned char* psk, unsigned max_len);

 private:
  static int bio_read(bio_st* b, char* buf, int len);
  static int bio_write(bio_st* b, const char* buf, int len);
  static long bio_ctrl(bio_st* b, int cmd, long num, void* ptr);
  static bio_st* new_bio(TlsFilter* owner);
  void encrypt(const void* data, std::size_t n);
  void fail(int ssl_error);

  const TlsContext& ctx_;
  ssl_st* ssl_ = nullptr;
  const std::uint8_t* in_ = nullptr;
  std::size_t in_len_ = 0;
  std::string out_;      // ciphertext produced, not yet handed to the socket
  std::string sending_;  // ciphertext being written
  std::size_t staged_ = 0;
  std::string error_;
  std::string psk_identity_;  // set by the PSK callback during the handshake
  Input input_ = Input::kOpen;
  bool established_ = false;
  bool closed_ = false;
};

}  // namespace tern::net
