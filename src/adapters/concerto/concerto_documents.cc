#include "adapters/concerto/concerto_documents.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/json_writer.h"

namespace pwrcell::adapters::concerto_documents {
namespace {

using nlohmann::json;

// ---- The documents ----

// What the adapter reads of an asset: enough to recognise its systems and the devices under them
// (a SYSTEM's children are its INVERTER and SITE_METER, the inverter's are BATTERY and PHOTOVOLTAIC).
constexpr std::string_view kAssetFields = R"(
fragment AssetFields on Asset {
  id remoteId name assetType
  adapterConfiguration { name }
  simulated remoteState ratedPower energyCapacity acCoupled
  site { id remoteId name }
  parent { id }
  children { id remoteId assetType children { id remoteId assetType } }
})";

constexpr std::string_view kSiteFields = R"(
fragment SiteFields on Site { id remoteId name timezone latitude longitude remoteState })";

constexpr std::string_view kAuthenticateQuery =
    "mutation Authenticate($input: AuthenticateInput!) { authenticate(input: $input) { accessToken expiresAt } }";

constexpr std::string_view kListAssetsQuery =
    "query ListAssets($page: PosInteger!, $perPage: PosInteger!) {"
    " allAssets { totalCount data(currentPage: $page, perPage: $perPage) { assets { ...AssetFields } } } }";

constexpr std::string_view kAssetByRemoteIdQuery =
    "query AssetByRemoteId($assetType: AssetType!, $remoteId: String!) {"
    " assetByRemoteId(assetType: $assetType, remoteId: $remoteId) { ...AssetFields } }";

constexpr std::string_view kSiteByRemoteIdQuery =
    "query SiteByRemoteId($remoteId: String!) { siteByRemoteId(remoteId: $remoteId) { ...SiteFields } }";

constexpr std::string_view kCreateSiteQuery =
    "mutation CreateSite($input: CreateSiteInput!) { createSite(input: $input) { ...SiteFields } }";

constexpr std::string_view kCreateAssetQuery =
    "mutation CreateAsset($input: CreateAssetInput!) { createAsset(input: $input) { ...AssetFields } }";

constexpr std::string_view kUpdateAssetQuery =
    "mutation UpdateAsset($input: UpdateAssetInput!) { updateAsset(input: $input) { ...AssetFields } }";

constexpr std::string_view kUpdateAssetRemoteStateQuery =
    "mutation UpdateAssetRemoteState($input: UpdateRemoteStateInput!) {"
    " updateAssetRemoteState(input: $input) { id remoteState } }";

constexpr std::string_view kUpdateSiteRemoteStateQuery =
    "mutation UpdateSiteRemoteState($input: UpdateRemoteStateInput!) {"
    " updateSiteRemoteState(input: $input) { id remoteState } }";

constexpr std::string_view kIngestTelemetryQuery =
    "mutation IngestTelemetry($input: IngestTelemetryInput!) {"
    " ingestTelemetry(input: $input) { accepted duplicates rejected { index message } } }";

Operation Make(std::string_view name, std::string_view query, json variables, std::string_view fragment = {}) {
  Operation op;
  op.name = std::string(name);
  op.query = std::string(query);
  op.query += fragment;
  op.variables = std::move(variables);
  return op;
}

// ---- Parsing helpers: throw ShapeError, caught once in Guard ----

class ShapeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

const json& Field(const json& object, const char* name) {
  if (!object.is_object()) throw ShapeError(std::string("expected an object holding '") + name + "'");
  auto it = object.find(name);
  if (it == object.end()) throw ShapeError(std::string("missing field '") + name + "'");
  return *it;
}

bool IsAbsent(const json& object, const char* name) {
  auto it = object.find(name);
  return it == object.end() || it->is_null();
}

std::string String(const json& object, const char* name) {
  const json& value = Field(object, name);
  if (!value.is_string()) throw ShapeError(std::string("field '") + name + "' is not a string");
  return value.get<std::string>();
}

// GraphQL IDs are strings on the wire; accept integers too.
std::string Id(const json& object, const char* name) {
  const json& value = Field(object, name);
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer()) return std::to_string(value.get<long long>());
  throw ShapeError(std::string("field '") + name + "' is not an ID");
}

