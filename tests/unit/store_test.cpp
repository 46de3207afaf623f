// Unit tests of the embedded store (src/store): record encodings and their strict decoders, group
// commit, restart, foreign and newer stores, a torn WAL tail, the size bound and a full disk, and
// power cuts through SyncTrackingFs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "store/fault_fs.hpp"
#include "store/records.hpp"
#include "store/store.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tern::store;
using tern::Properties;
using tern::UserProperty;
using tern::Version;

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tern-store-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

Properties full_props() {
  Properties p;
  p.payload_format = 1;
  p.message_expiry = 3600;
  p.content_type = "text/plain";
  p.response_topic = "reply/to";
  p.correlation_data = std::string("\x00\x01\xff", 3);
  p.user_properties = {{"k", "v"}, {"k", "v2"}, {"", ""}};
  return p;
}

MessageRecord message(std::uint64_t id, std::string payload = "hello") {
  MessageRecord m;
  m.id = id;
  m.topic = "sensors/t" + std::to_string(id);
  m.payload = std::move(payload);
  m.qos = 1;
  m.origin = "pub-1";
  return m;
}

MessageRecord full_message() {
  MessageRecord m = message(0x0102030405060708ull, std::string("bin\x00\xff payload", 13));
  m.qos = 2;
  m.retain = true;
  m.props = full_props();
  m.expiry = 1'700'000'000'123ull;
  m.topic = "caf\xc3\xa9/\xf0\x9f\x98\x80";
  return m;
}

SessionRecord full_session() {
  SessionRecord s;
  s.client_id = "client-\xc3\xa9";
  s.version = Version::kV5;
  s.subscriptions = {
      {"a/+/c", 1, true, false, 0, 0},
      {"$share/group/x/#", 2, false, true, 2, 268435455},
      {"#", 0, false, false, 1, 7},
  };
  s.expiry_interval = 0xFFFFFFFF;
  s.disconnected_at = 1'700'000'000'000ull;
  WillRecord w;
  w.topic = "will/t";
  w.payload = "gone";
  w.qos = 1;
  w.retain = true;
  w.props = full_props();
  w.delay = 30;
  s.will = w;
  return s;
}

QueueEntry entry(const std::string& client, std::uint64_t seq, std::uint64_t msg) {
  QueueEntry q;
  q.client_id = client;
  q.seq = seq;
  q.message_id = msg;
  q.qos = 1;
  return q;
}

