#include "client/debug_log.hpp"

#include <fmt/format.h>

#include <variant>

namespace tern::client {

std::vector<std::string> packet_log_lines(std::string_view client_id, bool sent, const codec::Packet& pkt,
                                          std::size_t payload_size, std::uint16_t mid) {
  std::string id(client_id.empty() ? std::string_view("(null)") : client_id);
  if (auto* c = std::get_if<codec::Connack>(&pkt); c && c->props.assigned_client_id) id = *c->props.assigned_client_id;
  const char* dir = sent ? "sending" : "received";
  std::vector<std::string> lines;
  std::visit(
      [&](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, codec::Connect>) {
          lines.push_back(fmt::format("Client {} {} CONNECT", id, dir));
        } else if constexpr (std::is_same_v<T, codec::Connack>) {
          lines.push_back(fmt::format("Client {} {} CONNACK ({})", id, dir, p.code));
        } else if constexpr (std::is_same_v<T, codec::Publish>) {
          lines.push_back(fmt::format("Client {} {} PUBLISH (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))", id, dir,
                                      p.dup ? 1 : 0, p.qos, p.retain ? 1 : 0, sent ? mid : p.packet_id, p.topic,
                                      payload_size));
        } else if constexpr (std::is_same_v<T, codec::Ack>) {
          const char* name = codec::packet_name(p.type);
          if (sent) {
            if (p.type == codec::PacketType::kPuback || p.type == codec::PacketType::kPubrec) {
              lines.push_back(fmt::format("Client {} sending {} (m{}, rc{})", id, name, p.packet_id, p.reason));
            } else {
              lines.push_back(fmt::format("Client {} sending {} (m{})", id, name, p.packet_id));
            }
          } else if (p.type == codec::PacketType::kPuback || p.type == codec::PacketType::kPubcomp) {
            lines.push_back(fmt::format("Client {} received {} (Mid: {}, RC:{})", id, name, p.packet_id, p.reason));
          } else {
            lines.push_back(fmt::format("Client {} received {} (Mid: {})", id, name, p.packet_id));
          }
        } else if constexpr (std::is_same_v<T, codec::Subscribe>) {
          for (const auto& t : p.topics) {
            const unsigned options = (t.no_local ? 0x04 : 0) | (t.retain_as_published ? 0x08 : 0) | (t.retain_handling << 4);
            lines.push_back(fmt::format("Client {} sending SUBSCRIBE (Mid: {}, Topic: {}, QoS: {}, Options: 0x{:02x})",
                                        id, p.packet_id, t.filter, t.qos, options));
          }
        } else if constexpr (std::is_same_v<T, codec::Unsubscribe>) {
          for (const auto& f : p.filters) {
            lines.push_back(fmt::format("Client {} sending UNSUBSCRIBE (Mid: {}, Topic: {})", id, p.packet_id, f));
          }
        } else if constexpr (std::is_same_v<T, codec::SubAck>) {
          lines.push_back(fmt::format("Client {} {} {}", id, dir, codec::packet_name(p.type)));
        } else if constexpr (std::is_same_v<T, codec::Pingreq>) {
          lines.push_back(fmt::format("Client {} {} PINGREQ", id, dir));
        } else if constexpr (std::is_same_v<T, codec::Pingresp>) {
          lines.push_back(fmt::format("Client {} {} PINGRESP", id, dir));
        } else if constexpr (std::is_same_v<T, codec::Disconnect>) {
          if (sent) {
            lines.push_back(fmt::format("Client {} sending DISCONNECT", id));
          } else {
            lines.push_back(fmt::format("Client {} received DISCONNECT ({})", id, p.reason));
          }
        } else {
          lines.push_back(fmt::format("Client {} {} AUTH", id, dir));
        }
      },
      pkt);
  return lines;
}

}  // namespace tern::client
