#include "protocol/server_connection.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <random>

#include "core/topic.hpp"
#include "core/utf8.hpp"
#include "protocol/log_format.hpp"

namespace tern::protocol {

using codec::PacketType;
using codec::Version;

namespace {

// Threshold under which a payload is copied into the connection's output buffer instead of being
// referenced: a reference costs an iovec entry and an atomic increment, more than copying a few
// hundred bytes. Large payloads are never copied per subscriber.
constexpr std::size_t kSpliceThreshold = 512;

int protocol_number(Version v) {
  switch (v) {
    case Version::kV31: return 1;
    case Version::kV311: return 2;
    case Version::kV5: return 5;
  }
  return 0;
}

void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}

// A rate-limited connection is read again a little after its bucket has tokens: up to this much time
// worth of them, so a client that keeps sending at its limit wakes its worker about 20 times a second
// rather than once per message.
constexpr std::chrono::milliseconds kThrottleSlack{50};

// The protocol version of a CONNECT of which only the start has arrived (`body` after the fixed
// header): a CONNECT refused for its size before it is read whole is still answered in its version.
Version peek_connect_version(const std::uint8_t* body, std::size_t n) {
  static constexpr std::uint8_t kMqtt5[] = {0, 4, 'M', 'Q', 'T', 'T', 5};
  if (n >= sizeof kMqtt5 && std::equal(std::begin(kMqtt5), std::end(kMqtt5), body)) return Version::kV5;
  return Version::kV311;
}

}  // namespace

const char* close_cause_name(CloseCause c) {
  switch (c) {
    case CloseCause::kNone: return "none";
    case CloseCause::kClientDisconnect: return "client disconnect";
    case CloseCause::kProtocolError: return "protocol error";
    case CloseCause::kKeepaliveTimeout: return "keepalive timeout";
    case CloseCause::kConnectTimeout: return "connect timeout";
    case CloseCause::kSocketError: return "socket error";
    case CloseCause::kTakenOver: return "session taken over";
    case CloseCause::kRefused: return "connection refused";
    case CloseCause::kServerShutdown: return "server shutdown";
    case CloseCause::kSlowConsumer: return "slow consumer";
    case CloseCause::kStoreFailure: return "store failure";
    case CloseCause::kNotAuthorized: return "not authorized";
  }
  return "unknown";
}

std::string generate_client_id(const std::string& prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t a = rng();
  std::uint64_t b = rng();
  return fmt::format("{}{:08X}-{:04X}-{:04X}-{:04X}-{:012X}", prefix, a >> 32, (a >> 16) & 0xFFFF,
                     a & 0xFFFF, b >> 48, b & 0xFFFFFFFFFFFFull);
}

std::string ConnectionHandler::assign_client_id(const std::string& prefix) {
  return generate_client_id(prefix);
}

bool queue_offline(SessionState& s, Delivery d, const ServerLimits& limits, Limit* refused_by) {
  auto refuse = [refused_by](Limit l) {
    if (refused_by) *refused_by = l;
    return false;
  };
  if (limits.max_queued_messages != 0 && s.queue.size() >= limits.max_queued_messages) {
    return refuse(Limit::kMaxQueuedMessages);
  }
  std::size_t bytes = d.msg->payload.size();
  if (limits.max_queued_bytes != 0 && s.queued_bytes + bytes > limits.max_queued_bytes) {
    return refuse(Limit::kMaxQueuedBytes);
  }
  s.queued_bytes += bytes;
  s.queue.push_back(std::move(d));
  return true;
}

ServerConnection::ServerConnection(ConnectionHandler& handler, const ServerLimits& limits,
                                   std::string peer, TimePoint now)
    : handler_(handler), limits_(limits), peer_(std::move(peer)), opened_(now), last_rx_(now) {}

void ServerConnection::resume(TimePoint now) {
  paused_ = false;
  if (throttled_until_ != TimePoint{} && now >= throttled_until_) throttled_until_ = TimePoint{};
  if (!partial_.empty()) on_bytes(nullptr, 0, now);
}

void ServerConnection::on_bytes(const std::uint8_t* data, std::size_t n, TimePoint now) {
  if (state_ == State::kClosed) return;
  if (partial_.empty()) {
    std::size_t used = process(data, n, now);
    if (used < n && state_ != State::kClosed) partial_.assign(reinterpret_cast<const char*>(data + used), n - used);
  } else {
    if (n > 0) partial_.append(reinterpret_cast<const char*>(data), n);
    std::size_t used = process(reinterpret_cast<const std::uint8_t*>(partial_.data()), partial_.size(), now);
    if (state_ == State::kClosed) {
      partial_.clear();
    } else {
      partial_.erase(0, used);
    }
  }
  if (partial_.capacity() > 4096 && partial_.size() < 1024) partial_.shrink_to_fit();
}

std::uint32_t ServerConnection::pre_connack_max_packet() const {
  const std::uint32_t connect = limits_.max_connect_size;
  const std::uint32_t any = limits_.max_packet_size;
  if (connect == 0) return any;
  return any == 0 ? connect : std::min(connect, any);
}

std::size_t ServerConnection::process(const std::uint8_t* data, std::size_t n, TimePoint now) {
  std::size_t off = 0;
  while (off < n && !paused() &&
         (state_ == State::kAwaitConnect || state_ == State::kAuthenticating || state_ == State::kConnected)) {
    // [MQTT-3.1.0-1] the first packet from the client must be CONNECT: its first byte is enough to
    // tell (no waiting for the rest of a packet that is not one, e.g. HTTP on the MQTT port).
    if (state_ == State::kAwaitConnect && static_cast<PacketType>(data[off] >> 4) != PacketType::kConnect) {
      log(1, fmt::format("Client {} sent {} before CONNECT, closing.", peer_,
                         codec::packet_name(static_cast<PacketType>(data[off] >> 4))));
      close(CloseCause::kProtocolError);
      return n;
    }
    codec::FrameHeader h;
    codec::DecodeError err;
    // max_connect_size: until CONNACK the client is not authenticated, so its packets get a smaller
    // bound, checked from the fixed header alone: a larger CONNECT is refused before it is read whole.
    const bool connected = state_ == State::kConnected;
    auto st = codec::parse_frame(data + off, n - off, connected ? limits_.max_packet_size : pre_connack_max_packet(),
                                 h, err);
    if (st == codec::FrameStatus::kIncomplete) break;
    ++counters_.packets_in;  // $SYS messages/received
    if (st == codec::FrameStatus::kError) {
      if (err.reason == Reason::kPacketTooLarge) {
        const bool connect_limit = !connected && pre_connack_max_packet() != limits_.max_packet_size;
        count_limit(connect_limit ? Limit::kMaxConnectSize : Limit::kMaxPacketSize);
        if (state_ == State::kAwaitConnect && off + h.header_size <= n) {
          version_ = peek_connect_version(data + off + h.header_size, n - off - h.header_size);
        }
      }
      decode_failed(err, data[off]);
      return n;
    }
    codec::Packet p;
    auto e = codec::decode_packet(h, data + off + h.header_size, version_, p, limits_.max_packet_properties);
    if (e) {
      // The decoder's one use of 0x97: more properties than max_packet_properties.
      if (e.reason == Reason::kQuotaExceeded) count_limit(Limit::kMaxPacketProperties);
      // A first CONNECT that fails still tells which version to answer in; a later one must not
      // change the version of a connection already established.
      if (auto* c = std::get_if<codec::Connect>(&p); c && state_ == State::kAwaitConnect) version_ = c->version;
      decode_failed(e, h.first_byte);
      return n;
    }
    off += h.total();
    // Keep alive counts whole packets [MQTT-3.1.2-24]: the bytes of one that never completes (a
    // client trickling a packet) do not keep the connection open.
    last_rx_ = now;
    handle(p, h);
    // One test of two words, false unless a rate limit is configured.
    if ((limits_.messages_rate.amount | limits_.bytes_rate.amount) != 0) [[unlikely]] {
      if (h.type() == PacketType::kPublish) take_rate(h.total(), now);
    }
  }
  return off;
}