std::optional<std::string> OptionalString(const json& object, const char* name) {
  if (IsAbsent(object, name)) return std::nullopt;
  return String(object, name);
}

std::optional<double> OptionalNumber(const json& object, const char* name) {
  if (IsAbsent(object, name)) return std::nullopt;
  const json& value = object.at(name);
  if (!value.is_number()) throw ShapeError(std::string("field '") + name + "' is not a number");
  return value.get<double>();
}

std::optional<bool> OptionalBool(const json& object, const char* name) {
  if (IsAbsent(object, name)) return std::nullopt;
  const json& value = object.at(name);
  if (!value.is_boolean()) throw ShapeError(std::string("field '") + name + "' is not a boolean");
  return value.get<bool>();
}

int Int(const json& object, const char* name) {
  const json& value = Field(object, name);
  if (!value.is_number_integer()) throw ShapeError(std::string("field '") + name + "' is not an integer");
  // get<int>() would wrap a larger count (4294967297 read as 1) instead of refusing it.
  const bool in_range = value.is_number_unsigned()
                            ? value.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<int>::max())
                            : value.get<std::int64_t>() >= std::numeric_limits<int>::min() &&
                                  value.get<std::int64_t>() <= std::numeric_limits<int>::max();
  if (!in_range) throw ShapeError(std::string("field '") + name + "' is out of range");
  return value.get<int>();
}

const json& Array(const json& object, const char* name) {
  const json& value = Field(object, name);
  if (!value.is_array()) throw ShapeError(std::string("field '") + name + "' is not a list");
  return value;
}

domain::AssetType AssetTypeOf(const json& object) {
  const std::string name = String(object, "assetType");
  auto type = domain::ParseAssetType(name);
  if (!type) throw ShapeError("unknown assetType '" + name + "'");
  return *type;
}

std::optional<domain::RemoteState> RemoteStateOf(const json& object) {
  auto name = OptionalString(object, "remoteState");
  if (!name) return std::nullopt;
  auto state = domain::ParseRemoteState(*name);
  if (!state) throw ShapeError("unknown remoteState '" + *name + "'");
  return state;
}

// The documents ask for two levels of children (kAssetFields): a child's children may not have
// children of their own. Without this bound an answer nested 20,000 deep (1 MB) overflowed the
// stack in this recursion (found by fuzz/concerto_answer_fuzzer.cc).
constexpr int kMaxChildDepth = 2;

domain::AssetChild ParseChild(const json& object, int depth = 1) {
  domain::AssetChild child;
  child.id = Id(object, "id");
  child.remote_id = String(object, "remoteId");
  child.asset_type = AssetTypeOf(object);
  if (!IsAbsent(object, "children")) {
    const json& children = Array(object, "children");
    if (depth >= kMaxChildDepth && !children.empty()) {
      throw ShapeError("children nested deeper than the " + std::to_string(kMaxChildDepth) + " levels asked for");
    }
    for (const json& grandchild : children) child.children.push_back(ParseChild(grandchild, depth + 1));
  }
  return child;
}

domain::ConcertoSite ParseSite(const json& object) {
  domain::ConcertoSite site;
  site.id = Id(object, "id");
  site.remote_id = OptionalString(object, "remoteId").value_or("");
  site.name = OptionalString(object, "name").value_or("");
  site.timezone = OptionalString(object, "timezone").value_or("");
  site.latitude = OptionalNumber(object, "latitude");
  site.longitude = OptionalNumber(object, "longitude");
  site.remote_state = RemoteStateOf(object);
  return site;
}

