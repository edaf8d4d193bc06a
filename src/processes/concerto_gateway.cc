#include "processes/concerto_gateway.h"

#include <spdlog/spdlog.h>

#include <set>

#include "domain/commissioning_plan.h"
#include "processes/device_updates.h"
#include "processes/shared_state.h"

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
    : context_(context), concerto_(concerto), registrar_(registrar), metrics_(&context.metrics) {}

Status ConcertoGateway::Handle(const ConcertoRequest& request) {
  return std::visit(Overloaded{
                        [&](const ListAssetsRequest& r) { return ListAssets(r); },
                        [&](const CommissionRequest& r) { return Commission(r.remote_id); },
                        [&](const RemoteStateRequest& r) { return UpdateRemoteState(r); },
                        [&](const PushTelemetryRequest& r) { return PushTelemetry(r); },
                    },
                    request);
}

Status ConcertoGateway::ListAssets(const ListAssetsRequest& request) {
  // Gives the listing lease back (shared_state.h) once this request is done for good.
  auto end_listing = [&] {
    if (request.lease_owner.empty()) return;
    auto released = context_.coordination.ReleaseLease(kListingLease, request.lease_owner);
    if (!released.ok())
      spdlog::warn("registrar: giving the listing lease back failed: {}", released.status().ToString());
  };
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
      if (!result.status().IsRetryable()) end_listing();
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
  if (registered.ok() || !registered.IsRetryable()) end_listing();
  return registered;
}

Result<bool> ConcertoGateway::ConfirmMissingSystems(const std::vector<domain::ConcertoAsset>& assets) {
  std::set<std::string> listed;
  for (const auto& asset : assets) {
    if (asset.asset_type == AssetType::kSystem && asset.adapter_name == context_.settings.adapter_name) {
      listed.insert(asset.remote_id);
    }
  }
  // The stored ids, a page of keys at a time (no record decoded); only the missing ones are asked.
  constexpr std::size_t kKeyPage = 1000;
  std::string after;
  while (true) {
    auto page = context_.devices.ListKeys({}, after, kKeyPage);
    if (!page.ok()) return page.status();
    for (const auto& key : *page) {
      if (listed.contains(key.remote_id)) continue;
      auto found = concerto_.AssetByRemoteId(AssetType::kSystem, key.remote_id);
      if (!found.ok()) return found.status();
      if (found->has_value() && (**found).adapter_name == context_.settings.adapter_name) {
        spdlog::info(
            "registrar: system {} is in Concerto but was missed by the listing (assets changed during it); "
            "removing nothing this time",
            key.remote_id);
        return false;
      }
    }
    if (page->size() < kKeyPage) break;
    after = page->back().remote_id;
  }
  return true;
}

Status ConcertoGateway::Commission(const std::string& remote_id) {
  if (!context_.settings.auto_commissioning) return Status::Ok();
  // One commissioning run of a system at a time, in any process: a second one (a redelivery while
  // the first still runs) waits for the first instead of racing it step by step.
  const std::string lease = SystemKey(remote_id, "commission");
  const std::string owner = NewOwnerToken();
  auto leased = context_.coordination.TryAcquireLease(lease, owner, context_.clock.Now(), context_.settings.work_lease);
  if (!leased.ok()) return leased.status().WithContext("commissioning lease of " + remote_id);
  // kAborted, not kUnavailable: another worker holding the lease is contention, not Concerto being
  // down, so the message is retried on the ordinary schedule rather than an outage's.
  if (!*leased) return AbortedError("system " + remote_id + " is being commissioned by another worker");
  Status outcome = CommissionLeased(remote_id, owner);
  auto released = context_.coordination.ReleaseLease(lease, owner);
  if (!released.ok()) {
    spdlog::warn("commissioning {}: giving the lease back failed: {}", remote_id, released.status().ToString());
  }
  return outcome;
}

