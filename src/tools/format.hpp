#pragma once
// The output of `tern sub`: the exact bytes Debian 12's mosquitto_sub 2.0.11 prints for one received
// PUBLISH, in every output mode (payload only, -v, -N, -F format, --pretty). Pure functions: no I/O,
// no state; any thread may call them. The reference is the measured behaviour of mosquitto_sub,
// not its man page; docs/tools-format.md lists where the two differ.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "codec/packet.hpp"

namespace tern::tools {

struct OutputFormat {
  bool verbose = false;               // -v
  bool eol = true;                    // false with -N
  bool pretty = false;                // --pretty
  std::optional<std::string> format;  // -F
};

// Checks a -F format string as mosquitto_sub does before it connects. Returns "" when it is valid,
// else the error line mosquitto_sub prints (without the newline), e.g.
// "Error: Invalid format specifier 'z'." (mosquitto_sub then prints
// "\nUse 'mosquitto_sub --help' to see usage.\n" and exits with status 1).
std::string check_format(std::string_view format);

// Appends to `out` what mosquitto_sub prints for `msg` (received at `when`; the local time zone is
// the one localtime_r uses, so call tzset() after changing TZ). Returns what mosquitto_sub writes to
// stderr for this message: "" or one "Error: Message payload is not valid JSON on topic T.\n" line
// per %J whose payload is not JSON. A format that check_format rejects is printed best-effort.
// The default and -v modes only append to `out`: no allocation, no time conversion.
std::string format_message(const OutputFormat& f, const codec::Publish& msg, std::chrono::system_clock::time_point when,
                           std::string& out);

}  // namespace tern::tools
