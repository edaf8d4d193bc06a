#include "adapters/concerto/concerto_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace pwrcell::adapters {
namespace {

namespace docs = concerto_documents;
using nlohmann::json;

constexpr const char* kRequestsMetric = "pwrcell_concerto_requests_total";
constexpr const char* kRetriesMetric = "pwrcell_concerto_retries_total";
constexpr const char* kAuthMetric = "pwrcell_concerto_authentications_total";
constexpr std::size_t kMaxMessageChars = 600;
constexpr std::size_t kMaxRemembered = 16;

std::string Truncate(std::string text) {
  if (text.size() > kMaxMessageChars) {
    text.resize(kMaxMessageChars);
    text += "...";
  }
  return text;
}

// The GraphQL errors of an answer: the first error's code and every message (truncated).
struct GraphqlErrors {
  std::string code;
  std::string message;
};

std::optional<GraphqlErrors> ReadErrors(const json& answer) {
  if (!answer.is_object()) return std::nullopt;
  auto it = answer.find("errors");
  if (it == answer.end() || !it->is_array() || it->empty()) return std::nullopt;
  GraphqlErrors errors;
  for (const json& error : *it) {
    if (!error.is_object()) continue;
    if (errors.code.empty()) {
      auto ext = error.find("extensions");
      if (ext != error.end() && ext->is_object()) {
        auto code = ext->find("code");
        if (code != ext->end() && code->is_string()) errors.code = code->get<std::string>();
      }
    }
    auto message = error.find("message");
    if (message != error.end() && message->is_string()) {
      if (!errors.message.empty()) errors.message += "; ";
      errors.message += message->get<std::string>();
    }
  }
  if (errors.code.empty()) errors.code = "UNKNOWN";
  errors.message = Truncate(std::move(errors.message));
  return errors;
}

std::optional<json> ParseJson(const std::string& body) {
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return std::nullopt;
  return parsed;
}

}  // namespace

ConcertoClientOptions ConcertoClientOptions::FromConfig(const config::ConcertoConfig& config) {
  ConcertoClientOptions options;
  options.root_url = config.root_url;
  options.credentials_secret = config.credentials_secret;
  options.timeout = std::chrono::duration_cast<Duration>(config.timeout_s);
  options.max_retries = config.max_retries;
  options.max_requests_per_second = config.max_requests_per_second;
  options.token_renewal = std::chrono::duration_cast<Duration>(config.token_renewal_s);
  return options;
}

ConcertoClient::ConcertoClient(ConcertoClientOptions options, ports::SecretStore& secrets, const ports::Clock& clock,
                               Metrics* metrics)
    : options_(std::move(options)),
      endpoint_(TrimTrailingSlashes(options_.root_url) + "/graphql"),
      secrets_(secrets),
      clock_(clock),
      metrics_(metrics),
      limiter_(options_.max_requests_per_second, options_.burst),
      backoff_(options_.backoff, options_.backoff_random, options_.backoff_sleep) {
  if (metrics_ != nullptr) {
    metrics_->Describe(kRequestsMetric, Metrics::Type::kCounter,
                       "HTTP attempts to Concerto's GraphQL API by operation and outcome.");
    metrics_->Describe(kRetriesMetric, Metrics::Type::kCounter,
                       "Concerto requests retried after a transient failure, by operation.");
    metrics_->Describe(kAuthMetric, Metrics::Type::kCounter,
                       "Concerto authentications by outcome (ok, rejected credentials, failed).");
  }
}

// ---- ports::ConcertoApi ----

Result<ports::AssetPage> ConcertoClient::ListAssets(int page, int per_page) {
  if (page < 1 || per_page < 1 || per_page > domain::kMaxAssetsPerPage) {
    return InvalidArgumentError("ListAssets: page must be >= 1 and per_page in 1.." +
                                std::to_string(domain::kMaxAssetsPerPage) + ", got page " + std::to_string(page) +
                                ", per_page " + std::to_string(per_page));
  }
  auto data = Execute(docs::ListAssets(page, per_page));
  if (!data.ok()) return data.status();
  return docs::ParseListAssets(*data);
}

