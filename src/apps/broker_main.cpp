// `tern broker`: the MQTT broker. Options follow mosquitto(8) of Mosquitto 2.0.
#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "broker/auth.hpp"
#include "broker/broker.hpp"
#include "store/store.hpp"
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

// The account Tern runs as when started as root (null: it stays root).
const passwd* run_as(const config::Config& cfg) {
  if (geteuid() != 0) return nullptr;
  const passwd* pw = getpwnam(cfg.user.c_str());
  return pw ? pw : getpwnam("nobody");
}

// Started as root, Tern creates the store's directory and gives it to the account it will run as,
// so the store can be opened after the privileges are dropped (Mosquitto's Debian package does the
// same for /var/lib/mosquitto).
void prepare_store_dir(const config::Config& cfg) {
  const passwd* pw = run_as(cfg);
  if (!pw) return;
  namespace fs = std::filesystem;
  const fs::path dir = cfg.store_path();
  std::error_code ec;
  fs::create_directory(dir, ec);  // persistence_location itself must exist, as with Mosquitto
  if (ec) throw std::runtime_error(fmt::format("cannot create the store directory {}: {}", dir.string(), ec.message()));
  if (::chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    throw std::runtime_error(fmt::format("cannot give the store directory {} to {}: {}", dir.string(), pw->pw_name, std::strerror(errno)));
  }
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (::lchown(e.path().c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      throw std::runtime_error(fmt::format("cannot give {} to {}: {}", e.path().string(), pw->pw_name, std::strerror(errno)));
    }
  }
  const std::string syncs = dir.string() + ".syncs";
  if (fs::exists(syncs, ec)) (void)::chown(syncs.c_str(), pw->pw_uid, pw->pw_gid);
}

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
  // A SIGHUP before the broker serves (while the store loads) must not end it; once serving, it
  // reloads the security files.
  signal(SIGHUP, SIG_IGN);
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
    // Password and ACL files: a file that does not load stops the start, before any port opens.
    broker.set_auth(broker::Auth::load(cfg));
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
    if (cfg.persistence) prepare_store_dir(cfg);
    drop_privileges(cfg);
    // Declared after the broker and the server: the store's completions call into both, so it is
    // closed (and destroyed) first.
    std::unique_ptr<store::Store> st;
    if (cfg.persistence) {
      // Opened after dropping privileges, as the account that writes it.
      const auto t0 = std::chrono::steady_clock::now();
      store::Options so;
      so.path = std::filesystem::absolute(cfg.store_path()).lexically_normal().string();
      so.mode = cfg.persistence_mode == config::Config::PersistenceMode::kBatched ? store::Options::Mode::kBatched
                                                                                  : store::Options::Mode::kSync;
      so.batch_window = std::chrono::milliseconds(cfg.persistence_batch_window);
      so.max_bytes = cfg.persistence_max_size;
      so.track_syncs = cfg.persistence_track_syncs;
      std::string error;
      st = store::Store::open(so, error);
      if (!st) throw std::runtime_error(error);
      broker.set_store(st.get());
      broker::Broker::Recovered counts;
      if (!broker.recover(counts, error)) throw std::runtime_error(error);
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
      log::write(log::kNotice,
                 fmt::format("Store {} ({} mode): restored {} sessions, {} queued and {} in-flight messages, {} inbound "
                             "QoS 2 ids and {} retained messages in {} ms; {} expired records removed.",
                             so.path, so.mode == store::Options::Mode::kSync ? "sync" : "batched", counts.sessions,
                             counts.queued, counts.inflight, counts.inbound, counts.retained, ms, counts.expired));
    }
    int rc = server.run();
    if (st) {
      // Graceful stop: what was submitted is written and synced, then the store is closed.
      st->close();
      const auto c = st->counters();
      log::write(log::kNotice, fmt::format("Store: {} writes, {} syncs, {} batches, {} records.", c.writes, c.syncs,
                                           c.batches, c.records));
    }
    if (!cfg.pid_file.empty()) ::unlink(cfg.pid_file.c_str());
    return rc;
  } catch (const std::exception& e) {
    log::write(log::kError, fmt::format("Error: {}", e.what()));
    return 1;
  }
}

}  // namespace tern::apps
