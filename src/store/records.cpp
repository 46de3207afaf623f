#include "store/records.hpp"

#include <algorithm>

#include "codec/codec.hpp"
#include "core/topic.hpp"
#include "core/utf8.hpp"

namespace tern::store {

// Encodings, version 1 (integers big-endian; docs/store.md has the same tables):
//   format version  key 00 "format"            value "tern-store" u32 version
//   message         key 'M' u64 id             value 01 flags [u64 expiry] str16 topic str16 origin
//                                                    props u32+payload
//   retained        key 'R' topic              value as a message (the topic must equal the key's)
//   session         key 'S' client id          value 01 u8 protocol u32 expiry flags [u64 disconnected]
//                                                    u32 n, n x (str16 filter, u8 options, u32 sub id)
//                                                    [will: u8 flags str16 topic u32+payload props u32 delay]
//   queue entry     key 'Q' str16 client u64 seq   value 01 u64 message u8 flags u16 packet id
//                                                        u32 n, n x u32 subscription id
//   inbound QoS 2   key 'I' str16 client u16 id    value 01 u64 message (0 = none)
// "props" is an MQTT 5 property block (variable byte length, then properties) checked with the
// rules of a PUBLISH packet.
namespace {

constexpr std::uint8_t kRecordVersion = 1;
constexpr char kMagic[] = "tern-store";
constexpr std::size_t kMagicSize = sizeof kMagic - 1;
constexpr char kVersionKeyName[] = "format";
constexpr std::uint32_t kMaxSubscriptionId = 268435455;

void put_u8(std::string& o, std::uint8_t v) { o.push_back(static_cast<char>(v)); }
void put_u16(std::string& o, std::uint16_t v) {
  put_u8(o, static_cast<std::uint8_t>(v >> 8));
  put_u8(o, static_cast<std::uint8_t>(v));
}
void put_u32(std::string& o, std::uint32_t v) {
  put_u16(o, static_cast<std::uint16_t>(v >> 16));
  put_u16(o, static_cast<std::uint16_t>(v));
}
void put_u64(std::string& o, std::uint64_t v) {
  put_u32(o, static_cast<std::uint32_t>(v >> 32));
  put_u32(o, static_cast<std::uint32_t>(v));
}
void put_str16(std::string& o, std::string_view s) {
  put_u16(o, static_cast<std::uint16_t>(s.size()));
  o.append(s);
}
void put_str32(std::string& o, std::string_view s) {
  put_u32(o, static_cast<std::uint32_t>(s.size()));
  o.append(s);
}
void put_props(std::string& o, const Properties& p) {
  codec::encode_property_block(p, o);
}

// Reads from a bounded range; every read checks what is left first.
class Reader {
 public:
  explicit Reader(std::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}
  std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }
  bool u8(std::uint8_t& v) {
    if (left() < 1) return false;
    v = static_cast<std::uint8_t>(*p_++);
    return true;
  }
  bool u16(std::uint16_t& v) {
    if (left() < 2) return false;
    v = static_cast<std::uint16_t>((byte(0) << 8) | byte(1));
    p_ += 2;
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (left() < 4) return false;
    v = (std::uint32_t{byte(0)} << 24) | (std::uint32_t{byte(1)} << 16) | (std::uint32_t{byte(2)} << 8) | byte(3);
    p_ += 4;
    return true;
  }
  bool u64(std::uint64_t& v) {
    std::uint32_t hi = 0, lo = 0;
    if (left() < 8 || !u32(hi) || !u32(lo)) return false;
    v = (std::uint64_t{hi} << 32) | lo;
    return true;
  }
  bool bytes(std::size_t n, std::string_view& v) {
    if (left() < n) return false;
    v = std::string_view(p_, n);
    p_ += n;
    return true;
  }
  bool str16(std::string_view& v) {
    std::uint16_t n = 0;
    return u16(n) && bytes(n, v);
  }
  bool str32(std::string_view& v) {
    std::uint32_t n = 0;
    return u32(n) && bytes(n, v);
  }
  // An MQTT property block: its variable byte length is read here only to find where it ends; the
  // codec then decodes and checks it whole.
  RecordError props(Properties& out) {
    std::size_t len = 0;
    std::size_t i = 0;
    for (;; ++i) {
      if (i == 4) return {"property length longer than 4 bytes"};
      if (i >= left()) return {"truncated property block"};
      std::uint8_t b = static_cast<std::uint8_t>(p_[i]);
      len |= std::size_t{b & 0x7Fu} << (7 * i);
      if ((b & 0x80) == 0) break;
    }
    const std::size_t total = i + 1 + len;
    if (total > left()) return {"truncated property block"};
    if (auto e = codec::decode_publish_properties(reinterpret_cast<const std::uint8_t*>(p_), total, out)) {
      return {"invalid properties"};
    }
    p_ += total;
    return {};
  }

