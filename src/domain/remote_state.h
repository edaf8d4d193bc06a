// The remote_state rule (SPEC section 4): one rule, one timeout, evaluated in one place.
// Pure functions: the time, the timeout and the telemetry source's progress are inputs, so
// the rule is tested with a fake clock and no sleeps.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "common/time.h"
#include "domain/device.h"

namespace pwrcell::domain {

// How far the telemetry source has got with its backlog: the watermark that decides whether
// it has "caught up" after a start. Either measure may be unknown.
struct SourceProgress {
  // Stream lag: now minus the arrival time of the newest record processed (Kinesis'
  // MillisBehindLatest, or the age of the oldest unprocessed record of a replay).
  std::optional<Duration> stream_lag;
  // Records accepted but not yet processed (the ingest queue of `serve`).
  std::optional<std::size_t> ingest_backlog;
};

// True when the backlog is drained: stream lag under one record interval, or the ingest
// queue empty. Unknown on both counts is not caught up.
bool SourceCaughtUp(const SourceProgress& progress, Duration record_interval);

struct LivenessContext {
  Timestamp now;
  Duration offline_timeout = std::chrono::seconds(900);
  Timestamp started_at;  // when the adapter (this process) started
  // Latched by the runtime: the source has been caught up at least once since started_at.
  bool source_caught_up = false;
};

// Startup grace: until the source has caught up or offline_timeout has passed since start
// (whichever comes first), no system is moved to OFFLINE.
bool InStartupGrace(const LivenessContext& context);

struct StateDecision {
  RemoteState state = RemoteState::kOffline;
  std::string reason;  // for operators: "no telemetry for 960 s", "CES status DISCONNECTED"
  bool operator==(const StateDecision&) const = default;
};

// The rule, in order: (1) never heard or now - last_heard_at > offline_timeout -> OFFLINE;
// (2) system_status known and not SUCCESS -> ERROR (simulated systems count as SUCCESS);
// (3) inverter_state in 0x7000..0x7FFF -> ERROR; (4) otherwise ONLINE. Ignores startup grace.
StateDecision EvaluateRemoteState(const DeviceRecord& device, const LivenessContext& context);

// The change to send to Concerto for this system, or nullopt when there is none: the rule's
// state equals device.remote_state, or it is OFFLINE while the startup grace holds it back.
std::optional<StateDecision> RemoteStateChange(const DeviceRecord& device, const LivenessContext& context);

// A site's state from its systems' states: ONLINE if any is ONLINE, else ERROR if any is
// ERROR, else OFFLINE (also when the site has no system).
StateDecision AggregateSiteState(const std::vector<RemoteState>& system_states);

inline constexpr std::uint32_t kFirstInverterErrorState = 0x7000;
inline constexpr std::uint32_t kLastInverterErrorState = 0x7FFF;
inline bool IsInverterErrorState(std::uint32_t state) {
  return state >= kFirstInverterErrorState && state <= kLastInverterErrorState;
}

}  // namespace pwrcell::domain
