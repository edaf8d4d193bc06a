#include "adapters/memory/fake_concerto.h"

#include <gtest/gtest.h>

#include <thread>

namespace pwrcell::adapters {
namespace {

using domain::AssetType;
using domain::Metric;
using domain::RemoteState;

constexpr const char* kAdapter = "pwrcell";

domain::CreateAssetRequest AssetRequest(AssetType type, const std::string& remote_id,
                                        std::optional<std::string> parent_id = std::nullopt,
                                        std::optional<std::string> site_id = std::nullopt) {
  domain::CreateAssetRequest r;
  r.remote_id = remote_id;
  r.name = "asset " + remote_id;
  r.asset_type = type;
  r.adapter_name = kAdapter;
  r.parent_id = std::move(parent_id);
  r.site_id = std::move(site_id);
  return r;
}

domain::CreateSiteRequest SiteRequest(const std::string& remote_id) {
  return domain::CreateSiteRequest{remote_id, "site " + remote_id, "America/Denver", 39.74, -104.99};
}

domain::TelemetryPoint Point(const std::string& asset_id, Metric metric, std::int64_t ms, double value) {
  return domain::TelemetryPoint{asset_id, metric, FromUnixMillis(ms), value};
}

std::vector<std::string> Ids(const std::vector<domain::ConcertoAsset>& assets) {
  std::vector<std::string> ids;
  ids.reserve(assets.size());
  for (const auto& a : assets) ids.push_back(a.id);
  return ids;
}

TEST(FakeConcerto, EnrollSystemCreatesAnUnplacedSystemAsset) {
  FakeConcerto concerto;
  const std::string id = concerto.EnrollSystem("sys-1", "Smith", kAdapter, true, 7.6);
  EXPECT_EQ(id, "asset-1");
  auto asset = concerto.Asset(id);
  ASSERT_TRUE(asset.has_value());
  EXPECT_EQ(asset->remote_id, "sys-1");
  EXPECT_EQ(asset->name, "Smith");
  EXPECT_EQ(asset->asset_type, AssetType::kSystem);
  EXPECT_EQ(asset->adapter_name, std::optional<std::string>(kAdapter));
  EXPECT_TRUE(asset->simulated);
  EXPECT_EQ(asset->rated_power_kw, std::optional<double>(7.6));
  EXPECT_EQ(asset->site, std::nullopt);
  EXPECT_EQ(asset->parent_id, std::nullopt);

  const std::string foreign = concerto.EnrollSystem("other", "Other", std::nullopt);
  EXPECT_EQ(concerto.Asset(foreign)->adapter_name, std::nullopt);
  EXPECT_EQ(concerto.CallCount(FakeConcerto::kCreateAsset), 0);
}

TEST(FakeConcerto, ListAssetsPagesByNumericIdWithTotalCount) {
  FakeConcerto concerto;
  for (int i = 1; i <= 12; ++i) concerto.EnrollSystem("sys-" + std::to_string(i), "S", kAdapter);

  auto first = concerto.ListAssets(1, 5);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->total_count, 12);
  EXPECT_EQ(Ids(first->assets), (std::vector<std::string>{"asset-1", "asset-2", "asset-3", "asset-4", "asset-5"}));

  auto second = concerto.ListAssets(2, 5);
  ASSERT_TRUE(second.ok());
  // Numeric, not lexicographic: asset-10 follows asset-9.
  EXPECT_EQ(Ids(second->assets), (std::vector<std::string>{"asset-6", "asset-7", "asset-8", "asset-9", "asset-10"}));

  auto last = concerto.ListAssets(3, 5);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(Ids(last->assets), (std::vector<std::string>{"asset-11", "asset-12"}));

  auto past_end = concerto.ListAssets(4, 5);
  ASSERT_TRUE(past_end.ok());
  EXPECT_EQ(past_end->total_count, 12);
  EXPECT_TRUE(past_end->assets.empty());

  auto all = concerto.ListAssets(1, domain::kMaxAssetsPerPage);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->assets.size(), 12u);
}

