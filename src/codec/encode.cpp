#include "codec/codec.hpp"

namespace tern::codec {

namespace {

void put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }
void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}
void put_u32(std::string& out, std::uint32_t v) {
  put_u16(out, static_cast<std::uint16_t>(v >> 16));
  put_u16(out, static_cast<std::uint16_t>(v & 0xFFFF));
}
void put_str(std::string& out, std::string_view s) {
  put_u16(out, static_cast<std::uint16_t>(s.size()));
  out.append(s);
}

std::size_t str_size(std::string_view s) { return 2 + s.size(); }

// Size of the property block including its length prefix; 0 on 3.x.
std::size_t props_block(const Properties& p, bool v5) {
  if (!v5) return 0;
  std::size_t n = properties_size(p);
  return varint_size(static_cast<std::uint32_t>(n)) + n;
}

void put_props_block(const Properties& p, bool v5, std::string& out) {
  if (v5) encode_property_block(p, out);
}

void put_fixed(std::string& out, std::uint8_t first, std::size_t remaining) {
  put_u8(out, first);
  put_varint(static_cast<std::uint32_t>(remaining), out);
}

std::uint8_t first_byte(PacketType t, std::uint8_t flags = 0) {
  return static_cast<std::uint8_t>((static_cast<unsigned>(t) << 4) | flags);
}

void encode(const Connect& c, Version, std::string& out) {
  const bool v5 = c.version == Version::kV5;
  std::size_t n = str_size(c.protocol_name) + 1 + 1 + 2 + props_block(c.props, v5) + str_size(c.client_id);
  std::uint8_t flags = c.clean_start ? 0x02 : 0;
  if (c.will) {
    flags |= 0x04 | static_cast<std::uint8_t>(c.will->qos << 3) | (c.will->retain ? 0x20 : 0);
    n += props_block(c.will->props, v5) + str_size(c.will->topic) + str_size(c.will->payload);
  }
  if (c.username) {
    flags |= 0x80;
    n += str_size(*c.username);
  }
  if (c.password) {
    flags |= 0x40;
    n += str_size(*c.password);
  }
  put_fixed(out, first_byte(PacketType::kConnect), n);
  put_str(out, c.protocol_name);
  put_u8(out, static_cast<std::uint8_t>(c.version));
  put_u8(out, flags);
  put_u16(out, c.keepalive);
  put_props_block(c.props, v5, out);
  put_str(out, c.client_id);
  if (c.will) {
    put_props_block(c.will->props, v5, out);
    put_str(out, c.will->topic);
    put_str(out, c.will->payload);
  }
  if (c.username) put_str(out, *c.username);
  if (c.password) put_str(out, *c.password);
}

void encode(const Connack& c, Version v, std::string& out) {
  const bool v5 = v == Version::kV5;
  put_fixed(out, first_byte(PacketType::kConnack), 2 + props_block(c.props, v5));
  put_u8(out, c.session_present ? 1 : 0);
  put_u8(out, c.code);
  put_props_block(c.props, v5, out);
}

void encode(const Publish& p, Version v, std::string& out) {
  encode_publish_header(p, v, p.payload.size(), out);
  out.append(p.payload);
}

void encode(const Ack& a, Version v, std::string& out) {
  const bool v5 = v == Version::kV5;
  std::uint8_t flags = a.type == PacketType::kPubrel ? 2 : 0;
  // MQTT 5: reason code and properties may be omitted when success and no properties (3.4.2.1).
  bool has_props = v5 && properties_size(a.props) > 0;
  bool has_reason = v5 && (a.reason != 0 || has_props);
  std::size_t n = 2 + (has_reason ? 1 : 0) + (has_props ? props_block(a.props, true) : 0);
  put_fixed(out, first_byte(a.type, flags), n);
  put_u16(out, a.packet_id);
  if (has_reason) put_u8(out, a.reason);
  if (has_props) put_props_block(a.props, true, out);
}