Result<std::optional<domain::ConcertoAsset>> ConcertoClient::AssetByRemoteId(domain::AssetType type,
                                                                             const std::string& remote_id) {
  auto data = Execute(docs::AssetByRemoteId(type, remote_id));
  if (!data.ok()) return data.status();
  return docs::ParseAssetByRemoteId(*data);
}

Result<std::optional<domain::ConcertoSite>> ConcertoClient::SiteByRemoteId(const std::string& remote_id) {
  auto data = Execute(docs::SiteByRemoteId(remote_id));
  if (!data.ok()) return data.status();
  return docs::ParseSiteByRemoteId(*data);
}

Result<domain::ConcertoSite> ConcertoClient::CreateSite(const domain::CreateSiteRequest& request) {
  auto data = Execute(docs::CreateSite(request));
  if (!data.ok()) return data.status();
  return docs::ParseCreateSite(*data);
}

Result<domain::ConcertoAsset> ConcertoClient::CreateAsset(const domain::CreateAssetRequest& request) {
  auto data = Execute(docs::CreateAsset(request));
  if (!data.ok()) return data.status();
  return docs::ParseCreateAsset(*data);
}

Result<domain::ConcertoAsset> ConcertoClient::UpdateAsset(const domain::UpdateAssetRequest& request) {
  auto data = Execute(docs::UpdateAsset(request));
  if (!data.ok()) return data.status();
  return docs::ParseUpdateAsset(*data);
}

Status ConcertoClient::UpdateAssetRemoteState(const domain::RemoteStateUpdate& update) {
  auto data = Execute(docs::UpdateAssetRemoteState(update));
  if (!data.ok()) return data.status();
  return docs::ParseUpdateAssetRemoteState(*data);
}

Status ConcertoClient::UpdateSiteRemoteState(const domain::RemoteStateUpdate& update) {
  auto data = Execute(docs::UpdateSiteRemoteState(update));
  if (!data.ok()) return data.status();
  return docs::ParseUpdateSiteRemoteState(*data);
}

Result<domain::IngestResult> ConcertoClient::IngestTelemetry(const std::vector<domain::TelemetryPoint>& points) {
  if (points.size() > domain::kMaxPointsPerIngest) {
    return InvalidArgumentError("IngestTelemetry: " + std::to_string(points.size()) + " points, at most " +
                                std::to_string(domain::kMaxPointsPerIngest) + " per call");
  }
  if (points.empty()) return domain::IngestResult{};
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (!std::isfinite(points[i].value)) {
      return InvalidArgumentError("IngestTelemetry: point " + std::to_string(i) + " (asset " + points[i].asset_id +
                                  ", " + std::string(domain::MetricName(points[i].metric)) +
                                  ") has a value that is not a finite number");
    }
  }
  auto data = Execute(docs::IngestTelemetry(points));
  if (!data.ok()) return data.status();
  return docs::ParseIngestTelemetry(*data);
}

// ---- Transport ----

Result<json> ConcertoClient::Execute(const docs::Operation& op) {
  const bool authenticating = op.name == docs::kAuthenticate;
  const std::string body = op.Body();
  int retries = 0;
  bool reauthenticated = false;
  for (;;) {
    std::string token;
    if (!authenticating) {
      auto ensured = EnsureToken();
      if (!ensured.ok()) return ensured.status();
      token = std::move(ensured).value();
    }
    Attempt attempt = AttemptOnce(op, body, token);
    if (attempt.data.has_value()) return std::move(*attempt.data);

    if (attempt.unauthorized) {
      if (!reauthenticated) {
        reauthenticated = true;
        spdlog::info("Concerto {}: access token rejected (HTTP 401); authenticating again", op.name);
        auto renewed = Reauthenticate(token);
        if (!renewed.ok()) return renewed.status();
        continue;
      }
      spdlog::error(
          "Concerto {}: HTTP 401 again right after re-authenticating with the credentials of secret '{}'; "
          "not retrying. Check the Concerto account and the secret.",
          op.name, options_.credentials_secret);
      return UnauthenticatedError("Concerto " + op.name + ": rejected a freshly issued access token (HTTP 401 twice)");
    }

    if (!IsTransientFailure(attempt.status.code())) return attempt.status;
    if (backoff_.TooLong(attempt.retry_after)) {
      spdlog::warn("Concerto {}: server asks to wait {} ms, more than {} ms; giving up for now", op.name,
                   attempt.retry_after->count(), backoff_.policy().max_retry_after.count());
      return attempt.status;
    }
    if (retries >= options_.max_retries) {
      spdlog::warn("Concerto {}: {} (gave up after {} retries)", op.name, attempt.status.ToString(), retries);
      return attempt.status.WithContext("after " + std::to_string(retries) + " retries");
    }
    ++retries;
    if (metrics_ != nullptr) metrics_->Increment(kRetriesMetric, {{"operation", op.name}});
    const Duration delay = backoff_.Delay(retries, attempt.retry_after);
    spdlog::warn("Concerto {}: {}; retry {}/{} in {} ms", op.name, attempt.status.ToString(), retries,
                 options_.max_retries, delay.count());
    backoff_.SleepFor(delay);
  }
}

