// A token-bucket rate limiter shared by every thread that calls one service through one client.
//
// Implemented as GCRA (the "virtual scheduling" form of a token bucket): each Acquire reserves the
// next free slot under a mutex and then sleeps outside it until that slot, so waiting callers are
// served in arrival order and never wake up together to fight over one token. `burst` is the
// bucket's capacity: 1 spaces requests evenly (1/rate apart), which also keeps a server's sliding
// one-second window from ever seeing more than `rate` requests.
//
// Thread-safe. The clock and the sleep are injectable so that tests need no real time.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>

namespace pwrcell::adapters {

class RateLimiter {
 public:
  using SteadyClock = std::chrono::steady_clock;
  using Now = std::function<SteadyClock::time_point()>;
  using Sleep = std::function<void(SteadyClock::duration)>;

  // requests_per_second <= 0 (or not finite): unlimited, Acquire never waits. burst < 1 counts as 1.
  // Empty `now` / `sleep` use the steady clock and std::this_thread::sleep_for; injected ones must
  // be thread-safe when the limiter is shared.
  explicit RateLimiter(double requests_per_second, double burst = 1, Now now = {}, Sleep sleep = {});

  // Blocks until the caller may send one request.
  void Acquire();
  // Takes the next slot and returns how long the caller must wait for it (0: go now) without
  // sleeping. Acquire is Reserve followed by the sleep.
  SteadyClock::duration Reserve();

  bool unlimited() const { return interval_ == SteadyClock::duration::zero(); }

 private:
  SteadyClock::duration interval_{};   // 1 / rate
  SteadyClock::duration tolerance_{};  // (burst - 1) * interval
  Now now_;
  Sleep sleep_;
  std::mutex mutex_;
  SteadyClock::time_point theoretical_arrival_{};  // when the bucket is next full-minus-one
};

}  // namespace pwrcell::adapters
