#include <cstring>

#include "codec/codec.hpp"
#include "core/topic.hpp"
#include "core/utf8.hpp"

namespace tern::codec {

const char* packet_name(PacketType t) {
  static const char* const kNames[] = {"RESERVED", "CONNECT", "CONNACK",  "PUBLISH",     "PUBACK",
                                       "PUBREC",   "PUBREL",  "PUBCOMP",  "SUBSCRIBE",   "SUBACK",
                                       "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT",
                                       "AUTH"};
  return kNames[static_cast<unsigned>(t) & 0x0F];
}

namespace {

constexpr DecodeError malformed(const char* what) { return {Reason::kMalformedPacket, what}; }
constexpr DecodeError protocol_error(const char* what) { return {Reason::kProtocolError, what}; }

// Bounds-checked reader over one packet body.
class Reader {
 public:
  Reader(const std::uint8_t* p, std::size_t n) : p_(p), end_(p + n) {}
  std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }
  const std::uint8_t* pos() const { return p_; }
  bool u8(std::uint8_t& v) {
    if (left() < 1) return false;
    v = *p_++;
    return true;
  }
  bool u16(std::uint16_t& v) {
    if (left() < 2) return false;
    v = static_cast<std::uint16_t>((p_[0] << 8) | p_[1]);
    p_ += 2;
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (left() < 4) return false;
    v = (std::uint32_t{p_[0]} << 24) | (std::uint32_t{p_[1]} << 16) | (std::uint32_t{p_[2]} << 8) |
        p_[3];
    p_ += 4;
    return true;
  }
  // Variable Byte Integer: at most 4 bytes [MQTT-1.5.5-1].
  bool varint(std::uint32_t& v) {
    v = 0;
    for (int i = 0; i < 4; ++i) {
      std::uint8_t b;
      if (!u8(b)) return false;
      v |= std::uint32_t{b & 0x7Fu} << (7 * i);
      // [MQTT-1.5.5-1] the minimum number of bytes: a last byte of 0 after the first is padding.
      if ((b & 0x80) == 0) return !(b == 0 && i > 0);
    }
    return false;
  }
  bool binary(std::string_view& v) {
    std::uint16_t n;
    if (!u16(n) || left() < n) return false;
    v = {reinterpret_cast<const char*>(p_), n};
    p_ += n;
    return true;
  }
  void skip(std::size_t n) { p_ += n; }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

// Reads a UTF-8 string field, checking [MQTT-1.5.3-1]/[MQTT-1.5.3-2].
DecodeError read_string(Reader& r, std::string& out, const char* what_missing) {
  std::string_view v;
  if (!r.binary(v)) return malformed(what_missing);
  if (!valid_mqtt_utf8(v)) return malformed("invalid UTF-8 string");
  out.assign(v);
  return {};
}

DecodeError read_binary(Reader& r, std::string& out, const char* what_missing) {
  std::string_view v;
  if (!r.binary(v)) return malformed(what_missing);
  out.assign(v);
  return {};
}

// Which packets may carry each property (MQTT 5.0 table 2-4). Bit n = packet type n; bit 16 = will.
constexpr std::uint32_t kWill = 1u << 16;
constexpr std::uint32_t bit(PacketType t) { return 1u << static_cast<unsigned>(t); }
constexpr std::uint32_t kAllPackets = 0xFFFEu | kWill;

std::uint32_t allowed_in(std::uint8_t id) {
  using T = PacketType;
  switch (id) {
    case 0x01: case 0x02: case 0x03: case 0x08: case 0x09: return bit(T::kPublish) | kWill;
    case 0x0B: return bit(T::kPublish) | bit(T::kSubscribe);
    case 0x11: return bit(T::kConnect) | bit(T::kConnack) | bit(T::kDisconnect);
    case 0x12: case 0x13: case 0x1A: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2A:
      return bit(T::kConnack);
    case 0x15: case 0x16: return bit(T::kConnect) | bit(T::kConnack) | bit(T::kAuth);
    case 0x17: case 0x19: return bit(T::kConnect);
    case 0x18: return kWill;
    case 0x1C: return bit(T::kConnack) | bit(T::kDisconnect);
    case 0x1F:
      return bit(T::kConnack) | bit(T::kPuback) | bit(T::kPubrec) | bit(T::kPubrel) |
             bit(T::kPubcomp) | bit(T::kSuback) | bit(T::kUnsuback) | bit(T::kDisconnect) |
             bit(T::kAuth);
    case 0x21: case 0x22: case 0x27: return bit(T::kConnect) | bit(T::kConnack);
    case 0x23: return bit(T::kPublish);
    case 0x26: return kAllPackets;
    default: return 0;
  }
}

template <typename T>
DecodeError set_once(std::optional<T>& slot, T value) {
  // "It is a Protocol Error to include the X more than once" (section 3.x.2.x for each property).
  if (slot) return protocol_error("duplicated property");
  slot = std::move(value);
  return {};
}

DecodeError read_byte_prop(Reader& r, std::optional<std::uint8_t>& slot, bool boolean) {
  std::uint8_t v;
  if (!r.u8(v)) return malformed("truncated property");
  if (boolean && v > 1) return protocol_error("property value must be 0 or 1");
  return set_once(slot, v);
}

DecodeError read_u16_prop(Reader& r, std::optional<std::uint16_t>& slot) {
  std::uint16_t v;
  if (!r.u16(v)) return malformed("truncated property");
  return set_once(slot, v);
}

DecodeError read_u32_prop(Reader& r, std::optional<std::uint32_t>& slot) {
  std::uint32_t v;
  if (!r.u32(v)) return malformed("truncated property");
  return set_once(slot, v);
}

DecodeError read_str_prop(Reader& r, std::optional<std::string>& slot, bool utf8) {
  std::string v;
  DecodeError e = utf8 ? read_string(r, v, "truncated property") : read_binary(r, v, "truncated property");
  if (e) return e;
  return set_once(slot, std::move(v));
}

// Reads a property block (length + properties) into `props`. `where` is the packet type bit (or kWill).
// `left` is how many more properties the packet may have (max_packet_properties): user properties may
// repeat, and without a bound a packet of a few MiB would become a vector of millions of strings.
DecodeError read_properties(Reader& r, std::uint32_t where, Properties& props, std::uint32_t& left) {
  std::uint32_t len;
  if (!r.varint(len)) return malformed("bad property length");
  if (len > r.left()) return malformed("property length exceeds packet");
  Reader pr(r.pos(), len);
  r.skip(len);
  while (pr.left() > 0) {
    // Counted before the property is read, so the vectors stop growing at the bound. 0x97 is the code
    // for "an implementation or administrative imposed limit has been exceeded" (CONNACK, DISCONNECT).
    if (left == 0) return {Reason::kQuotaExceeded, "more properties than the server allows"};
    --left;
    std::uint32_t id;
    // Property identifiers are Variable Byte Integers; all defined ones fit in one byte.
    if (!pr.varint(id)) return malformed("bad property identifier");
    if (id > 0xFF || (allowed_in(static_cast<std::uint8_t>(id)) & where) == 0) {
      return malformed("property not valid for this packet");  // section 2.2.2.2
    }
    DecodeError e;
    switch (id) {
      case 0x01: e = read_byte_prop(pr, props.payload_format, true); break;
      case 0x02: e = read_u32_prop(pr, props.message_expiry); break;
      case 0x03: e = read_str_prop(pr, props.content_type, true); break;
      case 0x08:
        e = read_str_prop(pr, props.response_topic, true);
        // [MQTT-3.3.2-14] the Response Topic is a topic name: no wildcards.
        if (!e && !valid_topic_name(*props.response_topic)) e = protocol_error("invalid response topic");
        break;
      case 0x09: e = read_str_prop(pr, props.correlation_data, false); break;
      case 0x0B: {
        std::uint32_t v;
        if (!pr.varint(v)) return malformed("bad subscription identifier");
        if (v == 0) return protocol_error("subscription identifier 0");  // [MQTT-3.8.2.1.2]
        if ((where & bit(PacketType::kSubscribe)) && !props.subscription_ids.empty()) {
          return protocol_error("duplicated property");
        }
        props.subscription_ids.push_back(v);
        break;
      }
      case 0x11: e = read_u32_prop(pr, props.session_expiry); break;
      case 0x12: e = read_str_prop(pr, props.assigned_client_id, true); break;
      case 0x13: e = read_u16_prop(pr, props.server_keep_alive); break;
      case 0x15: e = read_str_prop(pr, props.auth_method, true); break;
      case 0x16: e = read_str_prop(pr, props.auth_data, false); break;
      case 0x17: e = read_byte_prop(pr, props.request_problem_info, true); break;
      case 0x18: e = read_u32_prop(pr, props.will_delay); break;
      case 0x19: e = read_byte_prop(pr, props.request_response_info, true); break;
      case 0x1A: e = read_str_prop(pr, props.response_info, true); break;
      case 0x1C: e = read_str_prop(pr, props.server_reference, true); break;
      case 0x1F: e = read_str_prop(pr, props.reason_string, true); break;
      case 0x21:
        e = read_u16_prop(pr, props.receive_maximum);
        if (!e && *props.receive_maximum == 0) e = protocol_error("receive maximum 0");
        break;
      case 0x22: e = read_u16_prop(pr, props.topic_alias_maximum); break;
      case 0x23: e = read_u16_prop(pr, props.topic_alias); break;
      case 0x24: e = read_byte_prop(pr, props.maximum_qos, true); break;
      case 0x25: e = read_byte_prop(pr, props.retain_available, true); break;
      case 0x26: {
        UserProperty up;
        if ((e = read_string(pr, up.key, "truncated user property"))) return e;
        if ((e = read_string(pr, up.value, "truncated user property"))) return e;
        props.user_properties.push_back(std::move(up));
        break;
      }
      case 0x27:
        e = read_u32_prop(pr, props.maximum_packet_size);
        if (!e && *props.maximum_packet_size == 0) e = protocol_error("maximum packet size 0");
        break;
      case 0x28: e = read_byte_prop(pr, props.wildcard_sub_available, true); break;
      case 0x29: e = read_byte_prop(pr, props.sub_id_available, true); break;
      case 0x2A: e = read_byte_prop(pr, props.shared_sub_available, true); break;
      default: return malformed("unknown property");
    }
    if (e) return e;
  }
  return {};
}

DecodeError decode_connect(const std::uint8_t* body, std::size_t n, Connect& c, std::uint32_t& left) {
  Reader r(body, n);
  std::string_view name;
  if (!r.binary(name)) return {Reason::kMalformedPacket, "truncated protocol name", true};
  std::uint8_t level;
  if (!r.u8(level)) return {Reason::kMalformedPacket, "truncated protocol level", true};
  c.protocol_name.assign(name);
  if (name != "MQTT" && name != "MQIsdp") {
    return {Reason::kMalformedPacket, "unknown protocol name", true};  // [MQTT-3.1.2-1]
  }
  // [MQTT-3.1.2-2] MQIsdp is level 3 (3.1); MQTT is level 4 (3.1.1) or 5 (5.0).
  bool ok_level = name == "MQIsdp" ? level == 3 : (level == 4 || level == 5);
  if (!ok_level) return {Reason::kUnsupportedProtocolVersion, "unsupported protocol level"};
  c.version = static_cast<Version>(level);
  const bool v5 = c.version == Version::kV5;
  std::uint8_t flags;
  if (!r.u8(flags) || !r.u16(c.keepalive)) return malformed("truncated CONNECT header");
  if (flags & 0x01) return malformed("CONNECT reserved flag set");  // [MQTT-3.1.2-3]
  c.clean_start = flags & 0x02;
  bool will = flags & 0x04;
  std::uint8_t will_qos = (flags >> 3) & 0x03;
  bool will_retain = flags & 0x20;
  bool has_password = flags & 0x40;
  bool has_username = flags & 0x80;
  if (!will && (will_qos != 0 || will_retain)) {
    return malformed("will QoS or retain set without will flag");  // [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]
  }
  if (will_qos == 3) return malformed("will QoS 3");  // [MQTT-3.1.2-14]
  if (!v5 && has_password && !has_username) {
    return malformed("password without user name");  // [MQTT-3.1.2-22]
  }
  if (v5) {
    if (auto e = read_properties(r, bit(PacketType::kConnect), c.props, left)) return e;
  }
  if (auto e = read_string(r, c.client_id, "truncated client identifier")) return e;
  if (will) {
    Will w;
    w.qos = will_qos;
    w.retain = will_retain;
    if (v5) {
      if (auto e = read_properties(r, kWill, w.props, left)) return e;
    }
    if (auto e = read_string(r, w.topic, "truncated will topic")) return e;
    if (!valid_topic_name(w.topic)) return {Reason::kTopicNameInvalid, "invalid will topic"};
    if (auto e = read_binary(r, w.payload, "truncated will payload")) return e;
    c.will = std::move(w);
  }
  if (has_username) {
    std::string u;
    if (auto e = read_string(r, u, "truncated user name")) return e;
    c.username = std::move(u);
  }
  if (has_password) {
    std::string p;
    if (auto e = read_binary(r, p, "truncated password")) return e;
    c.password = std::move(p);
  }
  if (r.left() != 0) return malformed("trailing bytes in CONNECT");
  return {};
}

DecodeError decode_publish(std::uint8_t flags, const std::uint8_t* body, std::size_t n, bool v5,
                           Publish& p, std::uint32_t& left) {
  p.dup = flags & 0x08;
  p.qos = (flags >> 1) & 0x03;
  p.retain = flags & 0x01;
  if (p.qos == 3) return malformed("PUBLISH with QoS 3");                 // [MQTT-3.3.1-4]
  if (p.qos == 0 && p.dup) return malformed("PUBLISH with DUP set on QoS 0");  // [MQTT-3.3.1-2]
  Reader r(body, n);
  if (auto e = read_string(r, p.topic, "truncated topic name")) return e;
  if (p.topic.find_first_of("+#") != std::string::npos) {
    return {Reason::kTopicNameInvalid, "wildcard in PUBLISH topic name"};  // [MQTT-3.3.2-2]
  }
  if (p.qos > 0) {
    if (!r.u16(p.packet_id)) return malformed("truncated packet identifier");
    if (p.packet_id == 0) return malformed("packet identifier 0");  // [MQTT-2.3.1-1]
  }
  if (v5) {
    if (auto e = read_properties(r, bit(PacketType::kPublish), p.props, left)) return e;
  } else if (p.topic.empty()) {
    return {Reason::kTopicNameInvalid, "empty topic name"};  // [MQTT-4.7.3-1]
  }
  p.payload = {reinterpret_cast<const char*>(r.pos()), r.left()};
  return {};
}

// Whether `code` is one of the Reason Codes the specification lists for packet type t (5.0 Table 2-6
// and sections 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.14.2.1, 3.15.2.1): any other value is a
// Protocol Error [MQTT-3.4.2-1], [MQTT-3.5.2-1], [MQTT-3.6.2-1], [MQTT-3.7.2-1], [MQTT-3.14.2-1],
// [MQTT-3.15.2-1].
bool valid_reason(PacketType t, std::uint8_t code) {
  switch (t) {
    case PacketType::kPuback:
    case PacketType::kPubrec:
      return code == 0x00 || code == 0x10 || code == 0x80 || code == 0x83 || code == 0x87 || code == 0x90 ||
             code == 0x91 || code == 0x97 || code == 0x99;
    case PacketType::kPubrel:
    case PacketType::kPubcomp: return code == 0x00 || code == 0x92;
    case PacketType::kDisconnect:
      return code == 0x00 || code == 0x04 || (code >= 0x80 && code <= 0x83) || code == 0x87 || code == 0x89 ||
             code == 0x8B || (code >= 0x8D && code <= 0x90) || (code >= 0x93 && code <= 0xA2);
    case PacketType::kAuth: return code == 0x00 || code == 0x18 || code == 0x19;
    default: return true;
  }
}

DecodeError decode_ack(PacketType t, const std::uint8_t* body, std::size_t n, bool v5, Ack& a, std::uint32_t& left) {
  a.type = t;
  Reader r(body, n);
  if (!r.u16(a.packet_id)) return malformed("truncated packet identifier");
  if (a.packet_id == 0) return malformed("packet identifier 0");  // [MQTT-2.3.1-1]
  if (!v5) {
    if (n != 2) return malformed("acknowledgement remaining length must be 2");
    return {};
  }
  if (r.left() >= 1) r.u8(a.reason);
  if (!valid_reason(t, a.reason)) return protocol_error("reason code not allowed in this packet");
  if (r.left() >= 1) {
    if (auto e = read_properties(r, bit(t), a.props, left)) return e;
  }
  if (r.left() != 0) return malformed("trailing bytes in acknowledgement");
  return {};
}

DecodeError decode_subscribe(const std::uint8_t* body, std::size_t n, bool v5, Subscribe& s, std::uint32_t& left) {
  Reader r(body, n);
  if (!r.u16(s.packet_id)) return malformed("truncated packet identifier");
  if (s.packet_id == 0) return malformed("packet identifier 0");  // [MQTT-2.3.1-1]
  if (v5) {
    if (auto e = read_properties(r, bit(PacketType::kSubscribe), s.props, left)) return e;
  }
  while (r.left() > 0) {
    SubscribeTopic t;
    if (auto e = read_string(r, t.filter, "truncated topic filter")) return e;
    std::uint8_t opts;
    if (!r.u8(opts)) return malformed("missing subscription options");
    t.qos = opts & 0x03;
    if (t.qos == 3) {
      // 3.1.1: malformed [MQTT-3-8.3-4]; 5.0: "a Protocol Error if the Maximum QoS field has the value 3".
      return v5 ? protocol_error("subscription QoS 3") : malformed("subscription QoS 3");
    }
    if (v5) {
      if (opts & 0xC0) return malformed("reserved subscription option bits set");  // [MQTT-3.8.3-5]
      t.no_local = opts & 0x04;
      t.retain_as_published = opts & 0x08;
      t.retain_handling = (opts >> 4) & 0x03;
      if (t.retain_handling == 3) return protocol_error("retain handling 3");
    } else if (opts & 0xFC) {
      return malformed("reserved subscription option bits set");  // [MQTT-3.8.3-4]
    }
    s.topics.push_back(std::move(t));
  }
  if (s.topics.empty()) return protocol_error("SUBSCRIBE without topic filters");  // [MQTT-3.8.3-3]
  return {};
}

DecodeError decode_unsubscribe(const std::uint8_t* body, std::size_t n, bool v5, Unsubscribe& u,
                               std::uint32_t& left) {
  Reader r(body, n);
  if (!r.u16(u.packet_id)) return malformed("truncated packet identifier");
  if (u.packet_id == 0) return malformed("packet identifier 0");  // [MQTT-2.3.1-1]
  if (v5) {
    if (auto e = read_properties(r, bit(PacketType::kUnsubscribe), u.props, left)) return e;
  }
  while (r.left() > 0) {
    std::string f;
    if (auto e = read_string(r, f, "truncated topic filter")) return e;
    u.filters.push_back(std::move(f));
  }
  if (u.filters.empty()) return protocol_error("UNSUBSCRIBE without topic filters");  // [MQTT-3.10.3-2]
  return {};
}

DecodeError decode_suback(PacketType t, const std::uint8_t* body, std::size_t n, bool v5, SubAck& s,
                          std::uint32_t& left) {
  s.type = t;
  Reader r(body, n);
  if (!r.u16(s.packet_id)) return malformed("truncated packet identifier");
  if (v5) {
    if (auto e = read_properties(r, bit(t), s.props, left)) return e;
  }
  while (r.left() > 0) {
    std::uint8_t c;
    r.u8(c);
    s.codes.push_back(c);
  }
  if (t == PacketType::kSuback && s.codes.empty()) return protocol_error("SUBACK without codes");
  if (t == PacketType::kUnsuback && !v5 && n != 2) return malformed("UNSUBACK remaining length must be 2");
  return {};
}

DecodeError decode_connack(const std::uint8_t* body, std::size_t n, bool v5, Connack& c, std::uint32_t& left) {
  Reader r(body, n);
  std::uint8_t flags;
  if (!r.u8(flags) || !r.u8(c.code)) return malformed("truncated CONNACK");
  if (flags & 0xFE) return malformed("CONNACK reserved flags set");
  c.session_present = flags & 0x01;
  if (v5) {
    if (r.left() > 0) {
      if (auto e = read_properties(r, bit(PacketType::kConnack), c.props, left)) return e;
    }
  }
  if (r.left() != 0) return malformed("trailing bytes in CONNACK");
  return {};
}

DecodeError decode_reason_props(PacketType t, const std::uint8_t* body, std::size_t n, bool v5,
                                std::uint8_t& reason, Properties& props, std::uint32_t& left) {
  if (!v5) {
    if (n != 0) return malformed("DISCONNECT must be empty before MQTT 5");
    return {};
  }
  Reader r(body, n);
  if (r.left() >= 1) r.u8(reason);
  if (r.left() >= 1) {
    if (auto e = read_properties(r, bit(t), props, left)) return e;
  }
  if (r.left() != 0) return malformed("trailing bytes");
  return {};
}

}  // namespace

FrameStatus parse_frame(const std::uint8_t* data, std::size_t size, std::uint32_t max_packet_size,
                        FrameHeader& out, DecodeError& err) {
  if (size < 2) return FrameStatus::kIncomplete;
  out.first_byte = data[0];
  std::uint32_t value = 0;
  for (std::size_t i = 1;; ++i) {
    if (i > 4) {
      err = malformed("remaining length longer than 4 bytes");  // [MQTT-1.5.5-1]
      return FrameStatus::kError;
    }
    if (i >= size) return FrameStatus::kIncomplete;
    std::uint8_t b = data[i];
    value |= std::uint32_t{b & 0x7Fu} << (7 * (i - 1));
    if ((b & 0x80) == 0) {
      if (b == 0 && i > 1) {
        err = malformed("remaining length not minimally encoded");  // [MQTT-1.5.5-1]
        return FrameStatus::kError;
      }
      out.remaining_length = value;
      out.header_size = static_cast<std::uint32_t>(i + 1);
      break;
    }
  }
  if (max_packet_size != 0 && out.total() > max_packet_size) {
    err = {Reason::kPacketTooLarge, "packet exceeds the maximum packet size"};
    return FrameStatus::kError;
  }
  return size >= out.total() ? FrameStatus::kComplete : FrameStatus::kIncomplete;
}

DecodeError decode_packet(const FrameHeader& h, const std::uint8_t* body, Version version,
                          Packet& out, std::uint32_t max_properties) {
  std::uint32_t left = max_properties == 0 ? UINT32_MAX : max_properties;
  const bool v5 = version == Version::kV5;
  const std::size_t n = h.remaining_length;
  const std::uint8_t flags = h.first_byte & 0x0F;
  const PacketType t = h.type();
  // [MQTT-2.2.2-1]/[MQTT-2.2.2-2]: fixed header flags are fixed for every type but PUBLISH.
  if (t != PacketType::kPublish) {
    std::uint8_t expected =
        (t == PacketType::kPubrel || t == PacketType::kSubscribe || t == PacketType::kUnsubscribe) ? 2 : 0;
    if (flags != expected) return malformed("invalid fixed header flags");
  }
  switch (t) {
    case PacketType::kReserved: return malformed("packet type 0 is reserved");
    case PacketType::kConnect: return decode_connect(body, n, out.emplace<Connect>(), left);
    case PacketType::kConnack: return decode_connack(body, n, v5, out.emplace<Connack>(), left);
    case PacketType::kPublish: return decode_publish(flags, body, n, v5, out.emplace<Publish>(), left);
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: return decode_ack(t, body, n, v5, out.emplace<Ack>(), left);
    case PacketType::kSubscribe: return decode_subscribe(body, n, v5, out.emplace<Subscribe>(), left);
    case PacketType::kSuback:
    case PacketType::kUnsuback: return decode_suback(t, body, n, v5, out.emplace<SubAck>(), left);
    case PacketType::kUnsubscribe: return decode_unsubscribe(body, n, v5, out.emplace<Unsubscribe>(), left);
    case PacketType::kPingreq:
      out.emplace<Pingreq>();
      return n == 0 ? DecodeError{} : malformed("PINGREQ with a body");
    case PacketType::kPingresp:
      out.emplace<Pingresp>();
      return n == 0 ? DecodeError{} : malformed("PINGRESP with a body");
    case PacketType::kDisconnect: {
      auto& d = out.emplace<Disconnect>();
      if (auto e = decode_reason_props(t, body, n, v5, d.reason, d.props, left)) return e;
      return valid_reason(t, d.reason) ? DecodeError{} : protocol_error("not a DISCONNECT reason code");
    }
    case PacketType::kAuth: {
      if (!v5) return malformed("AUTH before MQTT 5");
      auto& a = out.emplace<Auth>();
      if (auto e = decode_reason_props(t, body, n, v5, a.reason, a.props, left)) return e;
      return valid_reason(t, a.reason) ? DecodeError{} : protocol_error("not an AUTH reason code");
    }
  }
  return malformed("unknown packet type");
}

DecodeError decode_publish_properties(const std::uint8_t* data, std::size_t size, Properties& out) {
  Reader r(data, size);
  std::uint32_t left = UINT32_MAX;  // stored records were within the limit when they arrived
  DecodeError e = read_properties(r, bit(PacketType::kPublish), out, left);
  if (!e && r.left() != 0) e = malformed("bytes after the property block");
  return e;
}

}  // namespace tern::codec