// messages_rate / bytes_rate, as EMQX applies them: what arrived is handled (it was read; refusing it
// would only lose it), then the connection is not read until its buckets hold tokens again, so the
// client's own TCP window slows it down. Nothing is dropped and nothing is closed.
void ServerConnection::take_rate(std::size_t bytes, TimePoint now) {
  TimePoint until{};
  auto charge = [&](TokenBucket<TimePoint>& bucket, const Rate& r, std::uint64_t cost, Limit l) {
    if (!r.on()) return;
    TimePoint t = bucket.take(r, cost, now);
    if (t <= now) return;
    count_limit(l);
    t += std::min<Clock::duration>(r.period, kThrottleSlack);
    until = std::max(until, t);
  };
  LimitState& st = limit_state();
  charge(st.messages, limits_.messages_rate, 1, Limit::kMessagesRate);
  charge(st.bytes, limits_.bytes_rate, bytes, Limit::kBytesRate);
  if (until != TimePoint{}) throttled_until_ = std::max(throttled_until_, until);
}

std::optional<Limit> ServerConnection::topic_over_limit(std::string_view topic, std::string_view levels_of) const {
  if (topic.size() > limits_.max_topic_length) return Limit::kMaxTopicLength;
  // n bytes hold at most n + 1 levels: the common short topic is not scanned.
  if (levels_of.size() >= limits_.max_topic_levels && topic_levels(levels_of) > limits_.max_topic_levels) {
    return Limit::kMaxTopicLevels;
  }
  return std::nullopt;
}

void ServerConnection::decode_failed(const codec::DecodeError& e, std::uint8_t first_byte) {
  auto type = static_cast<PacketType>(first_byte >> 4);
  const std::string& who = client_id_.empty() ? peer_ : client_id_;
  if (state_ == State::kAuthenticating) {
    // Still before CONNACK: the reason goes in CONNACK.
    log(1, fmt::format("Client {} sent a bad {} during authentication: {}.", who, codec::packet_name(type), e.what));
    refuse(e.reason);
    return;
  }
  if (state_ == State::kAwaitConnect) {
    log(1, fmt::format("Bad CONNECT from {}: {} ({}).", peer_, e.what, reason_name(e.reason)));
    if (e.no_connack) {
      close(CloseCause::kProtocolError);  // [MQTT-3.1.2-1]
    } else if (e.reason == Reason::kUnsupportedProtocolVersion) {
      // [MQTT-3.1.2-2] CONNACK 0x01 in the 3.1.1 form, then close.
      send(codec::Connack{false, static_cast<std::uint8_t>(ConnackV3::kUnacceptableProtocolVersion), {}});
      version_ = Version::kV311;
      close(CloseCause::kRefused);
    } else if (version_ == Version::kV5) {
      // MQTT 5: CONNACK with the reason code, then close [MQTT-4.13.1-1]; never DISCONNECT [MQTT-3.14.0-1].
      send(codec::Connack{false, to_byte(e.reason), {}});
      close(CloseCause::kProtocolError);
    } else {
      close(CloseCause::kProtocolError);
    }
    return;
  }
  log(1, fmt::format("Client {} sent a bad {}: {} ({}).", who, codec::packet_name(type), e.what,
                     reason_name(e.reason)));
  // [MQTT-3.1.0-2] a second CONNECT is a Protocol Error; the decoder's 0x84 (unsupported protocol
  // level) is a CONNACK reason code, not one of DISCONNECT's.
  protocol_violation(e.reason == Reason::kUnsupportedProtocolVersion ? Reason::kProtocolError : e.reason, e.what);
}

void ServerConnection::protocol_violation(Reason reason, const char* what) {
  if (state_ == State::kConnected && version_ == Version::kV5) {
    codec::Disconnect d{to_byte(reason), {}};
    if (problem_info_ && what) {
      d.props.reason_string = what;
      // A Reason String must not push a packet over the client's Maximum Packet Size
      // [MQTT-3.14.2-3]: then it is left out.
      std::string probe;
      codec::encode_packet(d, version_, probe);
      if (client_max_packet_ != 0 && probe.size() > client_max_packet_) d.props.reason_string.reset();
    }
    send_to(out_, d);  // not behind acknowledgements that wait: they will not be sent
  }
  // On 3.x a violation after CONNACK just closes the connection [MQTT-4.8.0-1].
  close(CloseCause::kProtocolError);
}

void ServerConnection::close(CloseCause cause) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  cause_ = cause;
  // Offline, the queue no longer holds publishers back (max_queued_messages bounds it instead).
  if (session_ && session_->congested.exchange(false, std::memory_order_relaxed)) handler_.on_drained(*this);
  const std::string& id = client_id_.empty() ? std::string("<unknown>") : client_id_;
  switch (cause) {
    case CloseCause::kClientDisconnect: log(1, fmt::format("Client {} disconnected.", id)); break;
    case CloseCause::kKeepaliveTimeout:
      log(1, fmt::format("Client {} has exceeded timeout, disconnecting.", id));
      break;
    case CloseCause::kProtocolError:
      log(1, fmt::format("Client {} disconnected due to protocol error.", id));
      break;
    case CloseCause::kSocketError:
      log(1, fmt::format("Client {} closed its connection.", id));
      break;
    case CloseCause::kConnectTimeout:
      log(1, fmt::format("Client {} did not send CONNECT in time, disconnecting.", peer_));
      break;
    case CloseCause::kServerShutdown:
    case CloseCause::kTakenOver:
    case CloseCause::kRefused:
    case CloseCause::kSlowConsumer:
    case CloseCause::kStoreFailure:
    case CloseCause::kNotAuthorized:
    case CloseCause::kNone: break;
  }
  handler_.on_closed(*this, cause);
}

void ServerConnection::on_transport_closed() { close(CloseCause::kSocketError); }

void ServerConnection::on_transport_error(const std::string& what) {
  if (state_ == State::kClosed) return;
  log(1, fmt::format("Client {} sent a bad WebSocket frame: {}.", client_id_.empty() ? peer_ : client_id_, what));
  close(CloseCause::kProtocolError);
}

