#pragma once
// One worker's part of the broker: the sessions and connections this worker owns. Every method runs
// on the owner worker thread except enqueue(), which any thread may call to hand over deliveries.
#include <atomic>
#include <deque>
#include <memory>
#include <unordered_set>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/auth.hpp"
#include "broker/broker.hpp"
#include "broker/sys_topics.hpp"
#include "store/store.hpp"

namespace tern::broker {

struct Session {
  std::uint64_t local_id = 0;
  SessionKey key = 0;
  std::string client_id;
  protocol::SessionState state;
  std::unordered_map<std::string, SubOptions> subs;
  protocol::ServerConnection* conn = nullptr;
  bool persistent = false;
  std::uint32_t expiry_s = 0;  // 0xFFFFFFFF = never
  protocol::TimePoint offline_since{};
  std::uint64_t drops_logged = 0;
  // Publishers (their session keys) paused because this session was congested; resumed when it
  // drains or goes offline.
  std::vector<SessionKey> waiters;
  bool sys_denial_logged = false;  // a PUBLISH to $SYS was refused and logged (once per client)
  // Shared subscriptions: the session's Presence (read by every worker inside the router's lock, to
  // choose group members), whether it ever joined a group (then its messages are looked through when
  // it goes away), and as a publisher, the sticky strategy's choices.
  std::atomic<std::uint8_t> presence{kOffline};
  bool shared_member = false;
  StickyChoices sticky;
  // 5.0 Will Delay Interval: the will of the last connection, published at will_due unless the
  // client comes back first (then cancelled) or the session ends first (then published at once).
  protocol::MessagePtr pending_will;
  protocol::TimePoint will_due{};
  // The store (docs/durability.md; whether deliveries are stored is state.durable): the protocol
  // version of its last connection, and its inbound QoS 2 ids that have a store record.
  codec::Version version = codec::Version::kV311;
  std::unordered_set<std::uint16_t> stored_inbound;
  // acl_file: the client's view of the ACL its last connection was checked with (and that ACL's
  // owner, kept alive across a reload). Null: no ACL applies, every topic is allowed.
  struct AclState {
    std::shared_ptr<const Auth> auth;
    security::Acl::ClientView view;
    // The last answer for each access: a publisher mostly repeats its topic, and so do the messages
    // a subscriber gets, so most checks are one string comparison instead of a walk of the rules.
    std::string last_topic[2];
    bool last_answer[2] = {false, false};
    bool last_known[2] = {false, false};
    bool allowed(std::string_view topic, security::Access a) {
      const int i = a == security::Access::kRead ? 0 : 1;
      if (last_known[i] && last_topic[i] == topic) return last_answer[i];
      last_answer[i] = view.allowed(topic, a);
      last_topic[i].assign(topic);
      last_known[i] = true;
      return last_answer[i];
    }
    void set_view(security::Acl::ClientView v) {
      view = std::move(v);
      last_known[0] = last_known[1] = false;
    }
  };
  std::unique_ptr<AclState> acl;
  // The credentials of the last connection, for the check after a reload (the password only while
  // a password file applies to it).
  std::optional<std::string> username;
  std::unique_ptr<std::string> password;
  bool identity_from_transport = false;
  // Set when the last connection authenticated with SCRAM (enhanced_auth.cpp): `username` is its
  // SCRAM user, and a reload checks that the user still has credentials for this mechanism.
  std::optional<security::ScramHash> scram;
  int listener = -1;
  // False for a session restored from the store until its client connects: its username is not
  // known, so no ACL view can be built; its queue is checked when the client comes back.
  bool credentials_known = false;
  bool may_read(std::string_view topic) { return !acl || acl->allowed(topic, security::Access::kRead); }
  bool acl_denial_logged = false;  // a PUBLISH denied by the ACL was logged (once per connection)
};

// A back-pressure signal between workers: "pause publisher `other` until session `session` drains"
// (kWait, sent to the subscriber's worker) or "resume publisher `session`" (kResume).
struct Control {
  enum Kind : std::uint8_t { kWait, kResume } kind;
  std::uint64_t session;  // local id on the destination worker
  SessionKey other = 0;
};

// A delivery handed from one worker to another.
struct InboxItem {
  std::uint64_t session;  // local id on the destination worker
  protocol::Delivery delivery;
  // A stored delivery's session (its queue entry's key); null otherwise, so the common case moves
  // no string.
  std::unique_ptr<std::string> client_id;
};

class Shard : public protocol::ConnectionHandler {
 public:
  Shard(Broker& broker, unsigned index);
  ~Shard() override;
  void set_io(WorkerIo* io) { io_ = io; }
  void set_store(store::Store* s) { store_ = s; }
  unsigned index() const { return index_; }

