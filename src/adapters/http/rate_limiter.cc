#include "adapters/http/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <thread>
#include <utility>

namespace pwrcell::adapters {

RateLimiter::RateLimiter(double requests_per_second, double burst, Now now, Sleep sleep)
    : now_(std::move(now)), sleep_(std::move(sleep)) {
  if (!now_) now_ = [] { return SteadyClock::now(); };
  if (!sleep_) sleep_ = [](SteadyClock::duration d) { std::this_thread::sleep_for(d); };
  if (requests_per_second > 0 && std::isfinite(requests_per_second)) {
    interval_ =
        std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(1.0 / requests_per_second));
    if (interval_ <= SteadyClock::duration::zero()) interval_ = SteadyClock::duration(1);
    const double capacity = std::isfinite(burst) ? std::max(burst, 1.0) : 1.0;
    tolerance_ = std::chrono::duration_cast<SteadyClock::duration>(interval_ * (capacity - 1.0));
  }
}

RateLimiter::SteadyClock::duration RateLimiter::Reserve() {
  if (unlimited()) return SteadyClock::duration::zero();
  const SteadyClock::time_point now = now_();
  std::lock_guard lock(mutex_);
  const SteadyClock::time_point arrival = std::max(theoretical_arrival_, now);
  const SteadyClock::time_point allowed_at = arrival - tolerance_;
  theoretical_arrival_ = arrival + interval_;
  return allowed_at > now ? allowed_at - now : SteadyClock::duration::zero();
}

void RateLimiter::Acquire() {
  const SteadyClock::duration wait = Reserve();
  if (wait > SteadyClock::duration::zero()) sleep_(wait);
}

}  // namespace pwrcell::adapters
