#include "net/ws_handshake.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tern::net {

namespace http = boost::beast::http;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

// True when a comma-separated header value lists `token` (case-insensitive).
bool lists_token(boost::beast::string_view value, std::string_view token) {
  for (auto t : http::token_list(value)) {
    if (iequals(std::string_view(t.data(), t.size()), token)) return true;
  }
  return false;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    default: return "Error";
  }
}

std::string content_type(const std::filesystem::path& p) {
  const std::string ext = p.extension().string();
  if (ext == ".html" || ext == ".htm") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json") return "application/json";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  if (ext == ".png") return "image/png";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".ico") return "image/x-icon";
  return "application/octet-stream";
}

constexpr std::size_t kMaxFile = 16u * 1024 * 1024;

}  // namespace

WsHandshake::WsHandshake(std::size_t max_header, std::string http_dir)
    : max_header_(max_header), http_dir_(std::move(http_dir)) {}

std::string WsHandshake::accept_key(const std::string& key) {
  const std::string in = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  unsigned char out[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
}

WsHandshake::Status WsHandshake::reject(int status, const std::string& why) {
  error_ = why;
  response_ = fmt::format("HTTP/1.1 {} {}\r\nConnection: close\r\nContent-Length: 0\r\n", status, reason_phrase(status));
  if (status == 426) response_ += "Sec-WebSocket-Version: 13\r\n";
  response_ += "\r\n";
  return Status::kReject;
}

WsHandshake::Status WsHandshake::serve_file(const std::string& target) {
  namespace fs = std::filesystem;
  std::string path = target.substr(0, target.find_first_of("?#"));
  if (path.empty() || path[0] != '/') return reject(400, "bad request target");
  // Only files inside http_dir: no "..", and the resolved path must stay below it.
  if (path.find("..") != std::string::npos) return reject(403, "path outside http_dir");
  if (path.back() == '/') path += "index.html";
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(http_dir_, ec);
  if (ec) return reject(404, "http_dir not readable");
  const fs::path file = fs::weakly_canonical(root / path.substr(1), ec);
  if (ec) return reject(404, "no such file");
  auto [r, f] = std::mismatch(root.begin(), root.end(), file.begin(), file.end());
  if (r != root.end()) return reject(403, "path outside http_dir");
  if (!fs::is_regular_file(file, ec) || fs::file_size(file, ec) > kMaxFile) return reject(404, "no such file");
  std::ifstream in(file, std::ios::binary);
  std::ostringstream body;
  body << in.rdbuf();
  if (!in && !in.eof()) return reject(404, "file not readable");
  const std::string data = body.str();
  response_ = fmt::format("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
                          content_type(file), data.size());
  response_ += data;
  return Status::kHttpReply;
}

WsHandshake::Status WsHandshake::feed(const char* data, std::size_t n) {
  buf_.append(data, n);
  // An HTTP request starts with a method in capitals; anything else (an MQTT CONNECT sent to the
  // wrong port, say) is refused at once instead of waiting for a header end that never comes.
  if (!buf_.empty() && !(buf_[0] >= 'A' && buf_[0] <= 'Z')) return reject(400, "not an HTTP request");
  const auto end = buf_.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (buf_.size() > max_header_) return reject(431, "request header too large");
    return Status::kIncomplete;
  }
  const std::size_t head = end + 4;
  if (head > max_header_) return reject(431, "request header too large");
  http::request_parser<http::empty_body> parser;
  parser.eager(false);
  parser.header_limit(static_cast<std::uint32_t>(head));
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(buf_.data(), head), ec);
  if (ec || !parser.is_header_done()) return reject(400, "malformed HTTP request");
  const auto& req = parser.get();
  rest_ = buf_.substr(head);
  buf_.clear();

  const bool upgrade = lists_token(req[http::field::connection], "upgrade") &&
                       lists_token(req[http::field::upgrade], "websocket");
  if (!upgrade) {
    if (req.method() != http::verb::get) return reject(405, "not a GET request");
    if (http_dir_.empty()) return reject(426, "not a WebSocket upgrade request");
    return serve_file(std::string(req.target().data(), req.target().size()));
  }
  if (req.method() != http::verb::get || req.version() < 11) return reject(400, "upgrade must be an HTTP/1.1 GET");
  if (req[http::field::sec_websocket_version] != "13") return reject(426, "unsupported WebSocket version");
  const boost::beast::string_view key_view = req[http::field::sec_websocket_key];
  const std::string key(key_view.data(), key_view.size());
  if (key.empty()) return reject(400, "no Sec-WebSocket-Key");
  // [MQTT-6.0.0-4] the subprotocol the server selects is "mqtt"; 3.1 clients may offer "mqttv3.1".
  // A request that offers none is served without one; one that offers only others is refused.
  const boost::beast::string_view offered = req[http::field::sec_websocket_protocol];
  if (lists_token(offered, "mqtt")) {
    subprotocol_ = "mqtt";
  } else if (lists_token(offered, "mqttv3.1")) {
    subprotocol_ = "mqttv3.1";
  } else if (!offered.empty()) {
    return reject(400, fmt::format("no MQTT subprotocol offered ({})", std::string(offered.data(), offered.size())));
  }
  response_ = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  response_ += "Sec-WebSocket-Accept: " + accept_key(key) + "\r\n";
  if (!subprotocol_.empty()) response_ += "Sec-WebSocket-Protocol: " + subprotocol_ + "\r\n";
  response_ += "\r\n";
  return Status::kUpgrade;
}

}  // namespace tern::net
