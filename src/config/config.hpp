#pragma once
// Broker configuration in Mosquitto's file format: same keys, same meanings (mosquitto.conf(5) of
// Mosquitto 2.0.11). Loaded once at startup on the main thread; read-only afterwards.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/rate_limit.hpp"

namespace tern::config {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Listener {
  std::uint16_t port = 1883;
  std::string bind_address;  // empty = all addresses
  std::string protocol = "mqtt";  // or "websockets"
  std::string http_dir;  // websockets listeners: plain HTTP GETs are served from here; empty = none
  std::string socket_domain;  // "", "ipv4", "ipv6"
  std::size_t max_connections = 0;  // connections on this listener; 0 = the open-file limit minus 64
  std::optional<Rate> max_conn_rate;  // connections accepted per period; unset: Config::max_conn_rate
  // Authentication and access control of this listener, used when per_listener_settings is true.
  std::optional<bool> allow_anonymous;
  std::string password_file;
  std::string acl_file;
  std::string scram_file;  // SCRAM-SHA-256 credentials (docs/security.md, "Enhanced authentication")
  // TLS, with Mosquitto's per-listener keys (docs/security.md, "TLS"). A listener with certfile and
  // keyfile, or with psk_hint, is a TLS listener; the files are loaded when the listener opens.
  std::string cafile, capath, certfile, keyfile, crlfile, dhparamfile;
  std::string tls_version;    // minimum version: "" (TLS 1.2), "tlsv1.1" (read as 1.2), "tlsv1.2", "tlsv1.3"
  std::string ciphers;        // TLS 1.2 cipher list (OpenSSL syntax); empty = OpenSSL's default
  std::string ciphers_tls13;  // key ciphers_tls1.3: TLS 1.3 ciphersuites; empty = OpenSSL's default
  std::string psk_hint;
  std::string psk_file;  // used when per_listener_settings is true
  bool require_certificate = false;
  bool use_identity_as_username = false;  // certificate CN, or PSK identity, replaces the username
  bool use_subject_as_username = false;   // the certificate subject (RFC 2253 form) replaces it
  bool tls() const { return !certfile.empty() || !psk_hint.empty(); }
};

// Log categories of Mosquitto's log_type.
enum LogType : unsigned {
  kLogError = 1,
  kLogWarning = 2,
  kLogNotice = 4,
  kLogInformation = 8,
  kLogDebug = 16,
  kLogSubscribe = 32,
  kLogUnsubscribe = 64,
  kLogWebsockets = 128,
  kLogAll = 0xFF,
};

struct Config {
  std::vector<Listener> listeners;
  bool listeners_configured = false;  // a listener/port key appeared
  std::optional<bool> allow_anonymous;  // unset: Mosquitto 2.0 rule, see effective_allow_anonymous
  // Mosquitto's password file (mosquitto_passwd) and ACL file; empty = none (docs/security.md).
  std::string password_file;
  std::string acl_file;
  // SCRAM-SHA-256 credentials for MQTT 5 enhanced authentication (RFC 5803 lines, `tern passwd -S`);
  // SCRAM-SHA-512 uses the password file's $7$ entries. Empty = SCRAM-SHA-256 not offered.
  std::string scram_file;
  // true: allow_anonymous, password_file, acl_file and scram_file belong to the listener they follow.
  bool per_listener_settings = false;
  // Only client ids with this prefix may connect (empty = any).
  std::string clientid_prefixes;
  bool allow_zero_length_clientid = true;
  std::string auto_id_prefix = "auto-";
  std::size_t v31_client_id_max = 23;
  std::uint16_t max_keepalive = 65535;
  std::uint16_t max_inflight_messages = 20;
  std::size_t max_queued_messages = 1000;
  std::size_t max_queued_bytes = 0;
  std::uint32_t message_size_limit = 0;
  std::uint32_t max_packet_size = 16u * 1024 * 1024;
  std::uint16_t max_topic_alias = 10;
  std::uint16_t receive_maximum = 65535;
  std::uint32_t persistent_client_expiration = 0;  // seconds, 0 = never
  bool queue_qos0_messages = false;
  bool upgrade_outgoing_qos = false;
  bool retain_available = true;
  std::uint8_t max_qos = 2;
  bool wildcard_subscription_available = true;
  bool subscription_identifier_available = true;
  bool shared_subscription_available = true;
  std::string response_topic_prefix = "response/";
  bool validate_utf8_payload = true;
  bool set_tcp_nodelay = true;
  // Largest HTTP request head of a WebSocket handshake; 0 = the default (4096 bytes; Mosquitto 1024).
  std::size_t websockets_headers_size = 0;
  bool connection_messages = true;
  unsigned log_types = kLogError | kLogWarning | kLogNotice | kLogInformation;
  bool log_types_set = false;
  std::vector<std::string> log_dest;  // "stderr", "stdout", "file PATH", "none"
  bool log_timestamp = true;
  std::string log_timestamp_format;  // strftime format; empty = seconds since the epoch
  std::string pid_file;
  std::string user = "mosquitto";
  bool user_set = false;
  unsigned workers = 0;  // 0 = one per core
  unsigned connect_timeout = 10;  // seconds
  unsigned sys_interval = 10;
  std::size_t max_outbound_bytes = 4u * 1024 * 1024;
  std::uint32_t slow_subscriber_timeout = 60;  // seconds; 0 = never
  // Limits and defences (docs/security.md). 0 = no limit where a limit can be switched off.
  std::uint32_t max_connect_size = 64 * 1024;  // bytes of a packet before CONNACK (CONNECT, AUTH)
  std::size_t max_clientid_len = 1024;
  std::uint32_t max_topic_levels = 128;
  std::uint32_t max_topic_length = 65535;
  std::uint32_t max_packet_properties = 128;  // properties in one packet, each user property counting
  std::size_t max_subscriptions = 1000;       // per session
  Rate messages_rate;                         // PUBLISH packets per client; off
  Rate bytes_rate;                            // PUBLISH bytes per client; off
  Rate max_conn_rate;                         // per listener, unless the listener sets its own; off
  // The connection rate limit of listener l.
  const Rate& max_conn_rate_of(const Listener& l) const { return l.max_conn_rate ? *l.max_conn_rate : max_conn_rate; }
  // How a shared subscription group ($share/GROUP/FILTER) picks the member for a message.
  enum class SharedStrategy { kRoundRobin, kSticky };
  SharedStrategy shared_subscription_strategy = SharedStrategy::kRoundRobin;
  // Persistence: the embedded store (docs/store.md) writes every change as it happens and the
  // broker acknowledges once it is durable. On by default (Mosquitto: off).
  bool persistence = true;
  std::string persistence_location;  // directory; empty = the working directory
  // kSync: acknowledged means synced to disk. kBatched: written at once, synced every
  // persistence_batch_window (a power cut may lose that window; see docs/durability.md).
  enum class PersistenceMode { kSync, kBatched };
  PersistenceMode persistence_mode = PersistenceMode::kSync;
  std::uint32_t persistence_batch_window = 10;  // milliseconds, 1..60000
  std::uint64_t persistence_max_size = 0;       // bytes; 0 = no bound
  // Power-cut tests: the store records what is durable in <store_path>.syncs (test builds only).
  bool persistence_track_syncs = false;
  // The store's directory: <persistence_location>/tern-store.
  std::string store_path() const {
    if (persistence_location.empty()) return "tern-store";
    if (persistence_location.back() == '/') return persistence_location + "tern-store";
    return persistence_location + "/tern-store";
  }
  // Mosquitto's snapshot keys: parsed and validated, otherwise ignored (a warning each).
  std::string persistence_file = "tern.db";
  std::uint32_t autosave_interval = 1800;
  bool autosave_on_changes = false;
  std::string persistence_path() const {
    if (persistence_location.empty()) return persistence_file;
    if (persistence_location.back() == '/') return persistence_location + persistence_file;
    return persistence_location + "/" + persistence_file;
  }
  std::string psk_file;  // identity:hexkey lines for psk_hint listeners, read when listeners open
  std::vector<std::string> warnings;  // one line each, printed at startup

