#include "processes/shared_state.h"

#include <unistd.h>

#include <atomic>
#include <functional>
#include <random>

#include <nlohmann/json.hpp>

namespace pwrcell::processes {
namespace {

using nlohmann::json;
constexpr const char* kStartupKey = "liveness/startup";
constexpr int kCasAttempts = 16;

std::optional<std::int64_t> ParseInt(const std::string& text) {
  try {
    std::size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used != text.size()) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

// Read-modify-write of one value by compare-and-set. `change` gets the current value (nullopt:
// none) and returns the value to write, or nullopt to write nothing.
Status UpdateValue(ports::Coordination& coordination, const std::string& key,
                   const std::function<std::optional<std::string>(const std::optional<std::string>&)>& change) {
  for (int attempt = 0; attempt < kCasAttempts; ++attempt) {
    auto current = coordination.GetValue(key);
    if (!current.ok()) return current.status();
    std::optional<std::string> before;
    std::int64_t version = 0;
    if (current->has_value()) {
      before = (*current)->value;
      version = (*current)->version;
    }
    auto wanted = change(before);
    if (!wanted) return Status::Ok();
    auto put = coordination.PutValue(key, *wanted, version);
    if (put.ok()) return Status::Ok();
    if (put.status().code() != StatusCode::kAborted) return put.status();
  }
  return AbortedError("coordination value " + key + " keeps changing under concurrent writers");
}

}  // namespace

std::string SystemKeyPrefix(const std::string& remote_id) {
  return "system/" + remote_id + "/";
}
std::string SystemKey(const std::string& remote_id, const char* what) {
  return SystemKeyPrefix(remote_id) + what;
}

std::string NewOwnerToken() {
  static const std::string process = [] {
    char host[64] = {0};
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    std::random_device random;
    return std::string(host) + "-" + std::to_string(getpid()) + "-" + std::to_string(random());
  }();
  static std::atomic<std::uint64_t> counter{0};
  return process + "-" + std::to_string(++counter);
}

Status NoteCommissioningWrite(ports::Coordination& coordination, const std::string& remote_id, Timestamp at) {
  const std::int64_t ms = ToUnixMillis(at);
  return UpdateValue(coordination, SystemKey(remote_id, "commissioning_write"),
                     [ms](const std::optional<std::string>& before) -> std::optional<std::string> {
                       if (before) {
                         auto previous = ParseInt(*before);
                         if (previous && *previous >= ms) return std::nullopt;
                       }
                       return std::to_string(ms);
                     });
}

Result<bool> CommissioningWroteSince(ports::Coordination& coordination, const std::string& remote_id, Timestamp since) {
  auto value = coordination.GetValue(SystemKey(remote_id, "commissioning_write"));
  if (!value.ok()) return value.status();
  if (!value->has_value()) return false;
  auto ms = ParseInt((*value)->value);
  return ms && *ms >= ToUnixMillis(since);
}

Status MarkAdapterStarted(ports::Coordination& coordination, Timestamp now) {
  const std::string value = json{{"started_at_ms", ToUnixMillis(now)}, {"caught_up", false}}.dump();
  return UpdateValue(coordination, kStartupKey,
                     [&](const std::optional<std::string>&) -> std::optional<std::string> { return value; });
}

Result<std::optional<StartupWatermark>> ReadStartupWatermark(ports::Coordination& coordination) {
  auto value = coordination.GetValue(kStartupKey);
  if (!value.ok()) return value.status();
  if (!value->has_value()) return std::optional<StartupWatermark>();
  const auto j = json::parse((*value)->value, nullptr, false);
  if (!j.is_object() || !j.contains("started_at_ms") || !j["started_at_ms"].is_number_integer()) {
    return InternalError("the startup-grace watermark in the store is malformed");
  }
  StartupWatermark watermark;
  watermark.started_at = FromUnixMillis(j["started_at_ms"].get<std::int64_t>());
  watermark.caught_up = j.value("caught_up", false);
  return std::optional<StartupWatermark>(watermark);
}

Status MarkSourceCaughtUp(ports::Coordination& coordination) {
  return UpdateValue(coordination, kStartupKey,
                     [](const std::optional<std::string>& before) -> std::optional<std::string> {
                       if (!before) return std::nullopt;  // no start recorded: nothing to end
                       auto j = json::parse(*before, nullptr, false);
                       if (!j.is_object() || j.value("caught_up", false)) return std::nullopt;
                       j["caught_up"] = true;
                       return j.dump();
                     });
}

std::string AcceptedStateKey(bool site, const std::string& id) {
  return std::string(site ? "remote_state/site/" : "remote_state/asset/") + id;
}

std::string EncodeAcceptedState(const AcceptedState& state) {
  json j = json::object();
  if (state.accepted) j["accepted"] = std::string(domain::RemoteStateName(*state.accepted));
  if (state.claim_state && state.claim_until) {
    j["claim"] = {{"owner", state.claim_owner},
                  {"state", std::string(domain::RemoteStateName(*state.claim_state))},
                  {"until_ms", ToUnixMillis(*state.claim_until)}};
  }
  return j.dump();
}

AcceptedState DecodeAcceptedState(const std::string& value) {
  AcceptedState state;
  const auto j = json::parse(value, nullptr, false);
  if (!j.is_object()) return state;
  if (j.contains("accepted") && j["accepted"].is_string()) {
    state.accepted = domain::ParseRemoteState(j["accepted"].get<std::string>());
  }
  if (j.contains("claim") && j["claim"].is_object()) {
    const auto& c = j["claim"];
    if (c.contains("owner") && c["owner"].is_string()) state.claim_owner = c["owner"].get<std::string>();
    if (c.contains("state") && c["state"].is_string())
      state.claim_state = domain::ParseRemoteState(c["state"].get<std::string>());
    if (c.contains("until_ms") && c["until_ms"].is_number_integer()) {
      state.claim_until = FromUnixMillis(c["until_ms"].get<std::int64_t>());
    }
  }
  return state;
}

}  // namespace pwrcell::processes
