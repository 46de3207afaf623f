#include "broker/shard.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/log.hpp"
#include "core/topic.hpp"

namespace tern::broker {

using protocol::CloseCause;
using protocol::Delivery;
using protocol::MessagePtr;
using protocol::ServerConnection;

Shard::Shard(Broker& broker, unsigned index)
    : broker_(broker),
      index_(index),
      stats_(broker.stats(index)),
      sticky_shared_(broker.config().shared_subscription_strategy == config::Config::SharedStrategy::kSticky) {}
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
  const std::string& id = c.client_id();
  // Authentication (password_file, allow_anonymous, clientid_prefixes) and, with an acl_file, the
  // will's topic: a will the client may not publish refuses the connection (docs/security.md).
  std::shared_ptr<const Auth> auth = broker_.auth();
  const Auth::Rules& rules = auth->rules(c.listener);
  // After enhanced authentication (enhanced_auth.cpp) the SCRAM user is the client's username, proven
  // by the exchange: no password is checked, clientid_prefixes and the ACL still apply.
  const std::optional<std::string>* username = &c.username();
  std::optional<std::string> scram_user;
  std::optional<security::ScramHash> scram;
  const std::optional<std::string> no_password;
  if (connect.props.auth_method) {
    scram = take_scram_identity(c, scram_user);
    username = &scram_user;
  }
  Reason verdict = connect.props.auth_method && !scram
                       ? Reason::kNotAuthorized
                       : auth->authenticate(c.listener, id, *username, scram ? no_password : connect.password,
                                            scram || c.identity_from_transport());
  security::Acl::ClientView view;
  if (rules.acl) {
    view = rules.acl->view(id, *username ? &**username : nullptr);
    if (verdict == Reason::kSuccess && c.will() && !view.allowed(c.will()->topic, security::Access::kWrite)) {
      log(1, fmt::format("Denied will of client {} on '{}': the ACL does not allow it to publish there.", id,
                         c.will()->topic));
      verdict = Reason::kNotAuthorized;
    }
  }
  if (verdict != Reason::kSuccess) {
    stats_.connections_refused.fetch_add(1, std::memory_order_relaxed);
    c.refuse(verdict);
    return;
  }
  bool session_present = false;
  bool replaced = false;  // a clean start ended an earlier session in this call
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
      end_session(*s);  // [MQTT-3.1.2-4] clean start discards the old session (a delayed will goes out)
      s = nullptr;
      replaced = true;
    } else {
      session_present = true;  // [MQTT-3.2.2-2]
      if (s->pending_will) {
        log(1, fmt::format("Client {} returned within its will delay; will cancelled.", id));
        s->pending_will.reset();  // back in time: the delayed will is not sent [MQTT-3.1.3-9]
      }
    }
  }
  const bool fresh = s == nullptr;
  if (fresh && store_ && wants_persistence(c) && store_full()) {
    // A new persistent session needs the store: refused while it is full (5.0 0x97, 3.1.1 0x03).
    stats_.connections_refused.fetch_add(1, std::memory_order_relaxed);
    c.refuse(Reason::kQuotaExceeded);
    return;
  }
  if (!s) s = &new_session(id);
  if (rules.acl) {
    if (!s->acl) s->acl = std::make_unique<Session::AclState>();
    s->acl->auth = auth;
    s->acl->set_view(std::move(view));
  } else {
    s->acl.reset();
  }
  s->acl_denial_logged = false;
  s->username = *username;
  s->identity_from_transport = c.identity_from_transport();
  s->scram = scram;
  s->listener = c.listener;
  s->credentials_known = true;
  if (s->acl && !s->state.queue.empty()) {
    // Queued while the session was offline with no view or an older one: what this client may not
    // read now is not sent.
    auto& q = s->state.queue;
    std::size_t w = 0;
    for (std::size_t r = 0; r < q.size(); ++r) {
      if (!s->may_read(q[r].msg->topic)) {
        s->state.queued_bytes -= q[r].msg->payload.size();
        if (q[r].seq) forget(q[r], s->client_id);
        continue;
      }
      if (w != r) q[w] = std::move(q[r]);
      ++w;
    }
    q.resize(w);
  }
  // Kept for the check after a reload, and only where a password file could ask for it again.
  s->password = rules.passwords && connect.password && !scram
                    ? std::make_unique<std::string>(std::move(*connect.password))
                    : nullptr;
  connect.password.reset();
  s->conn = &c;
  s->version = c.version();
  if (c.serial == 0) c.serial = next_serial_++;  // enhanced authentication may have given it one
  by_serial_[c.serial] = &c;
  std::uint32_t expiry = 0;
  s->persistent = lifetime(*s, expiry);
  s->expiry_s = expiry;
  s->state.durable.store(is_durable(*s), std::memory_order_relaxed);
  set_presence(*s, kOnline);  // shared subscriptions: a member to choose again
  c.user = s;
  stats_.clients_connected.fetch_add(1, std::memory_order_relaxed);
  codec::Properties props;
  if (connect.props.assigned_client_id) props.assigned_client_id = connect.props.assigned_client_id;
  if (connect.props.server_keep_alive) props.server_keep_alive = connect.props.server_keep_alive;
  if (s->state.durable.load(std::memory_order_relaxed) && (fresh || replaced || !store_->full())) {
    // The CONNACK of a persistent session goes out once its record is stored. A stored session
    // comes back even while the store is full (without rewriting its record), so its queue drains.
    // After a clean start ended a stored session, the new record follows that erase (progress).
    write_session(*s, fresh && !replaced);
    hold(c, !fresh || replaced);
  }
  c.accept(&s->state, session_present, std::move(props));
  if (io_) io_->output_ready(c);
}

