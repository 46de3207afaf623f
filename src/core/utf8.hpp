#pragma once
#include <string_view>

namespace tern {

// Validates an MQTT UTF-8 Encoded String: well-formed UTF-8 [MQTT-1.5.3-1], no surrogate code points
// U+D800..U+DFFF [MQTT-1.5.3-1], no U+0000 [MQTT-1.5.3-2]. Overlong encodings and code points above
// U+10FFFF are ill-formed.
bool valid_mqtt_utf8(std::string_view s);
// Validates UTF-8 Encoded Character Data (a payload with Payload Format Indicator 1): well-formed, no
// surrogates; U+0000 is allowed there.
bool valid_utf8_payload(std::string_view s);

}  // namespace tern
