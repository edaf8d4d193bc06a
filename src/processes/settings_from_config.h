// The processes' Settings derived from a deployment's configuration: one pure function, shared by
// every runtime (serve now, Lambda later), so that each runs its handlers with the same settings.
#pragma once

#include "config/config.h"
#include "processes/context.h"

namespace pwrcell::processes {

// Copies the configured values and derives the two throttles from the schedule and the queues:
// - request_repeat_after = 10 registrar polls, clamped to [30 s, 10 min] (get_metadata and
//   commission are not repeated for a system within it);
// - list_assets_expiry = visibility_timeout * (max_receives + 1), clamped to [1 min, 1 h]: a
//   listing still pending after every delivery of its message has had its visibility timeout is
//   lost, and the poller may send another.
Settings SettingsFromConfig(const config::Config& config);

}  // namespace pwrcell::processes