QueueEntry full_entry() {
  QueueEntry q = entry("c1", 0xFFFF'FFFF'0000'0001ull, 42);
  q.qos = 2;
  q.retain = true;
  q.subscription_ids = {1, 268435455};
  q.state = QueueState::kReleased;
  q.packet_id = 65535;
  q.dup = true;
  return q;
}

InboundQos2 full_inbound() { return {"c1", 7, 9}; }

RetainedRecord full_retained() {
  RetainedRecord r;
  r.message = full_message();
  r.message.id = 0;
  return r;
}

// Every record kind as (key, value), for the truncation and garbage tests.
std::vector<std::pair<std::string, std::string>> encoded_records() {
  std::vector<std::pair<std::string, std::string>> out;
  auto add = [&](std::string key, const auto& r) {
    std::string v;
    encode_value(r, v);
    out.emplace_back(std::move(key), std::move(v));
  };
  add(message_key(full_message().id), full_message());
  add(message_key(1), message(1));
  add(session_key(full_session().client_id), full_session());
  SessionRecord minimal;
  minimal.client_id = "m";
  add(session_key("m"), minimal);
  add(queue_key("c1", full_entry().seq), full_entry());
  add(queue_key("c1", 1), entry("c1", 1, 1));
  add(inbound_key("c1", 7), full_inbound());
  add(retained_key(full_retained().message.topic), full_retained());
  return out;
}

// Decodes (key, value) as whatever kind the key says; true when it decodes.
bool decodes(std::string_view key, std::string_view value) {
  if (key.empty()) return false;
  switch (static_cast<Kind>(static_cast<std::uint8_t>(key[0]))) {
    case Kind::kMessage: {
      MessageRecord r;
      return !decode(key, value, r);
    }
    case Kind::kSession: {
      SessionRecord r;
      return !decode(key, value, r);
    }
    case Kind::kQueue: {
      QueueEntry r;
      return !decode(key, value, r);
    }
    case Kind::kInbound: {
      InboundQos2 r;
      return !decode(key, value, r);
    }
    case Kind::kRetained: {
      RetainedRecord r;
      return !decode(key, value, r);
    }
    default: return false;
  }
}

template <typename Record>
void expect_round_trip(const Record& r, const std::string& key) {
  std::string v;
  encode_value(r, v);
  Record back;
  auto e = decode(key, v, back);
  ASSERT_FALSE(e) << e.what;
  EXPECT_EQ(back, r);
  EXPECT_TRUE(valid(r));
}

TEST(Store, RecordsRoundTrip) {
  expect_round_trip(full_message(), message_key(full_message().id));
  expect_round_trip(message(1, ""), message_key(1));
  expect_round_trip(full_session(), session_key(full_session().client_id));
  SessionRecord minimal;
  minimal.client_id = "m";
  minimal.version = Version::kV31;
  expect_round_trip(minimal, session_key("m"));
  expect_round_trip(full_entry(), queue_key("c1", full_entry().seq));
  expect_round_trip(entry("c1", 0, 1), queue_key("c1", 0));
  expect_round_trip(full_inbound(), inbound_key("c1", 7));
  expect_round_trip(InboundQos2{"c1", 1, 0}, inbound_key("c1", 1));
  expect_round_trip(full_retained(), retained_key(full_retained().message.topic));

  std::string v;
  encode_format_version(kFormatVersion, v);
  std::uint32_t version = 0;
  EXPECT_FALSE(decode_format_version(v, version));
  EXPECT_EQ(version, kFormatVersion);
}

TEST(Store, KeysKeepASessionsEntriesContiguousAndOrdered) {
  // Big-endian sequence numbers: 255 < 256 < 2^40 in key order too.
  EXPECT_LT(queue_key("a", 255), queue_key("a", 256));
  EXPECT_LT(queue_key("a", 256), queue_key("a", 1ull << 40));
  // The length prefix keeps "a" and "ab" apart: every key of "a" lies inside its prefix range.
  const std::string lo = queue_prefix("a"), hi = prefix_end(lo);
  for (std::uint64_t seq : {0ull, 1ull, ~0ull}) {
    EXPECT_GE(queue_key("a", seq), lo);
    EXPECT_LT(queue_key("a", seq), hi);
    EXPECT_FALSE(queue_key("ab", seq) >= lo && queue_key("ab", seq) < hi);
  }
  EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
}

TEST(Store, DecoderRejectsEveryTruncation) {
  for (const auto& [key, value] : encoded_records()) {
    ASSERT_TRUE(decodes(key, value)) << key;
    for (std::size_t n = 0; n < value.size(); ++n) {
      EXPECT_FALSE(decodes(key, value.substr(0, n))) << "value of " << key << " cut to " << n;
    }
    EXPECT_FALSE(decodes(key, value + '\0')) << "trailing byte after " << key;
    // Keys with a fixed suffix (id, sequence, packet id) must not decode cut either.
    const auto kind = static_cast<Kind>(static_cast<std::uint8_t>(key[0]));
    if (kind == Kind::kMessage || kind == Kind::kQueue || kind == Kind::kInbound) {
      for (std::size_t n = 0; n < key.size(); ++n) {
        EXPECT_FALSE(decodes(key.substr(0, n), value)) << "key " << key << " cut to " << n;
      }
    }
  }
}

TEST(Store, DecoderRejectsBadFields) {
  auto bad_message = [](auto change) {
    MessageRecord m = message(1);
    change(m);
    std::string v;
    encode_value(m, v);
    MessageRecord back;
    return static_cast<bool>(decode(message_key(1), v, back));
  };
  EXPECT_TRUE(bad_message([](MessageRecord& m) { m.qos = 3; }));
  EXPECT_TRUE(bad_message([](MessageRecord& m) { m.topic = "a/#"; }));
  EXPECT_TRUE(bad_message([](MessageRecord& m) { m.topic = ""; }));
  EXPECT_TRUE(bad_message([](MessageRecord& m) { m.topic = "bad\xc0\xaf"; }));
  EXPECT_TRUE(bad_message([](MessageRecord& m) { m.props.topic_alias = 1; }));
  EXPECT_TRUE(bad_message([](MessageRecord& m) { m.props.subscription_ids = {1}; }));
  EXPECT_TRUE(bad_message([](MessageRecord& m) { m.props.payload_format = 2; }));
  EXPECT_FALSE(bad_message([](MessageRecord&) {}));
  {
    MessageRecord back;
    EXPECT_TRUE(decode(message_key(0), std::string("\x01\x00\x00\x01t\x00\x00\x00\x00\x00\x00\x00", 12), back));
  }

  auto bad_session = [](auto change) {
    SessionRecord s = full_session();
    change(s);
    std::string v;
    encode_value(s, v);
    SessionRecord back;
    return static_cast<bool>(decode(session_key(s.client_id), v, back));
  };
  EXPECT_TRUE(bad_session([](SessionRecord& s) { s.subscriptions.push_back(s.subscriptions[0]); }));
  EXPECT_TRUE(bad_session([](SessionRecord& s) { s.subscriptions[0].filter = "a/#/b"; }));
  EXPECT_TRUE(bad_session([](SessionRecord& s) { s.subscriptions[0].filter = "$share//a"; }));
  EXPECT_TRUE(bad_session([](SessionRecord& s) { s.subscriptions[0].filter = "$share/g+/a"; }));
  EXPECT_TRUE(bad_session([](SessionRecord& s) { s.subscriptions[0].retain_handling = 3; }));
  EXPECT_TRUE(bad_session([](SessionRecord& s) { s.subscriptions[0].subscription_id = 268435456; }));
  EXPECT_TRUE(bad_session([](SessionRecord& s) { s.version = static_cast<Version>(6); }));
  EXPECT_TRUE(bad_session([](SessionRecord& s) { s.will->topic = "+"; }));
  EXPECT_TRUE(bad_session([](SessionRecord& s) { s.will->props.will_delay = 5; }));
  {
    std::string v;
    encode_value(full_session(), v);
    SessionRecord back;
    EXPECT_TRUE(decode(session_key(""), v, back));
  }

  auto bad_entry = [](auto change) {
    QueueEntry q = entry("c", 1, 1);
    change(q);
    std::string v;
    encode_value(q, v);
    QueueEntry back;
    return static_cast<bool>(decode(queue_key("c", 1), v, back));
  };
  EXPECT_TRUE(bad_entry([](QueueEntry& q) { q.message_id = 0; }));
  EXPECT_TRUE(bad_entry([](QueueEntry& q) { q.packet_id = 5; }));  // queued with a packet id
  EXPECT_TRUE(bad_entry([](QueueEntry& q) { q.state = QueueState::kSent; }));  // sent without one
  EXPECT_TRUE(bad_entry([](QueueEntry& q) {
    q.state = QueueState::kReleased;
    q.packet_id = 1;  // released at QoS 1
  }));
  EXPECT_TRUE(bad_entry([](QueueEntry& q) { q.subscription_ids = {0}; }));
  EXPECT_FALSE(bad_entry([](QueueEntry& q) {
    q.state = QueueState::kSent;
    q.packet_id = 1;
  }));
  {
    InboundQos2 back;
    std::string v;
    encode_value(InboundQos2{"c", 1, 0}, v);
    EXPECT_TRUE(decode(inbound_key("c", 0), v, back));
  }
  {
    RetainedRecord back;
    std::string v;
    encode_value(full_retained(), v);
    EXPECT_TRUE(decode(retained_key("other/topic"), v, back));
  }
  std::uint32_t version = 0;
  EXPECT_TRUE(decode_format_version("mosquitto\x00\x00\x00\x01", version));
}

TEST(Store, DecoderSurvivesGarbage) {
  std::mt19937_64 rng(12345);
  const auto records = encoded_records();
  std::size_t accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    const auto& [key, value] = records[static_cast<std::size_t>(i) % records.size()];
    std::string v;
    if (i % 2 == 0) {
      // Random bytes after a valid version byte.
      v.push_back('\x01');
      const std::size_t n = rng() % 64;
      for (std::size_t k = 0; k < n; ++k) v.push_back(static_cast<char>(rng()));
    } else {
      // A valid value with a few bytes flipped.
      v = value;
      for (int k = 0; k < 3; ++k) v[rng() % v.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    if (decodes(key, v)) ++accepted;  // must not crash; a flipped payload byte may still decode
  }
  EXPECT_LT(accepted, 20000u / 2);
}

// Collects what load() hands over, in order.
struct Collect : Visitor {
  std::vector<std::string> calls;
  std::vector<MessageRecord> messages;
  std::vector<SessionRecord> sessions;
  std::vector<QueueEntry> entries;
  std::vector<InboundQos2> inbound_ids;
  std::vector<RetainedRecord> retained_msgs;
  void message(MessageRecord&& m) override {
    calls.push_back("M");
    messages.push_back(std::move(m));
  }
  void session(SessionRecord&& s) override {
    calls.push_back("S");
    sessions.push_back(std::move(s));
  }
  void queue_entry(QueueEntry&& e) override {
    calls.push_back("Q");
    entries.push_back(std::move(e));
  }
  void inbound(InboundQos2&& i) override {
    calls.push_back("I");
    inbound_ids.push_back(std::move(i));
  }
  void retained(RetainedRecord&& r) override {
    calls.push_back("R");
    retained_msgs.push_back(std::move(r));
  }
};

std::unique_ptr<Store> open_store(const Options& o) {
  std::string error;
  auto s = Store::open(o, error);
  EXPECT_TRUE(s) << error;
  return s;
}

Options opts(const std::string& path, Options::Mode mode = Options::Mode::kSync) {
  Options o;
  o.path = path;
  o.mode = mode;
  return o;
}

// A store reopened and loaded: what the visitor saw and the counts (ok false with error otherwise).
struct Loaded {
  std::unique_ptr<Store> st;
  Collect c;
  LoadCounts counts;
  std::string error;
  bool ok = false;
};
Loaded reload(const std::string& path) {
  Loaded l;
  l.st = open_store(opts(path));
  if (l.st) l.ok = l.st->load(l.c, l.error, &l.counts);
  return l;
}

SessionRecord session(const std::string& id) {
  SessionRecord s;
  s.client_id = id;
  s.version = Version::kV5;
  s.expiry_interval = 3600;
  s.subscriptions = {{"t/#", 1, false, false, 0, 0}};
  return s;
}

TEST(Store, RestartKeepsEverythingAndLoadsInOrder) {
  TempDir dir;
  const auto path = dir.sub("db");
  {
    auto st = open_store(opts(path));
    ASSERT_TRUE(st);
    Batch b;
    b.put(full_session());
    b.put(session("b"));
    b.put(session("a"));
    for (std::uint64_t id = 1; id <= 4; ++id) b.put(message(id));
    b.put(message(99));  // referenced by nothing: deleted at recovery
    // Inserted out of order; 256 after 3 only if sequence numbers sort as numbers.
    b.put(entry("b", 256, 1));
    b.put(entry("b", 3, 2));
    b.put(entry("a", 2, 3));
    b.put(entry("a", 1, 1));
    b.put(InboundQos2{"a", 10, 0});
    b.put(InboundQos2{"b", 11, 4});
    b.put(full_retained());
    EXPECT_EQ(st->write(std::move(b)), Status::kOk);
    Batch e;
    e.put(session("gone"));
    e.put(entry("gone", 1, 1));
    EXPECT_EQ(st->write(std::move(e)), Status::kOk);
    Batch del;
    del.erase_session_state("gone");
    EXPECT_EQ(st->write(std::move(del)), Status::kOk);
    EXPECT_EQ(st->counters().syncs, st->counters().writes);
  }
  {
    auto l = reload(path);
    ASSERT_TRUE(l.ok) << l.error;
    auto& c = l.c;
    auto& counts = l.counts;
    EXPECT_EQ(counts.messages, 4u);
    EXPECT_EQ(counts.unreferenced_deleted, 1u);
    std::vector<std::string> kinds;
    for (const auto& k : c.calls) {
      if (kinds.empty() || kinds.back() != k) kinds.push_back(k);
    }
    EXPECT_EQ(kinds, (std::vector<std::string>{"M", "S", "Q", "I", "R"}));
    ASSERT_EQ(c.messages.size(), 4u);
    EXPECT_EQ(c.messages[0], message(1));
    ASSERT_EQ(c.sessions.size(), 3u);
    EXPECT_EQ(c.sessions[0].client_id, "a");
    EXPECT_EQ(c.sessions[2], full_session());
    ASSERT_EQ(c.entries.size(), 4u);
    EXPECT_EQ(c.entries[0], entry("a", 1, 1));
    EXPECT_EQ(c.entries[1], entry("a", 2, 3));
    EXPECT_EQ(c.entries[2], entry("b", 3, 2));
    EXPECT_EQ(c.entries[3], entry("b", 256, 1));
    ASSERT_EQ(c.inbound_ids.size(), 2u);
    EXPECT_EQ(c.inbound_ids[1], (InboundQos2{"b", 11, 4}));
    ASSERT_EQ(c.retained_msgs.size(), 1u);
    EXPECT_EQ(c.retained_msgs[0], full_retained());
  }
  {
    auto st = open_store(opts(path));
    Collect c;
    std::string error;
    LoadCounts counts;
    ASSERT_TRUE(st->load(c, error, &counts)) << error;
    EXPECT_EQ(counts.unreferenced_deleted, 0u);
  }
  auto report = check(path);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.format_version, kFormatVersion);
  EXPECT_EQ(report.messages, 4u);
  EXPECT_EQ(report.sessions, 3u);
  EXPECT_EQ(report.queue_entries, 4u);
  EXPECT_EQ(report.inbound, 2u);
  EXPECT_EQ(report.retained, 1u);
  std::ostringstream out;
  std::string error;
  ASSERT_TRUE(dump(path, out, error)) << error;
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1 + 4 + 3 + 4 + 2 + 1);
  EXPECT_NE(text.find("format-version 1\n"), std::string::npos);
  EXPECT_NE(text.find("queue client=\"b\" seq=256 message=1 qos=1"), std::string::npos);
  EXPECT_NE(text.find("$share/group/x/#"), std::string::npos);
  EXPECT_EQ(text.find("bad "), std::string::npos);
}

