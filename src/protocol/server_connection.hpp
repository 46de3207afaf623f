#pragma once
// Server side of one MQTT connection, without I/O: bytes and time go in, bytes to send and events for
// the broker come out. Owned by the worker thread that owns the socket; not thread-safe.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "codec/codec.hpp"
#include "core/rate_limit.hpp"
#include "core/string_hash.hpp"
#include "protocol/limits.hpp"
#include "protocol/message.hpp"
#include "protocol/session_state.hpp"

namespace tern::protocol {

// Settings the protocol needs, copied from the broker configuration.
struct ServerLimits {
  std::uint32_t max_packet_size = 16u * 1024 * 1024;  // inbound, whole packet
  std::uint32_t message_size_limit = 0;               // payload bytes, 0 = no limit
  std::uint16_t max_keepalive = 65535;
  std::chrono::milliseconds connect_timeout{10000};
  bool allow_zero_length_clientid = true;
  std::string auto_id_prefix = "auto-";
  std::size_t v31_client_id_max = 23;  // 0 = no limit
  std::size_t max_client_id_length = 1024;  // max_clientid_len
  std::uint16_t max_inflight = 20;     // outbound window, 0 = 65535
  std::size_t max_queued_messages = 1000;  // 0 = no limit
  std::size_t max_queued_bytes = 0;        // 0 = no limit
  bool queue_qos0 = false;
  bool upgrade_outgoing_qos = false;
  std::uint16_t max_topic_alias = 10;
  std::uint16_t receive_maximum = 65535;   // advertised to 5.0 clients
  std::size_t max_outbound_bytes = 4u * 1024 * 1024;  // buffered for one connection before QoS 0 drops
  // A subscriber whose queue stays above the high-water mark this long is disconnected (the loss
  // policy: its publishers are paused meanwhile). 0 = never.
  std::chrono::seconds slow_subscriber_timeout{60};
  // Validate the payload of a PUBLISH whose Payload Format Indicator says UTF-8 (5.0: 0x99 when it
  // is not) [MQTT-3.3.2-4 allows it].
  bool validate_utf8_payload = true;
  std::uint8_t max_qos = 2;         // highest QoS accepted and granted (CONNACK Maximum QoS)
  bool retain_available = true;     // CONNACK Retain Available
  bool wildcard_subscription_available = true;    // CONNACK Wildcard Subscription Available
  bool subscription_identifier_available = true;  // CONNACK Subscription Identifiers Available
  bool shared_subscription_available = true;      // CONNACK Shared Subscription Available
  // Response Information sent to a 5.0 client that requests it: this prefix plus its client id.
  std::string response_topic_prefix = "response/";
  // Where "now" comes from when a message's expiry must be checked at delivery (tests pass a fake).
  TimePoint (*clock)() = &Clock::now;
  bool verbose = false;                    // log every packet
  // Limits and defences (docs/security.md). "No limit" is the largest value, so each check is one
  // comparison (the broker converts the configuration's 0).
  std::uint32_t max_connect_size = 64 * 1024;  // packets before CONNACK (CONNECT, AUTH); 0 = max_packet_size
  std::uint32_t max_topic_levels = 128;        // PUBLISH topics, SUBSCRIBE filters, will topics
  std::uint32_t max_topic_length = 65535;
  std::uint32_t max_packet_properties = 128;   // per packet, each user property counting; 0 = no limit
  Rate messages_rate;                          // PUBLISH packets per client (EMQX's messages_rate)
  Rate bytes_rate;                             // PUBLISH packet bytes per client (EMQX's bytes_rate)
};

// Why a connection ended; decides whether the will is published.
enum class CloseCause {
  kNone,
  kClientDisconnect,      // DISCONNECT received: will discarded unless 5.0 reason 0x04
  kProtocolError,         // malformed or out-of-order packet
  kKeepaliveTimeout,
  kConnectTimeout,
  kSocketError,           // peer closed or I/O error
  kTakenOver,             // same client id connected again
  kRefused,               // CONNACK with an error
  kServerShutdown,
  kSlowConsumer,
  kStoreFailure,          // the store could not write what an acknowledgement needed
  kNotAuthorized,         // a reload of the password or ACL files no longer lets the client in
};
const char* close_cause_name(CloseCause c);

// Bytes to send: plain bytes with shared payloads spliced in, so fan-out never copies large payloads.
struct OutBuffer {
  struct Splice {
    std::size_t offset;  // payload goes after bytes[0, offset)
    MessagePtr msg;
  };
  std::string bytes;
  std::vector<Splice> splices;
  std::size_t spliced_bytes = 0;
  std::size_t size() const { return bytes.size() + spliced_bytes; }
  bool empty() const { return bytes.empty() && splices.empty(); }
  void clear() {
    bytes.clear();
    splices.clear();
    spliced_bytes = 0;
  }
  // Moves `o` to the end of this buffer.
  void append(OutBuffer&& o) {
    const std::size_t base = bytes.size();
    for (auto& sp : o.splices) splices.push_back({base + sp.offset, std::move(sp.msg)});
    bytes.append(o.bytes);
    spliced_bytes += o.spliced_bytes;
    o.clear();
  }
};

class ServerConnection;

// A FIFO on a vector: nothing allocated while empty (std::deque allocates on construction, about
// 600 bytes per idle connection), amortised O(1) pop_front.
template <typename T>
class VecQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  T& back() { return items_.back(); }
  void push_back(T&& v) { items_.push_back(std::move(v)); }
  void pop_front() {
    if (++head_ == items_.size()) {
      clear();
    } else if (head_ >= 64 && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }
  auto begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() { return items_.end(); }
  auto begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() const { return items_.end(); }

 private:
  std::vector<T> items_;
  std::size_t head_ = 0;
};

// What one connection has received and sent, for $SYS. Plain integers bumped on the owner thread; the
// network layer adds them to its worker's Stats once a second and when the connection ends, so the
// message path touches no shared counter.
struct ConnCounters {
  std::uint64_t packets_in = 0;   // every MQTT packet, as Mosquitto counts "messages"
  std::uint64_t packets_out = 0;
  std::uint64_t publish_in = 0;   // PUBLISH packets, and their payload bytes
  std::uint64_t publish_bytes_in = 0;
  std::uint64_t publish_out = 0;
  std::uint64_t publish_bytes_out = 0;
  std::uint64_t connects = 0;     // CONNECT packets
};

std::string generate_client_id(const std::string& prefix);

// Enhanced authentication (MQTT 5 AUTH): the broker's answer to one step of an exchange.
struct AuthStep {
  enum Kind { kUnsupportedMethod, kContinue, kSuccess, kFail };
  Kind kind = kUnsupportedMethod;
  std::string data;                        // Authentication Data for the client (challenge, or final)
  Reason reason = Reason::kNotAuthorized;  // kFail: CONNACK (or, re-authenticating, DISCONNECT) code
};

// The broker's side of the conversation. Calls come from ServerConnection on its owner thread.
class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  // A valid CONNECT arrived; the handler must call accept() or refuse() (possibly later).
  virtual void on_connect(ServerConnection& c, codec::Connect& connect) = 0;
  // Whether this client may publish the message (access control; $SYS is the broker's). A code of
  // 0x80 or more refuses it: 5.0 gets it in PUBACK/PUBREC, 3.x is acknowledged as usual, and the
  // message is dropped [MQTT-3.3.5-2]. Asked before the QoS 2 PUBREC, so the refusal can be in it.
  virtual Reason authorize_publish(ServerConnection&, const Message&) { return Reason::kSuccess; }
  // An application message to route. Returns the reason code for PUBACK/PUBREC (5.0).
  virtual Reason on_publish(ServerConnection& c, const MessagePtr& m) = 0;
  // Fill one code per topic filter.
  virtual void on_subscribe(ServerConnection& c, const codec::Subscribe& s,
                            std::vector<std::uint8_t>& codes) = 0;
  // SUBACK has been queued: send retained messages now [MQTT-3.8.4-3].
  virtual void on_subscribed(ServerConnection& c, const codec::Subscribe& s,
                             const std::vector<std::uint8_t>& codes) = 0;
  virtual void on_unsubscribe(ServerConnection& c, const codec::Unsubscribe& u,
                              std::vector<std::uint8_t>& codes) = 0;
  // The session's queue went below its low-water mark (or the connection closed) after being
  // congested: publishers paused because of it may be resumed.
  virtual void on_drained(ServerConnection&) {}
  // The connection ended (called once). The will, if any, is still in c.will().
  virtual void on_closed(ServerConnection& c, CloseCause cause) = 0;
  // Enhanced authentication: the first step for `method` with the client's Authentication Data, on
  // CONNECT or on AUTH 0x19 (re-authentication); then each AUTH 0x18 of the exchange. The default
  // supports no method (CONNACK 0x8C).
  virtual AuthStep auth_start(ServerConnection&, const std::string& /*method*/, const std::string& /*data*/,
                              bool /*reauth*/) {
    return {};
  }
  virtual AuthStep auth_continue(ServerConnection&, const std::string& /*data*/) { return {AuthStep::kFail}; }
  // Durable sessions (docs/durability.md). Each of these may write store records and call
  // c.hold(), so that the acknowledgement that follows waits for them.
  // A QoS 2 PUBLISH is held until PUBREL; its PUBREC follows, with the code returned (0x80 or more
  // ends the flow: 5.0 gets it in PUBREC; a 3.x client the handler has disconnected).
  virtual Reason on_qos2_held(ServerConnection&, std::uint16_t /*packet_id*/, const MessagePtr& /*m*/) {
    return Reason::kSuccess;
  }
  // PUBREL: the held message (null when it was refused) has been routed; its PUBCOMP follows.
  virtual void on_qos2_released(ServerConnection&, std::uint16_t /*packet_id*/, const MessagePtr& /*m*/) {}
  // A stored delivery (Delivery::seq != 0): its QoS 2 PUBLISH is about to be sent for the first
  // time (kSent), its PUBREC arrived and PUBREL is about to be sent (kReleased), or its flow ended
  // or it was discarded (kDone; packet id 0 when it was never sent).
  enum class Flight { kSent, kReleased, kDone };
  virtual void on_stored_flight(ServerConnection&, const Delivery&, std::uint16_t /*packet_id*/, Flight) {}
  // Chooses the identifier for a client that sent an empty one [MQTT-3.1.3-6].
  virtual std::string assign_client_id(const std::string& prefix);
  // A one-line log message (level: 0 debug, 1 info/notice, 2 warning, 3 error).
  virtual void log(int level, const std::string& line) = 0;
};

