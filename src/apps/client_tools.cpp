// `tern pub`, `tern sub`, `tern rr`: the option parser (tools/options) and the output formatter
// (tools/format) joined to the client library (tern/client.hpp). Every message, exit code and
// ordering of debug lines below reproduces what the Mosquitto 2.0.11 tools were measured to do
// (docs/tools.md lists the measurements); the code is Tern's own.
//
// One thread: the io_context runs the client, the timers and the signal handling; `tern pub -l`
// adds a reader thread for stdin that hands lines over under a bounded window.
#include "apps/client_tools.hpp"

#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "codec/packet.hpp"
#include "core/reason_code.hpp"
#include "core/topic.hpp"
#include "tern/client.hpp"
#include "tools/format.hpp"
#include "tools/options.hpp"

namespace tern::apps {
namespace {

namespace asio = boost::asio;
using tools::PayloadSource;
using tools::Tool;
using ToolOptions = tools::ClientOptions;

// libmosquitto's error numbers: the tools exit with them and print their texts.
enum MosqErr : int {
  kErrProtocol = 2,
  kErrInval = 3,
  kErrConnRefused = 5,
  kErrConnLost = 7,
  kErrTls = 8,
  kErrNotSupported = 10,
  kErrQosNotSupported = 24,
  kErrTimeout = 27,
};

const char* mosq_strerror(int e) {
  switch (e) {
    case kErrProtocol: return "A network protocol error occurred when communicating with the broker.";
    case kErrInval: return "Invalid function arguments provided.";
    case kErrConnRefused: return "The connection was refused.";
    case kErrConnLost: return "The connection was lost.";
    case kErrTls: return "A TLS error occurred.";
    case kErrNotSupported: return "This feature is not supported.";
    case kErrQosNotSupported: return "Requested QoS not supported on server.";
    case kErrTimeout: return "Timeout";
    default: return "Unknown error.";
  }
}

// MQTT 5 reason codes as the tools print them (their capitalisation, not the spec's).
const char* reason_string(std::uint8_t code) {
  switch (code) {
    case 0: return "Success";
    case 1: return "Granted QoS 1";
    case 2: return "Granted QoS 2";
    case 4: return "Disconnect with Will Message";
    case 16: return "No matching subscribers";
    case 17: return "No subscription existed";
    case 24: return "Continue authentication";
    case 25: return "Re-authenticate";
    case 128: return "Unspecified error";
    case 129: return "Malformed Packet";
    case 130: return "Protocol Error";
    case 131: return "Implementation specific error";
    case 132: return "Unsupported Protocol Version";
    case 133: return "Client Identifier not valid";
    case 134: return "Bad User Name or Password";
    case 135: return "Not authorized";
    case 136: return "Server unavailable";
    case 137: return "Server busy";
    case 138: return "Banned";
    case 139: return "Server shutting down";
    case 140: return "Bad authentication method";
    case 141: return "Keep Alive timeout";
    case 142: return "Session taken over";
    case 143: return "Topic Filter invalid";
    case 144: return "Topic Name invalid";
    case 145: return "Packet Identifier in use";
    case 146: return "Packet Identifier not found";
    case 147: return "Receive Maximum exceeded";
    case 148: return "Topic Alias invalid";
    case 149: return "Packet too large";
    case 150: return "Message rate too high";
    case 151: return "Quota exceeded";
    case 152: return "Administrative action";
    case 153: return "Payload format invalid";
    case 154: return "Retain not supported";
    case 155: return "QoS not supported";
    case 156: return "Use another server";
    case 157: return "Server moved";
    case 158: return "Shared Subscriptions not supported";
    case 159: return "Connection rate exceeded";
    case 160: return "Maximum connect time";
    case 161: return "Subscription identifiers not supported";
    case 162: return "Wildcard Subscriptions not supported";
    default: return "Unknown reason";
  }
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool contains(std::string_view s, std::string_view p) { return s.find(p) != std::string_view::npos; }

// What a failed connection attempt or a lost connection looks like to the Mosquitto tools. libmosquitto
// connects synchronously (name lookup, TCP connect and usually the TLS handshake happen inside
// mosquitto_connect), so those failures are "immediate": the tool prints them and exits 1. Anything
// after that happens in the network loop: a lost connection (the loop reconnects in mosquitto_sub
// and mosquitto_pub -l), or a fatal TLS or protocol error.
enum class FailKind { kImmediate, kLost, kTls, kProtocol };

struct Failure {
  FailKind kind = FailKind::kLost;
  std::string message;  // for kImmediate: the whole stderr text
  std::string openssl;  // OpenSSL's error line, printed with -d as libmosquitto logs it
};

// Classifies the client library's error text (include/tern/client.hpp gives no structured kind; see
// docs/tools.md). The texts are the library's own: "cannot resolve", "cannot bind to", "TLS
// handshake failed: <OpenSSL error>", "cannot load ...", a Unix socket's "<path>: <strerror>",
// "connection closed by the server", "protocol error: ...", "keepalive timeout", or strerror text.
Failure classify(const std::string& error, bool unix_socket) {
  Failure f;
  if (starts_with(error, "cannot resolve ")) {
    f.kind = FailKind::kImmediate;
    f.message = "Unable to connect (Lookup error.).\n";
    return f;
  }
  if (starts_with(error, "cannot bind to ")) {
    f.kind = FailKind::kImmediate;
    const auto colon = error.rfind(": ");
    f.message = "Error: " + (colon == std::string::npos ? error : error.substr(colon + 2)) + "\n";
    return f;
  }
  if (starts_with(error, "TLS handshake failed: ")) {
    const std::string detail = error.substr(std::strlen("TLS handshake failed: "));
    if (starts_with(detail, "error:")) f.openssl = detail;
    // The server went away during the handshake (a plain MQTT listener closes on the ClientHello):
    // libmosquitto sees it in its loop. An alert or a failed verification ends mosquitto_connect.
    if (contains(detail, "unexpected eof") || contains(detail, "stream truncated") || contains(detail, "reset by peer") ||
        contains(detail, "End of file") || contains(detail, "Broken pipe")) {
      f.kind = FailKind::kTls;
      // Asio reports OpenSSL 3's "unexpected eof while reading" as its own error (stream_truncated
      // or eof); libmosquitto logs OpenSSL's.
      if (f.openssl.empty()) f.openssl = "error:0A000126:SSL routines::unexpected eof while reading";
    } else {
      f.kind = FailKind::kImmediate;
      f.message = "Unable to connect (A TLS error occurred.).\n";
    }
    return f;
  }
  if (starts_with(error, "cannot load ") || starts_with(error, "cannot use CA path") || error == "invalid TLS cipher list") {
    f.kind = FailKind::kImmediate;
    f.message = "Unable to connect (A TLS error occurred.).\n";
    return f;
  }
  if (starts_with(error, "protocol error")) {
    f.kind = FailKind::kProtocol;
    return f;
  }
  if (error == "connection closed by the server" || error == "keepalive timeout" || starts_with(error, "disconnected by the server") ||
      error == "Connection reset by peer" || error == "Broken pipe" || error == "End of file" || error == "connection lost") {
    f.kind = FailKind::kLost;
    return f;
  }
  f.kind = FailKind::kImmediate;
  std::string text = error;
  if (unix_socket) {
    if (const auto colon = text.rfind(": "); colon != std::string::npos) text = text.substr(colon + 2);
  }
  if (text == "timed out") text = "Connection timed out";
  f.message = "Error: " + text + "\n";
  return f;
}

// ---------------------------------------------------------------------------------------------
// Preparation: everything the tools check after the options and before connecting.

struct Prepared {
  tern::ClientOptions client;
  std::string payload;  // -m, -f, -s, -n
  int exit_code = 0;
  bool proceed = true;
};

std::map<std::string, std::string> option_env() {
  std::map<std::string, std::string> env;
  for (const char* name : {"HOME", "XDG_CONFIG_HOME"}) {
    if (const char* v = std::getenv(name)) env[name] = v;
  }
  return env;
}

void write_err(const ToolOptions& o, std::string_view text) {
  if (o.quiet || text.empty()) return;
  std::fwrite(text.data(), 1, text.size(), stderr);
}

// Reads -f. Mosquitto refuses files of 256 MiB and more; a directory reads as too large.
bool load_file(const ToolOptions& o, std::string& payload) {
  constexpr long long kMaxPayload = 268435455;
  std::FILE* f = std::fopen(o.file.c_str(), "rb");
  if (!f) {
    write_err(o, "Error: Unable to open file \"" + o.file + "\".\nError loading input file \"" + o.file + "\".\n");
    return false;
  }
  struct stat st {};
  const bool too_large = fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode) || st.st_size >= kMaxPayload;
  if (too_large) {
    std::fclose(f);
    write_err(o, "Error: File must be less than 268435455 bytes.\n\nError loading input file \"" + o.file + "\".\n");
    return false;
  }
  payload.clear();
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) payload.append(buf, n);
  std::fclose(f);
  return true;
}

bool load_stdin(const ToolOptions& o, std::string& payload) {
  payload.clear();
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(0, buf, sizeof buf);
    if (n > 0) {
      payload.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  if (payload.empty()) {
    write_err(o, "Error: Zero length input.\nError loading input from stdin.\n");
    return false;
  }
  return true;
}

bool readable(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return false;
  std::fclose(f);
  return true;
}

// Well-formed UTF-8 without NUL (what libmosquitto requires of a client id).
bool valid_utf8_id(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || c == 0 || i + len > s.size()) return false;
    std::uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

// MQTT 3.1 needs a client id: libmosquitto makes "mosq-" and 18 random alphanumerics.
std::string random_client_id() {
  static constexpr char kChars[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::random_device rd;
  std::mt19937 gen(rd());
  std::uniform_int_distribution<int> pick(0, 61);
  std::string id = "mosq-";
  for (int i = 0; i < 18; ++i) id += kChars[pick(gen)];
  return id;
}

// The bind address may be a host name, as with Mosquitto's -A; the library takes a numeric address.
bool resolve_bind(const std::string& host, std::string& numeric) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) return false;
  char buf[NI_MAXHOST];
  const bool ok = getnameinfo(res->ai_addr, res->ai_addrlen, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) == 0;
  freeaddrinfo(res);
  if (ok) numeric = buf;
  return ok;
}

// Runs the checks libmosquitto makes between the options and the connection, in its order, and
// builds the library's options.
Prepared prepare(const ToolOptions& o) {
  Prepared p;
  auto fail = [&](std::string_view text) {
    write_err(o, text);
    p.proceed = false;
    p.exit_code = 1;
    return p;
  };
  if (!o.unsupported.empty()) {
    // Accepted by the parser for compatibility, but Tern has no SOCKS client, SRV resolver or
    // OpenSSL engine support.
    return fail(std::string("Error: ") + o.unsupported.front() + " is not supported by " + tools::tool_name(o.tool) + ".\n");
  }
  if (o.tool != Tool::kSub) {
    switch (o.payload_source) {
      case PayloadSource::kMessage: p.payload = o.message; break;
      case PayloadSource::kFile:
      case PayloadSource::kStdinFile: {
        const bool loaded = o.payload_source == PayloadSource::kFile ? load_file(o, p.payload) : load_stdin(o, p.payload);
        if (!loaded) {
          p.proceed = false;
          p.exit_code = 1;
          return p;
        }
        break;
      }
      default: break;
    }
  }
  tern::ClientOptions& c = p.client;
  const bool v5 = o.version == codec::Version::kV5;
  // Client id: -i verbatim, -I prefix + pid, else empty (3.1: a random one).
  if (o.client_id) {
    if (o.client_id->empty()) return fail("Error: Invalid id.\n");
    if (!valid_utf8_id(*o.client_id)) return fail("");
    c.client_id = *o.client_id;
  } else if (o.client_id_prefix) {
    c.client_id = *o.client_id_prefix + std::to_string(::getpid());
  } else if (!o.clean_session) {
    // v5 with -c and a finite -x passes the option checks but libmosquitto refuses a persistent
    // session without an id.
    return fail("Error: Invalid id.\n");
  } else if (o.version == codec::Version::kV31) {
    c.client_id = random_client_id();
  }
  if (o.will_topic) {
    if (!v5 && !o.will_props.empty()) return fail("Error: Problem setting will.\n");
    Will w;
    w.topic = *o.will_topic;
    w.payload = o.will_payload.value_or("");
    w.qos = o.will_qos;
    w.retain = o.will_retain;
    if (v5) w.props = o.will_props;
    c.will = std::move(w);
  }
  if (o.password && !o.username && !v5) return fail("Error: Problem setting username and/or password.\n");
  c.username = o.username;
  c.password = o.password;
  if (o.tls()) {
    c.tls.enabled = true;
    if (o.cafile || o.capath || o.tls_use_os_certs) {
      if ((o.cafile && !readable(*o.cafile)) || (o.certfile && !readable(*o.certfile)) || (o.keyfile && !readable(*o.keyfile))) {
        return fail("Error: Problem setting TLS options: File not found.\n");
      }
    }
    if (o.tls_version && *o.tls_version != "tlsv1.3" && *o.tls_version != "tlsv1.2" && *o.tls_version != "tlsv1.1") {
      return fail("Error: Problem setting TLS options, check the options are valid.\n");
    }
    if (o.keyform && *o.keyform != "pem" && *o.keyform != "engine") {
      return fail("Error: Problem setting key form, it must be one of 'pem' or 'engine'.\n");
    }
    c.tls.cafile = o.cafile.value_or("");
    c.tls.capath = o.capath.value_or("");
    c.tls.use_os_certs = o.tls_use_os_certs;
    c.tls.certfile = o.certfile.value_or("");
    c.tls.keyfile = o.keyfile.value_or("");
    c.tls.tls_version = o.tls_version.value_or("");
    c.tls.ciphers = o.ciphers.value_or("");
    c.tls.alpn = o.tls_alpn.value_or("");
    c.tls.insecure = o.insecure;
    c.tls.psk = o.psk.value_or("");
    c.tls.psk_identity = o.psk_identity.value_or("");
  }
  // CONNECT properties on a 3.x connection: mosquitto_connect_bind_v5 refuses them.
  if (!v5 && !o.connect_props.empty()) return fail("Unable to connect (This feature is not supported.).\n");

  if (o.unix_socket) {
    c.unix_socket = *o.unix_socket;
  } else {
    const int port = o.effective_port();
    if (port < 0 || port > 65535) return fail("Unable to connect (Invalid function arguments provided.).\n");
    if (port == 0) {
      // libmosquitto: port 0 means "the host is a Unix socket path".
      c.unix_socket = o.host;
    } else {
      c.host = o.host;
      c.port = static_cast<std::uint16_t>(port);
    }
  }
  if (o.bind_address) {
    if (!resolve_bind(*o.bind_address, c.bind_address)) return fail("Unable to connect (Lookup error.).\n");
  }
  c.nodelay = o.nodelay;
  c.version = o.version;
  c.clean_start = o.clean_session;
  c.keepalive = o.keepalive;
  if (v5) {
    c.connect_props = o.connect_props;
    // libmosquitto announces its own receive maximum (20, or 1 for mosquitto_rr) whatever -M says.
    if (!c.connect_props.receive_maximum) c.connect_props.receive_maximum = o.tool == Tool::kRr ? 1 : 20;
  }
  c.max_inflight = static_cast<std::uint16_t>(std::min(o.max_inflight, 65535));
  // The tools' own flow control bounds what is queued (pub -l); libmosquitto queues without limit.
  c.max_queued_messages = 0;
  c.max_queued_bytes = 0;
  c.auto_reconnect = false;
  // libmosquitto has no connect timeout of its own: the OS's TCP timeout and the keepalive apply.
  c.connect_timeout = std::chrono::hours(24);
  return p;
}

// ---------------------------------------------------------------------------------------------
// The part the three tools share: the client, its callbacks, debug output, failures, reconnects.

class ToolRun {
 public:
  ToolRun(const ToolOptions& o, tern::ClientOptions c)
      : o_(o), copts_(std::move(c)), retry_timer_(io_), timeout_timer_(io_) {}
  virtual ~ToolRun() = default;
  ToolRun(const ToolRun&) = delete;
  ToolRun& operator=(const ToolRun&) = delete;

