// Error handling for the whole code base: a Status (code + message) and Result<T>.
//
// One style, chosen once (CONVENTIONS.md "Errors"): no exceptions cross a port; every
// fallible call returns Status or Result<T>. The code alone says whether the caller may
// retry (abseil's guidance), so queue workers decide from IsRetryable() and nothing else.
// Vendor errors (SQLite, curl, AWS, protobuf) are translated to a Status at the adapter edge.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace pwrcell {

enum class StatusCode {
  kOk = 0,
  // Transient: the same request may succeed later. Retry with backoff.
  kUnavailable,        // a store, queue or service could not be reached or answered 5xx/429
  kDeadlineExceeded,   // a call timed out
  kAborted,            // optimistic-concurrency conflict: re-read and try again
  kResourceExhausted,  // rate limited
  // Permanent: retrying the same request cannot help. Dead-letter it.
  kInvalidArgument,     // malformed input (a poison record, a bad request)
  kFailedPrecondition,  // the system is not in a state where this can run
  kNotFound,
  kAlreadyExists,
  kUnauthenticated,  // credentials rejected (after the one re-authentication)
  kPermissionDenied,
  kInternal,  // a bug or an answer we do not understand
};

std::string_view StatusCodeName(StatusCode code);

// THE retry predicate of the code base: true for kUnavailable, kDeadlineExceeded, kAborted and
// kResourceExhausted. Queue workers, the ingest endpoint and the HTTP clients' retry loop
// (adapters/http/retrying_caller.h) all decide from it; there is no other list.
//
// kAborted is retryable. It means "the state you read changed under you: re-read and try again"
// (a store's optimistic-concurrency conflict), and re-running the operation from the start, which
// is what every retry here does (a redelivered queue message re-reads the device; the HTTP retry
// loop rebuilds its request), is exactly that. No HTTP answer or transport failure is ever mapped
// to kAborted (adapters/http/status_table.h: a 409 / CONFLICT means the thing exists and is
// kAlreadyExists, permanent), so inside the HTTP loop the predicate only ever meets the other three.
bool IsRetryable(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // True when the same operation may succeed if tried again later: IsRetryable(code()).
  bool IsRetryable() const { return pwrcell::IsRetryable(code_); }

  // "UNAVAILABLE: message" (or "OK").
  std::string ToString() const;

  // Prefix the message with context, keeping the code: "reading device x: <message>".
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status UnavailableError(std::string m) {
  return {StatusCode::kUnavailable, std::move(m)};
}
inline Status DeadlineExceededError(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status AbortedError(std::string m) {
  return {StatusCode::kAborted, std::move(m)};
}
inline Status ResourceExhaustedError(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status InvalidArgumentError(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status FailedPreconditionError(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status NotFoundError(std::string m) {
  return {StatusCode::kNotFound, std::move(m)};
}
inline Status AlreadyExistsError(std::string m) {
  return {StatusCode::kAlreadyExists, std::move(m)};
}
inline Status UnauthenticatedError(std::string m) {
  return {StatusCode::kUnauthenticated, std::move(m)};
}
inline Status PermissionDeniedError(std::string m) {
  return {StatusCode::kPermissionDenied, std::move(m)};
}
inline Status InternalError(std::string m) {
  return {StatusCode::kInternal, std::move(m)};
}

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : state_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(state_).ok() && "a Result built from a Status must carry an error");
  }

  bool ok() const { return std::holds_alternative<T>(state_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(state_); }

  const T& value() const& {
    assert(ok());
    return std::get<T>(state_);
  }
  T& value() & {
    assert(ok());
    return std::get<T>(state_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(state_));
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace pwrcell

// Propagate an error Status from an expression returning Status.
#define PWRCELL_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::pwrcell::Status pwrcell_status_ = (expr);        \
    if (!pwrcell_status_.ok()) return pwrcell_status_; \
  } while (false)