void ServerConnection::on_tick(TimePoint now) {
  if (state_ == State::kAwaitConnect || state_ == State::kAuthenticating) {
    // connect_timeout covers the whole authentication exchange too.
    if (now - opened_ > limits_.connect_timeout) {
      count_limit(Limit::kConnectTimeout);
      close(CloseCause::kConnectTimeout);
    }
    return;
  }
  if (state_ != State::kConnected) return;
  // A paused connection is not read, by the broker's choice: its silence is not the client's.
  if (paused_ || throttled_until_ != TimePoint{}) last_rx_ = now;
  if (session_ && session_->congested.load(std::memory_order_relaxed)) {
    if (congested_since_ == TimePoint{}) congested_since_ = now;
    if (limits_.slow_subscriber_timeout.count() != 0 && now - congested_since_ >= limits_.slow_subscriber_timeout) {
      count_limit(Limit::kSlowSubscriberTimeout);
      log(2, fmt::format("Client {} has not read its messages for {} s (slow_subscriber_timeout), disconnecting.",
                         client_id_, limits_.slow_subscriber_timeout.count()));
      disconnect(Reason::kQuotaExceeded, CloseCause::kSlowConsumer);
      return;
    }
  } else {
    congested_since_ = TimePoint{};
  }
  if (keepalive_ == 0) return;
  // [MQTT-3.1.2-24] close after one and a half keepalive periods without a packet.
  auto limit = std::chrono::milliseconds(std::uint64_t{keepalive_} * 1500);
  if (now - last_rx_ > limit) disconnect(Reason::kKeepAliveTimeout, CloseCause::kKeepaliveTimeout);
}

void ServerConnection::disconnect(Reason reason, CloseCause cause) {
  if (state_ == State::kClosed) return;
  // [MQTT-3.14.0-1] never DISCONNECT before a successful CONNACK.
  if (state_ == State::kConnected && version_ == Version::kV5) send_to(out_, codec::Disconnect{to_byte(reason), {}});
  close(cause);
}

void ServerConnection::send_to(OutBuffer& out, const codec::Packet& p) {
  ++counters_.packets_out;  // $SYS messages/sent
  codec::encode_packet(p, version_, out.bytes);
}

std::uint64_t ServerConnection::hold() {
  if (in_packet_ && packet_gate_ != 0) {
    for (auto& g : gates_) {
      if (g.ticket == packet_gate_) ++g.holds;  // a second batch the same acknowledgement waits for
    }
    return packet_gate_;
  }
  Gate g;
  g.ticket = next_ticket_++;
  g.ack_slot = expect_ack_;
  gates_.push_back(std::move(g));
  if (in_packet_) packet_gate_ = gates_.back().ticket;
  return gates_.back().ticket;
}

bool ServerConnection::take_ack_slot() {
  if (gates_.empty() || !gates_.back().ack_slot) return false;
  gates_.back().ack_slot = false;
  gates_.back().has_ack = true;
  return true;
}

void ServerConnection::complete(std::uint64_t ticket, bool ok) {
  for (auto& g : gates_) {
    if (g.ticket == ticket) {
      g.failed = g.failed || !ok;
      if (g.holds > 0 && --g.holds == 0) g.done = true;
      break;
    }
  }
  release_gates();
}

void ServerConnection::release_gates() {
  while (!gates_.empty() && gates_.front().done && state_ != State::kClosed) {
    Gate g = std::move(gates_.front());
    gates_.pop_front();
    if (g.failed) {
      const bool quota = g.has_ack && version_ == Version::kV5 &&
                         (g.ack_type == PacketType::kPuback || g.ack_type == PacketType::kPubrec);
      // Never an acknowledgement for what the store did not take. A QoS 2 id not stored is
      // forgotten, so a resent PUBLISH is a new one, not a duplicate to acknowledge.
      if (g.has_ack && g.ack_type == PacketType::kPubrec && session_) session_->inbound_qos2.erase(g.ack_id);
      if (!quota) {
        log(2, fmt::format("Client {}: the store could not write its {}, closing the connection.", client_id_,
                           g.has_ack ? codec::packet_name(g.ack_type) : "session state"));
        gates_.clear();
        close(CloseCause::kStoreFailure);
        return;
      }
      log(2, fmt::format("Client {}: the store could not write the message of {} {}; answered 0x97.", client_id_,
                         codec::packet_name(g.ack_type), g.ack_id));
      g.ack_reason = to_byte(Reason::kQuotaExceeded);
    }
    if (g.has_ack) {
      if (g.ack_type == PacketType::kSuback || g.ack_type == PacketType::kUnsuback) {
        send_to(out_, codec::SubAck{g.ack_type, g.ack_id, std::move(g.ack_codes), {}});
        if (limits_.verbose) log(0, fmt::format("Sending {} to {}", codec::packet_name(g.ack_type), client_id_));
      } else {
        emit_ack(out_, g.ack_type, g.ack_id, g.ack_reason);
      }
    }
    out_.append(std::move(g.held));
  }
}

std::size_t ServerConnection::buffered() const {
  std::size_t n = out_.size();
  for (const auto& g : gates_) n += g.held.size();
  return n;
}

void ServerConnection::send_ack(PacketType t, std::uint16_t id, std::uint8_t reason) {
  if (take_ack_slot()) {
    auto& g = gates_.back();
    g.ack_type = t;
    g.ack_id = id;
    g.ack_reason = reason;
    return;
  }
  emit_ack(sink(), t, id, reason);  // behind any acknowledgement that waits: the order is kept
}

void ServerConnection::emit_ack(OutBuffer& out, PacketType t, std::uint16_t id, std::uint8_t reason) {
  codec::Ack a{t, id, version_ == Version::kV5 ? reason : std::uint8_t{0}, {}};
  send_to(out, a);
  if (limits_.verbose) {
    if (t == PacketType::kPubcomp || t == PacketType::kPubrel) {
      log(0, fmt::format("Sending {} to {} (m{})", codec::packet_name(t), client_id_, id));
    } else {
      log(0, fmt::format("Sending {} to {} (m{}, rc{})", codec::packet_name(t), client_id_, id, a.reason));
    }
  }
}

void ServerConnection::handle(codec::Packet& p, const codec::FrameHeader& h) {
  in_packet_ = true;
  packet_gate_ = 0;
  handle_packet(p, h);
  in_packet_ = false;
  expect_ack_ = false;
}

void ServerConnection::handle_packet(codec::Packet& p, const codec::FrameHeader& h) {
  if (state_ == State::kAuthenticating && h.type() != PacketType::kAuth && h.type() != PacketType::kDisconnect) {
    // Only AUTH (or DISCONNECT) may follow a CONNECT with an authentication method until CONNACK
    // (section 4.12): anything else ends the attempt.
    log(1, fmt::format("Client {} sent {} during authentication.", client_id_, codec::packet_name(h.type())));
    refuse(Reason::kProtocolError);
    return;
  }
  switch (h.type()) {
    case PacketType::kConnect:
      if (state_ != State::kAwaitConnect) {
        // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
        log(1, fmt::format("Client {} sent a second CONNECT.", client_id_));
        protocol_violation(Reason::kProtocolError, "second CONNECT");
        return;
      }
      handle_connect(std::get<codec::Connect>(p));
      return;
    case PacketType::kPublish: handle_publish(std::get<codec::Publish>(p)); return;
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: handle_ack(std::get<codec::Ack>(p)); return;
    case PacketType::kSubscribe: handle_subscribe(std::get<codec::Subscribe>(p)); return;
    case PacketType::kUnsubscribe: handle_unsubscribe(std::get<codec::Unsubscribe>(p)); return;
    case PacketType::kPingreq:
      if (limits_.verbose) log(0, fmt::format("Received PINGREQ from {}", client_id_));
      send(codec::Pingresp{});
      if (limits_.verbose) log(0, fmt::format("Sending PINGRESP to {}", client_id_));
      return;
    case PacketType::kDisconnect: handle_disconnect(std::get<codec::Disconnect>(p)); return;
    case PacketType::kAuth: handle_auth(std::get<codec::Auth>(p)); return;
    default:
      log(1, fmt::format("Client {} sent {}, which only a server sends.", client_id_,
                         codec::packet_name(h.type())));
      protocol_violation(Reason::kProtocolError, "packet type not allowed from a client");
      return;
  }
}

