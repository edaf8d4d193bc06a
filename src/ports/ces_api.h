// CesApi port: the CES calls the adapter makes (contracts/ces-api.md). Authentication
// (x-api-key), rate limiting and retries live inside the implementation.
// Errors: kNotFound for an unknown systemId (metadata); kInvalidArgument for more than
// kMaxStatusBatch ids; kUnauthenticated for a rejected key; kResourceExhausted for 429;
// kUnavailable for 5xx or transport trouble; kDeadlineExceeded for a timeout.
// Implementations are thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/ces_types.h"

namespace pwrcell::ports {

inline constexpr std::size_t kMaxStatusBatch = 100;

class CesApi {
 public:
  virtual ~CesApi() = default;
  virtual Result<domain::SystemMetadata> GetMetadata(const std::string& system_id) = 0;
  virtual Result<domain::CesStatusBatch> GetStatus(const std::vector<std::string>& system_ids) = 0;
};

}  // namespace pwrcell::ports
