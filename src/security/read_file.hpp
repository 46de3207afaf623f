#pragma once
// Reading a whole security file (password file, scram_file, ACL file) with one error format.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace tern::security {

// Reads `path` into `text`. Returns "" or the reason it could not: "PATH: cannot open KIND: why" or
// "PATH: cannot read KIND".
inline std::string read_file(const std::string& path, const char* kind, std::string& text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return path + ": cannot open " + kind + ": " + std::strerror(errno);
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return path + ": cannot read " + kind;
  text = std::move(s).str();
  return {};
}

}  // namespace tern::security