class ServerConnection {
 public:
  // kAuthenticating: CONNECT named an authentication method; AUTH packets go back and forth until
  // the handler says success (then kConnecting) or failure.
  enum class State { kAwaitConnect, kAuthenticating, kConnecting, kConnected, kClosed };

  ServerConnection(ConnectionHandler& handler, const ServerLimits& limits, std::string peer,
                   TimePoint now);

  // Feed received bytes. Complete packets are handled at once; an unfinished one is kept.
  void on_bytes(const std::uint8_t* data, std::size_t n, TimePoint now);
  // Back-pressure: stop handling input after the current packet (the rest stays buffered) until
  // resume(). The network layer stops reading a paused connection.
  void pause() { paused_ = true; }
  // Also true while too many acknowledgements wait for the store (kMaxHeld), and while a rate limit
  // holds the connection (throttled_until()).
  bool paused() const { return paused_ || throttled_until_ != TimePoint{} || gates_.size() >= kMaxHeld; }
  // Ends a back-pressure pause, and a rate limit's once its time has come; handles buffered input.
  void resume(TimePoint now);
  // messages_rate / bytes_rate: the connection is not read before this time (TimePoint{}: it is not
  // held). The network layer calls resume() then.
  TimePoint throttled_until() const { return throttled_until_; }
  // The transport closed or failed.
  void on_transport_closed();
  // The transport's own framing was broken (e.g. a WebSocket text frame): logged, then closed as a
  // protocol error (the will is published).
  void on_transport_error(const std::string& what);
  // Connect timeout and keepalive [MQTT-3.1.2-24]; call about once a second.
  void on_tick(TimePoint now);

