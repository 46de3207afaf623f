#pragma once
// Log output for the executable: Mosquitto's timestamp formats and destinations.
#include "config/config.hpp"

namespace tern::net {

// Opens the destinations of cfg.log_dest and installs the sink. Call before threads start.
void init_logging(const config::Config& cfg);

}  // namespace tern::net
