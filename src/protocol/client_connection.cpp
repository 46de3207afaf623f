#include "protocol/client_connection.hpp"

#include <algorithm>

#include "core/reason_code.hpp"
#include "core/topic.hpp"

namespace tern::protocol {

using codec::PacketType;
using codec::Version;

const char* client_close_cause_name(ClientCloseCause c) {
  switch (c) {
    case ClientCloseCause::kNone: return "none";
    case ClientCloseCause::kRefused: return "connection refused";
    case ClientCloseCause::kServerDisconnect: return "disconnected by the server";
    case ClientCloseCause::kClientDisconnect: return "disconnected";
    case ClientCloseCause::kProtocolError: return "protocol error";
    case ClientCloseCause::kKeepaliveTimeout: return "keepalive timeout";
    case ClientCloseCause::kTransport: return "connection lost";
  }
  return "?";
}

codec::Publish ClientConnection::Outgoing::packet(std::uint16_t id, bool dup) const {
  codec::Publish p;
  p.qos = qos;
  p.dup = dup;
  p.retain = retain;
  p.topic = topic;
  p.packet_id = qos > 0 ? id : 0;
  p.props = props;
  p.payload = payload;
  return p;
}

ClientConnection::ClientConnection(ClientHandler& handler, ClientSettings settings, ClientStore* store)
    : handler_(handler),
      settings_(std::move(settings)),
      store_(store ? store : &memory_store_),
      version_(settings_.version),
      client_id_(settings_.client_id) {}

void ClientConnection::start(TimePoint now) {
  now_ = now;
  state_ = State::kConnecting;
  cause_ = ClientCloseCause::kNone;
  in_.clear();
  out_.clear();
  error_.clear();
  aliases_in_.clear();
  // SUBSCRIBE and UNSUBSCRIBE are not resent: their acknowledgements will not come.
  for (auto& [id, sub] : pending_acks_) ids_in_use_.erase(id);
  pending_acks_.clear();
  ping_outstanding_ = false;
  version_ = settings_.version;
  keepalive_ = settings_.keepalive;
  server_receive_max_ = 65535;
  server_max_packet_ = 0;
  server_max_qos_ = 2;
  server_retain_ = true;
  topic_alias_max_in_ = version_ == Version::kV5 ? settings_.connect_props.topic_alias_maximum.value_or(0) : 0;
  codec::Connect c;
  c.protocol_name = version_ == Version::kV31 ? "MQIsdp" : "MQTT";
  c.version = version_;
  c.clean_start = settings_.clean_start;
  c.keepalive = settings_.keepalive;
  c.client_id = client_id_;
  c.will = settings_.will;
  c.username = settings_.username;
  c.password = settings_.password;
  if (version_ == Version::kV5) c.props = settings_.connect_props;
  send(c);
}

void ClientConnection::send(const codec::Packet& p, std::size_t payload_size) {
  codec::encode_packet(p, version_, out_);
  last_tx_ = now_;
  handler_.on_packet(true, p, payload_size, 0);
}

void ClientConnection::on_bytes(const std::uint8_t* data, std::size_t n, TimePoint now) {
  now_ = now;
  if (closed()) return;
  // Whole packets are decoded straight from `data`; only an unfinished one is copied.
  const std::uint8_t* p = data;
  std::size_t size = n;
  if (!in_.empty()) {
    in_.append(reinterpret_cast<const char*>(data), n);
    p = reinterpret_cast<const std::uint8_t*>(in_.data());
    size = in_.size();
  }
  std::size_t off = 0;
  while (off < size && !closed()) {
    codec::FrameHeader h;
    codec::DecodeError err;
    auto st = codec::parse_frame(p + off, size - off, settings_.max_packet_size, h, err);
    if (st == codec::FrameStatus::kIncomplete) break;
    if (st == codec::FrameStatus::kError) {
      protocol_error(err.what);
      return;
    }
    codec::Packet pkt;
    if (auto e = codec::decode_packet(h, p + off + h.header_size, version_, pkt)) {
      protocol_error(e.what);
      return;
    }
    off += h.total();
    std::size_t payload = 0;
    if (auto* pub = std::get_if<codec::Publish>(&pkt)) payload = pub->payload.size();
    handle(pkt, payload);
  }
  if (closed()) {
    in_.clear();
    return;
  }
  if (in_.empty()) {
    in_.assign(reinterpret_cast<const char*>(data) + off, n - off);
  } else {
    in_.erase(0, off);
  }
}

void ClientConnection::handle(codec::Packet& pkt, std::size_t payload_size) {
  handler_.on_packet(false, pkt, payload_size, 0);
  if (state_ == State::kConnecting) {
    // [MQTT-3.2.0-1] the first packet from the server is CONNACK (or AUTH, which Tern's client does
    // not start).
    auto* c = std::get_if<codec::Connack>(&pkt);
    if (!c) return protocol_error("the first packet from the server is not CONNACK");
    return handle_connack(*c);
  }
  std::visit(
      [&](auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, codec::Publish>) {
          handle_publish(p);
        } else if constexpr (std::is_same_v<T, codec::Ack>) {
          handle_ack(p);
        } else if constexpr (std::is_same_v<T, codec::SubAck>) {
          auto it = pending_acks_.find(p.packet_id);
          const bool sub = p.type == PacketType::kSuback;
          if (it == pending_acks_.end() || it->second != sub) return protocol_error("acknowledgement for an unknown packet id");
          pending_acks_.erase(it);
          ids_in_use_.erase(p.packet_id);
          if (sub) {
            handler_.on_subscribed(p.packet_id, p.codes, p.props);
          } else {
            handler_.on_unsubscribed(p.packet_id, p.codes, p.props);
          }
        } else if constexpr (std::is_same_v<T, codec::Pingresp>) {
          ping_outstanding_ = false;
        } else if constexpr (std::is_same_v<T, codec::Disconnect>) {
          handler_.on_disconnect(p);
          close(ClientCloseCause::kServerDisconnect);
        } else {
          protocol_error("unexpected packet from the server");
        }
      },
      pkt);
}

