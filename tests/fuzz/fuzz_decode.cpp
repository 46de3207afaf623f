// Checks the codec on any bytes (3.1, 3.1.1, 5.0): no crash, and accepted packets round-trip via encode.
#include <string>

#include "codec/codec.hpp"
#include "fuzz_common.hpp"

namespace codec = tern::codec;

namespace {

// Decodes the frame at the start of `bytes` (which must hold exactly one complete frame).
bool decode_one(const std::string& bytes, codec::Version v, codec::FrameHeader& h, codec::Packet& p) {
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  codec::DecodeError err;
  if (codec::parse_frame(data, bytes.size(), 0, h, err) != codec::FrameStatus::kComplete) return false;
  if (h.total() != bytes.size()) return false;
  return !codec::decode_packet(h, data + h.header_size, v, p);
}

void round_trip(const codec::FrameHeader& h, const codec::Packet& p, codec::Version v) {
  // The bytes may legitimately differ from the input: the encoder writes properties in one fixed
  // order, leaves out what the decoder defaults (a 5.0 ack's or DISCONNECT's reason 0 with no
  // properties) and writes what it may omit (an empty 5.0 CONNACK property block). The decoded
  // packets must be equal, and a second encoding byte-identical.
  std::string once;
  codec::encode_packet(p, v, once);
  FUZZ_CHECK(!once.empty());
  FUZZ_CHECK(static_cast<std::uint8_t>(once[0]) == h.first_byte);  // type and flags survive
  codec::FrameHeader h2;
  codec::Packet p2;
  FUZZ_CHECK(decode_one(once, v, h2, p2));
  FUZZ_CHECK(p2 == p);
  std::string twice;
  codec::encode_packet(p2, v, twice);
  FUZZ_CHECK(twice == once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  for (auto v : {codec::Version::kV31, codec::Version::kV311, codec::Version::kV5}) {
    // Consecutive frames, as a connection would see them; stop at the first incomplete or bad one.
    std::size_t off = 0;
    for (int frames = 0; off < size && frames < 64; ++frames) {
      codec::FrameHeader h;
      codec::DecodeError err;
      auto st = codec::parse_frame(data + off, size - off, 0, h, err);
      // A size limit only turns complete frames into errors, never the reverse.
      codec::FrameHeader hl;
      codec::DecodeError errl;
      auto stl = codec::parse_frame(data + off, size - off, 64, hl, errl);
      if (st == codec::FrameStatus::kError) {
        FUZZ_CHECK(err && stl == codec::FrameStatus::kError);
        break;
      }
      if (stl == codec::FrameStatus::kError) FUZZ_CHECK(h.total() > 64);
      if (st == codec::FrameStatus::kIncomplete) break;
      FUZZ_CHECK(h.header_size >= 2 && h.header_size <= 5);
      FUZZ_CHECK(h.total() <= size - off);
      codec::Packet p;
      auto e = codec::decode_packet(h, data + off + h.header_size, v, p);
      if (e) {
        FUZZ_CHECK(e.reason != tern::Reason::kSuccess);
      } else {
        round_trip(h, p, v);
      }
      off += h.total();
    }
  }
  return 0;
}