 private:
  unsigned byte(std::size_t i) const { return static_cast<unsigned char>(p_[i]); }
  const char* p_;
  const char* end_;
};

bool valid_client_id(std::string_view id) {
  return !id.empty() && id.size() <= 0xFFFF && valid_mqtt_utf8(id);
}

bool valid_topic(std::string_view t) { return t.size() <= 0xFFFF && valid_mqtt_utf8(t) && valid_topic_name(t); }

bool valid_filter(std::string_view f) {
  if (f.size() > 0xFFFF || !valid_mqtt_utf8(f)) return false;
  std::string_view name, inner;
  switch (parse_shared_subscription(f, name, inner)) {
    case SharedFilter::kNotShared: return valid_topic_filter(f);
    case SharedFilter::kShared: return valid_topic_filter(inner);
    case SharedFilter::kInvalid: return false;
  }
  return false;
}

// Properties a stored message may carry: those forwarded to subscribers. Topic aliases and
// subscription identifiers belong to one delivery, never to the message.
bool valid_message_props(const Properties& p) { return !p.topic_alias && p.subscription_ids.empty(); }

bool valid_sub_id(std::uint32_t id) { return id >= 1 && id <= kMaxSubscriptionId; }

std::string client_key(Kind kind, std::string_view client_id) {
  std::string k;
  k.reserve(3 + client_id.size() + 8);
  put_u8(k, static_cast<std::uint8_t>(kind));
  put_str16(k, client_id);
  return k;
}

// Splits a key of the form kind, str16 client id, suffix of `suffix` bytes.
bool split_client_key(std::string_view key, Kind kind, std::size_t suffix, std::string& client_id,
                      std::string_view& rest) {
  Reader r(key);
  std::uint8_t k = 0;
  std::string_view id;
  if (!r.u8(k) || k != static_cast<std::uint8_t>(kind) || !r.str16(id) || r.left() != suffix) return false;
  if (!valid_client_id(id)) return false;
  client_id.assign(id);
  r.bytes(suffix, rest);
  return true;
}

void encode_message_body(const MessageRecord& m, std::string& out) {
  put_u8(out, kRecordVersion);
  put_u8(out, static_cast<std::uint8_t>((m.qos & 3) | (m.retain ? 4 : 0) | (m.expiry ? 8 : 0)));
  if (m.expiry) put_u64(out, *m.expiry);
  put_str16(out, m.topic);
  put_str16(out, m.origin);
  put_props(out, m.props);
  put_str32(out, m.payload);
}

RecordError decode_message_body(std::string_view value, MessageRecord& m) {
  Reader r(value);
  std::uint8_t version = 0, flags = 0;
  if (!r.u8(version)) return {"empty value"};
  if (version != kRecordVersion) return {"unknown record version"};
  if (!r.u8(flags)) return {"truncated message"};
  if ((flags & 0xF0) != 0 || (flags & 3) > 2) return {"invalid message flags"};
  m.qos = flags & 3;
  m.retain = (flags & 4) != 0;
  m.expiry.reset();
  if (flags & 8) {
    std::uint64_t e = 0;
    if (!r.u64(e)) return {"truncated message"};
    m.expiry = e;
  }
  std::string_view topic, origin, payload;
  if (!r.str16(topic) || !r.str16(origin)) return {"truncated message"};
  if (!valid_topic(topic)) return {"invalid message topic"};
  if (!origin.empty() && !valid_mqtt_utf8(origin)) return {"invalid message origin"};
  m.props = {};
  if (auto e = r.props(m.props)) return e;
  if (!valid_message_props(m.props)) return {"per-delivery property in a message"};
  if (!r.str32(payload)) return {"truncated message"};
  if (r.left() != 0) return {"trailing bytes after a message"};
  m.topic.assign(topic);
  m.origin.assign(origin);
  m.payload.assign(payload);
  return {};
}

template <typename Record>
bool valid_by_round_trip(const Record& r, std::string_view key) {
  std::string v;
  encode_value(r, v);
  Record back;
  return !decode(key, v, back) && back == r;
}

}  // namespace

