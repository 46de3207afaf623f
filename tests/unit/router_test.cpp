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
#include "core/topic.hpp"

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

// ---- Shared subscriptions (MQTT 5.0 section 4.8.2) ------------------------------------------------

using tern::SharedFilter;
using tern::broker::StickyChoices;

SharedFilter shared_kind(std::string_view f, std::string* name = nullptr, std::string* inner = nullptr) {
  std::string_view n;
  std::string_view i;
  auto k = tern::parse_shared_subscription(f, n, i);
  if (name) *name = std::string(n);
  if (inner) *inner = std::string(i);
  return k;
}

TEST(SharedFilter, MQTT_4_8_2_1_ShareNameAndFilterAreSplit) {
  std::string name;
  std::string inner;
  EXPECT_EQ(shared_kind("$share/g/a/b", &name, &inner), SharedFilter::kShared);
  EXPECT_EQ(name, "g");
  EXPECT_EQ(inner, "a/b");
  EXPECT_EQ(shared_kind("$share/consumers/#", &name, &inner), SharedFilter::kShared);
  EXPECT_EQ(name, "consumers");
  EXPECT_EQ(inner, "#");
  EXPECT_EQ(shared_kind("$share/g//", &name, &inner), SharedFilter::kShared);
  EXPECT_EQ(inner, "/") << "an inner filter of empty levels is still a filter";
  EXPECT_EQ(shared_kind("$share/g/$SYS/#", &name, &inner), SharedFilter::kShared);
  EXPECT_EQ(inner, "$SYS/#");
}

TEST(SharedFilter, MQTT_4_8_2_1_EmptyOrMissingShareNameIsInvalid) {
  EXPECT_EQ(shared_kind("$share"), SharedFilter::kInvalid);
  EXPECT_EQ(shared_kind("$share/"), SharedFilter::kInvalid);
  EXPECT_EQ(shared_kind("$share//a"), SharedFilter::kInvalid);
  EXPECT_EQ(shared_kind("$share//"), SharedFilter::kInvalid);
}

TEST(SharedFilter, MQTT_4_8_2_2_ShareNameWithWildcardsOrWithoutFilterIsInvalid) {
  EXPECT_EQ(shared_kind("$share/+/a"), SharedFilter::kInvalid);
  EXPECT_EQ(shared_kind("$share/#/a"), SharedFilter::kInvalid);
  EXPECT_EQ(shared_kind("$share/a+b/a"), SharedFilter::kInvalid);
  EXPECT_EQ(shared_kind("$share/a#/a"), SharedFilter::kInvalid);
  EXPECT_EQ(shared_kind("$share/#"), SharedFilter::kInvalid);
  EXPECT_EQ(shared_kind("$share/g"), SharedFilter::kInvalid) << "no '/' and filter after the name";
  EXPECT_EQ(shared_kind("$share/g/"), SharedFilter::kInvalid) << "'/' but no filter";
}

TEST(SharedFilter, OtherFiltersAreNotShared) {
  EXPECT_EQ(shared_kind("a/b"), SharedFilter::kNotShared);
  EXPECT_EQ(shared_kind("$shared/g/a"), SharedFilter::kNotShared);
  EXPECT_EQ(shared_kind("$SHARE/g/a"), SharedFilter::kNotShared) << "case-sensitive";
  EXPECT_EQ(shared_kind("a/$share/g/b"), SharedFilter::kNotShared);
  EXPECT_EQ(shared_kind("$SYS/#"), SharedFilter::kNotShared);
  EXPECT_EQ(shared_kind("#"), SharedFilter::kNotShared);
}

using Presence = std::atomic<std::uint8_t>;

// Per-member counts of `n` messages on `topic`; asserts one shared target per message.
std::vector<int> spread(const Router& r, std::string_view topic, int n, std::size_t members,
                        StickyChoices* sticky = nullptr, std::string_view publisher = "pub") {
  std::vector<int> count(members + 1, 0);
  for (int i = 0; i < n; ++i) {
    std::vector<Target> out;
    r.match(topic, publisher, out, sticky);
    EXPECT_EQ(out.size(), 1u) << "one member per message";
    if (out.size() != 1) continue;
    EXPECT_NE(out[0].group, 0u);
    EXPECT_LE(out[0].key, members);
    ++count[out[0].key];
  }
  return count;
}

