#include "net/server.hpp"

#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <utility>

#include <boost/asio.hpp>
#include <functional>
#include <future>
#include <optional>
#include <thread>
#include <unordered_map>

#include "broker/auth.hpp"
#include "broker/shard.hpp"
#include "codec/websocket.hpp"
#include "core/log.hpp"
#include "net/tls.hpp"
#include "net/ws_handshake.hpp"

namespace tern::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using protocol::Clock;
using protocol::ServerConnection;

namespace {

constexpr std::size_t kReadBuffer = 64 * 1024;
// How long the acceptor waits after accept(2) failed for lack of file descriptors.
constexpr std::chrono::milliseconds kAcceptBackoff{100};

// $SYS/broker/tern/limits/...: a limit hit on the acceptor thread, the one writer of worker 0's
// acceptor_limits.
void count_acceptor_limit(broker::Broker& b, protocol::Limit l) {
  broker::Stats::add(b.stats(0).acceptor_limits[static_cast<std::size_t>(l)], 1);
}

struct Worker;

// A WebSocket connection's framing state (plain MQTT connections have none).
struct WsState {
  codec::WsFramer framer;
  std::uint8_t header[10]{};  // of the data frame being written
  std::string control;        // pongs and the close frame being written
  bool close_written = false;
};

// WebSocket close code for the end of an MQTT connection.
std::uint16_t ws_close_code(protocol::CloseCause cause) {
  return cause == protocol::CloseCause::kProtocolError ? codec::WsFramer::kProtocolError : codec::WsFramer::kNormal;
}

// One client socket and its protocol state; owned by one worker.
struct Conn : std::enable_shared_from_this<Conn> {
  Conn(Worker& w, tcp::socket s, ServerConnection::State, std::string peer);
  Worker& worker;
  tcp::socket sock;
  ServerConnection proto;
  protocol::OutBuffer writing;
  std::vector<asio::const_buffer> iov;
  bool write_active = false;
  bool dirty = false;
  bool parked = false;          // paused by back-pressure, not being read
  bool in_paused_list = false;
  bool finished = false;
  protocol::ConnCounters counted;  // the part of proto.counters() already added to the worker's Stats
  std::unique_ptr<WsState> ws;     // set on WebSocket listeners' connections
  std::unique_ptr<TlsFilter> tls;  // set on TLS listeners' connections
};

struct Worker final : broker::WorkerIo {
  Worker(broker::Broker& b, unsigned index)
      : broker(b), shard(b.shard(index)), stats(b.stats(index)), ticker(io), pause_timer(io), rbuf(kReadBuffer) {
    shard.set_io(this);
  }

  void wake() override {
    asio::post(io, [this] {
      shard.drain_inbox();
      after_event();
    });
  }

  void output_ready(ServerConnection& c) override {
    auto* conn = static_cast<Conn*>(c.transport);
    if (conn && !conn->dirty) {
      conn->dirty = true;
      dirty.push_back(conn);
    }
  }

  void start() {
    arm_ticker();
    thread = std::thread([this] { io.run(); });
  }

