// Publishes a message and reads it back with Tern's blocking client.
// Usage: blocking_pubsub [HOST [PORT]]
#include <tern/client.hpp>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  tern::ClientOptions opts;
  opts.host = argc > 1 ? argv[1] : "localhost";
  opts.port = static_cast<std::uint16_t>(argc > 2 ? std::atoi(argv[2]) : 1883);
  opts.version = tern::Version::kV5;
  opts.client_id = "blocking-example";

  tern::BlockingClient client(opts);
  tern::ConnectResult r = client.connect();
  if (!r.success) {
    std::fprintf(stderr, "connect failed: %s\n", r.error.c_str());
    return 1;
  }
  auto granted = client.subscribe({{"examples/greeting", 1}});
  if (granted.empty() || granted[0] > 2) {
    std::fprintf(stderr, "subscribe failed\n");
    return 1;
  }
  tern::Properties props;
  props.user_properties.push_back({"lang", "en"});
  if (std::uint8_t rc = client.publish("examples/greeting", "hello", 1, false, props); rc >= 0x80) {
    std::fprintf(stderr, "publish failed: 0x%02x\n", rc);
    return 1;
  }
  auto m = client.receive(std::chrono::seconds(5));
  if (!m) {
    std::fprintf(stderr, "no message\n");
    return 1;
  }
  std::printf("%s %s (QoS %d, %zu user properties)\n", m->topic.c_str(), m->payload.c_str(), m->qos,
              m->props.user_properties.size());
  client.disconnect();
  return 0;
}
