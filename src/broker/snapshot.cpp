#include "broker/snapshot.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unordered_map>

#include "broker/shard.hpp"
#include "codec/codec.hpp"
#include "core/topic.hpp"

namespace tern::broker {

// File layout (integers big-endian):
//   "TERNSNAP" u32 version
//   sections: u8 kind (1 sessions, 2 retained) u32 length, body
//   u8 0, u64 FNV-1a of every byte before it
// Sessions body: u32 message count, messages; u32 session count, sessions (deliveries refer to
// messages by index, so a message queued to many sessions is stored once per section).
// Retained body: u32 count, messages.
namespace {

constexpr char kMagic[8] = {'T', 'E', 'R', 'N', 'S', 'N', 'A', 'P'};
constexpr std::uint32_t kVersion = 1;
constexpr std::uint8_t kSessions = 1;
constexpr std::uint8_t kRetained = 2;
constexpr std::uint32_t kNoMessage = 0xFFFFFFFF;

std::uint64_t fnv1a(const char* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 1099511628211ull;
  }
  return h;
}

class Out {
 public:
  explicit Out(std::string& s) : s_(s) {}
  void u8(std::uint8_t v) { s_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v >> 8));
    u8(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v >> 16));
    u16(static_cast<std::uint16_t>(v));
  }
  void u64(std::uint64_t v) {
    u32(static_cast<std::uint32_t>(v >> 32));
    u32(static_cast<std::uint32_t>(v));
  }
  void str(std::string_view v) {
    u32(static_cast<std::uint32_t>(v.size()));
    s_.append(v);
  }

 private:
  std::string& s_;
};

class In {
 public:
  In(const char* p, std::size_t n) : p_(p), end_(p + n) {}
  bool ok() const { return ok_; }
  bool done() const { return p_ == end_; }
  std::uint8_t u8() {
    if (!need(1)) return 0;
    return static_cast<std::uint8_t>(*p_++);
  }
  std::uint16_t u16() {
    std::uint16_t hi = u8();
    return static_cast<std::uint16_t>((hi << 8) | u8());
  }
  std::uint32_t u32() {
    std::uint32_t hi = u16();
    return (hi << 16) | u16();
  }
  std::uint64_t u64() {
    std::uint64_t hi = u32();
    return (hi << 32) | u32();
  }
  std::string_view str() {
    std::uint32_t n = u32();
    if (!need(n)) return {};
    std::string_view v(p_, n);
    p_ += n;
    return v;
  }
  // Marks the input bad (a count that cannot be right, say).
  void fail() { ok_ = false; }

 private:
  bool need(std::size_t n) {
    if (!ok_ || static_cast<std::size_t>(end_ - p_) < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

std::uint64_t age_ms(const protocol::Message& m, protocol::TimePoint now) {
  if (m.created == protocol::TimePoint{} || m.created > now) return 0;
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now - m.created).count());
}

void put_message(Out& o, const protocol::Message& m, protocol::TimePoint now) {
  o.str(m.topic);
  o.str(m.payload);
  o.str(m.origin);
  o.u8(m.qos);
  o.u8(m.retain ? 1 : 0);
  o.u64(age_ms(m, now));
  std::string props;
  if (m.has_props()) codec::encode_property_block(m.props(), props);
  o.str(props);
}

protocol::MessagePtr get_message(In& in, protocol::TimePoint now) {
  std::string_view topic = in.str();
  std::string_view payload = in.str();
  std::string_view origin = in.str();
  std::uint8_t qos = in.u8();
  bool retain = in.u8() != 0;
  std::uint64_t age = in.u64();
  std::string_view props_bytes = in.str();
  if (!in.ok() || qos > 2 || !valid_topic_name(topic)) {
    in.fail();
    return nullptr;
  }
  codec::Properties props;
  if (!props_bytes.empty() &&
      codec::decode_publish_properties(reinterpret_cast<const std::uint8_t*>(props_bytes.data()), props_bytes.size(), props)) {
    in.fail();
    return nullptr;
  }
  auto created = now - std::chrono::milliseconds(age);
  return protocol::Message::make(topic, payload, qos, retain, origin, created, props_bytes.empty() ? nullptr : &props);
}

// Assigns message indexes within one section.
class MessageTable {
 public:
  std::uint32_t index(const protocol::MessagePtr& m) {
    if (!m) return kNoMessage;
    auto [it, fresh] = ids_.emplace(m.get(), static_cast<std::uint32_t>(list_.size()));
    if (fresh) list_.push_back(m);
    return it->second;
  }
  const std::vector<protocol::MessagePtr>& list() const { return list_; }