  void arm_ticker() {
    ticker.expires_after(std::chrono::seconds(1));
    ticker.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      auto now = Clock::now();
      for (auto& [p, c] : conns) {
        c->proto.on_tick(now);
        count(*c);
      }
      sample_sys(now);
      // tick() ends no session but expired ones, so the sessions it removed are $SYS clients/expired.
      const std::size_t sessions = shard.session_count();
      shard.tick(now);
      if (shard.session_count() < sessions) broker::Stats::add(stats.clients_expired, sessions - shard.session_count());
      after_event();
      arm_ticker();
    });
  }

  // $SYS: adds what the connection counted since the last call to this worker's Stats. Once a second
  // and when the connection ends, so the message path bumps only the connection's plain integers.
  void count(Conn& c) {
    using broker::Stats;
    const protocol::ConnCounters& n = c.proto.counters();
    protocol::ConnCounters& o = c.counted;
    Stats::add(stats.packets_received, n.packets_in - o.packets_in);
    Stats::add(stats.packets_sent, n.packets_out - o.packets_out);
    Stats::add(stats.publish_received, n.publish_in - o.publish_in);
    Stats::add(stats.publish_bytes_received, n.publish_bytes_in - o.publish_bytes_in);
    Stats::add(stats.publish_sent, n.publish_out - o.publish_out);
    Stats::add(stats.publish_bytes_sent, n.publish_bytes_out - o.publish_bytes_out);
    Stats::add(stats.connects, n.connects - o.connects);
    o = n;
    if (protocol::LimitHits* hits = c.proto.limit_hits()) {
      for (std::size_t i = 0; i < protocol::kLimitCount; ++i) Stats::add(stats.limits[i], hits->n[i]);
      hits->n.fill(0);
    }
  }

  // $SYS gauges that need a walk over this worker's sessions, every sys_interval (on worker 0 in the
  // same tick as, and just before, Shard::publish_sys, whose clock this follows).
  void sample_sys(Clock::time_point now) {
    const unsigned interval = broker.config().sys_interval;
    if (interval == 0 || now - last_sys_sample < std::chrono::seconds(interval)) return;
    last_sys_sample = now;
    broker::sample_worker(shard, broker.router().has_shared(), stats);
  }

  // Runs after every batch of work: hand cross-worker deliveries over, then write what is pending.
  void after_event() {
    for (;;) {
      shard.flush_store();  // before any delivery reaches another worker
      shard.flush_outboxes();
      while (!dirty.empty()) {
        std::vector<Conn*> batch;
        batch.swap(dirty);
        for (Conn* c : batch) {
          c->dirty = false;
          flush(*c);
        }
      }
      if (resumable.empty()) break;
      run_resumable();
    }
  }

  void adopt(int fd, bool v6, std::string peer, std::string initial, std::unique_ptr<WsState> ws,
             std::unique_ptr<TlsFilter> tls, std::optional<std::string> identity, int listener) {
    tcp::socket s(io);
    boost::system::error_code ec;
    s.assign(v6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (ec) {
      ::close(fd);
      release(listener);
      return;
    }
    s.non_blocking(true, ec);
    if (broker.config().set_tcp_nodelay) s.set_option(tcp::no_delay(true), ec);
    auto c = std::make_shared<Conn>(*this, std::move(s), ServerConnection::State::kAwaitConnect, std::move(peer));
    c->ws = std::move(ws);
    c->tls = std::move(tls);
    c->proto.listener = listener;  // per_listener_settings: its security files
    if (identity) c->proto.set_transport_identity(std::move(*identity));
    conns.emplace(c.get(), c);
    if (!initial.empty()) {
      c->proto.on_bytes(reinterpret_cast<const std::uint8_t*>(initial.data()), initial.size(), Clock::now());
      broker::Stats::add(stats.bytes_received, initial.size());
    }
    output_ready(c->proto);
    after_event();
    continue_reading(c);
  }

  // Reads on, unless back-pressure paused the connection: then it is parked until the congested
  // subscriber's worker says it drained (resume()). A slow safety timer also retries parked
  // connections, so a lost signal can only delay a publisher, never stall it.
  void continue_reading(const std::shared_ptr<Conn>& c) {
    if (c->proto.closed() || c->finished) return;
    if (!c->proto.paused()) {
      start_read(c);
      return;
    }
    c->parked = true;
    if (!c->in_paused_list) {
      c->in_paused_list = true;
      paused.push_back(c);
    }
    if (!pause_armed) {
      pause_armed = true;
      pause_timer.expires_after(std::chrono::milliseconds(250));
      pause_timer.async_wait([this](boost::system::error_code ec) {
        pause_armed = false;
        if (ec) return;
        retry_paused();
      });
    }
    if (auto until = c->proto.throttled_until(); until != Clock::time_point{}) arm_throttle(until);
  }

  // messages_rate / bytes_rate: one timer per worker, set to the earliest time a rate-limited parked
  // connection may be read again. Only connections whose time has come are resumed (a back-pressure
  // pause waits for its own signal); the timer is then set for the next one.
  void arm_throttle(Clock::time_point at) {
    if (throttle_armed && throttle_at <= at) return;
    throttle_armed = true;
    throttle_at = at;
    throttle_timer.expires_at(at);  // a wait pending for a later time ends with operation_aborted
    throttle_timer.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      throttle_armed = false;
      auto now = Clock::now();
      Clock::time_point next{};
      for (auto& c : paused) {
        auto until = c->proto.throttled_until();
        if (!c->parked || c->finished || until == Clock::time_point{}) continue;
        if (until <= now) {
          resumable.push_back(c);
        } else if (next == Clock::time_point{} || until < next) {
          next = until;
        }
      }
      if (next != Clock::time_point{}) arm_throttle(next);
      after_event();
    });
  }

  void resume(ServerConnection& pc) override {
    auto* conn = static_cast<Conn*>(pc.transport);
    if (conn && conn->parked && !conn->finished) resumable.push_back(conn->shared_from_this());
  }

  // Runs the connections whose back-pressure ended (from after_event: never inside a protocol call).
  void run_resumable() {
    std::vector<std::shared_ptr<Conn>> batch;
    batch.swap(resumable);
    auto now = Clock::now();
    for (auto& c : batch) {
      if (c->finished || !c->parked) continue;
      c->parked = false;
      c->proto.resume(now);
      output_ready(c->proto);
      continue_reading(c);
    }
  }

  void retry_paused() {
    std::vector<std::shared_ptr<Conn>> batch;
    batch.swap(paused);
    for (auto& c : batch) {
      c->in_paused_list = false;
      if (c->parked) resumable.push_back(c);
    }
    after_event();
  }

  void start_read(const std::shared_ptr<Conn>& c) {
    c->sock.async_wait(tcp::socket::wait_read, [this, c](boost::system::error_code ec) {
      if (c->finished) return;
      if (ec) {
        c->proto.on_transport_closed();
        output_ready(c->proto);
        after_event();
        return;
      }
      on_readable(c);
    });
  }

  void on_readable(const std::shared_ptr<Conn>& c) {
    auto now = Clock::now();
    // Read into the worker's buffer; the connection keeps only an unfinished packet's bytes.
    for (int i = 0; i < 8 && !c->proto.closed() && !c->proto.paused(); ++i) {
      boost::system::error_code ec;
      std::size_t n = c->sock.read_some(asio::buffer(rbuf), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec || n == 0) {
        c->proto.on_transport_closed();
        break;
      }
      broker::Stats::add(stats.bytes_received, n);
      if (c->tls) {
        on_tls_bytes(*c, n, now);
      } else if (c->ws) {
        on_ws_bytes(*c, rbuf.data(), n, now);
      } else {
        c->proto.on_bytes(rbuf.data(), n, now);
      }
      if (n < rbuf.size()) break;
    }
    output_ready(c->proto);
    after_event();
    continue_reading(c);
  }

  // TLS records read into rbuf: decrypted into tlsbuf (the worker's, like rbuf), then on to the
  // WebSocket framing or the protocol. The end of the TLS stream ends the connection.
  void on_tls_bytes(Conn& c, std::size_t n, Clock::time_point now) {
    TlsFilter& t = *c.tls;
    if (tlsbuf.empty()) tlsbuf.resize(kReadBuffer);
    t.push(rbuf.data(), n);
    while (std::size_t m = t.read(tlsbuf.data(), tlsbuf.size())) {
      if (c.proto.closed()) continue;  // the rest is only drained
      if (c.ws) {
        on_ws_bytes(c, tlsbuf.data(), m, now);
      } else {
        c.proto.on_bytes(tlsbuf.data(), m, now);
      }
    }
    if (t.input() == TlsFilter::Input::kOpen) return;
    if (t.input() == TlsFilter::Input::kFailed && !c.proto.closed()) {
      const std::string& who = c.proto.client_id().empty() ? c.proto.peer() : c.proto.client_id();
      log::write(log::kNotice, fmt::format("Client {} disconnected: TLS error: {}.", who, t.error()));
    }
    c.proto.on_transport_closed();
  }

  // WebSocket frames (read into rbuf, or decrypted into tlsbuf): their MQTT bytes go to the protocol;
  // a close or a framing error ends the connection [MQTT-6.0.0-1].
  void on_ws_bytes(Conn& c, const std::uint8_t* data, std::size_t n, Clock::time_point now) {
    wsbuf.clear();
    const bool open = c.ws->framer.feed(data, n, wsbuf);
    if (!wsbuf.empty()) c.proto.on_bytes(reinterpret_cast<const std::uint8_t*>(wsbuf.data()), wsbuf.size(), now);
    if (open) return;
    if (c.ws->framer.error().empty()) {
      c.proto.on_transport_closed();
    } else {
      c.proto.on_transport_error(c.ws->framer.error());
    }
  }

  void flush(Conn& c) {
    if (c.finished || c.write_active) return;
    auto& out = c.proto.out();
    WsState* ws = c.ws.get();
    TlsFilter* tls = c.tls.get();
    if (ws) {
      if (ws->close_written) out.clear();  // nothing may follow a close frame
      if (c.proto.closed()) ws->framer.close(ws_close_code(c.proto.close_cause()));
    }
    if (out.empty() && !(ws && ws->framer.has_control())) {
      if (tls && c.proto.closed()) tls->close();  // close_notify (once) before the socket closes
      if (!(tls && tls->has_output())) {
        if (c.proto.closed()) finish(c);
        return;
      }
    }
    std::swap(c.writing, out);
    c.iov.clear();
    std::size_t total = c.writing.size();
    if (ws && !c.writing.empty()) {
      // All that is queued goes out as one binary frame [MQTT-6.0.0-1]; the receiver does not rely
      // on packets and frames lining up [MQTT-6.0.0-2].
      const std::size_t header = codec::WsFramer::binary_header(c.writing.size(), ws->header);
      c.iov.emplace_back(ws->header, header);
      total += header;
    }
    std::size_t pos = 0;
    for (auto& sp : c.writing.splices) {
      if (sp.offset > pos) c.iov.emplace_back(c.writing.bytes.data() + pos, sp.offset - pos);
      c.iov.emplace_back(sp.msg->payload.data(), sp.msg->payload.size());
      pos = sp.offset;
    }
    if (c.writing.bytes.size() > pos) c.iov.emplace_back(c.writing.bytes.data() + pos, c.writing.bytes.size() - pos);
    if (ws) {
      ws->control.clear();
      ws->framer.take_control(ws->control);
      if (ws->framer.closed()) ws->close_written = true;
      if (!ws->control.empty()) c.iov.emplace_back(ws->control.data(), ws->control.size());
      total += ws->control.size();
    }
    if (tls) {
      // The gather list is plaintext: it is encrypted, gathered into whole records, and the records
      // are written instead. A TLS connection thus writes one buffer.
      tls->begin_write();
      for (const auto& b : c.iov) tls->write(b.data(), b.size());
      tls->end_write();
      if (c.proto.closed()) tls->close();
      c.writing.clear();
      const std::string& records = tls->begin_send();
      c.iov.clear();
      c.iov.emplace_back(records.data(), records.size());
      total = records.size();
    }
    boost::system::error_code ec;
    std::size_t n = 0;
    // Try to write at once: the socket buffer usually has room, and that saves a trip through the
    // reactor. Asio writes at most 64 buffers per call, so loop while progress is made.
    while (n < total) {
      std::size_t w = c.sock.write_some(consumed(c.iov, n), ec);
      if (ec) break;
      n += w;
    }
    broker::Stats::add(stats.bytes_sent, n);
    if (n == total) {
      c.writing.clear();
      if (tls) tls->sent();
      if (!c.proto.out().empty() || c.proto.closed() || (tls && tls->has_output())) flush(c);
      return;
    }
    if (ec != asio::error::would_block && ec != asio::error::try_again) {
      c.writing.clear();
      if (tls) tls->sent();
      c.proto.on_transport_closed();
      finish(c);
      return;
    }
    c.write_active = true;
    auto rest = consumed(c.iov, n);
    asio::async_write(c.sock, rest, [this, self = c.shared_from_this()](boost::system::error_code ec2, std::size_t w) {
      self->write_active = false;
      self->writing.clear();
      if (self->tls) self->tls->sent();
      broker::Stats::add(stats.bytes_sent, w);
      if (self->finished) return;
      if (ec2) {
        self->proto.on_transport_closed();
        finish(*self);
        after_event();
        return;
      }
      flush(*self);
      after_event();
    });
  }

  // The buffers of `iov` without their first `skip` bytes.
  static std::vector<asio::const_buffer> consumed(const std::vector<asio::const_buffer>& iov, std::size_t skip) {
    std::vector<asio::const_buffer> out;
    out.reserve(iov.size());
    for (const auto& b : iov) {
      if (skip >= b.size()) {
        skip -= b.size();
        continue;
      }
      out.push_back(b + skip);
      skip = 0;
    }
    return out;
  }

  // A connection handed to this worker has ended: its place in the worker's load and in its
  // listener's max_connections count is free.
  void release(int listener) {
    live.fetch_sub(1, std::memory_order_relaxed);
    if (listener_live && listener >= 0) listener_live[listener].fetch_sub(1, std::memory_order_relaxed);
  }

  void finish(Conn& c) {
    if (c.finished) return;
    if (!c.proto.closed()) c.proto.on_transport_closed();
    c.finished = true;
    boost::system::error_code ec;
    c.sock.shutdown(tcp::socket::shutdown_both, ec);
    c.sock.close(ec);
    c.proto.transport = nullptr;
    release(c.proto.listener);
    count(c);
    conns.erase(&c);  // may destroy c
  }

  void publish_wills() {
    for (auto& [p, c] : conns) {
      if (c->proto.state() == ServerConnection::State::kConnected) shard.publish_will(c->proto);
    }
    after_event();
  }

  void shutdown_all() {
    for (auto& [p, c] : conns) {
      c->proto.disconnect(Reason::kServerShuttingDown, protocol::CloseCause::kServerShutdown);
      output_ready(c->proto);
    }
    after_event();
  }

  broker::Broker& broker;
  broker::Shard& shard;
  broker::Stats& stats;
  asio::io_context io{1};
  asio::steady_timer ticker;
  asio::steady_timer pause_timer;
  bool pause_armed = false;
  asio::steady_timer throttle_timer{io};  // rate limits (arm_throttle)
  bool throttle_armed = false;
  Clock::time_point throttle_at{};
  std::vector<std::shared_ptr<Conn>> paused;     // parked connections, for the safety timer
  std::vector<std::shared_ptr<Conn>> resumable;  // back-pressure over; run from after_event
  std::thread thread;
  std::vector<std::uint8_t> rbuf;
  std::string wsbuf;  // MQTT bytes unwrapped from WebSocket frames
  std::vector<std::uint8_t> tlsbuf;  // plaintext decrypted from TLS records (sized on first use)
  std::unordered_map<Conn*, std::shared_ptr<Conn>> conns;
  std::vector<Conn*> dirty;
  std::atomic<long> live{0};
  // Connections open on each listener, pending or handed to a worker (max_connections is per
  // listener), indexed like the configuration's listeners; shared by all workers and the acceptor.
  std::atomic<long>* listener_live = nullptr;
  Clock::time_point last_sys_sample{};
};

Conn::Conn(Worker& w, tcp::socket s, ServerConnection::State, std::string peer)
    : worker(w), sock(std::move(s)), proto(w.shard, w.broker.limits(), std::move(peer), Clock::now()) {
  proto.transport = this;
}

// A connection whose CONNECT is being read on the acceptor thread, to learn its client id and so
// the worker that owns its session.
struct Pending : std::enable_shared_from_this<Pending> {
  Pending(asio::io_context& io, tcp::socket s) : sock(std::move(s)), timer(io) {}
  ~Pending() {
    if (slot) slot->fetch_sub(1, std::memory_order_relaxed);
  }
  Pending(const Pending&) = delete;
  Pending& operator=(const Pending&) = delete;
  tcp::socket sock;
  // Its place in its listener's connection count (max_connections): given back when it ends before
  // a worker takes it; a worker's connection gives it back when it finishes.
  std::atomic<long>* slot = nullptr;
  asio::steady_timer timer;
  std::string buf;
  std::string peer;
  bool v6 = false;
  bool done = false;
  int listener = -1;  // index in the configuration's listeners
  // WebSocket listeners: the HTTP handshake, then the framing state that moves to the worker.
  std::unique_ptr<WsHandshake> handshake;
  std::unique_ptr<WsState> ws;
  // TLS listeners: the TLS state, which moves to the worker too, and the name it authenticated when
  // the listener takes usernames from TLS.
  const TlsContext* tls_ctx = nullptr;
  std::unique_ptr<TlsFilter> tls;
  std::optional<std::string> identity;
  bool tls_started = false;  // bytes of a handshake arrived
  std::string out;           // bytes being written (TLS handshake, HTTP replies)
};