  // Broker decisions on CONNECT.
  void accept(SessionState* session, bool session_present, codec::Properties connack_props = {});
  void refuse(Reason reason);
  // Server-initiated close; 5.0 clients get DISCONNECT with `reason` [MQTT-3.14.0-1 applies].
  void disconnect(Reason reason, CloseCause cause);

  // Durable acknowledgements (docs/durability.md). Called by the handler while it handles a packet
  // (or delivers a message): everything this connection sends from now on, and first the
  // acknowledgement of the packet being handled if one follows, waits until complete(ticket); what
  // waits goes out in order. Within one packet's handling, every call returns the same ticket, and
  // the ticket is complete once complete() was called as many times as hold() returned it.
  std::uint64_t hold();
  // The store wrote (ok) or could not write the records behind `ticket`. On failure a 5.0 PUBACK or
  // PUBREC gets 0x97 (Quota exceeded) and the flow ends; anything else closes the connection.
  void complete(std::uint64_t ticket, bool ok);
  // Acknowledgements and output waiting for the store.
  std::size_t held() const { return gates_.size(); }
  static constexpr std::size_t kMaxHeld = 4096;

  // Deliver one message (session online). QoS 1/2 respect the in-flight window. d is moved from only
  // when it is kept (in flight or queued): a QoS 0 delivery written at once leaves d.msg to the caller.
  void deliver(Delivery&& d);
  // Move session state away (connection ends, session persists elsewhere).
  SessionState* session() const { return session_; }
  void detach_session() { session_ = nullptr; }

  OutBuffer& out() { return out_; }
  State state() const { return state_; }
  bool closed() const { return state_ == State::kClosed; }
  CloseCause close_cause() const { return cause_; }
  codec::Version version() const { return version_; }
  const std::string& client_id() const { return client_id_; }
  void set_client_id(std::string id) { client_id_ = std::move(id); }
  const std::string& peer() const { return peer_; }
  const std::optional<std::string>& username() const { return username_; }
  // TLS listeners with use_identity_as_username / use_subject_as_username: the name the handshake
  // authenticated (certificate CN or subject, PSK identity), given before CONNECT arrives. It replaces
  // CONNECT's username and the password is dropped, as in Mosquitto; an empty name (the client sent no
  // certificate) refuses CONNECT as a bad user name or password.
  void set_transport_identity(std::string name) {
    username_ = std::move(name);
    identity_from_transport_ = true;
  }
  // True when username() is the transport's identity: no password is checked for it (Mosquitto).
  bool identity_from_transport() const { return identity_from_transport_; }
  const std::unique_ptr<codec::Will>& will() const { return will_; }
  void clear_will() { will_.reset(); }
  bool clean_start() const { return clean_start_; }
  std::uint16_t keepalive() const { return keepalive_; }
  std::uint32_t session_expiry() const { return session_expiry_; }
  const ServerLimits& limits() const { return limits_; }

  std::uint64_t dropped_qos0() const { return dropped_qos0_; }
  std::uint64_t dropped_queue() const { return dropped_queue_; }
  std::uint64_t dropped_expired() const { return dropped_expired_; }
  const ConnCounters& counters() const { return counters_; }
  // Limits hit by this connection ($SYS/broker/tern/limits/...), also those the broker enforces for it
  // (max_subscriptions). The network layer adds what limit_hits() holds to its worker's Stats and
  // clears it; null until the first hit.
  void count_limit(Limit l) { ++limit_state().hits.n[static_cast<std::size_t>(l)]; }
  LimitHits* limit_hits() { return limits_state_ ? &limits_state_->hits : nullptr; }

  // Opaque pointers for the broker (its session object) and the network layer (its socket object).
  void* user = nullptr;
  void* transport = nullptr;
  std::uint64_t serial = 0;  // the broker's number for this connection (store completions find it)
  int listener = -1;         // index of its listener in the configuration (-1: unknown, e.g. tests)

  // Encodes and sends one PUBLISH. Exposed for retained deliveries (which need no flight slot).
  // False when the packet exceeds the client's Maximum Packet Size and was discarded.
  bool send_publish(const Delivery& d, std::uint16_t packet_id, bool dup);

 private:
  std::size_t process(const std::uint8_t* data, std::size_t n, TimePoint now);
  std::uint32_t pre_connack_max_packet() const;
  // max_topic_length of `topic`, max_topic_levels of `levels_of` (a shared subscription's inner filter).
  std::optional<Limit> topic_over_limit(std::string_view topic, std::string_view levels_of) const;
  void take_rate(std::size_t bytes, TimePoint now);
  void handle(codec::Packet& p, const codec::FrameHeader& h);
  void handle_packet(codec::Packet& p, const codec::FrameHeader& h);
  void handle_connect(codec::Connect& c);
  void handle_auth(const codec::Auth& a);
  void apply_auth(AuthStep step);
  void send_auth(std::uint8_t reason, const std::string& data);
  void handle_publish(codec::Publish& p);
  void handle_ack(const codec::Ack& a);
  void handle_subscribe(const codec::Subscribe& s);
  void handle_unsubscribe(const codec::Unsubscribe& u);
  void handle_disconnect(const codec::Disconnect& d);
  void decode_failed(const codec::DecodeError& e, std::uint8_t first_byte);
  void protocol_violation(Reason reason, const char* what);
  void close(CloseCause cause);
  void send(const codec::Packet& p) { send_to(sink(), p); }
  void send_to(OutBuffer& out, const codec::Packet& p);
  void send_ack(codec::PacketType t, std::uint16_t id, std::uint8_t reason);
  void emit_ack(OutBuffer& out, codec::PacketType t, std::uint16_t id, std::uint8_t reason);
  // Where output goes: the connection's buffer, or behind the last acknowledgement that waits.
  OutBuffer& sink() { return gates_.empty() ? out_ : gates_.back().held; }
  // The gate opened for the packet being handled expects its acknowledgement: true once, then the
  // caller records the acknowledgement in gates_.back().
  bool take_ack_slot();
  void release_gates();
  std::size_t buffered() const;
  void start_flight(Delivery d);
  void pump_queue();
  std::size_t window() const;
  std::size_t congestion_high_water() const;
  void log(int level, const std::string& line) { handler_.log(level, line); }