TEST(FakeConcerto, ListAssetsRejectsBadPaging) {
  FakeConcerto concerto;
  EXPECT_EQ(concerto.ListAssets(0, 10).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(concerto.ListAssets(1, domain::kMaxAssetsPerPage + 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(concerto.ListAssets(1, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(concerto.CallCount(FakeConcerto::kListAssets), 3);
}

TEST(FakeConcerto, ChildrenComeFromParentLinksTwoLevelsDeep) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  auto site = concerto.CreateSite(SiteRequest("ces-site-1"));
  ASSERT_TRUE(site.ok());
  auto inverter = concerto.CreateAsset(AssetRequest(AssetType::kInverter, "inv", system, site->id));
  ASSERT_TRUE(inverter.ok());
  auto battery = concerto.CreateAsset(AssetRequest(AssetType::kBattery, "bat", inverter->id));
  auto pv = concerto.CreateAsset(AssetRequest(AssetType::kPhotovoltaic, "pv", inverter->id));
  auto meter = concerto.CreateAsset(AssetRequest(AssetType::kSiteMeter, "meter", system));
  ASSERT_TRUE(battery.ok() && pv.ok() && meter.ok());

  const domain::AssetChild battery_child{battery->id, "bat", AssetType::kBattery, {}};
  const domain::AssetChild pv_child{pv->id, "pv", AssetType::kPhotovoltaic, {}};
  const domain::AssetChild inverter_child{inverter->id, "inv", AssetType::kInverter, {battery_child, pv_child}};
  const domain::AssetChild meter_child{meter->id, "meter", AssetType::kSiteMeter, {}};

  auto page = concerto.ListAssets(1, 100);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->assets.size(), 5u);
  EXPECT_EQ(page->assets[0].id, system);
  EXPECT_EQ(page->assets[0].children, (std::vector<domain::AssetChild>{inverter_child, meter_child}));
  EXPECT_EQ(page->assets[1].children, (std::vector<domain::AssetChild>{battery_child, pv_child}));
  EXPECT_EQ(page->assets[1].parent_id, std::optional<std::string>(system));
  ASSERT_TRUE(page->assets[1].site.has_value());
  EXPECT_EQ(page->assets[1].site->id, site->id);
  EXPECT_EQ(page->assets[1].site->remote_id, "ces-site-1");
  EXPECT_TRUE(page->assets[2].children.empty());
  // The create answer already shows the new asset's place.
  EXPECT_EQ(inverter->parent_id, std::optional<std::string>(system));
}

TEST(FakeConcerto, CreateSiteAssignsIdsAndRefusesASecondRemoteId) {
  FakeConcerto concerto;
  auto site = concerto.CreateSite(SiteRequest("ces-site-1"));
  ASSERT_TRUE(site.ok());
  EXPECT_EQ(*site, (domain::ConcertoSite{"site-1", "ces-site-1", "site ces-site-1", "America/Denver", 39.74, -104.99,
                                         std::nullopt}));

  auto again = concerto.CreateSite(SiteRequest("ces-site-1"));
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(concerto.Sites().size(), 1u);

  auto other = concerto.CreateSite(SiteRequest("ces-site-2"));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->id, "site-2");
}

TEST(FakeConcerto, CreateAssetConflictIsPerAssetType) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  auto inverter = concerto.CreateAsset(AssetRequest(AssetType::kInverter, "000100073534", system));
  ASSERT_TRUE(inverter.ok());

  auto again = concerto.CreateAsset(AssetRequest(AssetType::kInverter, "000100073534", system));
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(concerto.Assets().size(), 2u);

  // The same remoteId under another type is a different thing.
  auto battery = concerto.CreateAsset(AssetRequest(AssetType::kBattery, "000100073534", inverter->id));
  ASSERT_TRUE(battery.ok());
  EXPECT_EQ(concerto.Assets().size(), 3u);
}

TEST(FakeConcerto, CreateAssetCopiesEveryField) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  domain::CreateAssetRequest request = AssetRequest(AssetType::kBattery, "bat", system);
  request.simulated = true;
  request.rated_power_kw = 6.7;
  request.energy_capacity_kwh = 18.0;
  request.ac_coupled = false;
  auto battery = concerto.CreateAsset(request);
  ASSERT_TRUE(battery.ok());
  EXPECT_EQ(battery->name, "asset bat");
  EXPECT_EQ(battery->adapter_name, std::optional<std::string>(kAdapter));
  EXPECT_TRUE(battery->simulated);
  EXPECT_EQ(battery->rated_power_kw, std::optional<double>(6.7));
  EXPECT_EQ(battery->energy_capacity_kwh, std::optional<double>(18.0));
  EXPECT_EQ(battery->ac_coupled, std::optional<bool>(false));
  EXPECT_EQ(battery->remote_state, std::nullopt);
}

