// Checks that ServerConnection survives any client bytes and only sends valid server-to-client packets.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "codec/codec.hpp"
#include "core/topic.hpp"
#include "fuzz_common.hpp"
#include "protocol/server_connection.hpp"

namespace {

using namespace std::chrono_literals;
namespace codec = tern::codec;
using tern::Reason;
using tern::protocol::CloseCause;
using tern::protocol::Delivery;
using tern::protocol::MessagePtr;
using tern::protocol::ServerConnection;
using tern::protocol::ServerLimits;
using tern::protocol::SessionState;
using tern::protocol::TimePoint;

// A one-client broker: accepts every CONNECT, keeps the client's subscriptions and retained
// messages, and routes each PUBLISH back to the client when one of its subscriptions matches (the
// way the broker's shard delivers to a local session from inside on_publish).
struct FakeBroker : tern::protocol::ConnectionHandler {
  struct Sub {
    std::uint8_t qos = 0;
    bool no_local = false;
    bool retain_as_published = false;
    std::uint32_t sub_id = 0;
  };
  SessionState state;
  std::optional<codec::Version> negotiated;  // the CONNECT's version, once one was accepted
  bool session_present = false;
  bool pause_on_publish = false;
  std::map<std::string, Sub> subs;
  std::map<std::string, MessagePtr> retained;
  int closes = 0;

  void on_connect(ServerConnection& c, codec::Connect& connect) override {
    negotiated = connect.version;
    codec::Properties props;
    if (connect.props.assigned_client_id) props.assigned_client_id = connect.props.assigned_client_id;
    if (connect.props.server_keep_alive) props.server_keep_alive = connect.props.server_keep_alive;
    c.accept(&state, session_present, std::move(props));
  }
  Reason on_publish(ServerConnection& c, const MessagePtr& m) override {
    if (m->retain) {
      if (m->payload.empty()) {
        retained.erase(std::string(m->topic));
      } else {
        retained[std::string(m->topic)] = m;
      }
    }
    Delivery d;
    d.msg = m;
    bool any = false;
    std::uint8_t granted = 0;
    bool rap = false;
    for (const auto& [filter, s] : subs) {
      if (!tern::topic_matches(filter, m->topic) || s.no_local) continue;
      any = true;
      granted = std::max(granted, s.qos);
      rap = rap || s.retain_as_published;
      if (s.sub_id) d.sub_ids.push_back(s.sub_id);
    }
    if (pause_on_publish) c.pause();
    if (!any) return Reason::kNoMatchingSubscribers;
    d.qos = std::min(granted, m->qos);
    d.retain = rap && m->retain;
    c.deliver(std::move(d));
    return Reason::kSuccess;
  }
  void on_subscribe(ServerConnection&, const codec::Subscribe& s, std::vector<std::uint8_t>& codes) override {
    for (std::size_t i = 0; i < s.topics.size(); ++i) {
      if (codes[i] >= 0x80) continue;
      const auto& t = s.topics[i];
      subs[t.filter] = Sub{t.qos, t.no_local, t.retain_as_published,
                           s.props.subscription_ids.empty() ? 0u : s.props.subscription_ids[0]};
    }
  }
  void on_subscribed(ServerConnection& c, const codec::Subscribe& s, const std::vector<std::uint8_t>& codes) override {
    for (std::size_t i = 0; i < s.topics.size(); ++i) {
      if (codes[i] >= 0x80 || s.topics[i].retain_handling == 2) continue;
      for (const auto& [topic, m] : retained) {
        if (!tern::topic_matches(s.topics[i].filter, topic)) continue;
        Delivery d;
        d.msg = m;
        d.qos = std::min(m->qos, codes[i]);
        d.retain = true;
        if (!s.props.subscription_ids.empty()) d.sub_ids.push_back(s.props.subscription_ids[0]);
        c.deliver(std::move(d));
      }
    }
  }
  void on_unsubscribe(ServerConnection&, const codec::Unsubscribe& u, std::vector<std::uint8_t>& codes) override {
    for (std::size_t i = 0; i < u.filters.size(); ++i) {
      if (codes[i] >= 0x80) continue;
      codes[i] = subs.erase(u.filters[i]) ? 0x00 : 0x11;
    }
  }
  void on_closed(ServerConnection&, CloseCause) override { ++closes; }
  // Deterministic, so that a crash reproduces from its input alone.
  std::string assign_client_id(const std::string& prefix) override { return prefix + "fuzz"; }
  void log(int, const std::string&) override {}
};

void fail_packet(const char* why, const std::uint8_t* p, std::size_t n, codec::Version v) {
  std::fprintf(stderr, "server sent a bad packet (%s, version %d):", why, static_cast<int>(v));
  for (std::size_t i = 0; i < n && i < 64; ++i) std::fprintf(stderr, " %02x", p[i]);
  std::fprintf(stderr, "\n");
  __builtin_trap();
}

// Takes what the connection queued for the socket (payload splices included) and checks that it is
// a sequence of complete server-to-client packets that decode with the negotiated protocol version.
// Always true (a failed check traps).
bool drain_and_check(ServerConnection& c, const FakeBroker& broker) {
  // Once CONNECT succeeded the connection's version never changes (not even by a malformed
  // second CONNECT), or what follows would be encoded for the wrong version.
  if (broker.negotiated && c.version() != *broker.negotiated) {
    std::fprintf(stderr, "protocol version changed from %d to %d after CONNECT\n",
                 static_cast<int>(*broker.negotiated), static_cast<int>(c.version()));
    __builtin_trap();
  }
  const codec::Version v = broker.negotiated.value_or(c.version());
  auto& o = c.out();
  std::string flat;
  std::size_t pos = 0;
  for (const auto& s : o.splices) {
    FUZZ_CHECK(s.offset >= pos && s.offset <= o.bytes.size());
    flat.append(o.bytes, pos, s.offset - pos);
    flat.append(s.msg->payload);
    pos = s.offset;
  }
  flat.append(o.bytes, pos, std::string::npos);
  FUZZ_CHECK(flat.size() == o.size());
  o.clear();
  const auto* data = reinterpret_cast<const std::uint8_t*>(flat.data());
  std::size_t off = 0;
  while (off < flat.size()) {
    const std::uint8_t* p = data + off;
    const std::size_t left = flat.size() - off;
    codec::FrameHeader h;
    codec::DecodeError err;
    if (codec::parse_frame(p, left, 0, h, err) != codec::FrameStatus::kComplete) fail_packet("frame", p, left, v);
    codec::Packet packet;
    if (auto e = codec::decode_packet(h, p + h.header_size, v, packet)) fail_packet(e.what, p, h.total(), v);
    switch (h.type()) {
      case codec::PacketType::kConnect:
      case codec::PacketType::kSubscribe:
      case codec::PacketType::kUnsubscribe:
      case codec::PacketType::kPingreq: fail_packet("client-only packet type", p, h.total(), v); break;
      case codec::PacketType::kDisconnect:
        // Before 5.0 only the client sends DISCONNECT.
        if (v != codec::Version::kV5) fail_packet("DISCONNECT before 5.0", p, h.total(), v);
        break;
      default: break;
    }
    off += h.total();
  }
  return true;
}

}  // namespace

