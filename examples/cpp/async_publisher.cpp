// Publishes N QoS 1 messages with Tern's asynchronous client and exits when the broker has
// acknowledged all of them. It keeps at most 1000 messages pending (queued or in flight): each
// acknowledgement lets the next message in. Usage: async_publisher [HOST [PORT [N]]]
#include <tern/client.hpp>

#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  tern::ClientOptions opts;
  opts.host = argc > 1 ? argv[1] : "localhost";
  opts.port = static_cast<std::uint16_t>(argc > 2 ? std::atoi(argv[2]) : 1883);
  const int n = argc > 3 ? std::atoi(argv[3]) : 1000;
  opts.auto_reconnect = false;

  boost::asio::io_context io;
  tern::AsyncClient client(io, opts);
  int sent = 0;
  int acked = 0;
  int status = 0;
  client.on_connect = [&](const tern::ConnectResult& r) {
    if (!r.success) {
      std::fprintf(stderr, "connect failed: %s\n", r.error.c_str());
      status = 1;
      return;
    }
    for (; sent < n && client.pending() < 1000; ++sent) client.publish("examples/counter", std::to_string(sent), 1);
  };
  client.on_publish = [&](std::uint16_t, std::uint8_t reason) {
    if (reason >= 0x80) status = 1;
    if (sent < n) client.publish("examples/counter", std::to_string(sent++), 1);
    if (++acked == n) client.disconnect();
  };
  client.on_disconnect = [&](const tern::DisconnectInfo& d) {
    if (!d.error.empty()) {
      std::fprintf(stderr, "disconnected: %s\n", d.error.c_str());
      status = 1;
    }
  };
  client.connect();
  io.run();
  std::printf("%d messages acknowledged\n", acked);
  return status;
}