void ServerConnection::handle_connect(codec::Connect& c) {
  ++counters_.connects;  // $SYS load/connections
  version_ = c.version;
  client_id_ = c.client_id;
  keepalive_ = c.keepalive;
  clean_start_ = c.clean_start;
  if (identity_from_transport_) {
    c.username = username_;  // the broker's checks see the transport's identity and no password
    c.password.reset();
  } else {
    username_ = c.username;
  }
  if (c.will) will_ = std::make_unique<codec::Will>(std::move(*c.will));  // heap: most clients have none
  const bool v5 = version_ == Version::kV5;
  if (v5) {
    session_expiry_ = c.props.session_expiry.value_or(0);
    client_receive_max_ = c.props.receive_maximum.value_or(65535);
    client_max_packet_ = c.props.maximum_packet_size.value_or(0);
    client_alias_max_ = c.props.topic_alias_maximum.value_or(0);
    problem_info_ = c.props.request_problem_info.value_or(1) != 0;
  }
  if (version_ == Version::kV31) {
    // MQTT 3.1: client identifiers are 1 to 23 characters.
    if (client_id_.empty() || (limits_.v31_client_id_max != 0 && client_id_.size() > limits_.v31_client_id_max)) {
      refuse(Reason::kClientIdentifierNotValid);
      return;
    }
  }
  if (client_id_.empty()) {
    if (version_ == Version::kV311 && !clean_start_) {
      refuse(Reason::kClientIdentifierNotValid);  // [MQTT-3.1.3-8]
      return;
    }
    if (!limits_.allow_zero_length_clientid) {
      refuse(Reason::kClientIdentifierNotValid);  // [MQTT-3.1.3-9]
      return;
    }
    client_id_ = handler_.assign_client_id(limits_.auto_id_prefix);  // [MQTT-3.1.3-6]
    if (v5) c.props.assigned_client_id = client_id_;           // [MQTT-3.2.2-16]
  } else if (client_id_.size() > limits_.max_client_id_length) {
    // max_clientid_len: the id is copied into every message the client publishes, so its length is
    // bounded like a payload's. 5.0: CONNACK 0x85; 3.x: 0x02 Identifier rejected.
    count_limit(Limit::kMaxClientidLen);
    log(1, fmt::format("Client from {} sent a client identifier of {} bytes (max_clientid_len {}).", peer_,
                       client_id_.size(), limits_.max_client_id_length));
    refuse(Reason::kClientIdentifierNotValid);
    return;
  }
  if (identity_from_transport_ && username_->empty()) {
    refuse(Reason::kBadUserNameOrPassword);  // use_identity_as_username without a certificate
    return;
  }
  if (limits_.max_keepalive != 0 && (keepalive_ > limits_.max_keepalive || keepalive_ == 0) &&
      limits_.max_keepalive != 65535) {
    if (v5) {
      keepalive_ = limits_.max_keepalive;  // sent back as Server Keep Alive [MQTT-3.2.2-21]
      c.props.server_keep_alive = keepalive_;
    } else {
      refuse(Reason::kClientIdentifierNotValid);  // Mosquitto 2.0: 3.x clients are refused
      return;
    }
  }
  if (will_) {
    if (will_->qos > limits_.max_qos) {
      refuse(Reason::kQosNotSupported);  // [MQTT-3.2.2-12]
      return;
    }
    if (will_->retain && !limits_.retain_available) {
      refuse(Reason::kRetainNotSupported);  // [MQTT-3.2.2-13]
      return;
    }
    if (auto over = topic_over_limit(will_->topic, will_->topic)) {
      // The will is published like any PUBLISH, so its topic meets the same limits: 5.0 gets CONNACK
      // 0x90 Topic Name invalid; 3.x has no such return code and is closed, as for a malformed will topic.
      count_limit(*over);
      log(1, fmt::format("Client {} has a will topic beyond {}.", client_id_, limit_name(*over)));
      if (v5) {
        refuse(Reason::kTopicNameInvalid);
      } else {
        close(CloseCause::kProtocolError);
      }
      return;
    }
  }
  request_response_info_ = v5 && c.props.request_response_info.value_or(0) == 1;
  if (v5 && c.props.auth_data && !c.props.auth_method) {
    // Section 3.1.2.11.10: Authentication Data without an Authentication Method is a Protocol Error.
    refuse(Reason::kProtocolError);
    return;
  }
  if (v5 && c.props.auth_method) {
    // Enhanced authentication (section 4.12): the handler runs the method; CONNECT waits for it.
    auth_method_ = *c.props.auth_method;
    std::string data = c.props.auth_data.value_or("");
    pending_connect_ = std::make_unique<codec::Connect>(std::move(c));
    state_ = State::kAuthenticating;
    apply_auth(handler_.auth_start(*this, auth_method_, data, false));
    return;
  }
  state_ = State::kConnecting;
  handler_.on_connect(*this, c);
}

void ServerConnection::send_auth(std::uint8_t reason, const std::string& data) {
  codec::Auth a;
  a.reason = reason;
  a.props.auth_method = auth_method_;
  if (!data.empty()) a.props.auth_data = data;
  send(a);
  if (limits_.verbose) log(0, fmt::format("Sending AUTH to {} (rc{}, {})", client_id_, reason, auth_method_));
}

void ServerConnection::apply_auth(AuthStep step) {
  const bool connecting = state_ == State::kAuthenticating;
  switch (step.kind) {
    case AuthStep::kUnsupportedMethod:
      if (connecting) {
        refuse(Reason::kBadAuthenticationMethod);  // section 4.12: method not supported, CONNACK 0x8C
      } else {
        protocol_violation(Reason::kBadAuthenticationMethod, "authentication method not supported");
      }
      return;
    case AuthStep::kContinue: send_auth(to_byte(Reason::kContinueAuthentication), step.data); return;
    case AuthStep::kFail:
      log(1, fmt::format("Client {} failed authentication ({}).", client_id_, auth_method_));
      if (connecting) {
        refuse(step.reason);
      } else {
        disconnect(step.reason, CloseCause::kProtocolError);  // a failed re-authentication (section 4.12.1)
      }
      return;
    case AuthStep::kSuccess:
      if (connecting) {
        auth_success_data_ = std::move(step.data);
        state_ = State::kConnecting;
        codec::Connect c = std::move(*pending_connect_);
        pending_connect_.reset();
        handler_.on_connect(*this, c);  // CONNACK carries the method and the final data
      } else {
        reauthenticating_ = false;
        send_auth(to_byte(Reason::kSuccess), step.data);
      }
      return;
  }
}

