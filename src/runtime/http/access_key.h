// An access key that requests to the ingest endpoint must present, read from the SecretStore.
//
// The secret's value is a JSON object {"api_key": "<key>"}: the shape Amazon Data Firehose reads
// its own access key from when the stream's key is kept in Secrets Manager, so one secret can
// serve both the stream and the adapter. The key is never logged, put in an error message or
// exported as a metric.
//
// The key is read once by Load() (a missing or malformed secret stops the server at start) and
// kept in memory, then read again when it is older than `refresh_after`, and also when a request
// presents a different key and the last read is older than `recheck_after`: a rotated key takes
// effect within seconds, while a stream of wrong keys costs at most one secret read per
// `recheck_after`. When a later read fails the key in memory stays in use (logged as a warning):
// a secrets backend that is briefly unreachable does not lock the senders out.
//
// Thread-safety: Check() may be called from many threads at once; a mutex guards the key.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "common/status.h"
#include "ports/secret_store.h"

namespace pwrcell::runtime::http {

// True when `a` and `b` are equal, in a time that depends on their lengths only, never on where
// they first differ (a key cannot be guessed byte by byte from response times).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// The key of a secret value {"api_key": "<non-empty string>"}. Errors: kInvalidArgument naming
// what is wrong with the shape (never the value).
Result<std::string> ParseAccessKeySecret(const std::string& value);

class AccessKey {
 public:
  using SteadyNow = std::function<std::chrono::steady_clock::time_point()>;
  struct Options {
    std::chrono::milliseconds refresh_after{std::chrono::seconds(60)};
    std::chrono::milliseconds recheck_after{std::chrono::seconds(5)};
  };

  // `secrets` must outlive this object. `now` is the clock of the refresh intervals (tests).
  AccessKey(ports::SecretStore& secrets, std::string secret_id, Options options, SteadyNow now);
  AccessKey(ports::SecretStore& secrets, std::string secret_id);

  // Reads the secret. Errors: those of SecretStore::Get, or kInvalidArgument for a value of the
  // wrong shape, with the secret id as context.
  Status Load();

  enum class Verdict { kAccepted, kMissing, kWrong };
  // Whether `presented` (empty: the request carried no key) is the key. Load() must have
  // succeeded first.
  Verdict Check(std::string_view presented);

  const std::string& secret_id() const { return secret_id_; }

 private:
  // Reads the secret again; on failure keeps the key in memory. Called with mutex_ held.
  void Refresh(std::chrono::steady_clock::time_point now);

  ports::SecretStore& secrets_;
  const std::string secret_id_;
  const Options options_;
  const SteadyNow now_;
  std::mutex mutex_;
  std::string key_;                                // guarded by mutex_
  std::chrono::steady_clock::time_point read_at_;  // guarded by mutex_
};

}  // namespace pwrcell::runtime::http
