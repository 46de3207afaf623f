// AsyncClient: the client protocol state machine (protocol/client_connection) on an Asio
// io_context, over TCP, TLS or a Unix socket, with reconnect and backoff.
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <cstring>

#include "client/debug_log.hpp"
#include "core/reason_code.hpp"
#include "protocol/client_connection.hpp"
#include "tern/client.hpp"

namespace tern {

namespace asio = boost::asio;
using boost::system::error_code;
using asio::ip::tcp;

namespace {

using Handler = std::function<void(const error_code&, std::size_t)>;

// One network connection: established (with its TLS handshake), then read and written. Owned by
// shared_ptr: every pending operation holds it, so a replaced transport lives until its handlers ran.
class Transport : public std::enable_shared_from_this<Transport> {
 public:
  virtual ~Transport() = default;
  // Connects; `done` gets an empty string on success, else the error.
  virtual void connect(std::function<void(std::string)> done) = 0;
  virtual void read(asio::mutable_buffer b, Handler h) = 0;
  virtual void write(asio::const_buffer b, Handler h) = 0;
  virtual void close() = 0;
};

// Resolves and connects a TCP socket (from bind_address when set), trying each address in turn.
class TcpConnector {
 public:
  TcpConnector(asio::io_context& io, const ClientOptions& o) : resolver_(io), opts_(o) {}

  // `owner` keeps the transport holding this connector alive until the handlers ran.
  void connect(tcp::socket& s, std::shared_ptr<void> owner, std::function<void(std::string)> done) {
    resolver_.async_resolve(opts_.host, std::to_string(opts_.port),
                            [this, &s, owner, done](const error_code& ec, tcp::resolver::results_type r) {
                              if (ec) return done(fmt::format("cannot resolve {}: {}", opts_.host, ec.message()));
                              endpoints_.assign(r.begin(), r.end());
                              try_next(s, 0, "no address", owner, done);
                            });
  }
  void cancel() { resolver_.cancel(); }

 private:
  void try_next(tcp::socket& s, std::size_t i, std::string last, std::shared_ptr<void> owner,
                std::function<void(std::string)> done) {
    if (i >= endpoints_.size()) return done(last);
    const tcp::endpoint ep = endpoints_[i].endpoint();
    error_code ec;
    s.close(ec);
    s.open(ep.protocol(), ec);
    if (!opts_.bind_address.empty()) {
      auto addr = asio::ip::make_address(opts_.bind_address, ec);
      if (!ec) s.bind(tcp::endpoint(addr, 0), ec);
      if (ec) {
        return try_next(s, i + 1, fmt::format("cannot bind to {}: {}", opts_.bind_address, ec.message()), owner, done);
      }
    }
    s.async_connect(ep, [this, &s, i, owner, done](const error_code& e) {
      if (e == asio::error::operation_aborted) return done(e.message());
      if (e) return try_next(s, i + 1, e.message(), owner, done);
      error_code ignored;
      if (opts_.nodelay) s.set_option(tcp::no_delay(true), ignored);
      done("");
    });
  }

  tcp::resolver resolver_;
  const ClientOptions& opts_;
  std::vector<tcp::resolver::results_type::value_type> endpoints_;
};

class TcpTransport final : public Transport {
 public:
  TcpTransport(asio::io_context& io, const ClientOptions& o) : sock_(io), connector_(io, o) {}
  void connect(std::function<void(std::string)> done) override {
    connector_.connect(sock_, shared_from_this(), std::move(done));
  }
  void read(asio::mutable_buffer b, Handler h) override { sock_.async_read_some(b, std::move(h)); }
  void write(asio::const_buffer b, Handler h) override { asio::async_write(sock_, b, std::move(h)); }
  void close() override {
    error_code ec;
    connector_.cancel();
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
  }

