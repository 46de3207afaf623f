// Unit tests of the subscription index (broker::Router).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "broker/router.hpp"

namespace {

using tern::broker::Router;
using tern::broker::SessionKey;
using tern::broker::SubOptions;
using tern::broker::Target;

SubOptions qos(std::uint8_t q) {
  SubOptions o;
  o.qos = q;
  return o;
}

std::vector<Target> match(const Router& r, std::string_view topic, std::string_view publisher = "pub") {
  std::vector<Target> out;
  r.match(topic, publisher, out);
  return out;
}

std::vector<SessionKey> keys(const Router& r, std::string_view topic, std::string_view publisher = "pub") {
  std::vector<SessionKey> k;
  for (const auto& t : match(r, topic, publisher)) k.push_back(t.key);
  std::sort(k.begin(), k.end());
  return k;
}

bool matches(std::string_view filter, std::string_view topic) {
  Router r;
  r.subscribe(filter, 1, "c1", {});
  return !match(r, topic).empty();
}

TEST(Router, ExactMatch) {
  Router r;
  EXPECT_TRUE(r.subscribe("a/b/c", 1, "c1", qos(1)));
  EXPECT_EQ(keys(r, "a/b/c"), std::vector<SessionKey>{1});
  EXPECT_TRUE(keys(r, "a/b").empty());
  EXPECT_TRUE(keys(r, "a/b/c/d").empty());
  EXPECT_TRUE(keys(r, "a/b/C").empty()) << "topics are case-sensitive";
  EXPECT_TRUE(keys(r, "/a/b/c").empty());
  auto t = match(r, "a/b/c");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].opts.qos, 1);
}

TEST(Router, MQTT_4_7_1_2_PlusMatchesExactlyOneLevel) {
  EXPECT_TRUE(matches("a/+/c", "a/b/c"));
  EXPECT_TRUE(matches("a/+/c", "a//c")) << "'+' matches an empty level";
  EXPECT_FALSE(matches("a/+/c", "a/b/d/c"));
  EXPECT_FALSE(matches("a/+/c", "a/c"));
  EXPECT_TRUE(matches("+", "a"));
  EXPECT_FALSE(matches("+", "a/b"));
  EXPECT_TRUE(matches("+/+", "/finance"));
  EXPECT_TRUE(matches("/+", "/finance"));
  EXPECT_FALSE(matches("+", "/finance"));
  EXPECT_TRUE(matches("a/+", "a/"));
  EXPECT_FALSE(matches("a/+", "a"));
}

TEST(Router, MQTT_4_7_1_2_HashMatchesAllRemainingLevels) {
  EXPECT_TRUE(matches("#", "a"));
  EXPECT_TRUE(matches("#", "a/b/c"));
  EXPECT_TRUE(matches("#", "/a"));
  EXPECT_TRUE(matches("a/#", "a/b"));
  EXPECT_TRUE(matches("a/#", "a/b/c/d"));
  EXPECT_TRUE(matches("a/#", "a/"));
  EXPECT_FALSE(matches("a/#", "b/a"));
  EXPECT_FALSE(matches("a/#", "ab"));
  EXPECT_TRUE(matches("a/+/#", "a/b/c"));
  EXPECT_TRUE(matches("+/#", "a"));
}

TEST(Router, MQTT_4_7_1_2_HashAlsoMatchesTheParentLevel) {
  EXPECT_TRUE(matches("a/#", "a"));
  EXPECT_TRUE(matches("sport/tennis/player1/#", "sport/tennis/player1"));
  EXPECT_FALSE(matches("a/b/#", "a"));
}

TEST(Router, MQTT_4_7_2_1_DollarTopicsNotMatchedByLeadingWildcards) {
  EXPECT_FALSE(matches("#", "$SYS/broker/uptime"));
  EXPECT_FALSE(matches("+/broker/uptime", "$SYS/broker/uptime"));
  EXPECT_FALSE(matches("+/#", "$SYS/x"));
  EXPECT_FALSE(matches("+", "$SYS"));
  EXPECT_FALSE(matches("#", "$foo"));
}

TEST(Router, MQTT_4_7_2_1_DollarTopicsMatchedByExplicitDollarFilters) {
  EXPECT_TRUE(matches("$SYS/#", "$SYS/broker/uptime"));
  EXPECT_TRUE(matches("$SYS/#", "$SYS"));
  EXPECT_TRUE(matches("$SYS/+/uptime", "$SYS/broker/uptime"));
  EXPECT_TRUE(matches("$SYS/broker/uptime", "$SYS/broker/uptime"));
  // A '$' below the first level is an ordinary character.
  EXPECT_TRUE(matches("a/#", "a/$b"));
  EXPECT_TRUE(matches("+/+", "a/$b"));
  EXPECT_TRUE(matches("#", "a$"));
}