void ServerConnection::handle_auth(const codec::Auth& a) {
  const std::string method = a.props.auth_method.value_or("");
  const std::string data = a.props.auth_data.value_or("");
  if (limits_.verbose) log(0, fmt::format("Received AUTH from {} (rc{}, {})", client_id_, a.reason, method));
  if (auth_method_.empty()) {
    // AUTH without a method agreed in CONNECT (section 4.12): protocol error.
    log(1, fmt::format("Client {} sent AUTH without an authentication method.", client_id_));
    protocol_violation(Reason::kProtocolError, "unexpected AUTH");
    return;
  }
  if (method != auth_method_) {
    // The method must stay the one of CONNECT, also when re-authenticating (section 4.12.1).
    if (state_ == State::kAuthenticating) {
      refuse(Reason::kProtocolError);
    } else {
      protocol_violation(Reason::kProtocolError, "authentication method changed");
    }
    return;
  }
  if (a.reason == to_byte(Reason::kContinueAuthentication) && (state_ == State::kAuthenticating || reauthenticating_)) {
    apply_auth(handler_.auth_continue(*this, data));
  } else if (a.reason == to_byte(Reason::kReAuthenticate) && state_ == State::kConnected && !reauthenticating_) {
    reauthenticating_ = true;
    apply_auth(handler_.auth_start(*this, auth_method_, data, true));
  } else if (state_ == State::kAuthenticating) {
    refuse(Reason::kProtocolError);
  } else {
    protocol_violation(Reason::kProtocolError, "unexpected AUTH reason code");
  }
}

void ServerConnection::accept(SessionState* session, bool session_present, codec::Properties props) {
  if (state_ != State::kConnecting) return;
  session_ = session;
  state_ = State::kConnected;
  const bool v5 = version_ == Version::kV5;
  if (version_ == Version::kV31) session_present = false;  // 3.1 has no session present flag
  {
    std::string line = fmt::format("New client connected from {} as {} (p{}, c{}, k{}", peer_, client_id_,
                                   protocol_number(version_), clean_start_ ? 1 : 0, keepalive_);
    if (username_) line += fmt::format(", u'{}'", *username_);
    line += ").";
    log(1, line);
  }
  if (limits_.verbose) {
    if (will_) {
      log(0, fmt::format("Will message specified ({} bytes) (r{}, q{}).", will_->payload.size(),
                         will_->retain ? 1 : 0, will_->qos));
      log(0, fmt::format("\t{}", will_->topic));
    } else {
      log(0, "No will message specified.");
    }
  }
  codec::Connack ack{session_present, 0, {}};
  if (v5) {
    ack.props = std::move(props);
    if (limits_.receive_maximum != 65535) ack.props.receive_maximum = limits_.receive_maximum;
    if (limits_.max_topic_alias != 0) ack.props.topic_alias_maximum = limits_.max_topic_alias;
    ack.props.maximum_packet_size = limits_.max_packet_size;
    if (limits_.max_qos < 2) ack.props.maximum_qos = limits_.max_qos;  // [MQTT-3.2.2-9]; SUBSCRIBE still accepted [MQTT-3.2.2-10]
    if (!limits_.retain_available) ack.props.retain_available = 0;
    if (!limits_.wildcard_subscription_available) ack.props.wildcard_sub_available = 0;
    if (!limits_.subscription_identifier_available) ack.props.sub_id_available = 0;
    if (!limits_.shared_subscription_available) ack.props.shared_sub_available = 0;
    // Request Response Information: a per-client topic prefix, documented in configuration.md.
    if (request_response_info_) ack.props.response_info = limits_.response_topic_prefix + client_id_;
    if (!auth_method_.empty()) {
      ack.props.auth_method = auth_method_;
      if (!auth_success_data_.empty()) ack.props.auth_data = std::move(auth_success_data_);
    }
  }
  send(ack);
  if (limits_.verbose) {
    log(0, fmt::format("Sending CONNACK to {} ({}, 0)", client_id_, session_present ? 1 : 0));
  }
  // [MQTT-4.4.0-1] resend unacknowledged PUBLISH (DUP=1) and PUBREL, in their original order.
  // Onward delivery has started for these, so an expired one is resent all the same
  // [MQTT-3.3.2-5]; one that no longer fits the client's Maximum Packet Size is given up, which frees
  // its slot in the window [MQTT-3.1.2-25].
  for (auto it = session_->inflight.begin(); it != session_->inflight.end();) {
    if (it->released) {
      send_ack(PacketType::kPubrel, it->packet_id, 0);
    } else if (!send_publish(it->delivery, it->packet_id, true)) {
      if (it->delivery.seq) handler_.on_stored_flight(*this, it->delivery, it->packet_id, ConnectionHandler::Flight::kDone);
      it = session_->inflight.erase(it);
      continue;
    }
    ++it;
  }
  pump_queue();
}

void ServerConnection::refuse(Reason reason) {
  if (state_ == State::kClosed) return;
  std::uint8_t code = version_ == Version::kV5 ? to_byte(reason) : static_cast<std::uint8_t>(to_v3_connack(reason));
  send(codec::Connack{false, code, {}});
  log(1, fmt::format("Refused client {} from {}: {}.", client_id_, peer_, reason_name(reason)));
  if (limits_.verbose) log(0, fmt::format("Sending CONNACK to {} (0, {})", client_id_, code));
  close(CloseCause::kRefused);
}