  int run() {
    begin();
    make_client();
    client_->connect();
    io_.run();
    std::fflush(stdout);
    return rc_;
  }

 protected:
  bool v5() const { return o_.version == codec::Version::kV5; }
  // DISCONNECT reason of the tools' signal and -W handler: "disconnect with will message".
  std::uint8_t interrupt_reason() const { return v5() ? 4 : 0; }

  virtual void begin() {}
  virtual void on_connected(const ConnectResult& r) = 0;
  virtual void on_message(const MessageView&) {}
  virtual void on_publish(std::uint16_t, std::uint8_t) {}
  virtual void on_subscribe(std::uint16_t, const std::vector<std::uint8_t>&) {}
  // The loop reconnects after a lost connection (mosquitto_loop_forever: mosquitto_sub, pub -l).
  virtual bool reconnects() const { return false; }
  virtual void on_finish() {}

  void out(std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); }
  void err(std::string_view s) { write_err(o_, s); }
  void debug(const std::string& line) {
    if (!o_.debug) return;
    out(line);
    out("\n");
  }
  std::string id_for_log() const {
    const std::string& id = client_ ? client_->client_id() : copts_.client_id;
    return id.empty() ? "(null)" : id;
  }

  // The client acknowledges a QoS 1 message before delivering it (as libmosquitto does), so with -d
  // the PUBACK line comes first, as with mosquitto_sub.
  void print(std::string_view text, std::uint8_t /*qos*/) { out(text); }

