#pragma once
// The broker: global state shared by all workers (subscription index, retained messages,
// statistics) and one Shard per worker. Created on the main thread before workers start.
#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "broker/retained.hpp"
#include "broker/router.hpp"
#include "config/config.hpp"
#include "protocol/server_connection.hpp"

namespace tern::store {
class Store;
}

namespace tern::broker {

class Shard;
class Auth;

// Counters of one worker: written only by that worker's thread, read by any (relaxed atomics). Each
// worker has its own cache line(s), so counting never makes cores fight over a line; readers add the
// workers' values up (Broker::total). Fields with one writer are best bumped with Stats::add (a load
// and a store, no locked instruction). The $SYS topic each feeds is in docs/architecture.md.
struct alignas(64) Stats {
  // One writer per field: a plain load and store, cheaper than fetch_add's locked read-modify-write.
  template <typename T, typename U>
  static void add(std::atomic<T>& a, U n) {
    a.store(a.load(std::memory_order_relaxed) + static_cast<T>(n), std::memory_order_relaxed);
  }
  template <typename T, typename U>
  static void set(std::atomic<T>& a, U v) {
    a.store(static_cast<T>(v), std::memory_order_relaxed);
  }

  std::atomic<std::uint64_t> messages_sent{0};  // deliveries to online sessions ($SYS/broker/tern/deliveries)
  std::atomic<std::uint64_t> bytes_received{0};
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::uint64_t> dropped_qos0{0};
  std::atomic<std::uint64_t> dropped_queue_full{0};
  std::atomic<std::uint64_t> cross_worker_batches{0};
  std::atomic<std::uint64_t> cross_worker_deliveries{0};
  std::atomic<std::int64_t> clients_connected{0};
  std::atomic<std::uint64_t> connections_refused{0};
  // Subscription changes, retained messages received and messages queued, which Mosquitto's
  // autosave_on_changes counts.
  std::atomic<std::uint64_t> changes{0};

  // Counted per connection by ServerConnection (plain integers) and added here by the net layer
  // once a second and when the connection ends (ConnCounters).
  std::atomic<std::uint64_t> packets_received{0};  // every MQTT packet, as Mosquitto's messages/received
  std::atomic<std::uint64_t> packets_sent{0};
  std::atomic<std::uint64_t> publish_received{0};  // PUBLISH packets
  std::atomic<std::uint64_t> publish_sent{0};
  std::atomic<std::uint64_t> publish_bytes_received{0};  // their payload bytes
  std::atomic<std::uint64_t> publish_bytes_sent{0};
  std::atomic<std::uint64_t> connects{0};  // CONNECT packets received ($SYS load/connections)
  // Written by the acceptor thread, in worker 0's Stats only: sockets accepted ($SYS load/sockets).
  std::atomic<std::uint64_t> sockets_accepted{0};
  // Persistent sessions removed by expiry (session expiry or persistent_client_expiration).
  std::atomic<std::uint64_t> clients_expired{0};
  // Gauges the worker samples on its own thread (sys_topics.hpp, sample_worker): its sessions with
  // no connection, and the messages (and their payload bytes) its sessions hold queued, in flight
  // or as inbound QoS 2 awaiting PUBREL; its shared subscriptions.
  std::atomic<std::uint64_t> sessions_offline{0};
  std::atomic<std::uint64_t> stored_messages{0};
  std::atomic<std::uint64_t> stored_bytes{0};
  std::atomic<std::uint64_t> shared_subscriptions{0};
  // Limits hit ($SYS/broker/tern/limits/<key>): by this worker's connections (collected from
  // ServerConnection::limit_hits with the counters above), and, in worker 0's Stats only, by the
  // acceptor thread (max_connections, max_conn_rate, open files, connect_timeout before a worker).
  std::array<std::atomic<std::uint64_t>, protocol::kLimitCount> limits{};
  std::array<std::atomic<std::uint64_t>, protocol::kLimitCount> acceptor_limits{};
};

// What a Shard needs from its worker thread (implemented by net::Worker).
class WorkerIo {
 public:
  virtual ~WorkerIo() = default;
  // Thread-safe: run Shard::drain_inbox on the worker thread soon.
  virtual void wake() = 0;
  // Owner thread: the connection has output (or was closed) and must be flushed.
  virtual void output_ready(protocol::ServerConnection& c) = 0;
  // Owner thread: back-pressure is over for a paused connection; resume it and read it again.
  virtual void resume(protocol::ServerConnection& c) = 0;
};

class Broker {
 public:
  friend class Recovery;
  Broker(const config::Config& cfg, unsigned workers);
  ~Broker();

  unsigned workers() const { return static_cast<unsigned>(shards_.size()); }
  Shard& shard(unsigned i) { return *shards_[i]; }
  // The worker that owns a client identifier's session (and so its connection).
  unsigned owner_of(std::string_view client_id) const;

  Router& router() { return router_; }
  RetainedStore& retained() { return retained_; }
  // The counters of worker `w`.
  Stats& stats(unsigned w) { return *stats_[w]; }
  // The sum of one counter over all workers.
  template <typename T>
  T total(std::atomic<T> Stats::*field) const {
    T sum = 0;
    for (const auto& s : stats_) sum += ((*s).*field).load(std::memory_order_relaxed);
    return sum;
  }
  const config::Config& config() const { return cfg_; }
  // The embedded store (docs/durability.md), or null with `persistence false`. Set before the
  // workers start; owned by the caller.
  store::Store* store() const { return store_; }
  void set_store(store::Store* s);
  // Reads the store into the shards and the retained messages (before the workers start). False
  // with `error` when the store cannot be read.
  struct Recovered {
    std::uint64_t sessions = 0, queued = 0, inflight = 0, inbound = 0, retained = 0, expired = 0, wills = 0;
  };
  bool recover(Recovered& counts, std::string& error);
  // Message ids and queue sequence numbers: one broker-wide counter, so a session's queue comes
  // back from the store in the order its messages were routed.
  std::uint64_t next_store_id() { return store_ids_.fetch_add(1, std::memory_order_relaxed); }
  // "The store is full" was logged (once for all workers, until a write succeeds again).
  std::atomic<bool> store_full_logged{false};
  const protocol::ServerLimits& limits() const { return limits_; }
  protocol::TimePoint started() const { return started_; }
  // Authentication and access control (auth.hpp): any thread takes the current one; a reload puts a
  // new one in place whole. Without set_auth, a configuration without password or ACL files applies.
  std::shared_ptr<const Auth> auth() const;
  void set_auth(std::shared_ptr<const Auth> a);

 private:
  const config::Config& cfg_;
  store::Store* store_ = nullptr;
  std::atomic<std::uint64_t> store_ids_{1};
  protocol::ServerLimits limits_;
  protocol::TimePoint started_ = protocol::Clock::now();
  Router router_;
  RetainedStore retained_;
  std::vector<std::unique_ptr<Stats>> stats_;
  std::vector<std::unique_ptr<Shard>> shards_;
  mutable std::mutex auth_mu_;
  mutable std::shared_ptr<const Auth> auth_;
};

}  // namespace tern::broker