// Orphans: queue entries and inbound ids whose session or message is not stored. The broker can
// leave them after a crash (a session's state erased while another worker's batch put an entry for
// it); load() skips and deletes them, and the messages only they referred to.
TEST(Store, OrphansAreSkippedAndDeletedAtLoad) {
  TempDir dir;
  const auto path = dir.sub("db");
  {
    auto st = open_store(opts(path));
    ASSERT_TRUE(st);
    Batch b;
    b.put(session("a"));
    b.put(message(1));
    b.put(message(2));
    b.put(message(5));
    b.put(entry("a", 1, 1));
    b.put(entry("a", 2, 999));       // message not stored
    b.put(entry("gone", 1, 2));      // session not stored; message 2 referenced by nothing else
    b.put(InboundQos2{"a", 10, 0});
    b.put(InboundQos2{"a", 11, 998});   // message not stored
    b.put(InboundQos2{"gone", 12, 0});  // session not stored
    b.put(InboundQos2{"gone", 13, 5});  // session not stored; message 5 referenced by nothing else
    ASSERT_EQ(st->write(std::move(b)), Status::kOk);
  }
  auto before = check(path);
  EXPECT_TRUE(before.ok) << before.problem;
  EXPECT_EQ(before.orphans, 5u);
  EXPECT_EQ(before.unreferenced, 2u);
  EXPECT_EQ(before.messages, 3u);
  EXPECT_EQ(before.sessions, 1u);
  EXPECT_EQ(before.queue_entries, 3u);
  EXPECT_EQ(before.inbound, 4u);
  {
    auto l = reload(path);
    ASSERT_TRUE(l.ok) << l.error;
    auto& c = l.c;
    auto& counts = l.counts;
    EXPECT_EQ(counts.orphans_deleted, 5u);
    EXPECT_EQ(counts.unreferenced_deleted, 2u);
    EXPECT_EQ(counts.messages, 1u);
    EXPECT_EQ(counts.sessions, 1u);
    EXPECT_EQ(counts.queue_entries, 1u);
    EXPECT_EQ(counts.inbound, 1u);
    ASSERT_EQ(c.messages.size(), 1u);
    EXPECT_EQ(c.messages[0], message(1));
    EXPECT_EQ(c.entries, (std::vector<QueueEntry>{entry("a", 1, 1)}));
    EXPECT_EQ(c.inbound_ids, (std::vector<InboundQos2>{{"a", 10, 0}}));
  }
  {
    auto l = reload(path);
    ASSERT_TRUE(l.ok) << l.error;
    auto& c = l.c;
    auto& counts = l.counts;
    EXPECT_EQ(counts.orphans_deleted, 0u) << "deleted by the first load";
    EXPECT_EQ(counts.unreferenced_deleted, 0u);
    EXPECT_EQ(c.entries.size(), 1u);
    EXPECT_EQ(c.inbound_ids.size(), 1u);
  }
  auto after = check(path);
  EXPECT_TRUE(after.ok) << after.problem;
  EXPECT_EQ(after.orphans, 0u);
  EXPECT_EQ(after.unreferenced, 0u);
  EXPECT_EQ(after.queue_entries, 1u);
  EXPECT_EQ(after.inbound, 1u);
  std::ostringstream out;
  std::string error;
  ASSERT_TRUE(dump(path, out, error)) << error;
  EXPECT_EQ(out.str().find("gone"), std::string::npos) << out.str();
  EXPECT_EQ(out.str().find("=99"), std::string::npos) << out.str();
}