TEST(Router, OverlappingSubscriptionsOfOneSessionAreAllReported) {
  Router r;
  r.subscribe("a/b", 7, "c7", qos(0));
  r.subscribe("a/+", 7, "c7", qos(1));
  r.subscribe("#", 7, "c7", qos(2));
  r.subscribe("a/#", 8, "c8", qos(1));
  auto t = match(r, "a/b");
  ASSERT_EQ(t.size(), 4u);
  std::vector<int> qos7;
  for (const auto& x : t) {
    if (x.key == 7) qos7.push_back(x.opts.qos);
  }
  std::sort(qos7.begin(), qos7.end());
  EXPECT_EQ(qos7, (std::vector<int>{0, 1, 2})) << "the broker picks the maximum QoS when it dedups";
  EXPECT_EQ(r.size(), 4u);
}

TEST(Router, MQTT_3_8_4_3_SameFilterReplacesSubscriptionAndOptions) {
  Router r;
  EXPECT_TRUE(r.subscribe("a/+", 1, "c1", qos(0)));
  SubOptions o = qos(2);
  o.subscription_id = 42;
  o.retain_as_published = true;
  EXPECT_FALSE(r.subscribe("a/+", 1, "c1", o)) << "not a new subscription";
  EXPECT_EQ(r.size(), 1u);
  auto t = match(r, "a/x");
  ASSERT_EQ(t.size(), 1u) << "replaced, not added";
  EXPECT_EQ(t[0].opts.qos, 2);
  EXPECT_EQ(t[0].opts.subscription_id, 42u);
  EXPECT_TRUE(t[0].opts.retain_as_published);
  // Another session on the same filter is a new subscription.
  EXPECT_TRUE(r.subscribe("a/+", 2, "c2", qos(0)));
  EXPECT_EQ(r.size(), 2u);
}

TEST(Router, UnsubscribeReturnsWhetherTheSubscriptionExisted) {
  Router r;
  EXPECT_FALSE(r.unsubscribe("a/b", 1)) << "empty router";
  r.subscribe("a/b", 1, "c1", {});
  EXPECT_FALSE(r.unsubscribe("a/b", 2)) << "other session";
  EXPECT_FALSE(r.unsubscribe("a/+", 1)) << "other filter";
  EXPECT_FALSE(r.unsubscribe("a", 1)) << "parent level";
  EXPECT_FALSE(r.unsubscribe("a/b/c", 1)) << "child level";
  EXPECT_EQ(r.size(), 1u);
  EXPECT_EQ(keys(r, "a/b"), std::vector<SessionKey>{1});
  EXPECT_TRUE(r.unsubscribe("a/b", 1));
  EXPECT_FALSE(r.unsubscribe("a/b", 1)) << "already gone";
  EXPECT_EQ(r.size(), 0u);
  EXPECT_TRUE(keys(r, "a/b").empty());
}

TEST(Router, UnsubscribeIsLiteralNotWildcardMatched) {
  Router r;
  r.subscribe("a/b", 1, "c1", {});
  r.subscribe("a/#", 1, "c1", {});
  EXPECT_TRUE(r.unsubscribe("a/#", 1));
  EXPECT_EQ(keys(r, "a/b"), std::vector<SessionKey>{1}) << "a/b stays";
  EXPECT_TRUE(keys(r, "a/c").empty());
}

TEST(Router, PruningLeavesAWorkingEmptyRouter) {
  Router r;
  const char* filters[] = {"a/b/c", "a/b", "a/+/c", "a/#", "#", "+", "+/+/+", "x//y", "/", "$SYS/#"};
  SessionKey k = 1;
  for (const char* f : filters) EXPECT_TRUE(r.subscribe(f, k++, "c", {}));
  EXPECT_EQ(r.size(), std::size(filters));
  // Unsubscribe in an order that removes parents before children and vice versa.
  k = 1;
  for (const char* f : filters) EXPECT_TRUE(r.unsubscribe(f, k++)) << f;
  EXPECT_EQ(r.size(), 0u);
  for (const char* topic : {"a/b/c", "a/b", "a", "x//y", "/", "$SYS/x", "q"}) {
    EXPECT_TRUE(match(r, topic).empty()) << topic;
  }
  // The pruned trie still accepts and matches new subscriptions.
  EXPECT_TRUE(r.subscribe("a/b/c", 99, "c", {}));
  EXPECT_EQ(keys(r, "a/b/c"), std::vector<SessionKey>{99});
  EXPECT_TRUE(keys(r, "a/b").empty());
  EXPECT_EQ(r.size(), 1u);
}

TEST(Router, PruningKeepsSiblingsAndChildren) {
  Router r;
  r.subscribe("a/b", 1, "c1", {});
  r.subscribe("a/b/c", 2, "c2", {});
  r.subscribe("a/d", 3, "c3", {});
  EXPECT_TRUE(r.unsubscribe("a/b", 1));
  EXPECT_EQ(keys(r, "a/b/c"), std::vector<SessionKey>{2});
  EXPECT_EQ(keys(r, "a/d"), std::vector<SessionKey>{3});
  EXPECT_TRUE(r.unsubscribe("a/b/c", 2));
  EXPECT_EQ(keys(r, "a/d"), std::vector<SessionKey>{3});
  EXPECT_EQ(r.size(), 1u);
}