  // Asks for a clean end: DISCONNECT when connected, else stop here.
  void finish(std::uint8_t reason = 0) {
    if (finishing_) return;
    finishing_ = true;
    retry_timer_.cancel();
    timeout_timer_.cancel();
    on_finish();
    if (client_ && client_->connected()) {
      client_->disconnect(reason, o_.disconnect_props);
    } else {
      drop_client();
    }
  }
  // Closes without DISCONNECT (mosquitto_rr after its response), after what is queued was written.
  void close_now() {
    if (finishing_) return;
    finishing_ = true;
    retry_timer_.cancel();
    timeout_timer_.cancel();
    on_finish();
    asio::post(io_, [this] { drop_client(); });
  }
  // Ends without a DISCONNECT (the connection failed or was refused).
  void end_now(int rc) {
    rc_ = rc;
    finishing_ = true;
    retry_timer_.cancel();
    timeout_timer_.cancel();
    on_finish();
    drop_client();
  }
  void drop_client() {
    if (!client_) return;
    // The client's handlers may still be on the stack: destroy it from a fresh handler.
    asio::post(io_, [c = std::shared_ptr<AsyncClient>(std::move(client_))] {});
  }

  const ToolOptions& o_;
  tern::ClientOptions copts_;
  asio::io_context io_;
  std::unique_ptr<AsyncClient> client_;
  asio::steady_timer retry_timer_;
  asio::steady_timer timeout_timer_;
  int rc_ = 0;
  bool connected_ = false;       // a CONNACK accepted the connection (and it has not ended yet)
  bool ever_connected_ = false;  // mosquitto's "connected" flag: a CONNACK accepted one
  bool in_loop_ = false;         // past the synchronous part of the first connect
  bool finishing_ = false;
  bool retain_available_ = true;  // CONNACK retain-available (5.0)

