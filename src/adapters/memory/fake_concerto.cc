#include "adapters/memory/fake_concerto.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <cmath>
#include <utility>

namespace pwrcell::adapters {
namespace {

constexpr std::array<std::string_view, 9> kOperations{
    FakeConcerto::kListAssets,
    FakeConcerto::kAssetByRemoteId,
    FakeConcerto::kSiteByRemoteId,
    FakeConcerto::kCreateSite,
    FakeConcerto::kCreateAsset,
    FakeConcerto::kUpdateAsset,
    FakeConcerto::kUpdateAssetRemoteState,
    FakeConcerto::kUpdateSiteRemoteState,
    FakeConcerto::kIngestTelemetry,
};

[[maybe_unused]] bool IsOperation(std::string_view operation) {  // used by assert() only
  return std::find(kOperations.begin(), kOperations.end(), operation) != kOperations.end();
}

constexpr std::string_view kSitePrefix = "site-";
constexpr std::string_view kAssetPrefix = "asset-";

// "asset-12" -> 12 for prefix "asset-"; nullopt for anything else, so a site id sent where an
// asset id belongs is NOT_FOUND rather than a silent hit on the wrong record.
std::optional<std::int64_t> ParseKey(std::string_view id, std::string_view prefix) {
  if (id.size() <= prefix.size() || id.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view digits = id.substr(prefix.size());
  std::int64_t key = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), key);
  if (error != std::errc() || end != digits.data() + digits.size() || key < 1) return std::nullopt;
  return key;
}

std::string SiteId(std::int64_t key) {
  return std::string(kSitePrefix) + std::to_string(key);
}
std::string AssetId(std::int64_t key) {
  return std::string(kAssetPrefix) + std::to_string(key);
}

}  // namespace

template <typename Apply>
auto FakeConcerto::Call(std::string_view operation, Apply&& apply) -> decltype(apply()) {
  std::lock_guard lock(mutex_);
  std::optional<Fault> fault = BeginCall(operation);
  if (fault && !fault->after_applying) return fault->status;
  auto result = apply();
  if (fault) return fault->status;
  return result;
}

std::optional<FakeConcerto::Fault> FakeConcerto::BeginCall(std::string_view operation) {
  auto count = calls_.find(operation);
  if (count == calls_.end()) count = calls_.emplace(std::string(operation), 0).first;
  ++count->second;
  auto queued = faults_.find(operation);
  if (queued == faults_.end() || queued->second.empty()) return std::nullopt;
  Fault& next = queued->second.front();
  Fault fault = next;
  if (--next.remaining <= 0) queued->second.pop_front();
  return fault;
}

void FakeConcerto::QueueFault(std::string_view operation, Status status, int count, bool after_applying) {
  assert(IsOperation(operation) && "unknown FakeConcerto operation");
  assert(!status.ok() && "a fault must carry an error");
  if (count < 1) return;
  std::lock_guard lock(mutex_);
  auto queued = faults_.find(operation);
  if (queued == faults_.end()) queued = faults_.emplace(std::string(operation), std::deque<Fault>{}).first;
  queued->second.push_back(Fault{std::move(status), after_applying, count});
}

void FakeConcerto::FailNext(std::string_view operation, Status status, int count) {
  QueueFault(operation, std::move(status), count, /*after_applying=*/false);
}

void FakeConcerto::LoseNextResponse(std::string_view operation, Status status, int count) {
  QueueFault(operation, std::move(status), count, /*after_applying=*/true);
}

int FakeConcerto::CallCount(std::string_view operation) const {
  std::lock_guard lock(mutex_);
  auto it = calls_.find(operation);
  return it == calls_.end() ? 0 : it->second;
}

std::optional<std::int64_t> FakeConcerto::AssetKey(const std::string& id) const {
  auto key = ParseKey(id, kAssetPrefix);
  if (!key || !assets_.contains(*key)) return std::nullopt;
  return key;
}

std::optional<std::int64_t> FakeConcerto::SiteKey(const std::string& id) const {
  auto key = ParseKey(id, kSitePrefix);
  if (!key || !sites_.contains(*key)) return std::nullopt;
  return key;
}

