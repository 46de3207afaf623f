#pragma once
// Client side of one MQTT session, without I/O: the mirror of ServerConnection, over the same codec.
// Bytes and time go in; bytes to send and events for the application come out. The session state
// (messages in flight in both directions, the queue of messages not sent yet) outlives connections:
// after a reconnect it resends what the server has not acknowledged [MQTT-4.4.0-1]. Not thread-safe:
// one owner thread calls everything.
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "codec/codec.hpp"
#include "codec/packet.hpp"

namespace tern::protocol {

using ClientClock = std::chrono::steady_clock;

// Connection and session settings of a client.
struct ClientSettings {
  codec::Version version = codec::Version::kV311;
  std::string client_id;     // empty: the server assigns one (5.0; 3.1.1 needs clean_start)
  bool clean_start = true;   // 3.x clean session
  std::uint16_t keepalive = 60;
  std::optional<std::string> username;
  std::optional<std::string> password;
  std::optional<codec::Will> will;
  codec::Properties connect_props;  // 5.0 CONNECT properties (session expiry, receive maximum, ...)
  // Outbound window: QoS 1/2 messages in flight at once; the server's Receive Maximum lowers it.
  std::uint16_t max_inflight = 20;
  // Messages waiting for the window or for a connection (offline buffering). A publish beyond either
  // bound is refused (kQueueFull). 0 = no limit for that bound.
  std::size_t max_queued_messages = 1000;
  std::size_t max_queued_bytes = 64u * 1024 * 1024;
  // Largest packet accepted from the server (the MQTT maximum by default).
  std::uint32_t max_packet_size = 268435455;
};

// Outcome of an operation that did not reach the server, or the server's reason code (>= 0x80 is a
// failure). Local failures use codes the spec reserves for the server's equivalents where one
// exists (0x95 too large, 0x9B QoS not supported, 0x9A retain not supported).
enum class LocalError : std::uint8_t {
  kNone = 0,
  kQueueFull = 0x97,        // offline buffer or window queue full (quota exceeded)
  kPacketTooLarge = 0x95,   // above the server's Maximum Packet Size
  kQosNotSupported = 0x9B,  // above the server's Maximum QoS
  kRetainNotSupported = 0x9A,
  kInvalid = 0x82,          // bad topic, QoS or state
};

// Why the network connection ended.
enum class ClientCloseCause {
  kNone,
  kRefused,           // CONNACK with an error
  kServerDisconnect,  // DISCONNECT from the server (5.0)
  kClientDisconnect,  // disconnect() was called
  kProtocolError,     // the server broke the protocol
  kKeepaliveTimeout,  // no PINGRESP in time
  kTransport,         // the socket closed or failed
};
const char* client_close_cause_name(ClientCloseCause c);

// The application's side. Calls come from ClientConnection on its owner thread.
class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  // CONNACK arrived (code 0: connected; otherwise the connection closes after this call).
  virtual void on_connack(const codec::Connack& c) = 0;
  // An application message, once per message. QoS 2 messages are held until the server's PUBREL and
  // delivered then, once (as libmosquitto does; duplicates before it are only acknowledged).
  virtual void on_message(const codec::Publish& p) = 0;
  // A publish finished: QoS 0 when written to the output, QoS 1 on PUBACK, QoS 2 on PUBCOMP (or a
  // PUBREC with an error). `reason` is the server's code or a LocalError.
  virtual void on_published(std::uint16_t /*mid*/, std::uint8_t /*reason*/, const codec::Properties&) {}
  // A QoS 0 PUBLISH was encoded into out(): it is complete once the network layer has written it
  // (by default at once).
  virtual void on_qos0_sent(std::uint16_t mid) { on_published(mid, 0, {}); }
  virtual void on_subscribed(std::uint16_t /*mid*/, const std::vector<std::uint8_t>& /*codes*/, const codec::Properties&) {}
  virtual void on_unsubscribed(std::uint16_t /*mid*/, const std::vector<std::uint8_t>& /*codes*/, const codec::Properties&) {}
  // The server sent DISCONNECT (5.0); on_closed follows.
  virtual void on_disconnect(const codec::Disconnect&) {}
  // The network connection ended (once per start()); the session state stays for the next start().
  virtual void on_closed(ClientCloseCause) {}
  // Every packet sent and received, for debug output (mosquitto_pub -d). `mid` is the message id of
  // a PUBLISH sent (also for QoS 0, which has no packet id), else 0.
  virtual void on_packet(bool /*sent*/, const codec::Packet&, std::size_t /*payload_size*/, std::uint16_t /*mid*/) {}
};

// The session state a client keeps across connections, behind an interface so it can be made
// durable. The default (MemoryClientStore) keeps it in memory: a client process crash loses its
// queued and in-flight messages. Every call is made on the owner thread.
class ClientStore {
 public:
  virtual ~ClientStore() = default;
  // A QoS 1/2 message entered the session (queued or in flight), or changed state.
  virtual void put_outgoing(std::uint16_t mid, const codec::Publish& p, bool released) = 0;
  virtual void erase_outgoing(std::uint16_t mid) = 0;
  // An inbound QoS 2 message awaiting PUBREL.
  virtual void put_incoming(std::uint16_t packet_id, const codec::Publish& p) = 0;
  virtual void erase_incoming(std::uint16_t packet_id) = 0;
};

class MemoryClientStore final : public ClientStore {
 public:
  void put_outgoing(std::uint16_t, const codec::Publish&, bool) override {}
  void erase_outgoing(std::uint16_t) override {}
  void put_incoming(std::uint16_t, const codec::Publish&) override {}
  void erase_incoming(std::uint16_t) override {}
};