void ServerConnection::handle_publish(codec::Publish& p) {
  ++counters_.publish_in;  // $SYS publish/messages/received, publish/bytes/received
  counters_.publish_bytes_in += p.payload.size();
  const bool v5 = version_ == Version::kV5;
  if (v5) {
    if (!p.props.subscription_ids.empty()) {
      protocol_violation(Reason::kProtocolError, "subscription identifier in PUBLISH");  // [MQTT-3.3.4-6]
      return;
    }
    if (p.props.topic_alias) {
      std::uint16_t alias = *p.props.topic_alias;
      if (alias == 0 || alias > limits_.max_topic_alias) {
        protocol_violation(Reason::kTopicAliasInvalid, "topic alias out of range");  // [MQTT-3.3.2-8], [MQTT-3.3.2-9]
        return;
      }
      if (inbound_aliases_.size() < limits_.max_topic_alias) inbound_aliases_.resize(limits_.max_topic_alias);
      std::string& slot = inbound_aliases_[alias - 1];
      if (p.topic.empty()) {
        if (slot.empty()) {
          protocol_violation(Reason::kProtocolError, "unknown topic alias");
          return;
        }
        p.topic = slot;
      } else {
        slot = p.topic;
      }
      p.props.topic_alias.reset();
    } else if (p.topic.empty()) {
      protocol_violation(Reason::kProtocolError, "empty topic without topic alias");
      return;
    }
  }
  if (auto over = topic_over_limit(p.topic, p.topic)) [[unlikely]] {
    // max_topic_length / max_topic_levels. 5.0: DISCONNECT 0x90, the code for a Topic Name that "is
    // correct, but is not accepted by this Server" (also at QoS 0, which has no acknowledgement to
    // carry it); 3.x: closed.
    count_limit(*over);
    log(1, fmt::format("Client {} sent a PUBLISH whose topic exceeds {} ({} bytes, {} levels).", client_id_,
                       limit_name(*over), p.topic.size(), topic_levels(p.topic)));
    protocol_violation(Reason::kTopicNameInvalid,
                       *over == Limit::kMaxTopicLength ? "topic longer than allowed" : "topic deeper than allowed");
    return;
  }
  if (limits_.verbose) {
    log(0, publish_log_line(false, client_id_, p.dup, p.qos, p.retain, p.packet_id, p.topic, p.payload.size()));
  }
  if (p.qos > limits_.max_qos) {
    // Section 3.2.2.3.4: a PUBLISH above the advertised Maximum QoS gets DISCONNECT 0x9B.
    protocol_violation(Reason::kQosNotSupported, "QoS above the server's maximum");
    return;
  }
  if (p.retain && !limits_.retain_available) {
    // Section 3.3.1.3: RETAIN 1 while Retain Available is 0 gets DISCONNECT 0x9A.
    protocol_violation(Reason::kRetainNotSupported, "retain not available");
    return;
  }
  if (v5 && limits_.validate_utf8_payload && p.props.payload_format.value_or(0) == 1 &&
      !valid_utf8_payload(p.payload)) {
    // [MQTT-3.3.2-4] allows the check; the answer is 0x99 in the acknowledgement, or DISCONNECT at QoS 0.
    log(1, fmt::format("Client {} sent a payload that is not UTF-8 despite its Payload Format Indicator.", client_id_));
    if (p.qos == 1) {
      send_ack(PacketType::kPuback, p.packet_id, to_byte(Reason::kPayloadFormatInvalid));
    } else if (p.qos == 2) {
      send_ack(PacketType::kPubrec, p.packet_id, to_byte(Reason::kPayloadFormatInvalid));
    } else {
      protocol_violation(Reason::kPayloadFormatInvalid, "payload is not UTF-8");
    }
    return;
  }
  if (limits_.message_size_limit != 0 && p.payload.size() > limits_.message_size_limit) {
    count_limit(Limit::kMessageSizeLimit);
    log(1, fmt::format("Dropped too large PUBLISH from {} ({} bytes).", client_id_, p.payload.size()));
    // 0x95 is not a PUBACK/PUBREC code; message_size_limit is an administrative limit: 0x97.
    if (p.qos == 1) send_ack(PacketType::kPuback, p.packet_id, to_byte(Reason::kQuotaExceeded));
    if (p.qos == 2) send_ack(PacketType::kPubrec, p.packet_id, to_byte(Reason::kQuotaExceeded));
    return;
  }
  if (p.qos == 2) {
    auto& held = session_->inbound_qos2;
    if (held.count(p.packet_id)) {
      // A resent PUBLISH with a held packet id: acknowledge, never forward twice [MQTT-4.3.3-9]
      // (behind the first PUBREC if that still waits for the store).
      send_ack(PacketType::kPubrec, p.packet_id, 0);
      return;
    }
    if (v5 && held.size() >= limits_.receive_maximum) {
      protocol_violation(Reason::kReceiveMaximumExceeded, "receive maximum exceeded");  // [MQTT-3.3.4-9]
      return;
    }
  } else if (p.qos == 1 && v5 && session_->inbound_qos2.count(p.packet_id)) [[unlikely]] {
    // The id of a QoS 2 message still waiting for its PUBREL: 5.0 says 0x91 Packet Identifier in use,
    // and the message is not forwarded (section 2.2.1: an id is free only once its flow completed).
    send_ack(PacketType::kPuback, p.packet_id, to_byte(Reason::kPacketIdentifierInUse));
    return;
  }
  MessagePtr msg = Message::make(p.topic, p.payload, p.qos, p.retain, client_id_, last_rx_, v5 ? &p.props : nullptr);
  if (Reason auth = handler_.authorize_publish(*this, *msg); to_byte(auth) >= 0x80) {
    switch (p.qos) {
      case 0: break;
      case 1: send_ack(PacketType::kPuback, p.packet_id, to_byte(auth)); break;
      case 2:
        if (v5) {
          send_ack(PacketType::kPubrec, p.packet_id, to_byte(auth));  // the flow ends here
        } else {
          session_->inbound_qos2.emplace(p.packet_id, nullptr);  // PUBREL gets PUBCOMP, nothing routed
          send_ack(PacketType::kPubrec, p.packet_id, 0);
        }
        break;
    }
    return;
  }
  switch (p.qos) {
    case 0: handler_.on_publish(*this, msg); break;
    case 1: {
      expect_ack_ = true;  // a durable message's PUBACK waits for the store
      Reason r = handler_.on_publish(*this, msg);
      if (state_ == State::kClosed) break;  // refused and disconnected (3.x: the store is full)
      send_ack(PacketType::kPuback, p.packet_id, to_byte(r));  // [MQTT-4.3.2-2]
      break;
    }
    case 2:
      // Held until PUBREL, then forwarded (the order Mosquitto's log shows) [MQTT-4.3.3-2].
      session_->inbound_qos2.emplace(p.packet_id, msg);
      expect_ack_ = true;  // a persistent session's held id is stored before PUBREC
      if (Reason r = handler_.on_qos2_held(*this, p.packet_id, msg); to_byte(r) >= 0x80) {
        if (session_) session_->inbound_qos2.erase(p.packet_id);
        if (state_ != State::kClosed) send_ack(PacketType::kPubrec, p.packet_id, to_byte(r));
        break;
      }
      send_ack(PacketType::kPubrec, p.packet_id, 0);
      break;
  }
}

void ServerConnection::handle_ack(const codec::Ack& a) {
  auto& inflight = session_->inflight;
  auto find = [&](std::uint16_t id) {
    for (auto it = inflight.begin(); it != inflight.end(); ++it) {
      if (it->packet_id == id) return it;
    }
    return inflight.end();
  };
  switch (a.type) {
    case PacketType::kPuback: {
      if (limits_.verbose) log(0, fmt::format("Received PUBACK from {} (Mid: {}, RC:{})", client_id_, a.packet_id, a.reason));
      auto it = find(a.packet_id);
      if (it != inflight.end() && it->delivery.qos == 1) {
        if (it->delivery.seq) handler_.on_stored_flight(*this, it->delivery, it->packet_id, ConnectionHandler::Flight::kDone);
        inflight.erase(it);
        pump_queue();
      }
      return;
    }
    case PacketType::kPubrec: {
      if (limits_.verbose) log(0, fmt::format("Received PUBREC from {} (Mid: {})", client_id_, a.packet_id));
      auto it = find(a.packet_id);
      if (it == inflight.end() || it->delivery.qos != 2) {
        send_ack(PacketType::kPubrel, a.packet_id, to_byte(Reason::kPacketIdentifierNotFound));
        return;
      }
      if (a.reason >= 0x80) {  // 5.0: the receiver refused the message; the flow ends here.
        if (it->delivery.seq) handler_.on_stored_flight(*this, it->delivery, it->packet_id, ConnectionHandler::Flight::kDone);
        inflight.erase(it);
        pump_queue();
        return;
      }
      if (it->released) {  // a repeated PUBREC: PUBREL again
        send_ack(PacketType::kPubrel, a.packet_id, 0);
        return;
      }
      it->released = true;
      if (it->delivery.seq) {
        // The PUBREL goes out once "released" is stored, so a restart never sends the PUBLISH again
        // after the client was told the flow is over. The store's record keeps the message.
        handler_.on_stored_flight(*this, it->delivery, it->packet_id, ConnectionHandler::Flight::kReleased);
      } else {
        it->delivery.msg.reset();  // [MQTT-4.3.3-4] the message is no longer needed after PUBREC
      }
      send_ack(PacketType::kPubrel, a.packet_id, 0);
      return;
    }
    case PacketType::kPubrel: {
      if (limits_.verbose) log(0, fmt::format("Received PUBREL from {} (Mid: {})", client_id_, a.packet_id));
      auto& held = session_->inbound_qos2;
      auto it = held.find(a.packet_id);
      if (it == held.end()) {
        send_ack(PacketType::kPubcomp, a.packet_id, to_byte(Reason::kPacketIdentifierNotFound));
        return;
      }
      MessagePtr msg = std::move(it->second);
      held.erase(it);
      expect_ack_ = true;  // PUBCOMP waits until the deliveries are stored
      if (msg) handler_.on_publish(*this, msg);  // null: refused at PUBLISH, acknowledged only
      handler_.on_qos2_released(*this, a.packet_id, msg);
      send_ack(PacketType::kPubcomp, a.packet_id, 0);  // [MQTT-4.3.3-11]
      return;
    }
    case PacketType::kPubcomp: {
      if (limits_.verbose) log(0, fmt::format("Received PUBCOMP from {} (Mid: {}, RC:{})", client_id_, a.packet_id, a.reason));
      auto it = find(a.packet_id);
      if (it != inflight.end() && it->released) {
        if (it->delivery.seq) handler_.on_stored_flight(*this, it->delivery, it->packet_id, ConnectionHandler::Flight::kDone);
        inflight.erase(it);
        pump_queue();
      }
      return;
    }
    default: return;
  }
}