  // protocol::ConnectionHandler
  void on_connect(protocol::ServerConnection& c, codec::Connect& connect) override;
  Reason authorize_publish(protocol::ServerConnection& c, const protocol::Message& m) override;
  Reason on_publish(protocol::ServerConnection& c, const protocol::MessagePtr& m) override;
  void on_subscribe(protocol::ServerConnection& c, const codec::Subscribe& s,
                    std::vector<std::uint8_t>& codes) override;
  void on_subscribed(protocol::ServerConnection& c, const codec::Subscribe& s,
                     const std::vector<std::uint8_t>& codes) override;
  void on_unsubscribe(protocol::ServerConnection& c, const codec::Unsubscribe& u,
                      std::vector<std::uint8_t>& codes) override;
  void on_closed(protocol::ServerConnection& c, protocol::CloseCause cause) override;
  void on_drained(protocol::ServerConnection& c) override;
  std::string assign_client_id(const std::string& prefix) override;
  void log(int level, const std::string& line) override;
  Reason on_qos2_held(protocol::ServerConnection& c, std::uint16_t packet_id, const protocol::MessagePtr& m) override;
  void on_qos2_released(protocol::ServerConnection& c, std::uint16_t packet_id, const protocol::MessagePtr& m) override;
  void on_stored_flight(protocol::ServerConnection& c, const protocol::Delivery& d, std::uint16_t packet_id,
                        Flight f) override;
  // MQTT 5 enhanced authentication: SCRAM-SHA-256 and SCRAM-SHA-512 (enhanced_auth.cpp).
  protocol::AuthStep auth_start(protocol::ServerConnection& c, const std::string& method, const std::string& data,
                                bool reauth) override;
  protocol::AuthStep auth_continue(protocol::ServerConnection& c, const std::string& data) override;

  // Publishes the connection's will now, if it has one (then it has none). On a graceful stop every
  // will goes out before any connection is closed, as Mosquitto 2.0 does.
  void publish_will(protocol::ServerConnection& c);
  // Routes a message published by the broker itself ($SYS).
  void publish_internal(const protocol::MessagePtr& m);
  // Any thread: append deliveries for sessions of this worker.
  void enqueue(std::vector<InboxItem>& items);
  void enqueue(std::vector<Control>& items);
  // Owner thread: deliver what other workers handed over.
  void drain_inbox();
  // Owner thread: hand collected cross-worker deliveries to their workers (one batch each).
  void flush_outboxes();
  // Owner thread, after every batch of work and before flush_outboxes: submits what this worker
  // wrote to the store in it (so another worker never sees a delivery before its records).
  void flush_store();
  // Owner thread, about once a second: session expiry.
  void tick(protocol::TimePoint now);
  // Owner thread, after a reload put new password and ACL files in place (Broker::set_auth): checks
  // every connected client again as Mosquitto does, disconnecting those that no longer pass (5.0:
  // DISCONNECT 0x87), and gives every session its view of the new ACL. Returns how many it disconnected.
  std::size_t apply_auth(const std::shared_ptr<const Auth>& auth);

