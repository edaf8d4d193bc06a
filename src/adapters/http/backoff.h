// Exponential backoff with jitter for retrying transient failures (5xx, 429, timeouts).
//
// The delay before retry n (n = 1 for the first retry) is
//   base(n)  = min(max_delay, initial * multiplier^(n-1))
//   delay(n) = base(n) * (1 - jitter * r),  r uniform in [0, 1)
// so with jitter 0.5 it lies in [base/2, base] ("equal jitter": spreads retrying workers apart
// while keeping a floor). A server's Retry-After is a floor: the delay is never shorter.
//
// Thread-safe when the injected random source and sleep are (the defaults are: a thread-local
// generator and std::this_thread::sleep_for).
#pragma once

#include <chrono>
#include <functional>
#include <optional>

#include "common/time.h"

namespace pwrcell::adapters {

struct BackoffPolicy {
  Duration initial = std::chrono::milliseconds(200);
  Duration max_delay = std::chrono::seconds(10);
  double multiplier = 2.0;
  double jitter = 0.5;  // 0: no jitter; 1: full jitter (delay in (0, base])
  // A Retry-After longer than this is not waited for: the client gives up and returns the
  // transient error at once, so the caller (a queue) redelivers later instead of a worker sleeping.
  Duration max_retry_after = std::chrono::seconds(60);
};

class Backoff {
 public:
  using Random = std::function<double()>;  // uniform in [0, 1)
  using Sleep = std::function<void(Duration)>;

  explicit Backoff(BackoffPolicy policy = {}, Random random = {}, Sleep sleep = {});

  // The delay before retry `retry` (>= 1), never shorter than `retry_after` when given.
  Duration Delay(int retry, std::optional<Duration> retry_after = std::nullopt) const;
  // True when a server asked to wait longer than policy().max_retry_after.
  bool TooLong(std::optional<Duration> retry_after) const {
    return retry_after.has_value() && *retry_after > policy_.max_retry_after;
  }
  // Sleeps `delay` with the injected sleep (for a delay already computed and logged).
  void SleepFor(Duration delay) const {
    if (delay > Duration(0)) sleep_(delay);
  }
  // Sleeps Delay(retry, retry_after) and returns it.
  Duration Wait(int retry, std::optional<Duration> retry_after = std::nullopt) const;

  const BackoffPolicy& policy() const { return policy_; }

 private:
  BackoffPolicy policy_;
  Random random_;
  Sleep sleep_;
};

}  // namespace pwrcell::adapters