void encode(const Subscribe& s, Version v, std::string& out) {
  const bool v5 = v == Version::kV5;
  std::size_t n = 2 + props_block(s.props, v5);
  for (const auto& t : s.topics) n += str_size(t.filter) + 1;
  put_fixed(out, first_byte(PacketType::kSubscribe, 2), n);
  put_u16(out, s.packet_id);
  put_props_block(s.props, v5, out);
  for (const auto& t : s.topics) {
    put_str(out, t.filter);
    std::uint8_t o = t.qos;
    if (v5) {
      o |= (t.no_local ? 0x04 : 0) | (t.retain_as_published ? 0x08 : 0) |
           static_cast<std::uint8_t>(t.retain_handling << 4);
    }
    put_u8(out, o);
  }
}

void encode(const SubAck& s, Version v, std::string& out) {
  const bool v5 = v == Version::kV5;
  bool codes = s.type == PacketType::kSuback || v5;
  std::size_t n = 2 + props_block(s.props, v5) + (codes ? s.codes.size() : 0);
  put_fixed(out, first_byte(s.type), n);
  put_u16(out, s.packet_id);
  put_props_block(s.props, v5, out);
  if (codes) {
    for (auto c : s.codes) put_u8(out, c);
  }
}

void encode(const Unsubscribe& u, Version v, std::string& out) {
  const bool v5 = v == Version::kV5;
  std::size_t n = 2 + props_block(u.props, v5);
  for (const auto& f : u.filters) n += str_size(f);
  put_fixed(out, first_byte(PacketType::kUnsubscribe, 2), n);
  put_u16(out, u.packet_id);
  put_props_block(u.props, v5, out);
  for (const auto& f : u.filters) put_str(out, f);
}

void encode(const Pingreq&, Version, std::string& out) { put_fixed(out, first_byte(PacketType::kPingreq), 0); }
void encode(const Pingresp&, Version, std::string& out) {
  put_fixed(out, first_byte(PacketType::kPingresp), 0);
}

void encode_reason_props(PacketType t, std::uint8_t reason, const Properties& props, Version v,
                         std::string& out) {
  if (v != Version::kV5) {
    put_fixed(out, first_byte(t), 0);
    return;
  }
  bool has_props = properties_size(props) > 0;
  if (reason == 0 && !has_props) {
    put_fixed(out, first_byte(t), 0);
    return;
  }
  put_fixed(out, first_byte(t), 1 + (has_props ? props_block(props, true) : 0));
  put_u8(out, reason);
  if (has_props) put_props_block(props, true, out);
}

void encode(const Disconnect& d, Version v, std::string& out) {
  encode_reason_props(PacketType::kDisconnect, d.reason, d.props, v, out);
}
void encode(const Auth& a, Version v, std::string& out) {
  encode_reason_props(PacketType::kAuth, a.reason, a.props, v, out);
}

}  // namespace