void ServerConnection::handle_subscribe(const codec::Subscribe& s) {
  const bool v5 = version_ == Version::kV5;
  if (limits_.verbose) {
    log(0, fmt::format("Received SUBSCRIBE from {}", client_id_));
    for (const auto& t : s.topics) log(0, fmt::format("\t{} (QoS {})", t.filter, t.qos));
  }
  std::vector<std::uint8_t> codes(s.topics.size(), 0);
  bool over_logged = false;  // one line per SUBSCRIBE, however many filters are refused
  for (std::size_t i = 0; i < s.topics.size(); ++i) {
    std::string_view filter = s.topics[i].filter;
    std::string_view share_name;
    std::string_view inner;
    auto shared = parse_shared_subscription(filter, share_name, inner);
    if (shared == SharedFilter::kInvalid) {
      // A bad share name, or none, or no filter after it [MQTT-4.8.2-1], [MQTT-4.8.2-2]: this filter
      // fails (5.0: 0x8F Topic Filter invalid; 3.1.1: 0x80 Failure), the other filters go on.
      codes[i] = v5 ? to_byte(Reason::kTopicFilterInvalid) : std::uint8_t{0x80};
      continue;
    }
    if (shared == SharedFilter::kShared) {
      if (!limits_.shared_subscription_available) {
        // Section 3.2.2.3.16: switched off, so refused per filter (0x9E; 3.x: 0x80).
        codes[i] = v5 ? to_byte(Reason::kSharedSubscriptionsNotSupported) : std::uint8_t{0x80};
        continue;
      }
      if (s.topics[i].no_local) {
        // [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error.
        protocol_violation(Reason::kProtocolError, "no local on a shared subscription");
        return;
      }
      filter = inner;
    }
    if (!valid_topic_filter(filter)) {
      if (!v5) {
        protocol_violation(Reason::kTopicFilterInvalid, "invalid topic filter");  // [MQTT-4.7.1-1]
        return;
      }
      codes[i] = to_byte(Reason::kTopicFilterInvalid);
    } else if (auto over = topic_over_limit(s.topics[i].filter, filter)) {
      // max_topic_length / max_topic_levels: this filter fails (5.0: 0x8F, "correctly formed but not
      // allowed"; 3.1.1: 0x80), the others go on. Levels are those of a shared subscription's filter.
      count_limit(*over);
      if (!over_logged) {
        log(1, fmt::format("Client {} subscribed to a filter beyond {}: refused.", client_id_, limit_name(*over)));
        over_logged = true;
      }
      codes[i] = v5 ? to_byte(Reason::kTopicFilterInvalid) : std::uint8_t{0x80};
    } else if (!limits_.wildcard_subscription_available && filter.find_first_of("+#") != std::string_view::npos) {
      // Section 3.2.2.3.14: wildcards switched off, refused per filter (0xA2; 3.x: 0x80).
      codes[i] = v5 ? to_byte(Reason::kWildcardSubscriptionsNotSupported) : std::uint8_t{0x80};
    } else if (v5 && !limits_.subscription_identifier_available && !s.props.subscription_ids.empty()) {
      // Section 3.2.2.3.15: identifiers switched off, so every filter of this SUBSCRIBE gets 0xA1.
      codes[i] = to_byte(Reason::kSubscriptionIdentifiersNotSupported);
    } else {
      codes[i] = std::min(s.topics[i].qos, limits_.max_qos);  // granted at most max_qos
    }
  }
  expect_ack_ = true;  // a persistent session's SUBACK waits for its stored subscriptions
  handler_.on_subscribe(*this, s, codes);
  if (limits_.verbose) {
    for (std::size_t i = 0; i < s.topics.size(); ++i) {
      log(0, fmt::format("{} {} {}", client_id_, codes[i], s.topics[i].filter));
    }
  }
  // [MQTT-3.8.4-1] SUBACK with the same packet id, one code per filter [MQTT-3.8.4-6].
  if (take_ack_slot()) {
    gates_.back().ack_type = PacketType::kSuback;
    gates_.back().ack_id = s.packet_id;
    gates_.back().ack_codes = codes;
  } else {
    send(codec::SubAck{PacketType::kSuback, s.packet_id, codes, {}});
    if (limits_.verbose) log(0, fmt::format("Sending SUBACK to {}", client_id_));
  }
  expect_ack_ = false;
  handler_.on_subscribed(*this, s, codes);
}

void ServerConnection::handle_unsubscribe(const codec::Unsubscribe& u) {
  if (limits_.verbose) {
    log(0, fmt::format("Received UNSUBSCRIBE from {}", client_id_));
    for (const auto& f : u.filters) log(0, fmt::format("\t{}", f));
  }
  std::vector<std::uint8_t> codes(u.filters.size(), 0);
  for (std::size_t i = 0; i < u.filters.size(); ++i) {
    if (!valid_topic_filter(u.filters[i])) {
      if (version_ != Version::kV5) {  // [MQTT-4.7.1-2], [MQTT-4.7.1-3], [MQTT-4.7.3-1]
        protocol_violation(Reason::kTopicFilterInvalid, "invalid topic filter");
        return;
      }
      codes[i] = to_byte(Reason::kTopicFilterInvalid);  // 5.0: UNSUBACK 0x8F
    }
  }
  expect_ack_ = true;
  handler_.on_unsubscribe(*this, u, codes);
  if (take_ack_slot()) {
    gates_.back().ack_type = PacketType::kUnsuback;
    gates_.back().ack_id = u.packet_id;
    gates_.back().ack_codes = std::move(codes);
  } else {
    send(codec::SubAck{PacketType::kUnsuback, u.packet_id, codes, {}});  // [MQTT-3.10.4-4]
    if (limits_.verbose) log(0, fmt::format("Sending UNSUBACK to {}", client_id_));
  }
  expect_ack_ = false;
}

void ServerConnection::handle_disconnect(const codec::Disconnect& d) {
  if (limits_.verbose) log(0, fmt::format("Received DISCONNECT from {}", client_id_));
  if (version_ == Version::kV5) {
    if (d.props.session_expiry) {
      if (session_expiry_ == 0 && *d.props.session_expiry != 0) {
        protocol_violation(Reason::kProtocolError, "session expiry changed from 0");  // [MQTT-3.14.2-2]
        return;
      }
      session_expiry_ = *d.props.session_expiry;
    }
    // Only a normal disconnection (0x00) deletes the will [MQTT-3.1.2-8]; 0x04 asks for it, and so
    // does any error the client reports (0x80 and above).
    if (d.reason == to_byte(Reason::kSuccess)) will_.reset();
  } else {
    will_.reset();  // [MQTT-3.14.4-3] discard the will on DISCONNECT
  }
  close(CloseCause::kClientDisconnect);
}