std::string format_version_key() {
  std::string k(1, static_cast<char>(Kind::kMeta));
  k.append(kVersionKeyName);
  return k;
}

std::string message_key(std::uint64_t id) {
  std::string k;
  k.reserve(9);
  put_u8(k, static_cast<std::uint8_t>(Kind::kMessage));
  put_u64(k, id);
  return k;
}

std::string session_key(std::string_view client_id) {
  std::string k(1, static_cast<char>(Kind::kSession));
  k.append(client_id);
  return k;
}

std::string queue_key(std::string_view client_id, std::uint64_t seq) {
  std::string k = client_key(Kind::kQueue, client_id);
  put_u64(k, seq);
  return k;
}

std::string inbound_key(std::string_view client_id, std::uint16_t packet_id) {
  std::string k = client_key(Kind::kInbound, client_id);
  put_u16(k, packet_id);
  return k;
}

std::string retained_key(std::string_view topic) {
  std::string k(1, static_cast<char>(Kind::kRetained));
  k.append(topic);
  return k;
}

std::string key_of(const MessageRecord& r) { return message_key(r.id); }
std::string key_of(const SessionRecord& r) { return session_key(r.client_id); }
std::string key_of(const QueueEntry& r) { return queue_key(r.client_id, r.seq); }
std::string key_of(const InboundQos2& r) { return inbound_key(r.client_id, r.packet_id); }
std::string key_of(const RetainedRecord& r) { return retained_key(r.message.topic); }

std::string queue_prefix(std::string_view client_id) { return client_key(Kind::kQueue, client_id); }
std::string inbound_prefix(std::string_view client_id) { return client_key(Kind::kInbound, client_id); }

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& c = reinterpret_cast<unsigned char&>(end.back());
    if (c != 0xFF) {
      ++c;
      return end;
    }
    end.pop_back();
  }
  return end;  // every byte 0xFF: no upper bound (an empty key means "to the end")
}

void encode_format_version(std::uint32_t version, std::string& out) {
  out.append(kMagic, kMagicSize);
  put_u32(out, version);
}

RecordError decode_format_version(std::string_view value, std::uint32_t& version) {
  if (value.size() != kMagicSize + 4 || value.substr(0, kMagicSize) != std::string_view(kMagic, kMagicSize)) {
    return {"not a Tern store format-version value"};
  }
  Reader r(value.substr(kMagicSize));
  r.u32(version);
  return {};
}

void encode_value(const MessageRecord& r, std::string& out) { encode_message_body(r, out); }

RecordError decode(std::string_view key, std::string_view value, MessageRecord& out) {
  Reader k(key);
  std::uint8_t kind = 0;
  if (!k.u8(kind) || kind != static_cast<std::uint8_t>(Kind::kMessage) || !k.u64(out.id) || k.left() != 0) {
    return {"invalid message key"};
  }
  if (out.id == 0) return {"message id 0"};
  return decode_message_body(value, out);
}

void encode_value(const RetainedRecord& r, std::string& out) { encode_message_body(r.message, out); }

RecordError decode(std::string_view key, std::string_view value, RetainedRecord& out) {
  if (key.empty() || static_cast<std::uint8_t>(key[0]) != static_cast<std::uint8_t>(Kind::kRetained)) {
    return {"invalid retained key"};
  }
  out.message.id = 0;
  if (auto e = decode_message_body(value, out.message)) return e;
  if (out.message.topic != key.substr(1)) return {"retained topic differs from its key"};
  return {};
}

