// Unit tests of the $SYS helpers (broker/sys_topics.hpp).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>

#include "broker/sys_topics.hpp"

namespace {

using tern::broker::LoadAverage;

std::string fixed2(double v) { return fmt::format("{:.2f}", v); }

// Numbers from /usr/sbin/mosquitto 2.0.11 (sys_interval 1, so an update every 2 s): 27 packets in
// the first 2 s gave load/messages/received 26.55 (1min), 5.38 (5min), 1.80 (15min); with no
// packet in the next 2 s the 1-minute value fell to 25.68.
TEST(SysTopics, LoadAverageAsMosquitto) {
  LoadAverage l;
  l.update(27, 2.0);
  EXPECT_EQ(fixed2(l.value(0)), "26.55");
  EXPECT_EQ(fixed2(l.value(1)), "5.38");
  EXPECT_EQ(fixed2(l.value(2)), "1.80");
  l.update(27, 2.0);
  EXPECT_EQ(fixed2(l.value(0)), "25.68");
}

TEST(SysTopics, LoadAverageConvergesToTheRate) {
  LoadAverage l;
  std::uint64_t total = 0;
  for (int i = 0; i < 3600; ++i) l.update(total += 10, 1.0);  // 10 per second for an hour
  EXPECT_NEAR(l.value(0), 600.0, 0.01);
  EXPECT_NEAR(l.value(2), 600.0 * (1 - std::exp(-4.0)), 0.01);  // an hour is 4 time constants of 15 min
  l.update(total, 0.0);  // no time passed: nothing changes
  EXPECT_NEAR(l.value(0), 600.0, 0.01);
}

TEST(SysTopics, ClientsMayNotPublishUnderSys) {
  using tern::broker::sys_publish_denied;
  EXPECT_TRUE(sys_publish_denied("$SYS"));
  EXPECT_TRUE(sys_publish_denied("$SYS/broker/version"));
  EXPECT_TRUE(sys_publish_denied("$SYSTEM/x"));  // Mosquitto tests the prefix "$SYS", and so does Tern
  EXPECT_TRUE(sys_publish_denied("$SYS/broker/connection/a/b/state"));
  EXPECT_TRUE(sys_publish_denied("$SYS/broker/connection/state"));
  EXPECT_TRUE(sys_publish_denied("$SYS/broker/connection/br/state/x"));
  // Where Mosquitto's bridges report their state ("$SYS/broker/connection/+/state").
  EXPECT_FALSE(sys_publish_denied("$SYS/broker/connection/br1/state"));
  EXPECT_FALSE(sys_publish_denied("$SYS/broker/connection//state"));
  EXPECT_FALSE(sys_publish_denied("$sys/x"));
  EXPECT_FALSE(sys_publish_denied("a/$SYS"));
  EXPECT_FALSE(sys_publish_denied("$share/x"));
  EXPECT_FALSE(sys_publish_denied(""));
}

TEST(SysTopics, HeapInUseSeesAnAllocation) {
  // Unit tests run on glibc's malloc (mallinfo2) or a sanitizer's allocator.
  auto before = tern::broker::heap_in_use();
  auto block = std::make_unique<char[]>(8 << 20);
  block[0] = 1;
  auto after = tern::broker::heap_in_use();
  EXPECT_GE(after, before + (8u << 20) - 4096);
}

}  // namespace