Reason Shard::authorize_publish(ServerConnection& c, const protocol::Message& m) {
  if (sys_publish_denied(m.topic)) {
    // $SYS belongs to the broker: refused as Mosquitto's access check refuses it. The message is
    // dropped; the caller acknowledges it (5.0: PUBACK/PUBREC 0x87, 3.1.1: a plain acknowledgement,
    // QoS 0: nothing). Logged once per client, so a client that keeps trying cannot flood the log.
    auto* s = static_cast<Session*>(c.user);
    if (s && !s->sys_denial_logged) {
      s->sys_denial_logged = true;
      log(1, fmt::format("Denied PUBLISH from {} (q{}, r{}, '{}', ... ({} bytes)): $SYS is read-only; further "
                         "denials for this client are not logged.",
                         c.client_id(), m.qos, m.retain ? 1 : 0, m.topic, m.payload.size()));
    }
    return Reason::kNotAuthorized;
  }
  auto* s = static_cast<Session*>(c.user);
  if (s && s->acl && !s->acl->allowed(m.topic, security::Access::kWrite)) {
    // Mosquitto's log line; once per connection, so a client that keeps trying cannot flood the log.
    if (!s->acl_denial_logged) {
      s->acl_denial_logged = true;
      log(1, fmt::format("Denied PUBLISH from {} (d0, q{}, r{}, m0, '{}', ... ({} bytes)): not allowed by the ACL; "
                         "further denials for this connection are not logged.",
                         c.client_id(), m.qos, m.retain ? 1 : 0, m.topic, m.payload.size()));
    }
    return Reason::kNotAuthorized;
  }
  return Reason::kSuccess;
}

Reason Shard::on_publish(ServerConnection& c, const MessagePtr& m) {
  // A message the store must take is refused while it is full: never an acknowledgement for a
  // message that was not stored.
  if (store_ && m->qos > 0 && store_->full() && needs_store(m, c.client_id()) && store_full()) return refuse_full(c);
  bool stored = false;
  if (m->retain) {
    stored = store_ != nullptr;
    broker_.retained().set(m, store_);  // [MQTT-3.3.1-5]
    Stats::add(stats_.changes, 1);
  }
  const std::uint64_t before = work_.size();
  Reason r = route(m, c.client_id());
  stored = stored || work_.size() != before;
  if (stored && m->qos > 0) hold(c, false);  // PUBACK/PUBREC after the records are synced
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
  if (m->retain) broker_.retained().set(m);  // $SYS: rebuilt at start, never stored
  route(m, {});
}