  // Mosquitto 2.0: with no listener configured, only loopback with anonymous access; with a listener
  // configured, anonymous access is off unless allow_anonymous says otherwise.
  bool effective_allow_anonymous() const {
    if (allow_anonymous) return *allow_anonymous;
    return !listeners_configured;
  }
  // The same rule for a connection on listener l. With per_listener_settings the listener's own key
  // counts; a key given before the first listener line is the default for listeners without one.
  bool allow_anonymous_on(const Listener* l) const {
    if (per_listener_settings && l != nullptr && l->allow_anonymous) return *l->allow_anonymous;
    return effective_allow_anonymous();
  }
  const std::string& password_file_of(const Listener* l) const {
    return per_listener_settings && l != nullptr && !l->password_file.empty() ? l->password_file : password_file;
  }
  const std::string& psk_file_of(const Listener* l) const {
    return per_listener_settings && l != nullptr && !l->psk_file.empty() ? l->psk_file : psk_file;
  }
  const std::string& acl_file_of(const Listener* l) const {
    return per_listener_settings && l != nullptr && !l->acl_file.empty() ? l->acl_file : acl_file;
  }
  const std::string& scram_file_of(const Listener* l) const {
    return per_listener_settings && l != nullptr && !l->scram_file.empty() ? l->scram_file : scram_file;
  }
};

// Parses one configuration file (and the files of include_dir). Throws ConfigError naming the file,
// the line and the key for unknown keys, bad values and Mosquitto features Tern refuses to ignore.
void load_file(const std::string& path, Config& cfg);
// Parses configuration text; `name` is used in error messages.
void load_string(const std::string& text, const std::string& name, Config& cfg);

// Applies Mosquitto 2.0's default listener when none is configured (port 1883 on loopback), and
// checks what needs the whole file (e.g. certfile without keyfile); throws ConfigError.
void finalize(Config& cfg);

}  // namespace tern::config
