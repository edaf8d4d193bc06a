#include "adapters/ces/ces_client.h"

#include <spdlog/spdlog.h>

#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

namespace pwrcell::adapters {
namespace {

using nlohmann::json;

constexpr const char* kMetadata = "metadata";
constexpr const char* kStatus = "status";
constexpr std::size_t kMaxMessageChars = 300;

// "CODE: message" from a CES error body {"error": {"code", "message"}}, or "" when it has none.
std::string ErrorText(const std::string& body) {
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) return "";
  auto error = parsed.find("error");
  if (error == parsed.end() || !error->is_object()) return "";
  std::string text;
  if (auto code = error->find("code"); code != error->end() && code->is_string()) text = code->get<std::string>();
  if (auto message = error->find("message"); message != error->end() && message->is_string()) {
    text += (text.empty() ? "" : ": ") + message->get<std::string>();
  }
  if (text.size() > kMaxMessageChars) text = text.substr(0, kMaxMessageChars) + "...";
  return text;
}

// ---- JSON shape helpers: throw ShapeError, caught once per answer ----

class ShapeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

bool Absent(const json& object, const char* name) {
  auto it = object.find(name);
  return it == object.end() || it->is_null();
}

std::string RequiredString(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) throw ShapeError(std::string("missing string field '") + name + "'");
  return it->get<std::string>();
}

std::string StringOr(const json& object, const char* name, std::string fallback = "") {
  if (Absent(object, name)) return fallback;
  const json& value = object.at(name);
  if (!value.is_string()) throw ShapeError(std::string("field '") + name + "' is not a string");
  return value.get<std::string>();
}

std::optional<double> OptionalNumber(const json& object, const char* name) {
  if (Absent(object, name)) return std::nullopt;
  const json& value = object.at(name);
  if (!value.is_number()) throw ShapeError(std::string("field '") + name + "' is not a number");
  return value.get<double>();
}

const json& ObjectItem(const json& item, const char* what) {
  if (!item.is_object()) throw ShapeError(std::string("an entry of '") + what + "' is not an object");
  return item;
}

// A reference, never a copy: copying a JSON value recurses once per level of nesting, and an
// answer of 50,000 nested arrays (100 KB) overflowed the stack (found by fuzz/ces_answer_fuzzer.cc).
const json& ListOr(const json& object, const char* name) {
  static const json kEmpty = json::array();
  if (Absent(object, name)) return kEmpty;
  const json& value = object.at(name);
  if (!value.is_array()) throw ShapeError(std::string("field '") + name + "' is not a list");
  return value;
}

domain::SystemMetadata ParseMetadata(const json& body) {
  if (!body.is_object()) throw ShapeError("the answer is not an object");
  domain::SystemMetadata metadata;
  metadata.system_id = RequiredString(body, "systemId");
  metadata.site_id = StringOr(body, "siteId");
  metadata.site_name = StringOr(body, "siteName");
  metadata.timezone = StringOr(body, "timezone");
  metadata.latitude = OptionalNumber(body, "latitude");
  metadata.longitude = OptionalNumber(body, "longitude");
  metadata.status_name = StringOr(body, "statusName");
  for (const json& item : ListOr(body, "inverters")) {
    const json& inverter = ObjectItem(item, "inverters");
    domain::CesInverter parsed;
    parsed.rcpn = RequiredString(inverter, "rcpn");
    parsed.model = StringOr(inverter, "model");
    parsed.rated_power_w = OptionalNumber(inverter, "ratedPowerW").value_or(0);
    if (!Absent(inverter, "inverterSetting")) {
      const json& setting = inverter.at("inverterSetting");
      if (!setting.is_object()) throw ShapeError("inverterSetting is not an object");
      parsed.ac_pv_power_rating_kw = OptionalNumber(setting, "acPVPowerRating");
    }
    metadata.inverters.push_back(std::move(parsed));
  }
  for (const json& item : ListOr(body, "batteries")) {
    const json& battery = ObjectItem(item, "batteries");
    metadata.batteries.push_back({RequiredString(battery, "rcpn"), StringOr(battery, "model"),
                                  OptionalNumber(battery, "capacityWh").value_or(0),
                                  OptionalNumber(battery, "ratedPowerW").value_or(0)});
  }
  for (const json& item : ListOr(body, "pvLinks")) {
    const json& link = ObjectItem(item, "pvLinks");
    metadata.pv_links.push_back({RequiredString(link, "rcpn"), OptionalNumber(link, "ratedPowerW").value_or(0)});
  }
  if (!Absent(body, "siteMeter")) {
    const json& meter = body.at("siteMeter");
    if (!meter.is_object()) throw ShapeError("siteMeter is not an object");
    metadata.site_meter_id = RequiredString(meter, "id");
  }
  return metadata;
}