TEST(Router, MQTT_3_8_3_3_NoLocalSkipsThePublishersOwnSubscription) {
  Router r;
  SubOptions nl;
  nl.no_local = true;
  r.subscribe("chat/#", 1, "alice", nl);
  r.subscribe("chat/#", 2, "bob", nl);
  r.subscribe("chat/room", 3, "alice", {});  // without No Local: alice gets her own messages here
  EXPECT_EQ(keys(r, "chat/room", "alice"), (std::vector<SessionKey>{2, 3}));
  EXPECT_EQ(keys(r, "chat/room", "bob"), (std::vector<SessionKey>{1, 3}));
  EXPECT_EQ(keys(r, "chat/room", "carol"), (std::vector<SessionKey>{1, 2, 3}));
}

TEST(Router, ThousandSessionsOnOneFilter) {
  Router r;
  for (SessionKey k = 1; k <= 1000; ++k) ASSERT_TRUE(r.subscribe("fan/out", k, "c" + std::to_string(k), qos(1)));
  EXPECT_EQ(r.size(), 1000u);
  auto k = keys(r, "fan/out");
  ASSERT_EQ(k.size(), 1000u);
  for (SessionKey i = 0; i < 1000; ++i) EXPECT_EQ(k[i], i + 1);
  for (SessionKey i = 1; i <= 1000; i += 2) EXPECT_TRUE(r.unsubscribe("fan/out", i));
  k = keys(r, "fan/out");
  ASSERT_EQ(k.size(), 500u);
  for (auto x : k) EXPECT_EQ(x % 2, 0u);
  EXPECT_EQ(r.size(), 500u);
}

TEST(Router, DeepTopicsBeyondTheInlineStack) {
  Router r;
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += (i ? "/" : "") + std::to_string(i);
  r.subscribe(deep, 1, "c1", {});
  r.subscribe("#", 2, "c2", {});
  std::string plus;
  for (int i = 0; i < 200; ++i) plus += i ? "/+" : "+";
  r.subscribe(plus, 3, "c3", {});
  EXPECT_EQ(keys(r, deep), (std::vector<SessionKey>{1, 2, 3}));
  EXPECT_EQ(keys(r, deep + "/x"), std::vector<SessionKey>{2});
}

TEST(Router, SessionKeyCarriesTheWorker) {
  SessionKey k = (SessionKey{3} << 48) | 12345;
  EXPECT_EQ(tern::broker::worker_of(k), 3u);
  Router r;
  r.subscribe("w", k, "c", {});
  ASSERT_EQ(match(r, "w").size(), 1u);
  EXPECT_EQ(match(r, "w")[0].key, k);
}

// Readers match while a writer subscribes and unsubscribes (run under ThreadSanitizer in CI).
TEST(Router, ConcurrentMatchWhileSubscribing) {
  Router r;
  r.subscribe("sensors/#", 1, "permanent", qos(1));
  std::atomic<bool> stop{false};
  std::atomic<long> matches_done{0};
  std::atomic<long> errors{0};

  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&, i] {
      std::vector<Target> out;
      const std::string topic = "sensors/" + std::to_string(i) + "/temp";
      while (!stop.load(std::memory_order_relaxed)) {
        out.clear();
        r.match(topic, "reader", out);
        bool has_permanent = false;
        for (const auto& t : out) {
          if (t.key == 1) has_permanent = true;
          if (t.key == 0) errors.fetch_add(1);
        }
        if (!has_permanent || out.size() > 1 + 64) errors.fetch_add(1);
        matches_done.fetch_add(1, std::memory_order_relaxed);
        // glibc's shared_mutex prefers readers; give the writer a chance so the test stays ~0.5 s.
        std::this_thread::yield();
      }
    });
  }
  long writes = 0;
  std::thread writer([&] {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    SessionKey k = 100;
    while (std::chrono::steady_clock::now() < end) {
      const std::string filters[] = {"sensors/+/temp", "sensors/" + std::to_string(k % 4) + "/temp", "+/+/temp",
                                     "sensors/" + std::to_string(k % 4) + "/#"};
      for (const auto& f : filters) r.subscribe(f, k, "w" + std::to_string(k), qos(0));
      for (const auto& f : filters) {
        if (!r.unsubscribe(f, k)) errors.fetch_add(1);
      }
      ++k;
      ++writes;
    }
  });
  writer.join();
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(writes, 0);
  std::printf("router concurrency: %ld write rounds, %ld matches\n", writes, matches_done.load());
  EXPECT_GT(matches_done.load(), 0);
  EXPECT_EQ(r.size(), 1u);
  EXPECT_EQ(keys(r, "sensors/1/temp"), std::vector<SessionKey>{1});
}

}  // namespace
