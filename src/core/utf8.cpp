#include "core/utf8.hpp"

#include <cstdint>

namespace tern {

namespace {
bool check_utf8(std::string_view s, bool allow_nul) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    std::uint8_t c = *p;
    if (c < 0x80) {
      if (c == 0 && !allow_nul) return false;  // [MQTT-1.5.3-2]
      ++p;
      continue;
    }
    std::uint32_t cp = 0;
    int extra = 0;
    std::uint32_t min = 0;
    if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F; extra = 1; min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F; extra = 2; min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07; extra = 3; min = 0x10000;
    } else {
      return false;
    }
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      std::uint8_t cc = p[i];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF) return false;        // overlong or out of range
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;     // [MQTT-1.5.3-1] surrogates
    p += extra + 1;
  }
  return true;
}
}  // namespace

bool valid_mqtt_utf8(std::string_view s) { return check_utf8(s, false); }
bool valid_utf8_payload(std::string_view s) { return check_utf8(s, true); }

}  // namespace tern
