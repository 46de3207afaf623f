#pragma once
// Logging vocabulary: layers below net emit one-line messages through a sink that the executable
// installs at startup (net/log.cpp). Levels follow Mosquitto's log_type names.
#include <atomic>
#include <string>

namespace tern::log {

enum Level : unsigned {
  kError = 1,
  kWarning = 2,
  kNotice = 4,
  kInformation = 8,
  kDebug = 16,
  kSubscribe = 32,
  kUnsubscribe = 64,
  kWebsockets = 128,
};

using Sink = void (*)(unsigned level, const std::string& line);

// Installed once before worker threads start; read-only afterwards.
void set_sink(Sink sink, unsigned enabled_levels);
bool enabled(unsigned level);
void write(unsigned level, const std::string& line);

}  // namespace tern::log
