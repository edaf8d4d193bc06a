// RetryingCaller: the one retry state machine of the HTTP service clients (Concerto, CES), in the
// spirit of Envoy's RetryState: every call goes
//
//   build the request -> rate limiter -> send -> judge the answer -> count
//     OK                                  -> the answer
//     credentials rejected (401)          -> renew them once through the client's hook and send
//                                            again (not a retry: no backoff, not counted as one);
//                                            rejected again, or nothing new to try -> kUnauthenticated
//     IsRetryable(code) (common/status.h) -> wait Backoff::Delay (exponential, jittered, never
//                                            shorter than the answer's Retry-After) and send again,
//                                            at most max_retries times; a Retry-After longer than
//                                            BackoffPolicy::max_retry_after is not waited for
//     anything else                       -> that Status, at once
//
// What each part owns:
// - adapters/http/status_table.h classifies every exchange (curl result, HTTP status) into a
//   StatusCode and a metric outcome. A client's `judge` may refine that from the body (Concerto's
//   GraphQL errors) but starts from it.
// - The retry predicate is IsRetryable (common/status.h), the same one the queue workers use.
// - Retry-After is read here from every retryable answer; a judge never deals with it.
// - Secrets: every message this class returns or logs goes through its SecretRedactor; clients
//   Remember() each secret as soon as they read or receive it.
// - Metrics: `requests{operation, outcome}` once per attempt and `retries{operation}` once per
//   retry, on the counters the client declared (its names).
//
// Messages start with "<service> <operation>: ". Thread-safe: Call may run on many threads at
// once; the rate limiter is shared by all of them. `clock` and `counters` must outlive the caller.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "adapters/http/backoff.h"
#include "adapters/http/http_client.h"
#include "adapters/http/rate_limiter.h"
#include "adapters/http/secret_redactor.h"
#include "adapters/http/status_table.h"
#include "common/metrics.h"
#include "common/status.h"
#include "ports/clock.h"

namespace pwrcell::adapters {

// The counters of one service's calls. Each client declares them in its metrics struct, with its
// own names; the caller counts on them.
struct CallCounters {
  Counter<2> requests;  // {operation, outcome}: one per HTTP attempt
  Counter<1> retries;   // {operation}: attempts sent again after a transient failure
};

struct RetryingCallerOptions {
  std::string service;                 // "Concerto", "CES": starts every message and log line
  int max_retries = 3;                 // retries after the first attempt
  double max_requests_per_second = 0;  // <= 0: unlimited
  double burst = 1;                    // token-bucket capacity
  BackoffPolicy backoff;
  // Injectable for tests; empty = a thread-local PRNG and std::this_thread::sleep_for.
  Backoff::Random backoff_random;
  Backoff::Sleep backoff_sleep;
  HttpClientOptions http;
  // Injectable for tests; empty = HttpClient(http).Exchange.
  std::function<HttpExchange(const HttpRequest&)> transport;
};

// The caller options of a client whose own options carry the retry and rate-limit settings under
// the same names (ConcertoClientOptions, CesClientOptions).
template <class ClientOptions>
RetryingCallerOptions CallerOptionsFrom(std::string service, const ClientOptions& options) {
  RetryingCallerOptions caller;
  caller.service = std::move(service);
  caller.max_retries = options.max_retries;
  caller.max_requests_per_second = options.max_requests_per_second;
  caller.burst = options.burst;
  caller.backoff = options.backoff;
  caller.backoff_random = options.backoff_random;
  caller.backoff_sleep = options.backoff_sleep;
  caller.http.ca_file = options.ca_file;
  return caller;
}

// One attempt's answer, judged.
struct Verdict {
  Status status;             // OK: the call succeeded. The message omits "<service> <operation>: ".
  std::string_view outcome;  // the `outcome` metric label (a string literal)
  // The answer said the credentials are not (or no longer) accepted: the caller may renew them.
  bool credentials_rejected = false;
};

// The verdict of status_table.h alone: `server_says` (already extracted from the body, may be
// empty) is appended to the message, "HTTP 503 (UNAVAILABLE: try later)"; a 401 is
// credentials_rejected.
Verdict VerdictFromTable(const HttpResponse& response, const ExchangeClass& table, const std::string& server_says);

struct CallSpec {
  std::string operation;  // the `operation` metric label; in every message
  // Builds the next attempt's request (called before every attempt, so that renewed credentials
  // are used). An error ends the call with it.
  std::function<Result<HttpRequest>()> build;
  // Judges an answer (not called for transport failures). Empty: VerdictFromTable(.., "").
  std::function<Verdict(const HttpResponse&, const ExchangeClass&)> judge;
  // After an attempt whose credentials were rejected: renews them and answers whether the next
  // attempt will carry different ones (then it is sent once more). An error ends the call with it.
  // Called at most once per call. Empty: a rejection is final.
  std::function<Result<bool>()> renew_credentials;
  // What to name in the final kUnauthenticated, e.g. "the API key of secret 'CesCredentials'".
  std::string credentials;
};

class RetryingCaller {
 public:
  RetryingCaller(RetryingCallerOptions options, const ports::Clock& clock, const CallCounters& counters);

  // Runs the call as described above and returns the successful answer.
  // Errors: the judged Status of the last attempt (the transient ones prefixed "after N retries"
  // once max_retries is spent); kUnauthenticated when credentials stay rejected; whatever `build`
  // or `renew_credentials` returned. Every message is redacted.
  Result<HttpResponse> Call(const CallSpec& spec);

  // Secrets to scrub from every message (see SecretRedactor).
  void Remember(std::string_view secret) { redactor_.Remember(secret); }
  std::string Redact(std::string text) const { return redactor_.Redact(std::move(text)); }

  const RetryingCallerOptions& options() const { return options_; }

 private:
  Status Redacted(const Status& status) const;

  const RetryingCallerOptions options_;
  const ports::Clock& clock_;
  const CallCounters& counters_;
  std::function<HttpExchange(const HttpRequest&)> transport_;
  RateLimiter limiter_;
  Backoff backoff_;
  SecretRedactor redactor_;
};

}  // namespace pwrcell::adapters