 private:
  tcp::socket sock_;
  TcpConnector connector_;
};

class UnixTransport final : public Transport {
 public:
  UnixTransport(asio::io_context& io, const ClientOptions& o) : sock_(io), path_(o.unix_socket) {}
  void connect(std::function<void(std::string)> done) override {
    sock_.async_connect(asio::local::stream_protocol::endpoint(path_),
                        [done, path = path_, owner = shared_from_this()](const error_code& ec) {
                          done(ec ? fmt::format("{}: {}", path, ec.message()) : "");
                        });
  }
  void read(asio::mutable_buffer b, Handler h) override { sock_.async_read_some(b, std::move(h)); }
  void write(asio::const_buffer b, Handler h) override { asio::async_write(sock_, b, std::move(h)); }
  void close() override {
    error_code ec;
    sock_.close(ec);
  }

 private:
  asio::local::stream_protocol::socket sock_;
  std::string path_;
};

std::string openssl_error(const error_code& ec) {
  std::string what = ec.message();
  if (ec.category() == asio::error::get_ssl_category()) {
    char buf[256];
    ERR_error_string_n(static_cast<unsigned long>(ec.value()), buf, sizeof buf);
    what = buf;
  }
  return what;
}

// TLS-PSK: the identity and key come from the TlsOptions stored in the context's ex data (its app
// data belongs to Asio, which keeps its verify callback there).
int psk_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

unsigned psk_client_callback(SSL* ssl, const char* /*hint*/, char* identity, unsigned max_identity_len,
                             unsigned char* psk, unsigned max_psk_len) {
  const auto* t = static_cast<const TlsOptions*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_index()));
  if (!t || t->psk_identity.size() + 1 > max_identity_len) return 0;
  std::memcpy(identity, t->psk_identity.c_str(), t->psk_identity.size() + 1);
  const std::string& hex = t->psk;
  if (hex.size() % 2 != 0 || hex.size() / 2 > max_psk_len) return 0;
  for (std::size_t i = 0; i < hex.size() / 2; ++i) {
    unsigned v = 0;
    if (std::sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1) return 0;
    psk[i] = static_cast<unsigned char>(v);
  }
  return static_cast<unsigned>(hex.size() / 2);
}

