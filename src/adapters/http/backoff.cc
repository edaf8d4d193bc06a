#include "adapters/http/backoff.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <utility>

namespace pwrcell::adapters {

Backoff::Backoff(BackoffPolicy policy, Random random, Sleep sleep)
    : policy_(policy), random_(std::move(random)), sleep_(std::move(sleep)) {
  if (!random_) {
    random_ = [] {
      thread_local std::mt19937_64 generator{std::random_device{}()};
      return std::uniform_real_distribution<double>(0.0, 1.0)(generator);
    };
  }
  if (!sleep_) sleep_ = [](Duration d) { std::this_thread::sleep_for(d); };
}

Duration Backoff::Delay(int retry, std::optional<Duration> retry_after) const {
  const double initial_ms = static_cast<double>(std::max<std::int64_t>(policy_.initial.count(), 0));
  const double max_ms = static_cast<double>(std::max<std::int64_t>(policy_.max_delay.count(), 0));
  const double exponent = static_cast<double>(std::max(retry, 1) - 1);
  const double base_ms = std::min(max_ms, initial_ms * std::pow(std::max(policy_.multiplier, 1.0), exponent));
  const double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  const double r = std::clamp(random_(), 0.0, 1.0);
  Duration delay(static_cast<std::int64_t>(std::llround(base_ms * (1.0 - jitter * r))));
  if (retry_after.has_value()) delay = std::max(delay, *retry_after);
  return delay;
}

Duration Backoff::Wait(int retry, std::optional<Duration> retry_after) const {
  const Duration delay = Delay(retry, retry_after);
  if (delay > Duration(0)) sleep_(delay);
  return delay;
}

}  // namespace pwrcell::adapters