void put_varint(std::uint32_t v, std::string& out) {
  do {
    std::uint8_t b = v & 0x7F;
    v >>= 7;
    if (v) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (v);
}

std::size_t varint_size(std::uint32_t v) {
  if (v < 128) return 1;
  if (v < 16384) return 2;
  if (v < 2097152) return 3;
  return 4;
}

std::size_t properties_size(const Properties& p) {
  std::size_t n = 0;
  if (p.payload_format) n += 2;
  if (p.message_expiry) n += 5;
  if (p.content_type) n += 1 + str_size(*p.content_type);
  if (p.response_topic) n += 1 + str_size(*p.response_topic);
  if (p.correlation_data) n += 1 + str_size(*p.correlation_data);
  for (auto id : p.subscription_ids) n += 1 + varint_size(id);
  if (p.session_expiry) n += 5;
  if (p.assigned_client_id) n += 1 + str_size(*p.assigned_client_id);
  if (p.server_keep_alive) n += 3;
  if (p.auth_method) n += 1 + str_size(*p.auth_method);
  if (p.auth_data) n += 1 + str_size(*p.auth_data);
  if (p.request_problem_info) n += 2;
  if (p.will_delay) n += 5;
  if (p.request_response_info) n += 2;
  if (p.response_info) n += 1 + str_size(*p.response_info);
  if (p.server_reference) n += 1 + str_size(*p.server_reference);
  if (p.reason_string) n += 1 + str_size(*p.reason_string);
  if (p.receive_maximum) n += 3;
  if (p.topic_alias_maximum) n += 3;
  if (p.topic_alias) n += 3;
  if (p.maximum_qos) n += 2;
  if (p.retain_available) n += 2;
  for (const auto& u : p.user_properties) n += 1 + str_size(u.key) + str_size(u.value);
  if (p.maximum_packet_size) n += 5;
  if (p.wildcard_sub_available) n += 2;
  if (p.sub_id_available) n += 2;
  if (p.shared_sub_available) n += 2;
  return n;
}

void encode_properties(const Properties& p, std::string& out) {
  auto b = [&](std::uint8_t id, const std::optional<std::uint8_t>& v) {
    if (v) { put_u8(out, id); put_u8(out, *v); }
  };
  auto h = [&](std::uint8_t id, const std::optional<std::uint16_t>& v) {
    if (v) { put_u8(out, id); put_u16(out, *v); }
  };
  auto w = [&](std::uint8_t id, const std::optional<std::uint32_t>& v) {
    if (v) { put_u8(out, id); put_u32(out, *v); }
  };
  auto s = [&](std::uint8_t id, const std::optional<std::string>& v) {
    if (v) { put_u8(out, id); put_str(out, *v); }
  };
  b(0x01, p.payload_format);
  w(0x02, p.message_expiry);
  s(0x03, p.content_type);
  s(0x08, p.response_topic);
  s(0x09, p.correlation_data);
  for (auto id : p.subscription_ids) {
    put_u8(out, 0x0B);
    put_varint(id, out);
  }
  w(0x11, p.session_expiry);
  s(0x12, p.assigned_client_id);
  h(0x13, p.server_keep_alive);
  s(0x15, p.auth_method);
  s(0x16, p.auth_data);
  b(0x17, p.request_problem_info);
  w(0x18, p.will_delay);
  b(0x19, p.request_response_info);
  s(0x1A, p.response_info);
  s(0x1C, p.server_reference);
  s(0x1F, p.reason_string);
  h(0x21, p.receive_maximum);
  h(0x22, p.topic_alias_maximum);
  h(0x23, p.topic_alias);
  b(0x24, p.maximum_qos);
  b(0x25, p.retain_available);
  for (const auto& u : p.user_properties) {
    put_u8(out, 0x26);
    put_str(out, u.key);
    put_str(out, u.value);
  }
  w(0x27, p.maximum_packet_size);
  b(0x28, p.wildcard_sub_available);
  b(0x29, p.sub_id_available);
  b(0x2A, p.shared_sub_available);
}

void encode_publish_header(const Publish& p, Version v, std::size_t payload_size, std::string& out) {
  const bool v5 = v == Version::kV5;
  std::size_t n = str_size(p.topic) + (p.qos > 0 ? 2 : 0) + props_block(p.props, v5) + payload_size;
  std::uint8_t flags = static_cast<std::uint8_t>((p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 1 : 0));
  put_fixed(out, first_byte(PacketType::kPublish, flags), n);
  put_str(out, p.topic);
  if (p.qos > 0) put_u16(out, p.packet_id);
  put_props_block(p.props, v5, out);
}

void encode_property_block(const Properties& p, std::string& out) {
  put_varint(static_cast<std::uint32_t>(properties_size(p)), out);
  encode_properties(p, out);
}

void encode_packet(const Packet& packet, Version version, std::string& out) {
  std::visit([&](const auto& p) { encode(p, version, out); }, packet);
}

}  // namespace tern::codec