class ClientConnection {
 public:
  enum class State { kIdle, kConnecting, kConnected, kDisconnecting, kClosed };
  using TimePoint = ClientClock::time_point;

  ClientConnection(ClientHandler& handler, ClientSettings settings, ClientStore* store = nullptr);

  // A new network connection is up: queues CONNECT. The session state carries over.
  void start(TimePoint now);
  // Feed received bytes; complete packets are handled at once.
  void on_bytes(const std::uint8_t* data, std::size_t n, TimePoint now);
  // Keepalive: sends PINGREQ when nothing was sent for keepalive seconds, and closes when the
  // PINGRESP does not come within keepalive seconds [MQTT-3.1.2-24 for the server side]. Call about
  // once a second.
  void on_tick(TimePoint now);
  // The network connection ended.
  void on_transport_closed();

  // Publishes. Returns the message id (mid, as libmosquitto numbers messages: QoS 1/2 use it as the
  // packet id), or 0 with `error` set when the message cannot be accepted. Queued while offline.
  std::uint16_t publish(std::string topic, std::string payload, std::uint8_t qos, bool retain,
                        codec::Properties props, LocalError* error = nullptr);
  std::uint16_t subscribe(std::vector<codec::SubscribeTopic> topics, codec::Properties props = {});
  std::uint16_t unsubscribe(std::vector<std::string> filters, codec::Properties props = {});
  // Sends DISCONNECT and closes (5.0: with reason and properties).
  void disconnect(std::uint8_t reason = 0, codec::Properties props = {});

  std::string& out() { return out_; }
  State state() const { return state_; }
  bool connected() const { return state_ == State::kConnected; }
  bool closed() const { return state_ == State::kClosed || state_ == State::kIdle; }
  ClientCloseCause close_cause() const { return cause_; }
  // What the server did wrong, after a kProtocolError close.
  const std::string& error() const { return error_; }
  const ClientSettings& settings() const { return settings_; }
  ClientSettings& settings() { return settings_; }
  // The client id in use (the server's Assigned Client Identifier once it sent one).
  const std::string& client_id() const { return client_id_; }
  const codec::Connack& connack() const { return connack_; }
  // Messages queued or in flight, and their payload bytes (the offline buffer's use).
  std::size_t pending_messages() const { return queue_.size() + inflight_.size(); }
  std::size_t pending_bytes() const { return queued_bytes_; }
  std::size_t inflight() const { return inflight_.size(); }

 private:
  struct Outgoing {
    std::string topic;
    std::string payload;
    std::uint8_t qos = 0;
    bool retain = false;
    codec::Properties props;
    std::uint64_t seq = 0;  // publish order, kept for resending after a reconnect [MQTT-4.6.0-1]
    enum Step { kQueued, kAwaitPuback, kAwaitPubrec, kAwaitPubcomp } step = kQueued;
    codec::Publish packet(std::uint16_t id, bool dup) const;
  };

  void handle(codec::Packet& p, std::size_t payload_size);
  void handle_connack(codec::Connack& c);
  void handle_publish(codec::Publish& p);
  void handle_ack(const codec::Ack& a);
  void protocol_error(const char* what);
  void close(ClientCloseCause cause);
  void send(const codec::Packet& p, std::size_t payload_size = 0);
  bool send_publish(std::uint16_t mid, const Outgoing& o, bool dup);
  void pump();
  void finish(std::uint16_t mid, std::uint8_t reason, const codec::Properties& props);
  std::uint16_t next_mid();
  std::size_t window() const;

  ClientHandler& handler_;
  ClientSettings settings_;
  MemoryClientStore memory_store_;
  ClientStore* store_;
  State state_ = State::kIdle;
  ClientCloseCause cause_ = ClientCloseCause::kNone;
  std::string error_;
  codec::Version version_;
  std::string client_id_;
  codec::Connack connack_;
  std::string in_;   // bytes of an unfinished packet
  std::string out_;
  TimePoint last_tx_{};
  TimePoint ping_sent_{};
  bool ping_outstanding_ = false;
  std::uint16_t keepalive_ = 0;
  std::uint16_t last_mid_ = 0;
  std::uint64_t seq_ = 0;
  TimePoint now_{};
  // Limits the server set in CONNACK (5.0).
  std::uint16_t server_receive_max_ = 65535;
  std::uint32_t server_max_packet_ = 0;  // 0 = no limit
  std::uint8_t server_max_qos_ = 2;
  bool server_retain_ = true;
  std::uint16_t topic_alias_max_in_ = 0;               // what we allowed the server
  std::unordered_map<std::uint16_t, std::string> aliases_in_;
  // QoS 1/2 messages: in flight (sent, awaiting an ack) and queued (waiting for the window or a
  // connection), in publish order. QoS 0 messages queue too while offline.
  std::map<std::uint16_t, Outgoing> inflight_;
  std::deque<std::pair<std::uint16_t, Outgoing>> queue_;
  std::size_t queued_bytes_ = 0;
  std::set<std::uint16_t> ids_in_use_;
  struct Incoming {
    std::string topic;
    std::string payload;
    bool retain = false;
    codec::Properties props;
  };
  std::map<std::uint16_t, Incoming> incoming_qos2_;  // PUBREC sent, PUBREL awaited
  std::map<std::uint16_t, bool> pending_acks_;  // SUBSCRIBE (true) / UNSUBSCRIBE (false) awaiting ack
};

}  // namespace tern::protocol