std::vector<domain::AssetChild> FakeConcerto::ChildrenOf(std::int64_t key, int depth) const {
  std::vector<domain::AssetChild> children;
  if (depth <= 0) return children;
  // Linear in the number of assets: fine for the fleets a test builds.
  for (const auto& [child_key, stored] : assets_) {
    if (stored.parent_key != key) continue;
    domain::AssetChild child;
    child.id = stored.asset.id;
    child.remote_id = stored.asset.remote_id;
    child.asset_type = stored.asset.asset_type;
    child.children = ChildrenOf(child_key, depth - 1);
    children.push_back(std::move(child));
  }
  return children;
}

domain::ConcertoAsset FakeConcerto::Render(std::int64_t key) const {
  const StoredAsset& stored = assets_.at(key);
  domain::ConcertoAsset asset = stored.asset;
  if (stored.site_key) {
    // An asset's site carries what ConcertoClient reads of it (`site { id remoteId name }`), no more,
    // so that no process comes to rely on a field the real client leaves empty.
    const domain::ConcertoSite& site = sites_.at(*stored.site_key);
    asset.site = domain::ConcertoSite{site.id, site.remote_id, site.name, "", std::nullopt, std::nullopt, std::nullopt};
  }
  // Two levels: the SYSTEM's children (INVERTER, SITE_METER) and the inverter's own children.
  asset.children = ChildrenOf(key, 2);
  return asset;
}

Result<ports::AssetPage> FakeConcerto::ListAssets(int page, int per_page) {
  return Call(kListAssets, [&]() -> Result<ports::AssetPage> {
    if (page < 1) return InvalidArgumentError("currentPage must be >= 1, got " + std::to_string(page));
    if (per_page < 1 || per_page > domain::kMaxAssetsPerPage) {
      return InvalidArgumentError("perPage must be 1.." + std::to_string(domain::kMaxAssetsPerPage) + ", got " +
                                  std::to_string(per_page));
    }
    ports::AssetPage result;
    result.total_count = static_cast<int>(assets_.size());
    const auto skip = static_cast<std::int64_t>(page - 1) * per_page;
    if (skip >= static_cast<std::int64_t>(assets_.size())) return result;
    auto it = std::next(assets_.begin(), static_cast<std::ptrdiff_t>(skip));
    for (int n = 0; n < per_page && it != assets_.end(); ++n, ++it) result.assets.push_back(Render(it->first));
    return result;
  });
}

Result<std::optional<domain::ConcertoAsset>> FakeConcerto::AssetByRemoteId(domain::AssetType type,
                                                                           const std::string& remote_id) {
  return Call(kAssetByRemoteId, [&]() -> Result<std::optional<domain::ConcertoAsset>> {
    for (const auto& [key, stored] : assets_) {
      if (stored.asset.asset_type == type && stored.asset.remote_id == remote_id) {
        return std::optional<domain::ConcertoAsset>(Render(key));
      }
    }
    return std::optional<domain::ConcertoAsset>();
  });
}

Result<std::optional<domain::ConcertoSite>> FakeConcerto::SiteByRemoteId(const std::string& remote_id) {
  return Call(kSiteByRemoteId, [&]() -> Result<std::optional<domain::ConcertoSite>> {
    for (const auto& [key, site] : sites_) {
      if (site.remote_id == remote_id) return std::optional<domain::ConcertoSite>(site);
    }
    return std::optional<domain::ConcertoSite>();
  });
}

Result<domain::ConcertoSite> FakeConcerto::CreateSite(const domain::CreateSiteRequest& request) {
  return Call(kCreateSite, [&]() -> Result<domain::ConcertoSite> {
    for (const auto& [key, site] : sites_) {
      if (site.remote_id == request.remote_id) {
        return AlreadyExistsError("a site with remoteId '" + request.remote_id + "' already exists (id " + site.id +
                                  ")");
      }
    }
    domain::ConcertoSite site;
    const std::int64_t key = next_site_++;
    site.id = SiteId(key);
    site.remote_id = request.remote_id;
    site.name = request.name;
    site.timezone = request.timezone;
    site.latitude = request.latitude;
    site.longitude = request.longitude;
    sites_.emplace(key, site);
    return site;
  });
}