domain::ConcertoAsset ParseAsset(const json& object) {
  if (!object.is_object()) throw ShapeError("an asset is not an object");
  domain::ConcertoAsset asset;
  asset.id = Id(object, "id");
  asset.remote_id = String(object, "remoteId");
  asset.name = String(object, "name");
  asset.asset_type = AssetTypeOf(object);
  if (!IsAbsent(object, "adapterConfiguration")) {
    asset.adapter_name = String(object.at("adapterConfiguration"), "name");
  }
  asset.simulated = OptionalBool(object, "simulated").value_or(false);
  asset.remote_state = RemoteStateOf(object);
  asset.rated_power_kw = OptionalNumber(object, "ratedPower");
  asset.energy_capacity_kwh = OptionalNumber(object, "energyCapacity");
  asset.ac_coupled = OptionalBool(object, "acCoupled");
  if (!IsAbsent(object, "site")) asset.site = ParseSite(object.at("site"));
  if (!IsAbsent(object, "parent")) asset.parent_id = Id(object.at("parent"), "id");
  for (const json& child : Array(object, "children")) asset.children.push_back(ParseChild(child));
  return asset;
}

// Runs a parser, turning shape errors into kInternal naming the operation.
template <typename T, typename F>
Result<T> Guard(std::string_view operation, F&& parse) {
  try {
    return parse();
  } catch (const std::exception& e) {  // ShapeError and nlohmann::json::exception
    return InternalError("unexpected " + std::string(operation) + " answer from Concerto: " + e.what());
  }
}

json SiteInput(const domain::CreateSiteRequest& request) {
  json input = {{"remoteId", request.remote_id}, {"name", request.name}};
  if (!request.timezone.empty()) input["timezone"] = request.timezone;
  if (request.latitude) input["latitude"] = *request.latitude;
  if (request.longitude) input["longitude"] = *request.longitude;
  return input;
}

json RemoteStateInput(const domain::RemoteStateUpdate& update) {
  json input = {{"id", update.id}, {"remoteState", std::string(domain::RemoteStateName(update.state))}};
  if (!update.reason.empty()) input["reason"] = update.reason;
  return input;
}

Status ParseRemoteStateAnswer(std::string_view operation, const char* field, const nlohmann::json& data) {
  auto parsed = Guard<bool>(operation, [&] {
    const json& node = Field(data, field);
    if (!node.is_object()) throw ShapeError(std::string("'") + field + "' is null");
    (void)Id(node, "id");
    return true;
  });
  return parsed.status();
}

}  // namespace