ConcertoClient::Attempt ConcertoClient::AttemptOnce(const docs::Operation& op, const std::string& body,
                                                    const std::string& token) {
  const bool authenticating = op.name == docs::kAuthenticate;
  std::vector<std::pair<std::string, std::string>> headers = {{"Content-Type", "application/json"},
                                                              {"Accept", "application/json"}};
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);

  limiter_.Acquire();
  auto sent = http_.Post(endpoint_, std::move(headers), body, options_.timeout);
  Attempt attempt;
  const std::string where = "Concerto " + op.name;
  if (!sent.ok()) {
    Count(op.name, sent.status().code() == StatusCode::kDeadlineExceeded ? "timeout" : "transport_error");
    attempt.status = sent.status().WithContext(where);
    return attempt;
  }
  const HttpResponse& response = *sent;
  const std::optional<json> answer = ParseJson(response.body);
  const std::optional<GraphqlErrors> errors = answer ? ReadErrors(*answer) : std::nullopt;
  const std::string server_says = errors ? ": " + Redact(errors->code + ": " + errors->message) : std::string();

  if (response.status == 401) {
    Count(op.name, "unauthorized");
    if (authenticating) {
      attempt.status = UnauthenticatedError(where + ": credentials rejected (HTTP 401)");
    } else {
      attempt.unauthorized = true;
      attempt.status = UnauthenticatedError(where + ": HTTP 401");
    }
    return attempt;
  }
  if (response.status == 429) {
    Count(op.name, "rate_limited");
    attempt.retry_after = response.RetryAfter(clock_.Now());
    attempt.status = ResourceExhaustedError(where + ": rate limited (HTTP 429)");
    return attempt;
  }
  if (response.status >= 500) {
    Count(op.name, "http_5xx");
    attempt.status = UnavailableError(where + ": HTTP " + std::to_string(response.status) + server_says);
    return attempt;
  }
  if (response.status < 200 || response.status >= 300) {
    Count(op.name, "http_4xx");
    StatusCode code = StatusCode::kInvalidArgument;
    if (errors) {
      code = docs::StatusCodeForGraphqlError(errors->code);
    } else if (response.status == 408) {
      code = StatusCode::kDeadlineExceeded;
    } else if (response.status == 403) {
      code = StatusCode::kPermissionDenied;
    } else if (response.status == 404 || response.status == 405 || response.status < 400) {
      code = StatusCode::kFailedPrecondition;  // not a GraphQL endpoint: a configuration problem
    }
    attempt.status = Status(code, where + ": HTTP " + std::to_string(response.status) + server_says);
    return attempt;
  }

  if (!answer || !answer->is_object()) {
    Count(op.name, "invalid_response");
    attempt.status = InternalError(where + ": HTTP " + std::to_string(response.status) + " with a body that is not JSON");
    return attempt;
  }
  if (errors) {
    const StatusCode code = docs::StatusCodeForGraphqlError(errors->code);
    if (code == StatusCode::kUnauthenticated) {
      Count(op.name, "unauthorized");
      if (authenticating) {
        // Never echo the server's text here: it is about the credentials we sent.
        attempt.status = UnauthenticatedError(where + ": Concerto rejected the email or password of secret '" +
                                              options_.credentials_secret + "' (UNAUTHENTICATED)");
      } else {
        attempt.unauthorized = true;
        attempt.status = UnauthenticatedError(where + server_says);
      }
      return attempt;
    }
    Count(op.name, code == StatusCode::kResourceExhausted ? "rate_limited" : "graphql_error");
    if (code == StatusCode::kResourceExhausted) attempt.retry_after = response.RetryAfter(clock_.Now());
    attempt.status = Status(code, where + server_says);
    if (code == StatusCode::kInternal) {
      spdlog::warn("Concerto {}: unexpected GraphQL error{}", op.name, server_says);
    }
    return attempt;
  }
  auto data = answer->find("data");
  if (data == answer->end() || !data->is_object()) {
    Count(op.name, "invalid_response");
    attempt.status = InternalError(where + ": answer without data or errors");
    return attempt;
  }
  Count(op.name, "ok");
  attempt.data = std::move(*data);
  return attempt;
}