TEST(RouterShared, MQTT_4_8_2_EachMessageGoesToOneMemberRoundRobin) {
  Router r;
  for (SessionKey k = 1; k <= 3; ++k) EXPECT_TRUE(r.subscribe("$share/g/jobs/+", k, "m" + std::to_string(k), qos(1)));
  EXPECT_EQ(r.size(), 3u);
  EXPECT_TRUE(r.has_shared());
  EXPECT_EQ(spread(r, "jobs/1", 300, 3), (std::vector<int>{0, 100, 100, 100}));
  // In turn, not just evenly over time.
  std::vector<SessionKey> order;
  for (int i = 0; i < 6; ++i) order.push_back(match(r, "jobs/x")[0].key);
  EXPECT_EQ(order[0], order[3]);
  EXPECT_EQ(order[1], order[4]);
  EXPECT_EQ(order[2], order[5]);
  EXPECT_NE(order[0], order[1]);
  EXPECT_NE(order[1], order[2]);
  EXPECT_TRUE(match(r, "jobs").empty());
  EXPECT_TRUE(match(r, "other/1").empty());
}

TEST(RouterShared, GroupsAndOrdinarySubscriptionsAreSeparate) {
  Router r;
  r.subscribe("$share/a/t", 1, "m1", qos(1));
  r.subscribe("$share/a/t", 2, "m2", qos(1));
  r.subscribe("$share/b/t", 3, "m3", qos(0));
  r.subscribe("$share/b/#", 4, "m4", qos(0));  // same name, other filter: another group
  r.subscribe("t", 1, "m1", qos(2));           // m1 also has an ordinary subscription
  auto t = match(r, "t");
  ASSERT_EQ(t.size(), 4u);
  int ordinary = 0;
  std::vector<std::uint32_t> groups;
  for (const auto& x : t) {
    if (x.group == 0) {
      ++ordinary;
      EXPECT_EQ(x.key, 1u);
      EXPECT_EQ(x.opts.qos, 2);
    } else {
      groups.push_back(x.group);
    }
  }
  EXPECT_EQ(ordinary, 1);
  std::sort(groups.begin(), groups.end());
  EXPECT_EQ(std::unique(groups.begin(), groups.end()), groups.end()) << "one member per group";
  EXPECT_EQ(r.size(), 5u);
}

TEST(RouterShared, MQTT_4_8_2_3_EachMemberKeepsItsOwnOptions) {
  Router r;
  SubOptions o1 = qos(0);
  o1.subscription_id = 7;
  SubOptions o2 = qos(2);
  r.subscribe("$share/g/t", 1, "m1", o1);
  r.subscribe("$share/g/t", 2, "m2", o2);
  for (int i = 0; i < 4; ++i) {
    auto t = match(r, "t");
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].opts.qos, t[0].key == 1 ? 0 : 2);
    EXPECT_EQ(t[0].opts.subscription_id, t[0].key == 1 ? 7u : 0u);
  }
  // Subscribing again replaces the options, not the membership [MQTT-3.8.4-3].
  EXPECT_FALSE(r.subscribe("$share/g/t", 1, "m1", qos(1)));
  EXPECT_EQ(r.size(), 2u);
  EXPECT_EQ(spread(r, "t", 4, 2), (std::vector<int>{0, 2, 2}));
}

TEST(RouterShared, SharedWildcardsDoNotMatchDollarTopics) {
  Router r;
  r.subscribe("$share/g/#", 1, "m1", {});
  r.subscribe("$share/g/+/uptime", 2, "m2", {});
  EXPECT_TRUE(match(r, "$SYS/uptime").empty()) << "[MQTT-4.7.2-1] also for the inner filter";
  EXPECT_EQ(match(r, "a/uptime").size(), 2u) << "two groups (same name, other filters): one each";
  r.subscribe("$share/g/$SYS/#", 3, "m3", {});
  EXPECT_EQ(keys(r, "$SYS/uptime"), std::vector<SessionKey>{3});
}

