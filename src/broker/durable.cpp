// The broker's use of the embedded store (docs/durability.md, ADR 0002): which records each event
// writes, acknowledgements that wait for them, and recovery at start.
//
// Every worker collects what it writes during one batch of work in two store batches: new work
// (messages, queue entries, session records, inbound QoS 2 ids, retained messages; refused when
// the store is full) and progress (erases and state changes of work the store already took; written
// even at the size bound). Both are submitted at the end of the batch of work, new work first, and
// before deliveries are handed to other workers, so a later record about a delivery (its state, its
// erase) is always submitted after the record that created it. The worker that routes a message
// writes its record and the queue entries of every persistent session it lands in, so the PUBACK
// waits for one group commit of its own worker's batch and nothing else.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "broker/shard.hpp"
#include "core/log.hpp"
#include "core/topic.hpp"

namespace tern::broker {

using protocol::Clock;
using protocol::Delivery;
using protocol::MessagePtr;
using protocol::ServerConnection;

namespace {

store::WallMs wall_now() {
  return static_cast<store::WallMs>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// A steady-clock time point as wall-clock milliseconds (for records that outlive the process).
store::WallMs to_wall(protocol::TimePoint t, protocol::TimePoint now_steady, store::WallMs now_wall) {
  auto ago = std::chrono::duration_cast<std::chrono::milliseconds>(now_steady - t).count();
  if (ago < 0) ago = 0;
  return now_wall > static_cast<store::WallMs>(ago) ? now_wall - static_cast<store::WallMs>(ago) : 0;
}

protocol::TimePoint from_wall(store::WallMs t, protocol::TimePoint now_steady, store::WallMs now_wall) {
  if (t >= now_wall) return now_steady;
  return now_steady - std::chrono::milliseconds(now_wall - t);
}

store::WillRecord will_record(const codec::Will& w) {
  store::WillRecord r;
  r.topic = w.topic;
  r.payload = w.payload;
  r.qos = w.qos;
  r.retain = w.retain;
  r.props = w.props;
  r.delay = r.props.will_delay.value_or(0);
  r.props.will_delay.reset();
  return r;
}

}  // namespace

bool Shard::wants_persistence(const ServerConnection& c) const {
  if (c.version() == codec::Version::kV5) return c.session_expiry() > 0;
  return !c.clean_start();
}

bool Shard::is_durable(const Session& s) const { return store_ != nullptr && s.persistent; }

store::MessageRecord to_record(const protocol::Message& m, std::uint64_t id) {
  store::MessageRecord r;
  r.id = id;
  r.topic = std::string(m.topic);
  r.payload = std::string(m.payload);
  r.qos = m.qos;
  r.retain = m.retain;
  r.origin = std::string(m.origin);
  if (m.has_props()) {
    r.props = m.props();
    if (r.props.message_expiry) {
      // The record keeps the absolute expiry; recovery forwards what is left of it [MQTT-3.3.2-6].
      const auto now_steady = Clock::now();
      r.expiry = to_wall(m.created, now_steady, wall_now()) + std::uint64_t{*r.props.message_expiry} * 1000;
    }
  }
  return r;
}

void Shard::store_delivery(Delivery& d, const std::string& client, bool inline_message) {
  const protocol::Message& m = *d.msg;
  store::QueueEntry e;
  e.client_id = client;
  e.qos = d.qos;
  e.retain = d.retain;
  e.subscription_ids = d.sub_ids;
  d.seq = next_store_id();
  e.seq = d.seq;
  if (inline_message) {
    // One record: put once, erased once (no message record, no references).
    e.message = to_record(m, 0);
    d.stored_inline = true;
    work_.put(e);
    return;
  }
  if (m.store_id == 0) {
    // First stored delivery of this message: its record, and a reference held while it is routed
    // (so a delivery discarded on the way cannot erase it under the others).
    m.store_id = next_store_id();
    m.store_refs.store(1, std::memory_order_relaxed);
    routing_ref_ = true;
    work_.put(to_record(m, m.store_id));
  }
  m.store_refs.fetch_add(1, std::memory_order_relaxed);
  e.message_id = m.store_id;
  work_.put(e);
}

void Shard::unref(const protocol::Message& m) {
  if (m.store_id != 0 && m.store_refs.fetch_sub(1, std::memory_order_acq_rel) == 1) progress_.erase_message(m.store_id);
}

void Shard::forget(const Delivery& d, const std::string& client) {
  if (!store_ || d.seq == 0) return;
  // A QoS 1 entry is written once; a QoS 2 entry also as sent and released.
  progress_.erase_queue_entry(client, d.seq, d.qos == 1);
  if (d.msg && !d.stored_inline) unref(*d.msg);
}

void Shard::write_session(const Session& s, bool new_work) {
  store::SessionRecord r;
  r.client_id = s.client_id;
  r.version = s.conn ? s.conn->version() : s.version;
  r.expiry_interval = s.expiry_s;
  for (const auto& [filter, o] : s.subs) {
    store::SubscriptionRecord sub;
    sub.filter = filter;
    sub.qos = o.qos;
    sub.no_local = o.no_local;
    sub.retain_as_published = o.retain_as_published;
    sub.subscription_id = o.subscription_id;
    r.subscriptions.push_back(std::move(sub));
  }
  // In key order, so the record is the same for the same state.
  std::sort(r.subscriptions.begin(), r.subscriptions.end(),
            [](const auto& a, const auto& b) { return a.filter < b.filter; });
  const auto now_steady = Clock::now();
  const auto now = wall_now();
  if (!s.conn) {
    r.disconnected_at = to_wall(s.offline_since, now_steady, now);
    if (s.pending_will) {
      const protocol::Message& m = *s.pending_will;
      store::WillRecord w;
      w.topic = std::string(m.topic);
      w.payload = std::string(m.payload);
      w.qos = m.qos;
      w.retain = m.retain;
      if (m.has_props()) w.props = m.props();
      auto left = std::chrono::duration_cast<std::chrono::seconds>(s.will_due - now_steady).count();
      w.delay = static_cast<std::uint32_t>(std::max<long long>(left, 1));
      r.will = std::move(w);
    }
  } else if (s.conn->will()) {
    r.will = will_record(*s.conn->will());  // published at recovery if the broker stopped meanwhile
  }
  (new_work ? work_ : progress_).put(r);
}

void Shard::hold(ServerConnection& c, bool progress) {
  if (c.serial == 0) return;
  const std::uint64_t t = c.hold();
  (progress ? progress_tickets_ : work_tickets_).emplace_back(c.serial, t);
}

bool Shard::store_full() {
  if (!store_ || !store_->full()) return false;
  if (!broker_.store_full_logged.exchange(true, std::memory_order_relaxed)) {
    log(3, fmt::format("The store at {} is full: new persistent sessions, subscriptions and messages for them "
                       "are refused until there is space again.",
                       store_->options().path));
  }
  return true;
}

bool Shard::needs_store(const MessagePtr& m, const std::string& publisher) {
  if (m->retain && !sys_publish_denied(m->topic)) return true;
  scratch_targets_.clear();
  scratch_ids_.clear();
  broker_.router().match(m->topic, publisher, scratch_targets_, nullptr, &scratch_ids_);
  for (const auto& t : scratch_targets_) {
    if (t.durable && (t.opts.qos > 0 || broker_.limits().upgrade_outgoing_qos)) return true;
  }
  return false;
}

Reason Shard::refuse_full(ServerConnection& c) {
  // 3.1.1 has no negative PUBACK: the message is not acknowledged and the connection is closed.
  if (c.version() != codec::Version::kV5) c.disconnect(Reason::kQuotaExceeded, protocol::CloseCause::kStoreFailure);
  return Reason::kQuotaExceeded;
}

Reason Shard::on_qos2_held(ServerConnection& c, std::uint16_t packet_id, const MessagePtr& m) {
  auto* s = static_cast<Session*>(c.user);
  if (!store_ || !s || !m) return Reason::kSuccess;
  const bool durable = s->state.durable.load(std::memory_order_relaxed);
  if (store_->full() && (durable || needs_store(m, c.client_id())) && store_full()) return refuse_full(c);
  if (!durable) return Reason::kSuccess;
  // A persistent session's held QoS 2 message and its id are stored before PUBREC: after a restart
  // a resent PUBLISH gets PUBREC without a second delivery, and PUBREL releases the message.
  if (m->store_id == 0) {
    m->store_id = next_store_id();
    m->store_refs.store(1, std::memory_order_relaxed);  // the inbound id's reference
    work_.put(to_record(*m, m->store_id));
  } else {
    m->store_refs.fetch_add(1, std::memory_order_relaxed);
  }
  work_.put(store::InboundQos2{s->client_id, packet_id, m->store_id});
  s->stored_inbound.insert(packet_id);
  hold(c, false);
  return Reason::kSuccess;
}

void Shard::on_qos2_released(ServerConnection& c, std::uint16_t packet_id, const MessagePtr& m) {
  auto* s = static_cast<Session*>(c.user);
  if (!store_ || !s || s->stored_inbound.erase(packet_id) == 0) return;
  // The id goes in the same batch as the deliveries (new work): both or neither survive a crash, so
  // a resent PUBREL never delivers the message twice. PUBCOMP waits for that batch: once the client
  // has it, it never sends this PUBREL again. The message record goes with its last reference.
  work_.erase_inbound(s->client_id, packet_id);
  if (m) unref(*m);
  hold(c, false);
}

void Shard::on_stored_flight(ServerConnection& c, const Delivery& d, std::uint16_t packet_id, Flight f) {
  auto* s = static_cast<Session*>(c.user);
  if (!store_ || !s) return;
  switch (f) {
    case Flight::kSent:
    case Flight::kReleased: {
      store::QueueEntry e;
      e.client_id = s->client_id;
      e.seq = d.seq;
      if (!d.msg) return;
      if (d.stored_inline) {
        e.message = to_record(*d.msg, 0);  // rewritten with the entry
      } else {
        e.message_id = d.msg->store_id;
      }
      e.qos = d.qos;
      e.retain = d.retain;
      e.subscription_ids = d.sub_ids;
      e.state = f == Flight::kSent ? store::QueueState::kSent : store::QueueState::kReleased;
      e.packet_id = packet_id;
      e.dup = d.dup;
      progress_.put(e);
      hold(c, true);  // the PUBLISH (or PUBREL) goes out once this is stored
      return;
    }
    case Flight::kDone: forget(d, s->client_id); return;
  }
}

void Shard::flush_store() {
  if (!store_) return;
  auto submit = [this](store::Batch& b, std::vector<std::pair<std::uint64_t, std::uint64_t>>& tickets, bool progress) {
    // An empty batch with tickets still goes through the store: its completion comes after every
    // batch submitted before it (a retained message's, say).
    if (b.empty() && tickets.empty()) return;
    if (progress) b.allow_at_bound();
    submitted_.push_back(std::move(tickets));
    tickets.clear();
    store_->submit(std::move(b), [this](store::Status st) {
      bool wake;
      {
        std::lock_guard lock(inbox_mu_);
        wake = inbox_.empty() && control_in_.empty() && store_done_in_.empty();
        store_done_in_.push_back(st);
      }
      if (wake && io_) io_->wake();
    });
    b.clear();
  };
  submit(work_, work_tickets_, false);
  submit(progress_, progress_tickets_, true);
}

void Shard::store_done(store::Status st) {
  if (submitted_.empty()) return;
  auto tickets = std::move(submitted_.front());
  submitted_.pop_front();
  const bool ok = st == store::Status::kOk;
  if (ok) {
    // Progress is written even at the bound: "full" ends when the store says so, not with it.
    if (!store_->full() && broker_.store_full_logged.exchange(false, std::memory_order_relaxed)) {
      log(1, "The store has room again: persistent work is accepted.");
    }
    if (failure_logged_) log(1, "The store writes again.");
    failure_logged_ = false;
  } else if (!failure_logged_ && st != store::Status::kFull) {
    failure_logged_ = true;
    log(3, fmt::format("The store could not write a batch ({}); the acknowledgements behind it are not sent.",
                       store::status_name(st)));
  } else if (st == store::Status::kFull) {
    store_full();
  }
  for (auto [serial, t] : tickets) {
    auto it = by_serial_.find(serial);
    if (it == by_serial_.end()) continue;  // the connection ended meanwhile
    ServerConnection& c = *it->second;
    const bool was_paused = c.paused();
    c.complete(t, ok);
    if (io_) {
      io_->output_ready(c);
      if (was_paused && !c.paused()) io_->resume(c);
    }
  }
}

void Shard::purge_expired_queues(protocol::TimePoint now) {
  for (auto& entry : by_client_) {
    Session* s = entry.second.get();
    if (s->conn) continue;  // a connected session drops them when it would send them
    auto& st = s->state;
    std::erase_if(st.queue, [&](const Delivery& d) {
      const protocol::Message& m = *d.msg;
      if (!m.has_props() || !m.props().message_expiry) return false;
      if (now - m.created < std::chrono::seconds(*m.props().message_expiry)) return false;
      st.queued_bytes -= m.payload.size();
      forget(d, s->client_id);
      return true;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Recovery

class Recovery : public store::Visitor {
 public:
  explicit Recovery(Broker& b) : broker_(b), now_steady_(Clock::now()), now_wall_(wall_now()) {}

  void message(store::MessageRecord&& m) override {
    note_id(m.id);
    if (m.expiry && *m.expiry <= now_wall_) {
      cleanup_.erase_message(m.id);  // expired while the broker was down [MQTT-3.3.2-5]
      ++counts.expired;
      return;
    }
    MessagePtr msg = make(m);
    msg->store_id = m.id;
    messages_.emplace(m.id, std::move(msg));
  }

  void session(store::SessionRecord&& r) override {
    const bool was_connected = !r.disconnected_at;
    const store::WallMs gone = r.disconnected_at.value_or(now_wall_);
    if (r.expiry_interval != 0xFFFFFFFF && gone + std::uint64_t{r.expiry_interval} * 1000 <= now_wall_) {
      cleanup_.erase_session_state(r.client_id);  // expired while the broker was down
      ++counts.expired;
      return;
    }
    Shard& sh = broker_.shard(broker_.owner_of(r.client_id));
    Session& s = sh.restore_session(r.client_id, r.expiry_interval, from_wall(gone, now_steady_, now_wall_));
    s.version = r.version;
    s.state.durable.store(true, std::memory_order_relaxed);
    for (const auto& sub : r.subscriptions) {
      sh.restore_subscription(s, sub.filter, SubOptions{sub.qos, sub.no_local, sub.retain_as_published, sub.subscription_id});
    }
    if (r.will) {
      codec::Properties props = r.will->props;
      auto m = protocol::Message::make(r.will->topic, r.will->payload, r.will->qos, r.will->retain, r.client_id,
                                       now_steady_, &props);
      if (was_connected && r.will->delay == 0) {
        wills_.push_back({&sh, m});  // its connection ended with the broker: the will goes out
      } else {
        // A delayed will: due its delay after the connection ended (now, if it ended with the broker).
        s.pending_will = m;
        const auto delay = std::chrono::seconds(std::min(r.will->delay, r.expiry_interval));
        s.will_due = s.offline_since + delay;
      }
      ++counts.wills;
    }
    sessions_.emplace(r.client_id, &s);
    ++counts.sessions;
  }

  void queue_entry(store::QueueEntry&& e) override {
    note_id(e.seq);
    auto s = sessions_.find(e.client_id);
    MessagePtr msg;
    if (e.message) {
      if (e.message->expiry && *e.message->expiry <= now_wall_) {
        ++counts.expired;
      } else {
        msg = make(*e.message);
      }
    } else if (auto m = messages_.find(e.message_id); m != messages_.end()) {
      msg = m->second;
    }
    if (s == sessions_.end() || !msg) {
      cleanup_.erase_queue_entry(e.client_id, e.seq);  // its session or message expired
      return;
    }
    Session& ss = *s->second;
    Delivery d;
    d.msg = std::move(msg);
    d.qos = e.qos;
    d.retain = e.retain;
    d.sub_ids = std::move(e.subscription_ids);
    d.seq = e.seq;
    d.stored_inline = e.inline_message();
    if (!d.stored_inline) d.msg->store_refs.fetch_add(1, std::memory_order_relaxed);
    auto& st = ss.state;
    switch (e.state) {
      case store::QueueState::kQueued:
        // QoS 1 is not stored as sent, so it may have been: resent with DUP=1 [MQTT-3.3.1-1].
        d.dup = e.qos == 1;
        st.queued_bytes += d.msg->payload.size();
        st.queue.push_back(std::move(d));
        ++counts.queued;
        break;
      case store::QueueState::kSent:
      case store::QueueState::kReleased:
        d.dup = true;
        st.inflight.push_back(protocol::OutboundFlight{e.packet_id, std::move(d), e.state == store::QueueState::kReleased});
        if (e.packet_id >= st.next_packet_id) st.next_packet_id = static_cast<std::uint16_t>(e.packet_id == 0xFFFF ? 1 : e.packet_id + 1);
        ++counts.inflight;
        break;
    }
  }

  void inbound(store::InboundQos2&& i) override {
    auto s = sessions_.find(i.client_id);
    if (s == sessions_.end()) {
      cleanup_.erase_inbound(i.client_id, i.packet_id);
      return;
    }
    MessagePtr msg;
    if (i.message_id != 0) {
      auto m = messages_.find(i.message_id);
      if (m == messages_.end()) {
        cleanup_.erase_inbound(i.client_id, i.packet_id);
        return;
      }
      msg = m->second;
      msg->store_refs.fetch_add(1, std::memory_order_relaxed);
    }
    s->second->state.inbound_qos2[i.packet_id] = std::move(msg);
    s->second->stored_inbound.insert(i.packet_id);
    ++counts.inbound;
  }

  void retained(store::RetainedRecord&& r) override {
    if (r.message.expiry && *r.message.expiry <= now_wall_) {
      cleanup_.erase_retained(r.message.topic);
      ++counts.expired;
      return;
    }
    broker_.retained().set(make(r.message));
    ++counts.retained;
  }

  // After load(): messages no entry took are dropped, wills of connections that ended with the
  // broker go out, and the ids start above every id read.
  void finish() {
    for (auto& [id, m] : messages_) {
      if (m->store_refs.load(std::memory_order_relaxed) == 0) cleanup_.erase_message(id);
    }
    broker_.store_ids_.store(max_id_ + 1, std::memory_order_relaxed);
    for (auto& [shard, m] : wills_) shard->send_will(m);
  }

  store::Batch cleanup_;
  Broker::Recovered counts;

 private:
  MessagePtr make(const store::MessageRecord& r) {
    codec::Properties props = r.props;
    if (r.expiry) {
      // What is left of the Message Expiry Interval, rounded up.
      const auto left_ms = *r.expiry > now_wall_ ? *r.expiry - now_wall_ : 0;
      props.message_expiry = static_cast<std::uint32_t>((left_ms + 999) / 1000);
    }
    return protocol::Message::make(r.topic, r.payload, r.qos, r.retain, r.origin, now_steady_, &props);
  }
  void note_id(std::uint64_t id) { max_id_ = std::max(max_id_, id); }

  Broker& broker_;
  protocol::TimePoint now_steady_;
  store::WallMs now_wall_;
  std::uint64_t max_id_ = 0;
  std::unordered_map<std::uint64_t, MessagePtr> messages_;
  std::unordered_map<std::string, Session*> sessions_;
  std::vector<std::pair<Shard*, MessagePtr>> wills_;
};

bool Broker::recover(Recovered& counts, std::string& error) {
  if (!store_) return true;
  Recovery r(*this);
  store::LoadCounts loaded;
  if (!store_->load(r, error, &loaded)) return false;
  r.finish();
  // Wills routed at recovery wrote their deliveries into the shards' batches.
  for (auto& s : shards_) s->flush_store();
  if (!r.cleanup_.empty()) {
    r.cleanup_.allow_at_bound();
    if (auto st = store_->write(std::move(r.cleanup_)); st != store::Status::kOk) {
      error = fmt::format("cannot remove expired records from the store: {}", store::status_name(st));
      return false;
    }
  }
  counts = r.counts;
  return true;
}

}  // namespace tern::broker