void ConcertoClient::Count(const std::string& operation, const char* outcome) {
  if (metrics_ != nullptr) metrics_->Increment(kRequestsMetric, {{"operation", operation}, {"outcome", outcome}});
}

// ---- Authentication ----

bool ConcertoClient::Fresh(const Token& token) const {
  const Timestamp now = clock_.Now();
  // A short-lived token (a server configured with a lifetime near the margin) keeps a quarter of
  // its lifetime as margin instead, so it is still used rather than renewed on every request.
  Duration margin = options_.token_expiry_margin;
  const Duration lifetime = token.expires_at - token.issued_at;
  if (lifetime > Duration::zero() && lifetime / 4 < margin) margin = lifetime / 4;
  return now + margin < token.expires_at && now - token.issued_at < options_.token_renewal;
}

Result<std::string> ConcertoClient::EnsureToken() {
  std::lock_guard lock(auth_mutex_);
  if (token_ && Fresh(*token_)) return token_->value;
  auto credentials = ReadCredentials();
  if (!credentials.ok()) return credentials.status();
  // Another worker or process may have renewed it already.
  if (credentials->token && Fresh(*credentials->token) && (!token_ || credentials->token->value != token_->value)) {
    token_ = credentials->token;
    spdlog::debug("Concerto: using the access token from secret '{}'", options_.credentials_secret);
    return token_->value;
  }
  return AuthenticateLocked(*credentials);
}

Result<std::string> ConcertoClient::Reauthenticate(const std::string& rejected) {
  std::lock_guard lock(auth_mutex_);
  if (token_ && token_->value != rejected && Fresh(*token_)) return token_->value;  // renewed meanwhile
  token_.reset();
  auto credentials = ReadCredentials();
  if (!credentials.ok()) return credentials.status();
  return AuthenticateLocked(*credentials);
}