TEST(Store, MessageReferencedOnlyByAnOrphanIsDeleted) {
  TempDir dir;
  const auto path = dir.sub("db");
  {
    auto st = open_store(opts(path));
    ASSERT_TRUE(st);
    Batch b;
    b.put(session("a"));
    b.put(session("b"));
    b.put(message(7));
    b.put(message(8));
    b.put(entry("a", 1, 8));
    ASSERT_EQ(st->write(std::move(b)), Status::kOk);
    // Session "b" ends on one worker while another worker's batch queues to it: the entries land
    // after the range deletion and outlive their session.
    Batch end;
    end.erase_session_state("b");
    ASSERT_EQ(st->write(std::move(end)), Status::kOk);
    Batch late;
    late.put(entry("b", 1, 7));
    late.put(entry("b", 2, 8));
    ASSERT_EQ(st->write(std::move(late)), Status::kOk);
  }
  auto report = check(path);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.orphans, 2u);
  EXPECT_EQ(report.unreferenced, 1u);
  {
    auto st = open_store(opts(path));
    Collect c;
    std::string error;
    LoadCounts counts;
    ASSERT_TRUE(st->load(c, error, &counts)) << error;
    EXPECT_EQ(counts.orphans_deleted, 2u);
    EXPECT_EQ(counts.unreferenced_deleted, 1u);
    ASSERT_EQ(c.messages.size(), 1u);
    EXPECT_EQ(c.messages[0].id, 8u) << "still referenced by a's entry";
    EXPECT_EQ(c.entries, (std::vector<QueueEntry>{entry("a", 1, 8)}));
  }
  report = check(path);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.messages, 1u);
  EXPECT_EQ(report.queue_entries, 1u);
  EXPECT_EQ(report.orphans, 0u);
  EXPECT_EQ(report.unreferenced, 0u);
}