Reason Shard::route(const MessagePtr& m, const std::string& publisher) {
  targets_.clear();
  pause_publisher_ = false;
  pause_on_.clear();
  Router& router = broker_.router();
  StickyChoices* sticky = nullptr;
  if (sticky_shared_ && router.has_shared() && !publisher.empty()) {
    auto it = by_client_.find(publisher);
    if (it != by_client_.end()) sticky = &it->second->sticky;
  }
  durable_ids_.clear();
  router.match(m->topic, publisher, targets_, sticky, store_ ? &durable_ids_ : nullptr);
  if (targets_.empty()) return Reason::kNoMatchingSubscribers;
  // One copy per session at the highest granted QoS, with every subscription identifier
  // [MQTT-3.3.5-1]. Sort so that a session's subscriptions are adjacent. A shared group's choice is
  // a subscription of its own (section 4.8.2): it is never merged with the session's other ones.
  if (targets_.size() > 1) {
    std::sort(targets_.begin(), targets_.end(), [](const Target& a, const Target& b) {
      return a.key < b.key || (a.key == b.key && a.group < b.group);
    });
  }
  const bool upgrade = broker_.limits().upgrade_outgoing_qos;
  // A message for one persistent session only is stored inline in its queue entry.
  // (match() listed one client id per durable target: no second pass over the targets.)
  const bool single_durable = store_ && m->store_id == 0 && durable_ids_.size() == 1;
  // At most one reference per target, taken at once; a delivery sent on the spot gives its back.
  protocol::RefBatch refs(m, static_cast<std::uint32_t>(targets_.size()));
  for (std::size_t i = 0; i < targets_.size();) {
    std::size_t j = i;
    Delivery d;
    d.msg = refs.take();
    d.share = targets_[i].group;
    std::uint8_t granted = 0;
    bool rap = false;
    const SessionKey key = targets_[i].key;
    for (; j < targets_.size() && targets_[j].key == key && (j == i || (d.share == 0 && targets_[j].group == 0)); ++j) {
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
    for (std::size_t k = i; k < j; ++k) {
      if (targets_[k].congested && d.qos > 0) {
        pause_publisher_ = true;
        pause_on_.push_back(key);
        break;
      }
    }
    // A QoS 1/2 delivery to a persistent session is stored before it is acknowledged (ADR 0002).
    const bool durable = targets_[i].durable && d.qos > 0 && store_;
    if (durable) store_delivery(d, durable_ids_[targets_[i].client], single_durable);
    // Inline rather than dispatch(): this is the per-message path. A local session is always found
    // here (its subscriptions leave the router on this thread before it is freed).
    unsigned w = worker_of(key);
    if (w == index_) {
      auto it = by_id_.find(local_of(key));
      if (it != by_id_.end()) {
        deliver_local(*it->second, std::move(d));
      } else if (durable) {
        forget(d, durable_ids_[targets_[i].client]);
      }
    } else {
      if (outbox_.empty()) outbox_.resize(broker_.workers());
      outbox_[w].push_back(
          InboxItem{local_of(key), std::move(d),
                    durable ? std::make_unique<std::string>(std::move(durable_ids_[targets_[i].client])) : nullptr});
    }
    if (d.msg) refs.give_back(d.msg);  // not kept: sent (QoS 0) or discarded
    i = j;
  }
  // The reference the message's record got while it was routed (store_delivery).
  if (m->store_id && routing_ref_) {
    routing_ref_ = false;
    unref(*m);
  }
  return Reason::kSuccess;
}

void Shard::dispatch(SessionKey key, Delivery&& d, const std::string* client) {
  unsigned w = worker_of(key);
  if (w == index_) {
    auto it = by_id_.find(local_of(key));
    if (it != by_id_.end()) {
      deliver_local(*it->second, std::move(d));
    } else if (d.share) {
      reroute(d, key, false, client);
    } else if (d.seq && client) {
      forget(d, *client);
    }
  } else {
    if (outbox_.empty()) outbox_.resize(broker_.workers());
    const bool stored = d.seq && client;
    outbox_[w].push_back(InboxItem{local_of(key), std::move(d), stored ? std::make_unique<std::string>(*client) : nullptr});
  }
}

bool Shard::reroute(Delivery& d, SessionKey from, bool connected_only, const std::string* from_client) {
  Target t;
  std::string client;
  if (!d.msg || !broker_.router().choose(d.share, from, connected_only, t, store_ ? &client : nullptr)) return false;
  // Delivered at the new member's own granted QoS and options [MQTT-4.8.2-3].
  Delivery nd;
  nd.msg = d.msg;
  nd.qos = broker_.limits().upgrade_outgoing_qos ? t.opts.qos : std::min(t.opts.qos, nd.msg->qos);
  nd.retain = t.opts.retain_as_published && nd.msg->retain;
  if (t.opts.subscription_id) nd.sub_ids.push_back(t.opts.subscription_id);
  nd.share = d.share;
  // The store follows the message: a new entry for a durable member, then the old one goes.
  // (A message stored inline with the old entry is stored inline with the new one.)
  const bool durable = t.durable && nd.qos > 0 && store_ && (nd.msg->store_id || d.seq);
  if (durable) store_delivery(nd, client, d.stored_inline || nd.msg->store_id == 0);
  if (d.seq && from_client) forget(d, *from_client);
  d.msg.reset();
  dispatch(t.key, std::move(nd), durable ? &client : nullptr);
  return true;
}

void Shard::redistribute(Session& s, bool connected_only) {
  auto& st = s.state;
  // QoS 1 in flight: the member has not acknowledged it, so another member gets it (section 4.8.2
  // allows sending it on as soon as the connection is lost). It is taken out of this session, so a
  // reconnect does not resend it. QoS 2 in flight stays: the delivery is completed with this session
  // when it reconnects [MQTT-4.8.2-4], and never sent to anyone else [MQTT-4.8.2-5]. A flight that
  // ended with a PUBACK/PUBREC of 0x80 or above is already gone: discarded, not sent on [MQTT-4.8.2-6].
  std::size_t w = 0;
  for (std::size_t r = 0; r < st.inflight.size(); ++r) {
    auto& f = st.inflight[r];
    if (f.delivery.share && f.delivery.qos == 1 && reroute(f.delivery, s.key, connected_only, &s.client_id)) continue;
    if (w != r) st.inflight[w] = std::move(f);
    ++w;
  }
  st.inflight.resize(w);
  // Queued messages were never sent: any QoS may go to another member.
  w = 0;
  for (std::size_t r = 0; r < st.queue.size(); ++r) {
    auto& d = st.queue[r];
    if (d.share) {
      std::size_t bytes = d.msg ? d.msg->payload.size() : 0;
      if (reroute(d, s.key, connected_only, &s.client_id)) {
        st.queued_bytes -= bytes;
        continue;
      }
    }
    if (w != r) st.queue[w] = std::move(d);
    ++w;
  }
  st.queue.resize(w);
}

void Shard::set_presence(Session& s, Presence p) {
  // A session that ends with its connection is gone at once; end_session hands its messages on.
  if (p == kOffline && !s.persistent) p = kGone;
  s.presence.store(p, std::memory_order_relaxed);
  if (p == kOffline && s.shared_member) redistribute(s, true);
}

void Shard::deliver_local(Session& s, Delivery&& d) {
  if (s.acl && !s.may_read(d.msg->topic)) [[unlikely]] {
    // acl_file: every delivery is checked, so a wildcard never delivers a topic the client may not read.
    if (d.seq) forget(d, s.client_id);
    return;
  }
  if (s.conn && s.conn->state() == ServerConnection::State::kConnected) {
    auto before_q0 = s.conn->dropped_qos0();
    auto before_q = s.conn->dropped_queue();
    s.conn->deliver(std::move(d));
    if (s.conn->dropped_qos0() != before_q0) Stats::add(stats_.dropped_qos0, 1);
    if (s.conn->dropped_queue() != before_q) Stats::add(stats_.dropped_queue_full, 1);
    Stats::add(stats_.messages_sent, 1);
    if (io_) io_->output_ready(*s.conn);
    return;
  }
  // A shared message for a member that went offline after it was chosen: a connected member takes
  // it if there is one; otherwise it waits here like any other (section 4.8.2).
  if (d.share && reroute(d, s.key, true, &s.client_id)) return;
  if (!s.persistent || (d.qos == 0 && !broker_.limits().queue_qos0)) {  // queue_qos0_messages false
    if (d.seq) forget(d, s.client_id);
    return;
  }
  Stats::add(stats_.changes, 1);
  const std::uint64_t seq = d.seq;
  Delivery kept;
  if (seq) kept = d;  // only stored deliveries pay for the copy
  protocol::Limit bound{};
  if (!protocol::queue_offline(s.state, std::move(d), broker_.limits(), &bound)) {
    if (seq) forget(kept, s.client_id);  // the offline-queue bound: the one loss every mode allows
    Stats::add(stats_.dropped_queue_full, 1);
    Stats::add(stats_.limits[static_cast<std::size_t>(bound)], 1);
    // Rate-limited: the first drop and then every 1000th.
    if (s.drops_logged++ % 1000 == 0) {
      log(2, fmt::format("Outgoing messages are being dropped for client {}.", s.client_id));
    }
  }
}

void Shard::on_subscribe(ServerConnection& c, const codec::Subscribe& sub, std::vector<std::uint8_t>& codes) {
  auto* s = static_cast<Session*>(c.user);
  send_retained_.assign(sub.topics.size(), 0);
  const bool durable = s->state.durable.load(std::memory_order_relaxed);
  if (durable && store_->full() && store_full()) {
    // A persistent session's subscriptions need the store: refused while it is full.
    for (auto& code : codes) {
      if (code < 0x80) code = c.version() == codec::Version::kV5 ? to_byte(Reason::kQuotaExceeded) : 0x80;
    }
    return;
  }
  if (s->acl) {
    // acl_file: a filter that can reach no topic the client may read, or that a deny rule covers, is
    // refused (Mosquitto grants it and filters deliveries; Tern does both, docs/security.md).
    for (std::size_t i = 0; i < sub.topics.size(); ++i) {
      if (codes[i] >= 0x80 || s->acl->view.subscribe_allowed(sub.topics[i].filter)) continue;
      codes[i] = c.version() == codec::Version::kV5 ? to_byte(Reason::kNotAuthorized) : 0x80;
      log(1, fmt::format("Denied SUBSCRIBE from {} to '{}': not allowed by the ACL.", c.client_id(), sub.topics[i].filter));
    }
  }
  const std::size_t max_subs = broker_.config().max_subscriptions;
  bool max_subs_logged = false;
  for (std::size_t i = 0; i < sub.topics.size(); ++i) {
    if (codes[i] >= 0x80) continue;
    const auto& t = sub.topics[i];
    if (max_subs != 0 && s->subs.size() >= max_subs && !s->subs.contains(t.filter)) {
      // max_subscriptions: each subscription costs trie nodes and a write lock on every reader slot, so
      // one session may not hold without bound. A new filter beyond it fails (5.0: 0x97 Quota exceeded;
      // 3.1.1: 0x80); replacing one the session has is always allowed.
      codes[i] = c.version() == codec::Version::kV5 ? to_byte(Reason::kQuotaExceeded) : 0x80;
      c.count_limit(protocol::Limit::kMaxSubscriptions);
      if (!max_subs_logged) {
        log(1, fmt::format("Client {} has {} subscriptions (max_subscriptions): '{}' refused.", c.client_id(),
                           s->subs.size(), t.filter));
        max_subs_logged = true;
      }
      continue;
    }
    SubOptions o{t.qos, t.no_local, t.retain_as_published,
                 sub.props.subscription_ids.empty() ? 0u : sub.props.subscription_ids[0]};
    bool fresh = broker_.router().subscribe(t.filter, s->key, s->client_id, o, &s->state.congested, &s->presence,
                                            &s->state.durable);
    Stats::add(stats_.changes, 1);
    s->subs[t.filter] = o;
    std::string_view share_name;
    std::string_view inner;
    const bool shared = parse_shared_subscription(t.filter, share_name, inner) == SharedFilter::kShared;
    s->shared_member = s->shared_member || shared;
    // Retain handling: 0 always, 1 only for a new subscription, 2 never [MQTT-3.3.1-9..11]. A shared
    // subscription gets no retained messages on subscribe: they would go to every member at once.
    send_retained_[i] = !shared && (t.retain_handling == 0 || (t.retain_handling == 1 && fresh));
  }
  if (durable) {
    write_session(*s, true);
    hold(c, false);  // SUBACK once the subscriptions are stored
  }
}

void Shard::on_subscribed(ServerConnection& c, const codec::Subscribe& sub, const std::vector<std::uint8_t>& codes) {
  std::vector<MessagePtr> found;
  auto* s = static_cast<Session*>(c.user);
  const bool durable = store_ && s && s->state.durable.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < sub.topics.size(); ++i) {
    if (codes[i] >= 0x80 || !send_retained_[i]) continue;
    found.clear();
    broker_.retained().match(sub.topics[i].filter, found);
    for (auto& m : found) {
      if (!s->may_read(m->topic)) continue;  // retained messages pass the read check too
      Delivery d;
      d.msg = m;
      d.qos = std::min(m->qos, codes[i]);
      d.retain = true;  // retained messages sent on subscribe have RETAIN=1 [MQTT-3.3.1-8]
      if (!sub.props.subscription_ids.empty()) d.sub_ids.push_back(sub.props.subscription_ids[0]);
      // Stored inline: the retained message is shared with every worker, its record id is not
      // this worker's to give.
      if (durable && d.qos > 0) store_delivery(d, s->client_id, true);
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
    Stats::add(stats_.changes, 1);
    s->subs.erase(u.filters[i]);
    codes[i] = existed ? 0x00 : to_byte(Reason::kNoSubscriptionExisted);
  }
  if (s->state.durable.load(std::memory_order_relaxed)) {
    write_session(*s, false);
    hold(c, true);  // UNSUBACK once the change is stored
  }
}

protocol::MessagePtr Shard::take_will(ServerConnection& c) {
  const auto& w = c.will();
  if (!w) return nullptr;
  codec::Properties props = w->props;  // will properties travel with the message
  props.will_delay.reset();
  auto m = protocol::Message::make(w->topic, w->payload, w->qos, w->retain, c.client_id(), protocol::Clock::now(),
                                   &props);
  c.clear_will();
  return m;
}

void Shard::send_will(const protocol::MessagePtr& m) {
  log(1, fmt::format("Sending will of client {} to {}.", m->origin, m->topic));
  if (m->retain) broker_.retained().set(m, store_);
  route(m, std::string(m->origin));
}

void Shard::publish_will(ServerConnection& c) {
  if (auto m = take_will(c)) send_will(m);
}

std::size_t Shard::apply_auth(const std::shared_ptr<const Auth>& auth) {
  std::size_t kicked = 0;
  std::vector<ServerConnection*> out;
  for (auto& [id, sp] : by_client_) {
    Session& s = *sp;
    if (!s.credentials_known) continue;  // checked when its client connects
    const Auth::Rules& rules = auth->rules(s.listener);
    const std::string* user = s.username ? &*s.username : nullptr;
    if (s.conn && s.conn->state() == ServerConnection::State::kConnected) {
      std::optional<std::string> password;
      if (s.password) password = *s.password;
      // A SCRAM client is checked by whether its user still has credentials for its mechanism.
      const Reason r = s.scram ? scram_recheck(*auth, id, s)
                               : auth->authenticate(s.listener, id, s.username, password, s.identity_from_transport);
      if (r != Reason::kSuccess) {
        log(1, fmt::format("Client {} no longer passes the reloaded password file or settings, disconnecting.", id));
        out.push_back(s.conn);
        continue;
      }
    }
    if (rules.acl) {
      if (!s.acl) s.acl = std::make_unique<Session::AclState>();
      s.acl->auth = auth;
      s.acl->set_view(rules.acl->view(id, user));
      if (s.conn && s.conn->will() && !s.acl->allowed(s.conn->will()->topic, security::Access::kWrite)) {
        log(1, fmt::format("Will of client {} on '{}' is no longer allowed by the ACL; dropped.", id, s.conn->will()->topic));
        s.conn->clear_will();
      }
    } else {
      s.acl.reset();
    }
  }
  // Disconnected after the walk: closing a clean session ends it (and erases it from by_client_).
  for (ServerConnection* c : out) {
    c->disconnect(Reason::kNotAuthorized, CloseCause::kNotAuthorized);
    if (io_) io_->output_ready(*c);
    ++kicked;
  }
  return kicked;
}

void Shard::on_closed(ServerConnection& c, CloseCause) {
  by_serial_.erase(c.serial);  // store completions no longer reach it
  if (!scram_.empty()) scram_.erase(c.serial);  // an exchange cut short
  auto* s = static_cast<Session*>(c.user);
  if (s == nullptr) {
    if (io_) io_->output_ready(c);
    return;
  }
  c.user = nullptr;
  stats_.clients_connected.fetch_sub(1, std::memory_order_relaxed);
  // The will goes out on any close but a normal DISCONNECT (the protocol already dropped it then)
  // [MQTT-3.1.2-8]; Mosquitto also sends it on takeover, and so does Tern. A 5.0 Will Delay Interval
  // holds it back until the delay or the end of the session, whichever is first [MQTT-3.1.3-9].
  const std::uint32_t delay =
      c.will() && c.version() == codec::Version::kV5 ? c.will()->props.will_delay.value_or(0) : 0;
  auto will = take_will(c);
  if (s->conn == &c) {
    c.detach_session();
    std::uint32_t expiry = 0;
    s->persistent = lifetime(*s, expiry);
    s->expiry_s = expiry;
    s->conn = nullptr;
    s->offline_since = protocol::Clock::now();
    set_presence(*s, kOffline);  // shared subscriptions: its messages go to connected members
    if (will && delay > 0 && s->persistent) {
      s->pending_will = std::move(will);
      s->will_due = s->offline_since + std::chrono::seconds(std::min(delay, expiry));
    }
    if (will) send_will(will);
    if (!s->persistent) {
      end_session(*s);  // [MQTT-3.1.2-6] clean session ends with the connection
    } else if (s->state.durable.load(std::memory_order_relaxed)) {
      write_session(*s, false);  // offline since now, with its expiry and pending will
    }
  } else if (will) {
    send_will(will);
  }
  if (io_) io_->output_ready(c);
}

Session& Shard::new_session(const std::string& client_id) {
  auto fresh = std::make_unique<Session>();
  fresh->local_id = next_local_id_++;
  fresh->key = make_key(index_, fresh->local_id);
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
  broker_.router().subscribe(filter, s.key, s.client_id, o, &s.state.congested, &s.presence, &s.state.durable);
  s.subs[filter] = o;
  std::string_view share_name;
  std::string_view inner;
  if (parse_shared_subscription(filter, share_name, inner) == SharedFilter::kShared) s.shared_member = true;
}

void Shard::end_session(Session& s) {
  if (s.pending_will) send_will(std::exchange(s.pending_will, nullptr));  // the session ends before the delay
  s.presence.store(kGone, std::memory_order_relaxed);
  for (const auto& [filter, opts] : s.subs) broker_.router().unsubscribe(filter, s.key);
  if (s.conn) {
    s.conn->user = nullptr;
    s.conn->detach_session();
  }
  // Its shared messages go to the other members of their groups (QoS 2 in flight does not
  // [MQTT-4.8.2-5]); with none left, they end with the session.
  if (s.shared_member) redistribute(s, false);
  if (store_) {
    // Its records go (one range delete), and with them its references to stored messages.
    bool any = s.state.durable.load(std::memory_order_relaxed) || s.persistent;
    for (const auto& f : s.state.inflight) {
      if (f.delivery.seq && f.delivery.msg && !f.delivery.stored_inline) unref(*f.delivery.msg);
      any = any || f.delivery.seq;
    }
    for (const auto& d : s.state.queue) {
      if (d.seq && d.msg && !d.stored_inline) unref(*d.msg);
      any = any || d.seq;
    }
    for (auto id : s.stored_inbound) {
      auto it = s.state.inbound_qos2.find(id);
      if (it != s.state.inbound_qos2.end() && it->second && it->second->store_id) unref(*it->second);
    }
    if (any || !s.stored_inbound.empty()) progress_.erase_session_state(s.client_id);
    s.state.durable.store(false, std::memory_order_relaxed);
  }
  by_id_.erase(s.local_id);
  by_client_.erase(s.client_id);  // destroys s
}

void Shard::wait_on(SessionKey sub, SessionKey publisher) {
  unsigned w = worker_of(sub);
  if (w == index_) {
    add_waiter(local_of(sub), publisher);
  } else {
    send_control(w, Control{Control::kWait, local_of(sub), publisher});
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
    send_control(w, Control{Control::kResume, local_of(publisher), 0});
    return;
  }
  auto it = by_id_.find(local_of(publisher));
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

namespace {
// Moves `src` to the end of `dst` (a swap when `dst` is empty), leaving `src` empty.
template <typename T>
void append(std::vector<T>& dst, std::vector<T>& src) {
  if (dst.empty()) {
    dst.swap(src);
  } else {
    for (auto& x : src) dst.push_back(std::move(x));
  }
  src.clear();
}
}  // namespace

template <typename T>
void Shard::hand_over(std::vector<T>& items, std::vector<T>& inbox) {
  bool wake;
  {
    std::lock_guard lock(inbox_mu_);
    wake = inbox_.empty() && control_in_.empty() && store_done_in_.empty();  // woken only when the inbox was empty
    append(inbox, items);
  }
  if (wake && io_) io_->wake();
}

void Shard::enqueue(std::vector<Control>& items) { hand_over(items, control_in_); }

void Shard::enqueue(std::vector<InboxItem>& items) { hand_over(items, inbox_); }

void Shard::drain_inbox() {
  {
    std::lock_guard lock(inbox_mu_);
    draining_.swap(inbox_);
    control_draining_.swap(control_in_);
    store_done_draining_.swap(store_done_in_);
  }
  for (store::Status st : store_done_draining_) store_done(st);
  store_done_draining_.clear();
  for (const Control& c : control_draining_) {
    if (c.kind == Control::kWait) {
      add_waiter(c.session, c.other);
    } else {
      resume_publisher(make_key(index_, c.session));
    }
  }
  control_draining_.clear();
  protocol::ReleaseBatch done;  // consecutive items often carry the same message (a fan-out)
  for (auto& item : draining_) {
    auto it = by_id_.find(item.session);
    const std::string* client = item.client_id.get();
    if (it != by_id_.end()) {
      deliver_local(*it->second, std::move(item.delivery));
    } else if (item.delivery.share) {
      // Its session ended while the message was on the way: another member of the group takes it.
      reroute(item.delivery, make_key(index_, item.session), false, client);
    } else if (item.delivery.seq && client) {
      forget(item.delivery, *client);  // its session ended meanwhile
    }
    done.add(item.delivery.msg);
  }
  done.flush();
  draining_.clear();
}

void Shard::flush_outboxes() {
  for (unsigned w = 0; w < control_out_.size(); ++w) {
    if (!control_out_[w].empty()) broker_.shard(w).enqueue(control_out_[w]);
  }
  for (unsigned w = 0; w < outbox_.size(); ++w) {
    auto& box = outbox_[w];
    if (box.empty()) continue;
    Stats::add(stats_.cross_worker_batches, 1);
    Stats::add(stats_.cross_worker_deliveries, box.size());
    broker_.shard(w).enqueue(box);
  }
}

void Shard::publish_sys(protocol::TimePoint now) {
  unsigned interval = broker_.config().sys_interval;
  if (index_ != 0 || interval == 0 || now - last_sys_ < std::chrono::seconds(interval)) return;
  last_sys_ = now;
  // Every topic every interval, retained, QoS 0 (sys_topics.hpp; Mosquitto sends some only when they
  // change). The other workers' gauges were sampled on their threads within the last second.
  SysTree::Values values;
  sys_.collect(broker_, now, values);
  for (const auto& [topic, value] : values) {
    publish_internal(protocol::Message::make(topic, value, 0, true, {}, now));
  }
}

void Shard::tick(protocol::TimePoint now) {
  publish_sys(now);
  if (index_ == 0) broker_.retained().purge_expired(now, store_);
  if (now - last_purge_ >= std::chrono::seconds(10)) {
    last_purge_ = now;
    purge_expired_queues(now);
  }
  std::vector<Session*> expired;
  for (auto& [id, s] : by_client_) {
    if (s->pending_will && now >= s->will_due) send_will(std::exchange(s->pending_will, nullptr));
    if (s->conn || !s->persistent || s->expiry_s == 0xFFFFFFFF) continue;
    if (now - s->offline_since >= std::chrono::seconds(s->expiry_s)) expired.push_back(s.get());
  }
  for (Session* s : expired) {
    log(1, fmt::format("Expiring client {} after {} s offline.", s->client_id, s->expiry_s));
    end_session(*s);
  }
}

}  // namespace tern::broker
