// The store's record decoders (src/store/records.hpp) on arbitrary keys and values: they must never
// crash or read out of bounds, and whatever they accept must encode back to a record that decodes
// to the same value under the same key.
// Input: byte 0 picks the decoder (message, session, queue entry, inbound id, retained, format
// version), byte 1 is the key's length, then the key (with its prefix byte), then the value.
#include <algorithm>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "store/records.hpp"

namespace {

using namespace tern::store;

template <typename Record>
void round_trip(std::string_view key, std::string_view value) {
  Record r;
  if (decode(key, value, r)) return;
  // Keys are canonical: the record's own key is the one it was read under.
  FUZZ_CHECK(key_of(r) == key);
  std::string again;
  encode_value(r, again);
  Record back;
  FUZZ_CHECK(!decode(key, again, back));
  FUZZ_CHECK(back == r);
  FUZZ_CHECK(valid(r));
  // A strict decoder accepts no prefix of what it just wrote.
  FUZZ_CHECK(decode(key, std::string_view(again).substr(0, again.size() - 1), back));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const std::size_t klen = std::min<std::size_t>(data[1], size - 2);
  const std::string_view key = all.substr(2, klen);
  const std::string_view value = all.substr(2 + klen);
  switch (data[0] % 6) {
    case 0:
      round_trip<MessageRecord>(key, value);
      break;
    case 1:
      round_trip<SessionRecord>(key, value);
      break;
    case 2:
      round_trip<QueueEntry>(key, value);
      break;
    case 3:
      round_trip<InboundQos2>(key, value);
      break;
    case 4:
      round_trip<RetainedRecord>(key, value);
      break;
    default: {
      std::uint32_t version = 0;
      if (!decode_format_version(value, version)) {
        std::string again;
        encode_format_version(version, again);
        FUZZ_CHECK(again == value);
      }
      break;
    }
  }
  return 0;
}
