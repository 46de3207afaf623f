#pragma once
// Tern's MQTT client library: MQTT 3.1, 3.1.1 and 5.0 over TCP, TLS or a Unix socket, QoS 0/1/2
// with full in-flight state, persistent sessions, automatic reconnect with backoff and bounded
// offline buffering. Two interfaces:
//
// - AsyncClient: callbacks on an Asio io_context the application runs. Not thread-safe: call it
//   from the io_context's thread (or before the io_context runs); callbacks run on that thread.
// - BlockingClient: runs its own thread; every method may be called from any thread and waits for
//   its result.
//
// This header includes no Asio header; link with tern::client (CMake) or `pkg-config tern-client`.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/mqtt.hpp"

namespace boost::asio {
class io_context;
}

// Symbols exported by libtern-client.so (built with hidden visibility).
#if defined(__GNUC__)
#define TERN_API __attribute__((visibility("default")))
#else
#define TERN_API
#endif

namespace tern {

// TLS settings. With `enabled`, the server's certificate is verified against cafile/capath (or the
// system's trust store with use_os_certs, or when neither is given) and its host name is checked,
// unless `insecure`.
struct TlsOptions {
  bool enabled = false;
  std::string cafile;
  std::string capath;
  bool use_os_certs = false;
  std::string certfile;  // client certificate (PEM) and its key, for servers that ask for one
  std::string keyfile;
  std::string tls_version;  // "tlsv1.3", "tlsv1.2" or "tlsv1.1": the lowest accepted; empty = tlsv1.2
  std::string ciphers;      // OpenSSL cipher list for TLS 1.2 and below
  std::string alpn;         // ALPN protocol to offer
  bool insecure = false;    // skip the host name check (the chain is still verified)
  std::string psk_identity;  // TLS-PSK instead of certificates: identity and hex key
  std::string psk;
};

struct ClientOptions {
  std::string host = "localhost";
  std::uint16_t port = 1883;
  std::string unix_socket;   // connect to this Unix socket path instead of host/port
  std::string bind_address;  // local address to connect from
  bool nodelay = false;      // disable Nagle's algorithm
  TlsOptions tls;

  Version version = Version::kV311;
  std::string client_id;  // empty: the server assigns one (3.1.1 requires clean_start then)
  bool clean_start = true;
  std::uint16_t keepalive = 60;
  std::optional<std::string> username;
  std::optional<std::string> password;
  std::optional<Will> will;
  Properties connect_props;  // MQTT 5 CONNECT properties

  // QoS 1/2 messages in flight at once (lowered by the server's Receive Maximum).
  std::uint16_t max_inflight = 20;
  // Offline buffering: messages waiting for a connection or for the in-flight window. Beyond
  // either bound, publish() fails with kQueueFull. 0 = no limit.
  std::size_t max_queued_messages = 1000;
  std::size_t max_queued_bytes = 64u * 1024 * 1024;

  // Reconnect after a lost connection (not after a refused CONNECT or disconnect()): the delay
  // starts at reconnect_delay and doubles up to reconnect_delay_max; a successful CONNACK resets it.
  bool auto_reconnect = true;
  std::chrono::milliseconds reconnect_delay{1000};
  std::chrono::milliseconds reconnect_delay_max{30000};
  // Name resolution, TCP/TLS connect and CONNACK must complete within this.
  std::chrono::milliseconds connect_timeout{10000};
};

// A received application message. The views are valid during the callback only.
struct MessageView {
  std::string_view topic;
  std::string_view payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t mid = 0;
  const Properties* props = nullptr;  // never null in a callback
};

// An owned copy of a message (BlockingClient::receive).
struct Message {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  Properties props;
  static Message from(const MessageView& v) {
    return Message{std::string(v.topic), std::string(v.payload), v.qos, v.retain, *v.props};
  }
};

struct Subscription {
  std::string filter;
  std::uint8_t qos = 0;
  bool no_local = false;             // MQTT 5 subscription options
  bool retain_as_published = false;
  std::uint8_t retain_handling = 0;
};

// The end of a connection attempt: a CONNACK (code 0 is success) or a failure before it.
struct ConnectResult {
  bool success = false;
  // CONNACK return code (3.x) or reason code (5.0); kNoConnack when none arrived.
  std::uint8_t code = kNoConnack;
  bool session_present = false;
  Properties props;    // CONNACK properties (5.0)
  std::string error;   // why it failed: the reason code's name, or the network/TLS error
  static constexpr std::uint8_t kNoConnack = 0xFF;
};

// Why a connection ended.
struct DisconnectInfo {
  std::uint8_t reason = 0;   // the server's DISCONNECT reason code (5.0), else 0
  std::string error;         // empty after disconnect(); else what happened
  bool reconnecting = false;  // an automatic reconnect is scheduled
};

// Codes of a publish that failed in the client (the server's own codes are >= 0x80 as well).
enum class PublishError : std::uint8_t {
  kNone = 0,
  kInvalid = 0x82,            // bad topic or QoS
  kPacketTooLarge = 0x95,     // larger than the server's Maximum Packet Size
  kQueueFull = 0x97,          // the offline buffer is full
  kRetainNotSupported = 0x9A,
  kQosNotSupported = 0x9B,
};

class TERN_API AsyncClient {
 public:
  AsyncClient(boost::asio::io_context& io, ClientOptions options);
  ~AsyncClient();
  AsyncClient(const AsyncClient&) = delete;
  AsyncClient& operator=(const AsyncClient&) = delete;