std::size_t ServerConnection::window() const {
  std::size_t w = limits_.max_inflight == 0 ? 65535 : limits_.max_inflight;
  return std::min<std::size_t>(w, client_receive_max_);
}

void ServerConnection::deliver(Delivery&& d) {
  if (state_ != State::kConnected || session_ == nullptr) return;
  if (d.qos == 0) {
    if (buffered() > limits_.max_outbound_bytes) {
      ++dropped_qos0_;  // loss policy: QoS 0 may be dropped for a slow subscriber, counted
      return;
    }
    send_publish(d, 0, false);
    return;
  }
  if (session_->queue.empty() && session_->inflight.size() < window()) {
    start_flight(std::move(d));
    return;
  }
  // Loss policy: an online subscriber's QoS 1/2 messages are not dropped at max_queued_messages;
  // above the high-water mark the session is flagged congested and its publishers pause. The hard
  // cap only guards memory against publishers that cannot be paused in time.
  std::size_t high = congestion_high_water();
  if (session_->queue.size() >= high * 100) {
    ++dropped_queue_;
    count_limit(Limit::kMaxQueuedMessages);
    if (d.seq) handler_.on_stored_flight(*this, d, 0, ConnectionHandler::Flight::kDone);
    return;
  }
  // The in-flight window is full (or older messages wait): counted, as the limit that held it back.
  if (session_->inflight.size() >= window()) count_limit(Limit::kMaxInflightMessages);
  session_->queued_bytes += d.msg->payload.size();
  session_->queue.push_back(std::move(d));
  session_->update_congestion(high);
}

std::size_t ServerConnection::congestion_high_water() const {
  return limits_.max_queued_messages ? limits_.max_queued_messages : 1000;
}

void ServerConnection::start_flight(Delivery d) {
  std::uint16_t id = session_->allocate_packet_id();
  session_->inflight.push_back(OutboundFlight{id, std::move(d), false});
  const Delivery& f = session_->inflight.back().delivery;
  // A stored QoS 2 delivery goes out once its packet id is stored: after a restart it is resent
  // with that id, so the client can recognise it [MQTT-4.3.3-x exactly once].
  if (f.seq && f.qos == 2) handler_.on_stored_flight(*this, f, id, ConnectionHandler::Flight::kSent);
  // [MQTT-3.1.2-25] a message too large for the client is discarded as if its flow had completed.
  if (!send_publish(f, id, f.dup)) {
    if (f.seq) handler_.on_stored_flight(*this, f, id, ConnectionHandler::Flight::kDone);
    session_->inflight.pop_back();
  }
}

void ServerConnection::pump_queue() {
  auto& q = session_->queue;
  while (!q.empty() && session_->inflight.size() < window() && state_ == State::kConnected) {
    Delivery d = std::move(q.front());
    q.pop_front();
    session_->queued_bytes -= d.msg->payload.size();
    if (d.qos == 0) {
      send_publish(d, 0, false);
    } else {
      start_flight(std::move(d));
    }
  }
  if (session_->update_congestion(congestion_high_water())) handler_.on_drained(*this);
}

bool ServerConnection::send_publish(const Delivery& d, std::uint16_t packet_id, bool dup) {
  const Message& m = *d.msg;
  const bool v5 = version_ == Version::kV5;
  // Message expiry [MQTT-3.3.2-5]: an expired message is not sent; otherwise the interval forwarded
  // is what is left of it [MQTT-3.3.2-6]. Properties are copied only for such messages.
  const codec::Properties* props = &m.props();
  std::unique_ptr<codec::Properties> adjusted;  // a large struct: built only for such a message
  if (m.has_props() && props->message_expiry) {
    auto waited = std::chrono::duration_cast<std::chrono::seconds>(limits_.clock() - m.created).count();
    if (waited < 0) waited = 0;
    const bool expired = static_cast<std::uint64_t>(waited) >= *props->message_expiry;
    if (expired && !dup) {
      ++dropped_expired_;
      return false;
    }
    if (v5) {
      // A resend (delivery already started) of an expired message says 0 seconds are left.
      adjusted = std::make_unique<codec::Properties>(*props);
      adjusted->message_expiry = expired ? 0u : static_cast<std::uint32_t>(*props->message_expiry - waited);
      props = &*adjusted;
    }
  }
  // Outbound topic alias [MQTT-3.3.2-10..12 via the client's Topic Alias Maximum].
  std::uint16_t alias = 0;
  bool alias_known = false;
  if (v5 && client_alias_max_ != 0) {
    auto it = outbound_aliases_.find(m.topic);  // no string built per PUBLISH
    if (it != outbound_aliases_.end()) {
      alias = it->second;
      alias_known = true;
    } else if (outbound_aliases_.size() < client_alias_max_) {
      alias = static_cast<std::uint16_t>(outbound_aliases_.size() + 1);
    }
  }
  std::size_t props_len = 0;
  if (v5) {
    if (m.has_props()) props_len = codec::properties_size(*props);
    for (auto id : d.sub_ids) props_len += 1 + codec::varint_size(id);
    if (alias != 0) props_len += 3;
  }
  const std::size_t topic_len = alias_known ? 0 : m.topic.size();
  std::size_t remaining = 2 + topic_len + (d.qos > 0 ? 2 : 0) +
                          (v5 ? codec::varint_size(static_cast<std::uint32_t>(props_len)) + props_len : 0) +
                          m.payload.size();
  if (client_max_packet_ != 0 &&
      1 + codec::varint_size(static_cast<std::uint32_t>(remaining)) + remaining > client_max_packet_) {
    ++dropped_qos0_;  // [MQTT-3.1.2-25] never send more than the client's Maximum Packet Size
    return false;
  }
  if (alias != 0 && !alias_known) outbound_aliases_.emplace(std::string(m.topic), alias);
  ++counters_.packets_out;  // $SYS messages/sent, publish/messages/sent, publish/bytes/sent
  ++counters_.publish_out;
  counters_.publish_bytes_out += m.payload.size();
  OutBuffer& out = sink();
  std::string& b = out.bytes;
  b.push_back(static_cast<char>(0x30 | (dup ? 0x08 : 0) | (d.qos << 1) | (d.retain ? 1 : 0)));
  codec::put_varint(static_cast<std::uint32_t>(remaining), b);
  put_u16(b, static_cast<std::uint16_t>(topic_len));
  if (!alias_known) b.append(m.topic);
  if (d.qos > 0) put_u16(b, packet_id);
  if (v5) {
    codec::put_varint(static_cast<std::uint32_t>(props_len), b);
    if (m.has_props()) codec::encode_properties(*props, b);
    if (alias != 0) {
      b.push_back(0x23);
      put_u16(b, alias);
    }
    for (auto id : d.sub_ids) {
      b.push_back(0x0B);
      codec::put_varint(id, b);
    }
  }
  if (m.payload.size() < kSpliceThreshold) {
    b.append(m.payload);
  } else {
    out.splices.push_back({b.size(), d.msg});
    out.spliced_bytes += m.payload.size();
  }
  if (limits_.verbose) {
    log(0, publish_log_line(true, client_id_, dup, d.qos, d.retain, packet_id, m.topic, m.payload.size()));
  }
  return true;
}

}  // namespace tern::protocol
