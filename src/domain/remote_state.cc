#include "domain/remote_state.h"

#include <cstdio>

namespace pwrcell::domain {
namespace {

std::string HexState(std::uint32_t state) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%04X", state);
  return buf;
}

long long WholeSeconds(Duration d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

}  // namespace

bool SourceCaughtUp(const SourceProgress& progress, Duration record_interval) {
  return progress.stream_lag && *progress.stream_lag < record_interval;
}

bool InStartupGrace(const LivenessContext& context) {
  if (context.source_caught_up) return false;
  return context.now - context.started_at < context.offline_timeout;
}

StateDecision EvaluateRemoteState(const DeviceRecord& device, const LivenessContext& context) {
  if (!device.last_heard_at) return {RemoteState::kOffline, "no telemetry received yet", "never_heard"};
  const Duration silence = context.now - *device.last_heard_at;
  if (silence > context.offline_timeout) {
    return {RemoteState::kOffline,
            "no telemetry for " + std::to_string(WholeSeconds(silence)) + " s (last heard " +
                FormatIso8601(*device.last_heard_at) + ")",
            "silent:" + std::to_string(ToUnixMillis(*device.last_heard_at))};
  }
  if (!device.is_simulated && device.system_status && *device.system_status != kCesStatusSuccess) {
    return {RemoteState::kError, "CES status " + *device.system_status, "ces:" + *device.system_status};
  }
  if (const InverterReading* reading = device.SystemReading(); reading && IsInverterErrorState(reading->state)) {
    const std::string hex = HexState(reading->state);
    // With several inverters the reason names the one in error.
    const std::string which = device.inverter_rcpns.size() > 1 ? "inverter " + reading->rcpn : "inverter";
    return {RemoteState::kError, which + " state " + hex, "inverter:" + hex};
  }
  return {RemoteState::kOnline, "telemetry current", "online"};
}

RemoteStateStep PlanRemoteState(const DeviceRecord& device, const LivenessContext& context) {
  RemoteStateStep step;
  step.decision = EvaluateRemoteState(device, context);
  if (step.decision.state == RemoteState::kOffline && InStartupGrace(context) &&
      device.evaluated_state != RemoteState::kOffline) {
    // Held back: keep the previous evaluation; send it only if Concerto has not accepted it yet.
    step.send = device.evaluated_state && device.evaluated_state != device.remote_state;
    step.decision = {device.evaluated_state.value_or(RemoteState::kOffline), device.remote_state_reason,
                     device.remote_state_cause};
    return step;
  }
  step.record = device.evaluated_state != step.decision.state || device.remote_state_cause != step.decision.cause;
  step.send = device.remote_state != step.decision.state;
  return step;
}

bool EvaluationSettled(const DeviceRecord& device, Timestamp offline_cutoff) {
  // The rule reads the time only through "last heard before the cutoff" (and the wording of a
  // reason, which is not compared); out of the grace is the stricter case (the grace only holds
  // back an OFFLINE evaluation that differs from the recorded one, which is not settled anyway).
  const Duration timeout = std::chrono::seconds(900);
  const LivenessContext context{offline_cutoff + timeout, timeout, offline_cutoff - timeout, /*source_caught_up=*/true};
  const RemoteStateStep step = PlanRemoteState(device, context);
  return !step.record && !step.send;
}

StateDecision AggregateSiteState(const std::vector<RemoteState>& system_states) {
  std::size_t online = 0, error = 0;
  for (RemoteState s : system_states) {
    if (s == RemoteState::kOnline) ++online;
    if (s == RemoteState::kError) ++error;
  }
  const std::string total = std::to_string(system_states.size());
  if (system_states.empty()) return {RemoteState::kOffline, "no system on the site", "site:empty"};
  if (online > 0) {
    return {RemoteState::kOnline, std::to_string(online) + " of " + total + " systems ONLINE", "site:online"};
  }
  if (error > 0) {
    return {RemoteState::kError, "no system ONLINE; " + std::to_string(error) + " of " + total + " in ERROR",
            "site:error"};
  }
  return {RemoteState::kOffline, "all " + total + " systems OFFLINE", "site:offline"};
}

}  // namespace pwrcell::domain