void ClientConnection::handle_connack(codec::Connack& c) {
  connack_ = c;
  if (c.code != 0) {
    handler_.on_connack(c);
    close(ClientCloseCause::kRefused);
    return;
  }
  state_ = State::kConnected;
  if (version_ == Version::kV5) {
    const auto& p = c.props;
    if (p.receive_maximum) server_receive_max_ = *p.receive_maximum;
    if (p.maximum_packet_size) server_max_packet_ = *p.maximum_packet_size;
    if (p.maximum_qos) server_max_qos_ = *p.maximum_qos;
    if (p.retain_available) server_retain_ = *p.retain_available != 0;
    if (p.assigned_client_id) client_id_ = *p.assigned_client_id;
    if (p.server_keep_alive) keepalive_ = *p.server_keep_alive;
  }
  // Messages in flight when the last connection ended. With the session present they are resent
  // with their packet ids, PUBLISH with DUP 1 and PUBREL as they were [MQTT-4.4.0-1]. Without it
  // the server forgot them: a QoS 2 message already PUBREC'd reached it and is complete; the others
  // are sent again.
  std::vector<std::pair<std::uint64_t, std::uint16_t>> order;
  for (auto& [id, o] : inflight_) order.emplace_back(o.seq, id);
  std::sort(order.begin(), order.end());
  if (!c.session_present) {
    for (auto& [id, m] : incoming_qos2_) store_->erase_incoming(id);
    incoming_qos2_.clear();
  }
  for (auto [seq, id] : order) {
    auto it = inflight_.find(id);
    if (it == inflight_.end()) continue;
    Outgoing& o = it->second;
    if (o.step == Outgoing::kAwaitPubcomp) {
      if (c.session_present) {
        send(codec::Ack{PacketType::kPubrel, id, 0, {}});
      } else {
        inflight_.erase(it);
        finish(id, 0, {});
      }
      continue;
    }
    if (!send_publish(id, o, c.session_present)) inflight_.erase(id);
  }
  handler_.on_connack(c);
  if (closed()) return;
  pump();
}