TEST(RouterShared, ConnectedMembersFirstThenOfflinePersistentNeverGone) {
  Router r;
  Presence p1{tern::broker::kOnline};
  Presence p2{tern::broker::kOffline};
  Presence p3{tern::broker::kOnline};
  r.subscribe("$share/g/t", 1, "m1", qos(1), nullptr, &p1);
  r.subscribe("$share/g/t", 2, "m2", qos(1), nullptr, &p2);
  r.subscribe("$share/g/t", 3, "m3", qos(1), nullptr, &p3);
  // An offline member does not take turns, and does not hand its turn to one neighbour.
  EXPECT_EQ(spread(r, "t", 100, 3), (std::vector<int>{0, 50, 0, 50}));
  p1 = tern::broker::kGone;
  p3 = tern::broker::kOffline;
  EXPECT_EQ(spread(r, "t", 10, 3), (std::vector<int>{0, 0, 5, 5})) << "no member connected: offline ones";
  p2 = tern::broker::kGone;
  p3 = tern::broker::kGone;
  EXPECT_TRUE(match(r, "t").empty()) << "ending sessions are never chosen";
  p2 = tern::broker::kOnline;
  EXPECT_EQ(spread(r, "t", 10, 3), (std::vector<int>{0, 0, 10, 0}));
}

TEST(RouterShared, ConnectedMemberThatIsNotCongestedIsPreferred) {
  Router r;
  std::atomic<bool> c1{true};
  std::atomic<bool> c2{false};
  Presence p3{tern::broker::kOffline};
  r.subscribe("$share/g/t", 1, "m1", qos(1), &c1);
  r.subscribe("$share/g/t", 2, "m2", qos(1), &c2);
  r.subscribe("$share/g/t", 3, "m3", qos(1), nullptr, &p3);
  EXPECT_EQ(spread(r, "t", 10, 3), (std::vector<int>{0, 0, 10, 0}));
  c2 = true;
  // All connected members congested: still a connected one (its publishers are paused), flagged.
  auto t = match(r, "t");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_TRUE(t[0].key == 1 || t[0].key == 2);
  EXPECT_TRUE(t[0].congested);
  EXPECT_EQ(spread(r, "t", 10, 3), (std::vector<int>{0, 5, 5, 0}));
}

TEST(RouterShared, UnsubscribeRemovesTheMembershipAndTheLastOneTheGroup) {
  Router r;
  r.subscribe("$share/g/t", 1, "m1", {});
  r.subscribe("$share/g/t", 2, "m2", {});
  r.subscribe("t", 1, "m1", {});
  std::uint32_t group = 0;
  for (const auto& x : match(r, "t")) {
    if (x.group) group = x.group;
  }
  ASSERT_NE(group, 0u);
  EXPECT_FALSE(r.unsubscribe("$share/h/t", 1)) << "other group";
  EXPECT_FALSE(r.unsubscribe("$share/g/u", 1)) << "other filter";
  EXPECT_FALSE(r.unsubscribe("$share/g/t", 3)) << "not a member";
  EXPECT_FALSE(r.unsubscribe("$share//t", 1)) << "invalid";
  EXPECT_TRUE(r.unsubscribe("$share/g/t", 1));
  EXPECT_FALSE(r.unsubscribe("$share/g/t", 1)) << "already gone";
  EXPECT_EQ(r.size(), 2u);
  // m1's ordinary subscription stays; m2 is the only member.
  auto t = match(r, "t");
  ASSERT_EQ(t.size(), 2u);
  for (const auto& x : t) EXPECT_EQ(x.key, x.group ? 2u : 1u);
  EXPECT_TRUE(r.unsubscribe("$share/g/t", 2));
  EXPECT_FALSE(r.has_shared()) << "the last member left: the group ended";
  Target out;
  EXPECT_FALSE(r.choose(group, 0, false, out));
  EXPECT_EQ(keys(r, "t"), std::vector<SessionKey>{1});
  EXPECT_TRUE(r.unsubscribe("t", 1));
  EXPECT_EQ(r.size(), 0u);
  // A new group of the same name is a new group.
  r.subscribe("$share/g/t", 5, "m5", {});
  ASSERT_EQ(match(r, "t").size(), 1u);
  EXPECT_NE(match(r, "t")[0].group, group);
}

