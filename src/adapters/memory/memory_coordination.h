// An in-memory Coordination: the reference backend of the conformance suite and the coordination
// state of unit tests. Not durable, and shared only by the users of one object (one process).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ports/coordination.h"

namespace pwrcell::adapters {

// Three ordered maps (leases, throttles, values) behind one mutex, so that every call is atomic.
// Thread-safe. Errors are those of ports::Coordination (kInvalidArgument, kAborted, kNotFound);
// it is never kUnavailable.
class MemoryCoordination final : public ports::Coordination {
 public:
  MemoryCoordination() = default;

  Result<bool> TryAcquireLease(const std::string& name, const std::string& owner, Timestamp now, Duration ttl) override;
  Result<bool> ReleaseLease(const std::string& name, const std::string& owner) override;
  Result<std::optional<ports::LeaseInfo>> GetLease(const std::string& name) override;

  Result<bool> TryThrottle(const std::string& key, Timestamp now, Duration interval) override;
  Status ClearThrottle(const std::string& key) override;

  Result<std::optional<ports::CoordinationValue>> GetValue(const std::string& key) override;
  Result<std::int64_t> PutValue(const std::string& key, const std::string& value,
                                std::int64_t expected_version) override;
  Status RemoveValue(const std::string& key, std::int64_t expected_version) override;
  Result<std::vector<std::pair<std::string, ports::CoordinationValue>>> ListValues(const std::string& prefix) override;

  Status RemovePrefix(const std::string& prefix) override;

 private:
  std::mutex mutex_;
  // Ordered, so that prefix scans are a lower_bound and ListValues needs no sort.
  std::map<std::string, ports::LeaseInfo> leases_;          // guarded by mutex_
  std::map<std::string, Timestamp> throttles_;              // guarded by mutex_: key -> last time let through
  std::map<std::string, ports::CoordinationValue> values_;  // guarded by mutex_
};

}  // namespace pwrcell::adapters