 private:
  void make_client() {
    client_ = std::make_unique<AsyncClient>(io_, copts_);
    if (o_.debug) {
      client_->on_log = [this](const std::string& line) {
        out(line);
        out("\n");
      };
    }
    client_->on_connect = [this](const ConnectResult& r) { connect_result(r); };
    client_->on_message = [this](const MessageView& m) {
      if (!finishing_) on_message(m);
    };
    client_->on_publish = [this](std::uint16_t mid, std::uint8_t reason) { on_publish(mid, reason); };
    client_->on_subscribe = [this](std::uint16_t mid, const std::vector<std::uint8_t>& codes) { on_subscribe(mid, codes); };
    client_->on_disconnect = [this](const DisconnectInfo& info) { disconnected(info); };
  }

  void connect_result(const ConnectResult& r) {
    if (r.success) {
      in_loop_ = true;
      connected_ = true;
      ever_connected_ = true;
      if (v5() && r.props.retain_available && *r.props.retain_available == 0) retain_available_ = false;
      on_connected(r);
      return;
    }
    if (r.code != ConnectResult::kNoConnack) return refused(r.code);
    Failure f = classify(r.error, !copts_.unix_socket.empty());
    if (f.kind == FailKind::kImmediate && !in_loop_) {
      if (o_.tool == Tool::kRr && (starts_with(f.message, "Unable to connect (A TLS"))) {
        // mosquitto_rr meets TLS failures in its loop.
        f.kind = FailKind::kTls;
      } else {
        if (!f.openssl.empty()) debug("OpenSSL Error[0]: " + f.openssl);
        err(f.message);
        end_now(1);
        return;
      }
    }
    if (f.kind == FailKind::kTls && !in_loop_) {
      // libmosquitto queued its CONNECT before the handshake failed in the loop.
      debug("Client " + id_for_log() + " sending CONNECT");
    }
    in_loop_ = true;
    loop_failure(f);
  }

