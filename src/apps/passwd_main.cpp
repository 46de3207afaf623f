// `tern passwd`: manages a password file (docs/security.md). Options, messages and exit statuses follow
// mosquitto_passwd of Mosquitto 2.0.11, except where it loses data: comments, blank lines and lines it
// cannot read are kept (mosquitto_passwd drops everything from the first such line on), and the file is
// replaced atomically instead of rewritten in place. `-S scramfile` (Tern's own; no mosquitto_passwd
// option uses the letter) writes the user's SCRAM-SHA-256 credentials to a scram_file alongside.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/utf8.hpp"
#include "security/password_file.hpp"
#include "security/scram.hpp"

namespace tern::apps {

void passwd_usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: tern passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-S scramfile] [-c | -D] "
               "passwordfile username\n"
               "       tern passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-S scramfile] [-c] -b passwordfile "
               "username password\n"
               "       tern passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-S scramfile] -U passwordfile\n"
               "\n"
               "Manages a password file (password_file) in Mosquitto's format; mosquitto_passwd's options.\n"
               " -b : batch mode: the password is given on the command line (visible to other local users\n"
               "      and kept in shell history: use with care).\n"
               " -c : create a new password file. An existing file is overwritten.\n"
               " -D : delete the user rather than adding or updating its password.\n"
               " -H : the hash: sha512-pbkdf2 (default, PBKDF2-HMAC-SHA512) or sha512 (for Mosquitto 1.6\n"
               "      and earlier).\n"
               " -I : PBKDF2 iterations of sha512-pbkdf2 (default %d, as Mosquitto) and of -S (default %d).\n"
               " -S : also write the user's SCRAM-SHA-256 credentials to scramfile (the broker's scram_file,\n"
               "      for MQTT 5 enhanced authentication; created when missing, started afresh with -c).\n"
               "      With -D the user is removed from it too; with -U each converted user is added.\n"
               " -U : convert a file of plain-text passwords (username:password lines) to hashes. Entries\n"
               "      that are already hashes are left as they are.\n"
               "\n"
               "Without -b the password is asked for twice: from the terminal without echo, or as two lines\n"
               "from standard input when it is not a terminal.\n"
               "Other users' lines, comments and blank lines keep their place; the file is replaced in one\n"
               "step (a new file in the same directory, renamed over it) and keeps its mode and owner.\n"
               "Exit status: 0 done, 1 error, 2 the two passwords differ.\n",
               security::kDefaultIterations, security::kScramDefaultIterations);
}

namespace {

constexpr int kError = 1;
constexpr int kMismatch = 2;               // mosquitto_passwd's status when the passwords differ
constexpr std::size_t kMaxLength = 65535;  // MQTT strings and binary data [MQTT-1.5.3], [MQTT-1.5.6]

int error(const char* fmt, const std::string& a = {}, const std::string& b = {}) {
  std::fputs("Error: ", stderr);
  std::fprintf(stderr, fmt, a.c_str(), b.c_str());
  std::fputc('\n', stderr);
  return kError;
}

// The terminal state to restore when interrupted while echo is off.
struct termios g_saved_tty;
volatile sig_atomic_t g_echo_off = 0;

void restore_tty_and_exit(int sig) {
  if (g_echo_off) tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_tty);
  signal(sig, SIG_DFL);
  raise(sig);
}

// Prints the prompt and reads one line (without its end of line); false at end of input with nothing
// read. On a terminal the input is not echoed.
bool read_line(const char* prompt, std::string& out) {
  std::fputs(prompt, stdout);
  std::fflush(stdout);
  bool tty = isatty(STDIN_FILENO) == 1;
  struct termios t;
  if (tty && tcgetattr(STDIN_FILENO, &t) == 0) {
    g_saved_tty = t;
    g_echo_off = 1;
    signal(SIGINT, restore_tty_and_exit);
    signal(SIGTERM, restore_tty_and_exit);
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
  }
  out.clear();
  bool any = false;
  int c;
  while ((c = std::getchar()) != EOF) {
    any = true;
    if (c == '\n') break;
    out += static_cast<char>(c);
  }
  if (g_echo_off) {
    tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_tty);
    g_echo_off = 0;
  }
  if (!out.empty() && out.back() == '\r') out.pop_back();
  std::fputc('\n', stdout);  // the user's Enter was not echoed
  std::fflush(stdout);
  return any;
}

// Asks twice; returns 0 or the exit status.
int ask_password(std::string& password) {
  std::string again;
  if (!read_line("Password: ", password) || password.empty()) return error("Empty password.");
  if (!read_line("Reenter password: ", again) || again != password) {
    error("Passwords do not match.");
    return kMismatch;
  }
  return 0;
}