TEST(FakeConcerto, CreateAssetWithUnknownReferencesIsNotFoundAndCreatesNothing) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  auto site = concerto.CreateSite(SiteRequest("s"));
  ASSERT_TRUE(site.ok());

  EXPECT_EQ(concerto.CreateAsset(AssetRequest(AssetType::kInverter, "inv", "asset-99")).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(concerto.CreateAsset(AssetRequest(AssetType::kInverter, "inv", system, "site-99")).status().code(),
            StatusCode::kNotFound);
  // A site id is not an asset id, and the reverse.
  EXPECT_EQ(concerto.CreateAsset(AssetRequest(AssetType::kInverter, "inv", site->id)).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(concerto.CreateAsset(AssetRequest(AssetType::kInverter, "inv", system, system)).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(concerto.Assets().size(), 1u);
  // The failed attempts took no id.
  auto inverter = concerto.CreateAsset(AssetRequest(AssetType::kInverter, "inv", system, site->id));
  ASSERT_TRUE(inverter.ok());
  EXPECT_EQ(inverter->id, "asset-2");
}

TEST(FakeConcerto, LookupsByRemoteId) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  ASSERT_TRUE(concerto.CreateSite(SiteRequest("ces-site-1")).ok());

  auto found = concerto.AssetByRemoteId(AssetType::kSystem, "sys-1");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, system);

  auto wrong_type = concerto.AssetByRemoteId(AssetType::kInverter, "sys-1");
  ASSERT_TRUE(wrong_type.ok());
  EXPECT_FALSE(wrong_type->has_value());

  auto site = concerto.SiteByRemoteId("ces-site-1");
  ASSERT_TRUE(site.ok());
  ASSERT_TRUE(site->has_value());
  EXPECT_EQ((*site)->id, "site-1");

  auto no_site = concerto.SiteByRemoteId("nope");
  ASSERT_TRUE(no_site.ok());
  EXPECT_FALSE(no_site->has_value());
}

TEST(FakeConcerto, UpdateAssetChangesOnlyGivenFields) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter, false, 7.6);
  auto site = concerto.CreateSite(SiteRequest("s"));
  ASSERT_TRUE(site.ok());

  domain::UpdateAssetRequest update;
  update.id = system;
  update.site_id = site->id;
  update.ac_coupled = true;
  auto updated = concerto.UpdateAsset(update);
  ASSERT_TRUE(updated.ok());
  ASSERT_TRUE(updated->site.has_value());
  EXPECT_EQ(updated->site->id, site->id);
  EXPECT_EQ(updated->ac_coupled, std::optional<bool>(true));
  EXPECT_EQ(updated->rated_power_kw, std::optional<double>(7.6));
  EXPECT_EQ(concerto.Asset(system)->site->id, site->id);
}

TEST(FakeConcerto, UpdateAssetUnknownIdsAreNotFound) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  domain::UpdateAssetRequest unknown_asset;
  unknown_asset.id = "asset-42";
  EXPECT_EQ(concerto.UpdateAsset(unknown_asset).status().code(), StatusCode::kNotFound);

  domain::UpdateAssetRequest unknown_site;
  unknown_site.id = system;
  unknown_site.site_id = "site-42";
  unknown_site.rated_power_kw = 1.0;
  EXPECT_EQ(concerto.UpdateAsset(unknown_site).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(concerto.Asset(system)->rated_power_kw, std::nullopt);
}