TEST(RouterShared, ChooseAnotherMemberForAMessageThatCannotStay) {
  Router r;
  Presence p1{tern::broker::kOnline};
  Presence p2{tern::broker::kOffline};
  Presence p3{tern::broker::kOnline};
  SubOptions o3 = qos(2);
  o3.subscription_id = 3;
  r.subscribe("$share/g/t", 1, "m1", qos(1), nullptr, &p1);
  r.subscribe("$share/g/t", 2, "m2", qos(1), nullptr, &p2);
  r.subscribe("$share/g/t", 3, "m3", o3, nullptr, &p3);
  std::uint32_t group = match(r, "t")[0].group;
  Target out;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(r.choose(group, 1, true, out));
    EXPECT_EQ(out.key, 3u) << "never the excluded one, never an offline one while one is connected";
    EXPECT_EQ(out.group, group);
    EXPECT_EQ(out.opts.qos, 2);
    EXPECT_EQ(out.opts.subscription_id, 3u);
  }
  p3 = tern::broker::kOffline;
  EXPECT_FALSE(r.choose(group, 1, true, out)) << "connected only: none";
  ASSERT_TRUE(r.choose(group, 1, false, out));
  EXPECT_TRUE(out.key == 2 || out.key == 3);
  EXPECT_FALSE(r.choose(group + 100, 1, false, out)) << "unknown group";
}

TEST(RouterShared, StickyKeepsAPublishersMemberWhileItIsConnected) {
  Router r;
  Presence p[4] = {{tern::broker::kOnline}, {tern::broker::kOnline}, {tern::broker::kOnline}, {tern::broker::kOnline}};
  for (SessionKey k = 1; k <= 3; ++k) r.subscribe("$share/g/t", k, "m", qos(1), nullptr, &p[k]);
  StickyChoices a;
  StickyChoices b;
  auto ca = spread(r, "t", 20, 3, &a, "a");
  auto cb = spread(r, "t", 20, 3, &b, "b");
  SessionKey ma = std::max_element(ca.begin(), ca.end()) - ca.begin();
  SessionKey mb = std::max_element(cb.begin(), cb.end()) - cb.begin();
  EXPECT_EQ(ca[ma], 20) << "every message of publisher a to one member";
  EXPECT_EQ(cb[mb], 20);
  EXPECT_NE(ma, mb) << "publishers are spread round robin";
  // A new member does not take a publisher away from its connected member.
  Presence p4{tern::broker::kOnline};
  r.subscribe("$share/g/t", 4, "m4", qos(1), nullptr, &p4);
  EXPECT_EQ(spread(r, "t", 5, 4, &a, "a")[ma], 5);
  // Its member goes away: the publisher moves, and stays with the new one after the old returns.
  p[ma] = tern::broker::kOffline;
  auto moved = spread(r, "t", 10, 4, &a, "a");
  SessionKey ma2 = std::max_element(moved.begin(), moved.end()) - moved.begin();
  EXPECT_NE(ma2, ma);
  EXPECT_EQ(moved[ma2], 10);
  p[ma] = tern::broker::kOnline;
  EXPECT_EQ(spread(r, "t", 5, 4, &a, "a")[ma2], 5);
  // Without a memo (round robin) the same router spreads again.
  auto rr = spread(r, "t", 40, 4);
  EXPECT_EQ(rr, (std::vector<int>{0, 10, 10, 10, 10}));
}

// Several workers route to one group at once: the group's counter is shared, so over all threads
// the members are still taken in exact turn, and no message goes to two members or none.
TEST(RouterShared, ConcurrentWorkersShareOneRoundRobin) {
  Router r;
  for (SessionKey k = 1; k <= 3; ++k) r.subscribe("$share/g/t", (SessionKey{k} << 48) | k, "m", qos(1));
  std::atomic<int> counts[4] = {};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      std::vector<Target> out;
      for (int i = 0; i < 3000; ++i) {
        out.clear();
        r.match("t", "pub", out);
        if (out.size() != 1) {
          counts[0].fetch_add(1);
          continue;
        }
        counts[tern::broker::worker_of(out[0].key)].fetch_add(1);
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(counts[0].load(), 0);
  EXPECT_EQ(counts[1].load(), 4000);
  EXPECT_EQ(counts[2].load(), 4000);
  EXPECT_EQ(counts[3].load(), 4000);
}

}  // namespace
