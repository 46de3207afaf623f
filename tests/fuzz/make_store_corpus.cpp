// Writes the seed corpus of fuzz_store_records with the store's own encoders (src/store/records.*),
// so the seeds are exactly what the store writes. Each record is checked with valid() first.
// Usage (fuzz preset): build/fuzz/tests/fuzz/make_store_corpus tests/fuzz/corpus/fuzz_store_records
// Seed layout (fuzz_store_records.cpp): byte 0 picks the decoder, byte 1 is the key's length, then the
// key, then the value.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "store/records.hpp"

namespace {

using namespace tern::store;

enum Decoder : char { kMessage = 0, kSession = 1, kQueue = 2, kInbound = 3, kRetained = 4, kFormat = 5 };

const char* g_dir = nullptr;

void write(const char* name, Decoder d, const std::string& key, const std::string& value) {
  if (key.size() > 255) {
    std::fprintf(stderr, "%s: key longer than 255 bytes\n", name);
    std::exit(1);
  }
  std::string seed;
  seed += static_cast<char>(d);
  seed += static_cast<char>(key.size());
  seed += key;
  seed += value;
  std::ofstream out(std::string(g_dir) + "/" + name, std::ios::binary | std::ios::trunc);
  out << seed;
  if (!out) {
    std::fprintf(stderr, "cannot write %s/%s\n", g_dir, name);
    std::exit(1);
  }
}

template <typename Record>
void record(const char* name, Decoder d, const Record& r) {
  if (!valid(r)) {
    std::fprintf(stderr, "%s: not a valid record\n", name);
    std::exit(1);
  }
  std::string value;
  encode_value(r, value);
  write(name, d, key_of(r), value);
}

tern::Properties publish_props() {
  tern::Properties p;
  p.payload_format = 1;
  p.message_expiry = 60;
  p.content_type = "text/plain";
  p.response_topic = "reply/to";
  p.correlation_data = std::string("\x00\x01", 2);
  p.user_properties.push_back({"k", "v"});
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
    return 2;
  }
  g_dir = argv[1];

  MessageRecord m;
  m.id = 1;
  m.topic = "a/b";
  m.payload = "hello";
  m.qos = 1;
  m.origin = "pub";
  record("message", kMessage, m);

  MessageRecord mp;
  mp.id = 0x8000000000000000ULL;
  mp.topic = "caf\xC3\xA9/x";
  mp.payload = std::string("\x00\xFF", 2);
  mp.qos = 2;
  mp.retain = true;
  mp.props = publish_props();
  mp.expiry = 1700000000123ULL;
  mp.origin = "pub-5";
  record("message_props", kMessage, mp);

  SessionRecord s;
  s.client_id = "client-1";
  s.version = tern::Version::kV5;
  s.expiry_interval = 3600;
  s.disconnected_at = 1700000000000ULL;
  s.subscriptions.push_back({"a/+/c", 1, true, false, 0, 0});
  s.subscriptions.push_back({"$share/g/x/#", 2, false, true, 2, 268435455});
  s.subscriptions.push_back({"#", 0, false, false, 1, 7});
  WillRecord w;
  w.topic = "will/t";
  w.payload = "gone";
  w.qos = 1;
  w.retain = true;
  w.props = publish_props();
  w.delay = 30;
  s.will = w;
  record("session", kSession, s);

  SessionRecord sm;
  sm.client_id = "m";
  sm.version = tern::Version::kV311;
  record("session_minimal", kSession, sm);

  SessionRecord s31;
  s31.client_id = "c31";
  s31.version = tern::Version::kV31;
  s31.expiry_interval = 0xFFFFFFFF;
  s31.subscriptions.push_back({"t/#", 2, false, false, 0, 0});
  record("session_v31", kSession, s31);

  QueueEntry q;
  q.client_id = "c1";
  q.seq = 1;
  q.message_id = 1;
  q.qos = 1;
  record("queue_queued", kQueue, q);

  QueueEntry qr;
  qr.client_id = "c1";
  qr.seq = 256;
  qr.message_id = 9;
  qr.qos = 2;
  qr.retain = true;
  qr.dup = true;
  qr.state = QueueState::kReleased;
  qr.packet_id = 7;
  qr.subscription_ids = {1, 268435455};
  record("queue_released", kQueue, qr);

  QueueEntry qi;
  qi.client_id = "c2";
  qi.seq = 3;
  qi.qos = 1;
  qi.state = QueueState::kSent;
  qi.packet_id = 12;
  qi.subscription_ids = {5};
  MessageRecord inline_msg = m;
  inline_msg.id = 0;
  inline_msg.props = publish_props();
  qi.message = inline_msg;
  record("queue_inline", kQueue, qi);

  InboundQos2 in;
  in.client_id = "c1";
  in.packet_id = 7;
  record("inbound", kInbound, in);

  InboundQos2 held;
  held.client_id = "c1";
  held.packet_id = 65535;
  held.message_id = 42;
  record("inbound_held", kInbound, held);

  RetainedRecord r;
  r.message.topic = "r/x";
  r.message.payload = "kept";
  r.message.qos = 1;
  r.message.retain = true;
  r.message.origin = "pub";
  record("retained", kRetained, r);

  std::string version;
  encode_format_version(kFormatVersion, version);
  write("format", kFormat, format_version_key(), version);
  return 0;
}