TEST(FakeConcerto, RemoteStateUpdatesAreAppliedAndKeptInHistory) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  auto site = concerto.CreateSite(SiteRequest("s"));
  ASSERT_TRUE(site.ok());

  const domain::RemoteStateUpdate offline{system, RemoteState::kOffline, "no telemetry for 960 s"};
  const domain::RemoteStateUpdate online{system, RemoteState::kOnline, "telemetry resumed"};
  ASSERT_TRUE(concerto.UpdateAssetRemoteState(offline).ok());
  ASSERT_TRUE(concerto.UpdateAssetRemoteState(online).ok());
  const domain::RemoteStateUpdate site_error{site->id, RemoteState::kError, "CES status DISCONNECTED"};
  ASSERT_TRUE(concerto.UpdateSiteRemoteState(site_error).ok());

  EXPECT_EQ(concerto.AssetRemoteStateHistory(), (std::vector<domain::RemoteStateUpdate>{offline, online}));
  EXPECT_EQ(concerto.SiteRemoteStateHistory(), (std::vector<domain::RemoteStateUpdate>{site_error}));
  EXPECT_EQ(concerto.Asset(system)->remote_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_EQ(concerto.Site(site->id)->remote_state, std::optional<RemoteState>(RemoteState::kError));
}

TEST(FakeConcerto, RemoteStateOnUnknownIdIsNotFoundAndNotRecorded) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  EXPECT_EQ(concerto.UpdateAssetRemoteState({"asset-9", RemoteState::kOnline, ""}).code(), StatusCode::kNotFound);
  EXPECT_EQ(concerto.UpdateSiteRemoteState({"site-9", RemoteState::kOnline, ""}).code(), StatusCode::kNotFound);
  // An asset id does not name a site.
  EXPECT_EQ(concerto.UpdateSiteRemoteState({system, RemoteState::kOnline, ""}).code(), StatusCode::kNotFound);
  EXPECT_TRUE(concerto.AssetRemoteStateHistory().empty());
  EXPECT_TRUE(concerto.SiteRemoteStateHistory().empty());
}

TEST(FakeConcerto, IngestDedupesOnAssetMetricTimestamp) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  auto first = concerto.IngestTelemetry({Point(system, Metric::kRealPower, 1000, 1.5),
                                         Point(system, Metric::kVoltage, 1000, 240),
                                         Point(system, Metric::kRealPower, 1000, 9.9)});  // repeat inside the call
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, (domain::IngestResult{2, 1, {}}));

  auto second = concerto.IngestTelemetry(
      {Point(system, Metric::kRealPower, 1000, 1.5), Point(system, Metric::kRealPower, 2000, 1.6)});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, (domain::IngestResult{1, 1, {}}));

  EXPECT_EQ(concerto.Points(), (std::vector<domain::TelemetryPoint>{Point(system, Metric::kRealPower, 1000, 1.5),
                                                                    Point(system, Metric::kVoltage, 1000, 240),
                                                                    Point(system, Metric::kRealPower, 2000, 1.6)}));
}

TEST(FakeConcerto, IngestRejectsUnknownAssetsByIndexAndStoresTheRest) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  auto result = concerto.IngestTelemetry({Point("asset-77", Metric::kRealPower, 1000, 1),
                                          Point(system, Metric::kRealPower, 1000, 2),
                                          Point("site-1", Metric::kRealPower, 1000, 3)});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->accepted, 1);
  EXPECT_EQ(result->duplicates, 0);
  ASSERT_EQ(result->rejected.size(), 2u);
  EXPECT_EQ(result->rejected[0].index, 0);
  EXPECT_EQ(result->rejected[1].index, 2);
  EXPECT_EQ(concerto.Points().size(), 1u);
}

TEST(FakeConcerto, IngestOverTheLimitStoresNothing) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  std::vector<domain::TelemetryPoint> points;
  for (std::size_t i = 0; i <= domain::kMaxPointsPerIngest; ++i) {
    points.push_back(Point(system, Metric::kRealPower, static_cast<std::int64_t>(i) * 1000, 1));
  }
  EXPECT_EQ(concerto.IngestTelemetry(points).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(concerto.Points().empty());

  points.pop_back();
  auto at_limit = concerto.IngestTelemetry(points);
  ASSERT_TRUE(at_limit.ok());
  EXPECT_EQ(at_limit->accepted, static_cast<int>(domain::kMaxPointsPerIngest));
}

