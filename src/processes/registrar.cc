#include "processes/registrar.h"

#include <spdlog/spdlog.h>

#include <set>

#include "domain/commissioning_plan.h"
#include "processes/device_updates.h"
#include "processes/messages.h"
#include "processes/shared_state.h"
#include "processes/simulated_systems.h"

namespace pwrcell::processes {
namespace {

// Keys per read of the removal pass.
constexpr std::size_t kKeyPage = 1000;

using domain::AssetChild;
using domain::AssetRef;
using domain::AssetType;

void AppendChild(std::string& out, const AssetChild& child) {
  out += '{';
  out += child.id;
  out += '\x1f';
  out += child.remote_id;
  out += '\x1f';
  out += std::to_string(static_cast<int>(child.asset_type));
  for (const auto& grandchild : child.children) AppendChild(out, grandchild);
  out += '}';
}

// A hash of every field of `asset` ApplyConcertoAsset reads.
std::size_t AssetFingerprint(const domain::ConcertoAsset& asset) {
  std::string key;
  key.reserve(256);
  for (const std::string* field : {&asset.id, &asset.remote_id, &asset.name}) {
    key += *field;
    key += '\x1f';
  }
  key += asset.simulated ? '1' : '0';
  key += asset.rated_power_kw ? std::to_string(*asset.rated_power_kw) : "-";
  if (asset.site) {
    for (const std::string* field : {&asset.site->id, &asset.site->remote_id, &asset.site->name}) {
      key += '\x1f';
      key += *field;
    }
  }
  for (const auto& child : asset.children) AppendChild(key, child);
  return std::hash<std::string>{}(key);
}

}  // namespace

bool ApplyConcertoAsset(const domain::ConcertoAsset& asset, domain::DeviceRecord& record, bool keep_components) {
  const domain::DeviceRecord before = record;
  record.concerto_asset_id = asset.id;
  record.name = asset.name;
  if (record.is_simulated != asset.simulated) {
    // Simulated <-> real: the metadata came from the other source; fetch it anew.
    record.is_simulated = asset.simulated;
    record.metadata.reset();
    record.metadata_fetched_at.reset();
    if (asset.simulated) {
      record.system_status.reset();
      record.system_status_at.reset();
    }
  }
  record.rated_power_kw = asset.rated_power_kw;
  if (keep_components) return !(record == before);
  if (asset.site) {
    record.site = domain::SiteRef{asset.site->id, asset.site->remote_id, asset.site->name};
  } else {
    record.site.reset();
  }
  record.inverters.clear();
  record.site_meter.reset();
  record.batteries.clear();
  record.photovoltaics.clear();
  // Every INVERTER child: one per inverter (SPEC section 6), each matched to its inverter by
  // remoteId = RCP number where used. Batteries and PV links are taken under any of them
  // (commissioning puts them under the first).
  for (const AssetChild& inverter : asset.children) {
    if (inverter.asset_type != AssetType::kInverter) continue;
    record.SetInverter(AssetRef{inverter.id, inverter.remote_id});
    for (const auto& grandchild : inverter.children) {
      if (grandchild.asset_type == AssetType::kBattery) {
        record.batteries.push_back({grandchild.id, grandchild.remote_id});
      } else if (grandchild.asset_type == AssetType::kPhotovoltaic) {
        record.photovoltaics.push_back({grandchild.id, grandchild.remote_id});
      }
    }
  }
  for (const auto& child : asset.children) {
    if (child.asset_type == AssetType::kSiteMeter) {
      record.site_meter = AssetRef{child.id, child.remote_id};
      break;
    }
  }
  return !(record == before);
}

Registrar::Registrar(Context& context, DeviceMetadataProcessor& metadata)
    : context_(context), metadata_(metadata), metrics_(&context.metrics) {}

Status Registrar::Register(const std::vector<domain::ConcertoAsset>& assets, bool complete,
                           std::optional<Timestamp> listing_started) {
  const Timestamp now = context_.clock.Now();
  const Settings& settings = context_.settings;
  std::set<std::string> ours;
  Status first_error;
  auto note = [&](const Status& s) {
    if (!s.ok() && first_error.ok()) first_error = s;
  };
  std::vector<std::string> metadata_requests;

  // The stored ids and versions, a page of keys at a time (no record decoded): for skipping the
  // systems that need nothing (quiet_) and for the removal pass.
  std::unordered_map<std::string, std::int64_t> stored;
  {
    std::string after;
    while (true) {
      auto page = context_.devices.ListKeys({}, after, kKeyPage);
      if (!page.ok()) return page.status();
      if (page->empty()) break;
      after = page->back().remote_id;
      const bool last = page->size() < kKeyPage;
      for (auto& key : *page) stored.emplace(std::move(key.remote_id), key.version);
      if (last) break;
    }
  }

  for (const auto& asset : assets) {
    if (asset.asset_type != AssetType::kSystem || asset.adapter_name != settings.adapter_name) continue;
    if (asset.remote_id.empty() || !ours.insert(asset.remote_id).second) continue;  // seen twice: once is enough
    const std::size_t fingerprint = AssetFingerprint(asset);
    {
      std::lock_guard lock(quiet_mutex_);
      auto quiet = quiet_.find(asset.remote_id);
      auto current = stored.find(asset.remote_id);
      if (quiet != quiet_.end() && current != stored.end() && quiet->second.version == current->second &&
          quiet->second.asset_fingerprint == fingerprint &&
          (quiet->second.is_simulated || (quiet->second.metadata_fetched_at &&
                                          now - *quiet->second.metadata_fetched_at < settings.metadata_refresh))) {
        continue;
      }
      if (quiet != quiet_.end()) quiet_.erase(quiet);
    }

    auto updated = MutateDevice(
        context_.devices, asset.remote_id,
        [&](domain::DeviceRecord& d) {
          bool keep = false;
          if (listing_started) {
            auto wrote = CommissioningWroteSince(context_.coordination, asset.remote_id, *listing_started);
            // Unknown (the store failed): keep what commissioning recorded rather than lose it.
            keep = !wrote.ok() || *wrote;
          }
          return ApplyConcertoAsset(asset, d, keep);
        },
        context_.clock);
    if (!updated.ok()) {
      note(updated.status());
      continue;
    }
    domain::DeviceRecord record;
    if (updated->has_value()) {
      record = std::move(**updated);
    } else {
      record.remote_id = asset.remote_id;
      ApplyConcertoAsset(asset, record);
      record.registered_at = now;
      record.updated_at = now;
      auto created = context_.devices.Put(record);
      if (!created.ok()) {
        note(created.status());  // kAborted: created concurrently; the next sweep updates it
        continue;
      }
      record = std::move(*created);
      metrics_.registered.Increment();
      spdlog::info("registrar: registered system {} \"{}\"{}", record.remote_id, record.name,
                   record.is_simulated ? " (simulated)" : "");
    }

    if (record.is_simulated) {
      if (SimulatedMetadataStale(record)) {
        note(metadata_.Process(record.remote_id, SynthesizeMetadata(record.remote_id, record.rated_power_kw)));
        continue;  // Process also requests commissioning
      }
    } else if (!record.metadata_fetched_at || now - *record.metadata_fetched_at >= settings.metadata_refresh) {
      auto due = context_.coordination.TryThrottle(SystemKey(record.remote_id, "metadata"), now,
                                                   settings.request_repeat_after);
      if (!due.ok()) {
        note(due.status());
      } else if (*due) {
        metadata_requests.push_back(record.remote_id);
      }
    }
    // A commissioned system Concerto still shows complete needs nothing (RequestCommissioningIfNeeded
    // would read the record twice to find that out): the common case of a sweep at fleet size.
    const bool settled =
        record.commissioning.state == domain::CommissioningState::kDone && !domain::NeedsCommissioning(record);
    if (record.metadata && !settled) note(RequestCommissioningIfNeeded(context_, record.remote_id));
    const bool metadata_current =
        record.is_simulated ||
        (record.metadata_fetched_at && now - *record.metadata_fetched_at < settings.metadata_refresh);
    if (metadata_current && (!record.metadata || settled)) {
      std::lock_guard lock(quiet_mutex_);
      quiet_.insert_or_assign(record.remote_id,
                              Quiet{record.version, fingerprint, record.is_simulated, record.metadata_fetched_at});
    }
  }

  for (std::size_t begin = 0; begin < metadata_requests.size(); begin += ports::kMaxQueueBatch) {
    std::vector<std::string> bodies;
    for (std::size_t i = begin; i < std::min(metadata_requests.size(), begin + ports::kMaxQueueBatch); ++i) {
      bodies.push_back(EncodeCesRequest(MetadataRequest{metadata_requests[i]}));
    }
    auto sent = context_.ces_queue.SendBatch(bodies);
    if (!sent.ok()) {
      for (std::size_t i = begin; i < std::min(metadata_requests.size(), begin + ports::kMaxQueueBatch); ++i) {
        (void)context_.coordination.ClearThrottle(SystemKey(metadata_requests[i], "metadata"));
      }
      note(sent.status().WithContext("queueing metadata requests"));
    }
  }

  if (complete) {
    // The stored ids (read before the upserts; a record written since is at another version and
    // its Remove is kAborted, retried on the next sweep) against the listed ones: nothing decoded.
    std::vector<ports::DeviceKey> gone;
    for (const auto& [remote_id, version] : stored) {
      if (!ours.count(remote_id)) gone.push_back({remote_id, version});
    }
    for (const auto& d : gone) {
      Status removed = context_.devices.Remove(d.remote_id, d.version);
      if (!removed.ok() && removed.code() != StatusCode::kNotFound) {
        note(removed.WithContext("removing " + d.remote_id));  // kAborted: retried on the next sweep
        continue;
      }
      // Its throttles, leases and notes go with it (a re-enrolled system starts afresh).
      note(context_.coordination.RemovePrefix(SystemKeyPrefix(d.remote_id)));
      {
        std::lock_guard lock(quiet_mutex_);
        quiet_.erase(d.remote_id);
      }
      metrics_.deregistered.Increment();
      spdlog::info("registrar: system {} left Concerto; removed from the device table", d.remote_id);
    }
  } else {
    spdlog::warn("registrar: the asset list was incomplete; no system is removed this time");
  }
  metrics_.sweeps.Increment({complete ? "true" : "false"});
  return first_error;
}

Status RegistrarPoller::Poll() {
  // One list_assets at a time, whichever process polls: the lease is taken here and given back by
  // the gateway that runs the request (its token travels in the request); a request lost on the
  // way (dead-lettered) lets its lease expire after list_assets_expiry.
  const Timestamp now = context_.clock.Now();
  // Several processes on one store poll on their own schedules: together they list about as
  // often as one adapter (a little under the interval, so one process's own ticks are not
  // throttled by their jitter).
  auto due = context_.coordination.TryThrottle(kPollThrottle, now, context_.settings.registrar_poll * 9 / 10);
  if (!due.ok()) return due.status().WithContext("registrar poll throttle");
  if (!*due) return Status::Ok();
  const std::string owner = NewOwnerToken();
  auto leased = context_.coordination.TryAcquireLease(kListingLease, owner, now, context_.settings.list_assets_expiry);
  if (!leased.ok()) return leased.status().WithContext("registrar listing lease");
  if (!*leased) {
    spdlog::debug("registrar_poller: a list_assets request is still pending");
    return Status::Ok();
  }
  auto sent = context_.concerto_queue.Send(EncodeConcertoRequest(ListAssetsRequest{owner}));
  if (!sent.ok()) {
    (void)context_.coordination.ReleaseLease(kListingLease, owner);
    (void)context_.coordination.ClearThrottle(kPollThrottle);
    return sent.status().WithContext("queueing list_assets");
  }
  return Status::Ok();
}

}  // namespace pwrcell::processes
