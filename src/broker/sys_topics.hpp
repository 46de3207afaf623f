#pragma once
// The $SYS tree: Mosquitto 2.0's broker status topics (same names, same meanings where Tern can
// compute them; docs/architecture.md lists each one) plus Tern's own under $SYS/broker/tern/.
//
// Threads: SysTree belongs to worker 0, which publishes the tree every sys_interval seconds
// (Shard::publish_sys). sample_worker runs on every worker, on its own thread, for the gauges only
// that thread may compute (its sessions' queues). Counters come from each worker's Stats.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/message.hpp"

namespace tern::broker {

class Broker;
class Shard;
struct Stats;

// Whether a client may not publish to `topic`. Mosquitto's default access check refuses every write
// to a topic starting with "$SYS" (a plain prefix test, so "$SYSTEM/x" too), except
// "$SYS/broker/connection/+/state", where its bridges publish their connection state; Tern does the
// same, so a Mosquitto bridge to Tern keeps working.
bool sys_publish_denied(std::string_view topic);

// Mosquitto's load averages ($SYS/broker/load/...): for a counter, the number of events per minute
// averaged over 1, 5 and 15 minutes with exponential decay, as Unix load averages are. At each
// update, dt seconds after the previous one, with `delta` events in between:
//     rate  = delta * 60 / dt                      (events per minute over the last dt seconds)
//     avg_T = rate + exp(-dt / T) * (avg_T - rate)  for T = 60, 300, 900 s
// (mosquitto 2.0 src/sys_tree.c, calc_load; checked against its output: 27 packets in its first
// 2 s give 26.55, 5.38 and 1.80). Averages start at 0 when the broker starts.
class LoadAverage {
 public:
  void update(std::uint64_t total, double dt_seconds);
  // 0: 1 min, 1: 5 min, 2: 15 min.
  double value(int i) const { return avg_[i]; }

 private:
  std::uint64_t last_total_ = 0;
  std::array<double, 3> avg_{};
};

// Bytes of heap the process has allocated (in use, not counting the allocator's own free pages):
// jemalloc's stats.allocated when jemalloc is linked (the tern executable), the sanitizer
// allocator's count in sanitizer builds, else glibc's mallinfo2 (unit tests). See sys_topics.cpp.
std::uint64_t heap_in_use();

// Worker 0's state between two publications of the tree.
class SysTree {
 public:
  using Values = std::vector<std::pair<std::string, std::string>>;
  // Computes every $SYS topic at `now` and appends (topic, payload) pairs to `out`. Worker 0 only.
  void collect(Broker& b, protocol::TimePoint now, Values& out);

 private:
  enum Load { kMsgIn, kMsgOut, kPubDropped, kPubIn, kPubOut, kBytesIn, kBytesOut, kSockets, kConnections, kLoads };
  std::array<LoadAverage, kLoads> load_;
  protocol::TimePoint last_{};
  std::uint64_t heap_max_ = 0;
  std::uint64_t clients_max_ = 0;
};

// Every worker, on its own thread, right before worker 0 publishes (every sys_interval seconds):
// stores the gauges that need a walk over the worker's sessions into its Stats (sessions without a
// connection; messages queued, in flight and inbound QoS 2 with their payload bytes; shared
// subscriptions, counted only when `count_shared`). O(sessions), hence not every second.
void sample_worker(const Shard& shard, bool count_shared, Stats& stats);

}  // namespace tern::broker