domain::CesStatusBatch ParseStatuses(const json& body) {
  if (!body.is_object()) throw ShapeError("the answer is not an object");
  if (Absent(body, "statuses")) throw ShapeError("missing field 'statuses'");
  domain::CesStatusBatch batch;
  for (const json& item : ListOr(body, "statuses")) {
    const json& status = ObjectItem(item, "statuses");
    domain::CesSystemStatus parsed;
    parsed.system_id = RequiredString(status, "systemId");
    parsed.status_name = RequiredString(status, "statusName");
    if (!Absent(status, "lastCommunicationAt")) {
      const std::string text = RequiredString(status, "lastCommunicationAt");
      parsed.last_communication_at = ParseIso8601(text);
      if (!parsed.last_communication_at) throw ShapeError("lastCommunicationAt '" + text + "' is not ISO-8601");
    }
    batch.statuses.push_back(std::move(parsed));
  }
  for (const json& id : ListOr(body, "notFound")) {
    if (!id.is_string()) throw ShapeError("an entry of 'notFound' is not a string");
    batch.not_found.push_back(id.get<std::string>());
  }
  return batch;
}

template <typename T, typename F>
Result<T> ParseAnswer(const char* operation, const std::string& body, F&& parse) {
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return InternalError(std::string("CES ") + operation + ": the answer is not JSON");
  try {
    return parse(parsed);
  } catch (const std::exception& e) {  // ShapeError and nlohmann::json::exception
    return InternalError(std::string("unexpected CES ") + operation + " answer: " + e.what());
  }
}

}  // namespace

Result<domain::SystemMetadata> ParseCesMetadataAnswer(const std::string& body) {
  return ParseAnswer<domain::SystemMetadata>(kMetadata, body, [](const json& j) { return ParseMetadata(j); });
}

Result<domain::CesStatusBatch> ParseCesStatusAnswer(const std::string& body) {
  return ParseAnswer<domain::CesStatusBatch>(kStatus, body, [](const json& j) { return ParseStatuses(j); });
}

std::string CesErrorText(const std::string& body) {
  return ErrorText(body);
}

CesClientOptions CesClientOptions::FromConfig(const config::CesConfig& config) {
  CesClientOptions options;
  options.root_url = config.root_url;
  options.credentials_secret = config.credentials_secret;
  options.ca_file = config.ca_file;
  options.timeout = std::chrono::duration_cast<Duration>(config.timeout_s);
  options.max_retries = config.max_retries;
  options.max_requests_per_second = config.max_requests_per_second;
  return options;
}

CesClientMetrics::CesClientMetrics(Metrics* registry)
    : calls{{registry,
             "pwrcell_ces_requests_total",
             "HTTP attempts to the CES API by operation (metadata, status) and outcome.",
             {"operation", "outcome"}},
            {registry,
             "pwrcell_ces_retries_total",
             "CES requests retried after a transient failure, by operation.",
             {"operation"}}} {}

CesClient::CesClient(CesClientOptions options, ports::SecretStore& secrets, const ports::Clock& clock, Metrics* metrics)
    : options_(std::move(options)),
      root_(TrimTrailingSlashes(options_.root_url)),
      secrets_(secrets),
      metrics_(metrics),
      caller_(CallerOptionsFrom("CES", options_), clock, metrics_.calls) {}