Status ConcertoGateway::CommissionLeased(const std::string& remote_id, const std::string& owner) {
  auto& devices = context_.devices;
  auto& clock = context_.clock;
  // Read under the lease: what an earlier run recorded is seen.
  auto record = devices.Get(remote_id);
  if (!record.ok()) return record.status();
  if (!record->has_value()) return Status::Ok();  // left Concerto meanwhile
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
    if (!updated.ok())
      spdlog::warn("commissioning {}: recording state failed: {}", remote_id, updated.status().ToString());
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
  if (const auto* first = device.FindInverter(device.FirstInverterRcpn())) ids.inverter_asset_id = first->asset_id;

  for (const auto& planned : *plan) {
    // Renewed before each step; lost (expired and taken over) means another run goes on: stop.
    auto renewed = context_.coordination.TryAcquireLease(SystemKey(remote_id, "commission"), owner, clock.Now(),
                                                         context_.settings.work_lease);
    if (!renewed.ok()) return renewed.status().WithContext("renewing the commissioning lease");
    if (!*renewed) return AbortedError("system " + remote_id + ": the commissioning lease was taken over");
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
      // Not recorded: record.site says where Concerto shows the SYSTEM, and it is not on the site
      // until the attach step (the last) has run. Recorded here, a process dying between the two
      // left a record that looked attached, and the next commissioning skipped the attach (until
      // a registrar listing noticed). Ensuring the site again is a look-up that finds it.
      if (site.ok()) ids.site_id = site->id;
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
        if (type == AssetType::kInverter && step->first_inverter) ids.inverter_asset_id = asset->id;
        record_progress = [ref, type](domain::DeviceRecord& d) {
          const domain::DeviceRecord before = d;
          switch (type) {
            case AssetType::kInverter:
              d.SetInverter(ref);
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
      metrics_.commissioning_steps.Increment({kind, "failed"});
      const std::string reason = step->description + ": " + outcome.ToString();
      spdlog::warn("commissioning {}: {}", remote_id, reason);
      set_state(outcome.IsRetryable() ? CommissioningState::kPending : CommissioningState::kFailed,
                (outcome.IsRetryable() ? "retrying: " : "") + reason);
      return outcome;
    }
    metrics_.commissioning_steps.Increment({kind, "done"});
    spdlog::info("commissioning {}: {}", remote_id, step->description);
    if (record_progress) {
      // Before the write (shared_state.h), so a registrar that sees the write sees the note too.
      PWRCELL_RETURN_IF_ERROR(NoteCommissioningWrite(context_.coordination, remote_id, clock.Now()));
      auto saved = MutateDevice(devices, remote_id, record_progress, clock);
      if (!saved.ok()) return saved.status();
      if (!saved->has_value()) return Status::Ok();  // deregistered meanwhile
    }
  }
  set_state(CommissioningState::kDone, "");
  spdlog::info("commissioning {}: done ({} steps)", remote_id, plan->size());
  // The assets just created have no remote_state yet: give them the system's evaluated state (and
  // the site its aggregate). Targets Concerto already shows it on are skipped.
  auto done = devices.Get(remote_id);
  if (!done.ok()) return done.status();
  if (!done->has_value()) return Status::Ok();
  const auto& d = **done;
  return UpdateRemoteState(
      RemoteStateRequest{remote_id, d.site ? std::optional<std::string>(d.site->site_id) : std::nullopt, ""});
}

Result<domain::StateDecision> ConcertoGateway::SiteAggregate(const std::string& site_id) {
  auto systems = context_.devices.ListBySite(site_id);
  if (!systems.ok()) return systems.status();
  std::vector<domain::RemoteState> states;
  states.reserve(systems->size());
  for (const auto& d : *systems) {
    // What the adapter wants Concerto to show for each system (its evaluation), so that a site
    // follows its systems without waiting for their own updates to be accepted.
    states.push_back(d.evaluated_state.value_or(d.remote_state.value_or(domain::RemoteState::kOffline)));
  }
  return domain::AggregateSiteState(states);
}

Result<ConcertoGateway::SendOutcome> ConcertoGateway::SendState(const char* target, bool site, const std::string& id,
                                                                domain::RemoteState state, const std::string& reason,
                                                                const std::string& remote_id) {
  if (id.empty()) return SendOutcome::kAlreadyAccepted;
  auto& coordination = context_.coordination;
  const std::string key = AcceptedStateKey(site, id);
  const std::string owner = NewOwnerToken();
  const Timestamp now = context_.clock.Now();
  // Claim the target (compare-and-set on its stored value) so that workers of any process that
  // find the same state send it once.
  bool claimed = false;
  for (int attempt = 0; attempt < 16 && !claimed; ++attempt) {
    auto stored = coordination.GetValue(key);
    if (!stored.ok()) return stored.status();
    AcceptedState current = stored->has_value() ? DecodeAcceptedState((*stored)->value) : AcceptedState{};
    if (current.accepted == state) return SendOutcome::kAlreadyAccepted;
    if (current.claim_state && current.claim_until && *current.claim_until > now) {
      return AbortedError(std::string(target) + " " + id + " is being sent " +
                          std::string(domain::RemoteStateName(*current.claim_state)) + " by another worker");
    }
    current.claim_owner = owner;
    current.claim_state = state;
    current.claim_until = now + context_.settings.work_lease;
    auto put = coordination.PutValue(key, EncodeAcceptedState(current), stored->has_value() ? (*stored)->version : 0);
    if (put.ok()) {
      claimed = true;
    } else if (put.status().code() != StatusCode::kAborted) {
      return put.status();
    }
  }
  if (!claimed) return AbortedError("remote_state of " + std::string(target) + " " + id + " keeps changing");

  domain::RemoteStateUpdate update{id, state, reason};
  Status sent = site ? concerto_.UpdateSiteRemoteState(update) : concerto_.UpdateAssetRemoteState(update);
  // Record the outcome: accepted only after Concerto said so; the claim is given back either way.
  Status recorded = Status::Ok();
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto stored = coordination.GetValue(key);
    if (!stored.ok()) {
      recorded = stored.status();
      break;
    }
    AcceptedState current = stored->has_value() ? DecodeAcceptedState((*stored)->value) : AcceptedState{};
    if (sent.ok()) current.accepted = state;
    if (current.claim_owner == owner) {
      current.claim_owner.clear();
      current.claim_state.reset();
      current.claim_until.reset();
    }
    auto put = coordination.PutValue(key, EncodeAcceptedState(current), stored->has_value() ? (*stored)->version : 0);
    recorded = put.status();
    if (put.ok() || put.status().code() != StatusCode::kAborted) break;
  }
  if (sent.code() == StatusCode::kNotFound) {
    spdlog::warn("remote_state: {} {} of system {} is unknown to Concerto; skipped", target, id, remote_id);
    return SendOutcome::kUnknownTarget;
  }
  if (!sent.ok()) return sent;
  metrics_.remote_state_updates.Increment({target});
  if (!recorded.ok()) {
    // Concerto has it; only our record of it failed: a later request finds it unrecorded and sends
    // it once more, which Concerto takes as a no-op.
    spdlog::warn("remote_state: {} {} accepted {}, but recording it failed: {}", target, id,
                 domain::RemoteStateName(state), recorded.ToString());
    return recorded;
  }
  return SendOutcome::kSent;
}

