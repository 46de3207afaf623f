#pragma once
// The network side of the broker: one acceptor thread and N worker threads, each with its own
// io_context. The only layer that includes Asio (kept out of this header).
#include <memory>

#include "broker/broker.hpp"
#include "config/config.hpp"

namespace tern::net {

class Server {
 public:
  Server(const config::Config& cfg, broker::Broker& broker);
  ~Server();
  // Binds the listeners; throws std::runtime_error when a listener cannot be opened.
  void bind();
  // Serves until SIGINT or SIGTERM, then closes every connection gracefully. Returns the exit code.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::net
