// The commissioning plan (SPEC section 6): which Concerto structure a system still lacks, as an
// ordered list of steps. Pure: it reads a DeviceRecord and writes nothing; executing the steps is
// a later process's job (the executor), which talks to Concerto through the Concerto queue.
//
// Executor contract, per step (this is what makes a crash or a retry at any step harmless):
//   1. look the thing up by remoteId first (siteByRemoteId / assetByRemoteId), and use it if found;
//   2. otherwise create it;
//   3. treat CONFLICT (kAlreadyExists) as "already there": fetch it by remoteId and use that.
// Steps refer to ids that earlier steps produce symbolically (ParentRef / SiteTarget), so a plan
// can be made before any of them exists; ResolveStep fills them in once the executor knows them.
//
// Thread-safety: free functions over values; safe to call from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "domain/concerto_types.h"
#include "domain/device.h"

namespace pwrcell::domain {

enum class CommissioningStepKind {
  kEnsureSite,
  kEnsureInverter,
  kEnsureBattery,
  kEnsurePhotovoltaic,
  kEnsureSiteMeter,
  kAttachSystemToSite,
};

std::string_view CommissioningStepKindName(CommissioningStepKind kind);  // "ENSURE_SITE", ...

// Which asset a created asset hangs under.
enum class ParentRef {
  kNone,
  kSystem,    // the SYSTEM asset (DeviceRecord::concerto_asset_id)
  kInverter,  // the first inverter (CES order): the record's, or the one its EnsureInverter step produces
};

// Which site an asset is placed on.
enum class SiteTarget {
  kNone,
  kSystemSite,  // the site the SYSTEM sits on, or the one the plan's EnsureSite step produces
};

struct CommissioningStep {
  CommissioningStepKind kind = CommissioningStepKind::kEnsureSite;
  // kEnsureSite only.
  std::optional<CreateSiteRequest> site;
  // kEnsureInverter / kEnsureBattery / kEnsurePhotovoltaic / kEnsureSiteMeter. parent_id and
  // site_id stay unset here; `parent` and `site_target` say where they come from.
  std::optional<CreateAssetRequest> asset;
  // kAttachSystemToSite only: id = the SYSTEM asset, site_id unset (site_target says which).
  std::optional<UpdateAssetRequest> update;
  ParentRef parent = ParentRef::kNone;
  SiteTarget site_target = SiteTarget::kNone;
  // kEnsureInverter of the system's first inverter (CES order): the asset it produces is the
  // parent of the batteries and PV links (ResolvedIds::inverter_asset_id).
  bool first_inverter = false;
  // For logs and the device record: "create INVERTER 000100073534 under system <remoteId>".
  std::string description;
  bool operator==(const CommissioningStep&) const = default;
};

// The steps still to do for `record`, in execution order: EnsureSite, one EnsureInverter per CES
// inverter (CES order; each with its own rating, the system's coupling, under the SYSTEM and on
// the site), one EnsureBattery per CES battery, one EnsurePhotovoltaic per PV link (both under
// the first inverter: CES lists them per system, not per inverter), EnsureSiteMeter (when CES
// reports a meter), AttachSystemToSite. A step whose result the record already knows (an asset
// with the same remoteId, or a site under the SYSTEM) is left out, so a complete system yields an
// empty plan and a re-plan after a partial run yields only the rest.
// Every created asset carries `adapter_name` and the SYSTEM's simulated flag.
// Errors (all kFailedPrecondition: re-planning cannot help until the record changes):
//   no CES metadata yet; no inverter in the metadata; no concerto_asset_id; a site is needed but
//   CES gave no siteId.
Result<std::vector<CommissioningStep>> PlanCommissioning(const DeviceRecord& record, std::string_view adapter_name);

// True when the record has CES metadata and Concerto lacks part of the structure the plan would
// ensure: the site (or the SYSTEM is not on one), an inverter, a battery, a PV link or the site
// meter. Cheap enough for the registrar to call on every record of every sweep.
bool NeedsCommissioning(const DeviceRecord& record);

// The ids the executor has learnt so far, to resolve a step's symbolic references.
struct ResolvedIds {
  std::string system_asset_id;
  std::optional<std::string> site_id;
  std::optional<std::string> inverter_asset_id;  // the first inverter's (see ParentRef::kInverter)
  bool operator==(const ResolvedIds&) const = default;
};

// `step` with parent_id / site_id (or the update's site_id) filled from `ids`.
// Errors: kFailedPrecondition when the step needs an id that `ids` lacks (the executor ran the
// steps out of order or skipped one).
Result<CommissioningStep> ResolveStep(const CommissioningStep& step, const ResolvedIds& ids);

}  // namespace pwrcell::domain
