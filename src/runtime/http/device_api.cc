#include "runtime/http/device_api.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <optional>

#include <nlohmann/json.hpp>

#include "domain/concerto_types.h"
#include "domain/device_json.h"

namespace pwrcell::runtime::http {
namespace {

using nlohmann::json;

json DeviceJson(const domain::DeviceRecord& record) {
  json j = domain::ToJson(record);
  j["kind"] = record.is_simulated ? "simulated" : "real";
  return j;
}

ApiReply Error(int status, const std::string& message) {
  return {status, json{{"error", message}}.dump()};
}

const std::string* Param(const std::map<std::string, std::string>& params, const std::string& name) {
  auto it = params.find(name);
  return it == params.end() ? nullptr : &it->second;
}

Result<ports::DeviceFilter> ParseFilter(const std::map<std::string, std::string>& params) {
  ports::DeviceFilter filter;
  if (const std::string* value = Param(params, "remote_state")) {
    filter.remote_state = domain::ParseRemoteState(*value);
    if (!filter.remote_state) {
      return InvalidArgumentError("remote_state must be ONLINE, OFFLINE or ERROR, not \"" + *value + "\"");
    }
  }
  if (const std::string* value = Param(params, "simulated")) {
    if (*value == "true") {
      filter.is_simulated = true;
    } else if (*value == "false") {
      filter.is_simulated = false;
    } else {
      return InvalidArgumentError("simulated must be true or false, not \"" + *value + "\"");
    }
  }
  return filter;
}

Result<std::size_t> ParseLimit(const std::map<std::string, std::string>& params) {
  const std::string* value = Param(params, "limit");
  if (!value) return kDefaultDevicePage;
  std::size_t limit = 0;
  const char* end = value->data() + value->size();
  auto [ptr, ec] = std::from_chars(value->data(), end, limit);
  if (ec != std::errc() || ptr != end || limit < 1 || limit > kMaxDevicePage) {
    return InvalidArgumentError("limit must be a whole number from 1 to " + std::to_string(kMaxDevicePage) +
                                ", not \"" + *value + "\"");
  }
  return limit;
}

}  // namespace

ApiReply ListDevices(ports::DeviceStore& devices, const std::map<std::string, std::string>& params) {
  auto filter = ParseFilter(params);
  if (!filter.ok()) return Error(400, filter.status().message());
  auto limit = ParseLimit(params);
  if (!limit.ok()) return Error(400, limit.status().message());
  const std::string* after = Param(params, "after");
  // One more than the page, to tell whether another page follows.
  auto page = devices.ListPage(*filter, after ? *after : std::string(), *limit + 1);
  if (!page.ok()) {
    spdlog::warn("admin: listing devices failed: {}", page.status().ToString());
    return Error(503, page.status().ToString());
  }
  auto count = devices.Count(*filter);
  if (!count.ok()) {
    spdlog::warn("admin: counting devices failed: {}", count.status().ToString());
    return Error(503, count.status().ToString());
  }
  json next = nullptr;
  if (page->size() > *limit) {
    page->resize(*limit);
    next = page->back().remote_id;
  }
  json listed = json::array();
  for (const auto& record : *page) listed.push_back(DeviceJson(record));
  json body{{"count", *count}, {"devices", std::move(listed)}, {"next", std::move(next)}};
  if (const std::string* totals = Param(params, "totals"); totals && *totals == "true") {
    // The whole fleet's counts (DeviceStore::Tally, a GROUP BY), whatever the filter and page.
    auto tally = devices.Tally();
    if (!tally.ok()) {
      spdlog::warn("admin: counting devices failed: {}", tally.status().ToString());
      return Error(503, tally.status().ToString());
    }
    json by_state = json::object(), by_commissioning = json::object();
    for (const auto& t : *tally) {
      const std::string state = t.remote_state ? std::string(domain::RemoteStateName(*t.remote_state)) : "NONE";
      by_state[state] = by_state.value(state, std::int64_t{0}) + t.count;
      const std::string commissioning(domain::CommissioningStateName(t.commissioning));
      by_commissioning[commissioning] = by_commissioning.value(commissioning, std::int64_t{0}) + t.count;
    }
    body["totals"] = json{{"remote_state", std::move(by_state)}, {"commissioning", std::move(by_commissioning)}};
  }
  return {200, body.dump()};
}

ApiReply GetDevice(ports::DeviceStore& devices, const std::string& remote_id) {
  auto record = devices.Get(remote_id);
  if (!record.ok()) {
    spdlog::warn("admin: reading device {} failed: {}", remote_id, record.status().ToString());
    return Error(503, record.status().ToString());
  }
  if (!record->has_value()) return Error(404, "no device with remote_id " + remote_id);
  return {200, DeviceJson(**record).dump()};
}

}  // namespace pwrcell::runtime::http