  // A failure inside the network loop (before or after CONNACK).
  void loop_failure(const Failure& f) {
    connected_ = false;
    if (finishing_) return;
    if (f.kind == FailKind::kTls || f.kind == FailKind::kProtocol) {
      if (!f.openssl.empty()) debug("OpenSSL Error[0]: " + f.openssl);
      const int rc = f.kind == FailKind::kTls ? kErrTls : kErrProtocol;
      err(std::string("Error: ") + mosq_strerror(rc) + "\n");
      end_now(rc);
      return;
    }
    if (reconnects()) {
      // mosquitto_loop_forever: wait a second, reconnect, silently, until it works.
      retry_timer_.expires_after(std::chrono::seconds(1));
      retry_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || finishing_ || !client_) return;
        client_->connect();
      });
      return;
    }
    err(std::string("Error: ") + mosq_strerror(kErrConnLost) + "\n");
    end_now(kErrConnLost);
  }

  void refused(std::uint8_t code) {
    connected_ = false;
    std::string msg = "Connection error: ";
    if (o_.tool == Tool::kRr) {
      msg += reason_string(code);
      if (code == 132) msg += std::string(". ") + tools::tool_name(Tool::kRr) + " only supports connecting to an MQTT v5 broker";
    } else if (v5()) {
      msg += reason_string(code);
      if (code == 132) msg += ". Try connecting to an MQTT v5 broker, or use MQTT v3.x mode.";
    } else {
      msg += connack_v3_name(code);
      msg += '.';
    }
    err(msg + "\n");
    // The tools call mosquitto_disconnect from their connect callback; only pub's logs nothing.
    if (o_.tool != Tool::kPub) debug("Client " + id_for_log() + " sending DISCONNECT");
    if (o_.tool == Tool::kPub) {
      const bool refused_3x = !v5() && code >= 1 && code <= 5;
      err(std::string("Error: ") + mosq_strerror(refused_3x ? kErrConnRefused : kErrProtocol) + "\n");
    }
    end_now(code);
  }

  void disconnected(const DisconnectInfo& info) {
    connected_ = false;
    if (finishing_) return;
    loop_failure(classify(info.error.empty() ? std::string("connection lost") : info.error, false));
  }
};

// ---------------------------------------------------------------------------------------------
// tern sub

class SubRun final : public ToolRun {
 public:
  SubRun(const ToolOptions& o, tern::ClientOptions c) : ToolRun(o, std::move(c)), signals_(io_, SIGINT, SIGTERM) {
    fmt_.verbose = o.verbose;
    fmt_.eol = !o.no_eol;
    fmt_.pretty = o.pretty;
    fmt_.format = o.format;
    // mosquitto_sub keeps tenths of the value and prints when rand() % 10000 is below them, so
    // "--random-filter 50" prints 5% of the messages, 100 prints 10% and 1000 prints all (measured).
    random_threshold_ = o.random_filter ? static_cast<int>(*o.random_filter * 10.0) : 10000;
    rng_.seed(std::random_device{}());
  }

 private:
  bool reconnects() const override { return true; }

