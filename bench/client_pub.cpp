// The client library's asynchronous API as a publisher, for bench/tools.py: publishes every line
// of a file (like `mosquitto_pub -l`), keeping at most `max_queued_messages` messages pending, and
// exits once all are sent (QoS 0) or acknowledged (QoS 1/2). Prints the largest pending count and
// pending bytes seen, to check them against the configured bounds.
//   bench_client_pub HOST PORT TOPIC QOS MAX_INFLIGHT FILE [CAFILE]   (CAFILE: over TLS, for bench/security.py)
#include <tern/client.hpp>

#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 7 && argc != 8) {
    std::fprintf(stderr, "usage: %s HOST PORT TOPIC QOS MAX_INFLIGHT FILE [CAFILE]\n", argv[0]);
    return 2;
  }
  tern::ClientOptions opts;
  opts.host = argv[1];
  opts.port = static_cast<std::uint16_t>(std::atoi(argv[2]));
  const std::string topic = argv[3];
  const auto qos = static_cast<std::uint8_t>(std::atoi(argv[4]));
  opts.max_inflight = static_cast<std::uint16_t>(std::atoi(argv[5]));
  opts.auto_reconnect = false;
  opts.nodelay = true;
  if (argc == 8) {
    opts.tls.enabled = true;
    opts.tls.cafile = argv[7];
  }
  std::ifstream in(argv[6]);
  if (!in) {
    std::fprintf(stderr, "cannot open %s\n", argv[6]);
    return 2;
  }
  boost::asio::io_context io;
  tern::AsyncClient client(io, opts);
  std::size_t max_pending = 0, max_bytes = 0;
  long published = 0, done = 0;
  bool eof = false;
  int status = 0;
  std::string line;
  auto feed = [&] {
    while (!eof && client.pending() < opts.max_queued_messages) {
      if (!std::getline(in, line)) {
        eof = true;
        break;
      }
      if (client.publish(topic, line, qos) == 0) {
        std::fprintf(stderr, "publish refused\n");
        status = 1;
        eof = true;
        break;
      }
      ++published;
    }
    max_pending = std::max(max_pending, client.pending());
    max_bytes = std::max(max_bytes, client.pending_bytes());
    if (eof && done == published) client.disconnect();
  };
  client.on_connect = [&](const tern::ConnectResult& r) {
    if (!r.success) {
      std::fprintf(stderr, "connect failed: %s\n", r.error.c_str());
      status = 1;
      return;
    }
    feed();
  };
  client.on_publish = [&](std::uint16_t, std::uint8_t reason) {
    if (reason >= 0x80) status = 1;
    ++done;
    feed();
  };
  client.connect();
  io.run();
  std::printf("published %ld, max pending %zu (bound %zu), max pending bytes %zu (bound %zu)\n", published,
              max_pending, opts.max_queued_messages, max_bytes, opts.max_queued_bytes);
  return status;
}
