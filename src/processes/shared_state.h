// The state the processes share between invocations, over the Coordination port: one place that
// names every key, so that the key spaces cannot collide and a deregistered system's state can
// be removed as a whole. Nothing here is kept in memory: two serve instances (or Lambda
// functions) on one store see the same values.
//
// Keys:
//   lease    registrar/listing                   one list_assets request at a time (owner: the token
//                                                carried by the queued request)
//   lease    system/<remote_id>/commission       one commissioning run of a system at a time
//   lease    system/<remote_id>/remote_state     an update_remote_state request is queued (owner:
//                                                its token); the sweep does not queue another
//   throttle registrar/poll                     the last registrar poll (of any process)
//   throttle system/<remote_id>/metadata         get_metadata requested at
//   throttle system/<remote_id>/commission       commission requested at
//   value    system/<remote_id>/commissioning_write   unix ms of the latest commissioning write
//   value    remote_state/asset/<asset_id>       the state Concerto last accepted for an asset
//   value    remote_state/site/<site_id>         ... for a site
//   value    liveness/startup                    the startup-grace watermark
#pragma once

#include <optional>
#include <string>

#include "common/status.h"
#include "common/time.h"
#include "domain/remote_state.h"
#include "ports/coordination.h"

namespace pwrcell::processes {

inline constexpr const char* kListingLease = "registrar/listing";
inline constexpr const char* kPollThrottle = "registrar/poll";

// The prefix of every key of one system ("system/<remote_id>/").
std::string SystemKeyPrefix(const std::string& remote_id);
// SystemKeyPrefix(remote_id) + what ("metadata", "commission", ...).
std::string SystemKey(const std::string& remote_id, const char* what);

// A lease owner unique across processes and invocations: "<host>-<pid>-<random>-<counter>".
std::string NewOwnerToken();

// --- Commissioning-write notes -----------------------------------------------------------------
// Commissioning records the Concerto assets it finds or creates on the device record. An asset
// list whose listing began before such a write may not show them yet, so the registrar keeps the
// record's component assets when CommissioningWroteSince(listing start). The note is written
// before the device write, so a registrar that sees the write sees the note too.
Status NoteCommissioningWrite(ports::Coordination& coordination, const std::string& remote_id, Timestamp at);
Result<bool> CommissioningWroteSince(ports::Coordination& coordination, const std::string& remote_id, Timestamp since);

// --- Startup grace -----------------------------------------------------------------------------
struct StartupWatermark {
  Timestamp started_at;
  bool caught_up = false;
};
// Records that an adapter process started at `now` (the grace starts again: a restarted instance
// may have missed records its senders still hold).
Status MarkAdapterStarted(ports::Coordination& coordination, Timestamp now);
// The watermark; nullopt when no adapter process ever marked a start (then there is no grace).
Result<std::optional<StartupWatermark>> ReadStartupWatermark(ports::Coordination& coordination);
// Latches caught_up (once the source has caught up, it stays so until the next start).
Status MarkSourceCaughtUp(ports::Coordination& coordination);

// --- The remote_state Concerto accepted ------------------------------------------------------
// Per target (an asset id or a site id): the state last accepted and, while a worker sends one, a
// claim (owner, state, until) so that two workers (in any process) finding the same state send
// it once. Stored as one versioned value per target.
struct AcceptedState {
  std::optional<domain::RemoteState> accepted;
  std::string claim_owner;
  std::optional<domain::RemoteState> claim_state;
  std::optional<Timestamp> claim_until;
};
std::string AcceptedStateKey(bool site, const std::string& id);
std::string EncodeAcceptedState(const AcceptedState& state);
AcceptedState DecodeAcceptedState(const std::string& value);  // lenient: garbage -> empty

}  // namespace pwrcell::processes
