#include "adapters/system/system_clock.h"

#include <chrono>

namespace pwrcell::adapters {

Timestamp SystemClock::Now() const {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

}  // namespace pwrcell::adapters