void encode_value(const SessionRecord& r, std::string& out) {
  put_u8(out, kRecordVersion);
  put_u8(out, static_cast<std::uint8_t>(r.version));
  put_u32(out, r.expiry_interval);
  put_u8(out, static_cast<std::uint8_t>((r.disconnected_at ? 1 : 0) | (r.will ? 2 : 0)));
  if (r.disconnected_at) put_u64(out, *r.disconnected_at);
  put_u32(out, static_cast<std::uint32_t>(r.subscriptions.size()));
  for (const auto& s : r.subscriptions) {
    put_str16(out, s.filter);
    put_u8(out, static_cast<std::uint8_t>((s.qos & 3) | (s.no_local ? 4 : 0) | (s.retain_as_published ? 8 : 0) |
                                          ((s.retain_handling & 3) << 4)));
    put_u32(out, s.subscription_id);
  }
  if (r.will) {
    const WillRecord& w = *r.will;
    put_u8(out, static_cast<std::uint8_t>((w.qos & 3) | (w.retain ? 4 : 0)));
    put_str16(out, w.topic);
    put_str32(out, w.payload);
    put_props(out, w.props);
    put_u32(out, w.delay);
  }
}

RecordError decode(std::string_view key, std::string_view value, SessionRecord& out) {
  if (key.empty() || static_cast<std::uint8_t>(key[0]) != static_cast<std::uint8_t>(Kind::kSession)) {
    return {"invalid session key"};
  }
  if (!valid_client_id(key.substr(1))) return {"invalid session client id"};
  out.client_id.assign(key.substr(1));
  Reader r(value);
  std::uint8_t version = 0, proto = 0, flags = 0;
  if (!r.u8(version)) return {"empty value"};
  if (version != kRecordVersion) return {"unknown record version"};
  if (!r.u8(proto) || !r.u32(out.expiry_interval) || !r.u8(flags)) return {"truncated session"};
  if (proto < 3 || proto > 5) return {"invalid protocol version"};
  out.version = static_cast<Version>(proto);
  if ((flags & ~3u) != 0) return {"invalid session flags"};
  out.disconnected_at.reset();
  if (flags & 1) {
    std::uint64_t t = 0;
    if (!r.u64(t)) return {"truncated session"};
    out.disconnected_at = t;
  }
  std::uint32_t n = 0;
  if (!r.u32(n)) return {"truncated session"};
  // Each subscription takes at least 8 bytes: a count beyond that cannot be right.
  if (n > r.left() / 8) return {"subscription count exceeds the record"};
  out.subscriptions.clear();
  out.subscriptions.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    SubscriptionRecord s;
    std::string_view filter;
    std::uint8_t opts = 0;
    if (!r.str16(filter) || !r.u8(opts) || !r.u32(s.subscription_id)) return {"truncated subscription"};
    if (!valid_filter(filter)) return {"invalid subscription filter"};
    if ((opts & 0xC0) != 0 || (opts & 3) > 2 || ((opts >> 4) & 3) > 2) return {"invalid subscription options"};
    if (s.subscription_id != 0 && !valid_sub_id(s.subscription_id)) return {"invalid subscription identifier"};
    s.filter.assign(filter);
    s.qos = opts & 3;
    s.no_local = (opts & 4) != 0;
    s.retain_as_published = (opts & 8) != 0;
    s.retain_handling = static_cast<std::uint8_t>((opts >> 4) & 3);
    out.subscriptions.push_back(std::move(s));
  }
  {
    std::vector<std::string_view> filters;
    filters.reserve(out.subscriptions.size());
    for (const auto& s : out.subscriptions) filters.push_back(s.filter);
    std::sort(filters.begin(), filters.end());
    if (std::adjacent_find(filters.begin(), filters.end()) != filters.end()) return {"duplicate subscription"};
  }
  out.will.reset();
  if (flags & 2) {
    WillRecord w;
    std::uint8_t wf = 0;
    std::string_view topic, payload;
    if (!r.u8(wf) || !r.str16(topic) || !r.str32(payload)) return {"truncated will"};
    if ((wf & 0xF8) != 0 || (wf & 3) > 2) return {"invalid will flags"};
    if (!valid_topic(topic)) return {"invalid will topic"};
    w.qos = wf & 3;
    w.retain = (wf & 4) != 0;
    w.topic.assign(topic);
    w.payload.assign(payload);
    if (auto e = r.props(w.props)) return e;
    if (!valid_message_props(w.props)) return {"per-delivery property in a will"};
    if (!r.u32(w.delay)) return {"truncated will"};
    out.will = std::move(w);
  }
  if (r.left() != 0) return {"trailing bytes after a session"};
  return {};
}