  // Callbacks; set them before connect().
  std::function<void(const ConnectResult&)> on_connect;  // every connection attempt's outcome
  std::function<void(const MessageView&)> on_message;
  // A publish completed: QoS 0 once written to the network (0x80 if the connection was lost first),
  // QoS 1 on PUBACK, QoS 2 on PUBCOMP; `reason` is the
  // server's code (>= 0x80: refused) or a PublishError.
  std::function<void(std::uint16_t mid, std::uint8_t reason)> on_publish;
  std::function<void(std::uint16_t mid, const std::vector<std::uint8_t>& codes)> on_subscribe;
  std::function<void(std::uint16_t mid)> on_unsubscribe;
  std::function<void(const DisconnectInfo&)> on_disconnect;
  // Debug lines, one per packet, as libmosquitto's clients print with -d
  // ("Client ID sending PUBLISH (d0, q1, r0, m1, 'topic', ... (5 bytes))"). Unset: no formatting.
  std::function<void(const std::string&)> on_log;

  // Connects (and, with auto_reconnect, keeps connecting).
  void connect();
  // Returns the message id, or 0 when the message was refused at once (`error` says why). While
  // offline, messages are buffered up to the configured bounds.
  std::uint16_t publish(std::string topic, std::string payload, std::uint8_t qos = 0, bool retain = false,
                        Properties props = {}, PublishError* error = nullptr);
  // 0 when not connected.
  std::uint16_t subscribe(std::vector<Subscription> subs, Properties props = {});
  std::uint16_t unsubscribe(std::vector<std::string> filters, Properties props = {});
  // Sends DISCONNECT after the packets already handed to the network, then closes; no reconnect.
  // Messages still queued or in flight stay in the session for a later connect().
  void disconnect(std::uint8_t reason = 0, Properties props = {});

  bool connected() const;
  // Messages queued or in flight, including QoS 0 messages not yet written to the network.
  std::size_t pending() const;
  // Payload and topic bytes of messages waiting for the window or a connection.
  std::size_t pending_bytes() const;
  // The client id in use (the server's assigned one once known).
  const std::string& client_id() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// A synchronous client on its own thread. Thread-safe.
class TERN_API BlockingClient {
 public:
  explicit BlockingClient(ClientOptions options, std::size_t max_buffered = 10000);
  ~BlockingClient();  // disconnects and stops the thread
  BlockingClient(const BlockingClient&) = delete;
  BlockingClient& operator=(const BlockingClient&) = delete;

  ConnectResult connect(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits until the publish completes (see AsyncClient::on_publish); returns its reason code
  // (0 = success), a PublishError, or 0xFF on timeout.
  std::uint8_t publish(std::string topic, std::string payload, std::uint8_t qos = 0, bool retain = false,
                       Properties props = {}, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The granted QoS / reason code per filter; empty on timeout or when not connected.
  std::vector<std::uint8_t> subscribe(std::vector<Subscription> subs,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool unsubscribe(std::vector<std::string> filters, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The next received message. Received messages wait in a queue of at most `max_buffered`
  // messages; when it is full the oldest is dropped and counted in dropped().
  std::optional<Message> receive(std::chrono::milliseconds timeout);
  std::size_t dropped() const;
  void disconnect();
  bool connected() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern
