#include "net/server.hpp"

#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <utility>

#include <boost/asio.hpp>
#include <future>
#include <thread>
#include <unordered_map>

#include "broker/shard.hpp"
#include "codec/websocket.hpp"
#include "core/log.hpp"
#include "net/ws_handshake.hpp"

namespace tern::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using protocol::Clock;
using protocol::ServerConnection;

namespace {

constexpr std::size_t kReadBuffer = 64 * 1024;

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

  void adopt(int fd, bool v6, std::string peer, std::string initial, std::unique_ptr<WsState> ws) {
    tcp::socket s(io);
    boost::system::error_code ec;
    s.assign(v6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (ec) {
      ::close(fd);
      return;
    }
    s.non_blocking(true, ec);
    if (broker.config().set_tcp_nodelay) s.set_option(tcp::no_delay(true), ec);
    auto c = std::make_shared<Conn>(*this, std::move(s), ServerConnection::State::kAwaitConnect, std::move(peer));
    c->ws = std::move(ws);
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
    for (int i = 0; i < 8 && !c->proto.closed(); ++i) {
      boost::system::error_code ec;
      std::size_t n = c->sock.read_some(asio::buffer(rbuf), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec || n == 0) {
        c->proto.on_transport_closed();
        break;
      }
      broker::Stats::add(stats.bytes_received, n);
      if (c->ws) {
        on_ws_bytes(*c, n, now);
      } else {
        c->proto.on_bytes(rbuf.data(), n, now);
      }
      if (n < rbuf.size()) break;
    }
    output_ready(c->proto);
    after_event();
    continue_reading(c);
  }

  // WebSocket frames read into rbuf: their MQTT bytes go to the protocol; a close or a framing error
  // ends the connection [MQTT-6.0.0-1].
  void on_ws_bytes(Conn& c, std::size_t n, Clock::time_point now) {
    wsbuf.clear();
    const bool open = c.ws->framer.feed(rbuf.data(), n, wsbuf);
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
    if (ws) {
      if (ws->close_written) out.clear();  // nothing may follow a close frame
      if (c.proto.closed()) ws->framer.close(ws_close_code(c.proto.close_cause()));
    }
    if (out.empty() && !(ws && ws->framer.has_control())) {
      if (c.proto.closed()) finish(c);
      return;
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
      if (!c.proto.out().empty() || c.proto.closed()) flush(c);
      return;
    }
    if (ec != asio::error::would_block && ec != asio::error::try_again) {
      c.writing.clear();
      c.proto.on_transport_closed();
      finish(c);
      return;
    }
    c.write_active = true;
    auto rest = consumed(c.iov, n);
    asio::async_write(c.sock, rest, [this, self = c.shared_from_this()](boost::system::error_code ec2, std::size_t w) {
      self->write_active = false;
      self->writing.clear();
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

  void finish(Conn& c) {
    if (c.finished) return;
    if (!c.proto.closed()) c.proto.on_transport_closed();
    c.finished = true;
    boost::system::error_code ec;
    c.sock.shutdown(tcp::socket::shutdown_both, ec);
    c.sock.close(ec);
    c.proto.transport = nullptr;
    live.fetch_sub(1, std::memory_order_relaxed);
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
  std::vector<std::shared_ptr<Conn>> paused;     // parked connections, for the safety timer
  std::vector<std::shared_ptr<Conn>> resumable;  // back-pressure over; run from after_event
  std::thread thread;
  std::vector<std::uint8_t> rbuf;
  std::string wsbuf;  // MQTT bytes unwrapped from WebSocket frames
  std::unordered_map<Conn*, std::shared_ptr<Conn>> conns;
  std::vector<Conn*> dirty;
  std::atomic<long> live{0};
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
  tcp::socket sock;
  asio::steady_timer timer;
  std::string buf;
  std::string peer;
  bool v6 = false;
  bool done = false;
  // WebSocket listeners: the HTTP handshake, then the framing state that moves to the worker.
  std::unique_ptr<WsHandshake> handshake;
  std::unique_ptr<WsState> ws;
  std::string reply;  // an HTTP reply being written before the socket closes
};

std::string peer_string(const tcp::endpoint& ep) {
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

}  // namespace

struct Server::Impl {
  Impl(const config::Config& c, broker::Broker& b) : cfg(c), broker(b), signals(io) {}

  const config::Config& cfg;
  broker::Broker& broker;
  asio::io_context io{1};
  asio::signal_set signals;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::vector<std::unique_ptr<Worker>> workers;
  std::size_t max_connections = 0;
  unsigned next_worker = 0;

  void open(const config::Listener& l) {
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
      accept_loop(*a, port, &l);
      acceptors.push_back(std::move(a));
    }
  }

  void accept_loop(tcp::acceptor& a, std::uint16_t port, const config::Listener* l) {
    a.async_accept([this, &a, port, l](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) on_accept(std::move(s), port, *l);
      accept_loop(a, port, l);
    });
  }

  long live_connections() const {
    long n = 0;
    for (auto& w : workers) n += w->live.load(std::memory_order_relaxed);
    return n;
  }

  void on_accept(tcp::socket s, std::uint16_t port, const config::Listener& l) {
    boost::system::error_code ec;
    // $SYS load/sockets: every accepted socket, as Mosquitto counts them. The acceptor thread is this
    // field's one writer (in worker 0's Stats).
    broker::Stats::add(broker.stats(0).sockets_accepted, 1);
    auto ep = s.remote_endpoint(ec);
    if (ec) return;
    if (max_connections != 0 && static_cast<std::size_t>(live_connections()) >= max_connections) {
      log::write(log::kNotice, fmt::format("Client connection from {} denied: max_connections exceeded.", ep.address().to_string()));
      return;
    }
    auto p = std::make_shared<Pending>(io, std::move(s));
    p->peer = peer_string(ep);
    p->v6 = ep.address().is_v6();
    if (l.protocol == "websockets") {
      p->handshake = std::make_unique<WsHandshake>(
          cfg.websockets_headers_size != 0 ? cfg.websockets_headers_size : 4096, l.http_dir);
    }
    if (cfg.connection_messages) {
      log::write(log::kNotice, fmt::format("New connection from {} on port {}.", p->peer, port));
    }
    p->timer.expires_after(std::chrono::seconds(cfg.connect_timeout));
    p->timer.async_wait([p](boost::system::error_code e) {
      if (e || p->done) return;
      p->done = true;
      log::write(log::kNotice, fmt::format("Client {} did not send CONNECT in time, disconnecting.", p->peer));
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
        log::write(log::kNotice, fmt::format("Client <unknown> closed its connection."));
        return;
      }
      if (p->handshake) {
        if (!on_ws_bytes(p, chunk->data(), n)) return;
      } else {
        p->buf.append(chunk->data(), n);
      }
      codec::FrameHeader h;
      codec::DecodeError err;
      auto st = codec::parse_frame(reinterpret_cast<const std::uint8_t*>(p->buf.data()), p->buf.size(),
                                   broker.limits().max_packet_size, h, err);
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
                                      codec::Version::kV311, pkt);
        const auto* c = std::get_if<codec::Connect>(&pkt);
        if (!e && c && !c->client_id.empty()) w = broker.owner_of(c->client_id);
      }
      hand_over(p, w);
    });
  }

