// An in-memory SecretStore: for tests and for runs that inject secrets directly.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "ports/secret_store.h"

namespace pwrcell::adapters {

// A map of secret id -> value. Thread-safe. Values are stored as given (no JSON check).
class MemorySecretStore final : public ports::SecretStore {
 public:
  MemorySecretStore() = default;
  explicit MemorySecretStore(std::map<std::string, std::string> secrets) : secrets_(std::move(secrets)) {}

  // Errors: kNotFound when no secret has this id (the message names the id, never a value).
  Result<std::string> Get(const std::string& secret_id) override;
  // Creates or replaces the secret. Always OK.
  Status Put(const std::string& secret_id, const std::string& value) override;

 private:
  std::mutex mutex_;
  std::map<std::string, std::string> secrets_;
};

}  // namespace pwrcell::adapters
