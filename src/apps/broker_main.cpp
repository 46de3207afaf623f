// `tern broker`: the MQTT broker. Options follow mosquitto(8) of Mosquitto 2.0.
#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.hpp"
#include "broker/snapshot.hpp"
#include "config/config.hpp"
#include "core/log.hpp"
#include "net/log.hpp"
#include "net/server.hpp"

namespace tern::apps {

void broker_usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: tern broker [-c config_file] [-d] [-h] [-p port] [-v]\n\n"
               " -c : specify the broker config file (mosquitto.conf(5) format).\n"
               " -d : put the broker into the background after starting.\n"
               " -h : display this help.\n"
               " -p : start the broker listening on the specified port.\n"
               "      Without a config file the broker listens on loopback only.\n"
               "      May be given several times.\n"
               " -v : verbose mode - enable all logging types (log_type all).\n"
               "      This overrides any logging options given in the config file.\n");
}

namespace {

// Drops root privileges after the listeners are bound, as Mosquitto does with `user`.
void drop_privileges(const config::Config& cfg) {
  if (geteuid() != 0) return;
  const passwd* pw = getpwnam(cfg.user.c_str());
  if (!pw && cfg.user_set) {
    // As Mosquitto: only the default user may fall back to nobody.
    throw std::runtime_error(fmt::format("Unable to drop privileges to '{}' because this user does not exist.", cfg.user));
  }
  if (!pw) {
    log::write(log::kWarning, fmt::format("Warning: Unable to drop privileges to '{}' because this user does not exist. Trying 'nobody' instead.", cfg.user));
    pw = getpwnam("nobody");
    if (!pw) {
      log::write(log::kWarning, "Warning: Unable to drop privileges to 'nobody'.");
      return;
    }
  }
  if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
    throw std::runtime_error(fmt::format("cannot drop privileges to '{}': {}", pw->pw_name, std::strerror(errno)));
  }
}

// Fails at start, not at the first save, when the snapshot cannot be written where configured.
void check_writable(const std::string& path) {
  std::string probe = path + ".new";
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (!f) throw std::runtime_error(fmt::format("cannot write persistence file {}: {}", probe, std::strerror(errno)));
  std::fclose(f);
  ::unlink(probe.c_str());
}

}  // namespace

int broker_main(int argc, char** argv) {
  std::string config_file;
  std::vector<std::uint16_t> ports;
  bool verbose = false;
  bool daemonize = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "-c" || a == "--config-file") && i + 1 < argc) {
      config_file = argv[++i];
    } else if ((a == "-p" || a == "--port") && i + 1 < argc) {
      char* end = nullptr;
      long p = std::strtol(argv[++i], &end, 10);
      if (*end != 0 || p < 0 || p > 65535) {
        std::fprintf(stderr, "Error: Invalid port given: %s\n", argv[i]);
        return 1;
      }
      ports.push_back(static_cast<std::uint16_t>(p));
    } else if (a == "-v" || a == "--verbose") {
      verbose = true;
    } else if (a == "-d" || a == "--daemon") {
      daemonize = true;
    } else if (a == "-h" || a == "--help") {
      broker_usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "Error: Unknown option '%s'.\n", a.c_str());
      broker_usage(stderr);
      return 1;
    }
  }
  config::Config cfg;
  try {
    if (!config_file.empty()) config::load_file(config_file, cfg);
    for (auto port : ports) {
      config::Listener l;
      l.port = port;
      if (!cfg.listeners_configured) {
        // Local-only mode (no listener in the configuration): loopback addresses only.
        l.bind_address = "127.0.0.1";
        cfg.listeners.push_back(l);
        l.bind_address = "::1";
      }
      cfg.listeners.push_back(l);
    }
    config::finalize(cfg);
    if (verbose) cfg.log_types = config::kLogAll;
    net::init_logging(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "Error: %s\n", e.what());
    return 3;
  }
  for (const auto& w : cfg.warnings) log::write(log::kWarning, "Warning: " + w);
  // As Mosquitto, the daemon keeps the working directory, so relative paths (pid_file,
  // persistence_location) mean the same with and without -d.
  if (daemonize && daemon(1, 0) != 0) {
    std::fprintf(stderr, "Error: cannot daemonize: %s\n", std::strerror(errno));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  unsigned workers = cfg.workers ? cfg.workers : std::max(1u, std::thread::hardware_concurrency());
  log::write(log::kNotice, fmt::format("tern version {} starting with {} worker{}.", TERN_VERSION, workers,
                                       workers == 1 ? "" : "s"));
  if (config_file.empty()) {
    log::write(log::kNotice, "Using default config.");
  } else {
    log::write(log::kNotice, fmt::format("Config loaded from {}.", config_file));
  }
  try {
    broker::Broker broker(cfg, workers);
    net::Server server(cfg, broker);
    server.bind();
    if (!cfg.listeners_configured) {
      log::write(log::kNotice, "Starting in local only mode. Connections will only be possible from clients running on this machine.");
    }
    if (!cfg.pid_file.empty()) {
      std::ofstream pf(cfg.pid_file);
      if (!pf) throw std::runtime_error("cannot write pid_file " + cfg.pid_file);
      pf << getpid() << "\n";
    }
    drop_privileges(cfg);
    if (cfg.persistence) {
      // Read after dropping privileges, so the file's directory is checked as the user that will
      // write it.
      broker::RestoreCounts counts;
      std::string error;
      if (!broker::load_snapshot(cfg.persistence_path(), broker, counts, error)) throw std::runtime_error(error);
      log::write(log::kNotice, fmt::format("Restored {} sessions and {} retained messages from {}.", counts.sessions,
                                           counts.retained, cfg.persistence_path()));
      check_writable(cfg.persistence_path());
    }
    int rc = server.run();
    if (!cfg.pid_file.empty()) ::unlink(cfg.pid_file.c_str());
    return rc;
  } catch (const std::exception& e) {
    log::write(log::kError, fmt::format("Error: {}", e.what()));
    return 1;
  }
}

}  // namespace tern::apps