Result<domain::ConcertoAsset> FakeConcerto::CreateAsset(const domain::CreateAssetRequest& request) {
  return Call(kCreateAsset, [&]() -> Result<domain::ConcertoAsset> {
    // Same order of checks as the Concerto simulator: CONFLICT first, then the references.
    for (const auto& [key, stored] : assets_) {
      if (stored.asset.asset_type == request.asset_type && stored.asset.remote_id == request.remote_id) {
        return AlreadyExistsError("an asset of type " + std::string(domain::AssetTypeName(request.asset_type)) +
                                  " with remoteId '" + request.remote_id + "' already exists (id " + stored.asset.id +
                                  ")");
      }
    }
    StoredAsset stored;
    if (request.site_id) {
      stored.site_key = SiteKey(*request.site_id);
      if (!stored.site_key) return NotFoundError("no site with id '" + *request.site_id + "'");
    }
    if (request.parent_id) {
      stored.parent_key = AssetKey(*request.parent_id);
      if (!stored.parent_key) return NotFoundError("parentId: no asset with id '" + *request.parent_id + "'");
    }
    const std::int64_t key = next_asset_++;
    domain::ConcertoAsset& asset = stored.asset;
    asset.id = AssetId(key);
    asset.remote_id = request.remote_id;
    asset.name = request.name;
    asset.asset_type = request.asset_type;
    asset.adapter_name = request.adapter_name;
    asset.simulated = request.simulated;
    asset.rated_power_kw = request.rated_power_kw;
    asset.energy_capacity_kwh = request.energy_capacity_kwh;
    asset.ac_coupled = request.ac_coupled;
    asset.parent_id = request.parent_id;
    assets_.emplace(key, std::move(stored));
    return Render(key);
  });
}

Result<domain::ConcertoAsset> FakeConcerto::UpdateAsset(const domain::UpdateAssetRequest& request) {
  return Call(kUpdateAsset, [&]() -> Result<domain::ConcertoAsset> {
    auto key = AssetKey(request.id);
    if (!key) return NotFoundError("no asset with id '" + request.id + "'");
    std::optional<std::int64_t> site_key;
    if (request.site_id) {
      site_key = SiteKey(*request.site_id);
      if (!site_key) return NotFoundError("no site with id '" + *request.site_id + "'");
    }
    // Absent fields stay as they are (the port cannot express an explicit null).
    StoredAsset& stored = assets_.at(*key);
    if (site_key) stored.site_key = site_key;
    if (request.rated_power_kw) stored.asset.rated_power_kw = request.rated_power_kw;
    if (request.energy_capacity_kwh) stored.asset.energy_capacity_kwh = request.energy_capacity_kwh;
    if (request.ac_coupled) stored.asset.ac_coupled = request.ac_coupled;
    return Render(*key);
  });
}

Status FakeConcerto::UpdateAssetRemoteState(const domain::RemoteStateUpdate& update) {
  return Call(kUpdateAssetRemoteState, [&]() -> Status {
    auto key = AssetKey(update.id);
    if (!key) return NotFoundError("no asset with id '" + update.id + "'");
    assets_.at(*key).asset.remote_state = update.state;
    asset_history_.push_back(update);
    return Status::Ok();
  });
}

Status FakeConcerto::UpdateSiteRemoteState(const domain::RemoteStateUpdate& update) {
  return Call(kUpdateSiteRemoteState, [&]() -> Status {
    auto key = SiteKey(update.id);
    if (!key) return NotFoundError("no site with id '" + update.id + "'");
    sites_.at(*key).remote_state = update.state;
    site_history_.push_back(update);
    return Status::Ok();
  });
}

