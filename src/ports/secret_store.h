// SecretStore port: named secrets (ConcertoCredentials, CesCredentials), each a JSON string.
// Values are never logged, put in an error message or exported as a metric.
// Implementations are thread-safe.
// Errors: kNotFound for an unknown secret id; kUnavailable when the backend cannot be reached;
// kPermissionDenied when the backend refuses (e.g. a secrets file readable by others).
#pragma once

#include <string>

#include "common/status.h"

namespace pwrcell::ports {

class SecretStore {
 public:
  virtual ~SecretStore() = default;
  virtual Result<std::string> Get(const std::string& secret_id) = 0;
  // Replaces the secret's value (used to share a fresh Concerto token between workers).
  virtual Status Put(const std::string& secret_id, const std::string& value) = 0;
};

}  // namespace pwrcell::ports