// Orphans are tolerated; damage is not: a record that does not decode or a key of no known kind
// still fails load() and check().
TEST(Store, LoadRefusesRecordsThatDoNotDecodeAndUnknownKinds) {
  TempDir dir;
  for (const std::string& key : {queue_key("a", 1), std::string("Zzz")}) {
    const auto path = dir.sub(key == "Zzz" ? "unknown" : "garbage");
    {
      auto st = open_store(opts(path));
      ASSERT_TRUE(st);
      Batch b;
      b.put(session("a"));
      b.put(message(1));
      ASSERT_EQ(st->write(std::move(b)), Status::kOk);
    }
    {
      rocksdb::DB* db = nullptr;
      ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), path, &db).ok());
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, std::string("\x01garbage")).ok());
      delete db;
    }
    EXPECT_FALSE(check(path).ok) << key;
    auto st = open_store(opts(path));
    ASSERT_TRUE(st);
    Collect c;
    std::string error;
    EXPECT_FALSE(st->load(c, error)) << key;
    EXPECT_NE(error.find("at key"), std::string::npos) << error;
  }
}

TEST(Store, GroupCommitKeepsOrderWithFewerSyncsThanBatches) {
  TempDir dir;
  auto st = open_store(opts(dir.sub("db")));
  ASSERT_TRUE(st);
  ASSERT_EQ(st->write([] {
    Batch b;
    b.put(session("c"));
    return b;
  }()),
            Status::kOk);
  constexpr int kThreads = 4, kPerThread = 500;
  std::mutex order_mu;  // makes the submission order known
  std::vector<int> submitted, completed;
  std::mutex done_mu;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int n = t * kPerThread + i;
        Batch b;
        b.put(message(static_cast<std::uint64_t>(n + 1), std::string(64, 'x')));
        b.put(entry("c", static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(n + 1)));
        std::lock_guard lock(order_mu);
        submitted.push_back(n);
        st->submit(std::move(b), [&, n](Status s) {
          if (s == Status::kOk) ok.fetch_add(1);
          std::lock_guard dl(done_mu);
          completed.push_back(n);
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  st->close();  // drains
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(completed, submitted);
  const auto c = st->counters();
  EXPECT_EQ(c.batches, static_cast<std::uint64_t>(kThreads * kPerThread + 1));
  EXPECT_EQ(c.records, static_cast<std::uint64_t>(kThreads * kPerThread * 2 + 1));
  EXPECT_LT(c.syncs, c.batches);
  EXPECT_EQ(c.syncs, c.writes);
  EXPECT_GT(c.batches_per_sync(), 1.0);
  // After close: refused at once, on the caller's thread.
  Status late = Status::kOk;
  st->submit(Batch{}, [&](Status s) { late = s; });
  EXPECT_EQ(late, Status::kClosed);
}

TEST(Store, BatchedModeSyncsOncePerWindow) {
  TempDir dir;
  auto o = opts(dir.sub("db"), Options::Mode::kBatched);
  o.batch_window = std::chrono::milliseconds(20);
  auto st = open_store(o);
  ASSERT_TRUE(st);
  for (int i = 0; i < 50; ++i) {
    Batch b;
    b.put(RetainedRecord{message(0)});
    ASSERT_EQ(st->write(std::move(b)), Status::kOk);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto c = st->counters();
  EXPECT_EQ(c.batches, 50u);
  EXPECT_GE(c.syncs, 1u);  // the window passed after the last write
  EXPECT_LT(c.syncs, 50u);
}

TEST(Store, RefusesForeignAndNewerStores) {
  TempDir dir;
  std::string error;
  // Files that are not RocksDB's.
  fs::create_directories(dir.sub("files"));
  std::ofstream(dir.sub("files/mosquitto.db")) << "not ours";
  EXPECT_FALSE(Store::open(opts(dir.sub("files")), error));
  EXPECT_NE(error.find("not a Tern store"), std::string::npos) << error;
  EXPECT_TRUE(fs::exists(dir.sub("files/mosquitto.db")));
  // A RocksDB database of someone else.
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir.sub("foreign"), &db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "user:1", "alice").ok());
    delete db;
  }
  error.clear();
  EXPECT_FALSE(Store::open(opts(dir.sub("foreign")), error));
  EXPECT_NE(error.find("not a Tern store"), std::string::npos) << error;
  EXPECT_FALSE(check(dir.sub("foreign")).ok);
  {
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir.sub("foreign"), &db).ok());
    std::string v;
    EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), "user:1", &v).ok());  // left as it was
    delete db;
  }
  // A Tern store of a newer format.
  { ASSERT_TRUE(open_store(opts(dir.sub("newer")))); }
  {
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir.sub("newer"), &db).ok());
    std::string v;
    encode_format_version(kFormatVersion + 1, v);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), format_version_key(), v).ok());
    delete db;
  }
  error.clear();
  EXPECT_FALSE(Store::open(opts(dir.sub("newer")), error));
  EXPECT_NE(error.find("newer"), std::string::npos) << error;
  EXPECT_FALSE(check(dir.sub("newer")).ok);
  // A fresh store gets the version key and opens again.
  { ASSERT_TRUE(open_store(opts(dir.sub("fresh")))); }
  EXPECT_TRUE(open_store(opts(dir.sub("fresh"))));
  auto report = check(dir.sub("fresh"));
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.format_version, kFormatVersion);
  EXPECT_FALSE(check(dir.sub("missing")).ok);
}