void ClientConnection::handle_publish(codec::Publish& p) {
  if (version_ == Version::kV5 && p.props.topic_alias) {
    const std::uint16_t alias = *p.props.topic_alias;
    if (alias == 0 || alias > topic_alias_max_in_) return protocol_error("topic alias out of range");
    if (p.topic.empty()) {
      auto it = aliases_in_.find(alias);
      if (it == aliases_in_.end()) return protocol_error("unknown topic alias");
      p.topic = it->second;
    } else {
      aliases_in_[alias] = p.topic;
    }
  } else if (p.topic.empty()) {
    return protocol_error("empty topic without a topic alias");
  }
  switch (p.qos) {
    case 0: handler_.on_message(p); break;
    case 1:
      // Acknowledged first, as libmosquitto does: the application may disconnect in on_message.
      send(codec::Ack{PacketType::kPuback, p.packet_id, 0, {}});
      handler_.on_message(p);
      break;
    default:
      // Held until PUBREL, then delivered once; a resent PUBLISH with the same id before PUBREL is
      // only acknowledged again [MQTT-4.3.3-1 method B's receiver side].
      if (!incoming_qos2_.count(p.packet_id)) {
        store_->put_incoming(p.packet_id, p);
        incoming_qos2_.emplace(p.packet_id, Incoming{p.topic, std::string(p.payload), p.retain, p.props});
      }
      send(codec::Ack{PacketType::kPubrec, p.packet_id, 0, {}});
      break;
  }
}

void ClientConnection::handle_ack(const codec::Ack& a) {
  if (a.type == PacketType::kPubrel) {
    auto in = incoming_qos2_.find(a.packet_id);
    const bool known = in != incoming_qos2_.end();
    send(codec::Ack{PacketType::kPubcomp, a.packet_id,
                    static_cast<std::uint8_t>(known || version_ != Version::kV5 ? 0 : to_byte(Reason::kPacketIdentifierNotFound)),
                    {}});
    if (known) {
      Incoming m = std::move(in->second);
      incoming_qos2_.erase(in);
      store_->erase_incoming(a.packet_id);
      codec::Publish p;
      p.qos = 2;
      p.retain = m.retain;
      p.topic = std::move(m.topic);
      p.packet_id = a.packet_id;
      p.props = std::move(m.props);
      p.payload = m.payload;
      handler_.on_message(p);
    }
    return;
  }
  auto it = inflight_.find(a.packet_id);
  if (a.type == PacketType::kPubrec) {
    if (it == inflight_.end() || it->second.step != Outgoing::kAwaitPubrec) {
      // Already released (a resent PUBREC) or unknown: answer so the server can finish.
      const bool released = it != inflight_.end() && it->second.step == Outgoing::kAwaitPubcomp;
      send(codec::Ack{PacketType::kPubrel, a.packet_id,
                      static_cast<std::uint8_t>(released || version_ != Version::kV5 ? 0 : to_byte(Reason::kPacketIdentifierNotFound)),
                      {}});
      return;
    }
    if (a.reason >= 0x80) {
      inflight_.erase(it);
      finish(a.packet_id, a.reason, a.props);
      pump();
      return;
    }
    it->second.step = Outgoing::kAwaitPubcomp;
    store_->put_outgoing(a.packet_id, it->second.packet(a.packet_id, false), true);
    send(codec::Ack{PacketType::kPubrel, a.packet_id, 0, {}});
    return;
  }
  const auto want = a.type == PacketType::kPuback ? Outgoing::kAwaitPuback : Outgoing::kAwaitPubcomp;
  if (it == inflight_.end() || it->second.step != want) return;  // a late duplicate: nothing to do
  inflight_.erase(it);
  finish(a.packet_id, a.reason, a.props);
  pump();
}

