// CesClient: ports::CesApi over HTTP (libcurl), per contracts/ces-api.md. Every CES call the
// adapter makes lives in this module (ces_client.cc): URLs, headers and the JSON shapes.
//
// - Auth: `x-api-key` from the SecretStore secret (default id "CesCredentials"), JSON
//   {"api_key": "..."}, read on first use and cached. On HTTP 401 the secret is read again once
//   (the key may have been rotated) and the call retried when the key changed; otherwise the call
//   fails with kUnauthenticated, logged as an error.
// - Transport, rate limiting, retries and secret redaction: the shared RetryingCaller
//   (adapters/http/retrying_caller.h), with the key reload above as its renewal hook. Transport
//   errors, timeouts, HTTP 5xx and HTTP 429 (waiting at least Retry-After) are retried with
//   exponential backoff and jitter, at most `max_retries` times; then the transient Status is
//   returned (kUnavailable, kDeadlineExceeded or kResourceExhausted).
// - Errors (adapters/http/status_table.h): GetMetadata kNotFound for an unknown systemId (HTTP
//   404); GetStatus kInvalidArgument without a request for more than ports::kMaxStatusBatch ids (an
//   empty list answers an empty batch without a request) and kFailedPrecondition for a 404 (the
//   URL is wrong); kInvalidArgument for other 4xx; kInternal for an answer that does not parse;
//   kFailedPrecondition for a missing or malformed secret.
//
// The API key never appears in logs, Status messages or metrics.
//
// Metrics (CesClientMetrics, when a registry is given): pwrcell_ces_requests_total
// {operation=metadata|status, outcome=ok|http_4xx|http_5xx|rate_limited|unauthorized|timeout|
// transport_error} per HTTP attempt, and pwrcell_ces_retries_total{operation}.
//
// Thread-safe. `secrets`, `clock` and `metrics` must outlive the client.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "adapters/http/backoff.h"
#include "adapters/http/http_client.h"
#include "adapters/http/retrying_caller.h"
#include "common/metrics.h"
#include "config/config.h"
#include "ports/ces_api.h"
#include "ports/clock.h"
#include "ports/secret_store.h"

namespace pwrcell::adapters {

// The client's metrics, declared once (common/metrics.h). Unbound (nullptr): counts nothing.
struct CesClientMetrics {
  explicit CesClientMetrics(Metrics* registry);
  CallCounters calls;  // pwrcell_ces_requests_total, pwrcell_ces_retries_total
};

struct CesClientOptions {
  std::string root_url = "http://127.0.0.1:8081";
  std::string credentials_secret = "CesCredentials";
  std::string ca_file;                          // HTTPS: the CAs CES is verified with; "" = the system's
  Duration timeout = std::chrono::seconds(30);  // per HTTP attempt
  int max_retries = 3;                          // retries after the first attempt
  double max_requests_per_second = 10;          // <= 0: unlimited
  double burst = 1;                             // token-bucket capacity
  BackoffPolicy backoff;
  // Injectable for tests; empty = a thread-local PRNG and std::this_thread::sleep_for.
  Backoff::Random backoff_random;
  Backoff::Sleep backoff_sleep;
  static CesClientOptions FromConfig(const config::CesConfig& config);
};

// The answers as the client reads them, apart from HTTP so that tests and fuzz/ces_answer_fuzzer.cc
// reach them. Pure; never throw.
// The 2xx body of GET .../metadata: kInternal "CES metadata: the answer is not JSON" or
// "unexpected CES metadata answer: <what is wrong>".
Result<domain::SystemMetadata> ParseCesMetadataAnswer(const std::string& body);
// The 2xx body of GET .../status: kInternal as above ("status").
Result<domain::CesStatusBatch> ParseCesStatusAnswer(const std::string& body);
// "CODE: message" of an error body {"error": {"code", "message"}}, cut to 300 bytes (+ "...");
// "" when the body has none.
std::string CesErrorText(const std::string& body);

class CesClient final : public ports::CesApi {
 public:
  CesClient(CesClientOptions options, ports::SecretStore& secrets, const ports::Clock& clock,
            Metrics* metrics = nullptr);

  // Reads the credentials secret and checks its shape (a JSON object with a non-empty string
  // "api_key"), without calling CES: what `serve` checks at start. Errors: kFailedPrecondition
  // naming the secret and the field (never the key); the secret store's retryable errors.
  Status CheckCredentials() { return ApiKey(/*reload=*/true).status(); }

  // GET /systems/v1/{systemId}/metadata?inverterSetting=true
  Result<domain::SystemMetadata> GetMetadata(const std::string& system_id) override;
  // GET /systems/v1/status?systemIds=a,b (each id URL-encoded)
  Result<domain::CesStatusBatch> GetStatus(const std::vector<std::string>& system_ids) override;

 private:
  // GET `path_and_query` with retries; returns the 2xx body's JSON text.
  Result<std::string> Get(const char* operation, const std::string& path_and_query);
  Result<std::string> ApiKey(bool reload);

  const CesClientOptions options_;
  const std::string root_;
  ports::SecretStore& secrets_;
  const CesClientMetrics metrics_;
  RetryingCaller caller_;  // also scrubs the API key from messages

  std::mutex key_mutex_;
  std::optional<std::string> api_key_;
};

}  // namespace pwrcell::adapters
