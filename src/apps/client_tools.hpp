#pragma once
// `tern pub`, `tern sub` and `tern rr`: drop-ins for Debian 12's mosquitto_pub, mosquitto_sub and
// mosquitto_rr 2.0.11 (same options, output, error messages and exit codes; docs/tools.md). Each
// runs on the calling thread and returns the process exit code. argv[0] is the subcommand name.
namespace tern::apps {

int pub_main(int argc, char** argv);
int sub_main(int argc, char** argv);
int rr_main(int argc, char** argv);

}  // namespace tern::apps
