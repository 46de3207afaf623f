#include "broker/shard.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/log.hpp"

namespace tern::broker {

using protocol::CloseCause;
using protocol::Delivery;
using protocol::MessagePtr;
using protocol::ServerConnection;

Shard::Shard(Broker& broker, unsigned index) : broker_(broker), index_(index), stats_(broker.stats(index)) {}
Shard::~Shard() = default;

void Shard::log(int level, const std::string& line) {
  static constexpr unsigned kMap[] = {log::kDebug, log::kNotice, log::kWarning, log::kError};
  log::write(kMap[std::clamp(level, 0, 3)], line);
}

std::string Shard::assign_client_id(const std::string& prefix) {
  // Pick an identifier that this worker owns, so the session can be resumed here later.
  for (;;) {
    std::string id = protocol::generate_client_id(prefix);
    if (broker_.owner_of(id) == index_) return id;
  }
}

void Shard::on_connect(ServerConnection& c, codec::Connect& connect) {
  const auto& cfg = broker_.config();
  if (!cfg.effective_allow_anonymous()) {
    // No password file support yet: with anonymous access off nobody can be authenticated.
    stats_.connections_refused.fetch_add(1, std::memory_order_relaxed);
    c.refuse(Reason::kNotAuthorized);
    return;
  }
  const std::string& id = c.client_id();
  bool session_present = false;
  Session* s = nullptr;
  auto it = by_client_.find(id);
  if (it != by_client_.end() && it->second->conn) {
    // Takeover [MQTT-3.1.4-3]: close the existing connection (5.0: DISCONNECT 0x8E). Its session
    // survives only if that connection asked for a persistent one.
    log(1, fmt::format("Client {} already connected, closing old connection.", id));
    ServerConnection* old = it->second->conn;
    old->disconnect(Reason::kSessionTakenOver, CloseCause::kTakenOver);
    if (io_) io_->output_ready(*old);
    it = by_client_.find(id);
  }
  if (it != by_client_.end()) {
    s = it->second.get();
    if (c.clean_start()) {
      end_session(*s);  // [MQTT-3.1.2-4] clean start discards the old session
      s = nullptr;
    } else {
      session_present = true;  // [MQTT-3.2.2-2]
    }
  }
  if (!s) s = &new_session(id);
  s->conn = &c;
  c.user = s;
  stats_.clients_connected.fetch_add(1, std::memory_order_relaxed);
  stats_.clients_total.fetch_add(1, std::memory_order_relaxed);
  codec::Properties props;
  if (connect.props.assigned_client_id) props.assigned_client_id = connect.props.assigned_client_id;
  if (connect.props.server_keep_alive) props.server_keep_alive = connect.props.server_keep_alive;
  c.accept(&s->state, session_present, std::move(props));
  if (io_) io_->output_ready(c);
}

Reason Shard::on_publish(ServerConnection& c, const MessagePtr& m) {
  stats_.messages_received.fetch_add(1, std::memory_order_relaxed);
  if (m->retain) {
    broker_.retained().set(m);  // [MQTT-3.3.1-5]
    stats_.changes.fetch_add(1, std::memory_order_relaxed);
  }
  Reason r = route(m, c.client_id());
  if (pause_publisher_) {
    pause_publisher_ = false;
    // Loss policy: a subscriber's queue is full; stop reading this publisher until it drains.
    c.pause();
    auto* s = static_cast<Session*>(c.user);
    for (SessionKey sub : pause_on_) wait_on(sub, s->key);
  }
  return r;
}

void Shard::publish_internal(const MessagePtr& m) {
  if (m->retain) broker_.retained().set(m);
  route(m, {});
}

Reason Shard::route(const MessagePtr& m, const std::string& publisher) {
  targets_.clear();
  pause_publisher_ = false;
  pause_on_.clear();
  broker_.router().match(m->topic, publisher, targets_);
  if (targets_.empty()) return Reason::kNoMatchingSubscribers;
  // One copy per session at the highest granted QoS, with every subscription identifier
  // [MQTT-3.3.5-1]. Sort so that a session's subscriptions are adjacent.
  if (targets_.size() > 1) {
    std::sort(targets_.begin(), targets_.end(), [](const Target& a, const Target& b) { return a.key < b.key; });
  }
  const bool upgrade = broker_.limits().upgrade_outgoing_qos;
  for (std::size_t i = 0; i < targets_.size();) {
    std::size_t j = i;
    Delivery d;
    d.msg = m;
    std::uint8_t granted = 0;
    bool rap = false;
    for (; j < targets_.size() && targets_[j].key == targets_[i].key; ++j) {
      const auto& o = targets_[j].opts;
      granted = std::max(granted, o.qos);
      rap = rap || o.retain_as_published;
      if (o.subscription_id) d.sub_ids.push_back(o.subscription_id);
    }
    // Delivered QoS is the minimum of published and granted QoS [MQTT-3.8.4-8], unless
    // upgrade_outgoing_qos asks for the granted one.
    d.qos = upgrade ? granted : std::min(granted, m->qos);
    // Forwarded messages carry RETAIN=0 [MQTT-3.3.1-9] unless Retain As Published [MQTT-3.3.1-13].
    d.retain = rap && m->retain;
    SessionKey key = targets_[i].key;
    for (std::size_t k = i; k < j; ++k) {
      if (targets_[k].congested && d.qos > 0) {
        pause_publisher_ = true;
        pause_on_.push_back(key);
        break;
      }
    }
    unsigned w = worker_of(key);
    if (w == index_) {
      auto it = by_id_.find(key & 0xFFFFFFFFFFFFull);
      if (it != by_id_.end()) deliver_local(*it->second, std::move(d));
    } else {
      if (outbox_.empty()) outbox_.resize(broker_.workers());
      outbox_[w].push_back(InboxItem{key & 0xFFFFFFFFFFFFull, std::move(d)});
    }
    i = j;
  }
  return Reason::kSuccess;
}

void Shard::deliver_local(Session& s, Delivery d) {
  if (s.conn && s.conn->state() == ServerConnection::State::kConnected) {
    auto before_q0 = s.conn->dropped_qos0();
    auto before_q = s.conn->dropped_queue();
    s.conn->deliver(std::move(d));
    if (s.conn->dropped_qos0() != before_q0) stats_.dropped_qos0.fetch_add(1, std::memory_order_relaxed);
    if (s.conn->dropped_queue() != before_q) stats_.dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
    stats_.messages_sent.fetch_add(1, std::memory_order_relaxed);
    if (io_) io_->output_ready(*s.conn);
    return;
  }
  if (!s.persistent) return;
  if (d.qos == 0 && !broker_.limits().queue_qos0) return;  // queue_qos0_messages false
  stats_.changes.fetch_add(1, std::memory_order_relaxed);
  if (!protocol::queue_offline(s.state, std::move(d), broker_.limits())) {
    stats_.dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
    // Rate-limited: the first drop and then every 1000th.
    if (s.drops_logged++ % 1000 == 0) {
      log(2, fmt::format("Outgoing messages are being dropped for client {}.", s.client_id));
    }
  }
}

void Shard::on_subscribe(ServerConnection& c, const codec::Subscribe& sub, std::vector<std::uint8_t>& codes) {
  auto* s = static_cast<Session*>(c.user);
  send_retained_.assign(sub.topics.size(), 0);
  for (std::size_t i = 0; i < sub.topics.size(); ++i) {
    if (codes[i] >= 0x80) continue;
    const auto& t = sub.topics[i];
    SubOptions o{t.qos, t.no_local, t.retain_as_published,
                 sub.props.subscription_ids.empty() ? 0u : sub.props.subscription_ids[0]};
    bool fresh = broker_.router().subscribe(t.filter, s->key, s->client_id, o, &s->state.congested);
    stats_.changes.fetch_add(1, std::memory_order_relaxed);
    s->subs[t.filter] = o;
    // Retain handling: 0 always, 1 only for a new subscription, 2 never [MQTT-3.3.1-9..11].
    send_retained_[i] = t.retain_handling == 0 || (t.retain_handling == 1 && fresh);
  }
}

void Shard::on_subscribed(ServerConnection& c, const codec::Subscribe& sub, const std::vector<std::uint8_t>& codes) {
  std::vector<MessagePtr> found;
  for (std::size_t i = 0; i < sub.topics.size(); ++i) {
    if (codes[i] >= 0x80 || !send_retained_[i]) continue;
    found.clear();
    broker_.retained().match(sub.topics[i].filter, found);
    for (auto& m : found) {
      Delivery d;
      d.msg = m;
      d.qos = std::min(m->qos, codes[i]);
      d.retain = true;  // retained messages sent on subscribe have RETAIN=1 [MQTT-3.3.1-8]
      if (!sub.props.subscription_ids.empty()) d.sub_ids.push_back(sub.props.subscription_ids[0]);
      c.deliver(std::move(d));
    }
  }
  if (io_) io_->output_ready(c);
}

void Shard::on_unsubscribe(ServerConnection& c, const codec::Unsubscribe& u, std::vector<std::uint8_t>& codes) {
  auto* s = static_cast<Session*>(c.user);
  for (std::size_t i = 0; i < u.filters.size(); ++i) {
    if (codes[i] >= 0x80) continue;
    bool existed = broker_.router().unsubscribe(u.filters[i], s->key);
    stats_.changes.fetch_add(1, std::memory_order_relaxed);
    s->subs.erase(u.filters[i]);
    codes[i] = existed ? 0x00 : to_byte(Reason::kNoSubscriptionExisted);
  }
}

void Shard::publish_will(ServerConnection& c) {
  const auto& w = c.will();
  if (!w) return;
  codec::Properties props = w->props;
  props.will_delay.reset();
  auto m = protocol::Message::make(w->topic, w->payload, w->qos, w->retain, c.client_id(), protocol::Clock::now(),
                                   &props);
  c.clear_will();
  log(1, fmt::format("Sending will of client {} to {}.", c.client_id(), m->topic));
  if (m->retain) broker_.retained().set(m);
  route(m, c.client_id());
}

void Shard::on_closed(ServerConnection& c, CloseCause) {
  auto* s = static_cast<Session*>(c.user);
  if (s == nullptr) {
    if (io_) io_->output_ready(c);
    return;
  }
  c.user = nullptr;
  stats_.clients_connected.fetch_sub(1, std::memory_order_relaxed);
  // The will goes out on any close but a normal DISCONNECT (the protocol already dropped it then)
  // [MQTT-3.1.2-8]; Mosquitto also sends it on takeover, and so does Tern.
  publish_will(c);
  if (s->conn == &c) {
    c.detach_session();
    std::uint32_t expiry = 0;
    s->persistent = lifetime(*s, expiry);
    s->expiry_s = expiry;
    s->conn = nullptr;
    s->offline_since = protocol::Clock::now();
    if (!s->persistent) end_session(*s);  // [MQTT-3.1.2-6] clean session ends with the connection
  }
  if (io_) io_->output_ready(c);
}

Session& Shard::new_session(const std::string& client_id) {
  auto fresh = std::make_unique<Session>();
  fresh->local_id = next_local_id_++;
  fresh->key = (SessionKey{index_} << 48) | fresh->local_id;
  fresh->client_id = client_id;
  Session& s = *fresh;
  by_id_[s.local_id] = &s;
  by_client_[client_id] = std::move(fresh);
  return s;
}

bool Shard::lifetime(const Session& s, std::uint32_t& expiry_s) const {
  if (!s.conn) {
    expiry_s = s.expiry_s;
    return s.persistent;
  }
  const ServerConnection& c = *s.conn;
  if (c.version() == codec::Version::kV5) {
    expiry_s = c.session_expiry();
    return expiry_s > 0;
  }
  expiry_s = broker_.config().persistent_client_expiration;
  if (expiry_s == 0) expiry_s = 0xFFFFFFFF;
  return !c.clean_start();
}

Session& Shard::restore_session(const std::string& client_id, std::uint32_t expiry_s, protocol::TimePoint offline_since) {
  auto it = by_client_.find(client_id);
  if (it != by_client_.end()) end_session(*it->second);
  Session& s = new_session(client_id);
  s.persistent = true;
  s.expiry_s = expiry_s;
  s.offline_since = offline_since;
  return s;
}

void Shard::restore_subscription(Session& s, const std::string& filter, const SubOptions& o) {
  broker_.router().subscribe(filter, s.key, s.client_id, o, &s.state.congested);
  s.subs[filter] = o;
}

void Shard::end_session(Session& s) {
  for (const auto& [filter, opts] : s.subs) broker_.router().unsubscribe(filter, s.key);
  if (s.conn) {
    s.conn->user = nullptr;
    s.conn->detach_session();
  }
  by_id_.erase(s.local_id);
  by_client_.erase(s.client_id);  // destroys s
}

void Shard::wait_on(SessionKey sub, SessionKey publisher) {
  unsigned w = worker_of(sub);
  if (w == index_) {
    add_waiter(sub & 0xFFFFFFFFFFFFull, publisher);
  } else {
    send_control(w, Control{Control::kWait, sub & 0xFFFFFFFFFFFFull, publisher});
  }
}

void Shard::add_waiter(std::uint64_t sub_local, SessionKey publisher) {
  auto it = by_id_.find(sub_local);
  // Drained (or gone) since the publisher saw the flag: it goes on at once.
  if (it == by_id_.end() || !it->second->state.congested.load(std::memory_order_relaxed)) {
    resume_publisher(publisher);
    return;
  }
  auto& w = it->second->waiters;
  if (std::find(w.begin(), w.end(), publisher) == w.end()) w.push_back(publisher);
}

void Shard::resume_publisher(SessionKey publisher) {
  unsigned w = worker_of(publisher);
  if (w != index_) {
    send_control(w, Control{Control::kResume, publisher & 0xFFFFFFFFFFFFull, 0});
    return;
  }
  auto it = by_id_.find(publisher & 0xFFFFFFFFFFFFull);
  if (it == by_id_.end() || !it->second->conn || !it->second->conn->paused()) return;
  if (io_) io_->resume(*it->second->conn);
}

void Shard::on_drained(ServerConnection& c) {
  auto* s = static_cast<Session*>(c.user);
  if (!s) return;
  std::vector<SessionKey> waiters;
  waiters.swap(s->waiters);
  for (SessionKey p : waiters) resume_publisher(p);
}

void Shard::send_control(unsigned worker, Control c) {
  if (control_out_.empty()) control_out_.resize(broker_.workers());
  control_out_[worker].push_back(c);
}

void Shard::enqueue(std::vector<Control>& items) {
  bool wake;
  {
    std::lock_guard lock(inbox_mu_);
    wake = inbox_.empty() && control_in_.empty();
    for (auto& c : items) control_in_.push_back(c);
  }
  items.clear();
  if (wake && io_) io_->wake();
}

void Shard::enqueue(std::vector<InboxItem>& items) {
  bool wake;
  {
    std::lock_guard lock(inbox_mu_);
    wake = inbox_.empty() && control_in_.empty();
    if (inbox_.empty()) {
      inbox_.swap(items);
    } else {
      for (auto& i : items) inbox_.push_back(std::move(i));
    }
  }
  items.clear();
  if (wake && io_) io_->wake();
}

void Shard::drain_inbox() {
  {
    std::lock_guard lock(inbox_mu_);
    draining_.swap(inbox_);
    control_draining_.swap(control_in_);
  }
  for (const Control& c : control_draining_) {
    if (c.kind == Control::kWait) {
      add_waiter(c.session, c.other);
    } else {
      resume_publisher((SessionKey{index_} << 48) | c.session);
    }
  }
  control_draining_.clear();
  for (auto& item : draining_) {
    auto it = by_id_.find(item.session);
    if (it != by_id_.end()) deliver_local(*it->second, std::move(item.delivery));
  }
  draining_.clear();
}

void Shard::flush_outboxes() {
  for (unsigned w = 0; w < control_out_.size(); ++w) {
    if (!control_out_[w].empty()) broker_.shard(w).enqueue(control_out_[w]);
  }
  for (unsigned w = 0; w < outbox_.size(); ++w) {
    auto& box = outbox_[w];
    if (box.empty()) continue;
    stats_.cross_worker_batches.fetch_add(1, std::memory_order_relaxed);
    stats_.cross_worker_deliveries.fetch_add(box.size(), std::memory_order_relaxed);
    broker_.shard(w).enqueue(box);
  }
}

void Shard::publish_sys(protocol::TimePoint now) {
  unsigned interval = broker_.config().sys_interval;
  if (index_ != 0 || interval == 0 || now - last_sys_ < std::chrono::seconds(interval)) return;
  last_sys_ = now;
  auto pub = [&](const char* topic, std::string value) {
    publish_internal(protocol::Message::make(topic, value, 0, true, {}, now));
  };
  auto n = [this](auto field) { return std::to_string(broker_.total(field)); };
  // Mosquitto's $SYS names where Tern has the value; Tern's own counters under $SYS/broker/tern/.
  pub("$SYS/broker/version", "tern version " TERN_VERSION_STRING);
  pub("$SYS/broker/uptime",
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - broker_.started()).count()) + " seconds");
  pub("$SYS/broker/clients/connected", n(&Stats::clients_connected));
  pub("$SYS/broker/messages/received", n(&Stats::messages_received));
  pub("$SYS/broker/messages/sent", n(&Stats::messages_sent));
  pub("$SYS/broker/publish/messages/dropped",
      std::to_string(broker_.total(&Stats::dropped_qos0) + broker_.total(&Stats::dropped_queue_full)));
  pub("$SYS/broker/bytes/received", n(&Stats::bytes_received));
  pub("$SYS/broker/bytes/sent", n(&Stats::bytes_sent));
  pub("$SYS/broker/subscriptions/count", std::to_string(broker_.router().size()));
  pub("$SYS/broker/retained messages/count", std::to_string(broker_.retained().size()));
  pub("$SYS/broker/tern/workers", std::to_string(broker_.workers()));
  pub("$SYS/broker/tern/cross_worker/batches", n(&Stats::cross_worker_batches));
  pub("$SYS/broker/tern/cross_worker/deliveries", n(&Stats::cross_worker_deliveries));
  pub("$SYS/broker/tern/dropped/qos0", n(&Stats::dropped_qos0));
  pub("$SYS/broker/tern/dropped/queue_full", n(&Stats::dropped_queue_full));
}

void Shard::tick(protocol::TimePoint now) {
  publish_sys(now);
  if (index_ == 0) broker_.retained().purge_expired(now);
  std::vector<Session*> expired;
  for (auto& [id, s] : by_client_) {
    if (s->conn || !s->persistent || s->expiry_s == 0xFFFFFFFF) continue;
    if (now - s->offline_since >= std::chrono::seconds(s->expiry_s)) expired.push_back(s.get());
  }
  for (Session* s : expired) {
    log(1, fmt::format("Expiring client {} after {} s offline.", s->client_id, s->expiry_s));
    end_session(*s);
  }
}

}  // namespace tern::broker
