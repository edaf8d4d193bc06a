// The fake clock of the tests. The production clock is adapters/system/system_clock.h.
#pragma once

#include <atomic>

#include "ports/clock.h"

namespace pwrcell::adapters {

// A clock that only moves when told to. Thread-safe.
class FakeClock final : public ports::Clock {
 public:
  explicit FakeClock(Timestamp start = FromUnixMillis(1'763'800'000'000)) : now_ms_(ToUnixMillis(start)) {}
  Timestamp Now() const override { return FromUnixMillis(now_ms_.load()); }
  void Advance(Duration by) { now_ms_ += by.count(); }
  void Set(Timestamp t) { now_ms_ = ToUnixMillis(t); }

 private:
  std::atomic<std::int64_t> now_ms_;
};

}  // namespace pwrcell::adapters