int check_username(const std::string& user) {
  if (user.empty()) return error("Username must not be empty.");
  if (user.size() > kMaxLength) return error("Username must be less than 65536 characters long.");
  if (user.find(':') != std::string::npos) return error("Username must not contain the ':' character.");
  for (unsigned char c : user) {
    if (c < 0x20 || c == 0x7F) return error("Username must not contain control characters.");
  }
  if (user.front() == ' ' || user.back() == ' ') {
    return error("Username must not start or end with a space (the broker ignores them).");
  }
  if (user.front() == '#') return error("Username must not start with '#' (the line would be a comment).");
  if (!valid_mqtt_utf8(user)) return error("Username must be valid UTF-8.");
  return 0;
}

int check_password(const std::string& password) {
  if (password.size() > kMaxLength) return error("Password must be less than 65536 characters long.");
  return 0;
}

// The password file as lines, without their '\n' (a '\r' stays, and is written back).
struct File {
  std::string path;  // a symbolic link resolved: the link stays, its target is replaced
  bool exists = false;
  struct stat st {};
  std::vector<std::string> lines;
};

int read_file(const std::string& given, bool create, File& f) {
  f.path = given;
  std::error_code ec;
  if (std::filesystem::is_symlink(given, ec)) {
    auto target = std::filesystem::canonical(given, ec);
    if (!ec) f.path = target.string();
  }
  f.exists = ::stat(f.path.c_str(), &f.st) == 0;
  int stat_errno = errno;
  if (create) return 0;  // -c overwrites: only the mode and owner of an existing file are kept
  if (f.exists && S_ISDIR(f.st.st_mode)) {
    return error("Unable to open password file %s. %s.", given, std::strerror(EISDIR));
  }
  if (!f.exists) return error("Unable to open password file %s. %s.", given, std::strerror(stat_errno));
  std::ifstream in(f.path, std::ios::binary);
  if (!in) return error("Unable to open password file %s. %s.", given, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  std::size_t start = 0;
  while (start < s.size()) {
    auto nl = s.find('\n', start);
    if (nl == std::string::npos) nl = s.size();
    f.lines.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return 0;
}

// Writes a new file next to the old one and renames it over: a crash leaves the old file or the new
// one, never half of one. Mode and owner are kept (the broker may read the file as another user).
int write_file(const std::string& given, const File& f) {
  namespace fs = std::filesystem;
  fs::path p(f.path);
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::string tmp = (dir / ("." + p.filename().string() + ".tmp-XXXXXX")).string();
  int fd = mkstemp(tmp.data());
  if (fd < 0) return error("Unable to open file %s for writing. %s.", given, std::strerror(errno));
  mode_t mode;
  if (f.exists) {
    mode = f.st.st_mode & 07777;
    if (fchown(fd, f.st.st_uid, f.st.st_gid) != 0) {
      // Only root may give a file away; for anyone else the owner is already theirs, or cannot be kept.
    }
  } else {
    mode_t mask = umask(0);
    umask(mask);
    mode = 0666 & ~mask;  // as a file mosquitto_passwd creates
  }
  std::string text;
  for (const auto& l : f.lines) {
    text += l;
    text += '\n';
  }
  bool ok = fchmod(fd, mode) == 0;
  for (std::size_t done = 0; ok && done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && fsync(fd) == 0;
  int saved = errno;
  ok = ::close(fd) == 0 && ok;
  if (ok && std::rename(tmp.c_str(), f.path.c_str()) != 0) {
    saved = errno;
    ok = false;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return error("Unable to write password file %s. %s.", given, std::strerror(saved));
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);  // the rename itself survives a crash
    ::close(dfd);
  }
  return 0;
}

void warn_invalid(const std::string& given, std::size_t line_no, const std::string& why) {
  std::fprintf(stderr, "Warning: %s:%zu: %s; line kept unchanged.\n", given.c_str(), line_no, why.c_str());
}

// Sets `user`'s hash (or, in a scram_file, its SCRAM credentials): its first line is replaced (later
// duplicates are removed, as the broker refuses them), or a line is appended. Lines the broker would
// refuse are kept, with a warning.
void update(const std::string& given, File& f, const std::string& user, const std::string& hash, bool scram = false) {
  std::vector<std::string> out;
  bool found = false;
  for (std::size_t i = 0; i < f.lines.size(); ++i) {
    std::string_view u;
    std::string_view rest;
    auto kind = security::split_line(f.lines[i], u, rest);
    if (kind == security::LineKind::kEntry && u == user) {
      if (!found) out.push_back(user + ":" + hash);
      found = true;
      continue;
    }
    if (kind == security::LineKind::kNoColon) {
      warn_invalid(given, i + 1, "no ':' between username and password hash");
    } else if (kind == security::LineKind::kEntry) {
      try {
        if (scram) {
          security::scram_decode(security::ScramHash::kSha256, rest);
        } else {
          security::decode_hash(u, rest);
        }
      } catch (const security::PasswordError& e) {
        warn_invalid(given, i + 1, "user '" + std::string(u) + "': " + e.what());
      }
    }
    out.push_back(std::move(f.lines[i]));
  }
  if (!found) out.push_back(user + ":" + hash);
  f.lines = std::move(out);
}

// Removes every line of `user`; false when there is none.
bool remove_user(File& f, const std::string& user) {
  std::vector<std::string> out;
  for (auto& l : f.lines) {
    std::string_view u;
    std::string_view rest;
    if (security::split_line(l, u, rest) == security::LineKind::kEntry && u == user) continue;
    out.push_back(std::move(l));
  }
  bool found = out.size() != f.lines.size();
  f.lines = std::move(out);
  return found;
}

// -U: every "user:password" line becomes "user:hash". Nothing is written when a line cannot be read.
// The users converted and their passwords go to `converted` (for -S).
int convert(const std::string& given, File& f, security::PasswordEntry::Kind kind, int iterations,
            std::vector<std::pair<std::string, std::string>>& converted) {
  for (std::size_t i = 0; i < f.lines.size(); ++i) {
    std::string_view u;
    std::string_view password;
    auto k = security::split_line(f.lines[i], u, password);
    if (k == security::LineKind::kComment) continue;
    std::string where = given + ":" + std::to_string(i + 1);
    if (k == security::LineKind::kNoColon) {
      return error("%s: no ':' between username and password; file not changed.", where);
    }
    if (u.empty()) return error("%s: empty username; file not changed.", where);
    try {
      security::decode_hash(u, password);
      std::fprintf(stderr, "Warning: %s: the password of user '%.*s' is already a hash; left as it is.\n",
                   where.c_str(), static_cast<int>(u.size()), u.data());
      continue;
    } catch (const security::PasswordError&) {
      // Plain text, as expected.
    }
    // The password is the whole rest of the line (blanks around it trimmed, as the broker trims):
    // mosquitto_passwd stops at a second ':', which silently shortens such a password.
    if (password.size() > kMaxLength) return error("%s: password longer than 65535 bytes; file not changed.", where);
    converted.emplace_back(std::string(u), std::string(password));  // before the line they point into changes
    f.lines[i] = converted.back().first + ":" + security::make_hash(converted.back().second, kind, iterations);
  }
  return 0;
}

// SCRAM clients prepare the password with SASLprep (RFC 4013) before hashing it; Tern has no Unicode
// normalisation, so it hashes the bytes as given. Both agree on printable ASCII, which SASLprep leaves
// unchanged; anything else works only if SASLprep leaves it unchanged too.
void warn_saslprep(const std::string& user, const std::string& password) {
  for (unsigned char c : password) {
    if (c < 0x20 || c > 0x7E) {
      std::fprintf(stderr,
                   "Warning: the password of user %s has characters outside printable ASCII: SCRAM clients prepare it "
                   "with SASLprep (RFC 4013), which tern passwd does not, so SCRAM works only if that leaves it "
                   "unchanged.\n",
                   user.c_str());
      return;
    }
  }
}

// -S: the scram_file, read (or started when missing or with -c), one user's credentials set, written.
struct ScramUpdate {
  std::string given;
  File f;
};

int read_scram(const std::string& given, bool create, ScramUpdate& s) {
  s.given = given;
  struct stat st {};
  const bool missing = ::stat(given.c_str(), &st) != 0 && errno == ENOENT;
  return read_file(given, create || missing, s.f);
}

}  // namespace

int passwd_main(int argc, char** argv) {
  bool batch = false;
  bool create = false;
  bool del = false;
  bool upgrade = false;
  auto kind = security::PasswordEntry::kPbkdf2Sha512;
  int iterations = security::kDefaultIterations;
  bool iterations_given = false;
  std::string scram_path;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      passwd_usage(stdout);
      return 0;
    }
    if (a == "-b") {
      batch = true;
    } else if (a == "-c") {
      create = true;
    } else if (a == "-D") {
      del = true;
    } else if (a == "-U") {
      upgrade = true;
    } else if (a == "-H") {
      if (i + 1 >= argc) return error("-H argument given but not enough other arguments.");
      std::string h = argv[++i];
      if (h == "sha512") {
        kind = security::PasswordEntry::kSha512;
      } else if (h == "sha512-pbkdf2") {
        kind = security::PasswordEntry::kPbkdf2Sha512;
      } else {
        return error("Unknown hash type '%s'.", h);
      }
    } else if (a == "-I") {
      if (i + 1 >= argc) return error("-I argument given but not enough other arguments.");
      const char* v = argv[++i];
      char* end = nullptr;
      errno = 0;
      long n = std::strtol(v, &end, 10);
      if (*v == '\0' || *end != '\0' || errno != 0 || n < 1 || n > 0x7FFFFFFF) {
        return error("Number of iterations must be > 0.");
      }
      iterations = static_cast<int>(n);
      iterations_given = true;
    } else if (a == "-S") {
      if (i + 1 >= argc) return error("-S argument given but no SCRAM file.");
      scram_path = argv[++i];
      if (scram_path.empty()) return error("-S argument given but no SCRAM file.");
    } else if (a == "--") {
      ++i;
      break;
    } else if (a.size() > 1 && a[0] == '-') {
      error("Unknown option '%s'.", a);
      passwd_usage(stderr);
      return kError;
    } else {
      break;
    }
  }
  std::vector<std::string> args(argv + i, argv + argc);
  if (create && del) return error("-c and -D cannot be used together.");
  if (upgrade && (create || del || batch)) return error("-U cannot be used with -b, -c or -D.");
  if (batch && del) return error("-b and -D cannot be used together.");
  if (upgrade && args.empty()) return error("-U argument given but password file missing.");
  if (create && args.size() < 2) return error("-c argument given but password file or username missing.");
  if (del && args.size() < 2) return error("-D argument given but password file or username missing.");
  std::size_t want = upgrade ? 1 : batch ? 3 : 2;
  if (args.size() != want) {
    passwd_usage(stderr);
    return kError;
  }
  const std::string& given = args[0];
  const bool with_scram = !scram_path.empty();
  const int scram_iterations = iterations_given ? iterations : security::kScramDefaultIterations;
  ScramUpdate scram;
  // The scram_file is written first: if the password file then fails, the user's old password still
  // works there, and the new credentials are only in addition.
  auto set_scram = [&](const std::string& user, const std::string& password) {
    warn_saslprep(user, password);
    const auto creds = security::make_scram_credentials(security::ScramHash::kSha256, password, scram_iterations);
    update(scram.given, scram.f, user, security::scram_encode(security::ScramHash::kSha256, creds), true);
  };

  if (upgrade) {
    File f;
    if (int rc = read_file(given, false, f)) return rc;
    if (with_scram) {
      if (int rc = read_scram(scram_path, false, scram)) return rc;
    }
    std::vector<std::pair<std::string, std::string>> converted;
    if (int rc = convert(given, f, kind, iterations, converted)) return rc;
    if (with_scram) {
      for (const auto& [u, pw] : converted) set_scram(u, pw);
      if (int rc = write_file(scram_path, scram.f)) return rc;
    }
    return write_file(given, f);
  }

  const std::string& user = args[1];
  if (del) {
    File f;
    if (int rc = read_file(given, false, f)) return rc;
    bool found = remove_user(f, user);
    // A scram_file that does not exist holds nobody: it is not created for a deletion.
    struct stat st {};
    const bool scram_exists = with_scram && ::stat(scram_path.c_str(), &st) == 0;
    if (scram_exists) {
      if (int rc = read_scram(scram_path, false, scram)) return rc;
      found = remove_user(scram.f, user) || found;
    }
    if (!found) {
      std::fprintf(stderr, "Warning: User %s not found in password file.\n", user.c_str());
      return kError;
    }
    if (scram_exists) {
      if (int rc = write_file(scram_path, scram.f)) return rc;
    }
    return write_file(given, f);
  }

  if (int rc = check_username(user)) return rc;
  File f;
  // Read before asking, so a missing file is reported before the password is typed.
  if (int rc = read_file(given, create, f)) return rc;
  if (with_scram) {
    if (int rc = read_scram(scram_path, create, scram)) return rc;
  }
  std::string password;
  if (batch) {
    password = args[2];
  } else if (int rc = ask_password(password)) {
    return rc;
  }
  if (int rc = check_password(password)) return rc;
  if (with_scram) {
    set_scram(user, password);
    if (int rc = write_file(scram_path, scram.f)) return rc;
  }
  update(given, f, user, security::make_hash(password, kind, iterations));
  return write_file(given, f);
}

}  // namespace tern::apps
