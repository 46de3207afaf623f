#include "net/log.hpp"

#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>
#include <vector>

#include "core/log.hpp"

namespace tern::net {

namespace {

std::mutex g_mu;
std::vector<std::FILE*> g_files;
bool g_timestamp = true;
std::string g_format;

void sink(unsigned, const std::string& line) {
  char ts[128];
  ts[0] = 0;
  if (g_timestamp) {
    std::time_t now = std::time(nullptr);
    if (g_format.empty()) {
      std::snprintf(ts, sizeof ts, "%lld: ", static_cast<long long>(now));
    } else {
      std::tm tm{};
      localtime_r(&now, &tm);
      std::size_t n = std::strftime(ts, sizeof ts - 2, g_format.c_str(), &tm);
      ts[n] = ':';
      ts[n + 1] = ' ';
      ts[n + 2] = 0;
    }
  }
  std::lock_guard lock(g_mu);
  for (std::FILE* f : g_files) {
    std::fputs(ts, f);
    std::fwrite(line.data(), 1, line.size(), f);
    std::fputc('\n', f);
    std::fflush(f);
  }
}

}  // namespace

void init_logging(const config::Config& cfg) {
  g_timestamp = cfg.log_timestamp;
  g_format = cfg.log_timestamp_format;
  for (const auto& d : cfg.log_dest) {
    if (d == "stderr") {
      g_files.push_back(stderr);
    } else if (d == "stdout") {
      g_files.push_back(stdout);
    } else if (d.rfind("file ", 0) == 0) {
      std::string path = d.substr(5);
      std::FILE* f = std::fopen(path.c_str(), "a");
      if (!f) throw config::ConfigError("log_dest file " + path + ": cannot open for writing");
      g_files.push_back(f);
    }
  }
  log::set_sink(sink, cfg.log_types);
}

}  // namespace tern::net