void ClientConnection::protocol_error(const char* what) {
  error_ = what;
  if (state_ == State::kConnected && version_ == Version::kV5) {
    send(codec::Disconnect{to_byte(Reason::kProtocolError), {}});
  }
  close(ClientCloseCause::kProtocolError);
}

void ClientConnection::close(ClientCloseCause cause) {
  if (state_ == State::kClosed || state_ == State::kIdle) return;
  state_ = State::kClosed;
  cause_ = cause;
  ping_outstanding_ = false;
  handler_.on_closed(cause);
}

void ClientConnection::on_transport_closed() { close(ClientCloseCause::kTransport); }

void ClientConnection::on_tick(TimePoint now) {
  now_ = now;
  if (state_ != State::kConnected || keepalive_ == 0) return;
  const auto period = std::chrono::seconds(keepalive_);
  if (ping_outstanding_) {
    if (now - ping_sent_ >= period) close(ClientCloseCause::kKeepaliveTimeout);
    return;
  }
  if (now - last_tx_ >= period) {
    send(codec::Pingreq{});
    ping_outstanding_ = true;
    ping_sent_ = now;
  }
}

std::uint16_t ClientConnection::next_mid() {
  for (int i = 0; i < 65536; ++i) {
    if (++last_mid_ == 0) last_mid_ = 1;
    if (!ids_in_use_.count(last_mid_)) return last_mid_;
  }
  return 0;
}

std::size_t ClientConnection::window() const {
  const std::size_t mine = settings_.max_inflight == 0 ? 65535 : settings_.max_inflight;
  return std::min<std::size_t>(mine, server_receive_max_);
}

std::uint16_t ClientConnection::publish(std::string topic, std::string payload, std::uint8_t qos, bool retain,
                                        codec::Properties props, LocalError* error) {
  auto fail = [&](LocalError e) -> std::uint16_t {
    if (error) *error = e;
    return 0;
  };
  if (error) *error = LocalError::kNone;
  const bool aliased = version_ == Version::kV5 && props.topic_alias.has_value();
  if (qos > 2 || (!(aliased && topic.empty()) && !valid_topic_name(topic))) return fail(LocalError::kInvalid);
  if (connected() && qos > server_max_qos_) return fail(LocalError::kQosNotSupported);
  if (connected() && retain && !server_retain_) return fail(LocalError::kRetainNotSupported);
  const std::size_t bytes = topic.size() + payload.size();
  const bool must_queue = !connected() || !queue_.empty() || (qos > 0 && inflight_.size() >= window());
  if (must_queue) {
    if (settings_.max_queued_messages != 0 && queue_.size() >= settings_.max_queued_messages) return fail(LocalError::kQueueFull);
    if (settings_.max_queued_bytes != 0 && queued_bytes_ + bytes > settings_.max_queued_bytes) return fail(LocalError::kQueueFull);
  }
  // Every QoS 1/2 message keeps its packet id from publish to acknowledgement, so at most 65535 can
  // be pending at once, whatever the queue bounds say.
  if (qos > 0 && ids_in_use_.size() >= 65535) return fail(LocalError::kQueueFull);
  const std::uint16_t mid = next_mid();
  if (mid == 0) return fail(LocalError::kQueueFull);
  Outgoing o;
  o.topic = std::move(topic);
  o.payload = std::move(payload);
  o.qos = qos;
  o.retain = retain;
  o.props = std::move(props);
  o.seq = ++seq_;
  if (qos > 0) {
    ids_in_use_.insert(mid);
    store_->put_outgoing(mid, o.packet(mid, false), false);
  }
  if (!must_queue) {
    if (qos == 0) {
      if (send_publish(mid, o, false)) handler_.on_qos0_sent(mid);
      return mid;
    }
    o.step = qos == 1 ? Outgoing::kAwaitPuback : Outgoing::kAwaitPubrec;
    auto [it, inserted] = inflight_.emplace(mid, std::move(o));
    if (!send_publish(mid, it->second, false)) inflight_.erase(it);
    return mid;
  }
  queued_bytes_ += bytes;
  queue_.emplace_back(mid, std::move(o));
  return mid;
}