TEST(FakeConcerto, RemoveAssetDropsItAndUnlinksItsChildren) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  auto inverter = concerto.CreateAsset(AssetRequest(AssetType::kInverter, "inv", system));
  ASSERT_TRUE(inverter.ok());

  EXPECT_TRUE(concerto.RemoveAsset(system));
  EXPECT_FALSE(concerto.RemoveAsset(system));
  EXPECT_FALSE(concerto.Asset(system).has_value());
  auto page = concerto.ListAssets(1, 10);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->total_count, 1);
  ASSERT_EQ(page->assets.size(), 1u);
  EXPECT_EQ(page->assets[0].parent_id, std::nullopt);
  // The SYSTEM's remoteId is free again.
  EXPECT_EQ(concerto.EnrollSystem("sys-1", "Smith", kAdapter), "asset-3");
}

TEST(FakeConcerto, FailNextFailsTheNextCallsThenRecovers) {
  FakeConcerto concerto;
  concerto.FailNext(FakeConcerto::kCreateSite, UnavailableError("HTTP 503"), 2);
  concerto.FailNext(FakeConcerto::kCreateSite, ResourceExhaustedError("HTTP 429"));

  EXPECT_EQ(concerto.CreateSite(SiteRequest("s")).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(concerto.CreateSite(SiteRequest("s")).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(concerto.CreateSite(SiteRequest("s")).status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(concerto.Sites().empty());  // a refused call changes nothing
  EXPECT_TRUE(concerto.CreateSite(SiteRequest("s")).ok());
  EXPECT_EQ(concerto.CallCount(FakeConcerto::kCreateSite), 4);
  // Faults are per operation.
  EXPECT_TRUE(concerto.ListAssets(1, 10).ok());
}

TEST(FakeConcerto, FailNextOnStatusOperations) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  concerto.FailNext(FakeConcerto::kUpdateAssetRemoteState, DeadlineExceededError("timeout"));
  EXPECT_EQ(concerto.UpdateAssetRemoteState({system, RemoteState::kOnline, ""}).code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(concerto.AssetRemoteStateHistory().empty());
  EXPECT_TRUE(concerto.UpdateAssetRemoteState({system, RemoteState::kOnline, ""}).ok());
  EXPECT_EQ(concerto.AssetRemoteStateHistory().size(), 1u);
}

TEST(FakeConcerto, LostResponseAppliesTheCallSoTheRetryMeetsConflict) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  concerto.LoseNextResponse(FakeConcerto::kCreateAsset, DeadlineExceededError("timeout after commit"));

  EXPECT_EQ(concerto.CreateAsset(AssetRequest(AssetType::kInverter, "inv", system)).status().code(),
            StatusCode::kDeadlineExceeded);
  EXPECT_EQ(concerto.Assets().size(), 2u);
  EXPECT_EQ(concerto.CreateAsset(AssetRequest(AssetType::kInverter, "inv", system)).status().code(),
            StatusCode::kAlreadyExists);
  auto found = concerto.AssetByRemoteId(AssetType::kInverter, "inv");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->parent_id, std::optional<std::string>(system));
}

TEST(FakeConcerto, ConcurrentIngestCountsEveryPointOnce) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  constexpr int kThreads = 4;
  constexpr int kPointsPerCall = 100;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  std::vector<domain::IngestResult> results(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<domain::TelemetryPoint> points;
      points.reserve(kPointsPerCall);
      // Every thread sends the same timestamps: exactly one copy of each may be stored.
      for (int i = 0; i < kPointsPerCall; ++i)
        points.push_back(Point(system, Metric::kRealPower, std::int64_t{i} * 1000, t));
      auto result = concerto.IngestTelemetry(points);
      if (result.ok()) results[t] = *result;
    });
  }
  for (auto& thread : threads) thread.join();
  int accepted = 0;
  int duplicates = 0;
  for (const auto& r : results) {
    accepted += r.accepted;
    duplicates += r.duplicates;
  }
  EXPECT_EQ(accepted, kPointsPerCall);
  EXPECT_EQ(duplicates, (kThreads - 1) * kPointsPerCall);
  EXPECT_EQ(concerto.Points().size(), static_cast<std::size_t>(kPointsPerCall));
  EXPECT_EQ(concerto.CallCount(FakeConcerto::kIngestTelemetry), kThreads);
}

}  // namespace
}  // namespace pwrcell::adapters