// What a pending connection does once the bytes it owes the client are written.
enum class Next { kRead, kRoute, kClose };

std::string peer_string(const tcp::endpoint& ep) {
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

}  // namespace

struct Server::Impl {
  Impl(const config::Config& c, broker::Broker& b) : cfg(c), broker(b), signals(io) {}

  const config::Config& cfg;
  broker::Broker& broker;
  // Before the I/O objects: connections (pending ones in io's queue too) refer to these until the end.
  std::vector<std::unique_ptr<TlsContext>> tls_contexts;  // one per TLS listener
  std::vector<const config::Listener*> tls_listeners;     // the listener of each
  // PSK keys of earlier reloads: a handshake that started before a reload may still look a key up.
  std::vector<std::unordered_map<std::string, PskKeys>> old_psk_keys;
  std::unordered_map<std::string, PskKeys> psk_keys;      // by psk_file path
  asio::io_context io{1};
  asio::signal_set signals;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::vector<std::unique_ptr<Worker>> workers;
  // max_connections of each listener (its setting, else the open-file limit minus a reserve), and
  // the connections each has open (as Mosquitto, from accept on: also those that have not sent
  // CONNECT yet).
  std::vector<std::size_t> max_connections;
  std::unique_ptr<std::atomic<long>[]> listener_live;
  unsigned next_worker = 0;
  bool accept_starved = false;  // accept(2) is failing for lack of descriptors (logged once per episode)
  struct ConnRate {
    TokenBucket<Clock::time_point> bucket;
    bool throttled = false;  // logged once per episode
  };
  std::unordered_map<const config::Listener*, ConnRate> conn_rates;  // max_conn_rate, per listener

