// ces_state_poller (SPEC 3.7) and ces_state_processor with the liveness sweep (SPEC 3.8).
//
// The poller queues get_status for every registered (non-simulated) system, every time, in
// batches of status_batch_size. The processor stores each system's CES statusName, then
// evaluates remote_state (domain/remote_state.h: one rule, one timeout) for those systems; the
// sweep evaluates every system without calling CES, so a silent system goes OFFLINE within
// offline_timeout + one sweep. The evaluation (evaluated_state, reason, cause, since) is stored
// when it changes; whenever it differs from the state Concerto last accepted (the record's
// remote_state), an update_remote_state request is queued for the SYSTEM asset, its INVERTER(s)
// and SITE_METER and its site: a change, and also a change whose earlier request failed or was
// dead-lettered (the next sweep queues it again once the earlier request's lease expired).
// Thread-safe.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "common/status.h"
#include "domain/ces_types.h"
#include "domain/remote_state.h"
#include "processes/context.h"
#include "processes/process_metrics.h"

namespace pwrcell::processes {

class CesStatePoller {
 public:
  explicit CesStatePoller(Context& context) : context_(context) {}
  // Errors: the store's or the queue's.
  Status Poll();

 private:
  Context& context_;
};

class CesStateProcessor {
 public:
  explicit CesStateProcessor(Context& context);

  // A CES status answer. A system CES does not know counts as status UNKNOWN.
  Status Process(const domain::CesStatusBatch& batch);
  // The liveness sweep: every registered system.
  Status Sweep();

 private:
  // Evaluates the systems in `only` (every system when nullopt): records each evaluation that
  // changed (state or cause) and queues update_remote_state for each system whose evaluation
  // Concerto has not accepted yet (one queued request per system at a time).
  Status EvaluateAndPublish(const std::optional<std::set<std::string>>& only);
  // The rule's inputs now, with the startup-grace watermark read from the store (and its
  // caught-up latch set when the source reports it has caught up).
  Result<domain::LivenessContext> Liveness();

  Context& context_;
  CesStateMetrics metrics_;
};

}  // namespace pwrcell::processes
