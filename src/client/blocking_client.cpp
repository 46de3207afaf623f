// BlockingClient: an AsyncClient on its own thread and io_context; each call is posted to that
// thread and waits for its result.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "tern/client.hpp"

namespace tern {

namespace asio = boost::asio;

struct BlockingClient::Impl {
  Impl(ClientOptions o, std::size_t max_buffered)
      : work(asio::make_work_guard(io)), client(io, std::move(o)), max_buffered(max_buffered) {
    client.on_connect = [this](const ConnectResult& r) {
      if (connect_waiter) {
        connect_waiter->set_value(r);
        connect_waiter.reset();
      }
    };
    client.on_message = [this](const MessageView& m) {
      std::lock_guard<std::mutex> lock(mu);
      if (inbox.size() >= this->max_buffered) {
        inbox.pop_front();
        ++dropped;
      }
      inbox.push_back(Message::from(m));
      cv.notify_one();
    };
    client.on_publish = [this](std::uint16_t mid, std::uint8_t reason) {
      auto it = publish_waiters.find(mid);
      if (it == publish_waiters.end()) return;
      it->second.set_value(reason);
      publish_waiters.erase(it);
    };
    client.on_subscribe = [this](std::uint16_t mid, const std::vector<std::uint8_t>& codes) {
      auto it = subscribe_waiters.find(mid);
      if (it == subscribe_waiters.end()) return;
      it->second.set_value(codes);
      subscribe_waiters.erase(it);
    };
    client.on_unsubscribe = [this](std::uint16_t mid) {
      auto it = subscribe_waiters.find(mid);
      if (it == subscribe_waiters.end()) return;
      it->second.set_value({});
      subscribe_waiters.erase(it);
    };
    thread = std::thread([this] {
      io.run();
      finished.set_value();
    });
  }

  ~Impl() {
    run([this] { client.disconnect(); });
    work.reset();
    // The thread ends once the DISCONNECT is written and the socket closed (nothing else keeps the
    // io_context busy); a peer that does not read gets 2 s.
    if (finished.get_future().wait_for(std::chrono::seconds(2)) != std::future_status::ready) io.stop();
    thread.join();
  }

  // Runs f on the client's thread and waits for it.
  template <class F>
  auto run(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto fut = task.get_future();
    asio::post(io, [&task] { task(); });
    return fut.get();
  }

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  AsyncClient client;
  std::size_t max_buffered;
  std::thread thread;
  std::promise<void> finished;
  // Waiters live on the client's thread.
  std::optional<std::promise<ConnectResult>> connect_waiter;
  std::map<std::uint16_t, std::promise<std::uint8_t>> publish_waiters;
  std::map<std::uint16_t, std::promise<std::vector<std::uint8_t>>> subscribe_waiters;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Message> inbox;
  std::size_t dropped = 0;
};

BlockingClient::BlockingClient(ClientOptions options, std::size_t max_buffered)
    : impl_(std::make_unique<Impl>(std::move(options), max_buffered)) {}

BlockingClient::~BlockingClient() = default;

ConnectResult BlockingClient::connect(std::chrono::milliseconds timeout) {
  auto fut = impl_->run([this] {
    impl_->connect_waiter.emplace();
    auto f = impl_->connect_waiter->get_future();
    impl_->client.connect();
    return f;
  });
  if (fut.wait_for(timeout) != std::future_status::ready) {
    ConnectResult r;
    r.error = "timed out";
    return r;
  }
  return fut.get();
}

std::uint8_t BlockingClient::publish(std::string topic, std::string payload, std::uint8_t qos, bool retain,
                                     Properties props, std::chrono::milliseconds timeout) {
  auto fut = impl_->run([&]() -> std::future<std::uint8_t> {
    PublishError e = PublishError::kNone;
    std::promise<std::uint8_t> p;
    auto f = p.get_future();
    auto mid = impl_->client.publish(std::move(topic), std::move(payload), qos, retain, std::move(props), &e);
    if (mid == 0) {
      p.set_value(static_cast<std::uint8_t>(e));
    } else {
      impl_->publish_waiters[mid] = std::move(p);
    }
    return f;
  });
  if (fut.wait_for(timeout) != std::future_status::ready) return 0xFF;
  return fut.get();
}

std::vector<std::uint8_t> BlockingClient::subscribe(std::vector<Subscription> subs, std::chrono::milliseconds timeout) {
  auto fut = impl_->run([&]() -> std::future<std::vector<std::uint8_t>> {
    std::promise<std::vector<std::uint8_t>> p;
    auto f = p.get_future();
    auto mid = impl_->client.subscribe(std::move(subs));
    if (mid == 0) {
      p.set_value({});
    } else {
      impl_->subscribe_waiters[mid] = std::move(p);
    }
    return f;
  });
  if (fut.wait_for(timeout) != std::future_status::ready) return {};
  return fut.get();
}

bool BlockingClient::unsubscribe(std::vector<std::string> filters, std::chrono::milliseconds timeout) {
  auto fut = impl_->run([&]() -> std::future<std::vector<std::uint8_t>> {
    std::promise<std::vector<std::uint8_t>> p;
    auto f = p.get_future();
    auto mid = impl_->client.unsubscribe(std::move(filters));
    if (mid == 0) {
      p.set_exception(std::make_exception_ptr(std::runtime_error("not connected")));
    } else {
      impl_->subscribe_waiters[mid] = std::move(p);
    }
    return f;
  });
  if (fut.wait_for(timeout) != std::future_status::ready) return false;
  try {
    fut.get();
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::optional<Message> BlockingClient::receive(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  if (!impl_->cv.wait_for(lock, timeout, [this] { return !impl_->inbox.empty(); })) return std::nullopt;
  Message m = std::move(impl_->inbox.front());
  impl_->inbox.pop_front();
  return m;
}

std::size_t BlockingClient::dropped() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->dropped;
}

void BlockingClient::disconnect() {
  impl_->run([this] { impl_->client.disconnect(); });
}

bool BlockingClient::connected() const {
  return impl_->run([this] { return impl_->client.connected(); });
}

}  // namespace tern
