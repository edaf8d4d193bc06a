#include "domain/commissioning_plan.h"

#include <algorithm>
#include <utility>

namespace pwrcell::domain {
namespace {

// CES reports 0 when it does not know a rating; telling Concerto "0 kW" would be a false
// nameplate that dispatch trusts, so an unknown rating is left unset.
std::optional<double> KiloFromUnit(double value) {
  if (value > 0) return value / 1000.0;
  return std::nullopt;
}

// An unknown coupling is not a DC coupling: leave acCoupled unset rather than state a guess.
std::optional<bool> AcCoupled(Coupling coupling) {
  switch (coupling) {
    case Coupling::kAc:
      return true;
    case Coupling::kDc:
      return false;
    case Coupling::kUnknown:
      return std::nullopt;
  }
  return std::nullopt;
}

bool Knows(const std::vector<AssetRef>& known, const std::string& remote_id) {
  return std::any_of(known.begin(), known.end(), [&](const AssetRef& ref) { return ref.remote_id == remote_id; });
}

bool Knows(const std::optional<AssetRef>& known, const std::string& remote_id) {
  return known.has_value() && known->remote_id == remote_id;
}

// How operators recognise the site in a log line: its remoteId, else its Concerto id (a site an
// operator made by hand may have no remoteId).
std::string SiteLabel(const DeviceRecord& record) {
  if (!record.site) return record.metadata->site_id;
  return record.site->remote_id.empty() ? record.site->site_id : record.site->remote_id;
}

CreateAssetRequest AssetRequest(const DeviceRecord& record, std::string_view adapter_name, AssetType type,
                                std::string remote_id, std::string name) {
  CreateAssetRequest request;
  request.remote_id = std::move(remote_id);
  request.name = std::move(name);
  request.asset_type = type;
  request.adapter_name = std::string(adapter_name);
  request.simulated = record.is_simulated;
  return request;
}

CommissioningStep AssetStep(CommissioningStepKind kind, CreateAssetRequest request, ParentRef parent,
                            SiteTarget site_target, std::string description) {
  CommissioningStep step;
  step.kind = kind;
  step.asset = std::move(request);
  step.parent = parent;
  step.site_target = site_target;
  step.description = std::move(description);
  return step;
}

}  // namespace

std::string_view CommissioningStepKindName(CommissioningStepKind kind) {
  switch (kind) {
    case CommissioningStepKind::kEnsureSite:
      return "ENSURE_SITE";
    case CommissioningStepKind::kEnsureInverter:
      return "ENSURE_INVERTER";
    case CommissioningStepKind::kEnsureBattery:
      return "ENSURE_BATTERY";
    case CommissioningStepKind::kEnsurePhotovoltaic:
      return "ENSURE_PHOTOVOLTAIC";
    case CommissioningStepKind::kEnsureSiteMeter:
      return "ENSURE_SITE_METER";
    case CommissioningStepKind::kAttachSystemToSite:
      return "ATTACH_SYSTEM_TO_SITE";
  }
  return "UNKNOWN";
}

Result<std::vector<CommissioningStep>> PlanCommissioning(const DeviceRecord& record, std::string_view adapter_name) {
  if (!record.metadata) return FailedPreconditionError("no CES metadata yet");
  if (record.metadata->inverters.empty()) {
    return FailedPreconditionError("CES metadata of system " + record.remote_id + " lists no inverter");
  }
  if (record.concerto_asset_id.empty()) {
    return FailedPreconditionError("system " + record.remote_id + " has no Concerto asset id");
  }
  const SystemMetadata& metadata = *record.metadata;
  const std::string& system_name = record.name;
  std::vector<CommissioningStep> steps;

  // A SYSTEM that Concerto already shows on a site stays there, even when that site is not the
  // CES one: an operator put it there, and moving systems between sites is theirs to decide.
  const bool needs_site = !record.site.has_value();
  if (needs_site) {
    if (metadata.site_id.empty()) {
      return FailedPreconditionError("CES metadata of system " + record.remote_id + " has no siteId");
    }
    CommissioningStep step;
    step.kind = CommissioningStepKind::kEnsureSite;
    step.site = CreateSiteRequest{
        .remote_id = metadata.site_id,
        .name = metadata.site_name.empty() ? system_name : metadata.site_name,
        .timezone = metadata.timezone,
        .latitude = metadata.latitude,
        .longitude = metadata.longitude,
    };
    step.description = "create site " + metadata.site_id + " \"" + step.site->name + "\"";
    steps.push_back(std::move(step));
  }

  const std::string site_label = SiteLabel(record);
  // Batteries and PV links go under the first inverter (CES lists them per system).
  const CesInverter& first = metadata.inverters.front();
  const bool several = metadata.inverters.size() > 1;
  for (const CesInverter& inverter : metadata.inverters) {
    if (Knows(record.inverters, inverter.rcpn)) continue;
    CreateAssetRequest request = AssetRequest(record, adapter_name, AssetType::kInverter, inverter.rcpn,
                                              system_name + " inverter" + (several ? " " + inverter.rcpn : ""));
    request.rated_power_kw = KiloFromUnit(inverter.rated_power_w);
    request.ac_coupled = AcCoupled(record.coupling);
    CommissioningStep step = AssetStep(
        CommissioningStepKind::kEnsureInverter, std::move(request), ParentRef::kSystem, SiteTarget::kSystemSite,
        "create INVERTER " + inverter.rcpn + " under system " + record.remote_id + " on site " + site_label);
    step.first_inverter = &inverter == &first;
    steps.push_back(std::move(step));
  }

  for (const CesBattery& battery : metadata.batteries) {
    if (Knows(record.batteries, battery.rcpn)) continue;
    CreateAssetRequest request =
        AssetRequest(record, adapter_name, AssetType::kBattery, battery.rcpn, system_name + " battery " + battery.rcpn);
    request.rated_power_kw = KiloFromUnit(battery.rated_power_w);
    request.energy_capacity_kwh = KiloFromUnit(battery.capacity_wh);
    steps.push_back(AssetStep(CommissioningStepKind::kEnsureBattery, std::move(request), ParentRef::kInverter,
                              SiteTarget::kNone, "create BATTERY " + battery.rcpn + " under inverter " + first.rcpn));
  }

  for (const CesPvLink& pv : metadata.pv_links) {
    if (Knows(record.photovoltaics, pv.rcpn)) continue;
    CreateAssetRequest request =
        AssetRequest(record, adapter_name, AssetType::kPhotovoltaic, pv.rcpn, system_name + " PV " + pv.rcpn);
    request.rated_power_kw = KiloFromUnit(pv.rated_power_w);
    steps.push_back(AssetStep(CommissioningStepKind::kEnsurePhotovoltaic, std::move(request), ParentRef::kInverter,
                              SiteTarget::kNone, "create PHOTOVOLTAIC " + pv.rcpn + " under inverter " + first.rcpn));
  }

  if (metadata.site_meter_id && !Knows(record.site_meter, *metadata.site_meter_id)) {
    CreateAssetRequest request =
        AssetRequest(record, adapter_name, AssetType::kSiteMeter, *metadata.site_meter_id, system_name + " site meter");
    steps.push_back(AssetStep(CommissioningStepKind::kEnsureSiteMeter, std::move(request), ParentRef::kSystem,
                              SiteTarget::kNone,
                              "create SITE_METER " + *metadata.site_meter_id + " under system " + record.remote_id));
  }

  if (needs_site) {
    CommissioningStep step;
    step.kind = CommissioningStepKind::kAttachSystemToSite;
    step.update.emplace();
    step.update->id = record.concerto_asset_id;
    step.site_target = SiteTarget::kSystemSite;
    step.description = "attach system " + record.remote_id + " to site " + site_label;
    steps.push_back(std::move(step));
  }
  return steps;
}

bool NeedsCommissioning(const DeviceRecord& record) {
  if (!record.metadata) return false;
  if (!record.site) return true;
  const SystemMetadata& metadata = *record.metadata;
  for (const CesInverter& inverter : metadata.inverters) {
    if (!Knows(record.inverters, inverter.rcpn)) return true;
  }
  for (const CesBattery& battery : metadata.batteries) {
    if (!Knows(record.batteries, battery.rcpn)) return true;
  }
  for (const CesPvLink& pv : metadata.pv_links) {
    if (!Knows(record.photovoltaics, pv.rcpn)) return true;
  }
  return metadata.site_meter_id.has_value() && !Knows(record.site_meter, *metadata.site_meter_id);
}

Result<CommissioningStep> ResolveStep(const CommissioningStep& step, const ResolvedIds& ids) {
  CommissioningStep resolved = step;
  std::optional<std::string> parent_id;
  switch (step.parent) {
    case ParentRef::kNone:
      break;
    case ParentRef::kSystem:
      if (ids.system_asset_id.empty()) return FailedPreconditionError(step.description + ": SYSTEM asset id unknown");
      parent_id = ids.system_asset_id;
      break;
    case ParentRef::kInverter:
      if (!ids.inverter_asset_id) return FailedPreconditionError(step.description + ": inverter asset id unknown");
      parent_id = ids.inverter_asset_id;
      break;
  }
  std::optional<std::string> site_id;
  if (step.site_target == SiteTarget::kSystemSite) {
    if (!ids.site_id) return FailedPreconditionError(step.description + ": site id unknown");
    site_id = ids.site_id;
  }
  if (resolved.asset) {
    resolved.asset->parent_id = parent_id;
    resolved.asset->site_id = site_id;
  }
  if (resolved.update) resolved.update->site_id = site_id;
  return resolved;
}

}  // namespace pwrcell::domain
