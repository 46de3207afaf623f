#pragma once
// Command-line options of `tern pub`, `tern sub` and `tern rr`: drop-ins for Debian 12's
// mosquitto_pub, mosquitto_sub and mosquitto_rr 2.0.11. Pure parsing: argv (after an option file)
// -> ClientOptions, or the error text and exit code the Mosquitto tool would give. No sockets and no
// payload files are opened here; the networking layer consumes the struct. Plain values, no threads:
// whoever calls parse_options owns the ClientOptions.
//
// Behaviour follows what the Mosquitto 2.0.11 binaries were measured to do (docs/tools-options.md),
// where the man pages are vague.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "codec/packet.hpp"

namespace tern::tools {

enum class Tool { kPub, kSub, kRr };

// "tern pub", "tern sub", "tern rr": the name in messages and usage.
const char* tool_name(Tool tool);

// Where the payload of `tern pub` / the request of `tern rr` comes from. Only one may be given.
enum class PayloadSource {
  kNone,
  kMessage,    // -m: `message`
  kFile,       // -f: the contents of `file` (read by the networking layer)
  kStdinLine,  // -l (pub only): one message per line of stdin
  kStdinFile,  // -s: all of stdin as one message
  kNull,       // -n: a zero-length message
};

// Every option of the three tools. Fields a tool does not accept keep their defaults. "Given" means
// the option appeared in the option file or on the command line; later occurrences replace earlier
// ones unless the field is a vector.
struct ClientOptions {
  Tool tool = Tool::kPub;

  // --- Connection ----------------------------------------------------------------------------------
  std::string host = "localhost";           // -h / -L host
  std::optional<int> port;                  // -p / -L. 0..65535 from -p; -L takes atoi of its port
                                            // text unchecked (Mosquitto treats 0 as "host is a unix
                                            // socket path"). nullopt: see effective_port().
  std::optional<std::string> unix_socket;   // --unix PATH: connect there instead of TCP
  std::optional<std::string> bind_address;  // -A
  bool nodelay = false;                     // --nodelay (TCP_NODELAY)
  bool srv_lookup = false;                  // -S (DNS SRV lookup; listed in `unsupported`)
  // -V; default 3.1.1 for pub/sub and 5 for rr. Any -D switches it to 5 (a later -V wins again;
  // Mosquitto then fails at connect with "Unable to connect (This feature is not supported.).").
  codec::Version version = codec::Version::kV311;
  std::optional<std::string> client_id;         // -i, used verbatim (may be "")
  std::optional<std::string> client_id_prefix;  // -I: the id is this prefix followed by the pid
  // Neither -i nor -I: an empty client id on 3.1.1 and 5 (the broker assigns one), and
  // "mosq-" followed by 18 random alphanumerics on 3.1 (measured).
  std::uint16_t keepalive = 60;  // -k, 5..65535
  bool clean_session = true;     // -c sets false
  // -x as given (-1 and "∞" are stored as 0xFFFFFFFF). See effective_session_expiry().
  std::optional<std::uint32_t> session_expiry;
  std::optional<std::string> username;  // -u / -L
  std::optional<std::string> password;  // -P / -L
  int max_inflight = 20;                // -M (>= 1): the client's own limit of QoS 1/2 messages in
                                        // flight. Measured: on v5 the CONNECT carries receive-maximum
                                        // 20 for pub/sub (1 for rr) whatever -M, unless -D sets one.

  // --- Will ----------------------------------------------------------------------------------------
  std::optional<std::string> will_topic;    // --will-topic (a valid topic name, no wildcards)
  std::optional<std::string> will_payload;  // --will-payload; absent: a zero-length will
  std::uint8_t will_qos = 0;                // --will-qos
  bool will_retain = false;                 // --will-retain

  // --- TLS -----------------------------------------------------------------------------------------
  std::optional<std::string> cafile;                 // --cafile
  std::optional<std::string> capath;                 // --capath
  std::optional<std::string> certfile;               // --cert (with --key)
  std::optional<std::string> keyfile;                // --key (with --cert)
  std::optional<std::string> keyform;                // --keyform as given; Mosquitto accepts "pem" or
                                                     // "engine" at connect time ("Error: Problem setting key
                                                     // form, it must be one of 'pem' or 'engine'.")
  std::optional<std::string> ciphers;                // --ciphers
  std::optional<std::string> tls_version;            // --tls-version: tlsv1.3, tlsv1.2 or tlsv1.1 at connect
  std::optional<std::string> tls_alpn;               // --tls-alpn
  std::optional<std::string> tls_engine;             // --tls-engine (listed in `unsupported`)
  std::optional<std::string> tls_engine_kpass_sha1;  // --tls-engine-kpass-sha1 (unsupported)
  bool tls_use_os_certs = false;                     // --tls-use-os-certs; also set by -L mqtts://
  bool insecure = false;                             // --insecure: no server hostname check
  std::optional<std::string> psk;                    // --psk (hex, no 0x)
  std::optional<std::string> psk_identity;           // --psk-identity

  // --- SOCKS5 proxy (listed in `unsupported`) ------------------------------------------------------
  std::optional<std::string> proxy;  // --proxy URL as given: socks5h://[user[:pass]@]host[:port]
  std::string proxy_host;            // parsed from `proxy`
  int proxy_port = 1080;
  std::optional<std::string> proxy_username;  // %25, %3A and %40 decoded
  std::optional<std::string> proxy_password;

  // --- Output and logging --------------------------------------------------------------------------
  bool debug = false;  // -d
  // --quiet: the networking layer prints no runtime errors. Option errors are still printed, except
  // the ones Mosquitto also hides (already applied by parse_options).
  bool quiet = false;