// Byte 0 chooses the set-up: bits 0-1 the number of chunks (1-4), bit 2 session present, bit 3
// small limits, bit 4 pause on each PUBLISH, bits 5-7 the clock step between chunks (0-35 s).
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t setup = data[0];
  ++data;
  --size;
  ServerLimits limits;
  if (setup & 0x08) {
    limits.max_packet_size = 200;
    limits.message_size_limit = 32;
    limits.max_keepalive = 30;
    limits.max_inflight = 2;
    limits.max_queued_messages = 3;
    limits.max_queued_bytes = 64;
    limits.max_topic_alias = 2;
    limits.receive_maximum = 2;
    limits.max_outbound_bytes = 256;
    limits.allow_zero_length_clientid = false;
    limits.v31_client_id_max = 0;
  }
  FakeBroker broker;  // outlives the connection, as the broker's session state does
  broker.session_present = setup & 0x04;
  broker.pause_on_publish = setup & 0x10;
  TimePoint now = TimePoint{} + 1000h;
  const auto step = std::chrono::seconds(5 * (setup >> 5));
  ServerConnection c(broker, limits, "127.0.0.1:1883", now);

  const std::size_t chunks = 1 + (setup & 0x03);
  std::size_t off = 0;
  for (std::size_t i = 0; i < chunks && !c.closed(); ++i) {
    std::size_t len = i + 1 == chunks ? size - off : size / chunks;
    c.on_bytes(data + off, len, now);
    off += len;
    if (!drain_and_check(c, broker)) return 0;
    if (c.paused()) {
      c.resume(now);
      if (!drain_and_check(c, broker)) return 0;
    }
    now += step;
    c.on_tick(now);
    if (!drain_and_check(c, broker)) return 0;
  }
  // Keep resuming a paused connection until its buffered input is used up.
  for (int i = 0; i < 64 && c.paused() && !c.closed(); ++i) {
    c.resume(now);
    if (!drain_and_check(c, broker)) return 0;
  }
  c.on_transport_closed();
  FUZZ_CHECK(c.closed());
  FUZZ_CHECK(broker.closes == 1);  // on_closed is called exactly once
  return 0;
}
