// The production clock: wall-clock UTC time from the operating system. It lives with the
// adapters a runtime wires (Envoy's RealTimeSystem); the fake one tests move by hand stays in
// adapters/memory (clocks.h).
#pragma once

#include "ports/clock.h"

namespace pwrcell::adapters {

// Wall-clock UTC time, millisecond precision. Thread-safe.
class SystemClock final : public ports::Clock {
 public:
  Timestamp Now() const override;
};

}  // namespace pwrcell::adapters
