#include "broker/sys_topics.hpp"

#include <fmt/format.h>
#include <malloc.h>

#include <algorithm>
#include <cmath>

#include "broker/broker.hpp"
#include "broker/shard.hpp"

// Weak references: null unless the allocator that defines them is in the process. jemalloc is
// linked into the tern executable only (not into unit tests, not into sanitizer builds), and glibc's
// mallinfo2 knows nothing of jemalloc's memory, so the broker asks jemalloc first, then a sanitizer
// runtime, then glibc. A weak symbol keeps tern_broker free of a link dependency on either.
extern "C" {
int mallctl(const char* name, void* oldp, std::size_t* oldlenp, void* newp, std::size_t newlen) __attribute__((weak));
std::size_t __sanitizer_get_current_allocated_bytes() __attribute__((weak));
}

namespace tern::broker {

bool sys_publish_denied(std::string_view topic) {
  if (!topic.starts_with("$SYS")) return false;
  // "$SYS/broker/connection/" + one level (possibly empty, as '+' matches) + "/state": the one place a
  // (bridge) client may write.
  constexpr std::string_view kBridge = "$SYS/broker/connection/";
  constexpr std::string_view kState = "/state";
  if (topic.starts_with(kBridge) && topic.ends_with(kState) && topic.size() >= kBridge.size() + kState.size()) {
    auto name = topic.substr(kBridge.size(), topic.size() - kBridge.size() - kState.size());
    if (name.find_first_of("/+#") == std::string_view::npos) return false;
  }
  return true;
}

void LoadAverage::update(std::uint64_t total, double dt_seconds) {
  if (dt_seconds <= 0) return;
  double rate = static_cast<double>(total - last_total_) * 60.0 / dt_seconds;
  last_total_ = total;
  static constexpr double kPeriods[3] = {60.0, 300.0, 900.0};
  for (int i = 0; i < 3; ++i) {
    double decay = std::exp(-dt_seconds / kPeriods[i]);
    avg_[i] = rate + decay * (avg_[i] - rate);
  }
}

std::uint64_t heap_in_use() {
  if (mallctl) {
    // jemalloc's statistics are a snapshot refreshed by writing "epoch".
    std::uint64_t epoch = 1;
    std::size_t len = sizeof(epoch);
    mallctl("epoch", &epoch, &len, &epoch, len);
    std::size_t allocated = 0;
    len = sizeof(allocated);
    if (mallctl("stats.allocated", &allocated, &len, nullptr, 0) == 0) return allocated;
  }
  if (__sanitizer_get_current_allocated_bytes) return __sanitizer_get_current_allocated_bytes();
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;  // in use from the arenas, plus blocks mmapped on their own
}

void SysTree::collect(Broker& b, protocol::TimePoint now, Values& out) {
  if (last_ == protocol::TimePoint{}) last_ = b.started();
  const double dt = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  auto sum = [&b](auto field) -> std::uint64_t {
    auto v = b.total(field);
    return v > 0 ? static_cast<std::uint64_t>(v) : 0;
  };
  auto pub = [&out](std::string topic, std::uint64_t v) { out.emplace_back(std::move(topic), std::to_string(v)); };

  const std::uint64_t packets_in = sum(&Stats::packets_received);
  const std::uint64_t packets_out = sum(&Stats::packets_sent);
  const std::uint64_t publish_in = sum(&Stats::publish_received);
  const std::uint64_t publish_out = sum(&Stats::publish_sent);
  const std::uint64_t dropped = sum(&Stats::dropped_qos0) + sum(&Stats::dropped_queue_full);
  const std::uint64_t bytes_in = sum(&Stats::bytes_received);
  const std::uint64_t bytes_out = sum(&Stats::bytes_sent);

  out.emplace_back("$SYS/broker/version", "tern version " TERN_VERSION_STRING);
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(now - b.started()).count();
  out.emplace_back("$SYS/broker/uptime", fmt::format("{} seconds", uptime));

  // Clients: connected ones (CONNECT accepted, connection open) and persistent sessions without a
  // connection. Mosquitto's "active"/"inactive" are its deprecated names for connected/disconnected.
  const std::uint64_t connected = sum(&Stats::clients_connected);
  const std::uint64_t disconnected = sum(&Stats::sessions_offline);
  const std::uint64_t clients = connected + disconnected;
  clients_max_ = std::max(clients_max_, clients);  // as Mosquitto: the largest clients/total seen
  pub("$SYS/broker/clients/total", clients);
  pub("$SYS/broker/clients/maximum", clients_max_);
  pub("$SYS/broker/clients/connected", connected);
  pub("$SYS/broker/clients/active", connected);
  pub("$SYS/broker/clients/disconnected", disconnected);
  pub("$SYS/broker/clients/inactive", disconnected);
  pub("$SYS/broker/clients/expired", sum(&Stats::clients_expired));

  pub("$SYS/broker/messages/received", packets_in);
  pub("$SYS/broker/messages/sent", packets_out);
  pub("$SYS/broker/publish/messages/received", publish_in);
  pub("$SYS/broker/publish/messages/sent", publish_out);
  pub("$SYS/broker/publish/messages/dropped", dropped);
  pub("$SYS/broker/publish/bytes/received", sum(&Stats::publish_bytes_received));
  pub("$SYS/broker/publish/bytes/sent", sum(&Stats::publish_bytes_sent));
  pub("$SYS/broker/bytes/received", bytes_in);
  pub("$SYS/broker/bytes/sent", bytes_out);

  // The message store: what sessions hold (queued, in flight, inbound QoS 2) plus retained messages.
  // Mosquitto counts each stored message once however many sessions refer to it; Tern counts
  // references (a message queued for ten sessions counts ten times).
  const std::uint64_t retained = b.retained().size();
  const std::uint64_t stored = sum(&Stats::stored_messages) + retained;
  pub("$SYS/broker/store/messages/count", stored);
  pub("$SYS/broker/messages/stored", stored);  // Mosquitto's deprecated name
  pub("$SYS/broker/store/messages/bytes", sum(&Stats::stored_bytes) + b.retained().bytes());
  pub("$SYS/broker/retained messages/count", retained);
  pub("$SYS/broker/subscriptions/count", b.router().size());
  pub("$SYS/broker/shared_subscriptions/count", sum(&Stats::shared_subscriptions));

  const std::uint64_t heap = heap_in_use();
  heap_max_ = std::max(heap_max_, heap);
  pub("$SYS/broker/heap/current", heap);
  pub("$SYS/broker/heap/maximum", heap_max_);

  const std::uint64_t totals[kLoads] = {packets_in, packets_out, dropped,
                                        publish_in, publish_out, bytes_in,
                                        bytes_out,  sum(&Stats::sockets_accepted), sum(&Stats::connects)};
  static constexpr const char* kNames[kLoads] = {"messages/received", "messages/sent", "publish/dropped",
                                                 "publish/received",  "publish/sent",  "bytes/received",
                                                 "bytes/sent",        "sockets",       "connections"};
  static constexpr const char* kWindows[3] = {"1min", "5min", "15min"};
  for (int l = 0; l < kLoads; ++l) {
    load_[l].update(totals[l], dt);
    for (int i = 0; i < 3; ++i) {
      out.emplace_back(fmt::format("$SYS/broker/load/{}/{}", kNames[l], kWindows[i]),
                       fmt::format("{:.2f}", load_[l].value(i)));
    }
  }

  // Tern's own.
  pub("$SYS/broker/tern/workers", b.workers());
  pub("$SYS/broker/tern/deliveries", sum(&Stats::messages_sent));
  pub("$SYS/broker/tern/cross_worker/batches", sum(&Stats::cross_worker_batches));
  pub("$SYS/broker/tern/cross_worker/deliveries", sum(&Stats::cross_worker_deliveries));
  pub("$SYS/broker/tern/dropped/qos0", sum(&Stats::dropped_qos0));
  pub("$SYS/broker/tern/dropped/queue_full", sum(&Stats::dropped_queue_full));
  for (std::size_t i = 0; i < protocol::kLimitCount; ++i) {
    std::uint64_t hits = 0;
    for (unsigned w = 0; w < b.workers(); ++w) {
      hits += b.stats(w).limits[i].load(std::memory_order_relaxed) +
              b.stats(w).acceptor_limits[i].load(std::memory_order_relaxed);
    }
    pub(fmt::format("$SYS/broker/tern/limits/{}", protocol::limit_name(static_cast<protocol::Limit>(i))), hits);
  }
}

void sample_worker(const Shard& shard, bool count_shared, Stats& stats) {
  std::uint64_t offline = 0, messages = 0, bytes = 0, shared = 0;
  for (const auto& [id, s] : shard.sessions()) {
    if (!s->conn) ++offline;
    const auto& st = s->state;
    messages += st.queue.size() + st.inbound_qos2.size();
    bytes += st.queued_bytes;
    for (const auto& f : st.inflight) {
      if (!f.delivery.msg) continue;  // QoS 2 after PUBREC: only the packet id is left
      ++messages;
      bytes += f.delivery.msg->payload.size();
    }
    for (const auto& [pid, m] : st.inbound_qos2) bytes += m ? m->payload.size() : 0;
    if (count_shared) {
      for (const auto& [filter, o] : s->subs) shared += filter.starts_with("$share/");
    }
  }
  Stats::set(stats.sessions_offline, offline);
  Stats::set(stats.stored_messages, messages);
  Stats::set(stats.stored_bytes, bytes);
  Stats::set(stats.shared_subscriptions, shared);
}

}  // namespace tern::broker