class TlsTransport final : public Transport {
 public:
  TlsTransport(asio::io_context& io, const ClientOptions& o, std::string& error)
      : ctx_(asio::ssl::context::tls_client), opts_(o), connector_(io, o) {
    const TlsOptions& t = o.tls;
    SSL_CTX* c = ctx_.native_handle();
    int min = TLS1_2_VERSION;
    if (t.tls_version == "tlsv1.3") min = TLS1_3_VERSION;
    if (t.tls_version == "tlsv1.1") min = TLS1_1_VERSION;
    SSL_CTX_set_min_proto_version(c, min);
    error_code ec;
    if (!t.ciphers.empty() && SSL_CTX_set_cipher_list(c, t.ciphers.c_str()) != 1) error = "invalid TLS cipher list";
    if (!t.alpn.empty()) {
      std::string wire(1, static_cast<char>(t.alpn.size()));
      wire += t.alpn;
      SSL_CTX_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size()));
    }
    if (!t.psk.empty()) {
      SSL_CTX_set_ex_data(c, psk_index(), const_cast<TlsOptions*>(&t));
      SSL_CTX_set_psk_client_callback(c, psk_client_callback);
      ctx_.set_verify_mode(asio::ssl::verify_none);
    } else {
      ctx_.set_verify_mode(asio::ssl::verify_peer);
      if (!t.cafile.empty()) ctx_.load_verify_file(t.cafile, ec);
      if (ec) error = fmt::format("cannot load CA file {}: {}", t.cafile, openssl_error(ec));
      if (!t.capath.empty()) ctx_.add_verify_path(t.capath, ec);
      if (ec && error.empty()) error = fmt::format("cannot use CA path {}: {}", t.capath, openssl_error(ec));
      if (t.use_os_certs || (t.cafile.empty() && t.capath.empty())) ctx_.set_default_verify_paths(ec);
    }
    if (!t.certfile.empty()) {
      ctx_.use_certificate_chain_file(t.certfile, ec);
      if (ec && error.empty()) error = fmt::format("cannot load certificate {}: {}", t.certfile, openssl_error(ec));
      ctx_.use_private_key_file(t.keyfile.empty() ? t.certfile : t.keyfile, asio::ssl::context::pem, ec);
      if (ec && error.empty()) error = fmt::format("cannot load key {}: {}", t.keyfile, openssl_error(ec));
    }
    stream_.emplace(io, ctx_);
  }

  void connect(std::function<void(std::string)> done) override {
    auto owner = shared_from_this();
    connector_.connect(stream_->next_layer(), owner, [this, owner, done](std::string err) {
      if (!err.empty()) return done(err);
      const TlsOptions& t = opts_.tls;
      error_code ec;
      asio::ip::make_address(opts_.host, ec);
      const bool is_ip = !ec;
      // SNI, and the host name check of RFC 6125 unless insecure.
      if (!is_ip) SSL_set_tlsext_host_name(stream_->native_handle(), opts_.host.c_str());
      if (t.psk.empty() && !t.insecure) stream_->set_verify_callback(asio::ssl::host_name_verification(opts_.host));
      stream_->async_handshake(asio::ssl::stream_base::client, [done, owner](const error_code& e) {
        done(e ? "TLS handshake failed: " + openssl_error(e) : "");
      });
    });
  }
  void read(asio::mutable_buffer b, Handler h) override { stream_->async_read_some(b, std::move(h)); }
  void write(asio::const_buffer b, Handler h) override { asio::async_write(*stream_, b, std::move(h)); }
  void close() override {
    error_code ec;
    connector_.cancel();
    stream_->next_layer().shutdown(tcp::socket::shutdown_both, ec);
    stream_->next_layer().close(ec);
  }

 private:
  asio::ssl::context ctx_;
  const ClientOptions& opts_;
  TcpConnector connector_;
  std::optional<asio::ssl::stream<tcp::socket>> stream_;
};

protocol::ClientSettings settings_from(const ClientOptions& o) {
  protocol::ClientSettings s;
  s.version = o.version;
  s.client_id = o.client_id;
  s.clean_start = o.clean_start;
  s.keepalive = o.keepalive;
  s.username = o.username;
  s.password = o.password;
  s.will = o.will;
  s.connect_props = o.connect_props;
  s.max_inflight = o.max_inflight;
  s.max_queued_messages = o.max_queued_messages;
  s.max_queued_bytes = o.max_queued_bytes;
  return s;
}

std::string connack_error(Version v, std::uint8_t code) {
  return v == Version::kV5 ? reason_name(static_cast<Reason>(code)) : connack_v3_name(code);
}

}  // namespace

