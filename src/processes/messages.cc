#include "processes/messages.h"

#include <nlohmann/json.hpp>

#include "common/json_writer.h"

namespace pwrcell::processes {
namespace {

using nlohmann::json;

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

Result<json> ParseObject(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgumentError("queue message is not a JSON object");
  if (!j.contains("op") || !j["op"].is_string()) return InvalidArgumentError("queue message has no \"op\"");
  return j;
}

Result<std::string> RequiredString(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    return InvalidArgumentError(std::string("queue message lacks a non-empty string \"") + key + "\"");
  }
  return it->get<std::string>();
}

// {"op":"push_telemetry","series":[{"a":<asset>,"t":<unix ms>,"m":[<metric>,...],"v":[<value>,...]},...]}
// Consecutive points of one asset and timestamp (the mapping gives a channel's points together)
// form one entry, so an asset id is written once per channel rather than once per point: the
// message is less than half the size of one entry per point (the older "points" shape, still
// read), and these messages are most of what the store writes. Written directly (json_writer.h).
std::string EncodePushTelemetry(const PushTelemetryRequest& request) {
  std::string out;
  out.reserve(48 + request.points.size() * 40);
  out.append(R"({"op":"push_telemetry","series":[)");
  const auto& points = request.points;
  for (std::size_t begin = 0, end = 0; begin < points.size(); begin = end) {
    end = begin + 1;
    while (end < points.size() && points[end].timestamp == points[begin].timestamp &&
           points[end].asset_id == points[begin].asset_id) {
      ++end;
    }
    out.append(begin == 0 ? R"({"a":)" : R"(,{"a":)");
    json_writer::AppendString(out, points[begin].asset_id);
    out.append(R"(,"t":)");
    json_writer::AppendInteger(out, ToUnixMillis(points[begin].timestamp));
    out.append(R"(,"m":[)");
    for (std::size_t k = begin; k < end; ++k) {
      out.append(k == begin ? "\"" : ",\"");
      out.append(domain::MetricName(points[k].metric));  // an enum's name: letters and '_'
      out.push_back('"');
    }
    out.append(R"(],"v":[)");
    for (std::size_t k = begin; k < end; ++k) {
      if (k != begin) out.push_back(',');
      json_writer::AppendNumber(out, points[k].value);
    }
    out.append("]}");
  }
  out.append("]}");
  return out;
}

Result<PushTelemetryRequest> DecodePushTelemetry(const json& j) {
  PushTelemetryRequest r;
  if (auto series = j.find("series"); series != j.end()) {
    if (!series->is_array()) return InvalidArgumentError("push_telemetry: \"series\" is not an array");
    for (const auto& s : *series) {
      if (!s.is_object() || !s.contains("a") || !s["a"].is_string() || !s.contains("t") ||
          !s["t"].is_number_integer() || !s.contains("m") || !s["m"].is_array() || !s.contains("v") ||
          !s["v"].is_array() || s["m"].size() != s["v"].size()) {
        return InvalidArgumentError("push_telemetry: malformed series");
      }
      const auto& asset = s["a"].get_ref<const std::string&>();
      const Timestamp t = FromUnixMillis(s["t"].get<std::int64_t>());
      const auto& metrics = s["m"];
      const auto& values = s["v"];
      for (std::size_t k = 0; k < metrics.size(); ++k) {
        if (!metrics[k].is_string() || !values[k].is_number()) {
          return InvalidArgumentError("push_telemetry: malformed series");
        }
        auto metric = domain::ParseMetric(metrics[k].get_ref<const std::string&>());
        if (!metric) {
          return InvalidArgumentError("push_telemetry: unknown metric " + metrics[k].get_ref<const std::string&>());
        }
        r.points.push_back({asset, *metric, t, values[k].get<double>()});
      }
    }
    return r;
  }
  // The shape written before "series": one entry per point.
  auto points = j.find("points");
  if (points == j.end() || !points->is_array()) return InvalidArgumentError("push_telemetry: no \"series\" array");
  r.points.reserve(points->size());
  for (const auto& p : *points) {
    if (!p.is_object() || !p.contains("a") || !p["a"].is_string() || !p.contains("m") || !p["m"].is_string() ||
        !p.contains("t") || !p["t"].is_number_integer() || !p.contains("v") || !p["v"].is_number()) {
      return InvalidArgumentError("push_telemetry: malformed point");
    }
    auto metric = domain::ParseMetric(p["m"].get<std::string>());
    if (!metric) return InvalidArgumentError("push_telemetry: unknown metric " + p["m"].get<std::string>());
    r.points.push_back(
        {p["a"].get<std::string>(), *metric, FromUnixMillis(p["t"].get<std::int64_t>()), p["v"].get<double>()});
  }
  return r;
}

}  // namespace