 private:
  std::unordered_map<const protocol::Message*, std::uint32_t> ids_;
  std::vector<protocol::MessagePtr> list_;
};

void put_delivery(Out& o, MessageTable& t, const protocol::Delivery& d) {
  o.u32(t.index(d.msg));
  o.u8(d.qos);
  o.u8(d.retain ? 1 : 0);
  o.u32(static_cast<std::uint32_t>(d.sub_ids.size()));
  for (auto id : d.sub_ids) o.u32(id);
}

bool get_delivery(In& in, const std::vector<protocol::MessagePtr>& msgs, protocol::Delivery& d, bool allow_none) {
  std::uint32_t idx = in.u32();
  d.qos = in.u8();
  d.retain = in.u8() != 0;
  std::uint32_t n = in.u32();
  if (!in.ok() || n > 1024 || d.qos > 2) return false;
  for (std::uint32_t i = 0; i < n; ++i) d.sub_ids.push_back(in.u32());
  if (idx == kNoMessage) return allow_none && in.ok();
  if (idx >= msgs.size()) return false;
  d.msg = msgs[idx];
  return in.ok();
}

}  // namespace

std::string encode_sessions(const Shard& shard, protocol::TimePoint now) {
  MessageTable table;
  std::string sessions;
  Out o(sessions);
  std::uint32_t count = 0;
  for (const auto& [id, sp] : shard.sessions()) {
    const Session& s = *sp;
    std::uint32_t expiry = 0;
    if (!shard.lifetime(s, expiry)) continue;
    ++count;
    o.str(s.client_id);
    o.u32(expiry);
    std::uint64_t offline = 0;
    if (!s.conn && now > s.offline_since) {
      offline = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now - s.offline_since).count());
    }
    o.u64(offline);
    o.u16(s.state.next_packet_id);
    o.u32(static_cast<std::uint32_t>(s.subs.size()));
    for (const auto& [filter, opts] : s.subs) {
      o.str(filter);
      o.u8(opts.qos);
      o.u8(static_cast<std::uint8_t>((opts.no_local ? 1 : 0) | (opts.retain_as_published ? 2 : 0)));
      o.u32(opts.subscription_id);
    }
    o.u32(static_cast<std::uint32_t>(s.state.inflight.size()));
    for (const auto& f : s.state.inflight) {
      o.u16(f.packet_id);
      o.u8(f.released ? 1 : 0);
      put_delivery(o, table, f.delivery);
    }
    o.u32(static_cast<std::uint32_t>(s.state.queue.size()));
    for (const auto& d : s.state.queue) put_delivery(o, table, d);
    o.u32(static_cast<std::uint32_t>(s.state.inbound_qos2.size()));
    for (const auto& [pid, msg] : s.state.inbound_qos2) {
      o.u16(pid);
      o.u32(table.index(msg));
    }
  }
  std::string body;
  Out b(body);
  b.u32(static_cast<std::uint32_t>(table.list().size()));
  for (const auto& m : table.list()) put_message(b, *m, now);
  b.u32(count);
  body += sessions;
  std::string section;
  Out sec(section);
  sec.u8(kSessions);
  sec.str(body);
  return section;
}

std::string encode_retained(const RetainedStore& store, protocol::TimePoint now) {
  auto all = store.all();
  std::string body;
  Out b(body);
  b.u32(static_cast<std::uint32_t>(all.size()));
  for (const auto& m : all) put_message(b, *m, now);
  std::string section;
  Out sec(section);
  sec.u8(kRetained);
  sec.str(body);
  return section;
}

bool write_snapshot(const std::string& path, const std::vector<std::string>& sections, std::string& error) {
  std::string data(kMagic, sizeof kMagic);
  Out o(data);
  o.u32(kVersion);
  for (const auto& s : sections) data += s;
  o.u8(0);
  o.u64(fnv1a(data.data(), data.size()));
  const std::string tmp = path + ".new";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot open " + tmp + " for writing: " + std::strerror(errno);
    return false;
  }
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = "cannot write " + tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    error = "cannot sync " + tmp + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  // The rename itself is durable once the directory is synced.
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/') + 1);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