  ConnectionHandler& handler_;
  const ServerLimits& limits_;
  std::string peer_;
  State state_ = State::kAwaitConnect;
  CloseCause cause_ = CloseCause::kNone;
  codec::Version version_ = codec::Version::kV311;
  std::string client_id_;
  std::optional<std::string> username_;
  bool identity_from_transport_ = false;
  std::unique_ptr<codec::Will> will_;
  bool clean_start_ = true;
  std::uint16_t keepalive_ = 0;
  std::uint32_t session_expiry_ = 0;
  std::uint16_t client_receive_max_ = 65535;
  std::uint32_t client_max_packet_ = 0;
  std::uint16_t client_alias_max_ = 0;
  bool request_response_info_ = false;
  std::string auth_method_;                     // empty: no enhanced authentication
  std::unique_ptr<codec::Connect> pending_connect_;  // held while kAuthenticating (heap: rare, and large)
  std::string auth_success_data_;               // for CONNACK
  bool reauthenticating_ = false;  // Topic Alias Maximum the client accepts (5.0)
  // Outbound topic aliases: the first client_alias_max_ distinct topics sent get an alias each, for
  // the life of the connection; later topics go out in full (docs/architecture.md).
  std::unordered_map<std::string, std::uint16_t, StringHash, std::equal_to<>> outbound_aliases_;
  bool problem_info_ = true;
  std::vector<std::string> inbound_aliases_;
  TimePoint opened_;
  TimePoint last_rx_;
  TimePoint congested_since_{};  // when the session's queue went above the high-water mark
  std::string partial_;
  OutBuffer out_;
  SessionState* session_ = nullptr;
  bool paused_ = false;
  // Output waiting for the store, in order: each gate's acknowledgement, then what was sent after it.
  struct Gate {
    std::uint64_t ticket = 0;
    unsigned holds = 1;  // hold() calls not yet matched by complete()
    bool done = false;
    bool failed = false;
    bool ack_slot = false;  // opened while handling a packet whose acknowledgement follows
    bool has_ack = false;
    codec::PacketType ack_type = codec::PacketType::kPuback;
    std::uint16_t ack_id = 0;
    std::uint8_t ack_reason = 0;
    std::vector<std::uint8_t> ack_codes;  // SUBACK/UNSUBACK
    OutBuffer held;
  };
  VecQueue<Gate> gates_;
  std::uint64_t next_ticket_ = 1;
  std::uint64_t packet_gate_ = 0;  // the gate opened while handling the current packet
  bool in_packet_ = false;
  bool expect_ack_ = false;  // the packet being handled is acknowledged after the handler returns
  std::uint64_t dropped_qos0_ = 0;
  std::uint64_t dropped_queue_ = 0;
  std::uint64_t dropped_expired_ = 0;
  ConnCounters counters_;
  // Limit hits and rate buckets: allocated at the first hit, or the first PUBLISH when a rate limit
  // is set, so that most connections carry one null pointer for them.
  struct LimitState {
    LimitHits hits;
    TokenBucket<TimePoint> messages;
    TokenBucket<TimePoint> bytes;
  };
  LimitState& limit_state() {
    if (!limits_state_) limits_state_ = std::make_unique<LimitState>();
    return *limits_state_;
  }
  std::unique_ptr<LimitState> limits_state_;
  TimePoint throttled_until_{};
};

// Appends a delivery to an offline session's queue within the limits. False (and nothing queued)
// when a bound is reached: the caller counts and logs the drop.
// `refused_by`, when given, receives the bound that refused it (max_queued_messages or max_queued_bytes).
bool queue_offline(SessionState& s, Delivery d, const ServerLimits& limits, Limit* refused_by = nullptr);

// Generates "<prefix>XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX" (uppercase hex, random).
std::string generate_client_id(const std::string& prefix);

}  // namespace tern::protocol
