#include "processes/concerto_gateway.h"

#include <spdlog/spdlog.h>

#include <set>

#include "domain/commissioning_plan.h"
#include "processes/device_updates.h"

namespace pwrcell::processes {
namespace {

using domain::AssetType;
using domain::CommissioningState;
using domain::CommissioningStepKind;

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// Look up by remoteId; create when absent; on CONFLICT fetch what a concurrent writer created.
Result<domain::ConcertoSite> EnsureSite(ports::ConcertoApi& api, const domain::CreateSiteRequest& request) {
  auto found = api.SiteByRemoteId(request.remote_id);
  if (!found.ok()) return found.status();
  if (found->has_value()) return **found;
  auto created = api.CreateSite(request);
  if (created.ok() || created.status().code() != StatusCode::kAlreadyExists) return created;
  auto again = api.SiteByRemoteId(request.remote_id);
  if (!again.ok()) return again.status();
  if (!again->has_value()) return UnavailableError("site " + request.remote_id + " reported CONFLICT but not found");
  return **again;
}

Result<domain::ConcertoAsset> EnsureAsset(ports::ConcertoApi& api, const domain::CreateAssetRequest& request) {
  auto found = api.AssetByRemoteId(request.asset_type, request.remote_id);
  if (!found.ok()) return found.status();
  if (found->has_value()) return **found;
  auto created = api.CreateAsset(request);
  if (created.ok() || created.status().code() != StatusCode::kAlreadyExists) return created;
  auto again = api.AssetByRemoteId(request.asset_type, request.remote_id);
  if (!again.ok()) return again.status();
  if (!again->has_value()) {
    return UnavailableError(std::string(domain::AssetTypeName(request.asset_type)) + " " + request.remote_id +
                            " reported CONFLICT but not found");
  }
  return **again;
}

void AddRef(std::vector<domain::AssetRef>& refs, domain::AssetRef ref) {
  for (auto& existing : refs) {
    if (existing.remote_id == ref.remote_id) {
      existing = std::move(ref);
      return;
    }
  }
  refs.push_back(std::move(ref));
}

}  // namespace

ConcertoGateway::ConcertoGateway(Context& context, ports::ConcertoApi& concerto, Registrar& registrar)
    : context_(context), concerto_(concerto), registrar_(registrar) {
  auto& m = context_.metrics;
  m.Describe("pwrcell_concerto_points_total", Metrics::Type::kCounter,
             "Telemetry points sent to Concerto, by outcome (accepted, duplicate, rejected)");
  m.Describe("pwrcell_commissioning_steps_total", Metrics::Type::kCounter,
             "Commissioning steps executed, by step and outcome (found, created, failed)");
  m.Describe("pwrcell_remote_state_updates_total", Metrics::Type::kCounter,
             "remote_state updates sent to Concerto, by target (system, inverter, site_meter, site)");
}

Status ConcertoGateway::Handle(const ConcertoRequest& request) {
  return std::visit(Overloaded{
                        [&](const ListAssetsRequest&) { return ListAssets(); },
                        [&](const CommissionRequest& r) { return Commission(r.remote_id); },
                        [&](const RemoteStateRequest& r) { return UpdateRemoteState(r); },
                        [&](const PushTelemetryRequest& r) { return PushTelemetry(r); },
                    },
                    request);
}

Status ConcertoGateway::ListAssets() {
  const int per_page = std::clamp(context_.settings.page_size, 1, domain::kMaxAssetsPerPage);
  std::vector<domain::ConcertoAsset> assets;
  std::set<std::string> seen;
  int total = 0;
  bool shrank = false;  // totalCount fell between two pages: an asset was deleted mid-sweep
  const Timestamp started = context_.clock.Now();
  for (int page = 1;; ++page) {
    auto result = concerto_.ListAssets(page, per_page);
    if (!result.ok()) {
      // A failed page registers and removes nothing; the request is retried as a whole.
      if (!result.status().IsRetryable()) context_.shared.EndListing();
      return result.status().WithContext("allAssets page " + std::to_string(page));
    }
    if (page > 1 && result->total_count < total) shrank = true;
    total = result->total_count;
    for (auto& asset : result->assets) {
      if (seen.insert(asset.id).second) assets.push_back(std::move(asset));  // an asset seen twice counts once
    }
    if (result->assets.size() < static_cast<std::size_t>(per_page)) break;
    if (page > 1'000'000) return InternalError("allAssets never ends");
  }
  // A creation during the sweep may shift pages right (an asset seen twice, another missed): the
  // list then falls short of totalCount. A deletion shifts them left and hides an asset while the
  // count still matches (the deleted one was read), so a falling totalCount also means incomplete.
  // Either way nothing is removed this time.
  bool complete = !shrank && assets.size() >= static_cast<std::size_t>(total);
  // A deletion and a creation between the same two pages leave the count unchanged and may still
  // hide an asset; so a system about to be removed is looked up once more by its remoteId, and
  // one that is still there (or a lookup that fails) makes this listing incomplete.
  if (complete) {
    auto confirmed = ConfirmMissingSystems(assets);
    if (!confirmed.ok()) {
      spdlog::warn("registrar: cannot confirm which systems left Concerto ({}); removing none this time",
                   confirmed.status().ToString());
      complete = false;
    } else {
      complete = *confirmed;
    }
  }
  Status registered = registrar_.Register(assets, complete, started);
  if (registered.ok() || !registered.IsRetryable()) context_.shared.EndListing();
  return registered;
}

Result<bool> ConcertoGateway::ConfirmMissingSystems(const std::vector<domain::ConcertoAsset>& assets) {
  auto records = context_.devices.List();
  if (!records.ok()) return records.status();
  std::set<std::string> listed;
  for (const auto& asset : assets) {
    if (asset.asset_type == AssetType::kSystem && asset.adapter_name == context_.settings.adapter_name) {
      listed.insert(asset.remote_id);
    }
  }
  for (const auto& record : *records) {
    if (listed.contains(record.remote_id)) continue;
    auto found = concerto_.AssetByRemoteId(AssetType::kSystem, record.remote_id);
    if (!found.ok()) return found.status();
    if (found->has_value() && (**found).adapter_name == context_.settings.adapter_name) {
      spdlog::info("registrar: system {} is in Concerto but was missed by the listing (assets changed during it); "
                   "removing nothing this time",
                   record.remote_id);
      return false;
    }
  }
  return true;
}

Status ConcertoGateway::Commission(const std::string& remote_id) {
  auto& devices = context_.devices;
  auto& clock = context_.clock;
  auto record = devices.Get(remote_id);
  if (!record.ok()) return record.status();
  if (!record->has_value()) return Status::Ok();  // left Concerto meanwhile
  if (!context_.settings.auto_commissioning) return Status::Ok();
  domain::DeviceRecord device = std::move(**record);

  auto set_state = [&](CommissioningState state, std::string reason) {
    auto updated = MutateDevice(
        devices, remote_id,
        [&](domain::DeviceRecord& d) {
          domain::Commissioning wanted{state, reason};
          if (d.commissioning == wanted) return false;
          d.commissioning = std::move(wanted);
          return true;
        },
        clock);
    if (!updated.ok()) spdlog::warn("commissioning {}: recording state failed: {}", remote_id, updated.status().ToString());
  };

  auto plan = domain::PlanCommissioning(device, context_.settings.adapter_name);
  if (!plan.ok()) {
    spdlog::error("commissioning {}: cannot plan: {}", remote_id, plan.status().message());
    set_state(CommissioningState::kFailed, plan.status().message());
    return Status::Ok();  // nothing to retry until the record changes; the registrar re-plans
  }
  domain::ResolvedIds ids;
  ids.system_asset_id = device.concerto_asset_id;
  if (device.site) ids.site_id = device.site->site_id;
  if (device.inverter) ids.inverter_asset_id = device.inverter->asset_id;

  for (const auto& planned : *plan) {
    auto step = domain::ResolveStep(planned, ids);
    if (!step.ok()) {
      set_state(CommissioningState::kFailed, step.status().message());
      return step.status();
    }
    const std::string kind(domain::CommissioningStepKindName(step->kind));
    std::function<bool(domain::DeviceRecord&)> record_progress;
    Status outcome;
    if (step->kind == CommissioningStepKind::kEnsureSite) {
      auto site = EnsureSite(concerto_, *step->site);
      outcome = site.status();
      if (site.ok()) {
        ids.site_id = site->id;
        domain::SiteRef ref{site->id, site->remote_id, site->name};
        record_progress = [ref](domain::DeviceRecord& d) {
          if (d.site == ref) return false;
          d.site = ref;
          return true;
        };
      }
    } else if (step->kind == CommissioningStepKind::kAttachSystemToSite) {
      auto updated = concerto_.UpdateAsset(*step->update);
      outcome = updated.status();
      if (updated.ok() && updated->site) {
        // Record the site the SYSTEM now sits on: a list read before this update (the registrar's)
        // cleared it, and DONE must not show a record without its site.
        domain::SiteRef ref{updated->site->id, updated->site->remote_id, updated->site->name};
        record_progress = [ref](domain::DeviceRecord& d) {
          if (d.site == ref) return false;
          d.site = ref;
          return true;
        };
      }
    } else {
      auto asset = EnsureAsset(concerto_, *step->asset);
      outcome = asset.status();
      if (asset.ok()) {
        domain::AssetRef ref{asset->id, asset->remote_id};
        const auto type = step->asset->asset_type;
        if (type == AssetType::kInverter) ids.inverter_asset_id = asset->id;
        record_progress = [ref, type](domain::DeviceRecord& d) {
          const domain::DeviceRecord before = d;
          switch (type) {
            case AssetType::kInverter:
              d.inverter = ref;
              break;
            case AssetType::kBattery:
              AddRef(d.batteries, ref);
              break;
            case AssetType::kPhotovoltaic:
              AddRef(d.photovoltaics, ref);
              break;
            case AssetType::kSiteMeter:
              d.site_meter = ref;
              break;
            case AssetType::kSystem:
              break;
          }
          return !(d == before);
        };
      }
    }
    if (!outcome.ok()) {
      context_.metrics.Increment("pwrcell_commissioning_steps_total", {{"step", kind}, {"outcome", "failed"}});
      const std::string reason = step->description + ": " + outcome.ToString();
      spdlog::warn("commissioning {}: {}", remote_id, reason);
      set_state(outcome.IsRetryable() ? CommissioningState::kPending : CommissioningState::kFailed,
                (outcome.IsRetryable() ? "retrying: " : "") + reason);
      return outcome;
    }
    context_.metrics.Increment("pwrcell_commissioning_steps_total", {{"step", kind}, {"outcome", "done"}});
    spdlog::info("commissioning {}: {}", remote_id, step->description);
    if (record_progress) {
      context_.shared.NoteCommissioningWrite(remote_id, clock.Now());  // before the write (context.h)
      auto saved = MutateDevice(devices, remote_id, record_progress, clock);
      if (!saved.ok()) return saved.status();
      if (!saved->has_value()) return Status::Ok();  // deregistered meanwhile
    }
  }
  set_state(CommissioningState::kDone, "");
  spdlog::info("commissioning {}: done ({} steps)", remote_id, plan->size());
  // The assets just created have no remote_state yet: give them the system's current one (and
  // the site its aggregate). Assets that already have it are skipped (see sent_).
  auto done = devices.Get(remote_id);
  if (!done.ok()) return done.status();
  if (!done->has_value() || !(*done)->remote_state) return Status::Ok();
  auto site = SiteState(**done);
  if (!site.ok()) return site.status();
  return UpdateRemoteState(RemoteStateRequest{remote_id, *site});
}

Result<std::optional<SiteStateUpdate>> ConcertoGateway::SiteState(const domain::DeviceRecord& device) {
  if (!device.site || device.site->site_id.empty()) return std::optional<SiteStateUpdate>();
  auto aggregate = SiteAggregate(device.site->site_id);
  if (!aggregate.ok()) return aggregate.status();
  return std::optional<SiteStateUpdate>(*aggregate);
}

Result<SiteStateUpdate> ConcertoGateway::SiteAggregate(const std::string& site_id) {
  auto all = context_.devices.List();
  if (!all.ok()) return all.status();
  std::vector<domain::RemoteState> states;
  for (const auto& d : *all) {
    if (d.site && d.site->site_id == site_id) states.push_back(d.remote_state.value_or(domain::RemoteState::kOffline));
  }
  const auto aggregate = domain::AggregateSiteState(states);
  return SiteStateUpdate{site_id, aggregate.state, aggregate.reason};
}

Status ConcertoGateway::UpdateRemoteState(const RemoteStateRequest& request) {
  auto record = context_.devices.Get(request.remote_id);
  if (!record.ok()) return record.status();
  auto send = [&](const char* target, const std::string& id, const domain::RemoteState state,
                  const std::string& reason, bool site) -> Status {
    if (id.empty()) return Status::Ok();
    const std::string key = (site ? "s:" : "a:") + id;
    // Claimed before sending, so that two workers finding the same state send it once; given back
    // when the send fails (the failing request is retried and sends it then).
    std::optional<domain::RemoteState> before;
    {
      std::lock_guard lock(sent_mutex_);
      auto it = sent_.find(key);
      if (it != sent_.end() && it->second == state) return Status::Ok();  // unchanged: not sent again
      if (it != sent_.end()) before = it->second;
      sent_[key] = state;
    }
    domain::RemoteStateUpdate update{id, state, reason};
    Status s = site ? concerto_.UpdateSiteRemoteState(update) : concerto_.UpdateAssetRemoteState(update);
    if (s.ok()) {
      context_.metrics.Increment("pwrcell_remote_state_updates_total", {{"target", target}});
    } else {
      std::lock_guard lock(sent_mutex_);
      auto it = sent_.find(key);
      if (it != sent_.end() && it->second == state) {
        if (before) {
          it->second = *before;
        } else {
          sent_.erase(it);
        }
      }
    }
    if (s.code() == StatusCode::kNotFound) {
      spdlog::warn("remote_state: {} {} of system {} is unknown to Concerto; skipped", target, id, request.remote_id);
      return Status::Ok();
    }
    return s;
  };
  // The record's state is read when the request runs, so a late request never sends an old state.
  // Workers run concurrently, though: one that read the state just before it changed may finish
  // after the one that sent the newer state. So after sending, read again and send once more if
  // it changed meanwhile: whichever request finishes last has sent the current state.
  for (int round = 0; round < 3 && record->has_value() && (*record)->remote_state; ++round) {
    const domain::DeviceRecord& d = **record;
    const auto state = *d.remote_state;
    PWRCELL_RETURN_IF_ERROR(send("system", d.concerto_asset_id, state, d.remote_state_reason, false));
    if (d.inverter) PWRCELL_RETURN_IF_ERROR(send("inverter", d.inverter->asset_id, state, d.remote_state_reason, false));
    if (d.site_meter) {
      PWRCELL_RETURN_IF_ERROR(send("site_meter", d.site_meter->asset_id, state, d.remote_state_reason, false));
    }
    auto again = context_.devices.Get(request.remote_id);
    if (!again.ok()) return again.status();
    if (!again->has_value() || (*again)->remote_state == d.remote_state) break;
    record = std::move(again);
  }
  if (request.site) {
    // Aggregated now from the device table, not taken from the request: requests queued for
    // successive changes may run out of order (several workers), and the state in an older one
    // would overwrite the newer. The request only names the site.
    // As for the system above: if it changed while this was sent, send the new one too.
    for (int round = 0; round < 3; ++round) {
      auto site = SiteAggregate(request.site->site_id);
      if (!site.ok()) return site.status();
      PWRCELL_RETURN_IF_ERROR(send("site", site->site_id, site->state, site->reason, true));
      auto again = SiteAggregate(request.site->site_id);
      if (!again.ok()) return again.status();
      if (again->state == site->state) break;
    }
  }
  return Status::Ok();
}

Status ConcertoGateway::PushTelemetry(const PushTelemetryRequest& request) {
  if (request.points.empty()) return Status::Ok();
  auto result = concerto_.IngestTelemetry(request.points);
  if (!result.ok()) return result.status();
  auto& m = context_.metrics;
  m.Increment("pwrcell_concerto_points_total", {{"outcome", "accepted"}}, result->accepted);
  if (result->duplicates > 0) m.Increment("pwrcell_concerto_points_total", {{"outcome", "duplicate"}}, result->duplicates);
  if (!result->rejected.empty()) {
    m.Increment("pwrcell_concerto_points_total", {{"outcome", "rejected"}},
                static_cast<double>(result->rejected.size()));
    const auto& first = result->rejected.front();
    spdlog::warn("telemetry: Concerto rejected {} of {} points (first: point {} asset {}: {})", result->rejected.size(),
                 request.points.size(), first.index,
                 first.index >= 0 && static_cast<std::size_t>(first.index) < request.points.size()
                     ? request.points[static_cast<std::size_t>(first.index)].asset_id
                     : std::string("?"),
                 first.message);
  }
  return Status::Ok();
}

}  // namespace pwrcell::processes