std::string EncodeConcertoRequest(const ConcertoRequest& request) {
  if (const auto* push = std::get_if<PushTelemetryRequest>(&request)) return EncodePushTelemetry(*push);
  json j = std::visit(Overloaded{
                          [](const ListAssetsRequest& r) {
                            json out{{"op", "list_assets"}};
                            if (!r.lease_owner.empty()) out["lease"] = r.lease_owner;
                            return out;
                          },
                          [](const CommissionRequest& r) {
                            return json{{"op", "commission"}, {"remote_id", r.remote_id}};
                          },
                          [](const RemoteStateRequest& r) {
                            json out{{"op", "update_remote_state"}, {"remote_id", r.remote_id}};
                            if (r.site_id) out["site"] = {{"id", *r.site_id}};
                            if (!r.lease_owner.empty()) out["lease"] = r.lease_owner;
                            return out;
                          },
                          [](const PushTelemetryRequest&) -> json { return nullptr; },  // above
                      },
                      request);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<ConcertoRequest> DecodeConcertoRequest(std::string_view body) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  const std::string op = j["op"];
  auto lease = [&j]() -> Result<std::string> {
    auto found = j.find("lease");
    if (found == j.end() || found->is_null()) return std::string();
    if (!found->is_string()) return InvalidArgumentError("\"lease\" is not a string");
    return found->get<std::string>();
  };
  if (op == "list_assets") {
    auto owner = lease();
    if (!owner.ok()) return owner.status().WithContext("list_assets");
    return ConcertoRequest{ListAssetsRequest{*owner}};
  }
  if (op == "commission") {
    auto id = RequiredString(j, "remote_id");
    if (!id.ok()) return id.status();
    return ConcertoRequest{CommissionRequest{*id}};
  }
  if (op == "update_remote_state") {
    auto id = RequiredString(j, "remote_id");
    if (!id.ok()) return id.status();
    RemoteStateRequest r{*id, std::nullopt, ""};
    if (auto site = j.find("site"); site != j.end() && !site->is_null()) {
      // Older producers also put the site's state and reason here; the gateway aggregates the
      // state itself when the request runs, so only the id counts.
      if (!site->is_object()) return InvalidArgumentError("update_remote_state: \"site\" is not an object");
      auto site_id = RequiredString(*site, "id");
      if (!site_id.ok()) return site_id.status();
      r.site_id = *site_id;
    }
    auto owner = lease();
    if (!owner.ok()) return owner.status().WithContext("update_remote_state");
    r.lease_owner = *owner;
    return ConcertoRequest{std::move(r)};
  }
  if (op == "push_telemetry") {
    auto r = DecodePushTelemetry(j);
    if (!r.ok()) return r.status();
    return ConcertoRequest{std::move(*r)};
  }
  return InvalidArgumentError("unknown Concerto queue operation \"" + op + "\"");
}

std::string EncodeCesRequest(const CesRequest& request) {
  json j = std::visit(Overloaded{
                          [](const MetadataRequest& r) {
                            return json{{"op", "get_metadata"}, {"remote_id", r.remote_id}};
                          },
                          [](const StatusRequest& r) {
                            return json{{"op", "get_status"}, {"remote_ids", r.remote_ids}};
                          },
                      },
                      request);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<CesRequest> DecodeCesRequest(std::string_view body) {
  auto parsed = ParseObject(body);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  const std::string op = j["op"];
  if (op == "get_metadata") {
    auto id = RequiredString(j, "remote_id");
    if (!id.ok()) return id.status();
    return CesRequest{MetadataRequest{*id}};
  }
  if (op == "get_status") {
    auto ids = j.find("remote_ids");
    if (ids == j.end() || !ids->is_array() || ids->empty()) {
      return InvalidArgumentError("get_status: no \"remote_ids\" array");
    }
    StatusRequest r;
    for (const auto& id : *ids) {
      if (!id.is_string()) return InvalidArgumentError("get_status: a remote id is not a string");
      r.remote_ids.push_back(id.get<std::string>());
    }
    return CesRequest{std::move(r)};
  }
  return InvalidArgumentError("unknown CES queue operation \"" + op + "\"");
}

std::string_view OperationName(const ConcertoRequest& request) {
  return std::visit(Overloaded{
                        [](const ListAssetsRequest&) { return std::string_view("list_assets"); },
                        [](const CommissionRequest&) { return std::string_view("commission"); },
                        [](const RemoteStateRequest&) { return std::string_view("update_remote_state"); },
                        [](const PushTelemetryRequest&) { return std::string_view("push_telemetry"); },
                    },
                    request);
}

std::string_view OperationName(const CesRequest& request) {
  return std::visit(Overloaded{
                        [](const MetadataRequest&) { return std::string_view("get_metadata"); },
                        [](const StatusRequest&) { return std::string_view("get_status"); },
                    },
                    request);
}

}  // namespace pwrcell::processes