Result<ConcertoClient::Credentials> ConcertoClient::ReadCredentials() {
  const std::string& id = options_.credentials_secret;
  auto value = secrets_.Get(id);
  if (!value.ok()) {
    const Status& status = value.status();
    if (IsTransientFailure(status.code())) return status.WithContext("reading Concerto credentials");
    return FailedPreconditionError("cannot read the Concerto credentials secret '" + id + "': " + status.ToString());
  }
  const std::optional<json> parsed = ParseJson(*value);
  if (!parsed || !parsed->is_object()) {
    return FailedPreconditionError("the Concerto credentials secret '" + id + "' is not a JSON object");
  }
  Credentials credentials;
  auto text = [&](const char* key) -> std::string {
    auto it = parsed->find(key);
    return it != parsed->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  credentials.email = text("email");
  credentials.password = text("password");
  if (!credentials.password.empty()) RememberSecret(credentials.password);
  const std::string token = text("token");
  if (!token.empty()) {
    RememberSecret(token);
    auto expires_at = ParseIso8601(text("token_expires_at"));
    if (expires_at) {
      auto issued_at = ParseIso8601(text("token_issued_at"));
      // Age unknown without token_issued_at: count it from now (the expiry margin still applies).
      credentials.token = Token{token, *expires_at, issued_at.value_or(clock_.Now())};
    }
  }
  if (credentials.email.empty() || credentials.password.empty()) {
    if (credentials.token && Fresh(*credentials.token)) return credentials;  // usable until it expires
    return FailedPreconditionError("the Concerto credentials secret '" + id +
                                   "' needs string fields \"email\" and \"password\"");
  }
  return credentials;
}

Result<std::string> ConcertoClient::AuthenticateLocked(const Credentials& credentials) {
  if (credentials.email.empty() || credentials.password.empty()) {
    return FailedPreconditionError("the Concerto credentials secret '" + options_.credentials_secret +
                                   "' needs string fields \"email\" and \"password\"");
  }
  const Timestamp issued_at = clock_.Now();
  auto data = Execute(docs::Authenticate(credentials.email, credentials.password));
  if (!data.ok()) {
    const bool rejected = data.status().code() == StatusCode::kUnauthenticated;
    if (metrics_ != nullptr) metrics_->Increment(kAuthMetric, {{"outcome", rejected ? "rejected" : "failed"}});
    if (rejected) {
      spdlog::error("Concerto: authentication with the credentials of secret '{}' was rejected; fix the secret",
                    options_.credentials_secret);
    } else {
      spdlog::warn("Concerto: authentication failed: {}", data.status().ToString());
    }
    return data.status();
  }
  auto parsed = docs::ParseAuthenticate(*data);
  if (!parsed.ok()) {
    if (metrics_ != nullptr) metrics_->Increment(kAuthMetric, {{"outcome", "failed"}});
    return parsed.status();
  }
  RememberSecret(parsed->token);
  Token token{parsed->token, parsed->expires_at, issued_at};
  if (!Fresh(token)) {
    spdlog::warn("Concerto: the new access token expires at {}, within the renewal margin; using it anyway",
                 FormatIso8601(token.expires_at));
  }
  token_ = token;
  if (metrics_ != nullptr) metrics_->Increment(kAuthMetric, {{"outcome", "ok"}});
  spdlog::info("Concerto: authenticated; access token valid until {}", FormatIso8601(token.expires_at));
  WriteBackLocked(token);
  return token.value;
}

void ConcertoClient::WriteBackLocked(const Token& token) {
  const std::string& id = options_.credentials_secret;
  // Re-read so that keys written by someone else since are kept.
  auto value = secrets_.Get(id);
  std::optional<json> secret = value.ok() ? ParseJson(*value) : std::nullopt;
  if (!secret || !secret->is_object()) {
    spdlog::warn("Concerto: could not re-read secret '{}' to store the new token; other workers will authenticate "
                 "on their own",
                 id);
    return;
  }
  (*secret)["token"] = token.value;
  (*secret)["token_expires_at"] = FormatIso8601(token.expires_at);
  (*secret)["token_issued_at"] = FormatIso8601(token.issued_at);
  const Status put = secrets_.Put(id, secret->dump());
  if (!put.ok()) {
    spdlog::warn("Concerto: could not store the new token in secret '{}': {}", id, put.ToString());
  }
}

void ConcertoClient::RememberSecret(const std::string& secret) {
  if (secret.size() < 4) return;  // too short to scrub without mangling ordinary text
  std::lock_guard lock(redact_mutex_);
  if (std::find(sensitive_.begin(), sensitive_.end(), secret) != sensitive_.end()) return;
  // The first entry is the password (read before any token); evict the oldest token.
  if (sensitive_.size() >= kMaxRemembered) sensitive_.erase(sensitive_.begin() + 1);
  sensitive_.push_back(secret);
}

std::string ConcertoClient::Redact(std::string text) const {
  std::lock_guard lock(redact_mutex_);
  for (const std::string& secret : sensitive_) {
    for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 3)) {
      text.replace(pos, secret.size(), "***");
    }
  }
  return text;
}

}  // namespace pwrcell::adapters
