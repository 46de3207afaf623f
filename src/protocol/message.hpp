#pragma once
// An application message, decoded once and shared read-only by every delivery (any thread may hold a
// reference; nothing mutates it after creation).
//
// One heap block holds the reference count, the fixed fields, and the topic, payload and origin bytes,
// so a PUBLISH costs one allocation however many subscribers it reaches. MQTT 5 properties, which
// most messages do not have, live in a second block only when present.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

#include "codec/packet.hpp"

namespace tern::protocol {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

class MessagePtr;
class RefBatch;
class ReleaseBatch;

class Message {
 public:
  // Copies topic, payload and origin into the message; takes the properties when given (topic alias
  // and subscription identifiers must already be removed).
  static MessagePtr make(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                         std::string_view origin, TimePoint created, codec::Properties* props = nullptr);

  std::string_view topic;
  std::string_view payload;
  std::string_view origin;  // publishing client id, for No Local
  std::uint8_t qos = 0;
  bool retain = false;
  TimePoint created{};
  // Properties forwarded to subscribers (an empty set when the message has none).
  const codec::Properties& props() const { return props_ ? *props_ : kNoProperties; }
  bool has_props() const { return props_ != nullptr; }

  // Store bookkeeping (docs/durability.md), the one mutable part. store_id is the message's record
  // id once the worker that routes it has put the record in the store (0 = not stored); it is set
  // before the message is handed to any other worker. store_refs counts the store records that refer
  // to the message (queue entries, an inbound QoS 2 id, plus one while it is being routed); whoever
  // takes it to zero erases the message record.
  mutable std::uint64_t store_id = 0;
  mutable std::atomic<std::uint32_t> store_refs{0};

 private:
  friend class MessagePtr;
  friend class RefBatch;
  friend class ReleaseBatch;
  Message() = default;
  ~Message() = default;
  // Drops n references; the one that takes the count to zero frees the message.
  static void release(const Message* m, std::uint32_t n = 1);
  static const codec::Properties kNoProperties;
  mutable std::atomic<std::uint32_t> refs_{1};
  std::unique_ptr<codec::Properties> props_;
};

// Shared ownership of an immutable Message (an intrusive count: one allocation per message).
class MessagePtr {
 public:
  MessagePtr() = default;
  MessagePtr(std::nullptr_t) {}
  MessagePtr(const MessagePtr& o) : m_(o.m_) {
    if (m_) m_->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  MessagePtr(MessagePtr&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  MessagePtr& operator=(const MessagePtr& o) {
    MessagePtr tmp(o);
    std::swap(m_, tmp.m_);
    return *this;
  }
  MessagePtr& operator=(MessagePtr&& o) noexcept {
    MessagePtr tmp(std::move(o));
    std::swap(m_, tmp.m_);
    return *this;
  }
  ~MessagePtr() { reset(); }
  void reset() {
    if (m_) Message::release(std::exchange(m_, nullptr));
  }
  const Message* get() const { return m_; }
  const Message* operator->() const { return m_; }
  const Message& operator*() const { return *m_; }
  explicit operator bool() const { return m_ != nullptr; }
  std::uint32_t use_count() const { return m_ ? m_->refs_.load(std::memory_order_relaxed) : 0; }
  bool operator==(const MessagePtr& o) const { return m_ == o.m_; }
  bool operator==(std::nullptr_t) const { return m_ == nullptr; }

 private:
  friend class Message;
  friend class RefBatch;
  friend class ReleaseBatch;
  explicit MessagePtr(const Message* m) : m_(m) {}  // adopts a reference already counted
  const Message* m_ = nullptr;
};

// References to one message taken from its count in one atomic step, and the unused ones returned in
// one: routing a message to N sessions costs two atomic operations on the count instead of up to 2N
// (the count shares its cache line with the topic and payload that every worker reads). The caller
// keeps its own reference to the message for the batch's lifetime, so returning never frees it.
class RefBatch {
 public:
  RefBatch(const MessagePtr& m, std::uint32_t n) : m_(m.get()), left_(n) {
    if (left_) m_->refs_.fetch_add(left_, std::memory_order_relaxed);
  }
  RefBatch(const RefBatch&) = delete;
  RefBatch& operator=(const RefBatch&) = delete;
  ~RefBatch() {
    if (left_) m_->refs_.fetch_sub(left_, std::memory_order_release);
  }
  // One of the references (a counted one if the batch ran out).
  MessagePtr take() {
    if (left_ == 0) {
      m_->refs_.fetch_add(1, std::memory_order_relaxed);
    } else {
      --left_;
    }
    return MessagePtr(m_);
  }
  // Takes back p's reference (p points to the batch's message) and empties p.
  void give_back(MessagePtr& p) {
    p.m_ = nullptr;
    ++left_;
  }

 private:
  const Message* m_;
  std::uint32_t left_;
};

// Releases references in one atomic step per run of consecutive references to the same message
// (a worker draining a batch of deliveries of one fan-out).
class ReleaseBatch {
 public:
  ReleaseBatch() = default;
  ReleaseBatch(const ReleaseBatch&) = delete;
  ReleaseBatch& operator=(const ReleaseBatch&) = delete;
  ~ReleaseBatch() { flush(); }
  void add(MessagePtr& p) {
    if (!p) return;
    if (p.m_ != m_) flush();
    m_ = std::exchange(p.m_, nullptr);
    ++n_;
  }
  void flush() {
    if (n_) Message::release(m_, n_);
    m_ = nullptr;
    n_ = 0;
  }

 private:
  const Message* m_ = nullptr;
  std::uint32_t n_ = 0;
};

}  // namespace tern::protocol