  std::size_t session_count() const { return by_client_.size(); }
  // SCRAM exchanges in progress: one per connection in the middle of one, none once each ended.
  std::size_t scram_exchanges() const { return scram_.size(); }
  // Every session of this worker, by client id (owner thread, or no worker running).
  const std::unordered_map<std::string, std::unique_ptr<Session>>& sessions() const { return by_client_; }
  // Whether a session outlives its connection, and for how long (seconds; 0xFFFFFFFF = never).
  bool lifetime(const Session& s, std::uint32_t& expiry_s) const;
  // Creates an offline persistent session to be filled from a snapshot (before workers start).
  Session& restore_session(const std::string& client_id, std::uint32_t expiry_s, protocol::TimePoint offline_since);
  // Records a subscription of a restored session in the session and the router.
  void restore_subscription(Session& s, const std::string& filter, const SubOptions& o);
  // Worker 0 only: publishes the retained $SYS topics (every sys_interval seconds).
  void publish_sys(protocol::TimePoint now);

 private:
  Reason route(const protocol::MessagePtr& m, const std::string& publisher);
  // The store (durable.cpp).
  friend class Recovery;
  std::uint64_t next_store_id() { return broker_.next_store_id(); }
  // Puts the message's record (once) and a queue entry for a delivery to durable session `client`.
  // With `inline_message`, the message goes in the entry (it lands in this session only).
  void store_delivery(protocol::Delivery& d, const std::string& client, bool inline_message = false);
  // The session no longer holds a stored delivery: its queue entry goes, and the message with the
  // last reference.
  void forget(const protocol::Delivery& d, const std::string& client);
  void unref(const protocol::Message& m);
  // Writes the session's record: into the new-work batch (refused when the store is full) or the
  // progress batch (always written).
  void write_session(const Session& s, bool new_work);
  // The acknowledgement `c` is about to send waits for this iteration's batch (progress or new work).
  void hold(protocol::ServerConnection& c, bool progress);
  // Whether new persistent work must be refused (the store is full), logging it once.
  bool store_full();
  // Whether routing `m` would store anything (a durable target, or a retained message).
  bool needs_store(const protocol::MessagePtr& m, const std::string& publisher);
  // Answers a refusal because the store is full: 5.0 gets 0x97, 3.1.1 is disconnected.
  Reason refuse_full(protocol::ServerConnection& c);
  void store_done(store::Status st);
  bool is_durable(const Session& s) const;
  // Whether the connection asks for a session that outlives it.
  bool wants_persistence(const protocol::ServerConnection& c) const;
  bool routing_ref_ = false;  // route() holds a reference on the message's record
  // Drops expired messages from the queues of offline sessions (and their records) [MQTT-3.3.2-5].
  void purge_expired_queues(protocol::TimePoint now);
  protocol::TimePoint last_purge_{};
  void deliver_local(Session& s, protocol::Delivery&& d);
  // Back-pressure: register `publisher` as waiting on subscriber session `sub` (any worker), and
  // resume a publisher (any worker).
  void wait_on(SessionKey sub, SessionKey publisher);
  void add_waiter(std::uint64_t sub_local, SessionKey publisher);
  void resume_publisher(SessionKey publisher);
  void send_control(unsigned worker, Control c);
  // Any thread: appends to one of this worker's inboxes and wakes it if it was idle.
  template <typename T>
  void hand_over(std::vector<T>& items, std::vector<T>& inbox);
  void end_session(Session& s);
  // Shared subscriptions. The session's connection came (kOnline) or went (kOffline); going offline
  // hands its unsent and unacknowledged QoS 1 shared messages to connected members.
  void set_presence(Session& s, Presence p);
  // Hands the shared deliveries of `s` to other members: its queue, and QoS 1 in flight (QoS 2 in
  // flight stays with it [MQTT-4.8.2-4], [MQTT-4.8.2-5]). With `connected_only`, only to connected
  // members, and what none takes stays.
  void redistribute(Session& s, bool connected_only);
  // Gives a shared delivery that session `from` cannot take to another member; false when none.
  // `from_client` names the session whose stored entry it was (then that entry goes).
  bool reroute(protocol::Delivery& d, SessionKey from, bool connected_only, const std::string* from_client = nullptr);
  // Sends a delivery to a session of any worker (shared subscriptions' second choices).
  // `client` is the target's client id when the delivery is stored.
  void dispatch(SessionKey key, protocol::Delivery&& d, const std::string* client = nullptr);
  // Builds the connection's will as a message and clears it (nullptr when there is none).
  protocol::MessagePtr take_will(protocol::ServerConnection& c);
  void send_will(const protocol::MessagePtr& m);
  Session& new_session(const std::string& client_id);
  // Enhanced authentication (enhanced_auth.cpp). After a successful exchange at CONNECT: its mechanism,
  // with `user` set to the SCRAM user (the exchange's state is freed); nullopt when the connection
  // completed none.
  std::optional<security::ScramHash> take_scram_identity(const protocol::ServerConnection& c,
                                                         std::optional<std::string>& user);
  // After a reload: whether a client that authenticated with SCRAM still may (its user still has
  // credentials for its mechanism on its listener, and clientid_prefixes still lets it in).
  static Reason scram_recheck(const Auth& auth, const std::string& client_id, const Session& s);
  protocol::AuthStep scram_failed(protocol::ServerConnection& c, security::ScramHash h, const std::string& why);

