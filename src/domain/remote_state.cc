#include "domain/remote_state.h"

#include <cstdio>

namespace pwrcell::domain {
namespace {

std::string HexState(std::uint32_t state) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%04X", state);
  return buf;
}

long long WholeSeconds(Duration d) { return std::chrono::duration_cast<std::chrono::seconds>(d).count(); }

}  // namespace

bool SourceCaughtUp(const SourceProgress& progress, Duration record_interval) {
  if (progress.stream_lag && *progress.stream_lag < record_interval) return true;
  if (progress.ingest_backlog && *progress.ingest_backlog == 0) return true;
  return false;
}

bool InStartupGrace(const LivenessContext& context) {
  if (context.source_caught_up) return false;
  return context.now - context.started_at < context.offline_timeout;
}

StateDecision EvaluateRemoteState(const DeviceRecord& device, const LivenessContext& context) {
  if (!device.last_heard_at) return {RemoteState::kOffline, "no telemetry received yet"};
  const Duration silence = context.now - *device.last_heard_at;
  if (silence > context.offline_timeout) {
    return {RemoteState::kOffline, "no telemetry for " + std::to_string(WholeSeconds(silence)) + " s"};
  }
  if (!device.is_simulated && device.system_status && *device.system_status != kCesStatusSuccess) {
    return {RemoteState::kError, "CES status " + *device.system_status};
  }
  if (device.inverter_state && IsInverterErrorState(*device.inverter_state)) {
    return {RemoteState::kError, "inverter state " + HexState(*device.inverter_state)};
  }
  // A record stamped ahead of our clock (clock skew) counts as just heard.
  const long long ago = silence.count() < 0 ? 0 : WholeSeconds(silence);
  return {RemoteState::kOnline, "telemetry received " + std::to_string(ago) + " s ago"};
}

std::optional<StateDecision> RemoteStateChange(const DeviceRecord& device, const LivenessContext& context) {
  StateDecision decision = EvaluateRemoteState(device, context);
  if (device.remote_state == decision.state) return std::nullopt;
  if (decision.state == RemoteState::kOffline && InStartupGrace(context)) return std::nullopt;
  return decision;
}

StateDecision AggregateSiteState(const std::vector<RemoteState>& system_states) {
  std::size_t online = 0, error = 0;
  for (RemoteState s : system_states) {
    if (s == RemoteState::kOnline) ++online;
    if (s == RemoteState::kError) ++error;
  }
  const std::string total = std::to_string(system_states.size());
  if (system_states.empty()) return {RemoteState::kOffline, "no system on the site"};
  if (online > 0) return {RemoteState::kOnline, std::to_string(online) + " of " + total + " systems ONLINE"};
  if (error > 0) return {RemoteState::kError, "no system ONLINE; " + std::to_string(error) + " of " + total + " in ERROR"};
  return {RemoteState::kOffline, "all " + total + " systems OFFLINE"};
}

}  // namespace pwrcell::domain