  void begin() override {
    signals_.async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;
      interrupted();
    });
    if (o_.timeout > 0) {
      timeout_timer_.expires_after(std::chrono::seconds(o_.timeout));
      timeout_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        timed_out_ = true;
        interrupted();
      });
    }
  }

  // SIGINT, SIGTERM or the -W alarm: mosquitto_sub disconnects (with the will, on 5.0), or exits
  // at once with status 255 when no CONNACK accepted it yet.
  void interrupted() {
    if (!ever_connected_) {
      std::fflush(stdout);
      std::_Exit(255);
    }
    finish(interrupt_reason());
  }

  void on_finish() override {
    boost::system::error_code ignored;
    signals_.cancel(ignored);
    if (timed_out_) {
      rc_ = kErrTimeout;
      err("Timed out\n");
    }
  }

  void on_connected(const ConnectResult&) override {
    std::vector<Subscription> subs;
    subs.reserve(o_.topics.size());
    for (const auto& t : o_.topics) {
      Subscription s;
      s.filter = t;
      s.qos = o_.qos;
      // Subscription options exist on 5.0 only; libmosquitto drops them on 3.x.
      s.retain_as_published = v5() && o_.retain_as_published;
      subs.push_back(std::move(s));
    }
    client_->subscribe(std::move(subs), o_.subscribe_props);
    for (const auto& u : o_.unsubscribe) client_->unsubscribe({u}, o_.unsubscribe_props);
    schedule_flush();
  }

  void on_subscribe(std::uint16_t mid, const std::vector<std::uint8_t>& codes) override {
    if (o_.debug) {
      std::string line = "Subscribed (mid: " + std::to_string(mid) + "): ";
      for (std::size_t i = 0; i < codes.size(); ++i) {
        if (i) line += ", ";
        line += std::to_string(codes[i]);
      }
      debug(line);
    }
    bool any_granted = false;
    for (auto c : codes) any_granted = any_granted || c < 0x80;
    if (o_.exit_after_subscribe) {
      finish();
    } else if (!any_granted) {
      err("All subscription requests were denied.\n");
      finish();
    }
    schedule_flush();
  }

  void on_message(const MessageView& m) override {
    schedule_flush();
    if (!processing_) return;
    if (o_.retained_only && !m.retain) {
      // --retained-only: a fresh message ends it, but not while a removal is unacknowledged (the
      // broker's own echo of a removal is such a message): mosquitto_sub ignores it then.
      if (last_removal_ == 0) {
        processing_ = false;
        post_finish();
      }
      return;
    }
    if (o_.no_retained && m.retain) return;
    for (const auto& f : o_.filter_out) {
      if (topic_matches(f, m.topic)) return;
    }
    if (o_.remove_retained && m.retain) {
      PublishError e = PublishError::kNone;
      const std::uint16_t mid = client_->publish(std::string(m.topic), {}, 1, retain_available_, {}, &e);
      if (mid) last_removal_ = mid;
    }
    if (random_threshold_ < 10000 && static_cast<int>(rng_() % 10000) >= random_threshold_) return;

    msg_.qos = m.qos;
    msg_.dup = m.dup;
    msg_.retain = m.retain;
    msg_.topic.assign(m.topic);
    msg_.packet_id = m.mid;
    msg_.props = *m.props;
    msg_.payload = m.payload;
    text_.clear();
    const std::string errors = tools::format_message(fmt_, msg_, std::chrono::system_clock::now(), text_);
    print(text_, m.qos);
    err(errors);
    if (o_.msg_count > 0 && ++count_ == o_.msg_count) {
      processing_ = false;
      if (last_removal_ == 0) post_finish();
    }
  }

  // A removal is acknowledged. mosquitto_sub then forgets it; when -C had already stopped the
  // processing it never exits by itself (it waits for -W or a signal). Tern ends here instead.
  void on_publish(std::uint16_t mid, std::uint8_t) override {
    if (mid != last_removal_) return;
    last_removal_ = 0;
    if (!processing_) post_finish();
  }

  // From inside a message callback the acknowledgement is still to be sent: end after it.
  void post_finish() {
    asio::post(io_, [this] { finish(); });
  }

  // mosquitto_sub flushes stdout after every message; Tern flushes once the current batch of
  // received packets is handled, before it waits again.
  void schedule_flush() {
    if (flush_posted_) return;
    flush_posted_ = true;
    asio::post(io_, [this] {
      flush_posted_ = false;
      std::fflush(stdout);
    });
  }

  asio::signal_set signals_;
  tools::OutputFormat fmt_;
  codec::Publish msg_;
  std::string text_;
  bool processing_ = true;
  bool timed_out_ = false;
  bool flush_posted_ = false;
  int count_ = 0;
  std::uint16_t last_removal_ = 0;
  int random_threshold_ = 10000;
  std::mt19937 rng_;
};

// ---------------------------------------------------------------------------------------------
// tern rr

class RrRun final : public ToolRun {
 public:
  RrRun(const ToolOptions& o, tern::ClientOptions c, std::string payload)
      : ToolRun(o, std::move(c)), payload_(std::move(payload)) {
    fmt_.verbose = o.verbose;
    fmt_.eol = !o.no_eol;
    fmt_.pretty = o.pretty;
    fmt_.format = o.format;
  }

