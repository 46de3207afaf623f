// The client library against real brokers, started by tests/integration/test_client_library.py,
// which passes their addresses in the environment:
//   TERN_PORT        the real `tern broker`
//   MOSQ_PORT        Debian's mosquitto
//   MOSQ_TLS_PORT    mosquitto with TLS (server certificate for "localhost" signed by TLS_CA)
//   TLS_CA, TLS_OTHER_CA  the CA that signed it, and an unrelated CA
//   MOSQ_PSK_PORT    mosquitto with TLS-PSK (identity "tern", key PSK_KEY)
//   MOSQ_UNIX        mosquitto's Unix socket path
// Network loss is simulated by a proxy in this process that drops its connections on demand.
#include <gtest/gtest.h>

#include <utility>  // before Asio (Boost 1.74)

#include <atomic>
#include <boost/asio.hpp>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "tern/client.hpp"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  if (!v) ADD_FAILURE() << name << " is not set (run tests/integration/test_client_library.py)";
  return v ? v : "";
}
std::uint16_t env_port(const char* name) { return static_cast<std::uint16_t>(std::atoi(env(name).c_str())); }

tern::ClientOptions options(std::uint16_t port, const std::string& id, tern::Version v = tern::Version::kV5) {
  tern::ClientOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.client_id = id;
  o.version = v;
  return o;
}

// A TCP proxy: each accepted connection is joined to a new connection to the broker.
// drop() closes every joined pair, as a network failure would.
class Proxy {
 public:
  explicit Proxy(std::uint16_t target) : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), target_(target) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Proxy() {
    io_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  void drop() {
    asio::post(io_, [this] {
      for (auto& p : pairs_) {
        boost::system::error_code ec;
        p->a.close(ec);
        p->b.close(ec);
      }
      pairs_.clear();
    });
  }
  int accepted() const { return accepted_; }

 private:
  struct Pair {
    explicit Pair(asio::io_context& io) : a(io), b(io) {}
    tcp::socket a, b;
    std::array<char, 8192> ab{}, ba{};
  };
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      ++accepted_;
      auto p = std::make_shared<Pair>(io_);
      p->a = std::move(s);
      pairs_.push_back(p);
      p->b.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), target_), [this, p](boost::system::error_code e) {
        if (e) return;
        pump(p, p->a, p->b, p->ab);
        pump(p, p->b, p->a, p->ba);
      });
      accept();
    });
  }
  void pump(std::shared_ptr<Pair> p, tcp::socket& from, tcp::socket& to, std::array<char, 8192>& buf) {
    from.async_read_some(asio::buffer(buf), [this, p, &from, &to, &buf](boost::system::error_code ec, std::size_t n) {
      if (ec) {
        boost::system::error_code ignored;
        to.close(ignored);
        return;
      }
      asio::async_write(to, asio::buffer(buf, n), [this, p, &from, &to, &buf](boost::system::error_code e, std::size_t) {
        if (!e) pump(p, from, to, buf);
      });
    });
  }
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::uint16_t target_;
  std::vector<std::shared_ptr<Pair>> pairs_;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

void pubsub_roundtrip(std::uint16_t port, tern::Version v, const std::string& tag) {
  tern::BlockingClient sub(options(port, "sub-" + tag, v));
  ASSERT_TRUE(sub.connect().success);
  auto granted = sub.subscribe({{"lib/" + tag + "/#", 2}});
  ASSERT_EQ(granted, std::vector<std::uint8_t>{2});
  tern::BlockingClient pub(options(port, "pub-" + tag, v));
  ASSERT_TRUE(pub.connect().success);
  tern::Properties props;
  if (v == tern::Version::kV5) {
    props.user_properties.push_back({"k", "v"});
    props.content_type = "text/plain";
  }
  for (std::uint8_t qos = 0; qos <= 2; ++qos) {
    const std::string payload = "payload-" + std::to_string(qos);
    std::uint8_t rc = pub.publish("lib/" + tag + "/q" + std::to_string(qos), payload, qos, false, props);
    EXPECT_LT(rc, 0x80) << "QoS " << int(qos);
    auto m = sub.receive(5s);
    ASSERT_TRUE(m) << "QoS " << int(qos);
    EXPECT_EQ(m->topic, "lib/" + tag + "/q" + std::to_string(qos));
    EXPECT_EQ(m->payload, payload);
    EXPECT_EQ(m->qos, qos);
    if (v == tern::Version::kV5) {
      EXPECT_EQ(m->props.user_properties, props.user_properties);
      EXPECT_EQ(m->props.content_type, props.content_type);
    }
  }
}

