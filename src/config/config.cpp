#include "config/config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace tern::config {

namespace {

struct Ctx {
  const std::string& file;
  int line;
  const std::string& key;
  [[noreturn]] void fail(const std::string& why) const {
    throw ConfigError(file + ":" + std::to_string(line) + ": " + key + ": " + why);
  }
  std::string at() const { return file + ":" + std::to_string(line); }
  std::string where() const { return at() + ": " + key; }
};

std::vector<std::string> split_ws(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

bool parse_bool(const Ctx& c, const std::vector<std::string>& a) {
  if (a.size() != 2) c.fail("expects true or false");
  if (a[1] == "true") return true;
  if (a[1] == "false") return false;
  c.fail("expects true or false, got '" + a[1] + "'");
}

std::uint64_t parse_uint(const Ctx& c, const std::vector<std::string>& a, std::uint64_t max) {
  if (a.size() != 2) c.fail("expects one number");
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(a[1].data(), a[1].data() + a[1].size(), v);
  if (ec != std::errc() || p != a[1].data() + a[1].size()) c.fail("not a number: '" + a[1] + "'");
  if (v > max) c.fail("value " + a[1] + " is larger than " + std::to_string(max));
  return v;
}

// A byte count with an optional binary suffix: k/K = KiB, m/M = MiB, g/G = GiB.
std::uint64_t parse_size(const Ctx& c, const std::vector<std::string>& a) {
  if (a.size() != 2 || a[1].empty()) c.fail("expects a size in bytes (suffixes k, m, g)");
  std::string num = a[1];
  unsigned shift = 0;
  switch (num.back()) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    default: break;
  }
  if (shift != 0) num.pop_back();
  return parse_uint(c, {a[0], num}, UINT64_MAX >> shift) << shift;
}

// A rate as EMQX writes it: AMOUNT[/[N]UNIT], e.g. 1000/s, 500/10s, 10MB/m; a bare number is per
// second. UNIT is ms, s, m, h or d. With `bytes`, AMOUNT may carry a binary size suffix (k, m, g, alone
// or followed by B or iB: 10k, 10KB and 10KiB are all 10240). 0 or "infinity" switches the limit off.
Rate parse_rate(const Ctx& c, const std::vector<std::string>& a, bool bytes) {
  if (a.size() != 2 || a[1].empty()) c.fail("expects a rate such as 1000/s");
  if (a[1] == "infinity") return {};
  const std::string& v = a[1];
  const auto slash = v.find('/');
  std::string amount = v.substr(0, slash);
  std::uint64_t mult = 1;
  if (bytes) {
    if (amount.ends_with("iB")) {
      amount.resize(amount.size() - 2);
    } else if (amount.ends_with("B")) {
      amount.pop_back();
    }
    switch (amount.empty() ? '0' : amount.back()) {
      case 'k': case 'K': mult = 1ull << 10; break;
      case 'm': case 'M': mult = 1ull << 20; break;
      case 'g': case 'G': mult = 1ull << 30; break;
      default: break;
    }
    if (mult != 1) amount.pop_back();
  }
  Rate r;
  r.amount = parse_uint(c, {a[0], amount}, UINT64_MAX / mult / 1024) * mult;
  if (slash == std::string::npos) return r;
  std::string period = v.substr(slash + 1);
  std::size_t digits = 0;
  while (digits < period.size() && std::isdigit(static_cast<unsigned char>(period[digits]))) ++digits;
  std::uint64_t count = 1;
  if (digits > 0) count = parse_uint(c, {a[0], period.substr(0, digits)}, 1000000);
  const std::string unit = period.substr(digits);
  std::uint64_t ms = 0;
  if (unit == "ms") {
    ms = 1;
  } else if (unit == "s") {
    ms = 1000;
  } else if (unit == "m") {
    ms = 60 * 1000;
  } else if (unit == "h") {
    ms = 3600 * 1000;
  } else if (unit == "d") {
    ms = 86400 * 1000;
  } else {
    c.fail("expects a rate such as 1000/s (time units ms, s, m, h, d), got '" + v + "'");
  }
  if (count == 0) c.fail("the period of a rate must not be 0");
  r.period = std::chrono::milliseconds(count * ms);
  return r;
}

void ignored_snapshot_key(Config& cfg, const Ctx& c) {
  cfg.warnings.push_back(c.at() + ": " + c.key +
                         " is ignored: Tern's store writes every change as it happens (docs/durability.md)");
}

// Mosquitto keys Tern does not implement yet. Ignoring them would weaken security or durability, so
// they stop the broker with an error; the others only warn.
const std::set<std::string>& refused_keys() {
  static const std::set<std::string> k = {
      "plugin", "auth_plugin", "mount_point",
      // OpenSSL ENGINE keys (keys held in a TPM or HSM): ENGINE is deprecated in OpenSSL 3, and a
      // listener must not fall back to a key file it was told not to use.
      "tls_engine", "tls_keyform", "tls_engine_kpass_sha1",
      "use_username_as_clientid", "bind_interface"};
  return k;
}

const std::set<std::string>& warned_keys() {
  static const std::set<std::string> k = {
      "allow_duplicate_messages", "check_retain_source", "memory_limit", "max_inflight_bytes",
      "log_facility", "auth_plugin_deny_special_chars",
      "sys_interval_ignored", "retry_interval", "store_clean_interval"};
  return k;
}

bool is_bridge_key(const std::string& k) {
  static const std::set<std::string> b = {
      "connection", "address", "addresses", "cleansession", "keepalive_interval", "local_clientid",
      "local_password", "local_username", "notifications", "notifications_local_only",
      "notification_topic", "remote_clientid", "remote_password", "remote_username",
      "restart_timeout", "round_robin", "start_type", "threshold", "topic", "try_private",
      "idle_timeout"};
  return b.count(k) || k.rfind("bridge_", 0) == 0;
}

void apply(Config& cfg, const std::vector<std::string>& a, const Ctx& c, const std::string& base_dir);

void load_lines(std::istream& in, const std::string& name, Config& cfg) {
  std::string line;
  int n = 0;
  std::string base_dir = std::filesystem::path(name).parent_path().string();
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    auto a = split_ws(line);
    if (a.empty()) continue;  // only other whitespace (\v, \f, a stray \r)
    Ctx c{name, n, a[0]};
    // log_dest and similar keep the rest of the line verbatim.
    apply(cfg, a, c, base_dir);
  }
}