  void open(const config::Listener& l) {
    const TlsContext* tls = nullptr;
    if (l.tls()) {
      // Certificates and keys are read now, before privileges are dropped, as Mosquitto does.
      const PskKeys* psk = nullptr;
      if (!l.psk_hint.empty()) {
        const std::string& path = cfg.psk_file_of(&l);
        auto it = psk_keys.find(path);
        if (it == psk_keys.end()) it = psk_keys.emplace(path, load_psk_file(path)).first;
        psk = &it->second;
      }
      try {
        tls_contexts.push_back(std::make_unique<TlsContext>(l, psk));
        tls_listeners.push_back(&l);
      } catch (const std::exception& e) {
        throw std::runtime_error(fmt::format("listener {}{}{}: {}", l.port, l.bind_address.empty() ? "" : " ",
                                             l.bind_address, e.what()));
      }
      tls = tls_contexts.back().get();
    }
    std::vector<tcp::endpoint> eps;
    if (l.bind_address.empty()) {
      if (l.socket_domain != "ipv6") eps.emplace_back(tcp::v4(), l.port);
      if (l.socket_domain != "ipv4") eps.emplace_back(tcp::v6(), l.port);
    } else {
      tcp::resolver r(io);
      boost::system::error_code ec;
      auto res = r.resolve(l.bind_address, std::to_string(l.port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
      if (ec) throw std::runtime_error(fmt::format("cannot resolve bind address {}: {}", l.bind_address, ec.message()));
      for (auto& e : res) {
        if (l.socket_domain == "ipv4" && !e.endpoint().address().is_v4()) continue;
        if (l.socket_domain == "ipv6" && !e.endpoint().address().is_v6()) continue;
        eps.push_back(e.endpoint());
      }
    }
    std::uint16_t port = l.port;
    for (auto ep : eps) {
      if (port != 0) ep.port(port);
      auto a = std::make_unique<tcp::acceptor>(io);
      boost::system::error_code ec;
      a->open(ep.protocol(), ec);
      if (ec) continue;  // e.g. IPv6 disabled
      a->set_option(tcp::acceptor::reuse_address(true), ec);
      if (ep.address().is_v6()) a->set_option(asio::ip::v6_only(true), ec);
      a->bind(ep, ec);
      if (ec) {
        if (ep.address().is_v6() && (ec == boost::system::errc::address_not_available)) continue;
        throw std::runtime_error(fmt::format("cannot listen on {} port {}: {}", ep.address().to_string(), ep.port(), ec.message()));
      }
      a->listen(asio::socket_base::max_listen_connections, ec);
      if (ec) throw std::runtime_error(fmt::format("cannot listen on port {}: {}", ep.port(), ec.message()));
      port = a->local_endpoint().port();
      // Mosquitto names a websockets listener by its protocol, an MQTT one by its address family.
      log::write(log::kNotice, fmt::format("Opening {} listen socket on port {}.",
                                           l.protocol == "websockets" ? "websockets"
                                           : ep.address().is_v6()     ? "ipv6"
                                                                      : "ipv4",
                                           port));
      accept_loop(*a, port, &l, tls);
      acceptors.push_back(std::move(a));
    }
  }

  void accept_loop(tcp::acceptor& a, std::uint16_t port, const config::Listener* l, const TlsContext* tls) {
    a.async_accept([this, &a, port, l, tls](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (ec && out_of_descriptors(ec)) {
        // The connection stays in the listen queue, so accepting again at once would fail again at once
        // and spin this thread: wait until a connection ends and frees its descriptor.
        count_acceptor_limit(broker, protocol::Limit::kOpenFiles);
        if (!accept_starved) {
          accept_starved = true;
          rlimit rl{};
          getrlimit(RLIMIT_NOFILE, &rl);
          log::write(log::kWarning, fmt::format("Cannot accept connections: {} (open-file limit {}); retrying every "
                                                "{} ms.", ec.message(), rl.rlim_cur, kAcceptBackoff.count()));
        }
        accept_later(a, port, l, tls, kAcceptBackoff);
        return;
      }
      if (!ec) {
        if (accept_starved) {
          accept_starved = false;
          log::write(log::kNotice, "Accepting connections again.");
        }
        on_accept(std::move(s), port, *l, tls);
        // max_conn_rate (EMQX's name and behaviour): above it the listener stops accepting until its
        // bucket has a token again; new connections wait in the kernel's listen queue meanwhile.
        if (const Rate& rate = cfg.max_conn_rate_of(*l); rate.on()) {
          const auto now = Clock::now();
          ConnRate& r = conn_rates[l];
          const auto from = r.bucket.take(rate, 1, now);
          if (from > now) {
            count_acceptor_limit(broker, protocol::Limit::kMaxConnRate);
            if (!r.throttled) {
              const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(rate.period).count();
              log::write(log::kNotice, fmt::format("Listener on port {} reached max_conn_rate ({} per {} ms): "
                                                   "accepting more slowly.", port, rate.amount, ms));
            }
            r.throttled = true;
            accept_later(a, port, l, tls, from - now);
            return;
          }
          r.throttled = false;
        }
      }
      accept_loop(a, port, l, tls);
    });
  }

  // accept_loop again after `delay`.
  void accept_later(tcp::acceptor& a, std::uint16_t port, const config::Listener* l, const TlsContext* tls,
                    Clock::duration delay) {
    auto t = std::make_shared<asio::steady_timer>(io, delay);  // rare: only when a limit is hit
    t->async_wait([this, t, &a, port, l, tls](boost::system::error_code ec) {
      if (ec || !a.is_open()) return;
      accept_loop(a, port, l, tls);
    });
  }

  // accept(2) errors that mean "no descriptor or kernel memory left", not "this connection failed".
  static bool out_of_descriptors(const boost::system::error_code& ec) {
    return ec == boost::system::errc::too_many_files_open || ec == boost::system::errc::too_many_files_open_in_system ||
           ec == boost::system::errc::no_buffer_space || ec == boost::system::errc::not_enough_memory;
  }

  void on_accept(tcp::socket s, std::uint16_t port, const config::Listener& l, const TlsContext* tls) {
    boost::system::error_code ec;
    // $SYS load/sockets: every accepted socket, as Mosquitto counts them. The acceptor thread is this
    // field's one writer (in worker 0's Stats).
    broker::Stats::add(broker.stats(0).sockets_accepted, 1);
    auto ep = s.remote_endpoint(ec);
    if (ec) return;
    const std::size_t li = static_cast<std::size_t>(&l - cfg.listeners.data());
    // Per listener, as Mosquitto's max_connections.
    if (static_cast<std::size_t>(listener_live[li].load(std::memory_order_relaxed)) >= max_connections[li]) {
      count_acceptor_limit(broker, protocol::Limit::kMaxConnections);
      log::write(log::kNotice, fmt::format("Client connection from {} denied: max_connections exceeded.", ep.address().to_string()));
      return;
    }
    auto p = std::make_shared<Pending>(io, std::move(s));
    p->listener = static_cast<int>(li);
    p->slot = &listener_live[li];
    p->slot->fetch_add(1, std::memory_order_relaxed);
    p->peer = peer_string(ep);
    p->v6 = ep.address().is_v6();
    if (l.protocol == "websockets") {
      p->handshake = std::make_unique<WsHandshake>(
          cfg.websockets_headers_size != 0 ? cfg.websockets_headers_size : 4096, l.http_dir);
    }
    if (tls) {
      p->tls_ctx = tls;
      p->tls = std::make_unique<TlsFilter>(*tls);
    }
    if (cfg.connection_messages) {
      log::write(log::kNotice, fmt::format("New connection from {} on port {}.", p->peer, port));
    }
    // connect_timeout bounds the TLS handshake, the WebSocket handshake and the CONNECT together.
    p->timer.expires_after(std::chrono::seconds(cfg.connect_timeout));
    p->timer.async_wait([this, p, secs = cfg.connect_timeout](boost::system::error_code e) {
      if (e || p->done) return;
      p->done = true;
      count_acceptor_limit(broker, protocol::Limit::kConnectTimeout);
      if (p->tls && !p->tls->established()) {
        log::write(log::kNotice, fmt::format("Client {} disconnected: TLS handshake failed: not completed within "
                                             "connect_timeout ({} s).", p->peer, secs));
      } else {
        log::write(log::kNotice, fmt::format("Client {} did not send CONNECT in time, disconnecting.", p->peer));
      }
      boost::system::error_code ignored;
      p->sock.close(ignored);
    });
    read_connect(p);
  }

  void read_connect(const std::shared_ptr<Pending>& p) {
    auto chunk = std::make_shared<std::array<char, 4096>>();
    p->sock.async_read_some(asio::buffer(*chunk), [this, p, chunk](boost::system::error_code ec, std::size_t n) {
      if (p->done) return;
      if (ec) {
        p->done = true;
        p->timer.cancel();
        if (p->tls_started && !p->tls->established()) {
          log::write(log::kNotice, fmt::format("Client {} disconnected: TLS handshake failed: the client closed "
                                               "the connection.", p->peer));
        } else {
          log::write(log::kNotice, fmt::format("Client <unknown> closed its connection."));
        }
        return;
      }
      proceed(p, on_pending_bytes(p, chunk->data(), n));
    });
  }

  // Bytes read from a connection before its CONNECT is complete: TLS records, then (or directly) a
  // WebSocket handshake and frames, then MQTT bytes, which collect in p->buf.
  Next on_pending_bytes(const std::shared_ptr<Pending>& p, const char* data, std::size_t n) {
    std::string plain;
    if (p->tls) {
      TlsFilter& t = *p->tls;
      p->tls_started = true;
      t.push(reinterpret_cast<const std::uint8_t*>(data), n);
      if (!t.established()) {
        switch (t.handshake()) {
          case TlsFilter::Step::kMore: return Next::kRead;
          case TlsFilter::Step::kFailed:
            // One line per failed handshake; the alert OpenSSL wrote goes out before the close.
            log::write(log::kNotice,
                       fmt::format("Client {} disconnected: TLS handshake failed: {}.", p->peer, t.error()));
            return Next::kClose;
          case TlsFilter::Step::kDone: break;
        }
        if (p->tls_ctx->identity_as_username()) p->identity = t.identity();
        if (log::enabled(log::kDebug)) {
          log::write(log::kDebug, fmt::format("TLS connection from {}: {}.", p->peer, t.description()));
        }
      }
      std::uint8_t buf[16384];
      while (std::size_t m = t.read(buf, sizeof buf)) plain.append(reinterpret_cast<const char*>(buf), m);
      if (t.input() != TlsFilter::Input::kOpen) {
        if (t.input() == TlsFilter::Input::kFailed) {
          log::write(log::kNotice, fmt::format("Client {} disconnected: TLS error: {}.", p->peer, t.error()));
        } else {
          log::write(log::kNotice, fmt::format("Client <unknown> closed its connection."));
        }
        return Next::kClose;
      }
      if (plain.empty()) return Next::kRead;
      data = plain.data();
      n = plain.size();
    }
    if (p->handshake) return on_ws_bytes(p, data, n);
    p->buf.append(data, n);
    return Next::kRoute;
  }

  // A WebSocket connection before its CONNECT: the HTTP handshake, then frames whose MQTT bytes
  // collect in p->buf.
  Next on_ws_bytes(const std::shared_ptr<Pending>& p, const char* data, std::size_t n) {
    std::string_view frames(data, n);
    if (!p->ws) {
      switch (p->handshake->feed(data, n)) {
        case WsHandshake::Status::kIncomplete: return Next::kRead;
        case WsHandshake::Status::kReject:
          log::write(log::kNotice, fmt::format("WebSocket handshake from {} refused: {}.", p->peer, p->handshake->error()));
          send_pending(p, p->handshake->response());
          return Next::kClose;
        case WsHandshake::Status::kHttpReply: send_pending(p, p->handshake->response()); return Next::kClose;
        case WsHandshake::Status::kUpgrade: break;
      }
      send_pending(p, p->handshake->response());  // 101; written before anything else happens
      if (log::enabled(log::kWebsockets)) {
        log::write(log::kWebsockets, fmt::format("WebSocket connection from {} (subprotocol {}).", p->peer,
                                                 p->handshake->subprotocol().empty() ? "none" : p->handshake->subprotocol()));
      }
      p->ws = std::make_unique<WsState>();
      frames = p->handshake->rest();
    }
    std::string mqtt;
    const bool open = p->ws->framer.feed(reinterpret_cast<const std::uint8_t*>(frames.data()), frames.size(), mqtt);
    p->buf += mqtt;
    if (!open) {
      if (!p->ws->framer.error().empty()) {
        log::write(log::kNotice, fmt::format("Client {} sent a bad WebSocket frame: {}.", p->peer, p->ws->framer.error()));
      }
      std::string close;
      p->ws->framer.take_control(close);
      send_pending(p, close);
      return Next::kClose;
    }
    return p->buf.empty() ? Next::kRead : Next::kRoute;
  }

  // Queues bytes for the client of a pending connection (encrypted on TLS listeners).
  static void send_pending(const std::shared_ptr<Pending>& p, const std::string& bytes) {
    if (!p->tls) {
      p->out += bytes;
      return;
    }
    p->tls->begin_write();
    p->tls->write(bytes.data(), bytes.size());
    p->tls->end_write();
  }

  // Writes what the pending connection owes the client, then goes on. The acceptor thread never
  // blocks on a client that does not read: the write is asynchronous, and the connect timer still
  // closes the socket.
  void proceed(const std::shared_ptr<Pending>& p, Next next) {
    if (p->tls) {
      if (next == Next::kClose) p->tls->close();
      p->out += p->tls->output();
      std::string().swap(p->tls->output());  // the handshake's capacity does not move to the worker
    }
    if (p->out.empty()) {
      act(p, next);
      return;
    }
    asio::async_write(p->sock, asio::buffer(p->out), [this, p, next](boost::system::error_code ec, std::size_t) {
      p->out.clear();
      if (p->done) return;
      if (ec) {
        close_pending(p);
        return;
      }
      act(p, next);
    });
  }

  void act(const std::shared_ptr<Pending>& p, Next next) {
    switch (next) {
      case Next::kRead: read_connect(p); return;
      case Next::kRoute: route_connect(p); return;
      case Next::kClose: {
        boost::system::error_code ignored;
        p->sock.shutdown(tcp::socket::shutdown_send, ignored);
        close_pending(p);
        return;
      }
    }
  }

  // Hands the connection to the worker of its client id once the CONNECT is complete.
  void route_connect(const std::shared_ptr<Pending>& p) {
    codec::FrameHeader h;
    codec::DecodeError err;
    // max_connect_size: a larger CONNECT is not read on (kError); the worker's protocol state, given the
    // bytes so far, refuses it (5.0: CONNACK 0x95) and counts it.
    const auto& lim = broker.limits();
    const std::uint32_t max_connect =
        lim.max_connect_size == 0 ? lim.max_packet_size
                                  : (lim.max_packet_size == 0 ? lim.max_connect_size
                                                              : std::min(lim.max_connect_size, lim.max_packet_size));
    auto st = codec::parse_frame(reinterpret_cast<const std::uint8_t*>(p->buf.data()), p->buf.size(), max_connect,
                                 h, err);
    // Not a CONNECT (the first byte tells): the worker's protocol state closes it at once.
    const bool connect_byte = !p->buf.empty() && (static_cast<std::uint8_t>(p->buf[0]) >> 4) == 1;
    if (st == codec::FrameStatus::kIncomplete && connect_byte) {
      read_connect(p);
      return;
    }
    unsigned w = least_loaded();
    if (st == codec::FrameStatus::kComplete && h.type() == codec::PacketType::kConnect) {
      codec::Packet pkt;
      auto e = codec::decode_packet(h, reinterpret_cast<const std::uint8_t*>(p->buf.data()) + h.header_size,
                                    codec::Version::kV311, pkt, lim.max_packet_properties);
      const auto* c = std::get_if<codec::Connect>(&pkt);
      if (!e && c && !c->client_id.empty()) w = broker.owner_of(c->client_id);
    }
    hand_over(p, w);
  }

  void close_pending(const std::shared_ptr<Pending>& p) {
    p->done = true;
    p->timer.cancel();
    boost::system::error_code ignored;
    p->sock.close(ignored);
  }

  unsigned least_loaded() {
    unsigned best = next_worker++ % workers.size();
    for (unsigned i = 0; i < workers.size(); ++i) {
      if (workers[i]->live.load(std::memory_order_relaxed) < workers[best]->live.load(std::memory_order_relaxed)) best = i;
    }
    return best;
  }

  // SIGHUP. Everything is read first; only when every file loads does the new set replace the old one
  // (then each worker checks its clients again), so a broken file changes nothing.
  void reload() {
    log::write(log::kNotice, "Reloading config.");
    std::shared_ptr<const broker::Auth> auth;
    std::unordered_map<std::string, PskKeys> psk;
    std::vector<std::unique_ptr<TlsContext>> fresh;
    try {
      auth = broker::Auth::load(cfg);
      for (const config::Listener* l : tls_listeners) {
        const PskKeys* keys = nullptr;
        if (!l->psk_hint.empty()) {
          const std::string& path = cfg.psk_file_of(l);
          auto it = psk.find(path);
          if (it == psk.end()) it = psk.emplace(path, load_psk_file(path)).first;
          keys = &it->second;
        }
        try {
          fresh.push_back(std::make_unique<TlsContext>(*l, keys));
        } catch (const std::exception& e) {
          throw std::runtime_error(fmt::format("listener {}: {}", l->port, e.what()));
        }
      }
    } catch (const std::exception& e) {
      log::write(log::kError,
                 fmt::format("Error: reload failed: {}; the previous security files stay in force.", e.what()));
      return;
    }
    // Certificates, keys, CAs, CRLs and PSK keys for new connections.
    for (std::size_t i = 0; i < fresh.size(); ++i) tls_contexts[i]->replace_with(*fresh[i]);
    old_psk_keys.push_back(std::move(psk_keys));
    psk_keys = std::move(psk);
    broker.set_auth(auth);
    for (auto& w : workers) {
      asio::post(w->io, [worker = w.get(), auth] {
        worker->shard.apply_auth(auth);
        worker->after_event();
      });
    }
  }

  void hand_over(const std::shared_ptr<Pending>& p, unsigned w) {
    p->done = true;
    p->timer.cancel();
    boost::system::error_code ec;
    int fd = p->sock.release(ec);
    if (ec) return;
    Worker* worker = workers[w].get();
    worker->live.fetch_add(1, std::memory_order_relaxed);
    p->slot = nullptr;  // the place in max_connections moves to the worker's connection
    asio::post(worker->io, [worker, fd, v6 = p->v6, peer = std::move(p->peer), buf = std::move(p->buf),
                            ws = std::move(p->ws), tls = std::move(p->tls),
                            identity = std::move(p->identity), listener = p->listener]() mutable {
      worker->adopt(fd, v6, std::move(peer), std::move(buf), std::move(ws), std::move(tls), std::move(identity),
                    listener);
    });
  }
};

Server::Server(const config::Config& cfg, broker::Broker& broker) : impl_(std::make_unique<Impl>(cfg, broker)) {
  for (unsigned i = 0; i < broker.workers(); ++i) impl_->workers.push_back(std::make_unique<Worker>(broker, i));
}

Server::~Server() = default;

void Server::bind() {
  for (const auto& l : impl_->cfg.listeners) impl_->open(l);
  if (impl_->acceptors.empty()) throw std::runtime_error("no listener could be opened");
  // Default: the open-file limit minus a reserve for listeners, logs and the store.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  const std::size_t by_files = rl.rlim_cur > 64 ? static_cast<std::size_t>(rl.rlim_cur - 64) : 16;
  const std::size_t n = impl_->cfg.listeners.size();
  impl_->listener_live = std::make_unique<std::atomic<long>[]>(n);
  for (const auto& l : impl_->cfg.listeners) {
    impl_->max_connections.push_back(l.max_connections != 0 ? l.max_connections : by_files);
  }
  for (auto& w : impl_->workers) w->listener_live = impl_->listener_live.get();
}

int Server::run() {
  auto& im = *impl_;
  int stop_signal = 0;
  // SIGHUP: the security files are read again (docs/security.md#reload-sighup), on this thread.
  asio::signal_set hup(im.io, SIGHUP);
  std::function<void()> arm_hup = [&] {
    hup.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      im.reload();
      arm_hup();
    });
  };
  arm_hup();
  im.signals.add(SIGINT);
  im.signals.add(SIGTERM);
  im.signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    stop_signal = sig;
    for (auto& a : im.acceptors) {
      boost::system::error_code ignored;
      a->close(ignored);
    }
    im.io.stop();
  });
  for (auto& w : im.workers) w->start();
  im.io.run();
  log::write(log::kNotice, fmt::format("Tern broker stopping on signal {}.", stop_signal));
  // Graceful stop. First every connected client's will is published (Mosquitto 2.0 does so), and
  // only when all workers have routed them are connections closed, so subscribers on any worker
  // receive them: cross-worker deliveries were posted before the closing task and run first.
  for (auto& w : im.workers) {
    std::promise<void> done;
    auto f = done.get_future();
    asio::post(w->io, [&w, &done] {
      w->publish_wills();
      done.set_value();
    });
    f.wait_for(std::chrono::seconds(2));
  }
  // Then DISCONNECT 0x8B to 5.0 clients, flush, close.
  for (auto& w : im.workers) {
    std::promise<void> done;
    auto f = done.get_future();
    asio::post(w->io, [&w, &done] {
      w->shutdown_all();
      done.set_value();
    });
    f.wait_for(std::chrono::seconds(2));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (auto& w : im.workers) {
    w->io.stop();
    if (w->thread.joinable()) w->thread.join();
  }
  return 0;
}

}  // namespace tern::net