  // A WebSocket connection before its CONNECT: the HTTP handshake, then frames whose MQTT bytes
  // collect in p->buf. False when the connection ended or more must be read first.
  bool on_ws_bytes(const std::shared_ptr<Pending>& p, const char* data, std::size_t n) {
    std::string_view frames(data, n);
    if (!p->ws) {
      switch (p->handshake->feed(data, n)) {
        case WsHandshake::Status::kIncomplete: read_connect(p); return false;
        case WsHandshake::Status::kReject:
          log::write(log::kNotice, fmt::format("WebSocket handshake from {} refused: {}.", p->peer, p->handshake->error()));
          reply_and_close(p, p->handshake->response());
          return false;
        case WsHandshake::Status::kHttpReply: reply_and_close(p, p->handshake->response()); return false;
        case WsHandshake::Status::kUpgrade: break;
      }
      // The 101 reply is a few hundred bytes on a fresh socket: it fits the send buffer at once.
      boost::system::error_code ec;
      asio::write(p->sock, asio::buffer(p->handshake->response()), ec);
      if (ec) {
        close_pending(p);
        return false;
      }
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
      reply_and_close(p, close);
      return false;
    }
    if (p->buf.empty()) {
      read_connect(p);
      return false;
    }
    return true;
  }

  void close_pending(const std::shared_ptr<Pending>& p) {
    p->done = true;
    p->timer.cancel();
    boost::system::error_code ignored;
    p->sock.close(ignored);
  }

  // Writes an HTTP reply or a WebSocket close frame, then closes (the connect timer still bounds it).
  void reply_and_close(const std::shared_ptr<Pending>& p, const std::string& bytes) {
    p->reply = bytes;
    asio::async_write(p->sock, asio::buffer(p->reply), [this, p](boost::system::error_code, std::size_t) {
      boost::system::error_code ignored;
      p->sock.shutdown(tcp::socket::shutdown_send, ignored);
      close_pending(p);
    });
  }

  unsigned least_loaded() {
    unsigned best = next_worker++ % workers.size();
    for (unsigned i = 0; i < workers.size(); ++i) {
      if (workers[i]->live.load(std::memory_order_relaxed) < workers[best]->live.load(std::memory_order_relaxed)) best = i;
    }
    return best;
  }

  void hand_over(const std::shared_ptr<Pending>& p, unsigned w) {
    p->done = true;
    p->timer.cancel();
    boost::system::error_code ec;
    int fd = p->sock.release(ec);
    if (ec) return;
    Worker* worker = workers[w].get();
    worker->live.fetch_add(1, std::memory_order_relaxed);
    asio::post(worker->io, [worker, fd, v6 = p->v6, peer = std::move(p->peer), buf = std::move(p->buf),
                            ws = std::move(p->ws)]() mutable {
      worker->adopt(fd, v6, std::move(peer), std::move(buf), std::move(ws));
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
  std::size_t limit = 0;
  for (const auto& l : impl_->cfg.listeners) limit = std::max(limit, l.max_connections);
  if (limit == 0) {
    // Default: the open-file limit minus a reserve for listeners, logs and the store.
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    limit = rl.rlim_cur > 64 ? rl.rlim_cur - 64 : 16;
  }
  impl_->max_connections = limit;
}

int Server::run() {
  auto& im = *impl_;
  int stop_signal = 0;
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
