// Clock port: the only way any component reads the time (Envoy's TimeSource).
// Implementations are thread-safe.
#pragma once

#include "common/time.h"

namespace pwrcell::ports {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp Now() const = 0;
};

}  // namespace pwrcell::ports