void encode_value(const QueueEntry& r, std::string& out) {
  put_u8(out, kRecordVersion);
  put_u64(out, r.message_id);
  put_u8(out, static_cast<std::uint8_t>((r.qos & 3) | (r.retain ? 4 : 0) | (r.dup ? 8 : 0) |
                                        ((static_cast<std::uint8_t>(r.state) & 3) << 4)));
  put_u16(out, r.packet_id);
  put_u32(out, static_cast<std::uint32_t>(r.subscription_ids.size()));
  for (auto id : r.subscription_ids) put_u32(out, id);
  if (r.message_id == 0 && r.message) encode_message_body(*r.message, out);  // the message, inline
}

RecordError decode(std::string_view key, std::string_view value, QueueEntry& out) {
  std::string_view rest;
  if (!split_client_key(key, Kind::kQueue, 8, out.client_id, rest)) return {"invalid queue key"};
  Reader k(rest);
  k.u64(out.seq);
  Reader r(value);
  std::uint8_t version = 0, flags = 0;
  if (!r.u8(version)) return {"empty value"};
  if (version != kRecordVersion) return {"unknown record version"};
  std::uint32_t n = 0;
  if (!r.u64(out.message_id) || !r.u8(flags) || !r.u16(out.packet_id) || !r.u32(n)) return {"truncated queue entry"};
  if ((flags & 0xC0) != 0 || (flags & 3) > 2 || ((flags >> 4) & 3) > 2) return {"invalid queue entry flags"};
  out.qos = flags & 3;
  out.retain = (flags & 4) != 0;
  out.dup = (flags & 8) != 0;
  out.state = static_cast<QueueState>((flags >> 4) & 3);
  switch (out.state) {
    case QueueState::kQueued:
      if (out.packet_id != 0) return {"queued entry with a packet id"};
      break;
    case QueueState::kSent:
      if (out.qos == 0 || out.packet_id == 0) return {"sent entry without QoS 1/2 and a packet id"};
      break;
    case QueueState::kReleased:
      if (out.qos != 2 || out.packet_id == 0) return {"released entry without QoS 2 and a packet id"};
      break;
  }
  if (n > r.left() / 4 || (out.message_id != 0 && n != r.left() / 4) || (out.message_id != 0 && r.left() % 4 != 0)) {
    return {"subscription identifier count differs from the record"};
  }
  out.subscription_ids.clear();
  out.subscription_ids.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint32_t id = 0;
    r.u32(id);
    if (!valid_sub_id(id)) return {"invalid subscription identifier"};
    out.subscription_ids.push_back(id);
  }
  out.message.reset();
  if (out.message_id == 0) {
    // The message inline: the rest of the value is its body.
    std::string_view body;
    r.bytes(r.left(), body);
    if (body.empty()) return {"queue entry without a message"};
    out.message.emplace();
    if (auto e = decode_message_body(body, *out.message)) return e;
  }
  return {};
}

void encode_value(const InboundQos2& r, std::string& out) {
  put_u8(out, kRecordVersion);
  put_u64(out, r.message_id);
}

RecordError decode(std::string_view key, std::string_view value, InboundQos2& out) {
  std::string_view rest;
  if (!split_client_key(key, Kind::kInbound, 2, out.client_id, rest)) return {"invalid inbound key"};
  Reader k(rest);
  k.u16(out.packet_id);
  if (out.packet_id == 0) return {"inbound packet id 0"};
  Reader r(value);
  std::uint8_t version = 0;
  if (!r.u8(version)) return {"empty value"};
  if (version != kRecordVersion) return {"unknown record version"};
  if (!r.u64(out.message_id)) return {"truncated inbound id"};
  if (r.left() != 0) return {"trailing bytes after an inbound id"};
  return {};
}

bool valid(const MessageRecord& r) { return valid_by_round_trip(r, message_key(r.id)); }
bool valid(const SessionRecord& r) { return valid_client_id(r.client_id) && valid_by_round_trip(r, session_key(r.client_id)); }
bool valid(const QueueEntry& r) {
  return valid_client_id(r.client_id) && valid_by_round_trip(r, queue_key(r.client_id, r.seq));
}
bool valid(const InboundQos2& r) {
  return valid_client_id(r.client_id) && valid_by_round_trip(r, inbound_key(r.client_id, r.packet_id));
}
bool valid(const RetainedRecord& r) {
  return r.message.id == 0 && valid_by_round_trip(r, retained_key(r.message.topic));
}

}  // namespace tern::store