Result<domain::IngestResult> FakeConcerto::IngestTelemetry(const std::vector<domain::TelemetryPoint>& points) {
  return Call(kIngestTelemetry, [&]() -> Result<domain::IngestResult> {
    if (points.size() > domain::kMaxPointsPerIngest) {
      return InvalidArgumentError("ingestTelemetry takes at most " + std::to_string(domain::kMaxPointsPerIngest) +
                                  " points per call, got " + std::to_string(points.size()) + "; nothing stored");
    }
    // value is a GraphQL Float!, which has no NaN or infinity: such a call cannot be sent (the
    // client refuses it the same way), so nothing of it is stored.
    for (std::size_t i = 0; i < points.size(); ++i) {
      if (!std::isfinite(points[i].value)) {
        return InvalidArgumentError("ingestTelemetry: point " + std::to_string(i) +
                                    " has a value that is not a finite number; nothing stored");
      }
    }
    domain::IngestResult result;
    for (std::size_t i = 0; i < points.size(); ++i) {
      const domain::TelemetryPoint& point = points[i];
      if (!AssetKey(point.asset_id)) {
        result.rejected.push_back({static_cast<int>(i), "unknown asset id '" + point.asset_id + "'"});
        continue;
      }
      PointKey key{point.asset_id, point.metric, ToUnixMillis(point.timestamp)};
      if (point_keys_.contains(key)) {
        ++result.duplicates;
        continue;
      }
      point_keys_.insert(std::move(key));
      points_.push_back(point);
      ++result.accepted;
    }
    return result;
  });
}

std::string FakeConcerto::EnrollSystem(const std::string& remote_id, const std::string& name,
                                       const std::optional<std::string>& adapter_name, bool simulated,
                                       std::optional<double> rated_power_kw) {
  std::lock_guard lock(mutex_);
  [[maybe_unused]] const bool duplicate = std::any_of(assets_.begin(), assets_.end(), [&](const auto& entry) {
    return entry.second.asset.asset_type == domain::AssetType::kSystem && entry.second.asset.remote_id == remote_id;
  });
  assert(!duplicate && "EnrollSystem: a SYSTEM with this remoteId exists already");
  const std::int64_t key = next_asset_++;
  StoredAsset stored;
  stored.asset.id = AssetId(key);
  stored.asset.remote_id = remote_id;
  stored.asset.name = name;
  stored.asset.asset_type = domain::AssetType::kSystem;
  stored.asset.adapter_name = adapter_name;
  stored.asset.simulated = simulated;
  stored.asset.rated_power_kw = rated_power_kw;
  assets_.emplace(key, std::move(stored));
  return AssetId(key);
}

bool FakeConcerto::RemoveAsset(const std::string& asset_id) {
  std::lock_guard lock(mutex_);
  auto key = AssetKey(asset_id);
  if (!key) return false;
  assets_.erase(*key);
  for (auto& [child_key, stored] : assets_) {
    if (stored.parent_key == key) {
      stored.parent_key.reset();
      stored.asset.parent_id.reset();
    }
  }
  return true;
}

std::vector<domain::ConcertoSite> FakeConcerto::Sites() const {
  std::lock_guard lock(mutex_);
  std::vector<domain::ConcertoSite> sites;
  for (const auto& [key, site] : sites_) sites.push_back(site);
  return sites;
}

std::vector<domain::ConcertoAsset> FakeConcerto::Assets() const {
  std::lock_guard lock(mutex_);
  std::vector<domain::ConcertoAsset> assets;
  for (const auto& [key, stored] : assets_) assets.push_back(Render(key));
  return assets;
}

std::optional<domain::ConcertoAsset> FakeConcerto::Asset(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto key = AssetKey(id);
  if (!key) return std::nullopt;
  return Render(*key);
}

std::optional<domain::ConcertoSite> FakeConcerto::Site(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto key = SiteKey(id);
  if (!key) return std::nullopt;
  return sites_.at(*key);
}

std::vector<domain::TelemetryPoint> FakeConcerto::Points() const {
  std::lock_guard lock(mutex_);
  return points_;
}

std::vector<domain::RemoteStateUpdate> FakeConcerto::AssetRemoteStateHistory() const {
  std::lock_guard lock(mutex_);
  return asset_history_;
}

std::vector<domain::RemoteStateUpdate> FakeConcerto::SiteRemoteStateHistory() const {
  std::lock_guard lock(mutex_);
  return site_history_;
}

}  // namespace pwrcell::adapters
