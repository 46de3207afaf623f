// Checks that the config parser accepts any text or throws ConfigError, and never crashes or leaks.
#include <cstdlib>
#include <sstream>
#include <string>

#include "config/config.hpp"
#include "fuzz_common.hpp"

namespace config = tern::config;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  // include_dir reads whatever directory it names: keep the run hermetic (it is covered by the unit
  // tests on a temporary directory).
  if (text.find("include_dir") != std::string::npos) return -1;
  config::Config cfg;
  try {
    config::load_string(text, "fuzz.conf", cfg);
    config::finalize(cfg);  // the checks that need the whole file (TLS settings of a listener)
  } catch (const config::ConfigError&) {
    return 0;  // a rejected file: the documented outcome
  }
  FUZZ_CHECK(!cfg.listeners.empty());
  FUZZ_CHECK(!cfg.log_dest.empty());
  (void)cfg.effective_allow_anonymous();
  return 0;
}
