#pragma once
// Rate limits (messages_rate, bytes_rate, max_conn_rate) as token buckets, kept in the form of the
// generic cell rate algorithm: one time point per bucket instead of a token count and a refill time,
// so taking tokens is an addition and a comparison, with no division by elapsed time. No I/O and no
// clock of its own: time comes in as an argument (the protocol core is tested with a fake clock).
// A bucket belongs to one thread.
#include <algorithm>
#include <chrono>
#include <cstdint>

namespace tern {

// `amount` units per `period`. The bucket holds one period's worth, so a client that was idle for a
// period may send `amount` at once (EMQX's burst is a separate setting; Tern's is the rate itself).
struct Rate {
  std::uint64_t amount = 0;  // 0 = no limit
  std::chrono::nanoseconds period{std::chrono::seconds(1)};
  bool on() const { return amount != 0; }
  bool operator==(const Rate&) const = default;
};

// What a limited sender owes. Rate limiting here never refuses what already arrived (it was read, so
// refusing it would only lose it): the cost is taken whole, and the caller waits before reading more.
template <typename TimePoint>
class TokenBucket {
 public:
  // Takes `cost` units at `now`. Returns the time from which the bucket holds tokens again: at or
  // before `now` when it still had enough, later when this cost emptied it (the caller then stops
  // reading until that time, plus whatever slack it wants to batch wake-ups).
  TimePoint take(const Rate& r, std::uint64_t cost, TimePoint now) {
    // `full_at_` is when the bucket would be full again had nothing more been taken; each unit
    // pushes it one emission interval (period / amount) later. The bucket is empty once it is a
    // whole period ahead of now. 128-bit: cost * period overflows 64 bits for large byte counts.
    const unsigned __int128 wide =
        static_cast<unsigned __int128>(cost) * static_cast<unsigned __int128>(r.period.count()) / r.amount;
    const auto step = static_cast<std::int64_t>(std::min<unsigned __int128>(wide, kMaxStep));
    full_at_ = std::max(full_at_, now) + std::chrono::duration_cast<typename TimePoint::duration>(
                                             std::chrono::nanoseconds(step));
    return full_at_ - std::chrono::duration_cast<typename TimePoint::duration>(r.period);
  }

 private:
  static constexpr std::int64_t kMaxStep = std::int64_t{1} << 60;  // about 36 years: "never" for any caller
  TimePoint full_at_{};
};

}  // namespace tern