  // --- Topics --------------------------------------------------------------------------------------
  // pub and rr: at most one entry, the topic to publish to (-t or -L; the last one wins; may be "",
  // which Mosquitto only rejects when publishing). sub: every -t and the -L topic, in order.
  std::vector<std::string> topics;
  std::vector<std::string> filter_out;   // sub -T, topic filters not to print
  std::vector<std::string> unsubscribe;  // sub -U, filters to unsubscribe from after subscribing

  // --- Publishing (pub, rr) ------------------------------------------------------------------------
  PayloadSource payload_source = PayloadSource::kNone;
  std::string message;        // -m
  std::string file;           // -f path
  std::uint8_t qos = 0;       // -q: publish QoS (pub, rr) or subscription QoS (sub)
  bool retain = false;        // pub -r
  int repeat_count = 1;       // pub --repeat (>= 1)
  double repeat_delay = 0.0;  // pub --repeat-delay, seconds (>= 0)

  // --- Receiving (sub, rr) -------------------------------------------------------------------------
  std::optional<std::string> response_topic;  // rr -e (required); rr subscribes to it and sends it
                                              // as the response-topic property of its request (v5)
  int msg_count = 0;                          // sub -C, 0: no limit
  int timeout = 0;                            // sub/rr -W seconds, 0: none
  bool exit_after_subscribe = false;          // sub -E
  bool no_eol = false;                        // sub/rr -N
  bool no_retained = false;                   // sub/rr -R: do not print retained messages
  bool retained_only = false;                 // sub --retained-only
  bool remove_retained = false;               // sub --remove-retained
  bool retain_as_published = false;           // sub/rr --retain-as-published
  bool verbose = false;                       // sub/rr -v
  bool pretty = false;                        // sub/rr --pretty
  std::optional<std::string> format;          // sub/rr -F, validated like Mosquitto
  std::optional<double> random_filter;       // sub --random-filter as given (0.1..1000 accepted, as measured)

  // --- MQTT 5 properties (-D command identifier value), per packet ---------------------------------
  // Checked like Mosquitto: allowed for the command, value range, no duplicates (user properties may
  // repeat). connect_props.session_expiry also carries -x / -c on v5 when the interval is not 0.
  codec::Properties connect_props;
  codec::Properties publish_props;
  codec::Properties subscribe_props;
  codec::Properties unsubscribe_props;
  codec::Properties disconnect_props;
  codec::Properties will_props;

  // Options that were given but that Tern cannot honour at all ("--proxy", "--tls-engine",
  // "--tls-engine-kpass-sha1", "--keyform" (engine), "-S"). The networking layer decides how to fail.
  std::vector<std::string> unsupported;

  // -p/-L port, else 8883 when --cafile, --capath or --psk is given, else 1883 (measured:
  // --tls-use-os-certs alone keeps 1883; -L mqtts:// sets 8883 itself).
  int effective_port() const;
  // The session expiry interval for CONNECT (v5): -x, else 0xFFFFFFFF with -c, else 0.
  std::uint32_t effective_session_expiry() const;
  // True when the connection uses TLS: a CA, PSK or --tls-use-os-certs.
  bool tls() const { return cafile || capath || psk || tls_use_os_certs; }
};

struct ParseOutcome {
  int exit_code = 0;
  bool proceed = true;  // false: print out/err and exit with exit_code
  std::string out;      // text for stdout (usage for --help, the version for --version)
  std::string err;      // text for stderr
};

// Reads the option file, then `args` (argv without the program and subcommand names), into `opts`
// (reset to the tool's defaults first). `env` holds HOME and XDG_CONFIG_HOME if set.
//
// Option file: $XDG_CONFIG_HOME/mosquitto_pub when XDG_CONFIG_HOME is set (even to ""), else
// $HOME/.config/mosquitto_pub when HOME is set (mosquitto_sub / mosquitto_rr for the other tools),
// so existing Mosquitto option files apply unchanged. A missing or unreadable file is ignored. Each
// line: trailing CR/LF removed; a line starting with '#' is a comment; leading spaces (not tabs)
// skipped; empty lines skipped; the text up to the first space is one argument and everything after
// that space (kept verbatim, spaces included) a second one if not empty. So `-m hello world` sets
// the message "hello world", quotes are literal, and each line is parsed on its own (so `-D`, which
// needs three arguments, cannot be used there). The file is read before the command line: a value
// there is a default the command line replaces, except that -t (sub), -T and -U accumulate, and
// pub/rr message options conflict ("Only one type of message can be sent at once.").
//
// Errors give exit_code 1 (the tools' code for all option errors, --help and --version too).
//
// Not checked here, to be done by the networking layer in this order after parse_options, with
// Mosquitto's texts (measured): pub/rr -f: "Error: Unable to open file \"F\".\nError loading input
// file \"F\".\n" (a directory: "Error: File must be less than 268435455 bytes.\n\nError loading
// input file \"F\".\n"); -s with empty stdin: "Error: Zero length input.\nError loading input from
// stdin.\n"; an empty -i, or -c with a finite -x on v5 without -i: "Error: Invalid id.\n" (a
// non-UTF-8 -i: no message); -P without -u on 3.x: "Error: Problem setting username and/or
// password.\n"; properties on a 3.x connection: "Unable to connect (This feature is not
// supported.).\n". All exit 1 and are hidden by --quiet.
ParseOutcome parse_options(Tool tool, const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env, ClientOptions& opts);

// The --help text (Mosquitto's layout, every option, for `tern pub` etc.).
std::string usage(Tool tool);

}  // namespace tern::tools
