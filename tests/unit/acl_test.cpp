// Tests for src/security/acl.*: Mosquitto's acl_file format, the decision rules of acl.hpp, pattern
// substitution and its CVE-2017-7650 guard, the SUBSCRIBE check and the filter relations behind it.
#include "security/acl.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace {

using tern::security::Access;
using tern::security::Acl;
using tern::security::AclError;
using tern::security::filter_covers;
using tern::security::filters_intersect;

std::string error_of(const std::string& text, const std::string& name = "acl.txt") {
  try {
    Acl::parse(text, name);
  } catch (const AclError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_CONTAINS(haystack, needle)                          \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

// Shorthands: r/w of an anonymous client or of a user.
struct Checker {
  const Acl& acl;
  bool r(const char* topic, const char* user = nullptr, const char* cid = "cid") const {
    std::string u = user ? user : "";
    return acl.allowed(cid, user ? &u : nullptr, topic, Access::kRead);
  }
  bool w(const char* topic, const char* user = nullptr, const char* cid = "cid") const {
    std::string u = user ? user : "";
    return acl.allowed(cid, user ? &u : nullptr, topic, Access::kWrite);
  }
  bool sub(const char* filter, const char* user = nullptr, const char* cid = "cid") const {
    std::string u = user ? user : "";
    return acl.subscribe_allowed(cid, user ? &u : nullptr, filter);
  }
};

// ---- filter relations ----

TEST(AclFilters, Intersect) {
  EXPECT_TRUE(filters_intersect("a/b", "a/b"));
  EXPECT_FALSE(filters_intersect("a/b", "a/c"));
  EXPECT_TRUE(filters_intersect("a/+/c", "a/#"));
  EXPECT_FALSE(filters_intersect("a/+/c", "b/#"));
  EXPECT_TRUE(filters_intersect("a/+/c", "#"));
  EXPECT_TRUE(filters_intersect("a/+/c", "+/b/+"));
  EXPECT_FALSE(filters_intersect("a/+/c", "+/b"));
  EXPECT_FALSE(filters_intersect("a/+/c", "a/b/c/d"));
  EXPECT_TRUE(filters_intersect("a/+/c/#", "a/b/c/d"));
  EXPECT_TRUE(filters_intersect("a/#", "a"));  // '#' matches the parent level
  EXPECT_TRUE(filters_intersect("a", "a/#"));
  EXPECT_FALSE(filters_intersect("a/+", "a"));
  EXPECT_TRUE(filters_intersect("a/+", "a/"));  // an empty level is a level
  EXPECT_TRUE(filters_intersect("+", "+"));
  EXPECT_TRUE(filters_intersect("#", "+/+/+"));
  EXPECT_FALSE(filters_intersect("/a", "a"));
}

TEST(AclFilters, IntersectDollarTopics) {
  // [MQTT-4.7.2-1] a first-level wildcard matches no '$' topic.
  EXPECT_FALSE(filters_intersect("#", "$SYS/#"));
  EXPECT_FALSE(filters_intersect("+/broker/#", "$SYS/broker/load"));
  EXPECT_FALSE(filters_intersect("$SYS/broker", "+/#"));
  EXPECT_TRUE(filters_intersect("$SYS/#", "$SYS/broker/+"));
  EXPECT_TRUE(filters_intersect("$SYS/+", "$SYS/x"));
  EXPECT_TRUE(filters_intersect("+/x", "#"));  // both wildcards: a topic without '$' serves
}

TEST(AclFilters, Covers) {
  EXPECT_TRUE(filter_covers("a/#", "a/b"));
  EXPECT_TRUE(filter_covers("a/#", "a/#"));
  EXPECT_TRUE(filter_covers("a/#", "a/+/c/#"));
  EXPECT_TRUE(filter_covers("a/#", "a"));
  EXPECT_FALSE(filter_covers("a/b", "a/#"));
  EXPECT_FALSE(filter_covers("a/#", "#"));
  EXPECT_TRUE(filter_covers("#", "#"));
  EXPECT_TRUE(filter_covers("#", "a/+/b"));
  EXPECT_TRUE(filter_covers("+/+", "a/+"));
  EXPECT_FALSE(filter_covers("a/+", "+/+"));
  EXPECT_FALSE(filter_covers("a/+", "a/+/c"));
  EXPECT_FALSE(filter_covers("a/+/#", "a"));  // "a" is matched by the inner one only
  EXPECT_FALSE(filter_covers("a/+/#", "a/#"));
  EXPECT_TRUE(filter_covers("a/+/#", "a/+"));
  EXPECT_FALSE(filter_covers("a", "a/b"));
  EXPECT_FALSE(filter_covers("a", "a/#"));
  EXPECT_TRUE(filter_covers("a/b", "a/b"));
  EXPECT_TRUE(filter_covers("+/#", "#"));  // both: one level or more, no '$' topics
  EXPECT_FALSE(filter_covers("+", "#"));
}

TEST(AclFilters, CoversDollarTopics) {
  EXPECT_FALSE(filter_covers("#", "$SYS/#"));
  EXPECT_FALSE(filter_covers("+/broker", "$SYS/broker"));
  EXPECT_TRUE(filter_covers("$SYS/#", "$SYS/broker/+"));
  EXPECT_FALSE(filter_covers("$SYS/#", "#"));
}

// ---- parsing ----

TEST(AclParse, StatementsAndSections) {
  Acl acl = Acl::parse(
      "# anonymous clients\n"
      "topic read public/#\n"
      "\n"
      "   # indented comment\n"
      "topic\twrite  \t public/in  \r\n"
      "user alice\n"
      "topic alice/#\n"
      "pattern read dev/%c/status\n"
      "user bob smith\n"
      "topic deny x\n"
      "user alice\n"
      "topic read more\n",
      "acl.txt");
  EXPECT_EQ(acl.rules(), 6u);
  std::string alice = "alice";
  std::string bob = "bob smith";
  std::string nobody = "nobody";
  ASSERT_NE(acl.section_rules(nullptr), nullptr);
  EXPECT_EQ(acl.section_rules(nullptr)->size(), 2u);
  EXPECT_EQ(acl.section_rules(nullptr)->at(1).filter, "public/in");
  EXPECT_EQ(acl.section_rules(nullptr)->at(1).kind, Acl::Rule::kWrite);
  ASSERT_NE(acl.section_rules(&alice), nullptr);
  ASSERT_EQ(acl.section_rules(&alice)->size(), 2u);                         // both "user alice" sections
  EXPECT_EQ(acl.section_rules(&alice)->at(0).kind, Acl::Rule::kReadWrite);  // the default access
  EXPECT_EQ(acl.section_rules(&alice)->at(1).filter, "more");
  ASSERT_NE(acl.section_rules(&bob), nullptr);  // a username may contain spaces
  EXPECT_EQ(acl.section_rules(&bob)->at(0).kind, Acl::Rule::kDeny);
  EXPECT_EQ(acl.section_rules(&nobody), nullptr);
  ASSERT_EQ(acl.patterns().size(), 1u);
  EXPECT_EQ(acl.patterns()[0].filter, "dev/%c/status");
}

TEST(AclParse, SingleWordIsTheTopicAndTheRestOfTheLineToo) {
  // As Mosquitto: with one word after the keyword that word is the topic (here "read" itself), and a
  // topic with spaces needs the access word.
  Acl acl = Acl::parse("topic read\ntopic write a b c\n", "t");
  Checker c{acl};
  EXPECT_TRUE(c.w("read"));
  EXPECT_TRUE(c.r("read"));
  EXPECT_TRUE(c.w("a b c"));
  EXPECT_FALSE(c.r("a b c"));
}

TEST(AclParse, ErrorsNameFileAndLine) {
  EXPECT_EQ(error_of("topic a\n"), "");
  EXPECT_CONTAINS(error_of("topic a\nfrob x\n"), "acl.txt:2: unknown statement 'frob'");
  EXPECT_CONTAINS(error_of("TOPIC read x\n"), "acl.txt:1: unknown statement 'TOPIC'");
  EXPECT_CONTAINS(error_of("\n\ntopic\n"), "acl.txt:3: topic: missing topic");
  EXPECT_CONTAINS(error_of("pattern   \n"), "acl.txt:1: pattern: missing topic");
  EXPECT_CONTAINS(error_of("topic a b\n"), "acl.txt:1: topic: invalid access 'a'");
  EXPECT_CONTAINS(error_of("topic Read x\n"), "invalid access 'Read'");
  EXPECT_CONTAINS(error_of("topic read a/#/b\n"), "acl.txt:1: topic: invalid topic filter 'a/#/b'");
  EXPECT_CONTAINS(error_of("topic read a+\n"), "invalid topic filter 'a+'");
  EXPECT_CONTAINS(error_of("# c\nuser\n"), "acl.txt:2: user: missing username");
  EXPECT_CONTAINS(error_of("user  \t \n"), "acl.txt:1: user: missing username");
  EXPECT_CONTAINS(error_of("pattern read a/%u%c\n"), "acl.txt:1: pattern: %c and %u must each be a whole topic level");
  EXPECT_CONTAINS(error_of("pattern read a/x%c/b\n"), "whole topic level");
  EXPECT_EQ(error_of("topic read a/x%c/b\n"), "");     // literal text in a topic line
  EXPECT_EQ(error_of("pattern read a/100%/b\n"), "");  // other '%' are literal
}

TEST(AclParse, LoadNamesTheFile) {
  std::random_device rd;
  auto dir = std::filesystem::temp_directory_path() / ("tern-acl-test-" + std::to_string(rd()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "acl").string();
  std::ofstream(path) << "topic read a\nuser u\ntopic b\nbad\n";
  try {
    Acl::load(path);
    ADD_FAILURE() << "loaded a broken file";
  } catch (const AclError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ":4: ", 0), 0u) << e.what();
  }
  std::ofstream(path) << "topic read a\nuser u\ntopic b\n";
  EXPECT_EQ(Acl::load(path).rules(), 2u);
  EXPECT_THROW(Acl::load((dir / "missing").string()), AclError);
  std::filesystem::remove_all(dir);
}

// ---- decisions ----

TEST(AclAllowed, AccessKinds) {
  Acl acl = Acl::parse("topic read r\ntopic write w\ntopic readwrite rw\ntopic both\ntopic deny d\n", "t");
  Checker c{acl};
  EXPECT_TRUE(c.r("r"));
  EXPECT_FALSE(c.w("r"));
  EXPECT_FALSE(c.r("w"));
  EXPECT_TRUE(c.w("w"));
  EXPECT_TRUE(c.r("rw"));
  EXPECT_TRUE(c.w("rw"));
  EXPECT_TRUE(c.r("both"));
  EXPECT_TRUE(c.w("both"));
  EXPECT_FALSE(c.r("d"));
  EXPECT_FALSE(c.w("d"));
  EXPECT_FALSE(c.r("unlisted"));  // no matching rule: denied
  EXPECT_FALSE(c.w("unlisted"));
}

TEST(AclAllowed, EmptyFileDeniesEverything) {
  Acl acl = Acl::parse("# nothing\n", "t");
  Checker c{acl};
  EXPECT_EQ(acl.rules(), 0u);
  EXPECT_FALSE(c.r("a"));
  EXPECT_FALSE(c.w("a", "alice"));
  EXPECT_FALSE(c.sub("#"));
}

TEST(AclAllowed, SectionsAnonymousAndUsers) {
  Acl acl = Acl::parse(
      "topic read anon/#\n"
      "user alice\n"
      "topic readwrite alice/#\n"
      "user bob\n"
      "topic read bob/#\n",
      "t");
  Checker c{acl};
  EXPECT_TRUE(c.r("anon/x"));
  EXPECT_FALSE(c.r("alice/x"));
  EXPECT_TRUE(c.w("alice/x", "alice"));
  EXPECT_FALSE(c.r("anon/x", "alice"));  // the anonymous section is for clients without username only
  EXPECT_FALSE(c.r("bob/x", "alice"));
  EXPECT_TRUE(c.r("bob/x", "bob"));
  EXPECT_FALSE(c.w("bob/x", "bob"));
  EXPECT_FALSE(c.r("anon/x", "carol"));  // a user without a section has no topic rules
  EXPECT_FALSE(c.r("alice/x", ""));      // the empty username is a username, not anonymous
}

TEST(AclAllowed, MatchingIsMqttMatching) {
  Acl acl = Acl::parse("topic read a/+/c\ntopic read x/#\n", "t");
  Checker c{acl};
  EXPECT_TRUE(c.r("a/b/c"));
  EXPECT_TRUE(c.r("a//c"));
  EXPECT_FALSE(c.r("a/b/c/d"));
  EXPECT_FALSE(c.r("a/c"));
  EXPECT_TRUE(c.r("x"));  // "x/#" matches its parent
  EXPECT_TRUE(c.r("x/y/z"));
  EXPECT_FALSE(c.r("xy"));
  EXPECT_TRUE(c.r("x/"));
  Acl one = Acl::parse("topic read +\n", "t");
  EXPECT_TRUE(Checker{one}.r("single"));
  EXPECT_FALSE(Checker{one}.r("two/levels"));
  EXPECT_FALSE(Checker{one}.r("/"));  // two empty levels
}

TEST(AclAllowed, DenyWinsOverGrantsEverywhere) {
  Acl acl = Acl::parse(
      "topic deny a/secret\n"
      "topic readwrite a/#\n"
      "pattern deny p/%c/private\n"
      "user alice\n"
      "topic readwrite both/#\n"
      "topic readwrite p/#\n"
      "topic deny u/secret\n"
      "pattern readwrite u/#\n"
      "pattern deny both/deny\n",
      "t");
  Checker c{acl};
  EXPECT_FALSE(c.r("a/secret"));  // deny listed before or after the grant: the same
  EXPECT_TRUE(c.r("a/public"));
  // A deny pattern wins over a grant of the user's section (Mosquitto 2.0.11 would allow these two)...
  EXPECT_FALSE(c.w("both/deny", "alice"));
  EXPECT_TRUE(c.w("both/ok", "alice"));
  EXPECT_FALSE(c.w("p/cid/private", "alice", "cid"));
  EXPECT_TRUE(c.w("p/cid/private", "alice", "other"));
  // ...and a deny of the user's section over a granting pattern (as in Mosquitto).
  EXPECT_FALSE(c.w("u/secret", "alice"));
  EXPECT_TRUE(c.w("u/other", "alice"));
  EXPECT_TRUE(c.w("u/secret", "bob"));
}

TEST(AclAllowed, DollarTopicsAndLeadingWildcards) {
  Acl acl = Acl::parse(
      "topic readwrite #\n"
      "user admin\n"
      "topic read +/broker/#\n"
      "topic read $SYS/#\n"
      "user mon\n"
      "topic read #\n"
      "topic deny #\n"
      "topic read $SYS/broker/load\n",
      "t");
  Checker c{acl};
  EXPECT_TRUE(c.w("any/topic"));
  EXPECT_FALSE(c.r("$SYS/broker/load"));  // [MQTT-4.7.2-1]
  EXPECT_FALSE(c.w("$share/x"));
  EXPECT_TRUE(c.r("$SYS/broker/load", "admin"));
  EXPECT_TRUE(c.r("x/broker/load", "admin"));
  // A leading-wildcard deny does not reach '$' topics either.
  EXPECT_FALSE(c.r("x", "mon"));
  EXPECT_TRUE(c.r("$SYS/broker/load", "mon"));
}

TEST(AclAllowed, PatternsSubstituteClientIdAndUsername) {
  Acl acl = Acl::parse(
      "pattern readwrite dev/%c/#\n"
      "pattern write users/%u/data\n"
      "pattern read both/%u/%c\n"
      "pattern read %c\n",
      "t");
  Checker c{acl};
  EXPECT_TRUE(c.w("dev/d1/temp", nullptr, "d1"));
  EXPECT_TRUE(c.r("dev/d1", nullptr, "d1"));
  EXPECT_FALSE(c.w("dev/d2/temp", nullptr, "d1"));
  EXPECT_TRUE(c.w("users/alice/data", "alice"));
  EXPECT_FALSE(c.w("users/bob/data", "alice"));
  EXPECT_FALSE(c.r("users/alice/data", "alice"));
  EXPECT_TRUE(c.r("both/alice/d1", "alice", "d1"));
  EXPECT_FALSE(c.r("both/d1/alice", "alice", "d1"));
  EXPECT_TRUE(c.r("d1", nullptr, "d1"));
  // Patterns apply to users with a section too, and %c is literal in topic lines.
  Acl acl2 = Acl::parse("user alice\ntopic read own/%c\npattern read pat/%c\n", "t");
  Checker c2{acl2};
  EXPECT_TRUE(c2.r("pat/d1", "alice", "d1"));
  EXPECT_TRUE(c2.r("own/%c", "alice", "d1"));
  EXPECT_FALSE(c2.r("own/d1", "alice", "d1"));
}

TEST(AclAllowed, UsernamePatternsNeverMatchAnonymousClients) {
  Acl acl = Acl::parse("pattern readwrite users/%u/#\npattern readwrite c/%c\n", "t");
  Checker c{acl};
  EXPECT_FALSE(c.w("users/", nullptr));
  EXPECT_FALSE(c.w("users//x", nullptr));
  EXPECT_FALSE(c.w("users/cid", nullptr));
  EXPECT_TRUE(c.w("c/cid", nullptr));  // %c patterns do apply
  // An empty username substitutes an empty level.
  EXPECT_TRUE(c.w("users//x", ""));
}

// CVE-2017-7650: a client id or username with '+', '#' or '/' must not widen a granting pattern.
class AclDangerousValue : public ::testing::TestWithParam<char> {};

TEST_P(AclDangerousValue, ClientIdNeverMatchesAGrantingPattern) {
  char ch = GetParam();
  Acl acl = Acl::parse("pattern readwrite dev/%c/#\npattern read cid/%c\n", "t");
  std::string cid = std::string("a") + ch + "b";
  std::string bare(1, ch);
  // The literal spelling of the substitution, and what it would match as a filter.
  for (const std::string& id : {cid, bare}) {
    std::string literal = "dev/" + id + "/x";
    EXPECT_FALSE(acl.allowed(id, nullptr, literal, Access::kWrite)) << id;  // the literal spelling too
    EXPECT_FALSE(acl.allowed(id, nullptr, "dev/other/x", Access::kWrite)) << id;
    EXPECT_FALSE(acl.allowed(id, nullptr, "dev/a/b/x", Access::kRead)) << id;
    EXPECT_FALSE(acl.allowed(id, nullptr, "cid/a", Access::kRead)) << id;
    EXPECT_FALSE(acl.allowed(id, nullptr, "cid/a/b", Access::kRead)) << id;
    EXPECT_FALSE(acl.subscribe_allowed(id, nullptr, "dev/#")) << id;
    EXPECT_FALSE(acl.subscribe_allowed(id, nullptr, "#")) << id;
    EXPECT_FALSE(acl.view(id, nullptr).allowed("dev/a/b/x", Access::kRead)) << id;
  }
  // Other clients are unaffected.
  EXPECT_TRUE(acl.allowed("ab", nullptr, "dev/ab/x", Access::kWrite));
}

TEST_P(AclDangerousValue, UsernameNeverMatchesAGrantingPattern) {
  char ch = GetParam();
  Acl acl = Acl::parse("pattern readwrite users/%u/#\npattern read c/%c\n", "t");
  for (const std::string& user : {std::string("a") + ch + "b", std::string(1, ch)}) {
    std::string literal = "users/" + user + "/x";
    EXPECT_FALSE(acl.allowed("cid", &user, literal, Access::kWrite)) << user;
    EXPECT_FALSE(acl.allowed("cid", &user, "users/other/x", Access::kWrite)) << user;
    EXPECT_FALSE(acl.allowed("cid", &user, "users/a/b/x", Access::kRead)) << user;
    EXPECT_FALSE(acl.subscribe_allowed("cid", &user, "users/#")) << user;
    // Only the patterns that substitute the username are off: %c ones still apply.
    EXPECT_TRUE(acl.allowed("cid", &user, "c/cid", Access::kRead)) << user;
  }
  std::string ok = "ab";
  EXPECT_TRUE(acl.allowed("cid", &ok, "users/ab/x", Access::kWrite));
}

INSTANTIATE_TEST_SUITE_P(PlusHashSlash, AclDangerousValue, ::testing::Values('+', '#', '/'));

TEST(AclAllowed, DenyPatternWithSlashDeniesTheLiteralTopic) {
  // A deny substitutes the value as text: with '/', it denies the topic that spells the client id.
  Acl acl = Acl::parse("topic readwrite #\npattern deny private/%c/#\n", "t");
  EXPECT_FALSE(acl.allowed("a/b", nullptr, "private/a/b/x", Access::kRead));
  EXPECT_TRUE(acl.allowed("a/b", nullptr, "private/a/c", Access::kRead));
  EXPECT_TRUE(acl.allowed("a/b", nullptr, "private/a", Access::kRead));
  EXPECT_FALSE(acl.allowed("a", nullptr, "private/a/c", Access::kRead));
  // '+' or '#' cannot appear in a topic name: nothing more is denied, and nothing less.
  EXPECT_TRUE(acl.allowed("+", nullptr, "private/x/y", Access::kRead));
  EXPECT_FALSE(acl.subscribe_allowed("a/b", nullptr, "private/a/b/#"));
  EXPECT_TRUE(acl.subscribe_allowed("a/b", nullptr, "private/a/#"));
}

// ---- SUBSCRIBE ----

TEST(AclSubscribe, ReadableIntersection) {
  Acl acl = Acl::parse("topic read a/+/c\n", "t");
  Checker c{acl};
  EXPECT_TRUE(c.sub("a/#"));
  EXPECT_FALSE(c.sub("b/#"));
  EXPECT_TRUE(c.sub("#"));
  EXPECT_TRUE(c.sub("a/b/c"));
  EXPECT_FALSE(c.sub("a/b/d"));
  EXPECT_TRUE(c.sub("+/+/+"));
  EXPECT_FALSE(c.sub("+/+"));
  Acl wr = Acl::parse("topic write a/#\n", "t");
  EXPECT_FALSE(Checker{wr}.sub("a/#"));  // write access only: nothing to deliver
}

TEST(AclSubscribe, DenyCoveringTheFilter) {
  Acl acl = Acl::parse("topic deny a/#\ntopic read #\n", "t");
  Checker c{acl};
  EXPECT_FALSE(c.sub("a/b"));
  EXPECT_FALSE(c.sub("a/#"));
  EXPECT_FALSE(c.sub("a"));
  EXPECT_TRUE(c.sub("#"));  // granted; deliveries on a/... are refused one by one
  EXPECT_FALSE(c.r("a/b"));
  EXPECT_TRUE(c.r("b"));
  EXPECT_TRUE(c.sub("+/b"));
}

TEST(AclSubscribe, SharedSubscriptionsAreJudgedByTheirFilter) {
  Acl acl = Acl::parse("topic read jobs/#\n", "t");
  Checker c{acl};
  EXPECT_TRUE(c.sub("$share/workers/jobs/+"));
  EXPECT_FALSE(c.sub("$share/workers/other/+"));
  EXPECT_TRUE(c.sub("$share/jobs/#"));  // share name "jobs", filter "#": jobs/... is readable
}

TEST(AclSubscribe, DollarFilters) {
  Acl acl = Acl::parse("topic read #\nuser admin\ntopic read $SYS/#\n", "t");
  Checker c{acl};
  EXPECT_FALSE(c.sub("$SYS/#"));
  EXPECT_TRUE(c.sub("#"));
  EXPECT_TRUE(c.sub("$SYS/broker/+", "admin"));
  EXPECT_FALSE(c.sub("#", "admin"));
}

TEST(AclSubscribe, Patterns) {
  Acl acl = Acl::parse("pattern read dev/%c/#\npattern read users/%u/#\n", "t");
  Checker c{acl};
  EXPECT_TRUE(c.sub("dev/d1/#", nullptr, "d1"));
  EXPECT_TRUE(c.sub("dev/+/temp", nullptr, "d1"));
  EXPECT_FALSE(c.sub("dev/d2/#", nullptr, "d1"));
  EXPECT_FALSE(c.sub("users/#", nullptr, "d1"));  // %u: not for anonymous clients
  EXPECT_TRUE(c.sub("users/alice/x", "alice", "d1"));
}

// ---- the per-client view ----

TEST(AclView, SameAnswersAsTheAcl) {
  Acl acl = Acl::parse(
      "topic read anon/#\n"
      "pattern readwrite dev/%c/#\n"
      "pattern deny dev/%c/secret\n"
      "user alice\n"
      "topic readwrite alice/#\n"
      "topic deny alice/locked\n",
      "t");
  std::string alice = "alice";
  Acl::ClientView a = acl.view("d1", &alice);
  Acl::ClientView anon = acl.view("d2", nullptr);
  EXPECT_TRUE(a.allowed("alice/x", Access::kWrite));
  EXPECT_FALSE(a.allowed("alice/locked", Access::kRead));
  EXPECT_TRUE(a.allowed("dev/d1/t", Access::kWrite));
  EXPECT_FALSE(a.allowed("dev/d1/secret", Access::kWrite));
  EXPECT_FALSE(a.allowed("anon/x", Access::kRead));
  EXPECT_TRUE(a.subscribe_allowed("alice/#"));
  EXPECT_FALSE(a.subscribe_allowed("alice/locked"));
  EXPECT_TRUE(anon.allowed("anon/x", Access::kRead));
  EXPECT_TRUE(anon.allowed("dev/d2/x", Access::kRead));
  EXPECT_FALSE(anon.allowed("dev/d1/x", Access::kRead));
  // Views stay valid when the Acl is moved (its rules do not move).
  Acl moved = std::move(acl);
  EXPECT_TRUE(a.allowed("alice/x", Access::kWrite));
  EXPECT_FALSE(Acl::ClientView().allowed("anything", Access::kRead));
  EXPECT_FALSE(Acl::ClientView().subscribe_allowed("#"));
}

TEST(AclView, ThousandRulesStayFast) {
  // The benchmark's shape: 1,000 rules. allowed() walks tries, so its cost must not grow with them.
  std::string text;
  for (int u = 0; u < 100; ++u) {
    text += "user user" + std::to_string(u) + "\n";
    for (int t = 0; t < 9; ++t) {
      text += "topic readwrite site/" + std::to_string(u) + "/dev" + std::to_string(t) + "/#\n";
    }
  }
  for (int p = 0; p < 100; ++p) text += "pattern read pat" + std::to_string(p) + "/%c/#\n";
  Acl acl = Acl::parse(text, "t");
  EXPECT_EQ(acl.rules(), 1000u);
  std::string user = "user42";
  Acl::ClientView v = acl.view("client42", &user);
  EXPECT_TRUE(v.allowed("site/42/dev3/temp", Access::kWrite));
  EXPECT_FALSE(v.allowed("site/41/dev3/temp", Access::kWrite));
  EXPECT_TRUE(v.allowed("pat99/client42/x", Access::kRead));
  auto start = std::chrono::steady_clock::now();
  int hits = 0;
  constexpr int kChecks = 200000;
  for (int i = 0; i < kChecks; ++i) hits += v.allowed(i % 2 ? "site/42/dev8/x/y" : "pat7/client42/z", Access::kRead);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(hits, kChecks);
  // Generous (debug builds, a busy machine): a linear scan of 1,000 rules would take ~20 us a check.
  EXPECT_LT(ns / kChecks, 5000) << ns / kChecks << " ns per check";
}

}  // namespace
