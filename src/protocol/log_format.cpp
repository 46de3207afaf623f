#include "protocol/log_format.hpp"

#include <fmt/format.h>

namespace tern::protocol {

std::string publish_log_line(bool sending, std::string_view client_id, bool dup, int qos, bool retain,
                             int mid, std::string_view topic, std::size_t payload_size) {
  return fmt::format("{} PUBLISH {} {} (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
                     sending ? "Sending" : "Received", sending ? "to" : "from", client_id, dup ? 1 : 0,
                     qos, retain ? 1 : 0, mid, topic, payload_size);
}

}  // namespace tern::protocol