std::string Operation::Body() const {
  if (!variables_text.empty()) {
    // The keys in nlohmann's (sorted) order, as below.
    std::string out;
    out.reserve(query.size() + variables_text.size() + name.size() + 48);
    out.append(R"({"operationName":)");
    json_writer::AppendString(out, name);
    out.append(R"(,"query":)");
    json_writer::AppendString(out, query);
    out.append(R"(,"variables":)");
    out.append(variables_text);
    out.push_back('}');
    return out;
  }
  json body = {{"query", query}, {"variables", variables}, {"operationName", name}};
  // Replace invalid UTF-8 rather than throw: a bad byte in a name must not crash a worker.
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

const std::vector<std::string_view>& OperationNames() {
  static const std::vector<std::string_view> names = {
      kAuthenticate, kListAssets,  kAssetByRemoteId,        kSiteByRemoteId,        kCreateSite,
      kCreateAsset,  kUpdateAsset, kUpdateAssetRemoteState, kUpdateSiteRemoteState, kIngestTelemetry};
  return names;
}

Operation Authenticate(const std::string& email, const std::string& password) {
  return Make(kAuthenticate, kAuthenticateQuery, {{"input", {{"email", email}, {"password", password}}}});
}

Operation ListAssets(int page, int per_page) {
  return Make(kListAssets, kListAssetsQuery, {{"page", page}, {"perPage", per_page}}, kAssetFields);
}

Operation AssetByRemoteId(domain::AssetType type, const std::string& remote_id) {
  return Make(kAssetByRemoteId, kAssetByRemoteIdQuery,
              {{"assetType", std::string(domain::AssetTypeName(type))}, {"remoteId", remote_id}}, kAssetFields);
}

Operation SiteByRemoteId(const std::string& remote_id) {
  return Make(kSiteByRemoteId, kSiteByRemoteIdQuery, {{"remoteId", remote_id}}, kSiteFields);
}

Operation CreateSite(const domain::CreateSiteRequest& request) {
  return Make(kCreateSite, kCreateSiteQuery, {{"input", SiteInput(request)}}, kSiteFields);
}

Operation CreateAsset(const domain::CreateAssetRequest& request) {
  json input = {{"remoteId", request.remote_id},
                {"name", request.name},
                {"assetType", std::string(domain::AssetTypeName(request.asset_type))},
                {"adapterName", request.adapter_name},
                {"simulated", request.simulated}};
  if (request.site_id) input["siteId"] = *request.site_id;
  if (request.parent_id) input["parentId"] = *request.parent_id;
  if (request.rated_power_kw) input["ratedPower"] = *request.rated_power_kw;
  if (request.energy_capacity_kwh) input["energyCapacity"] = *request.energy_capacity_kwh;
  if (request.ac_coupled) input["acCoupled"] = *request.ac_coupled;
  return Make(kCreateAsset, kCreateAssetQuery, {{"input", std::move(input)}}, kAssetFields);
}

Operation UpdateAsset(const domain::UpdateAssetRequest& request) {
  json input = {{"id", request.id}};
  if (request.site_id) input["siteId"] = *request.site_id;
  if (request.rated_power_kw) input["ratedPower"] = *request.rated_power_kw;
  if (request.energy_capacity_kwh) input["energyCapacity"] = *request.energy_capacity_kwh;
  if (request.ac_coupled) input["acCoupled"] = *request.ac_coupled;
  return Make(kUpdateAsset, kUpdateAssetQuery, {{"input", std::move(input)}}, kAssetFields);
}

Operation UpdateAssetRemoteState(const domain::RemoteStateUpdate& update) {
  return Make(kUpdateAssetRemoteState, kUpdateAssetRemoteStateQuery, {{"input", RemoteStateInput(update)}});
}

Operation UpdateSiteRemoteState(const domain::RemoteStateUpdate& update) {
  return Make(kUpdateSiteRemoteState, kUpdateSiteRemoteStateQuery, {{"input", RemoteStateInput(update)}});
}

Operation IngestTelemetry(const std::vector<domain::TelemetryPoint>& points) {
  // {"input":{"points":[{"assetId":..,"metric":..,"timestamp":..,"value":..},...]}}, written
  // directly: the one document sent at the rate limit with 500 points.
  std::string text;
  text.reserve(32 + points.size() * 110);
  text.append(R"({"input":{"points":[)");
  // Consecutive points mostly share their asset and timestamp: their text is copied.
  const std::string* last_asset = nullptr;
  std::size_t asset_at = 0, asset_size = 0;
  std::optional<Timestamp> last_time;
  std::size_t time_at = 0, time_size = 0;
  bool first = true;
  for (const auto& point : points) {
    text.append(first ? R"({"assetId":)" : R"(,{"assetId":)");
    first = false;
    if (last_asset != nullptr && *last_asset == point.asset_id) {
      text.append(text, asset_at, asset_size);
    } else {
      asset_at = text.size();
      json_writer::AppendString(text, point.asset_id);
      asset_size = text.size() - asset_at;
      last_asset = &point.asset_id;
    }
    text.append(R"(,"metric":")");
    text.append(domain::MetricName(point.metric));
    text.append(R"(","timestamp":")");
    if (last_time == point.timestamp) {
      text.append(text, time_at, time_size);
    } else {
      time_at = text.size();
      text.append(FormatIso8601(point.timestamp));
      time_size = text.size() - time_at;
      last_time = point.timestamp;
    }
    text.append(R"(","value":)");
    json_writer::AppendNumber(text, point.value);
    text.push_back('}');
  }
  text.append("]}}");
  Operation op = Make(kIngestTelemetry, kIngestTelemetryQuery, json::object());
  op.variables_text = std::move(text);
  return op;
}

Result<AccessToken> ParseAuthenticate(const nlohmann::json& data) {
  return Guard<AccessToken>(kAuthenticate, [&] {
    const json& payload = Field(data, "authenticate");
    AccessToken token;
    token.token = String(payload, "accessToken");
    if (token.token.empty()) throw ShapeError("empty accessToken");
    const std::string expires = String(payload, "expiresAt");
    auto expires_at = ParseIso8601(expires);
    if (!expires_at) throw ShapeError("expiresAt is not an ISO-8601 time");
    token.expires_at = *expires_at;
    return token;
  });
}

Result<ports::AssetPage> ParseListAssets(const nlohmann::json& data) {
  return Guard<ports::AssetPage>(kListAssets, [&] {
    const json& all = Field(data, "allAssets");
    ports::AssetPage page;
    page.total_count = Int(all, "totalCount");
    for (const json& asset : Array(Field(all, "data"), "assets")) page.assets.push_back(ParseAsset(asset));
    return page;
  });
}

Result<std::optional<domain::ConcertoAsset>> ParseAssetByRemoteId(const nlohmann::json& data) {
  return Guard<std::optional<domain::ConcertoAsset>>(kAssetByRemoteId, [&]() -> std::optional<domain::ConcertoAsset> {
    const json& node = Field(data, "assetByRemoteId");
    if (node.is_null()) return std::nullopt;
    return ParseAsset(node);
  });
}

Result<std::optional<domain::ConcertoSite>> ParseSiteByRemoteId(const nlohmann::json& data) {
  return Guard<std::optional<domain::ConcertoSite>>(kSiteByRemoteId, [&]() -> std::optional<domain::ConcertoSite> {
    const json& node = Field(data, "siteByRemoteId");
    if (node.is_null()) return std::nullopt;
    return ParseSite(node);
  });
}

Result<domain::ConcertoSite> ParseCreateSite(const nlohmann::json& data) {
  return Guard<domain::ConcertoSite>(kCreateSite, [&] { return ParseSite(Field(data, "createSite")); });
}

Result<domain::ConcertoAsset> ParseCreateAsset(const nlohmann::json& data) {
  return Guard<domain::ConcertoAsset>(kCreateAsset, [&] { return ParseAsset(Field(data, "createAsset")); });
}

Result<domain::ConcertoAsset> ParseUpdateAsset(const nlohmann::json& data) {
  return Guard<domain::ConcertoAsset>(kUpdateAsset, [&] { return ParseAsset(Field(data, "updateAsset")); });
}

Status ParseUpdateAssetRemoteState(const nlohmann::json& data) {
  return ParseRemoteStateAnswer(kUpdateAssetRemoteState, "updateAssetRemoteState", data);
}

Status ParseUpdateSiteRemoteState(const nlohmann::json& data) {
  return ParseRemoteStateAnswer(kUpdateSiteRemoteState, "updateSiteRemoteState", data);
}

Result<domain::IngestResult> ParseIngestTelemetry(const nlohmann::json& data) {
  return Guard<domain::IngestResult>(kIngestTelemetry, [&] {
    const json& payload = Field(data, "ingestTelemetry");
    domain::IngestResult result;
    result.accepted = Int(payload, "accepted");
    result.duplicates = Int(payload, "duplicates");
    for (const json& rejection : Array(payload, "rejected")) {
      result.rejected.push_back({Int(rejection, "index"), String(rejection, "message")});
    }
    return result;
  });
}

std::optional<GraphqlErrors> ReadGraphqlErrors(const nlohmann::json& answer) {
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
  if (errors.message.size() > kMaxErrorMessageBytes) {
    errors.message.resize(kMaxErrorMessageBytes);
    errors.message += "...";
  }
  return errors;
}

StatusCode StatusCodeForGraphqlError(std::string_view code) {
  if (code == "NOT_FOUND") return StatusCode::kNotFound;
  if (code == "CONFLICT") return StatusCode::kAlreadyExists;
  if (code == "BAD_USER_INPUT" || code == "GRAPHQL_VALIDATION_FAILED") return StatusCode::kInvalidArgument;
  if (code == "UNAUTHENTICATED") return StatusCode::kUnauthenticated;
  if (code == "FORBIDDEN") return StatusCode::kPermissionDenied;
  if (code == "RATE_LIMITED") return StatusCode::kResourceExhausted;
  if (code == "INTERNAL_SERVER_ERROR") return StatusCode::kUnavailable;
  return StatusCode::kInternal;
}

}  // namespace pwrcell::adapters::concerto_documents