void apply(Config& cfg, const std::vector<std::string>& a, const Ctx& c, const std::string&) {
  const std::string& k = a[0];
  auto cur_listener = [&]() -> Listener& {
    if (cfg.listeners.empty()) c.fail("must follow a listener line");
    return cfg.listeners.back();
  };
  if (k == "listener") {
    if (a.size() < 2 || a.size() > 3) c.fail("expects a port and an optional bind address");
    Listener l;
    l.port = static_cast<std::uint16_t>(parse_uint(c, {a[0], a[1]}, 65535));
    if (a.size() == 3) l.bind_address = a[2];
    cfg.listeners.push_back(l);
    cfg.listeners_configured = true;
  } else if (k == "port") {
    // Deprecated in Mosquitto: sets the default listener's port.
    Listener l;
    l.port = static_cast<std::uint16_t>(parse_uint(c, a, 65535));
    cfg.listeners.insert(cfg.listeners.begin(), l);
    cfg.listeners_configured = true;
  } else if (k == "bind_address") {
    if (a.size() != 2) c.fail("expects an address");
    cur_listener().bind_address = a[1];
  } else if (k == "protocol") {
    if (a.size() != 2 || (a[1] != "mqtt" && a[1] != "websockets")) c.fail("expects mqtt or websockets");
    cur_listener().protocol = a[1];
  } else if (k == "http_dir") {
    if (a.size() != 2) c.fail("expects a directory");
    cur_listener().http_dir = a[1];
  } else if (k == "websockets_headers_size") {
    cfg.websockets_headers_size = static_cast<std::size_t>(parse_uint(c, a, 1u << 20));
  } else if (k == "websockets_log_level") {
    // A libwebsockets bit mask in Mosquitto; Tern logs WebSocket events under log_type websockets.
    parse_uint(c, a, UINT32_MAX);
  } else if (k == "socket_domain") {
    if (a.size() != 2 || (a[1] != "ipv4" && a[1] != "ipv6")) c.fail("expects ipv4 or ipv6");
    cur_listener().socket_domain = a[1];
  } else if (k == "max_connections") {
    if (a.size() != 2) c.fail("expects a number");
    long v = 0;
    auto [p, ec] = std::from_chars(a[1].data(), a[1].data() + a[1].size(), v);
    if (ec != std::errc() || p != a[1].data() + a[1].size()) c.fail("not a number: '" + a[1] + "'");
    std::size_t n = v < 0 ? 0 : static_cast<std::size_t>(v);
    if (cfg.listeners.empty()) {
      cfg.listeners.push_back(Listener{});  // applies to the default listener
      cfg.listeners_configured = true;      // Mosquitto: that makes it a configured listener
    }
    cfg.listeners.back().max_connections = n;
  } else if (k == "allow_anonymous") {
    if (cfg.per_listener_settings && !cfg.listeners.empty()) {
      cfg.listeners.back().allow_anonymous = parse_bool(c, a);
    } else {
      cfg.allow_anonymous = parse_bool(c, a);
    }
  } else if (k == "password_file" || k == "acl_file" || k == "scram_file") {
    if (a.size() < 2) c.fail("expects a file name");
    std::string path = a[1];
    for (std::size_t i = 2; i < a.size(); ++i) path += " " + a[i];  // Mosquitto allows spaces in paths
    const bool listener = cfg.per_listener_settings && !cfg.listeners.empty();
    std::string& dst = k == "password_file" ? (listener ? cfg.listeners.back().password_file : cfg.password_file)
                       : k == "acl_file"    ? (listener ? cfg.listeners.back().acl_file : cfg.acl_file)
                                            : (listener ? cfg.listeners.back().scram_file : cfg.scram_file);
    dst = path;
  } else if (k == "per_listener_settings") {
    cfg.per_listener_settings = parse_bool(c, a);
  } else if (k == "clientid_prefixes") {
    if (a.size() != 2) c.fail("expects a prefix");
    cfg.clientid_prefixes = a[1];
  } else if (k == "allow_zero_length_clientid") {
    cfg.allow_zero_length_clientid = parse_bool(c, a);
  } else if (k == "auto_id_prefix") {
    if (a.size() != 2) c.fail("expects a prefix");
    cfg.auto_id_prefix = a[1];
  } else if (k == "v31_client_id_max_length") {
    cfg.v31_client_id_max = parse_uint(c, a, 65535);
  } else if (k == "max_keepalive") {
    cfg.max_keepalive = static_cast<std::uint16_t>(parse_uint(c, a, 65535));
  } else if (k == "max_inflight_messages") {
    cfg.max_inflight_messages = static_cast<std::uint16_t>(parse_uint(c, a, 65535));
  } else if (k == "max_queued_messages") {
    cfg.max_queued_messages = parse_uint(c, a, UINT32_MAX);
  } else if (k == "max_queued_bytes") {
    cfg.max_queued_bytes = parse_uint(c, a, UINT64_MAX);
  } else if (k == "message_size_limit") {
    cfg.message_size_limit = static_cast<std::uint32_t>(parse_uint(c, a, 268435455));
  } else if (k == "max_packet_size") {
    cfg.max_packet_size = static_cast<std::uint32_t>(parse_uint(c, a, 268435460));
    if (cfg.max_packet_size != 0 && cfg.max_packet_size < 20) c.fail("must be at least 20");
    if (cfg.max_packet_size == 0) cfg.max_packet_size = 268435460;
  } else if (k == "max_topic_alias") {
    cfg.max_topic_alias = static_cast<std::uint16_t>(parse_uint(c, a, 65535));
  } else if (k == "receive_maximum") {
    cfg.receive_maximum = static_cast<std::uint16_t>(parse_uint(c, a, 65535));
    if (cfg.receive_maximum == 0) c.fail("must be at least 1");
  } else if (k == "persistent_client_expiration") {
    if (a.size() != 2) c.fail("expects a duration such as 14d");
    const std::string& v = a[1];
    std::uint64_t mult = 1;
    std::string num = v;
    switch (v.back()) {
      case 'h': mult = 3600; num.pop_back(); break;
      case 'd': mult = 86400; num.pop_back(); break;
      case 'w': mult = 7 * 86400; num.pop_back(); break;
      case 'm': mult = 30 * 86400; num.pop_back(); break;
      case 'y': mult = 365 * 86400; num.pop_back(); break;
      default: c.fail("expects a duration with a unit h, d, w, m or y");
    }
    cfg.persistent_client_expiration =
        static_cast<std::uint32_t>(parse_uint(c, {k, num}, UINT32_MAX / mult) * mult);
  } else if (k == "queue_qos0_messages") {
    cfg.queue_qos0_messages = parse_bool(c, a);
  } else if (k == "upgrade_outgoing_qos") {
    cfg.upgrade_outgoing_qos = parse_bool(c, a);
  } else if (k == "retain_available") {
    cfg.retain_available = parse_bool(c, a);
  } else if (k == "wildcard_subscription_available") {
    cfg.wildcard_subscription_available = parse_bool(c, a);
  } else if (k == "subscription_identifier_available") {
    cfg.subscription_identifier_available = parse_bool(c, a);
  } else if (k == "shared_subscription_available") {
    cfg.shared_subscription_available = parse_bool(c, a);
  } else if (k == "max_qos") {
    cfg.max_qos = static_cast<std::uint8_t>(parse_uint(c, a, 2));
  } else if (k == "response_topic_prefix") {
    if (a.size() != 2) c.fail("expects a topic prefix");
    cfg.response_topic_prefix = a[1];
  } else if (k == "validate_utf8_payload") {
    cfg.validate_utf8_payload = parse_bool(c, a);
  } else if (k == "set_tcp_nodelay") {
    cfg.set_tcp_nodelay = parse_bool(c, a);
  } else if (k == "connection_messages") {
    cfg.connection_messages = parse_bool(c, a);
  } else if (k == "log_type") {
    if (a.size() != 2) c.fail("expects one type");
    static const std::pair<const char*, unsigned> kTypes[] = {
        {"error", kLogError}, {"warning", kLogWarning}, {"notice", kLogNotice},
        {"information", kLogInformation}, {"debug", kLogDebug}, {"subscribe", kLogSubscribe},
        {"unsubscribe", kLogUnsubscribe}, {"websockets", kLogWebsockets}, {"all", kLogAll},
        {"none", 0}};
    if (!cfg.log_types_set) cfg.log_types = 0;
    cfg.log_types_set = true;
    bool found = false;
    for (auto& [name, bits] : kTypes) {
      if (a[1] == name) {
        cfg.log_types |= bits;
        found = true;
      }
    }
    if (!found) c.fail("unknown log type '" + a[1] + "'");
  } else if (k == "log_dest") {
    if (a.size() < 2) c.fail("expects a destination");
    if (a[1] == "stderr" || a[1] == "stdout" || a[1] == "none") {
      cfg.log_dest.push_back(a[1]);
    } else if (a[1] == "file") {
      if (a.size() != 3) c.fail("expects a file name");
      cfg.log_dest.push_back("file " + a[2]);
    } else if (a[1] == "syslog" || a[1] == "topic" || a[1] == "dlt") {
      cfg.warnings.push_back(c.where() + ": log_dest " + a[1] + " is not supported yet; ignored");
    } else {
      c.fail("unknown destination '" + a[1] + "'");
    }
  } else if (k == "log_timestamp") {
    cfg.log_timestamp = parse_bool(c, a);
  } else if (k == "log_timestamp_format") {
    if (a.size() < 2) c.fail("expects a strftime format");
    std::string f = a[1];
    for (std::size_t i = 2; i < a.size(); ++i) f += " " + a[i];
    cfg.log_timestamp_format = f;
  } else if (k == "pid_file") {
    if (a.size() != 2) c.fail("expects a path");
    cfg.pid_file = a[1];
  } else if (k == "user") {
    if (a.size() != 2) c.fail("expects a user name");
    cfg.user = a[1];
    cfg.user_set = true;
  } else if (k == "workers") {
    cfg.workers = static_cast<unsigned>(parse_uint(c, a, 1024));
  } else if (k == "connect_timeout") {
    cfg.connect_timeout = static_cast<unsigned>(parse_uint(c, a, 3600));
    if (cfg.connect_timeout == 0) c.fail("must be at least 1");
  } else if (k == "sys_interval") {
    cfg.sys_interval = static_cast<unsigned>(parse_uint(c, a, 65535));
  } else if (k == "slow_subscriber_timeout") {
    cfg.slow_subscriber_timeout = static_cast<std::uint32_t>(parse_uint(c, a, 86400 * 365));
  } else if (k == "shared_subscription_strategy") {
    if (a.size() != 2 || (a[1] != "round_robin" && a[1] != "sticky")) c.fail("expects round_robin or sticky");
    cfg.shared_subscription_strategy =
        a[1] == "sticky" ? Config::SharedStrategy::kSticky : Config::SharedStrategy::kRoundRobin;
  } else if (k == "max_outbound_bytes") {
    cfg.max_outbound_bytes = parse_uint(c, a, UINT32_MAX);
  } else if (k == "max_connect_size") {
    cfg.max_connect_size = static_cast<std::uint32_t>(parse_size(c, a));
    if (cfg.max_connect_size != 0 && cfg.max_connect_size < 20) c.fail("must be at least 20 (or 0: max_packet_size)");
  } else if (k == "max_clientid_len") {
    cfg.max_clientid_len = parse_uint(c, a, 65535);
  } else if (k == "max_topic_levels") {
    cfg.max_topic_levels = static_cast<std::uint32_t>(parse_uint(c, a, 65536));
  } else if (k == "max_topic_length") {
    cfg.max_topic_length = static_cast<std::uint32_t>(parse_uint(c, a, 65535));
  } else if (k == "max_packet_properties") {
    cfg.max_packet_properties = static_cast<std::uint32_t>(parse_uint(c, a, 1u << 20));
  } else if (k == "max_subscriptions") {
    cfg.max_subscriptions = parse_uint(c, a, UINT32_MAX);
  } else if (k == "messages_rate") {
    cfg.messages_rate = parse_rate(c, a, false);
  } else if (k == "bytes_rate") {
    cfg.bytes_rate = parse_rate(c, a, true);
  } else if (k == "max_conn_rate") {
    // Before any listener: the default of every listener; after one: that listener's own.
    if (cfg.listeners.empty()) {
      cfg.max_conn_rate = parse_rate(c, a, false);
    } else {
      cfg.listeners.back().max_conn_rate = parse_rate(c, a, false);
    }
  } else if (k == "persistence") {
    cfg.persistence = parse_bool(c, a);
  } else if (k == "persistence_location") {
    if (a.size() != 2) c.fail("expects a directory");
    cfg.persistence_location = a[1];
  } else if (k == "persistence_mode") {
    if (a.size() != 2 || (a[1] != "sync" && a[1] != "batched")) c.fail("expects sync or batched");
    cfg.persistence_mode = a[1] == "batched" ? Config::PersistenceMode::kBatched : Config::PersistenceMode::kSync;
  } else if (k == "persistence_batch_window") {
    cfg.persistence_batch_window = static_cast<std::uint32_t>(parse_uint(c, a, 60000));
    if (cfg.persistence_batch_window == 0) c.fail("must be at least 1 (milliseconds)");
  } else if (k == "persistence_max_size") {
    cfg.persistence_max_size = parse_size(c, a);
  } else if (k == "persistence_track_syncs") {
#if TERN_TEST_HOOKS
    cfg.persistence_track_syncs = parse_bool(c, a);
#else
    c.fail("only in test builds (CMake option TERN_TEST_HOOKS)");
#endif
  } else if (k == "persistence_file") {
    if (a.size() != 2 || a[1].empty()) c.fail("expects a file name");
    cfg.persistence_file = a[1];
    ignored_snapshot_key(cfg, c);
  } else if (k == "autosave_interval") {
    cfg.autosave_interval = static_cast<std::uint32_t>(parse_uint(c, a, UINT32_MAX));
    ignored_snapshot_key(cfg, c);
  } else if (k == "autosave_on_changes") {
    cfg.autosave_on_changes = parse_bool(c, a);
    ignored_snapshot_key(cfg, c);
  } else if (k == "cafile" || k == "capath" || k == "certfile" || k == "keyfile" || k == "crlfile" ||
             k == "dhparamfile" || k == "ciphers" || k == "ciphers_tls1.3" || k == "psk_hint") {
    static const std::pair<const char*, std::string Listener::*> kTlsKeys[] = {
        {"cafile", &Listener::cafile}, {"capath", &Listener::capath}, {"certfile", &Listener::certfile},
        {"keyfile", &Listener::keyfile}, {"crlfile", &Listener::crlfile}, {"dhparamfile", &Listener::dhparamfile},
        {"ciphers", &Listener::ciphers}, {"ciphers_tls1.3", &Listener::ciphers_tls13},
        {"psk_hint", &Listener::psk_hint}};
    if (a.size() < 2) {
      c.fail(k == "psk_hint"                 ? "expects a hint"
             : k.rfind("ciphers", 0) == 0 ? "expects a cipher list"
                                            : "expects a path");
    }
    std::string v = a[1];
    for (std::size_t i = 2; i < a.size(); ++i) v += " " + a[i];  // paths and hints may contain spaces
    Listener& l = cur_listener();
    for (auto& [name, field] : kTlsKeys) {
      if (k == name) l.*field = v;
    }
  } else if (k == "tls_version") {
    if (a.size() != 2 || (a[1] != "tlsv1.1" && a[1] != "tlsv1.2" && a[1] != "tlsv1.3")) {
      c.fail("expects tlsv1.3, tlsv1.2 or tlsv1.1");
    }
    cur_listener().tls_version = a[1];
    if (a[1] == "tlsv1.1") {
      cfg.warnings.push_back(c.where() + ": TLS 1.1 is deprecated (RFC 8996) and not offered; the minimum is TLS 1.2");
    }
  } else if (k == "require_certificate") {
    cur_listener().require_certificate = parse_bool(c, a);
  } else if (k == "use_identity_as_username") {
    cur_listener().use_identity_as_username = parse_bool(c, a);
  } else if (k == "use_subject_as_username") {
    cur_listener().use_subject_as_username = parse_bool(c, a);
  } else if (k == "psk_file") {
    if (a.size() < 2) c.fail("expects a file name");
    std::string path = a[1];
    for (std::size_t i = 2; i < a.size(); ++i) path += " " + a[i];
    (cfg.per_listener_settings && !cfg.listeners.empty() ? cfg.listeners.back().psk_file : cfg.psk_file) = path;
  } else if (k == "include_dir") {
    if (a.size() != 2) c.fail("expects a directory");
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(a[1], ec)) {
      if (e.is_regular_file() && e.path().extension() == ".conf") files.push_back(e.path());
    }
    if (ec) c.fail("cannot read directory: " + ec.message());
    std::sort(files.begin(), files.end());  // Mosquitto loads them in alphabetical order
    for (auto& f : files) load_file(f.string(), cfg);
  } else if (refused_keys().count(k)) {
    c.fail("this Mosquitto option is not supported yet, and ignoring it would weaken security; "
           "the broker does not start");
  } else if (warned_keys().count(k) || k.rfind("plugin_opt_", 0) == 0 || k.rfind("auth_opt_", 0) == 0) {
    cfg.warnings.push_back(c.where() + ": not supported yet; ignored");
  } else if (is_bridge_key(k)) {
    c.fail("bridges are not supported yet");
  } else {
    c.fail("unknown configuration key");
  }
}

}  // namespace

