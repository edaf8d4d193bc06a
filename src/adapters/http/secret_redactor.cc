#include "adapters/http/secret_redactor.h"

#include <algorithm>

namespace pwrcell::adapters {

void SecretRedactor::Remember(std::string_view secret) {
  if (secret.size() < kMinLength) return;
  std::lock_guard lock(mutex_);
  auto known = std::find(secrets_.begin(), secrets_.end(), secret);
  if (known != secrets_.end()) secrets_.erase(known);
  if (secrets_.size() >= capacity_) secrets_.erase(secrets_.begin());
  secrets_.emplace_back(secret);
}

std::string SecretRedactor::Redact(std::string text) const {
  std::lock_guard lock(mutex_);
  // Longest first: a secret that contains another is masked whole.
  std::vector<const std::string*> ordered;
  ordered.reserve(secrets_.size());
  for (const std::string& secret : secrets_) ordered.push_back(&secret);
  std::sort(ordered.begin(), ordered.end(),
            [](const std::string* a, const std::string* b) { return a->size() > b->size(); });
  for (const std::string* secret : ordered) {
    for (auto pos = text.find(*secret); pos != std::string::npos; pos = text.find(*secret, pos + kMask.size())) {
      text.replace(pos, secret->size(), kMask);
    }
  }
  return text;
}

}  // namespace pwrcell::adapters
