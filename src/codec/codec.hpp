#pragma once
// Bytes <-> packets. No I/O: the caller feeds bytes and gets packets or a precise error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "codec/packet.hpp"
#include "core/reason_code.hpp"

namespace tern::codec {

// Why a packet could not be decoded. `reason` is the MQTT 5 reason code that applies (0x81 malformed,
// 0x82 protocol error, 0x95 too large, ...); `what` is a one-line explanation for the log.
struct DecodeError {
  Reason reason = Reason::kSuccess;
  const char* what = nullptr;
  // CONNECT only: the protocol name is not MQTT/MQIsdp, so close without CONNACK [MQTT-3.1.2-1].
  bool no_connack = false;
  explicit operator bool() const { return what != nullptr; }
};

// Fixed header of one packet.
struct FrameHeader {
  std::uint8_t first_byte = 0;
  std::uint32_t remaining_length = 0;
  std::uint32_t header_size = 0;  // 2..5
  PacketType type() const { return static_cast<PacketType>(first_byte >> 4); }
  std::size_t total() const { return header_size + static_cast<std::size_t>(remaining_length); }
};

enum class FrameStatus { kIncomplete, kComplete, kError };

// Parses the fixed header at the start of [data, data+size). kComplete when the whole packet is in
// the buffer. Checks the remaining-length encoding [MQTT-1.5.5-1] (at most 4 bytes, minimal) and the
// total size against max_packet_size (0x95 when exceeded).
FrameStatus parse_frame(const std::uint8_t* data, std::size_t size, std::uint32_t max_packet_size,
                        FrameHeader& out, DecodeError& err);

// Decodes one complete packet body. `version` is the connection's negotiated version (ignored for
// CONNECT, which carries its own). Validates fixed-header flags, packet ids, UTF-8, properties.
// `max_properties` bounds the properties of the packet (each user property counts; a CONNECT's will
// properties too); more is 0x97 Quota exceeded, found before the rest is decoded. 0 = no bound.
DecodeError decode_packet(const FrameHeader& header, const std::uint8_t* body, Version version,
                          Packet& out, std::uint32_t max_properties = 0);

// Encodes a packet for the given version, appending to `out`.
void encode_packet(const Packet& packet, Version version, std::string& out);

// PUBLISH encoding split for fan-out: the header (fixed header, topic, packet id, properties) is
// written to `out`; the caller sends `payload_size` payload bytes after it.
void encode_publish_header(const Publish& p, Version version, std::size_t payload_size,
                           std::string& out);

// Helpers shared by the encoder and tests.
void put_varint(std::uint32_t v, std::string& out);
std::size_t varint_size(std::uint32_t v);
// The properties alone, without the block's length.
void encode_properties(const Properties& props, std::string& out);
std::size_t properties_size(const Properties& props);
// A property block: its length (Variable Byte Integer), then the properties. For stored records.
void encode_property_block(const Properties& props, std::string& out);
// Decodes a property block as encode_property_block writes it, with the rules of a PUBLISH
// packet's properties. For stored records; the packet decoder uses the same code.
DecodeError decode_publish_properties(const std::uint8_t* data, std::size_t size, Properties& out);

}  // namespace tern::codec