Result<domain::SystemMetadata> CesClient::GetMetadata(const std::string& system_id) {
  if (system_id.empty()) return InvalidArgumentError("CES metadata: empty systemId");
  auto body = Get(kMetadata, "/systems/v1/" + UrlEncode(system_id) + "/metadata?inverterSetting=true");
  if (!body.ok()) return body.status();
  return ParseCesMetadataAnswer(*body);
}

Result<domain::CesStatusBatch> CesClient::GetStatus(const std::vector<std::string>& system_ids) {
  if (system_ids.size() > ports::kMaxStatusBatch) {
    return InvalidArgumentError("CES status: " + std::to_string(system_ids.size()) + " systemIds, at most " +
                                std::to_string(ports::kMaxStatusBatch) + " per call");
  }
  if (system_ids.empty()) return domain::CesStatusBatch{};
  std::string query;
  for (const std::string& id : system_ids) {
    if (id.empty()) return InvalidArgumentError("CES status: empty systemId in the batch");
    // The batch travels as systemIds=a,b (contracts/ces-api.md): an id holding the separator would
    // be read as two and answered for systems nobody asked about.
    if (id.find(',') != std::string::npos) {
      return InvalidArgumentError("CES status: systemId \"" + id + "\" holds ',', the batch separator");
    }
    if (!query.empty()) query += ',';
    query += UrlEncode(id);
  }
  auto body = Get(kStatus, "/systems/v1/status?systemIds=" + query);
  if (!body.ok()) {
    // 404 here is not "unknown system" (those come back in notFound): the URL is wrong.
    if (body.status().code() == StatusCode::kNotFound) {
      return FailedPreconditionError(body.status().message() + " (is the CES root URL right?)");
    }
    return body.status();
  }
  return ParseCesStatusAnswer(*body);
}

Result<std::string> CesClient::Get(const char* operation, const std::string& path_and_query) {
  std::string key;  // the key of the latest attempt
  CallSpec spec;
  spec.operation = operation;
  spec.build = [&]() -> Result<HttpRequest> {
    auto current = ApiKey(false);
    if (!current.ok()) return current.status();
    key = std::move(current).value();
    HttpRequest request;
    request.method = HttpMethod::kGet;
    request.url = root_ + path_and_query;
    request.headers = {{"x-api-key", key}, {"Accept", "application/json"}};
    request.timeout = options_.timeout;
    return request;
  };
  spec.judge = [](const HttpResponse& response, const ExchangeClass& table) {
    return VerdictFromTable(response, table, CesErrorText(response.body));
  };
  // The key may have been rotated in the secret: read it again once.
  spec.renew_credentials = [&]() -> Result<bool> {
    auto fresh = ApiKey(true);
    if (!fresh.ok()) return fresh.status().IsRetryable() ? Result<bool>(fresh.status()) : Result<bool>(false);
    return *fresh != key;
  };
  spec.credentials = "the API key of secret '" + options_.credentials_secret + "'";
  auto answered = caller_.Call(spec);
  if (!answered.ok()) return answered.status();
  return std::move(answered->body);
}

Result<std::string> CesClient::ApiKey(bool reload) {
  std::lock_guard lock(key_mutex_);
  if (api_key_ && !reload) return *api_key_;
  const std::string& id = options_.credentials_secret;
  auto value = secrets_.Get(id);
  if (!value.ok()) {
    if (value.status().IsRetryable()) return value.status().WithContext("reading the CES API key");
    return FailedPreconditionError("cannot read the CES credentials secret '" + id + "': " + value.status().ToString());
  }
  const json parsed = json::parse(*value, nullptr, /*allow_exceptions=*/false);
  auto key = parsed.is_object() ? parsed.find("api_key") : parsed.end();
  if (!parsed.is_object() || key == parsed.end() || !key->is_string() || key->get<std::string>().empty()) {
    return FailedPreconditionError("the CES credentials secret '" + id + "' needs a string field \"api_key\"");
  }
  api_key_ = key->get<std::string>();
  caller_.Remember(*api_key_);
  return *api_key_;
}

}  // namespace pwrcell::adapters
