#include "protocol/message.hpp"

#include <cstring>
#include <new>

namespace tern::protocol {

const codec::Properties Message::kNoProperties{};

MessagePtr Message::make(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                         std::string_view origin, TimePoint created, codec::Properties* props) {
  const std::size_t extra = topic.size() + payload.size() + origin.size();
  void* block = ::operator new(sizeof(Message) + extra);
  auto* m = new (block) Message();
  char* p = reinterpret_cast<char*>(m + 1);
  auto put = [&p](std::string_view s) {
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    std::string_view v(p, s.size());
    p += s.size();
    return v;
  };
  m->topic = put(topic);
  m->payload = put(payload);
  m->origin = put(origin);
  m->qos = qos;
  m->retain = retain;
  m->created = created;
  if (props != nullptr && !props->empty()) m->props_ = std::make_unique<codec::Properties>(std::move(*props));
  return MessagePtr(m);
}

void Message::release(const Message* m, std::uint32_t n) {
  if (m->refs_.fetch_sub(n, std::memory_order_acq_rel) != n) return;
  auto* mm = const_cast<Message*>(m);
  mm->~Message();
  ::operator delete(static_cast<void*>(mm));
}

}  // namespace tern::protocol
