// The one scrubber of secrets for the service clients: every secret a client handles (Concerto's
// password and access tokens, the CES API key) is remembered here, and every text that may reach a
// log line, a Status message or an error body shown to an operator goes through Redact() first.
// The retrying caller (retrying_caller.h) redacts every message it returns or logs, so a client
// only has to Remember() its secrets as soon as it reads or receives them.
//
// Values shorter than 4 characters are not remembered: scrubbing them would mangle ordinary text
// (and no real credential is that short). At most `capacity` values are kept; remembering one again
// makes it the newest, and the oldest is forgotten first (a client re-remembers its long-lived
// password each time it reads it, so only superseded tokens age out).
//
// Thread-safe.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace pwrcell::adapters {

class SecretRedactor {
 public:
  static constexpr std::string_view kMask = "***";
  static constexpr std::size_t kMinLength = 4;

  explicit SecretRedactor(std::size_t capacity = 16) : capacity_(capacity == 0 ? 1 : capacity) {}

  void Remember(std::string_view secret);
  // `text` with every remembered secret replaced by kMask.
  std::string Redact(std::string text) const;

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::vector<std::string> secrets_;  // oldest first
};

}  // namespace pwrcell::adapters