struct AsyncClient::Impl final : protocol::ClientHandler, std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, ClientOptions o)
      : io(io), opts(std::move(o)), conn(*this, settings_from(opts)), tick(io), timeout(io), retry(io),
        rbuf(64 * 1024) {}

  asio::io_context& io;
  ClientOptions opts;
  protocol::ClientConnection conn;
  AsyncClient* api = nullptr;
  std::shared_ptr<Transport> transport;
  bool transport_up = false;   // connected (and TLS handshake done)
  bool writing = false;
  bool attempting = false;     // between connect start and CONNACK
  bool stopped = false;        // disconnect() called or the client destroyed
  unsigned tick_generation = 0;
  unsigned generation = 0;     // of the transport; stale completions are ignored
  unsigned failures = 0;       // consecutive failed attempts, for the backoff
  asio::steady_timer tick;
  asio::steady_timer timeout;
  asio::steady_timer retry;
  std::vector<std::uint8_t> rbuf;
  std::string wbuf;
  std::vector<std::pair<std::uint16_t, std::uint8_t>> done;  // publish completions to report
  std::vector<std::uint16_t> unwritten_qos0;  // QoS 0 messages in conn.out()
  std::vector<std::uint16_t> writing_qos0;    // ... and in the write in progress
  bool drain_posted = false;
  std::string close_error;

  // ---- connection attempts ----
  void start() {
    if (stopped) return;
    ++generation;
    attempting = true;
    transport_up = false;
    writing = false;
    wbuf.clear();
    std::string error;
    if (!opts.unix_socket.empty()) {
      transport = std::make_shared<UnixTransport>(io, opts);
    } else if (opts.tls.enabled) {
      transport = std::make_shared<TlsTransport>(io, opts, error);
    } else {
      transport = std::make_shared<TcpTransport>(io, opts);
    }
    if (!error.empty()) return attempt_failed(error);
    const unsigned gen = generation;
    auto self = shared_from_this();
    timeout.expires_after(opts.connect_timeout);
    timeout.async_wait([self, gen](const error_code& ec) {
      if (ec || gen != self->generation || !self->attempting) return;
      self->attempt_failed("timed out");
    });
    transport->connect([self, gen](std::string err) {
      if (gen != self->generation || self->stopped) return;
      if (!err.empty()) return self->attempt_failed(err);
      self->transport_up = true;
      self->conn.start(protocol::ClientClock::now());
      self->arm_tick();
      self->read(gen);
      self->flush();
    });
  }

  // Before CONNACK: report the failure, close, and retry if allowed.
  void attempt_failed(const std::string& error) {
    timeout.cancel();
    teardown();
    if (!conn.closed()) {
      // Connected, CONNECT sent, no CONNACK: the state machine closes and on_closed() reports it.
      close_error = error;
      conn.on_transport_closed();
      return;
    }
    attempting = false;
    report_connect_failure(ConnectResult::kNoConnack, error);
    schedule_retry();
  }

  void report_connect_failure(std::uint8_t code, const std::string& error) {
    ConnectResult r;
    r.code = code;
    r.error = error;
    if (api && api->on_connect) api->on_connect(r);
  }

  void schedule_retry() {
    if (stopped || !opts.auto_reconnect) return;
    auto delay = opts.reconnect_delay * (1u << std::min(failures, 10u));
    if (delay > opts.reconnect_delay_max) delay = opts.reconnect_delay_max;
    ++failures;
    retry.expires_after(delay);
    retry.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->start();
    });
  }

  void teardown() {
    tick.cancel();  // armed again by the next connection; an idle client keeps no timer
    // QoS 0 messages not written are lost with the connection (at most once): they complete with
    // 0x80 (unspecified error).
    for (auto* v : {&writing_qos0, &unwritten_qos0}) {
      for (auto mid : *v) done.emplace_back(mid, 0x80);
      v->clear();
    }
    if (!done.empty()) post_drain();
    if (transport) transport->close();
    transport_up = false;
    ++generation;  // completions of the old transport are ignored from now on
  }

  // ---- I/O ----
  void read(unsigned gen) {
    auto self = shared_from_this();
    transport->read(asio::buffer(rbuf), [self, gen, t = transport](const error_code& ec, std::size_t n) {
      if (gen != self->generation) return;
      if (ec) {
        self->close_error = ec == asio::error::eof ? "connection closed by the server" : ec.message();
        self->lost();
        return;
      }
      self->conn.on_bytes(self->rbuf.data(), n, protocol::ClientClock::now());
      self->flush();
      if (gen == self->generation && !self->conn.closed()) self->read(gen);
      self->drain();
    });
  }

  // The transport failed under an established (or establishing) MQTT connection.
  void lost() {
    teardown();
    if (!conn.closed()) conn.on_transport_closed();
  }

  void flush() {
    if (!transport_up || writing) return;
    if (conn.out().empty()) {
      if (conn.closed()) teardown();
      return;
    }
    wbuf.clear();
    std::swap(wbuf, conn.out());
    writing_qos0.swap(unwritten_qos0);
    writing = true;
    const unsigned gen = generation;
    auto self = shared_from_this();
    transport->write(asio::buffer(wbuf), [self, gen, t = transport](const error_code& ec, std::size_t) {
      if (gen != self->generation) return;
      self->writing = false;
      if (ec) {
        self->close_error = ec.message();
        self->lost();
        return;
      }
      for (auto mid : self->writing_qos0) self->done.emplace_back(mid, 0);
      self->writing_qos0.clear();
      self->flush();
      self->drain();
    });
  }

  // Keepalive ticks, once a second while connected. Re-arming replaces a pending wait; the
  // generation makes a cancelled wait's late handler a no-op.
  void arm_tick() {
    const unsigned gen = ++tick_generation;
    tick.expires_after(std::chrono::seconds(1));
    tick.async_wait([self = shared_from_this(), gen](const error_code& ec) {
      if (ec || gen != self->tick_generation || self->stopped) return;
      self->conn.on_tick(protocol::ClientClock::now());
      self->flush();
      self->drain();
      if (self->conn.connected() || self->attempting) self->arm_tick();
    });
  }

  // Publish completions are reported outside the calls that produce them, so a callback may
  // publish again without re-entering the state machine.
  void drain() {
    while (!done.empty()) {
      auto batch = std::move(done);
      done.clear();
      for (auto [mid, reason] : batch) {
        if (api && api->on_publish) api->on_publish(mid, reason);
      }
    }
  }
  void post_drain() {
    if (drain_posted || done.empty()) return;
    drain_posted = true;
    asio::post(io, [self = shared_from_this()] {
      self->drain_posted = false;
      self->drain();
    });
  }

  // ---- protocol::ClientHandler ----
  void on_connack(const codec::Connack& c) override {
    attempting = false;
    timeout.cancel();
    if (c.code != 0) {
      report_connect_failure(c.code, connack_error(conn.settings().version, c.code));
      return;
    }
    failures = 0;
    ConnectResult r;
    r.success = true;
    r.code = 0;
    r.session_present = c.session_present;
    r.props = c.props;
    if (api && api->on_connect) api->on_connect(r);
  }

  void on_message(const codec::Publish& p) override {
    if (!api || !api->on_message) return;
    MessageView m;
    m.topic = p.topic;
    m.payload = p.payload;
    m.qos = p.qos;
    m.retain = p.retain;
    m.dup = p.dup;
    m.mid = p.packet_id;
    m.props = &p.props;
    api->on_message(m);
  }

  void on_published(std::uint16_t mid, std::uint8_t reason, const codec::Properties&) override {
    done.emplace_back(mid, reason);
  }

  // QoS 0: complete when the write that carries it completes, so a publisher that waits for
  // completions (or watches pending()) is held back by the socket.
  void on_qos0_sent(std::uint16_t mid) override { unwritten_qos0.push_back(mid); }

  void on_subscribed(std::uint16_t mid, const std::vector<std::uint8_t>& codes, const codec::Properties&) override {
    if (api && api->on_subscribe) api->on_subscribe(mid, codes);
  }

  void on_unsubscribed(std::uint16_t mid, const std::vector<std::uint8_t>&, const codec::Properties&) override {
    if (api && api->on_unsubscribe) api->on_unsubscribe(mid);
  }

  void on_disconnect(const codec::Disconnect& d) override {
    server_reason = d.reason;
    close_error = d.props.reason_string ? fmt::format("disconnected by the server: {} ({})", reason_name(static_cast<Reason>(d.reason)), *d.props.reason_string)
                                        : fmt::format("disconnected by the server: {}", reason_name(static_cast<Reason>(d.reason)));
  }

  void on_closed(protocol::ClientCloseCause cause) override {
    using protocol::ClientCloseCause;
    const bool was_attempt = attempting;
    attempting = false;
    timeout.cancel();
    // What is still in the output (a DISCONNECT, an acknowledgement) is written before the socket
    // closes: flush() tears the transport down once the output is empty.
    auto self = shared_from_this();
    asio::post(io, [self] { self->flush(); });
    if (cause == ClientCloseCause::kRefused) return;  // reported by on_connack; no retry
    std::string error = close_error;
    close_error.clear();
    if (cause == ClientCloseCause::kProtocolError) error = "protocol error: " + conn.error();
    if (cause == ClientCloseCause::kKeepaliveTimeout) error = "keepalive timeout";
    if (error.empty() && cause != ClientCloseCause::kClientDisconnect) error = protocol::client_close_cause_name(cause);
    const bool retry_allowed = cause != ClientCloseCause::kClientDisconnect && !stopped && opts.auto_reconnect;
    if (was_attempt) {
      report_connect_failure(ConnectResult::kNoConnack, error);
    } else if (api && api->on_disconnect) {
      DisconnectInfo info;
      info.reason = server_reason;
      info.error = error;
      info.reconnecting = retry_allowed;
      api->on_disconnect(info);
    }
    server_reason = 0;
    if (retry_allowed) schedule_retry();
  }

  void on_packet(bool sent, const codec::Packet& p, std::size_t payload_size, std::uint16_t mid) override {
    if (!api || !api->on_log) return;
    for (auto& line : client::packet_log_lines(conn.client_id(), sent, p, payload_size, mid)) api->on_log(line);
  }

  std::uint8_t server_reason = 0;
};