TEST(ClientLibrary, PubSubEveryQosAndVersionAgainstBothBrokers) {
  for (auto [port, name] : {std::pair{env_port("TERN_PORT"), "tern"}, std::pair{env_port("MOSQ_PORT"), "mosq"}}) {
    for (auto v : {tern::Version::kV31, tern::Version::kV311, tern::Version::kV5}) {
      SCOPED_TRACE(std::string(name) + " v" + std::to_string(int(v)));
      pubsub_roundtrip(port, v, std::string(name) + std::to_string(int(v)));
    }
  }
}

// QoS 1 messages in flight when the network fails are resent on the automatic reconnect, with the
// session resumed; every message arrives at least once and the publisher sees every PUBACK.
void reconnect_resends(std::uint16_t broker_port, const std::string& tag) {
  tern::BlockingClient sub(options(broker_port, "rsub-" + tag));
  ASSERT_TRUE(sub.connect().success);
  ASSERT_EQ(sub.subscribe({{"rc/" + tag, 1}}), std::vector<std::uint8_t>{1});

  Proxy proxy(broker_port);
  asio::io_context io;
  auto o = options(proxy.port(), "rpub-" + tag);
  o.clean_start = false;
  o.connect_props.session_expiry = 300;
  o.max_inflight = 5;
  o.reconnect_delay = 50ms;
  o.reconnect_delay_max = 200ms;
  tern::AsyncClient pub(io, o);
  constexpr int kMessages = 2000;
  int sent = 0, acked = 0, connects = 0, resumed = 0, lost = 0;
  auto publish_more = [&] {
    while (sent < kMessages && pub.pending() < 50) pub.publish("rc/" + tag, std::to_string(sent++), 1);
  };
  pub.on_connect = [&](const tern::ConnectResult& r) {
    // The proxy may drop a connection before its CONNACK (a persistent session's CONNACK waits for
    // the store): then the client reconnects.
    if (!r.success) {
      EXPECT_NE(r.error.find("closed"), std::string::npos) << r.error;
      return;
    }
    ++connects;
    if (r.session_present) ++resumed;
    publish_more();
  };
  asio::steady_timer chaos(io);
  asio::steady_timer guard(io);
  pub.on_disconnect = [&](const tern::DisconnectInfo& d) {
    if (acked < kMessages) {
      EXPECT_TRUE(d.reconnecting) << d.error;
      ++lost;
      return;
    }
    EXPECT_TRUE(d.error.empty()) << d.error;  // our own disconnect() at the end
    chaos.cancel();
    guard.cancel();
  };
  pub.on_publish = [&](std::uint16_t, std::uint8_t reason) {
    EXPECT_LT(reason, 0x80);
    if (++acked == kMessages) pub.disconnect();
    publish_more();
  };
  std::function<void()> drop_later = [&] {
    chaos.expires_after(30ms);
    chaos.async_wait([&](boost::system::error_code ec) {
      if (ec || acked >= kMessages) return;
      if (lost < 5) proxy.drop();
      drop_later();
    });
  };
  guard.expires_after(30s);
  guard.async_wait([&](boost::system::error_code ec) {
    if (!ec) io.stop();
  });
  pub.connect();
  drop_later();
  io.run_for(30s);
  EXPECT_EQ(acked, kMessages);
  EXPECT_GE(lost, 1);
  EXPECT_GE(connects, 2);
  EXPECT_EQ(resumed, connects - 1);  // every reconnect found the session
  std::set<int> got;
  while (auto m = sub.receive(got.size() < kMessages ? 2s : 200ms)) got.insert(std::stoi(m->payload));
  EXPECT_EQ(got.size(), static_cast<std::size_t>(kMessages));
}

TEST(ClientLibrary, ReconnectResendsInFlightTern) { reconnect_resends(env_port("TERN_PORT"), "tern"); }
TEST(ClientLibrary, ReconnectResendsInFlightMosquitto) { reconnect_resends(env_port("MOSQ_PORT"), "mosq"); }

TEST(ClientLibrary, OfflineBufferIsSentOnConnectAndBounded) {
  const std::uint16_t port = env_port("TERN_PORT");
  tern::BlockingClient sub(options(port, "offline-sub"));
  ASSERT_TRUE(sub.connect().success);
  ASSERT_EQ(sub.subscribe({{"offline/#", 1}}), std::vector<std::uint8_t>{1});
  asio::io_context io;
  auto o = options(port, "offline-pub");
  o.max_queued_messages = 5;
  tern::AsyncClient pub(io, o);
  tern::PublishError e{};
  for (int i = 0; i < 5; ++i) EXPECT_NE(pub.publish("offline/t", std::to_string(i), 1, false, {}, &e), 0);
  EXPECT_EQ(pub.publish("offline/t", "6", 1, false, {}, &e), 0);
  EXPECT_EQ(e, tern::PublishError::kQueueFull);
  EXPECT_EQ(pub.pending(), 5u);
  int acked = 0;
  pub.on_publish = [&](std::uint16_t, std::uint8_t) {
    if (++acked == 5) pub.disconnect();
  };
  pub.connect();
  io.run_for(10s);
  EXPECT_EQ(acked, 5);
  for (int i = 0; i < 5; ++i) {
    auto m = sub.receive(5s);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->payload, std::to_string(i));  // in publish order
  }
}