void load_file(const std::string& path, Config& cfg) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open configuration file");
  load_lines(in, path, cfg);
}

void load_string(const std::string& text, const std::string& name, Config& cfg) {
  std::istringstream in(text);
  load_lines(in, name, cfg);
}

namespace {

// Mosquitto 2.0.11 opens a listener with certfile but no keyfile, or require_certificate without
// certfile, as a plain listener, and one with require_certificate but no CA as a listener that
// refuses every client. Each is a mistake that weakens security or locks everyone out, so it stops
// the broker here.
void check_tls(Config& cfg) {
  for (const Listener& l : cfg.listeners) {
    const std::string name =
        "listener " + std::to_string(l.port) + (l.bind_address.empty() ? "" : " " + l.bind_address);
    auto fail = [&](const std::string& why) { throw ConfigError(name + ": " + why); };
    if (l.certfile.empty() != l.keyfile.empty()) {
      fail(l.certfile.empty() ? "keyfile without certfile (certificate-based TLS needs both)"
                              : "certfile without keyfile (certificate-based TLS needs both)");
    }
    if (!l.tls()) {
      const std::pair<const char*, bool> set[] = {
          {"cafile", !l.cafile.empty()}, {"capath", !l.capath.empty()}, {"crlfile", !l.crlfile.empty()},
          {"dhparamfile", !l.dhparamfile.empty()}, {"tls_version", !l.tls_version.empty()},
          {"ciphers", !l.ciphers.empty()}, {"ciphers_tls1.3", !l.ciphers_tls13.empty()},
          {"require_certificate", l.require_certificate}, {"use_identity_as_username", l.use_identity_as_username},
          {"use_subject_as_username", l.use_subject_as_username}};
      for (auto& [key, given] : set) {
        if (given) fail(std::string(key) + " needs a TLS listener (certfile and keyfile, or psk_hint)");
      }
      continue;
    }
    if (!l.psk_hint.empty() && cfg.psk_file_of(&l).empty()) fail("psk_hint needs psk_file (the pre-shared keys)");
    if (l.require_certificate && l.cafile.empty() && l.capath.empty()) {
      fail("require_certificate needs cafile or capath to verify client certificates with");
    }
    if ((l.use_identity_as_username || l.use_subject_as_username) && !l.certfile.empty() && l.psk_hint.empty() &&
        !l.require_certificate) {
      fail(std::string(l.use_identity_as_username ? "use_identity_as_username" : "use_subject_as_username") +
           " needs require_certificate true (otherwise no client sends a certificate)");
    }
    if (!l.crlfile.empty() && !l.require_certificate) {
      cfg.warnings.push_back(name + ": crlfile has no effect without require_certificate true");
    }
  }
}

}  // namespace

void finalize(Config& cfg) {
  if (cfg.listeners.empty()) {
    // Mosquitto 2.0: without a listener, listen on loopback only.
    Listener l;
    l.port = 1883;
    l.bind_address = "127.0.0.1";
    cfg.listeners.push_back(l);
    Listener l6 = l;
    l6.bind_address = "::1";
    cfg.listeners.push_back(l6);
  }
  if (cfg.log_dest.empty()) cfg.log_dest.push_back("stderr");
  check_tls(cfg);
}

}  // namespace tern::config
