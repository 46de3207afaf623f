#pragma once
// The HTTP side of a WebSocket listener: the opening handshake (RFC 6455 section 4.2), without I/O.
// Also serves plain GET requests from `http_dir`, as Mosquitto's websockets listeners do.
#include <cstddef>
#include <string>

namespace tern::net {

class WsHandshake {
 public:
  enum class Status { kIncomplete, kUpgrade, kHttpReply, kReject };

  // max_header: the largest request head accepted (websockets_headers_size); http_dir: folder for
  // plain HTTP GET requests, empty = none.
  WsHandshake(std::size_t max_header, std::string http_dir);

  // Feeds received bytes. kUpgrade: send response(), then WebSocket frames follow; rest() holds the
  // bytes already received after the request. kHttpReply / kReject: send response(), then close
  // (error() says why for kReject).
  Status feed(const char* data, std::size_t n);

  const std::string& response() const { return response_; }
  std::string& rest() { return rest_; }
  const std::string& error() const { return error_; }
  const std::string& subprotocol() const { return subprotocol_; }

  // Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2).
  static std::string accept_key(const std::string& key);

 private:
  Status reject(int status, const std::string& why);
  Status serve_file(const std::string& target);

  std::size_t max_header_;
  std::string http_dir_;
  std::string buf_;
  std::string response_;
  std::string rest_;
  std::string error_;
  std::string subprotocol_;
};

}  // namespace tern::net