// Encodes one PUBLISH; false (and the publish finished with an error) when it exceeds the server's
// Maximum Packet Size [MQTT-3.1.2-24 is the server's rule; 3.2.2.3.6 asks the client the same].
bool ClientConnection::send_publish(std::uint16_t mid, const Outgoing& o, bool dup) {
  const codec::Publish p = o.packet(mid, dup);
  const std::size_t before = out_.size();
  codec::encode_packet(p, version_, out_);
  if (server_max_packet_ != 0 && out_.size() - before > server_max_packet_) {
    out_.resize(before);
    finish(mid, static_cast<std::uint8_t>(LocalError::kPacketTooLarge), {});
    return false;
  }
  last_tx_ = now_;
  handler_.on_packet(true, p, p.payload.size(), mid);
  return true;
}

void ClientConnection::pump() {
  while (connected() && !queue_.empty()) {
    auto& [mid, o] = queue_.front();
    if (o.qos > 0 && inflight_.size() >= window()) break;
    const std::uint16_t id = mid;
    Outgoing msg = std::move(o);
    queued_bytes_ -= msg.topic.size() + msg.payload.size();
    queue_.pop_front();
    if (msg.qos > server_max_qos_ || (msg.retain && !server_retain_)) {
      // Queued before the server's limits were known.
      finish(id, static_cast<std::uint8_t>(msg.qos > server_max_qos_ ? LocalError::kQosNotSupported : LocalError::kRetainNotSupported), {});
      continue;
    }
    if (msg.qos == 0) {
      if (send_publish(id, msg, false)) handler_.on_qos0_sent(id);
      continue;
    }
    msg.step = msg.qos == 1 ? Outgoing::kAwaitPuback : Outgoing::kAwaitPubrec;
    auto [it, inserted] = inflight_.emplace(id, std::move(msg));
    if (!send_publish(id, it->second, false)) inflight_.erase(it);
  }
}

void ClientConnection::finish(std::uint16_t mid, std::uint8_t reason, const codec::Properties& props) {
  if (ids_in_use_.erase(mid)) store_->erase_outgoing(mid);
  handler_.on_published(mid, reason, props);
}

std::uint16_t ClientConnection::subscribe(std::vector<codec::SubscribeTopic> topics, codec::Properties props) {
  if (!connected() || topics.empty()) return 0;
  const std::uint16_t mid = next_mid();
  if (mid == 0) return 0;
  ids_in_use_.insert(mid);
  pending_acks_[mid] = true;
  codec::Subscribe s;
  s.packet_id = mid;
  s.topics = std::move(topics);
  if (version_ == Version::kV5) s.props = std::move(props);
  send(s);
  return mid;
}

std::uint16_t ClientConnection::unsubscribe(std::vector<std::string> filters, codec::Properties props) {
  if (!connected() || filters.empty()) return 0;
  const std::uint16_t mid = next_mid();
  if (mid == 0) return 0;
  ids_in_use_.insert(mid);
  pending_acks_[mid] = false;
  codec::Unsubscribe u;
  u.packet_id = mid;
  u.filters = std::move(filters);
  if (version_ == Version::kV5) u.props = std::move(props);
  send(u);
  return mid;
}

void ClientConnection::disconnect(std::uint8_t reason, codec::Properties props) {
  if (state_ == State::kConnected) {
    codec::Disconnect d;
    if (version_ == Version::kV5) {
      d.reason = reason;
      d.props = std::move(props);
    }
    send(d);
  }
  close(ClientCloseCause::kClientDisconnect);
}

}  // namespace tern::protocol
