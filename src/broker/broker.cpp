#include "broker/broker.hpp"

#include "broker/auth.hpp"
#include "broker/shard.hpp"

namespace tern::broker {

Broker::Broker(const config::Config& cfg, unsigned workers) : cfg_(cfg) {
  limits_.max_packet_size = cfg.max_packet_size;
  limits_.message_size_limit = cfg.message_size_limit;
  limits_.max_keepalive = cfg.max_keepalive;
  limits_.connect_timeout = std::chrono::seconds(cfg.connect_timeout);
  limits_.allow_zero_length_clientid = cfg.allow_zero_length_clientid;
  limits_.auto_id_prefix = cfg.auto_id_prefix;
  limits_.v31_client_id_max = cfg.v31_client_id_max;
  limits_.max_inflight = cfg.max_inflight_messages;
  limits_.max_queued_messages = cfg.max_queued_messages;
  limits_.max_queued_bytes = cfg.max_queued_bytes;
  limits_.queue_qos0 = cfg.queue_qos0_messages;
  limits_.upgrade_outgoing_qos = cfg.upgrade_outgoing_qos;
  limits_.max_topic_alias = cfg.max_topic_alias;
  limits_.receive_maximum = cfg.receive_maximum;
  limits_.max_outbound_bytes = cfg.max_outbound_bytes;
  limits_.slow_subscriber_timeout = std::chrono::seconds(cfg.slow_subscriber_timeout);
  limits_.max_qos = cfg.max_qos;
  limits_.retain_available = cfg.retain_available;
  limits_.wildcard_subscription_available = cfg.wildcard_subscription_available;
  limits_.subscription_identifier_available = cfg.subscription_identifier_available;
  limits_.shared_subscription_available = cfg.shared_subscription_available;
  limits_.response_topic_prefix = cfg.response_topic_prefix;
  limits_.validate_utf8_payload = cfg.validate_utf8_payload;
  limits_.verbose = (cfg.log_types & config::kLogDebug) != 0;
  // Limits and defences: the configuration's 0 ("no limit") becomes the largest value.
  limits_.max_connect_size = cfg.max_connect_size;
  limits_.max_client_id_length = cfg.max_clientid_len == 0 ? 65535 : cfg.max_clientid_len;
  limits_.max_topic_levels = cfg.max_topic_levels == 0 ? UINT32_MAX : cfg.max_topic_levels;
  limits_.max_topic_length = cfg.max_topic_length == 0 ? 65535 : cfg.max_topic_length;
  limits_.max_packet_properties = cfg.max_packet_properties;
  limits_.messages_rate = cfg.messages_rate;
  limits_.bytes_rate = cfg.bytes_rate;
  if (workers == 0) workers = 1;
  for (unsigned i = 0; i < workers; ++i) {
    stats_.push_back(std::make_unique<Stats>());
    shards_.push_back(std::make_unique<Shard>(*this, i));
  }
}

Broker::~Broker() = default;

std::shared_ptr<const Auth> Broker::auth() const {
  std::lock_guard lock(auth_mu_);
  if (!auth_) auth_ = Auth::load(cfg_);  // no files named: nothing to read, cannot fail
  return auth_;
}

void Broker::set_auth(std::shared_ptr<const Auth> a) {
  std::lock_guard lock(auth_mu_);
  auth_ = std::move(a);
}

void Broker::set_store(store::Store* s) {
  store_ = s;
  for (auto& sh : shards_) sh->set_store(s);
}

unsigned Broker::owner_of(std::string_view client_id) const {
  // FNV-1a: stable, cheap, and spreads similar ids ("sensor-1", "sensor-2") across workers.
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : client_id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<unsigned>(h % shards_.size());
}

}  // namespace tern::broker