namespace {

bool restore_sessions(In& in, Broker& broker, protocol::TimePoint now, RestoreCounts& counts) {
  std::uint32_t nmsg = in.u32();
  if (!in.ok()) return false;
  std::vector<protocol::MessagePtr> msgs;
  for (std::uint32_t i = 0; i < nmsg && in.ok(); ++i) {
    auto m = get_message(in, now);
    if (!m) return false;
    msgs.push_back(std::move(m));
  }
  std::uint32_t nsess = in.u32();
  for (std::uint32_t i = 0; i < nsess && in.ok(); ++i) {
    std::string client_id(in.str());
    std::uint32_t expiry = in.u32();
    std::uint64_t offline = in.u64();
    std::uint16_t next_id = in.u16();
    if (!in.ok()) return false;
    Shard& shard = broker.shard(broker.owner_of(client_id));
    Session& s = shard.restore_session(client_id, expiry, now - std::chrono::milliseconds(offline));
    s.state.next_packet_id = next_id == 0 ? 1 : next_id;
    std::uint32_t nsubs = in.u32();
    for (std::uint32_t k = 0; k < nsubs && in.ok(); ++k) {
      std::string filter(in.str());
      SubOptions o;
      o.qos = in.u8();
      std::uint8_t flags = in.u8();
      o.no_local = (flags & 1) != 0;
      o.retain_as_published = (flags & 2) != 0;
      o.subscription_id = in.u32();
      if (!in.ok() || o.qos > 2 || !valid_topic_filter(filter)) return false;
      shard.restore_subscription(s, filter, o);
    }
    std::uint32_t ninflight = in.u32();
    for (std::uint32_t k = 0; k < ninflight && in.ok(); ++k) {
      protocol::OutboundFlight f;
      f.packet_id = in.u16();
      f.released = in.u8() != 0;
      if (!get_delivery(in, msgs, f.delivery, f.released) || f.packet_id == 0) return false;
      s.state.inflight.push_back(std::move(f));
    }
    std::uint32_t nqueue = in.u32();
    for (std::uint32_t k = 0; k < nqueue && in.ok(); ++k) {
      protocol::Delivery d;
      if (!get_delivery(in, msgs, d, false)) return false;
      s.state.queued_bytes += d.msg->payload.size();
      s.state.queue.push_back(std::move(d));
    }
    std::uint32_t ninbound = in.u32();
    for (std::uint32_t k = 0; k < ninbound && in.ok(); ++k) {
      std::uint16_t pid = in.u16();
      std::uint32_t idx = in.u32();
      if (!in.ok() || (idx >= msgs.size() && idx != kNoMessage)) return false;
      // No message: a refused QoS 2 PUBLISH waiting for its PUBREL (acknowledged, never routed).
      s.state.inbound_qos2.emplace(pid, idx == kNoMessage ? nullptr : msgs[idx]);
    }
    ++counts.sessions;
  }
  return in.ok() && in.done();
}

bool restore_retained(In& in, Broker& broker, protocol::TimePoint now, RestoreCounts& counts) {
  std::uint32_t n = in.u32();
  for (std::uint32_t i = 0; i < n && in.ok(); ++i) {
    auto m = get_message(in, now);
    if (!m) return false;
    broker.retained().set(m);
    ++counts.retained;
  }
  return in.ok() && in.done();
}

}  // namespace

bool load_snapshot(const std::string& path, Broker& broker, RestoreCounts& counts, std::string& error) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return true;  // first start
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    error = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (data.size() < sizeof kMagic + 4 + 9 || data.compare(0, sizeof kMagic, kMagic, sizeof kMagic) != 0) {
    error = path + " is not a Tern snapshot (a Mosquitto database cannot be read; set persistence_file to another name)";
    return false;
  }
  In tail(data.data() + data.size() - 9, 9);
  if (tail.u8() != 0 || tail.u64() != fnv1a(data.data(), data.size() - 8)) {
    error = path + " is damaged (checksum mismatch)";
    return false;
  }
  In in(data.data() + sizeof kMagic, data.size() - sizeof kMagic - 9);
  if (in.u32() != kVersion) {
    error = path + " was written by an incompatible version";
    return false;
  }
  const auto now = protocol::Clock::now();
  while (in.ok() && !in.done()) {
    std::uint8_t kind = in.u8();
    std::string_view body = in.str();
    if (!in.ok()) break;
    In b(body.data(), body.size());
    bool ok = kind == kSessions   ? restore_sessions(b, broker, now, counts)
              : kind == kRetained ? restore_retained(b, broker, now, counts)
                                  : true;  // sections of a later version are skipped
    if (!ok) {
      error = path + " is damaged (bad record)";
      return false;
    }
  }
  if (!in.ok()) {
    error = path + " is damaged (truncated)";
    return false;
  }
  return true;
}

}  // namespace tern::broker
