// An in-memory Concerto that keeps state like the real one (contracts/concerto.graphql,
// contracts/concerto-api.md), so that processes can be tested end to end without a server.
// It models the API's semantics, not its transport: no token, no rate limit, no latency; use
// FailNext / LoseNextResponse to play 5xx, 429, timeouts and lost answers.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "ports/concerto_api.h"

namespace pwrcell::adapters {

// Thread-safe: every call takes one mutex, so a concurrent reader sees each call whole.
//
// Ids: sites "site-1", "site-2", ...; assets "asset-1", "asset-2", ...; assets are listed by
// numeric id (so "asset-10" follows "asset-9"). Children are derived from parent links: an
// asset lists its children, and each child its own children (one level deeper), so a SYSTEM's
// INVERTER shows its BATTERY and PHOTOVOLTAIC assets. An asset's `site` holds the site's id,
// remoteId and name only (what ConcertoClient reads); Site() and the site calls return all of it.
//
// Errors, as the port maps Concerto's codes:
//   ListAssets: kInvalidArgument when page < 1, per_page < 1 or per_page > kMaxAssetsPerPage.
//   CreateSite: kAlreadyExists when a site has this remoteId (nothing created).
//   CreateAsset: kAlreadyExists when an asset of this type has this remoteId (checked first,
//     nothing created); kNotFound for an unknown siteId or parentId.
//   UpdateAsset, Update*RemoteState: kNotFound for an unknown id (or siteId).
//   IngestTelemetry: kInvalidArgument for more than kMaxPointsPerIngest points or a value that is
//     not finite (nothing stored); otherwise unknown assets are rejected by index, repeats counted
//     in duplicates.
// The same behaviour is checked on ConcertoClient against concerto-sim by the conformance suite
// tests/conformance/api/concerto_api_suite.cc: change both together.
// Every call, failed or not, counts in CallCount under its method name (kListAssets, ...).
class FakeConcerto final : public ports::ConcertoApi {
 public:
  // Operation names for CallCount, FailNext and LoseNextResponse.
  static constexpr std::string_view kListAssets = "ListAssets";
  static constexpr std::string_view kAssetByRemoteId = "AssetByRemoteId";
  static constexpr std::string_view kSiteByRemoteId = "SiteByRemoteId";
  static constexpr std::string_view kCreateSite = "CreateSite";
  static constexpr std::string_view kCreateAsset = "CreateAsset";
  static constexpr std::string_view kUpdateAsset = "UpdateAsset";
  static constexpr std::string_view kUpdateAssetRemoteState = "UpdateAssetRemoteState";
  static constexpr std::string_view kUpdateSiteRemoteState = "UpdateSiteRemoteState";
  static constexpr std::string_view kIngestTelemetry = "IngestTelemetry";

  // ports::ConcertoApi
  Result<ports::AssetPage> ListAssets(int page, int per_page) override;
  Result<std::optional<domain::ConcertoAsset>> AssetByRemoteId(domain::AssetType type,
                                                               const std::string& remote_id) override;
  Result<std::optional<domain::ConcertoSite>> SiteByRemoteId(const std::string& remote_id) override;
  Result<domain::ConcertoSite> CreateSite(const domain::CreateSiteRequest& request) override;
  Result<domain::ConcertoAsset> CreateAsset(const domain::CreateAssetRequest& request) override;
  Result<domain::ConcertoAsset> UpdateAsset(const domain::UpdateAssetRequest& request) override;
  Status UpdateAssetRemoteState(const domain::RemoteStateUpdate& update) override;
  Status UpdateSiteRemoteState(const domain::RemoteStateUpdate& update) override;
  Result<domain::IngestResult> IngestTelemetry(const std::vector<domain::TelemetryPoint>& points) override;

  // ---- Test helpers ----

  // What an operator does by hand: a SYSTEM asset (no site, no parent) served by `adapter_name`
  // (nullopt: no adapter serves it). Returns its id. Not counted as a call.
  // A second SYSTEM with the same remoteId is a bug in the test (assert).
  std::string EnrollSystem(const std::string& remote_id, const std::string& name,
                           const std::optional<std::string>& adapter_name, bool simulated = false,
                           std::optional<double> rated_power_kw = std::nullopt);
  // Deletes the asset (an operator removing it). Its children lose their parent link.
  // Returns false when there is no such asset.
  bool RemoveAsset(const std::string& asset_id);

  // The next `count` calls of `operation` fail with `status` before doing anything.
  // Queued faults of one operation are served in the order they were queued.
  void FailNext(std::string_view operation, Status status, int count = 1);
  // The next `count` calls of `operation` take effect and then fail with `status`: the answer
  // was lost (a timeout after the server committed), so the retry meets CONFLICT or a duplicate.
  void LoseNextResponse(std::string_view operation, Status status, int count = 1);

  // Calls of `operation` so far, including failed ones.
  int CallCount(std::string_view operation) const;

  std::vector<domain::ConcertoSite> Sites() const;                          // by id
  std::vector<domain::ConcertoAsset> Assets() const;                        // by id, children filled
  std::optional<domain::ConcertoAsset> Asset(const std::string& id) const;  // children filled
  std::optional<domain::ConcertoSite> Site(const std::string& id) const;
  std::vector<domain::TelemetryPoint> Points() const;  // in the order they were stored
  // Successful remote-state updates, oldest first.
  std::vector<domain::RemoteStateUpdate> AssetRemoteStateHistory() const;
  std::vector<domain::RemoteStateUpdate> SiteRemoteStateHistory() const;

 private:
  struct StoredAsset {
    domain::ConcertoAsset asset;  // children and site are derived on the way out
    std::optional<std::int64_t> site_key;
    std::optional<std::int64_t> parent_key;
  };
  struct Fault {
    Status status;
    bool after_applying = false;
    int remaining = 0;
  };
  using PointKey = std::tuple<std::string, domain::Metric, std::int64_t>;

  // Runs `apply` under the lock, between the call's bookkeeping and its injected fault.
  template <typename Apply>
  auto Call(std::string_view operation, Apply&& apply) -> decltype(apply());
  // Counts the call and pops its next queued fault, if any. Caller holds mutex_.
  std::optional<Fault> BeginCall(std::string_view operation);
  void QueueFault(std::string_view operation, Status status, int count, bool after_applying);

  domain::ConcertoAsset Render(std::int64_t key) const;  // caller holds mutex_
  std::vector<domain::AssetChild> ChildrenOf(std::int64_t key, int depth) const;
  std::optional<std::int64_t> AssetKey(const std::string& id) const;
  std::optional<std::int64_t> SiteKey(const std::string& id) const;

  mutable std::mutex mutex_;
  std::int64_t next_site_ = 1;
  std::int64_t next_asset_ = 1;
  std::map<std::int64_t, domain::ConcertoSite> sites_;
  std::map<std::int64_t, StoredAsset> assets_;
  std::set<PointKey> point_keys_;
  std::vector<domain::TelemetryPoint> points_;
  std::vector<domain::RemoteStateUpdate> asset_history_;
  std::vector<domain::RemoteStateUpdate> site_history_;
  std::map<std::string, int, std::less<>> calls_;
  std::map<std::string, std::deque<Fault>, std::less<>> faults_;
};

}  // namespace pwrcell::adapters