Status ConcertoGateway::UpdateRemoteState(const RemoteStateRequest& request) {
  Status outcome = SendRemoteStates(request);
  // The request is done for good (or will never succeed): the sweep may queue another.
  if (!request.lease_owner.empty() && (outcome.ok() || !outcome.IsRetryable())) {
    auto released =
        context_.coordination.ReleaseLease(SystemKey(request.remote_id, "remote_state"), request.lease_owner);
    if (!released.ok())
      spdlog::warn("remote_state: giving the request lease of {} back failed: {}", request.remote_id,
                   released.status().ToString());
  }
  return outcome;
}

Status ConcertoGateway::SendRemoteStates(const RemoteStateRequest& request) {
  // The record's evaluation is read when the request runs, so a late request never sends an old
  // state. Workers run concurrently, though: one that read the state just before it changed may
  // finish after the one that sent the newer state. So after sending, read again and send once
  // more if it changed meanwhile: whichever request finishes last has sent the current state.
  std::optional<std::string> site_id = request.site_id;
  auto send_site = [&]() -> Status {
    if (!site_id || site_id->empty()) return Status::Ok();
    // Aggregated now from the site's systems (an indexed read), not taken from the request.
    for (int round = 0; round < 3; ++round) {
      auto site = SiteAggregate(*site_id);
      if (!site.ok()) return site.status();
      auto sent = SendState("site", true, *site_id, site->state, site->reason, request.remote_id);
      if (!sent.ok()) return sent.status();
      auto again = SiteAggregate(*site_id);
      if (!again.ok()) return again.status();
      if (again->state == site->state) break;
    }
    return Status::Ok();
  };
  for (int round = 0; round < 3; ++round) {
    auto record = context_.devices.Get(request.remote_id);
    if (!record.ok()) return record.status();
    if (!record->has_value() || !(*record)->evaluated_state) return send_site();  // gone: its site still changes
    const domain::DeviceRecord& d = **record;
    if (!site_id && d.site) site_id = d.site->site_id;
    const auto state = *d.evaluated_state;
    bool all_accepted = true;
    bool sent_any = false;
    auto send = [&](const char* target, const std::string& id) -> Status {
      auto outcome = SendState(target, false, id, state, d.remote_state_reason, d.remote_id);
      if (!outcome.ok()) return outcome.status();
      if (*outcome == SendOutcome::kUnknownTarget) all_accepted = false;
      if (*outcome == SendOutcome::kSent) sent_any = true;
      return Status::Ok();
    };
    Status outcome = send("system", d.concerto_asset_id);
    for (const auto& inverter : d.inverters) {
      if (outcome.ok()) outcome = send("inverter", inverter.asset_id);
    }
    if (outcome.ok() && d.site_meter) outcome = send("site_meter", d.site_meter->asset_id);
    if (outcome.ok()) outcome = send_site();
    if (!outcome.ok()) {
      // Some of the system's targets may now show `state` and others not: the device no longer
      // has one state Concerto accepted. Forget it, so the sweep sends again whatever the
      // evaluation is then (the targets that already have it are skipped).
      if (sent_any) {
        auto forgotten = MutateDevice(
            context_.devices, d.remote_id,
            [&](domain::DeviceRecord& fresh) {
              if (!fresh.remote_state || fresh.remote_state == state) return false;
              fresh.remote_state.reset();
              return true;
            },
            context_.clock);
        if (!forgotten.ok()) spdlog::warn("remote_state: system {}: {}", d.remote_id, forgotten.status().ToString());
      }
      return outcome;
    }
    // Every target (the site too) has it: record it on the device (remote_state = the last value
    // Concerto accepted), unless the evaluation moved on meanwhile (the next round sends that).
    bool moved_on = false;
    auto updated = MutateDevice(
        context_.devices, d.remote_id,
        [&](domain::DeviceRecord& fresh) {
          moved_on = fresh.evaluated_state != state;
          if (moved_on || !all_accepted || fresh.remote_state == state) return false;
          fresh.remote_state = state;
          return true;
        },
        context_.clock);
    if (!updated.ok()) return updated.status();
    if (!moved_on) break;
  }
  return Status::Ok();
}

Status ConcertoGateway::PushTelemetry(const PushTelemetryRequest& request) {
  if (request.points.empty()) return Status::Ok();
  auto result = concerto_.IngestTelemetry(request.points);
  if (!result.ok()) return result.status();
  metrics_.points.Increment({"accepted"}, result->accepted);
  if (result->duplicates > 0) metrics_.points.Increment({"duplicate"}, result->duplicates);
  if (!result->rejected.empty()) {
    metrics_.points.Increment({"rejected"}, static_cast<double>(result->rejected.size()));
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
