// Coordination port: the small state the processes share between invocations, kept in the store
// so that several `serve` instances (or the Lambda functions of SPEC section 8) behave as one
// adapter. Nothing another process would need is held in process memory.
//
// Three kinds of state, each under its own key space:
// - leases: a named lock with an owner and an expiry (one registrar listing at a time; one
//   commissioning of a system at a time). An expired lease may be taken over by anyone.
// - throttles: "at most once per interval" per key (metadata requested at, commission requested
//   at, remote_state request queued at).
// - values: small versioned strings written by compare-and-set (the remote_state Concerto last
//   accepted per asset and per site, the startup-grace watermark, commissioning-write notes).
//
// Times are passed in (the caller's clock), so the backends hold no clock and tests use a fake.
// Keys (lease names, throttle keys, value keys) and lease owners are 1..512 bytes of printable
// ASCII (kInvalidArgument otherwise; CheckCoordinationKey below). Values are arbitrary bytes.
//
// Implementations: adapters/memory (fake), adapters/sqlite; all must pass
// tests/conformance/coordination_conformance. All methods are thread-safe and atomic with
// respect to other connections to the same store (other processes included).
// Errors: kUnavailable when the backing store cannot be reached (retry); kAborted on a version
// mismatch of Put/Remove; kInvalidArgument for a bad key, owner or prefix, a negative version, or a
// negative ttl / interval (or one that puts the time outside the range of Timestamp).
// The argument checks are the inline functions below, so that every backend answers alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace pwrcell::ports {

struct CoordinationValue {
  std::string value;
  std::int64_t version = 0;  // 1 when created, +1 on every write
  bool operator==(const CoordinationValue&) const = default;
};

struct LeaseInfo {
  std::string owner;
  Timestamp expires_at;
  bool operator==(const LeaseInfo&) const = default;
};

// Longest key, owner or prefix.
inline constexpr std::size_t kMaxCoordinationKeyBytes = 512;

// kInvalidArgument unless `text` is at most kMaxCoordinationKeyBytes bytes of printable ASCII
// (0x20..0x7e) and, unless `may_be_empty`, not empty. `what` names the argument in the message.
inline Status CheckCoordinationKey(std::string_view text, std::string_view what, bool may_be_empty = false) {
  if (text.empty() && !may_be_empty) return InvalidArgumentError(std::string(what) + " must not be empty");
  if (text.size() > kMaxCoordinationKeyBytes) {
    return InvalidArgumentError(std::string(what) + " of " + std::to_string(text.size()) + " bytes is longer than " +
                                std::to_string(kMaxCoordinationKeyBytes));
  }
  for (const char c : text) {
    if (c < 0x20 || c > 0x7e) {
      return InvalidArgumentError(std::string(what) + " '" + std::string(text.substr(0, 80)) +
                                  "' holds a byte that is not printable ASCII");
    }
  }
  return Status::Ok();
}

// kInvalidArgument when `span` (a lease ttl, a throttle interval) is negative, or when `now`
// moved by it (forward when `forward`, else back) leaves the range of Timestamp, so that the
// backends' arithmetic on Unix milliseconds cannot overflow.
inline Status CheckCoordinationSpan(Timestamp now, Duration span, bool forward, std::string_view what) {
  if (span < Duration::zero()) {
    return InvalidArgumentError(std::string(what) + " of " + std::to_string(span.count()) + " ms is negative");
  }
  const std::int64_t now_ms = ToUnixMillis(now);
  const bool fits = forward ? now_ms <= std::numeric_limits<std::int64_t>::max() - span.count()
                            : now_ms >= std::numeric_limits<std::int64_t>::min() + span.count();
  if (!fits) {
    return InvalidArgumentError(std::string(what) + " of " + std::to_string(span.count()) +
                                " ms puts the time out of range");
  }
  return Status::Ok();
}

// kInvalidArgument for a negative expected version.
inline Status CheckCoordinationVersion(std::int64_t expected_version) {
  if (expected_version < 0) {
    return InvalidArgumentError("negative expected version " + std::to_string(expected_version));
  }
  return Status::Ok();
}

class Coordination {
 public:
  virtual ~Coordination() = default;

  // --- Leases ------------------------------------------------------------------------------
  // Takes the lease `name` for `owner` until now + ttl and returns true when it is free, expired
  // (expires_at <= now) or already held by `owner` (then it is renewed). Returns false, and
  // changes nothing, while another owner holds it unexpired. Of several callers racing for a
  // free lease exactly one gets true.
  virtual Result<bool> TryAcquireLease(const std::string& name, const std::string& owner, Timestamp now,
                                       Duration ttl) = 0;
  // Gives the lease back if `owner` holds it (expired or not); returns whether it did. Releasing
  // a lease held by another owner (it expired and was taken over) or no lease changes nothing.
  virtual Result<bool> ReleaseLease(const std::string& name, const std::string& owner) = 0;
  // The lease as stored (expired or not), for operators and tests; nullopt when there is none.
  virtual Result<std::optional<LeaseInfo>> GetLease(const std::string& name) = 0;

  // --- Throttles ---------------------------------------------------------------------------
  // True, and records `now` for `key`, when nothing is recorded for it or the recorded time is at
  // least `interval` before `now`; false (nothing changes) otherwise. Of several callers racing
  // on one key within an interval exactly one gets true.
  virtual Result<bool> TryThrottle(const std::string& key, Timestamp now, Duration interval) = 0;
  // Forgets `key`, so that the next TryThrottle is true. No error when nothing is recorded.
  virtual Status ClearThrottle(const std::string& key) = 0;

  // --- Versioned values ----------------------------------------------------------------------
  // The value, or nullopt when there is none.
  virtual Result<std::optional<CoordinationValue>> GetValue(const std::string& key) = 0;
  // Conditional write. expected_version 0 means "create; kAborted if the key exists"; n > 0 means
  // "replace only if the stored version is still n; kAborted otherwise (also when it is gone)".
  // Returns the new version.
  virtual Result<std::int64_t> PutValue(const std::string& key, const std::string& value,
                                        std::int64_t expected_version) = 0;
  // Conditional delete at expected_version (kAborted on mismatch); no value is kNotFound.
  virtual Status RemoveValue(const std::string& key, std::int64_t expected_version) = 0;
  // Every value whose key starts with `prefix`, ordered by key (operators, tests, cleanup). An
  // empty prefix lists every value.
  virtual Result<std::vector<std::pair<std::string, CoordinationValue>>> ListValues(const std::string& prefix) = 0;

  // Removes every lease, throttle and value whose key starts with `prefix` (a deregistered
  // system's state). No error when there is none. An empty prefix is kInvalidArgument: wiping
  // every system's state is never what a caller means.
  virtual Status RemovePrefix(const std::string& prefix) = 0;
};

}  // namespace pwrcell::ports
