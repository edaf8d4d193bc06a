#include "adapters/memory/memory_secret_store.h"

namespace pwrcell::adapters {

Result<std::string> MemorySecretStore::Get(const std::string& secret_id) {
  std::lock_guard lock(mutex_);
  auto it = secrets_.find(secret_id);
  if (it == secrets_.end()) return NotFoundError("no secret '" + secret_id + "'");
  return it->second;
}

Status MemorySecretStore::Put(const std::string& secret_id, const std::string& value) {
  std::lock_guard lock(mutex_);
  secrets_[secret_id] = value;
  return Status::Ok();
}

}  // namespace pwrcell::adapters
