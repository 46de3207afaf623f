#include "broker/retained.hpp"

#include "core/topic.hpp"
#include "store/store.hpp"

namespace tern::broker {

namespace {
bool has_expiry(const protocol::Message& m) { return m.has_props() && m.props().message_expiry.has_value(); }
// A retained message expires like any other [MQTT-3.3.2-5].
bool expired(const protocol::Message& m, protocol::TimePoint now) {
  return has_expiry(m) && now - m.created >= std::chrono::seconds(*m.props().message_expiry);
}
}  // namespace

void RetainedStore::set(const protocol::MessagePtr& msg, store::Store* store) {
  std::lock_guard lock(mu_);
  if (store) {
    store::Batch b;
    if (msg->payload.empty()) {
      b.erase_retained(msg->topic);
    } else {
      b.put(store::RetainedRecord{to_record(*msg, 0)});
    }
    store->submit(std::move(b), [](store::Status) {});
  }
  auto it = by_topic_.find(std::string(msg->topic));
  if (it != by_topic_.end()) {
    if (has_expiry(*it->second)) --with_expiry_;
    bytes_ -= it->second->payload.size();
    if (msg->payload.empty()) {
      by_topic_.erase(it);
      return;
    }
    it->second = msg;
    bytes_ += msg->payload.size();
  } else {
    if (msg->payload.empty()) return;
    by_topic_.emplace(std::string(msg->topic), msg);
    bytes_ += msg->payload.size();
  }
  if (has_expiry(*msg)) ++with_expiry_;
}

void RetainedStore::match(std::string_view filter, std::vector<protocol::MessagePtr>& out,
                          protocol::TimePoint now) const {
  std::lock_guard lock(mu_);
  bool wild = filter.find_first_of("+#") != std::string_view::npos;
  if (!wild) {
    auto it = by_topic_.find(std::string(filter));
    if (it != by_topic_.end() && !expired(*it->second, now)) out.push_back(it->second);
    return;
  }
  for (const auto& [topic, msg] : by_topic_) {
    if (topic_matches(filter, topic) && !expired(*msg, now)) out.push_back(msg);
  }
}

std::size_t RetainedStore::purge_expired(protocol::TimePoint now, store::Store* store) {
  std::lock_guard lock(mu_);
  if (with_expiry_ == 0) return 0;  // the common case: nothing to scan
  store::Batch b;
  std::size_t n = std::erase_if(by_topic_, [&](const auto& kv) {
    if (!expired(*kv.second, now)) return false;
    bytes_ -= kv.second->payload.size();
    if (store) b.erase_retained(kv.first);
    return true;
  });
  with_expiry_ -= n;
  if (store && !b.empty()) {
    b.allow_at_bound();
    store->submit(std::move(b), [](store::Status) {});
  }
  return n;
}

std::vector<protocol::MessagePtr> RetainedStore::all() const {
  std::lock_guard lock(mu_);
  std::vector<protocol::MessagePtr> out;
  out.reserve(by_topic_.size());
  for (const auto& [topic, msg] : by_topic_) out.push_back(msg);
  return out;
}

std::size_t RetainedStore::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

std::size_t RetainedStore::size() const {
  std::lock_guard lock(mu_);
  return by_topic_.size();
}

}  // namespace tern::broker