  Broker& broker_;
  store::Store* store_ = nullptr;
  unsigned index_;
  Stats& stats_;  // this worker's counters
  WorkerIo* io_ = nullptr;
  std::uint64_t next_local_id_ = 1;
  std::unordered_map<std::string, std::unique_ptr<Session>> by_client_;
  std::unordered_map<std::uint64_t, Session*> by_id_;
  std::vector<std::vector<InboxItem>> outbox_;  // per destination worker
  std::vector<std::vector<Control>> control_out_;  // per destination worker
  std::vector<SessionKey> pause_on_;               // congested targets of the message being routed
  std::vector<std::uint8_t> send_retained_;     // between on_subscribe and on_subscribed
  std::vector<Target> targets_;                 // scratch
  bool pause_publisher_ = false;
  const bool sticky_shared_;  // shared_subscription_strategy sticky
  protocol::TimePoint last_sys_{};
  SysTree sys_;  // worker 0: the $SYS tree's state between publications
  // The store: this iteration's new work (messages, queue entries, sessions, inbound ids, retained)
  // and progress (erases and state changes; written even at the size bound), the tickets waiting
  // for each, and the tickets of submitted batches in submission order.
  store::Batch work_;
  store::Batch progress_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> work_tickets_;  // (connection serial, ticket)
  std::vector<std::pair<std::uint64_t, std::uint64_t>> progress_tickets_;
  std::deque<std::vector<std::pair<std::uint64_t, std::uint64_t>>> submitted_;
  std::uint64_t next_serial_ = 1;
  std::unordered_map<std::uint64_t, protocol::ServerConnection*> by_serial_;
  // SCRAM exchanges in progress, by connection serial (given at the first step to a connection that
  // has none yet); only connections doing SCRAM have an entry, freed at the end or on close.
  std::unordered_map<std::uint64_t, security::ScramServer> scram_;
  bool failure_logged_ = false;
  std::vector<store::Status> store_done_in_;  // completions, under inbox_mu_
  std::vector<store::Status> store_done_draining_;
  std::vector<Target> scratch_targets_;
  std::vector<std::string> scratch_ids_;
  std::vector<std::string> durable_ids_;  // client ids of route()'s durable targets (Target::client)
  std::mutex inbox_mu_;
  std::vector<InboxItem> inbox_;
  std::vector<InboxItem> draining_;
  std::vector<Control> control_in_;
  std::vector<Control> control_draining_;
};

}  // namespace tern::broker