 private:
  void begin() override {
    if (o_.timeout > 0) {
      timeout_timer_.expires_after(std::chrono::seconds(o_.timeout));
      timeout_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        err("Timed out\n");
        rc_ = kErrTimeout;
        finish(interrupt_reason());
      });
    }
  }

  void on_connected(const ConnectResult&) override {
    Subscription s;
    s.filter = *o_.response_topic;
    s.qos = o_.qos;
    s.retain_as_published = v5() && o_.retain_as_published;
    client_->subscribe({s}, o_.subscribe_props);
  }

  void on_subscribe(std::uint16_t, const std::vector<std::uint8_t>&) override {
    if (requested_) return;
    requested_ = true;
    Properties props = o_.publish_props;
    props.response_topic = *o_.response_topic;
    PublishError e = PublishError::kNone;
    const std::string& topic = o_.topics.empty() ? std::string() : o_.topics.front();
    if (client_->publish(topic, payload_, o_.qos, false, v5() ? std::move(props) : Properties{}, &e) == 0) {
      rc_ = e == PublishError::kQosNotSupported ? kErrQosNotSupported : kErrInval;
      err(std::string("Error: ") + mosq_strerror(rc_) + "\n");
      finish();
    }
  }

  void on_message(const MessageView& m) override {
    if (o_.no_retained && m.retain) return;
    msg_.qos = m.qos;
    msg_.dup = m.dup;
    msg_.retain = m.retain;
    msg_.topic.assign(m.topic);
    msg_.packet_id = m.mid;
    msg_.props = *m.props;
    msg_.payload = m.payload;
    std::string text;
    const std::string errors = tools::format_message(fmt_, msg_, std::chrono::system_clock::now(), text);
    print(text, m.qos);
    err(errors);
    // mosquitto_rr leaves its loop after the first response and closes without DISCONNECT.
    close_now();
  }

  std::string payload_;
  tools::OutputFormat fmt_;
  codec::Publish msg_;
  bool requested_ = false;
};

// ---------------------------------------------------------------------------------------------
// tern pub

// Lines of stdin for `pub -l`, read on their own thread so that a slow broker never blocks on a
// terminal and a large file never sits in memory: the reader stops while `window` lines are
// outstanding (read but not yet acknowledged).
struct LineFeed {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> lines;
  std::size_t outstanding = 0;
  std::size_t window = 100;
  bool eof = false;
  bool closed = false;  // the consumer is gone: post nothing more
  bool notify_pending = false;
  asio::io_context* io = nullptr;
  std::function<void()> wake;  // runs on the io thread

  // mosquitto_pub -l: one message per '\n'-terminated line (a CR stays part of it); an unterminated
  // last line is sent too; a line holding a NUL byte is cut there and ends the input (libmosquitto
  // reads lines as C strings).
  static void read_loop(std::shared_ptr<LineFeed> f) {
    std::string acc;      // bytes read; acc[pos..] are not consumed yet
    std::size_t pos = 0;
    std::size_t scan = 0;  // where the search for the next '\n' goes on
    char buf[65536];
    bool at_eof = false;
    for (;;) {
      {
        std::unique_lock lk(f->mu);
        f->cv.wait(lk, [&] { return f->closed || f->outstanding < f->window; });
        if (f->closed) return;
      }
      std::string line;
      bool last = false;
      for (;;) {
        const std::size_t nl = acc.find('\n', scan);
        if (nl != std::string::npos) {
          line.assign(acc, pos, nl - pos);
          pos = scan = nl + 1;
          break;
        }
        scan = acc.size();
        if (at_eof) {
          if (pos == acc.size()) {
            push(f, std::nullopt);
            return;
          }
          line.assign(acc, pos, std::string::npos);
          pos = scan = acc.size();
          last = true;
          break;
        }
        if (pos > 0) {  // drop what was consumed before reading more
          acc.erase(0, pos);
          scan -= pos;
          pos = 0;
        }
        const ssize_t n = ::read(0, buf, sizeof buf);
        if (n > 0) {
          acc.append(buf, static_cast<std::size_t>(n));
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else {
          at_eof = true;
        }
      }
      if (const std::size_t nul = line.find('\0'); nul != std::string::npos) {
        line.resize(nul);
        last = true;
      }
      push(f, std::move(line));
      if (last) {
        push(f, std::nullopt);
        return;
      }
    }
  }

  static void push(const std::shared_ptr<LineFeed>& f, std::optional<std::string> line) {
    std::lock_guard lk(f->mu);
    if (f->closed) return;
    if (line) {
      f->lines.push_back(std::move(*line));
      ++f->outstanding;
    } else {
      f->eof = true;
    }
    if (!f->notify_pending) {
      f->notify_pending = true;
      asio::post(*f->io, [f] { f->wake(); });
    }
  }
};

class PubRun final : public ToolRun {
 public:
  PubRun(const ToolOptions& o, tern::ClientOptions c, std::string payload)
      : ToolRun(o, std::move(c)), payload_(std::move(payload)), delay_timer_(io_) {}

  ~PubRun() override {
    if (feed_) {
      std::lock_guard lk(feed_->mu);
      feed_->closed = true;
      feed_->cv.notify_all();
    }
  }

 private:
  bool line_mode() const { return o_.payload_source == PayloadSource::kStdinLine; }
  bool reconnects() const override { return line_mode(); }