TEST(ClientLibrary, ConnectFailures) {
  // Nothing listening: the attempt fails with the network error, no CONNACK.
  auto o = options(1, "nobody");
  o.connect_timeout = 2s;
  tern::BlockingClient c(o);
  auto r = c.connect();
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.code, tern::ConnectResult::kNoConnack);
  EXPECT_NE(r.error.find("refused"), std::string::npos) << r.error;
  // A refused CONNACK: 3.1.1 with an empty client id and clean session 0 is rejected (code 2).
  auto bad = options(env_port("TERN_PORT"), "", tern::Version::kV311);
  bad.clean_start = false;
  tern::BlockingClient b(bad);
  r = b.connect();
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.error.find("identifier rejected"), std::string::npos) << r.error;
}

TEST(ClientLibrary, TlsVerifiesTheServer) {
  auto o = options(env_port("MOSQ_TLS_PORT"), "tls-ok");
  o.host = "localhost";
  o.tls.enabled = true;
  o.tls.cafile = env("TLS_CA");
  {
    tern::BlockingClient c(o);
    auto r = c.connect();
    ASSERT_TRUE(r.success) << r.error;
    EXPECT_EQ(c.subscribe({{"tls/t", 1}}), std::vector<std::uint8_t>{1});
    EXPECT_EQ(c.publish("tls/t", "secret", 1), 0);
    auto m = c.receive(5s);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->payload, "secret");
  }
  {
    auto wrong = o;
    wrong.tls.cafile = env("TLS_OTHER_CA");
    wrong.connect_timeout = 5s;
    tern::BlockingClient c(wrong);
    auto r = c.connect();
    EXPECT_FALSE(r.success);
    EXPECT_NE(r.error.find("certificate verify failed"), std::string::npos) << r.error;
  }
  {
    // The certificate names localhost, not 127.0.0.1: refused, unless the name check is off.
    auto by_ip = o;
    by_ip.host = "127.0.0.1";
    by_ip.connect_timeout = 5s;
    tern::BlockingClient c(by_ip);
    EXPECT_FALSE(c.connect().success);
    by_ip.tls.insecure = true;
    tern::BlockingClient d(by_ip);
    auto r = d.connect();
    EXPECT_TRUE(r.success) << r.error;
  }
}

TEST(ClientLibrary, TlsPsk) {
  auto o = options(env_port("MOSQ_PSK_PORT"), "psk-client");
  o.tls.enabled = true;
  o.tls.psk_identity = "tern";
  o.tls.psk = env("PSK_KEY");
  tern::BlockingClient c(o);
  auto r = c.connect();
  ASSERT_TRUE(r.success) << r.error;
  EXPECT_LT(c.publish("psk/t", "x", 1), 0x80);  // 0x10 from mosquitto: no subscribers
  auto wrong = o;
  wrong.tls.psk = "00112233";
  wrong.connect_timeout = 5s;
  tern::BlockingClient w(wrong);
  EXPECT_FALSE(w.connect().success);
}

TEST(ClientLibrary, UnixSocket) {
  auto o = options(0, "unix-client");
  o.unix_socket = env("MOSQ_UNIX");
  tern::BlockingClient c(o);
  auto r = c.connect();
  ASSERT_TRUE(r.success) << r.error;
  EXPECT_EQ(c.subscribe({{"unix/t", 0}}), std::vector<std::uint8_t>{0});
  EXPECT_EQ(c.publish("unix/t", "over a socket file", 0), 0);
  auto m = c.receive(5s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "over a socket file");
}

TEST(ClientLibrary, WillIsPublishedWhenTheConnectionIsLost) {
  const std::uint16_t port = env_port("TERN_PORT");
  tern::BlockingClient watcher(options(port, "will-watcher"));
  ASSERT_TRUE(watcher.connect().success);
  watcher.subscribe({{"wills/#", 1}});
  Proxy proxy(port);
  auto o = options(proxy.port(), "will-client");
  o.will = tern::Will{"wills/will-client", "gone", 1, false, {}};
  o.auto_reconnect = false;
  tern::BlockingClient c(o);
  ASSERT_TRUE(c.connect().success);
  proxy.drop();
  auto m = watcher.receive(5s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->topic, "wills/will-client");
  EXPECT_EQ(m->payload, "gone");
}

}  // namespace
