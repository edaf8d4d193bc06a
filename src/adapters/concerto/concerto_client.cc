#include "adapters/concerto/concerto_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "common/url.h"

namespace pwrcell::adapters {
namespace {

namespace docs = concerto_documents;
using nlohmann::json;

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
  options.ca_file = config.ca_file;
  options.timeout = std::chrono::duration_cast<Duration>(config.timeout_s);
  options.max_retries = config.max_retries;
  options.max_requests_per_second = config.max_requests_per_second;
  options.token_renewal = std::chrono::duration_cast<Duration>(config.token_renewal_s);
  return options;
}

ConcertoClientMetrics::ConcertoClientMetrics(Metrics* registry)
    : calls{{registry,
             "pwrcell_concerto_requests_total",
             "HTTP attempts to Concerto's GraphQL API by operation and outcome.",
             {"operation", "outcome"}},
            {registry,
             "pwrcell_concerto_retries_total",
             "Concerto requests retried after a transient failure, by operation.",
             {"operation"}}},
      authentications(registry, "pwrcell_concerto_authentications_total",
                      "Concerto authentications by outcome (ok, rejected credentials, failed).", {"outcome"}) {}

ConcertoClient::ConcertoClient(ConcertoClientOptions options, ports::SecretStore& secrets, const ports::Clock& clock,
                               Metrics* metrics)
    : options_(std::move(options)),
      endpoint_(TrimTrailingSlashes(options_.root_url) + "/graphql"),
      secrets_(secrets),
      clock_(clock),
      metrics_(metrics),
      caller_(CallerOptionsFrom("Concerto", options_), clock_, metrics_.calls) {}

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
  std::string token;         // the token of the latest attempt
  std::optional<json> data;  // the answer's data, set by the judge on success

  CallSpec spec;
  spec.operation = op.name;
  spec.build = [&]() -> Result<HttpRequest> {
    HttpRequest request;
    request.method = HttpMethod::kPost;
    request.url = endpoint_;
    request.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    if (!authenticating) {
      auto ensured = EnsureToken();
      if (!ensured.ok()) return ensured.status();
      token = std::move(ensured).value();
      request.headers.emplace_back("Authorization", "Bearer " + token);
    }
    request.body = body;
    request.timeout = options_.timeout;
    return request;
  };
  spec.judge = [&](const HttpResponse& response, const ExchangeClass& table) -> Verdict {
    const std::optional<json> answer = ParseJson(response.body);
    const std::optional<docs::GraphqlErrors> errors = answer ? docs::ReadGraphqlErrors(*answer) : std::nullopt;
    const std::string server_says = errors ? errors->code + ": " + errors->message : std::string();

    if (table.code == StatusCode::kUnauthenticated && authenticating) {
      return {UnauthenticatedError("credentials rejected (HTTP 401)"), table.outcome, false};
    }
    if (table.code != StatusCode::kOk) {
      Verdict verdict = VerdictFromTable(response, table, server_says);
      const bool client_error = response.status >= 400 && response.status < 500;
      if (client_error && table.code != StatusCode::kUnauthenticated && table.code != StatusCode::kResourceExhausted) {
        // The GraphQL error code says more than the HTTP status; without one, a 404 means there is
        // no GraphQL endpoint at the configured root URL.
        if (errors) {
          verdict.status = Status(docs::StatusCodeForGraphqlError(errors->code), verdict.status.message());
        } else if (response.status == 404) {
          verdict.status = FailedPreconditionError(verdict.status.message() + ": no GraphQL endpoint at " +
                                                   RedactUrlCredentials(endpoint_));
        }
      }
      return verdict;
    }

    if (!answer || !answer->is_object()) {
      return {InternalError("HTTP " + std::to_string(response.status) + " with a body that is not JSON"),
              "invalid_response", false};
    }
    if (errors) {
      const StatusCode code = docs::StatusCodeForGraphqlError(errors->code);
      if (code == StatusCode::kUnauthenticated) {
        if (authenticating) {
          // Never echo the server's text here: it is about the credentials we sent.
          return {UnauthenticatedError("Concerto rejected the email or password of secret '" +
                                       options_.credentials_secret + "' (UNAUTHENTICATED)"),
                  "unauthorized", false};
        }
        return {UnauthenticatedError(server_says), "unauthorized", true};
      }
      if (code == StatusCode::kInternal) {
        spdlog::warn("Concerto {}: unexpected GraphQL error: {}", op.name, caller_.Redact(server_says));
      }
      return {Status(code, server_says), code == StatusCode::kResourceExhausted ? "rate_limited" : "graphql_error",
              false};
    }
    auto found = answer->find("data");
    if (found == answer->end() || !found->is_object()) {
      return {InternalError("answer without data or errors"), "invalid_response", false};
    }
    data = std::move(*found);
    return {Status::Ok(), "ok", false};
  };
  if (!authenticating) {
    spec.renew_credentials = [&]() -> Result<bool> {
      auto renewed = Reauthenticate(token);
      if (!renewed.ok()) return renewed.status();
      return true;
    };
    spec.credentials = "the access token for the credentials of secret '" + options_.credentials_secret + "'";
  }

  auto answered = caller_.Call(spec);
  if (!answered.ok()) return answered.status();
  return std::move(*data);
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

Status ConcertoClient::CheckCredentials() {
  std::lock_guard lock(auth_mutex_);
  return ReadCredentials().status();
}

Result<ConcertoClient::Credentials> ConcertoClient::ReadCredentials() {
  const std::string& id = options_.credentials_secret;
  auto value = secrets_.Get(id);
  if (!value.ok()) {
    const Status& status = value.status();
    if (status.IsRetryable()) return status.WithContext("reading Concerto credentials");
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
  if (!credentials.password.empty()) caller_.Remember(credentials.password);
  const std::string token = text("token");
  if (!token.empty()) {
    caller_.Remember(token);
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
    metrics_.authentications.Increment({rejected ? "rejected" : "failed"});
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
    metrics_.authentications.Increment({"failed"});
    return parsed.status();
  }
  caller_.Remember(parsed->token);
  Token token{parsed->token, parsed->expires_at, issued_at};
  if (!Fresh(token)) {
    spdlog::warn("Concerto: the new access token expires at {}, within the renewal margin; using it anyway",
                 FormatIso8601(token.expires_at));
  }
  token_ = token;
  metrics_.authentications.Increment({"ok"});
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
    spdlog::warn(
        "Concerto: could not re-read secret '{}' to store the new token; other workers will authenticate "
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

}  // namespace pwrcell::adapters
