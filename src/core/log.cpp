#include "core/log.hpp"

#include <cstdio>

namespace tern::log {

namespace {
void stderr_sink(unsigned, const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }
Sink g_sink = stderr_sink;
unsigned g_levels = kError | kWarning | kNotice | kInformation;
}  // namespace

void set_sink(Sink sink, unsigned levels) {
  g_sink = sink;
  g_levels = levels;
}

bool enabled(unsigned level) { return (g_levels & level) != 0; }

void write(unsigned level, const std::string& line) {
  if (g_levels & level) g_sink(level, line);
}

}  // namespace tern::log