AsyncClient::AsyncClient(asio::io_context& io, ClientOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {
  impl_->api = this;
}

AsyncClient::~AsyncClient() {
  impl_->api = nullptr;
  impl_->stopped = true;
  impl_->retry.cancel();
  impl_->timeout.cancel();
  impl_->tick.cancel();
  impl_->teardown();
}

void AsyncClient::connect() {
  impl_->stopped = false;
  impl_->failures = 0;
  impl_->start();
}

std::uint16_t AsyncClient::publish(std::string topic, std::string payload, std::uint8_t qos, bool retain,
                                   Properties props, PublishError* error) {
  protocol::LocalError e = protocol::LocalError::kNone;
  auto mid = impl_->conn.publish(std::move(topic), std::move(payload), qos, retain, std::move(props), &e);
  if (error) *error = static_cast<PublishError>(e);
  impl_->flush();
  impl_->post_drain();
  return mid;
}

std::uint16_t AsyncClient::subscribe(std::vector<Subscription> subs, Properties props) {
  std::vector<codec::SubscribeTopic> topics;
  topics.reserve(subs.size());
  for (auto& s : subs) topics.push_back({std::move(s.filter), s.qos, s.no_local, s.retain_as_published, s.retain_handling});
  auto mid = impl_->conn.subscribe(std::move(topics), std::move(props));
  impl_->flush();
  return mid;
}

std::uint16_t AsyncClient::unsubscribe(std::vector<std::string> filters, Properties props) {
  auto mid = impl_->conn.unsubscribe(std::move(filters), std::move(props));
  impl_->flush();
  return mid;
}

void AsyncClient::disconnect(std::uint8_t reason, Properties props) {
  impl_->stopped = true;
  impl_->retry.cancel();
  if (impl_->conn.connected()) {
    impl_->conn.disconnect(reason, std::move(props));
    impl_->flush();
  } else {
    impl_->attempting = false;
    impl_->timeout.cancel();
    impl_->teardown();
  }
}

bool AsyncClient::connected() const { return impl_->conn.connected(); }
std::size_t AsyncClient::pending() const {
  return impl_->conn.pending_messages() + impl_->unwritten_qos0.size() + impl_->writing_qos0.size();
}
std::size_t AsyncClient::pending_bytes() const { return impl_->conn.pending_bytes(); }
const std::string& AsyncClient::client_id() const { return impl_->conn.client_id(); }

}  // namespace tern