// Writes batch `seq` (a message and its queue entry, plus the session again so that any prefix of
// the batches loads) and records its outcome.
Batch numbered(std::uint64_t seq) {
  Batch b;
  b.put(session("c"));
  b.put(message(seq, std::string(64, 'p')));
  b.put(entry("c", seq, seq));
  return b;
}

std::set<std::uint64_t> loaded_seqs(const std::string& path) {
  std::set<std::uint64_t> out;
  auto st = open_store(opts(path));
  if (!st) return out;
  Collect c;
  std::string error;
  EXPECT_TRUE(st->load(c, error)) << error;
  for (const auto& e : c.entries) out.insert(e.seq);
  return out;
}

fs::path newest_wal(const std::string& path) {
  fs::path best;
  for (const auto& f : fs::directory_iterator(path)) {
    if (f.path().extension() == ".log" && (best.empty() || f.path().filename() > best.filename())) best = f.path();
  }
  return best;
}

TEST(Store, TornLastWalRecordIsDroppedAndTheRestRecovers) {
  TempDir dir;
  const auto path = dir.sub("db");
  auto o = opts(path);
  o.track_syncs = true;
  o.sync_manifest = dir.sub("manifest");
  auto st = open_store(o);
  ASSERT_TRUE(st);
  for (std::uint64_t seq = 1; seq <= 5; ++seq) ASSERT_EQ(st->write(numbered(seq)), Status::kOk);
  // A crash: nothing more reaches the disk, and the memtable is never flushed.
  st->sync_tracker()->cut();
  st.reset();
  const auto wal = newest_wal(path);
  ASSERT_FALSE(wal.empty());
  const auto size = fs::file_size(wal);
  ASSERT_GT(size, 10u);
  fs::resize_file(wal, size - 3);
  EXPECT_EQ(loaded_seqs(path), (std::set<std::uint64_t>{1, 2, 3, 4}));
}

TEST(Store, SizeBoundRefusesAndRecovers) {
  TempDir dir;
  auto o = opts(dir.sub("db"));
  o.max_bytes = 512 * 1024;
  auto st = open_store(o);
  ASSERT_TRUE(st);
  ASSERT_LT(st->approximate_size(), o.max_bytes);
  EXPECT_FALSE(st->full());
  ASSERT_EQ(st->write([] {
    Batch b;
    b.put(session("c"));
    return b;
  }()),
            Status::kOk);
  std::uint64_t seq = 0;
  Status s = Status::kOk;
  while (s == Status::kOk && seq < 10000) {
    Batch b;
    for (int i = 0; i < 8; ++i) {
      ++seq;
      b.put(message(seq, std::string(1024, 'x')));
      b.put(entry("c", seq, seq));
    }
    s = st->write(std::move(b));
  }
  ASSERT_EQ(s, Status::kFull);
  EXPECT_TRUE(st->full());
  EXPECT_GE(st->approximate_size(), o.max_bytes);
  EXPECT_LT(st->approximate_size(), o.max_bytes + 64 * 1024);  // one batch beyond at most
  EXPECT_GE(st->counters().full, 1u);
  // At the bound: puts are refused, progress marked allow_at_bound and erases are not.
  Batch more;
  more.put(message(seq + 1));
  EXPECT_EQ(st->write(std::move(more)), Status::kFull);
  Batch progress;
  QueueEntry sent = entry("c", 1, 1);
  sent.state = QueueState::kSent;
  sent.packet_id = 1;
  progress.put(sent);
  progress.allow_at_bound();
  EXPECT_EQ(st->write(std::move(progress)), Status::kOk);
  EXPECT_TRUE(st->full()) << "a write at the bound does not end it";
  // Delivered and acknowledged: everything erased; compaction brings the store under the bound.
  Batch erase;
  for (std::uint64_t i = 1; i <= seq; ++i) {
    erase.erase_queue_entry("c", i);
    erase.erase_message(i);
  }
  EXPECT_EQ(st->write(std::move(erase)), Status::kOk);
  Status again = Status::kFull;
  for (int i = 0; i < 100 && again != Status::kOk; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Batch b;
    b.put(message(seq + 2));
    b.put(entry("c", seq + 2, seq + 2));
    again = st->write(std::move(b));
  }
  EXPECT_EQ(again, Status::kOk);
  EXPECT_LT(st->approximate_size(), o.max_bytes);
  EXPECT_FALSE(st->full());
}

