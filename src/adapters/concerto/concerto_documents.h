// Everything about Concerto's GraphQL wire shape, in one module: the documents the adapter sends,
// the variables it fills in, and how each answer's `data` becomes domain values
// (contracts/concerto.graphql, contracts/concerto-api.md).
//
// Concerto's real API is not public and this is our model of it: adapting the adapter to a real
// instance (other field names, another pagination shape) should be a change to this module only.
// ConcertoClient owns transport, authentication, rate limiting and retries and never names a field.
//
// Pure functions, thread-safe. The parsers never throw: an answer of the wrong shape is kInternal.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "common/time.h"
#include "domain/concerto_types.h"
#include "ports/concerto_api.h"

namespace pwrcell::adapters::concerto_documents {

// One GraphQL request: POST {"query", "variables", "operationName"}. Every document is named.
// The Authenticate operation's variables hold the password: never log `variables`.
struct Operation {
  std::string name;  // operationName, also the `operation` label of the request metrics
  std::string query;
  nlohmann::json variables = nlohmann::json::object();
  // When not empty, the variables object as JSON text, used instead of `variables` (written
  // directly for IngestTelemetry: 500 points per call, json_writer.h).
  std::string variables_text;

  // The request body.
  std::string Body() const;
};

// Operation names (equal to the ConcertoApi method names).
inline constexpr std::string_view kAuthenticate = "Authenticate";
inline constexpr std::string_view kListAssets = "ListAssets";
inline constexpr std::string_view kAssetByRemoteId = "AssetByRemoteId";
inline constexpr std::string_view kSiteByRemoteId = "SiteByRemoteId";
inline constexpr std::string_view kCreateSite = "CreateSite";
inline constexpr std::string_view kCreateAsset = "CreateAsset";
inline constexpr std::string_view kUpdateAsset = "UpdateAsset";
inline constexpr std::string_view kUpdateAssetRemoteState = "UpdateAssetRemoteState";
inline constexpr std::string_view kUpdateSiteRemoteState = "UpdateSiteRemoteState";
inline constexpr std::string_view kIngestTelemetry = "IngestTelemetry";

// Every operation name above, for describing metrics.
const std::vector<std::string_view>& OperationNames();

// ---- Requests ----
Operation Authenticate(const std::string& email, const std::string& password);
Operation ListAssets(int page, int per_page);
Operation AssetByRemoteId(domain::AssetType type, const std::string& remote_id);
Operation SiteByRemoteId(const std::string& remote_id);
Operation CreateSite(const domain::CreateSiteRequest& request);
// Unset optionals are omitted (not sent as null).
Operation CreateAsset(const domain::CreateAssetRequest& request);
// Unset optionals are omitted: the field stays as it is.
Operation UpdateAsset(const domain::UpdateAssetRequest& request);
Operation UpdateAssetRemoteState(const domain::RemoteStateUpdate& update);
Operation UpdateSiteRemoteState(const domain::RemoteStateUpdate& update);
// Timestamps as ISO-8601 UTC, metrics by enum name. The caller checks the batch size and values.
Operation IngestTelemetry(const std::vector<domain::TelemetryPoint>& points);

// ---- Answers (the `data` member of a successful response) ----
// Errors: kInternal when `data` does not have the expected shape (the message names the field).
struct AccessToken {
  std::string token;
  Timestamp expires_at;
};
Result<AccessToken> ParseAuthenticate(const nlohmann::json& data);
Result<ports::AssetPage> ParseListAssets(const nlohmann::json& data);
Result<std::optional<domain::ConcertoAsset>> ParseAssetByRemoteId(const nlohmann::json& data);
Result<std::optional<domain::ConcertoSite>> ParseSiteByRemoteId(const nlohmann::json& data);
Result<domain::ConcertoSite> ParseCreateSite(const nlohmann::json& data);
Result<domain::ConcertoAsset> ParseCreateAsset(const nlohmann::json& data);
Result<domain::ConcertoAsset> ParseUpdateAsset(const nlohmann::json& data);
Status ParseUpdateAssetRemoteState(const nlohmann::json& data);
Status ParseUpdateSiteRemoteState(const nlohmann::json& data);
Result<domain::IngestResult> ParseIngestTelemetry(const nlohmann::json& data);

// ---- Errors ----
// The GraphQL errors of an answer (any JSON value): nullopt unless it is an object with a non-empty
// "errors" array. `code` is the first error's extensions.code ("UNKNOWN" when no error has one);
// `message` is every error's message joined by "; ", cut to kMaxErrorMessageBytes (+ "...").
inline constexpr std::size_t kMaxErrorMessageBytes = 600;
struct GraphqlErrors {
  std::string code;
  std::string message;
};
std::optional<GraphqlErrors> ReadGraphqlErrors(const nlohmann::json& answer);

// extensions.code -> StatusCode as ports/concerto_api.h documents. UNAUTHENTICATED ->
// kUnauthenticated, RATE_LIMITED -> kResourceExhausted and INTERNAL_SERVER_ERROR -> kUnavailable
// (the client retries those); an unknown or missing code -> kInternal.
StatusCode StatusCodeForGraphqlError(std::string_view extensions_code);

}  // namespace pwrcell::adapters::concerto_documents
