// `tern store`: operator commands on the embedded store of a stopped broker (docs/store.md).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "config/config.hpp"
#include "store/fault_fs.hpp"
#include "store/store.hpp"

namespace tern::apps {

void store_usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: tern store check [-c config_file | PATH]\n"
               "       tern store dump [-c config_file | PATH]\n"
#if TERN_TEST_HOOKS
               "       tern store power-cut PATH\n"
#endif
               "\n"
               " check : read every record of the store and print the counts, then \"ok\" or the\n"
               "         first problem. Exit status 0 ok, 1 problem, 2 usage.\n"
               " dump  : print every record, one line each, in key order.\n"
#if TERN_TEST_HOOKS
               " power-cut : (test builds) turn PATH into what a power cut would have left, from\n"
               "         PATH.syncs, which a broker with persistence_track_syncs true wrote.\n"
#endif
               "\n"
               " -c : the store of this broker config file (persistence_location/tern-store).\n"
               " Without -c or PATH: tern-store in the working directory (the default).\n"
               " Run them on a stopped broker; relative paths are taken from the working directory,\n"
               " as the broker does.\n");
}

namespace {

constexpr int kOk = 0;
constexpr int kProblem = 1;
constexpr int kUsage = 2;

// The store path of `tern store check|dump` arguments (after the command), or false (printed).
bool store_path_of(int argc, char** argv, std::string& path) {
  config::Config cfg;
  if (argc == 2) {
    path = cfg.store_path();
    return true;
  }
  if (argc == 3 && argv[2][0] != '-') {
    path = argv[2];
    return true;
  }
  if (argc == 4 && (std::strcmp(argv[2], "-c") == 0 || std::strcmp(argv[2], "--config-file") == 0)) {
    try {
      config::load_file(argv[3], cfg);
      config::finalize(cfg);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "Error: %s\n", e.what());
      return false;
    }
    path = cfg.store_path();
    return true;
  }
  store_usage(stderr);
  return false;
}

int check_main(const std::string& path) {
  const store::CheckReport r = store::check(path);
  std::printf("store: %s\n", path.c_str());
  if (!r.ok && r.format_version == 0) {
    // Not opened, or not a Tern store: there is nothing to count.
    std::printf("problem: %s\n", r.problem.c_str());
    return kProblem;
  }
  std::printf("format version: %u\n", static_cast<unsigned>(r.format_version));
  std::printf("sessions: %llu\n", static_cast<unsigned long long>(r.sessions));
  std::printf("queue entries: %llu\n", static_cast<unsigned long long>(r.queue_entries));
  std::printf("inbound ids: %llu\n", static_cast<unsigned long long>(r.inbound));
  std::printf("messages: %llu\n", static_cast<unsigned long long>(r.messages));
  std::printf("retained: %llu\n", static_cast<unsigned long long>(r.retained));
  std::printf("unreferenced messages: %llu (deleted at the next start)\n", static_cast<unsigned long long>(r.unreferenced));
  std::printf("orphans: %llu (deleted at the next start)\n", static_cast<unsigned long long>(r.orphans));
  std::printf("bytes: %llu\n", static_cast<unsigned long long>(r.bytes));
  if (!r.ok) {
    std::printf("problem: %s\n", r.problem.c_str());
    return kProblem;
  }
  std::printf("ok\n");
  return kOk;
}

int dump_main(const std::string& path) {
  std::string error;
  const bool ok = store::dump(path, std::cout, error);
  std::cout.flush();
  if (!ok) {
    std::fprintf(stderr, "Error: %s\n", error.c_str());
    return kProblem;
  }
  return kOk;
}

#if TERN_TEST_HOOKS
// Regular files of a directory and their sizes.
std::map<std::string, std::uintmax_t> files_of(const std::string& dir) {
  std::map<std::string, std::uintmax_t> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec)) out[e.path().filename().string()] = e.file_size(ec);
  }
  return out;
}

int power_cut_main(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const std::string manifest = path + ".syncs";
  const auto before = files_of(path);
  std::string error;
  if (!store::simulate_power_cut(path, manifest, error)) {
    std::fprintf(stderr, "Error: %s\n", error.c_str());
    return kProblem;
  }
  // simulate_power_cut reports nothing itself: what it did is the difference in the directory.
  const auto after = files_of(path);
  unsigned changes = 0;
  for (const auto& [name, size] : before) {
    auto it = after.find(name);
    if (it == after.end()) {
      std::printf("dropped %s (%ju bytes, never made durable)\n", name.c_str(), size);
    } else if (it->second < size) {
      std::printf("truncated %s from %ju to %ju bytes\n", name.c_str(), size, it->second);
    } else if (it->second > size) {
      std::printf("restored %s: %ju bytes, was %ju\n", name.c_str(), it->second, size);
    } else {
      continue;
    }
    ++changes;
  }
  for (const auto& [name, size] : after) {
    if (before.count(name)) continue;
    std::printf("restored %s (%ju bytes, an unsynced rename undone)\n", name.c_str(), size);
    ++changes;
  }
  if (changes == 0) {
    // Also what a PATH spelled differently from the broker's gives: the manifest names its files.
    std::printf("nothing to undo: every file was synced (PATH must be spelled as the broker's store "
                "path, from its working directory)\n");
  }
  std::printf("power cut simulated on %s from %s\n", path.c_str(), manifest.c_str());
  return kOk;
}
#endif

}  // namespace

int store_main(int argc, char** argv) {
  if (argc < 2) {
    store_usage(stderr);
    return kUsage;
  }
  const std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    store_usage(stdout);
    return kOk;
  }
  if (cmd == "check" || cmd == "dump") {
    std::string path;
    if (!store_path_of(argc, argv, path)) return kUsage;
    return cmd == "check" ? check_main(path) : dump_main(path);
  }
#if TERN_TEST_HOOKS
  if (cmd == "power-cut") {
    if (argc != 3 || argv[2][0] == '-') {
      store_usage(stderr);
      return kUsage;
    }
    return power_cut_main(argv[2]);
  }
#endif
  std::fprintf(stderr, "Error: unknown store command '%s'.\n", cmd.c_str());
  store_usage(stderr);
  return kUsage;
}

}  // namespace tern::apps