TEST(Store, FullDiskRefusesAndRecoversWhenSpaceReturns) {
  TempDir dir;
  const auto path = dir.sub("db");
  auto o = opts(path);
  o.track_syncs = true;
  o.sync_manifest = dir.sub("manifest");
  {
    auto st = open_store(o);
    ASSERT_TRUE(st);
    ASSERT_EQ(st->write(numbered(1)), Status::kOk);
    EXPECT_FALSE(st->full());
    st->sync_tracker()->set_no_space(true);
    EXPECT_EQ(st->write(numbered(2)), Status::kFull);
    EXPECT_TRUE(st->full());
    EXPECT_EQ(st->write(numbered(3)), Status::kFull);
    EXPECT_TRUE(st->full());
    st->sync_tracker()->set_no_space(false);
    // The store recovers by itself: the first batches after space returns may still fail while
    // RocksDB's recovery runs, never for long.
    Status s = Status::kFull;
    for (int i = 0; i < 100 && s != Status::kOk; ++i) {
      if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      s = st->write(numbered(4));
    }
    EXPECT_EQ(s, Status::kOk);
    EXPECT_FALSE(st->full());
    EXPECT_EQ(st->write(numbered(5)), Status::kOk);
    EXPECT_GE(st->counters().full, 2u);
  }
  EXPECT_EQ(loaded_seqs(path), (std::set<std::uint64_t>{1, 4, 5}));
}