  void on_finish() override {
    boost::system::error_code ignored;
    delay_timer_.cancel(ignored);
    if (feed_) {
      std::lock_guard lk(feed_->mu);
      feed_->closed = true;
      feed_->cv.notify_all();
    }
  }

  void on_connected(const ConnectResult&) override {
    if (line_mode()) {
      if (!feed_) start_feed();
      return;
    }
    if (!started_) {
      started_ = true;
      publish_next();
    }
  }

  bool do_publish(std::string payload, std::uint16_t& mid) {
    PublishError e = PublishError::kNone;
    const std::string& topic = o_.topics.empty() ? std::string() : o_.topics.front();
    // libmosquitto clears the retain flag when the server has no retained messages (5.0).
    mid = client_->publish(topic, std::move(payload), o_.qos, o_.retain && retain_available_, o_.publish_props, &e);
    if (mid != 0) return true;
    switch (e) {
      case PublishError::kInvalid: err("Error: Invalid input. Does your topic contain '+' or '#'?\n"); break;
      case PublishError::kQosNotSupported: err("Error: Message QoS not supported on broker, try a lower QoS.\n"); break;
      case PublishError::kPacketTooLarge: break;  // mosquitto_pub says nothing
      default: err("Error: Out of memory when trying to publish message.\n"); break;
    }
    finish();
    return false;
  }

  void publish_next() {
    ++sent_;
    std::uint16_t mid = 0;
    if (do_publish(payload_, mid)) current_ = mid;
  }

  void on_publish(std::uint16_t mid, std::uint8_t reason) override {
    // 0x95 without a server's word is the client's own "larger than the server's maximum packet
    // size", which mosquitto_pub does not report.
    if (v5() && reason >= 0x80 && reason != static_cast<std::uint8_t>(PublishError::kPacketTooLarge)) {
      err("Warning: Publish " + std::to_string(mid) + " failed: " + reason_string(reason) + ".\n");
    }
    if (finishing_) return;
    if (line_mode()) {
      {
        std::lock_guard lk(feed_->mu);
        if (feed_->outstanding) --feed_->outstanding;
      }
      feed_->cv.notify_one();
      maybe_end_lines();
      return;
    }
    if (mid != current_) return;
    if (sent_ >= o_.repeat_count) {
      finish();
    } else if (o_.repeat_delay > 0) {
      delay_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(o_.repeat_delay)));
      delay_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && !finishing_) publish_next();
      });
    } else {
      publish_next();
    }
  }

  void start_feed() {
    feed_ = std::make_shared<LineFeed>();
    feed_->window = std::max<std::size_t>(100, 2 * static_cast<std::size_t>(o_.max_inflight));
    feed_->io = &io_;
    feed_->wake = [this] { take_lines(); };
    std::thread(LineFeed::read_loop, feed_).detach();
  }

  void take_lines() {
    std::deque<std::string> batch;
    {
      std::lock_guard lk(feed_->mu);
      feed_->notify_pending = false;
      batch.swap(feed_->lines);
      input_done_ = feed_->eof;
    }
    for (auto& line : batch) {
      if (finishing_) return;
      std::uint16_t mid = 0;
      if (!do_publish(std::move(line), mid)) return;
    }
    maybe_end_lines();
  }

  void maybe_end_lines() {
    if (!input_done_ || finishing_ || !client_ || client_->pending() != 0) return;
    std::lock_guard lk(feed_->mu);
    if (feed_->outstanding == 0 && feed_->lines.empty() && connected_) {
      asio::post(io_, [this] { finish(); });
    }
  }

  std::string payload_;
  asio::steady_timer delay_timer_;
  std::shared_ptr<LineFeed> feed_;
  bool started_ = false;
  bool input_done_ = false;
  int sent_ = 0;
  std::uint16_t current_ = 0;
};

int tool_main(Tool tool, int argc, char** argv) {
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  ToolOptions o;
  const tools::ParseOutcome parsed = tools::parse_options(tool, args, option_env(), o);
  if (!parsed.out.empty()) std::fwrite(parsed.out.data(), 1, parsed.out.size(), stdout);
  if (!parsed.err.empty()) std::fwrite(parsed.err.data(), 1, parsed.err.size(), stderr);
  if (!parsed.proceed) return parsed.exit_code;
  Prepared p = prepare(o);
  if (!p.proceed) return p.exit_code;
  switch (tool) {
    case Tool::kPub: return PubRun(o, std::move(p.client), std::move(p.payload)).run();
    case Tool::kSub: return SubRun(o, std::move(p.client)).run();
    case Tool::kRr: return RrRun(o, std::move(p.client), std::move(p.payload)).run();
  }
  return 1;
}

}  // namespace

int pub_main(int argc, char** argv) { return tool_main(Tool::kPub, argc, argv); }
int sub_main(int argc, char** argv) { return tool_main(Tool::kSub, argc, argv); }
int rr_main(int argc, char** argv) { return tool_main(Tool::kRr, argc, argv); }

}  // namespace tern::apps
