// The one `tern` executable: subcommands dispatch to thin main functions.
#include <cstdio>
#include <cstring>
#include <string>

#include "apps/client_tools.hpp"
#include "tools/options.hpp"

namespace tern::apps {
int broker_main(int argc, char** argv);
void broker_usage(std::FILE* out);
int store_main(int argc, char** argv);
void store_usage(std::FILE* out);
int passwd_main(int argc, char** argv);
void passwd_usage(std::FILE* out);
}  // namespace tern::apps

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "tern %s: an MQTT 3.1, 3.1.1 and 5.0 broker and toolkit\n\n"
               "Usage: tern <command> [options]\n\n"
               "Commands:\n"
               "  broker     run the MQTT broker (mosquitto's options: -c FILE, -p PORT, -v, -d)\n"
               "  pub        publish a message (mosquitto_pub's options)\n"
               "  sub        subscribe and print messages (mosquitto_sub's options)\n"
               "  rr         send an MQTT 5 request and print the response (mosquitto_rr's options)\n"
               "  store      check or dump the broker's store (tern store check|dump [-c FILE | PATH])\n"
               "  passwd     manage a password file (mosquitto_passwd's options)\n"
               "  help [CMD] show this help, or the complete usage of CMD\n"
               "  version    print the version (also --version)\n",
               TERN_VERSION);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 1;
  }
  std::string cmd = argv[1];
  if (cmd == "--version" || cmd == "version" || cmd == "-V") {
    std::printf("tern version %s\n", TERN_VERSION);
    return 0;
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    if (argc >= 3 && std::strcmp(argv[2], "broker") == 0) {
      tern::apps::broker_usage(stdout);
    } else if (argc >= 3 && std::strcmp(argv[2], "pub") == 0) {
      std::fputs(tern::tools::usage(tern::tools::Tool::kPub).c_str(), stdout);
    } else if (argc >= 3 && std::strcmp(argv[2], "sub") == 0) {
      std::fputs(tern::tools::usage(tern::tools::Tool::kSub).c_str(), stdout);
    } else if (argc >= 3 && std::strcmp(argv[2], "rr") == 0) {
      std::fputs(tern::tools::usage(tern::tools::Tool::kRr).c_str(), stdout);
    } else if (argc >= 3 && std::strcmp(argv[2], "store") == 0) {
      tern::apps::store_usage(stdout);
    } else if (argc >= 3 && std::strcmp(argv[2], "passwd") == 0) {
      tern::apps::passwd_usage(stdout);
    } else {
      usage(stdout);
    }
    return 0;
  }
  if (cmd == "broker") return tern::apps::broker_main(argc - 1, argv + 1);
  if (cmd == "pub") return tern::apps::pub_main(argc - 1, argv + 1);
  if (cmd == "sub") return tern::apps::sub_main(argc - 1, argv + 1);
  if (cmd == "rr") return tern::apps::rr_main(argc - 1, argv + 1);
  if (cmd == "store") return tern::apps::store_main(argc - 1, argv + 1);
  if (cmd == "passwd") return tern::apps::passwd_main(argc - 1, argv + 1);
  std::fprintf(stderr, "tern: unknown command '%s'\n\n", cmd.c_str());
  usage(stderr);
  return 1;
}