// A broker stops submitting puts while full() is true: the store must find space again by itself.
TEST(Store, FullClearsWithoutSubmissionsWhenSpaceReturns) {
  TempDir dir;
  auto o = opts(dir.sub("db"));
  o.track_syncs = true;
  o.sync_manifest = dir.sub("manifest");
  auto st = open_store(o);
  ASSERT_TRUE(st);
  ASSERT_EQ(st->write(numbered(1)), Status::kOk);
  st->sync_tracker()->set_no_space(true);
  ASSERT_EQ(st->write(numbered(2)), Status::kFull);
  EXPECT_TRUE(st->full());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // idle retries while still full
  EXPECT_TRUE(st->full());
  st->sync_tracker()->set_no_space(false);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (st->full() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(st->full()) << "no recovery without submissions";
  EXPECT_EQ(st->write(numbered(3)), Status::kOk);
}

// Submits numbered batches without waiting, cuts the power in the middle of the flow, and returns
// the batches whose completion said kOk and those present after recovery.
struct CutResult {
  std::set<std::uint64_t> acked, recovered;
};

CutResult power_cut_run(Options::Mode mode, std::chrono::milliseconds window) {
  TempDir dir;
  const auto path = dir.sub("db");
  auto o = opts(path, mode);
  o.batch_window = window;
  o.track_syncs = true;
  o.sync_manifest = dir.sub("manifest");
  CutResult r;
  std::mutex mu;
  {
    auto st = open_store(o);
    if (!st) return r;
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      for (std::uint64_t seq = 1; seq <= 20000 && !stop.load(); ++seq) {
        st->submit(numbered(seq), [&, seq](Status s) {
          if (s != Status::kOk) return;
          std::lock_guard lock(mu);
          r.acked.insert(seq);
        });
        if (seq % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
    for (int i = 0; i < 2000; ++i) {
      {
        std::lock_guard lock(mu);
        if (r.acked.size() >= 300) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    st->sync_tracker()->cut();  // the power goes while batches are still being submitted
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stop = true;
    writer.join();
    EXPECT_EQ(st->sync_tracker()->manifest_error(), "");
    st.reset();  // no graceful stop reaches the disk
  }
  std::string error;
  EXPECT_TRUE(simulate_power_cut(path, dir.sub("manifest"), error)) << error;
  r.recovered = loaded_seqs(path);
  return r;
}

TEST(Store, PowerCutKeepsEveryAcknowledgedBatchInSyncMode) {
  auto r = power_cut_run(Options::Mode::kSync, std::chrono::milliseconds(10));
  ASSERT_GE(r.acked.size(), 300u);
  std::vector<std::uint64_t> lost;
  std::set_difference(r.acked.begin(), r.acked.end(), r.recovered.begin(), r.recovered.end(), std::back_inserter(lost));
  EXPECT_TRUE(lost.empty()) << lost.size() << " acknowledged batches lost, the first " << lost.front();
}

TEST(Store, PowerCutLosesAcknowledgedBatchesInBatchedModeWithALongWindow) {
  // The same test must be able to fail: batched mode acknowledges before the sync.
  auto r = power_cut_run(Options::Mode::kBatched, std::chrono::milliseconds(60000));
  ASSERT_GE(r.acked.size(), 300u);
  std::vector<std::uint64_t> lost;
  std::set_difference(r.acked.begin(), r.acked.end(), r.recovered.begin(), r.recovered.end(), std::back_inserter(lost));
  EXPECT_FALSE(lost.empty());
}

}  // namespace

// Measurements for docs/store.md, not run by default:
//   tern_unit_tests --gtest_also_run_disabled_tests --gtest_filter='Store.DISABLED_*'
// TERN_STORE_BENCH_DIR picks the file system (default /tmp).
std::string bench_dir() {
  const char* d = std::getenv("TERN_STORE_BENCH_DIR");
  return d ? d : "/tmp";
}

TEST(Store, DISABLED_FdatasyncCost) {
  const std::string path = bench_dir() + "/tern-fdatasync-" + std::to_string(::getpid());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  const std::string record(64, 'r');
  std::vector<double> us;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(::write(fd, record.data(), record.size()), static_cast<ssize_t>(record.size()));
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(::fdatasync(fd), 0);
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  ::close(fd);
  ::unlink(path.c_str());
  std::sort(us.begin(), us.end());
  std::printf("fdatasync after a 64-byte append, 1000 times in %s: median %.1f us, p90 %.1f us, p99 %.1f us\n",
              bench_dir().c_str(), us[500], us[900], us[990]);
}

TEST(Store, DISABLED_SyncThroughput) {
  char tmpl[256];
  std::snprintf(tmpl, sizeof tmpl, "%s/tern-store-bench-XXXXXX", bench_dir().c_str());
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  {
    auto st = open_store(opts(dir + "/db"));
    ASSERT_TRUE(st);
    ASSERT_EQ(st->write([] {
      Batch b;
      b.put(session("sub"));
      return b;
    }()),
              Status::kOk);
    const auto before = st->counters();
    // Two submitting threads (two broker workers), each with up to 1000 batches outstanding
    // (TERN_STORE_BENCH_WINDOW); a
    // batch is one QoS 1 message with a 64-byte payload queued to one persistent session.
    constexpr int kThreads = 2;
    const char* w = std::getenv("TERN_STORE_BENCH_WINDOW");
    const int kWindow = w ? std::atoi(w) : 1000;
    const auto duration = std::chrono::seconds(5);
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> next_id{1};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        std::mutex mu;
        std::condition_variable cv;
        int outstanding = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          {
            std::unique_lock lock(mu);
            cv.wait(lock, [&] { return outstanding < kWindow; });
            ++outstanding;
          }
          const std::uint64_t id = next_id.fetch_add(1);
          Batch b;
          b.put(message(id, std::string(64, 'x')));
          b.put(entry("sub", id, id));
          st->submit(std::move(b), [&](Status) {
            std::lock_guard lock(mu);
            --outstanding;
            cv.notify_one();
          });
        }
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return outstanding == 0; });
      });
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(duration);
    stop = true;
    for (auto& t : threads) t.join();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto c = st->counters();
    const double batches = static_cast<double>(c.batches - before.batches);
    const double records = static_cast<double>(c.records - before.records);
    const double syncs = static_cast<double>(c.syncs - before.syncs);
    std::printf("kSync, 2 threads, 64-byte messages: %.0f batches/s, %.0f records/s, %.0f syncs/s, "
                "%.1f batches (%.1f records) per sync\n",
                batches / secs, records / secs, syncs / secs, batches / syncs, records / syncs);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// A message that lands in one persistent session is stored inside its queue entry: one record, put
// once and erased once (a SingleDelete, so a flush drops both while the put is in the memtable).
TEST(Store, InlineMessageEntriesRoundTripLoadAndErase) {
  QueueEntry q = entry("solo", 7, 0);
  q.message = full_message();
  q.message->id = 0;
  q.subscription_ids = {3, 268435455};
  std::string v;
  encode_value(q, v);
  QueueEntry back;
  ASSERT_FALSE(decode(key_of(q), v, back));
  EXPECT_EQ(back, q);
  EXPECT_TRUE(back.inline_message());
  // Truncated inline message bodies are refused, never half-read.
  for (std::size_t n = 0; n < v.size(); ++n) {
    QueueEntry t;
    EXPECT_TRUE(decode(key_of(q), std::string_view(v).substr(0, n), t)) << "prefix of " << n << " bytes decoded";
  }

  TempDir dir;
  const auto path = dir.sub("db");
  {
    auto st = open_store(opts(path));
    Batch b;
    b.put(session("solo"));
    b.put(q);
    QueueEntry other = entry("solo", 8, 0);
    other.message = message(0, "second");
    b.put(other);
    ASSERT_EQ(st->write(std::move(b)), Status::kOk);
    Batch e;
    e.erase_queue_entry("solo", 8, true);
    ASSERT_EQ(st->write(std::move(e)), Status::kOk);
    st->close();
  }
  auto st = open_store(opts(path));
  Collect c;
  std::string error;
  LoadCounts counts;
  ASSERT_TRUE(st->load(c, error, &counts)) << error;
  ASSERT_EQ(c.entries.size(), 1u);
  EXPECT_EQ(c.entries[0], q);
  EXPECT_TRUE(c.messages.empty());
  EXPECT_EQ(counts.orphans_deleted, 0u);
  st->close();
  auto report = check(path);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.queue_entries, 1u);
}
