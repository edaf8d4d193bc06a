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
// it has "caught up" after a start.
struct SourceProgress {
  // Stream lag: now minus the arrival time of the newest record processed (Kinesis'
  // MillisBehindLatest). Unset for a push source (HTTP ingest, replay): it cannot see what its
  // senders still hold, so an empty ingest queue proves nothing (SPEC section 4).
  std::optional<Duration> stream_lag;
};

// True when the source reports a lag under one record interval. A source that reports no lag
// is never caught up (its grace lasts offline_timeout from start).
bool SourceCaughtUp(const SourceProgress& progress, Duration record_interval);

struct LivenessContext {
  Timestamp now;
  Duration offline_timeout = std::chrono::seconds(900);
  Timestamp started_at;  // when the adapter last started (the startup-grace watermark)
  // The source has been caught up at least once since started_at (latched in the store).
  bool source_caught_up = false;
};

// Startup grace: until the source has caught up or offline_timeout has passed since start
// (whichever comes first), no system is moved to OFFLINE.
bool InStartupGrace(const LivenessContext& context);

struct StateDecision {
  RemoteState state = RemoteState::kOffline;
  std::string reason;  // for operators: "no telemetry for 960 s", "CES status DISCONNECTED"
  // A stable key of the cause ("silent:<last heard ms>", "ces:DISCONNECTED", ...): the reason's
  // wording may carry a figure measured at the time (seconds of silence); the cause does not
  // change while the cause itself stays.
  std::string cause;
  bool operator==(const StateDecision&) const = default;
};

// The rule, in order: (1) never heard or now - last_heard_at > offline_timeout -> OFFLINE;
// (2) system_status known and not SUCCESS -> ERROR (simulated systems count as SUCCESS);
// (3) any inverter's state in 0x7000..0x7FFF (DeviceRecord::SystemReading) -> ERROR; (4) otherwise
// ONLINE. Ignores startup grace.
StateDecision EvaluateRemoteState(const DeviceRecord& device, const LivenessContext& context);

// What one evaluation of a stored system does (the liveness sweep, a CES status answer).
struct RemoteStateStep {
  // Write decision.state as evaluated_state and its reason/cause (since = now) to the record:
  // the state or the cause changed.
  bool record = false;
  // Queue an update_remote_state: the wanted state (the decision, or the evaluation held over a
  // startup grace) differs from the last state Concerto accepted (device.remote_state).
  bool send = false;
  StateDecision decision;
};

// The rule applied to a stored record. An OFFLINE evaluation during the startup grace is held
// back: the record keeps its previous evaluation (nothing recorded), and only a previous
// evaluation Concerto has not accepted yet is sent. A system never evaluated is not sent
// OFFLINE during the grace either.
RemoteStateStep PlanRemoteState(const DeviceRecord& device, const LivenessContext& context);

// True when PlanRemoteState(device, context) is neither `record` nor `send` for every context whose
// offline cutoff (now - offline_timeout) is `offline_cutoff`, in or out of the startup grace: the
// evaluation Concerto accepted still holds and only a write to the record (or a later cutoff)
// can change that. The liveness sweep evaluates only the records for which it is false, so it
// must not be true of a record whose evaluation could differ (a system shown ONLINE that is not):
// it is false unless evaluated_state == remote_state and either
//   - the system is silent (never heard, or last heard before the cutoff), evaluated OFFLINE for
//     that very silence (its cause), or
//   - it is not silent, evaluated ONLINE ("online"), CES status absent or SUCCESS (or simulated),
//     and no inverter reading in an error state.
// The device store's ListUnsettled gives the records for which it is false (the same rule in SQL).
bool EvaluationSettled(const DeviceRecord& device, Timestamp offline_cutoff);

// A site's state from its systems' states: ONLINE if any is ONLINE, else ERROR if any is
// ERROR, else OFFLINE (also when the site has no system).
StateDecision AggregateSiteState(const std::vector<RemoteState>& system_states);

inline constexpr std::uint32_t kFirstInverterErrorState = 0x7000;
inline constexpr std::uint32_t kLastInverterErrorState = 0x7FFF;
inline bool IsInverterErrorState(std::uint32_t state) {
  return state >= kFirstInverterErrorState && state <= kLastInverterErrorState;
}

}  // namespace pwrcell::domain
