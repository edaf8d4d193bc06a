// ConcertoClient: ports::ConcertoApi over HTTP + GraphQL (libcurl), per contracts/concerto-api.md.
//
// What it owns, so that callers never see it:
// - Authentication. Credentials and the current token live in one SecretStore secret
//   (default id "ConcertoCredentials"), JSON {"email", "password", "token", "token_expires_at"}.
//   The first call reads the secret and reuses its token when it is still fresh; otherwise it
//   calls `authenticate` and writes the new token, its expiry and "token_issued_at" back into the
//   secret (keeping every other key), so every worker and process shares one token. A token is
//   renewed before each call once it is older than `token_renewal` or expires within
//   `token_expiry_margin` (a quarter of the token's lifetime when that is shorter). One
//   authentication runs at a time; other threads wait and reuse it.
// - HTTP 401: one re-authentication and one retry; a second 401 is kUnauthenticated, logged as an
//   error, never retried in a loop. Wrong credentials (authenticate answering UNAUTHENTICATED)
//   are kUnauthenticated.
// - Transport, rate limiting, retries and secret redaction: the shared RetryingCaller
//   (adapters/http/retrying_caller.h), with this client's re-authentication as its renewal hook.
//   Transport errors, timeouts, HTTP 5xx, HTTP 429 / RATE_LIMITED (waiting at least Retry-After)
//   and INTERNAL_SERVER_ERROR are retried with exponential backoff and jitter, at most
//   `max_retries` times; then the transient Status is returned for the caller to redeliver.
// - Error mapping: adapters/http/status_table.h, refined by the answer's GraphQL error code as
//   ports/concerto_api.h documents (a 4xx with GraphQL errors takes their code; a 404 without is
//   kFailedPrecondition: no GraphQL endpoint at the root URL). An answer it cannot parse is
//   kInternal; a missing or malformed credentials secret is kFailedPrecondition (kUnavailable when
//   the secret store cannot be reached).
//
// Secrets (password, token) never appear in logs, Status messages or metrics.
//
// Metrics (ConcertoClientMetrics, when a registry is given): pwrcell_concerto_requests_total
// {operation, outcome} per HTTP attempt, outcome one of ok, graphql_error, http_4xx, http_5xx,
// rate_limited, unauthorized, timeout, transport_error, invalid_response (a 2xx body that is not a
// GraphQL answer); pwrcell_concerto_retries_total{operation};
// pwrcell_concerto_authentications_total{outcome=ok|rejected|failed}.
//
// Thread-safe. `secrets`, `clock` and `metrics` must outlive the client.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/concerto/concerto_documents.h"
#include "adapters/http/backoff.h"
#include "adapters/http/http_client.h"
#include "adapters/http/retrying_caller.h"
#include "common/metrics.h"
#include "config/config.h"
#include "ports/clock.h"
#include "ports/concerto_api.h"
#include "ports/secret_store.h"

namespace pwrcell::adapters {

// The client's metrics, declared once (common/metrics.h). Unbound (nullptr): counts nothing.
struct ConcertoClientMetrics {
  explicit ConcertoClientMetrics(Metrics* registry);
  CallCounters calls;          // pwrcell_concerto_requests_total, pwrcell_concerto_retries_total
  Counter<1> authentications;  // {outcome}
};

struct ConcertoClientOptions {
  std::string root_url = "http://127.0.0.1:8080";  // requests go to <root_url>/graphql
  std::string credentials_secret = "ConcertoCredentials";
  std::string ca_file;                          // HTTPS: the CAs Concerto is verified with; "" = the system's
  Duration timeout = std::chrono::seconds(30);  // per HTTP attempt
  int max_retries = 3;                          // retries after the first attempt
  double max_requests_per_second = 25;          // <= 0: unlimited
  double burst = 1;                             // token-bucket capacity
  Duration token_renewal = std::chrono::seconds(1800);
  Duration token_expiry_margin = std::chrono::seconds(60);
  BackoffPolicy backoff;
  // Injectable for tests; empty = a thread-local PRNG and std::this_thread::sleep_for.
  Backoff::Random backoff_random;
  Backoff::Sleep backoff_sleep;
  // The adapter's own settings; backoff and margins keep their defaults.
  static ConcertoClientOptions FromConfig(const config::ConcertoConfig& config);
};

class ConcertoClient final : public ports::ConcertoApi {
 public:
  ConcertoClient(ConcertoClientOptions options, ports::SecretStore& secrets, const ports::Clock& clock,
                 Metrics* metrics = nullptr);

  // Reads the credentials secret and checks its shape (a JSON object with string "email" and
  // "password", or a token that is still fresh), without calling Concerto: what `serve` checks at
  // start, so that a malformed secret stops it instead of dead-lettering the first request.
  // Errors: kFailedPrecondition naming the secret and the field (never a value); the secret
  // store's retryable errors as they come.
  Status CheckCredentials();

  // ports::ConcertoApi (errors as documented there and above).
  // ListAssets: kInvalidArgument without a request for page < 1 or per_page outside 1..kMaxAssetsPerPage.
  Result<ports::AssetPage> ListAssets(int page, int per_page) override;
  Result<std::optional<domain::ConcertoAsset>> AssetByRemoteId(domain::AssetType type,
                                                               const std::string& remote_id) override;
  Result<std::optional<domain::ConcertoSite>> SiteByRemoteId(const std::string& remote_id) override;
  Result<domain::ConcertoSite> CreateSite(const domain::CreateSiteRequest& request) override;
  Result<domain::ConcertoAsset> CreateAsset(const domain::CreateAssetRequest& request) override;
  Result<domain::ConcertoAsset> UpdateAsset(const domain::UpdateAssetRequest& request) override;
  Status UpdateAssetRemoteState(const domain::RemoteStateUpdate& update) override;
  Status UpdateSiteRemoteState(const domain::RemoteStateUpdate& update) override;
  // kInvalidArgument without a request for more than kMaxPointsPerIngest points or a value that
  // is not finite; an empty batch returns an empty result without a request.
  Result<domain::IngestResult> IngestTelemetry(const std::vector<domain::TelemetryPoint>& points) override;

 private:
  struct Token {
    std::string value;
    Timestamp expires_at;
    Timestamp issued_at;
  };
  struct Credentials {
    std::string email;
    std::string password;
    std::optional<Token> token;
  };
  // Sends `op` through the caller (retries, re-authentication, judging); returns the answer's `data`.
  Result<nlohmann::json> Execute(const concerto_documents::Operation& op);
  // A usable token: the cached one, the secret's, or a fresh one.
  Result<std::string> EnsureToken();
  // After a 401 with `rejected`: a fresh token, unless another thread already replaced it.
  Result<std::string> Reauthenticate(const std::string& rejected);
  // With auth_mutex_ held.
  Result<Credentials> ReadCredentials();
  Result<std::string> AuthenticateLocked(const Credentials& credentials);
  void WriteBackLocked(const Token& token);
  bool Fresh(const Token& token) const;

  const ConcertoClientOptions options_;
  const std::string endpoint_;
  ports::SecretStore& secrets_;
  const ports::Clock& clock_;
  const ConcertoClientMetrics metrics_;
  RetryingCaller caller_;  // also scrubs the password and every token seen from messages

  std::mutex auth_mutex_;  // one authentication at a time; guards token_
  std::optional<Token> token_;
};

}  // namespace pwrcell::adapters
