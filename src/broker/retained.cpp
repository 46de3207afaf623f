#include "broker/retained.hpp"

#include "core/topic.hpp"

namespace tern::broker {

void RetainedStore::set(const protocol::MessagePtr& msg) {
  std::lock_guard lock(mu_);
  if (msg->payload.empty()) {
    by_topic_.erase(std::string(msg->topic));
  } else {
    by_topic_[std::string(msg->topic)] = msg;
  }
}

void RetainedStore::match(std::string_view filter, std::vector<protocol::MessagePtr>& out) const {
  std::lock_guard lock(mu_);
  bool wild = filter.find_first_of("+#") != std::string_view::npos;
  if (!wild) {
    auto it = by_topic_.find(std::string(filter));
    if (it != by_topic_.end()) out.push_back(it->second);
    return;
  }
  for (const auto& [topic, msg] : by_topic_) {
    if (topic_matches(filter, topic)) out.push_back(msg);
  }
}

std::vector<protocol::MessagePtr> RetainedStore::all() const {
  std::lock_guard lock(mu_);
  std::vector<protocol::MessagePtr> out;
  out.reserve(by_topic_.size());
  for (const auto& [topic, msg] : by_topic_) out.push_back(msg);
  return out;
}

std::size_t RetainedStore::size() const {
  std::lock_guard lock(mu_);
  return by_topic_.size();
}

}  // namespace tern::broker
