// The ConcertoApi contract, run on every backend (see concerto_api_suite.h). Ids are opaque here:
// a test compares them with ids the backend handed out, never with a spelling.
#include "api/concerto_api_suite.h"

#include <cmath>
#include <limits>
#include <thread>

namespace pwrcell::conformance {

using domain::AssetType;
using domain::Metric;
using domain::RemoteState;

namespace {

constexpr const char* kAdapter = "pwrcell-adapter";
constexpr std::string_view kListAssets = "ListAssets";
constexpr std::string_view kCreateSite = "CreateSite";
constexpr std::string_view kCreateAsset = "CreateAsset";
constexpr std::string_view kUpdateAssetRemoteState = "UpdateAssetRemoteState";
constexpr std::string_view kIngestTelemetry = "IngestTelemetry";

// Telemetry times: a realistic instant plus milliseconds, so sub-second precision is exercised.
Timestamp At(std::int64_t ms) {
  return FromUnixMillis(1'782'036'000'000 + ms);
}  // 2026-06-21T10:00:00Z

domain::TelemetryPoint Point(const std::string& asset_id, Metric metric, std::int64_t ms, double value) {
  return domain::TelemetryPoint{asset_id, metric, At(ms), value};
}

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

std::vector<std::string> Ids(const std::vector<domain::ConcertoAsset>& assets) {
  std::vector<std::string> ids;
  ids.reserve(assets.size());
  for (const auto& a : assets) ids.push_back(a.id);
  return ids;
}

}  // namespace

void ConcertoApiConformance::SetUp() {
  backend_ = GetParam().make();
  ASSERT_NE(backend_, nullptr) << "backend " << GetParam().name << " could not start";
}

std::optional<domain::ConcertoAsset> ConcertoApiConformance::System(const std::string& remote_id) {
  auto found = api().AssetByRemoteId(AssetType::kSystem, remote_id);
  EXPECT_TRUE(found.ok()) << found.status().ToString();
  if (!found.ok()) return std::nullopt;
  EXPECT_TRUE(found->has_value()) << "no SYSTEM with remoteId " << remote_id;
  return *found;
}

std::string ConcertoApiConformance::Enroll(const std::string& remote_id, bool simulated,
                                           std::optional<double> rated_power_kw) {
  return backend().EnrollSystem({remote_id, "Smith", kAdapter, simulated, rated_power_kw});
}

namespace {

int TotalCount(ports::ConcertoApi& api) {
  auto page = api.ListAssets(1, 1);
  EXPECT_TRUE(page.ok()) << page.status().ToString();
  return page.ok() ? page->total_count : -1;
}

TEST_P(ConcertoApiConformance, EnrolledSystemIsAnUnplacedSystemAssetOfItsAdapter) {
  const std::string id = backend().EnrollSystem({"sys-1", "Smith", kAdapter, true, 7.6});
  ASSERT_FALSE(id.empty());
  auto asset = System("sys-1");
  ASSERT_TRUE(asset.has_value());
  EXPECT_EQ(asset->id, id);
  EXPECT_EQ(asset->remote_id, "sys-1");
  EXPECT_EQ(asset->name, "Smith");
  EXPECT_EQ(asset->asset_type, AssetType::kSystem);
  EXPECT_EQ(asset->adapter_name, std::optional<std::string>(kAdapter));
  EXPECT_TRUE(asset->simulated);
  EXPECT_EQ(asset->rated_power_kw, std::optional<double>(7.6));
  EXPECT_EQ(asset->energy_capacity_kwh, std::nullopt);
  EXPECT_EQ(asset->ac_coupled, std::nullopt);
  EXPECT_EQ(asset->remote_state, std::nullopt);
  EXPECT_EQ(asset->site, std::nullopt);
  EXPECT_EQ(asset->parent_id, std::nullopt);
  EXPECT_TRUE(asset->children.empty());

  const std::string foreign = backend().EnrollSystem({"other", "Other", std::nullopt, false, std::nullopt});
  ASSERT_FALSE(foreign.empty());
  EXPECT_NE(foreign, id);
  auto unserved = System("other");
  ASSERT_TRUE(unserved.has_value());
  EXPECT_EQ(unserved->adapter_name, std::nullopt);
  EXPECT_FALSE(unserved->simulated);
}

TEST_P(ConcertoApiConformance, ListAssetsPagesInIdOrderWithTotalCount) {
  // Both backends hand out increasing ids, so id order is creation order; the tenth asset must
  // follow the ninth (numeric, not lexicographic order).
  std::vector<std::string> ids;
  for (int i = 1; i <= 12; ++i) ids.push_back(Enroll("sys-" + std::to_string(i)));

  auto first = api().ListAssets(1, 5);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->total_count, 12);
  EXPECT_EQ(Ids(first->assets), std::vector<std::string>(ids.begin(), ids.begin() + 5));

  auto second = api().ListAssets(2, 5);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(Ids(second->assets), std::vector<std::string>(ids.begin() + 5, ids.begin() + 10));

  auto last = api().ListAssets(3, 5);
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  EXPECT_EQ(Ids(last->assets), std::vector<std::string>(ids.begin() + 10, ids.end()));

  auto past_end = api().ListAssets(4, 5);
  ASSERT_TRUE(past_end.ok()) << past_end.status().ToString();
  EXPECT_EQ(past_end->total_count, 12);
  EXPECT_TRUE(past_end->assets.empty());

  auto all = api().ListAssets(1, domain::kMaxAssetsPerPage);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(Ids(all->assets), ids);
}

TEST_P(ConcertoApiConformance, ListAssetsRejectsBadPaging) {
  EXPECT_EQ(api().ListAssets(0, 10).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(api().ListAssets(-1, 10).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(api().ListAssets(1, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(api().ListAssets(1, domain::kMaxAssetsPerPage + 1).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(ConcertoApiConformance, ChildrenComeFromParentLinksTwoLevelsDeep) {
  const std::string system = Enroll("sys-1");
  auto site = api().CreateSite(SiteRequest("ces-site-1"));
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  auto inverter = api().CreateAsset(AssetRequest(AssetType::kInverter, "inv", system, site->id));
  ASSERT_TRUE(inverter.ok()) << inverter.status().ToString();
  auto battery = api().CreateAsset(AssetRequest(AssetType::kBattery, "bat", inverter->id));
  auto pv = api().CreateAsset(AssetRequest(AssetType::kPhotovoltaic, "pv", inverter->id));
  auto meter = api().CreateAsset(AssetRequest(AssetType::kSiteMeter, "meter", system));
  ASSERT_TRUE(battery.ok() && pv.ok() && meter.ok());

  const domain::AssetChild battery_child{battery->id, "bat", AssetType::kBattery, {}};
  const domain::AssetChild pv_child{pv->id, "pv", AssetType::kPhotovoltaic, {}};
  const domain::AssetChild inverter_child{inverter->id, "inv", AssetType::kInverter, {battery_child, pv_child}};
  const domain::AssetChild meter_child{meter->id, "meter", AssetType::kSiteMeter, {}};

  auto page = api().ListAssets(1, 100);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->assets.size(), 5u);
  EXPECT_EQ(page->assets[0].id, system);
  EXPECT_EQ(page->assets[0].children, (std::vector<domain::AssetChild>{inverter_child, meter_child}));
  EXPECT_EQ(page->assets[1].id, inverter->id);
  EXPECT_EQ(page->assets[1].children, (std::vector<domain::AssetChild>{battery_child, pv_child}));
  EXPECT_EQ(page->assets[1].parent_id, std::optional<std::string>(system));
  ASSERT_TRUE(page->assets[1].site.has_value());
  EXPECT_EQ(page->assets[1].site->id, site->id);
  EXPECT_EQ(page->assets[1].site->remote_id, "ces-site-1");
  EXPECT_EQ(page->assets[1].site->name, "site ces-site-1");
  EXPECT_TRUE(page->assets[2].children.empty());
  EXPECT_EQ(page->assets[2].parent_id, std::optional<std::string>(inverter->id));
  EXPECT_EQ(page->assets[2].site, std::nullopt);  // a child does not inherit its parent's site
  // The create answer already shows the new asset's place.
  EXPECT_EQ(inverter->parent_id, std::optional<std::string>(system));
  ASSERT_TRUE(inverter->site.has_value());
  EXPECT_EQ(inverter->site->id, site->id);
  // A lookup shows the same tree as the listing.
  auto looked_up = System("sys-1");
  ASSERT_TRUE(looked_up.has_value());
  EXPECT_EQ(*looked_up, page->assets[0]);
}

// ConcertoAsset::site is a reference: the site's id, remoteId and name, as the client reads them.
// The site itself (SiteByRemoteId) has the rest.
TEST_P(ConcertoApiConformance, AnAssetsSiteCarriesItsIdRemoteIdAndName) {
  const std::string system = Enroll("sys-1");
  auto site = api().CreateSite(SiteRequest("ces-site-1"));
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  ASSERT_TRUE(api().UpdateSiteRemoteState({site->id, RemoteState::kOnline, "1 of 1 systems ONLINE"}).ok());
  domain::UpdateAssetRequest place;
  place.id = system;
  place.site_id = site->id;
  ASSERT_TRUE(api().UpdateAsset(place).ok());

  const domain::ConcertoSite reference{site->id,     "ces-site-1", "site ces-site-1", "",
                                       std::nullopt, std::nullopt, std::nullopt};
  auto asset = System("sys-1");
  ASSERT_TRUE(asset.has_value());
  EXPECT_EQ(asset->site, std::optional<domain::ConcertoSite>(reference));
  auto page = api().ListAssets(1, 10);
  ASSERT_TRUE(page.ok() && page->assets.size() == 1u);
  EXPECT_EQ(page->assets[0].site, std::optional<domain::ConcertoSite>(reference));
  auto full = api().SiteByRemoteId("ces-site-1");
  ASSERT_TRUE(full.ok() && full->has_value());
  EXPECT_EQ((*full)->timezone, "America/Denver");
  EXPECT_EQ((*full)->remote_state, std::optional<RemoteState>(RemoteState::kOnline));
}

TEST_P(ConcertoApiConformance, CreateSiteEchoesItsFieldsAndRefusesASecondRemoteId) {
  auto site = api().CreateSite(SiteRequest("ces-site-1"));
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  EXPECT_FALSE(site->id.empty());
  EXPECT_EQ(site->remote_id, "ces-site-1");
  EXPECT_EQ(site->name, "site ces-site-1");
  EXPECT_EQ(site->timezone, "America/Denver");
  EXPECT_EQ(site->latitude, std::optional<double>(39.74));
  EXPECT_EQ(site->longitude, std::optional<double>(-104.99));
  EXPECT_EQ(site->remote_state, std::nullopt);

  auto again = api().CreateSite(SiteRequest("ces-site-1"));
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  auto found = api().SiteByRemoteId("ces-site-1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, *site);

  // Optional fields may be left out.
  auto bare = api().CreateSite({"ces-site-2", "Jones", "", std::nullopt, std::nullopt});
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  EXPECT_NE(bare->id, site->id);
  EXPECT_EQ(bare->timezone, "");
  EXPECT_EQ(bare->latitude, std::nullopt);
  EXPECT_EQ(bare->longitude, std::nullopt);
}

TEST_P(ConcertoApiConformance, CreateAssetConflictIsPerAssetType) {
  const std::string system = Enroll("sys-1");
  auto inverter = api().CreateAsset(AssetRequest(AssetType::kInverter, "000100073534", system));
  ASSERT_TRUE(inverter.ok()) << inverter.status().ToString();

  auto again = api().CreateAsset(AssetRequest(AssetType::kInverter, "000100073534", system));
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(TotalCount(api()), 2);

  // The same remoteId under another type is a different thing.
  auto battery = api().CreateAsset(AssetRequest(AssetType::kBattery, "000100073534", inverter->id));
  ASSERT_TRUE(battery.ok()) << battery.status().ToString();
  EXPECT_EQ(TotalCount(api()), 3);
  // A SYSTEM created through the API conflicts with the enrolled one like any other asset.
  EXPECT_EQ(api().CreateAsset(AssetRequest(AssetType::kSystem, "sys-1")).status().code(), StatusCode::kAlreadyExists);
}

TEST_P(ConcertoApiConformance, CreateAssetCopiesEveryField) {
  const std::string system = Enroll("sys-1");
  domain::CreateAssetRequest request = AssetRequest(AssetType::kBattery, "bat", system);
  request.simulated = true;
  request.rated_power_kw = 6.7;
  request.energy_capacity_kwh = 18.0;
  request.ac_coupled = false;
  auto battery = api().CreateAsset(request);
  ASSERT_TRUE(battery.ok()) << battery.status().ToString();
  EXPECT_EQ(battery->remote_id, "bat");
  EXPECT_EQ(battery->asset_type, AssetType::kBattery);
  EXPECT_EQ(battery->name, "asset bat");
  EXPECT_EQ(battery->adapter_name, std::optional<std::string>(kAdapter));
  EXPECT_TRUE(battery->simulated);
  EXPECT_EQ(battery->rated_power_kw, std::optional<double>(6.7));
  EXPECT_EQ(battery->energy_capacity_kwh, std::optional<double>(18.0));
  EXPECT_EQ(battery->ac_coupled, std::optional<bool>(false));
  EXPECT_EQ(battery->remote_state, std::nullopt);
  EXPECT_EQ(battery->site, std::nullopt);
  EXPECT_EQ(battery->parent_id, std::optional<std::string>(system));

  auto found = api().AssetByRemoteId(AssetType::kBattery, "bat");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, *battery);

  // Optional numbers left out stay unset (not 0); simulated defaults to false.
  auto plain = api().CreateAsset(AssetRequest(AssetType::kPhotovoltaic, "pv", system));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_FALSE(plain->simulated);
  EXPECT_EQ(plain->rated_power_kw, std::nullopt);
  EXPECT_EQ(plain->energy_capacity_kwh, std::nullopt);
  EXPECT_EQ(plain->ac_coupled, std::nullopt);
}

TEST_P(ConcertoApiConformance, CreateAssetWithUnknownReferencesIsNotFoundAndCreatesNothing) {
  const std::string system = Enroll("sys-1");
  auto site = api().CreateSite(SiteRequest("s"));
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  const std::string unused = backend().UnusedId();

  EXPECT_EQ(api().CreateAsset(AssetRequest(AssetType::kInverter, "inv", unused)).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(api().CreateAsset(AssetRequest(AssetType::kInverter, "inv", system, unused)).status().code(),
            StatusCode::kNotFound);
  // A site id is not an asset id, and the reverse.
  EXPECT_EQ(api().CreateAsset(AssetRequest(AssetType::kInverter, "inv", site->id)).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(api().CreateAsset(AssetRequest(AssetType::kInverter, "inv", system, system)).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(TotalCount(api()), 1);
  // CONFLICT is judged before the references.
  EXPECT_EQ(api().CreateAsset(AssetRequest(AssetType::kSystem, "sys-1", unused)).status().code(),
            StatusCode::kAlreadyExists);

  auto inverter = api().CreateAsset(AssetRequest(AssetType::kInverter, "inv", system, site->id));
  ASSERT_TRUE(inverter.ok()) << inverter.status().ToString();
  EXPECT_EQ(TotalCount(api()), 2);
}

TEST_P(ConcertoApiConformance, LookupsByRemoteId) {
  const std::string system = Enroll("sys-1");
  auto created = api().CreateSite(SiteRequest("ces-site-1"));
  ASSERT_TRUE(created.ok()) << created.status().ToString();

  auto found = api().AssetByRemoteId(AssetType::kSystem, "sys-1");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, system);

  auto wrong_type = api().AssetByRemoteId(AssetType::kInverter, "sys-1");
  ASSERT_TRUE(wrong_type.ok()) << wrong_type.status().ToString();
  EXPECT_FALSE(wrong_type->has_value());

  auto site = api().SiteByRemoteId("ces-site-1");
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  ASSERT_TRUE(site->has_value());
  EXPECT_EQ((*site)->id, created->id);

  auto no_site = api().SiteByRemoteId("nope");
  ASSERT_TRUE(no_site.ok()) << no_site.status().ToString();
  EXPECT_FALSE(no_site->has_value());
  // A site's remoteId does not name an asset.
  auto not_an_asset = api().AssetByRemoteId(AssetType::kSystem, "ces-site-1");
  ASSERT_TRUE(not_an_asset.ok());
  EXPECT_FALSE(not_an_asset->has_value());
}

TEST_P(ConcertoApiConformance, UpdateAssetChangesOnlyGivenFields) {
  const std::string system = Enroll("sys-1", false, 7.6);
  auto site = api().CreateSite(SiteRequest("s"));
  ASSERT_TRUE(site.ok()) << site.status().ToString();

  domain::UpdateAssetRequest update;
  update.id = system;
  update.site_id = site->id;
  update.ac_coupled = true;
  auto updated = api().UpdateAsset(update);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  ASSERT_TRUE(updated->site.has_value());
  EXPECT_EQ(updated->site->id, site->id);
  EXPECT_EQ(updated->ac_coupled, std::optional<bool>(true));
  EXPECT_EQ(updated->rated_power_kw, std::optional<double>(7.6));
  EXPECT_EQ(updated->energy_capacity_kwh, std::nullopt);

  auto read_back = System("sys-1");
  ASSERT_TRUE(read_back.has_value());
  EXPECT_EQ(*read_back, *updated);

  domain::UpdateAssetRequest numbers;
  numbers.id = system;
  numbers.rated_power_kw = 11.4;
  numbers.energy_capacity_kwh = 9;
  auto renumbered = api().UpdateAsset(numbers);
  ASSERT_TRUE(renumbered.ok()) << renumbered.status().ToString();
  EXPECT_EQ(renumbered->rated_power_kw, std::optional<double>(11.4));
  EXPECT_EQ(renumbered->energy_capacity_kwh, std::optional<double>(9));
  EXPECT_EQ(renumbered->ac_coupled, std::optional<bool>(true));  // kept
  ASSERT_TRUE(renumbered->site.has_value());                     // kept
  EXPECT_EQ(renumbered->site->id, site->id);
}

TEST_P(ConcertoApiConformance, UpdateAssetUnknownIdsAreNotFoundAndChangeNothing) {
  const std::string system = Enroll("sys-1");
  auto site = api().CreateSite(SiteRequest("s"));
  ASSERT_TRUE(site.ok()) << site.status().ToString();

  domain::UpdateAssetRequest unknown_asset;
  unknown_asset.id = backend().UnusedId();
  unknown_asset.rated_power_kw = 1.0;
  EXPECT_EQ(api().UpdateAsset(unknown_asset).status().code(), StatusCode::kNotFound);
  unknown_asset.id = site->id;  // a site id is not an asset id
  EXPECT_EQ(api().UpdateAsset(unknown_asset).status().code(), StatusCode::kNotFound);

  domain::UpdateAssetRequest unknown_site;
  unknown_site.id = system;
  unknown_site.site_id = backend().UnusedId();
  unknown_site.rated_power_kw = 1.0;
  EXPECT_EQ(api().UpdateAsset(unknown_site).status().code(), StatusCode::kNotFound);
  auto unchanged = System("sys-1");
  ASSERT_TRUE(unchanged.has_value());
  EXPECT_EQ(unchanged->rated_power_kw, std::nullopt);
  EXPECT_EQ(unchanged->site, std::nullopt);
}

TEST_P(ConcertoApiConformance, RemoteStateUpdatesAreAppliedAndKeptInHistory) {
  const std::string system = Enroll("sys-1");
  auto site = api().CreateSite(SiteRequest("s"));
  ASSERT_TRUE(site.ok()) << site.status().ToString();

  const domain::RemoteStateUpdate offline{system, RemoteState::kOffline, "no telemetry for 960 s"};
  const domain::RemoteStateUpdate online{system, RemoteState::kOnline, ""};  // the reason is optional
  ASSERT_TRUE(api().UpdateAssetRemoteState(offline).ok());
  ASSERT_TRUE(api().UpdateAssetRemoteState(online).ok());
  const domain::RemoteStateUpdate site_error{site->id, RemoteState::kError, "CES status DISCONNECTED"};
  ASSERT_TRUE(api().UpdateSiteRemoteState(site_error).ok());

  EXPECT_EQ(backend().AssetRemoteStateHistory(), (std::vector<domain::RemoteStateUpdate>{offline, online}));
  EXPECT_EQ(backend().SiteRemoteStateHistory(), (std::vector<domain::RemoteStateUpdate>{site_error}));
  auto asset = System("sys-1");
  ASSERT_TRUE(asset.has_value());
  EXPECT_EQ(asset->remote_state, std::optional<RemoteState>(RemoteState::kOnline));
  auto read_site = api().SiteByRemoteId("s");
  ASSERT_TRUE(read_site.ok() && read_site->has_value());
  EXPECT_EQ((*read_site)->remote_state, std::optional<RemoteState>(RemoteState::kError));
}

TEST_P(ConcertoApiConformance, RemoteStateOnUnknownIdIsNotFoundAndNotRecorded) {
  const std::string system = Enroll("sys-1");
  auto site = api().CreateSite(SiteRequest("s"));
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  const std::string unused = backend().UnusedId();
  EXPECT_EQ(api().UpdateAssetRemoteState({unused, RemoteState::kOnline, ""}).code(), StatusCode::kNotFound);
  EXPECT_EQ(api().UpdateSiteRemoteState({unused, RemoteState::kOnline, ""}).code(), StatusCode::kNotFound);
  // An asset id does not name a site, and the reverse.
  EXPECT_EQ(api().UpdateSiteRemoteState({system, RemoteState::kOnline, ""}).code(), StatusCode::kNotFound);
  EXPECT_EQ(api().UpdateAssetRemoteState({site->id, RemoteState::kOnline, ""}).code(), StatusCode::kNotFound);
  EXPECT_TRUE(backend().AssetRemoteStateHistory().empty());
  EXPECT_TRUE(backend().SiteRemoteStateHistory().empty());
}

TEST_P(ConcertoApiConformance, IngestStoresEachAssetMetricTimestampOnce) {
  const std::string system = Enroll("sys-1");
  auto first =
      api().IngestTelemetry({Point(system, Metric::kRealPower, 0, 1.5), Point(system, Metric::kVoltage, 0, 240),
                             Point(system, Metric::kRealPower, 0, 9.9)});  // repeat inside the call
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, (domain::IngestResult{2, 1, {}}));

  // Timestamps are compared to the millisecond.
  auto second =
      api().IngestTelemetry({Point(system, Metric::kRealPower, 0, 1.5), Point(system, Metric::kRealPower, 250, -1.6),
                             Point(system, Metric::kRealPower, 300'000, 2.5)});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*second, (domain::IngestResult{2, 1, {}}));

  // The first value of a repeated point is the one kept.
  EXPECT_EQ(backend().Points(),
            (std::vector<domain::TelemetryPoint>{
                Point(system, Metric::kRealPower, 0, 1.5), Point(system, Metric::kVoltage, 0, 240),
                Point(system, Metric::kRealPower, 250, -1.6), Point(system, Metric::kRealPower, 300'000, 2.5)}));
}

TEST_P(ConcertoApiConformance, IngestRejectsUnknownAssetsByIndexAndStoresTheRest) {
  const std::string system = Enroll("sys-1");
  auto site = api().CreateSite(SiteRequest("s"));
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  auto result = api().IngestTelemetry({Point(backend().UnusedId(), Metric::kRealPower, 0, 1),
                                       Point(system, Metric::kRealPower, 0, 2),
                                       Point(site->id, Metric::kRealPower, 0, 3)});  // a site is not an asset
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->accepted, 1);
  EXPECT_EQ(result->duplicates, 0);
  ASSERT_EQ(result->rejected.size(), 2u);
  EXPECT_EQ(result->rejected[0].index, 0);
  EXPECT_FALSE(result->rejected[0].message.empty());
  EXPECT_EQ(result->rejected[1].index, 2);
  EXPECT_EQ(backend().Points(), (std::vector<domain::TelemetryPoint>{Point(system, Metric::kRealPower, 0, 2)}));
}

TEST_P(ConcertoApiConformance, IngestOverTheLimitStoresNothing) {
  const std::string system = Enroll("sys-1");
  std::vector<domain::TelemetryPoint> points;
  for (std::size_t i = 0; i <= domain::kMaxPointsPerIngest; ++i) {
    points.push_back(Point(system, Metric::kRealPower, static_cast<std::int64_t>(i) * 1000, 1));
  }
  EXPECT_EQ(api().IngestTelemetry(points).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(backend().Points().empty());

  points.pop_back();
  auto at_limit = api().IngestTelemetry(points);
  ASSERT_TRUE(at_limit.ok()) << at_limit.status().ToString();
  EXPECT_EQ(at_limit->accepted, static_cast<int>(domain::kMaxPointsPerIngest));
  EXPECT_EQ(backend().Points().size(), domain::kMaxPointsPerIngest);
}

// TelemetryPointInput.value is a GraphQL Float!, which cannot be NaN or infinite: such a call
// cannot be made, and nothing of it is stored.
TEST_P(ConcertoApiConformance, IngestOfANonFiniteValueIsInvalidAndStoresNothing) {
  const std::string system = Enroll("sys-1");
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    auto result =
        api().IngestTelemetry({Point(system, Metric::kRealPower, 0, 1), Point(system, Metric::kVoltage, 0, bad)});
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(backend().Points().empty());
}

TEST_P(ConcertoApiConformance, EmptyIngestAcceptsNothing) {
  auto empty = api().IngestTelemetry({});
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(*empty, domain::IngestResult{});
}

TEST_P(ConcertoApiConformance, RemovedAssetIsGoneAndItsChildrenLoseTheirParent) {
  const std::string system = Enroll("sys-1");
  auto inverter = api().CreateAsset(AssetRequest(AssetType::kInverter, "inv", system));
  ASSERT_TRUE(inverter.ok()) << inverter.status().ToString();

  EXPECT_TRUE(backend().RemoveAsset(system));
  EXPECT_FALSE(backend().RemoveAsset(system));
  auto gone = api().AssetByRemoteId(AssetType::kSystem, "sys-1");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  auto page = api().ListAssets(1, 10);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->total_count, 1);
  ASSERT_EQ(page->assets.size(), 1u);
  EXPECT_EQ(page->assets[0].id, inverter->id);
  EXPECT_EQ(page->assets[0].parent_id, std::nullopt);
  // The removed id takes no more updates or telemetry.
  EXPECT_EQ(api().UpdateAssetRemoteState({system, RemoteState::kOnline, ""}).code(), StatusCode::kNotFound);
  auto ingest = api().IngestTelemetry({Point(system, Metric::kRealPower, 0, 1)});
  ASSERT_TRUE(ingest.ok()) << ingest.status().ToString();
  EXPECT_EQ(ingest->rejected.size(), 1u);
  // The SYSTEM's remoteId is free again.
  const std::string again = Enroll("sys-1");
  ASSERT_FALSE(again.empty());
  auto found = System("sys-1");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, again);
}

TEST_P(ConcertoApiConformance, RefusedCallsChangeNothingAndTheServiceRecovers) {
  backend().FailNext(kCreateSite, Outage::kServerError, 2);
  backend().FailNext(kCreateSite, Outage::kRateLimited, 1);

  EXPECT_EQ(api().CreateSite(SiteRequest("s")).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(api().CreateSite(SiteRequest("s")).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(api().CreateSite(SiteRequest("s")).status().code(), StatusCode::kResourceExhausted);
  auto nothing = api().SiteByRemoteId("s");  // a refused call changes nothing
  ASSERT_TRUE(nothing.ok()) << nothing.status().ToString();
  EXPECT_FALSE(nothing->has_value());
  EXPECT_TRUE(api().CreateSite(SiteRequest("s")).ok());
  EXPECT_EQ(backend().CallCount(kCreateSite), 4);
  // Faults are per operation.
  EXPECT_TRUE(api().ListAssets(1, 10).ok());
  EXPECT_EQ(backend().CallCount(kListAssets), 1);
}

TEST_P(ConcertoApiConformance, RefusedRemoteStateUpdateIsNotRecorded) {
  const std::string system = Enroll("sys-1");
  backend().FailNext(kUpdateAssetRemoteState, Outage::kServerError, 1);
  EXPECT_EQ(api().UpdateAssetRemoteState({system, RemoteState::kOnline, "up"}).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(backend().AssetRemoteStateHistory().empty());
  auto asset = System("sys-1");
  ASSERT_TRUE(asset.has_value());
  EXPECT_EQ(asset->remote_state, std::nullopt);
  EXPECT_TRUE(api().UpdateAssetRemoteState({system, RemoteState::kOnline, "up"}).ok());
  EXPECT_EQ(backend().AssetRemoteStateHistory().size(), 1u);
}

TEST_P(ConcertoApiConformance, LostCreateResponseTookEffectSoTheRetryMeetsConflict) {
  const std::string system = Enroll("sys-1");
  backend().LoseNextResponse(kCreateAsset);

  EXPECT_EQ(api().CreateAsset(AssetRequest(AssetType::kInverter, "inv", system)).status().code(),
            StatusCode::kDeadlineExceeded);
  EXPECT_EQ(TotalCount(api()), 2);
  EXPECT_EQ(api().CreateAsset(AssetRequest(AssetType::kInverter, "inv", system)).status().code(),
            StatusCode::kAlreadyExists);
  auto found = api().AssetByRemoteId(AssetType::kInverter, "inv");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->parent_id, std::optional<std::string>(system));
}

TEST_P(ConcertoApiConformance, LostIngestResponseTookEffectSoTheRetryCountsDuplicates) {
  const std::string system = Enroll("sys-1");
  const std::vector<domain::TelemetryPoint> points = {Point(system, Metric::kRealPower, 0, 1),
                                                      Point(system, Metric::kRealPower, 300'000, 2)};
  backend().LoseNextResponse(kIngestTelemetry);
  EXPECT_EQ(api().IngestTelemetry(points).status().code(), StatusCode::kDeadlineExceeded);
  auto retry = api().IngestTelemetry(points);
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ(*retry, (domain::IngestResult{0, 2, {}}));
  EXPECT_EQ(backend().Points(), points);
}

TEST_P(ConcertoApiConformance, ConcurrentIngestStoresEveryPointOnce) {
  const std::string system = Enroll("sys-1");
  constexpr int kThreads = 4;
  constexpr int kPointsPerCall = 100;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  std::vector<Result<domain::IngestResult>> results(kThreads, InternalError("not run"));
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<domain::TelemetryPoint> points;
      points.reserve(kPointsPerCall);
      // Every thread sends the same timestamps: exactly one copy of each may be stored.
      for (int i = 0; i < kPointsPerCall; ++i) points.push_back(Point(system, Metric::kRealPower, i * 1000, t));
      results[t] = api().IngestTelemetry(points);
    });
  }
  for (auto& thread : threads) thread.join();
  int accepted = 0;
  int duplicates = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    accepted += r->accepted;
    duplicates += r->duplicates;
  }
  EXPECT_EQ(accepted, kPointsPerCall);
  EXPECT_EQ(duplicates, (kThreads - 1) * kPointsPerCall);
  EXPECT_EQ(backend().Points().size(), static_cast<std::size_t>(kPointsPerCall));
  EXPECT_EQ(backend().CallCount(kIngestTelemetry), kThreads);
}

}  // namespace
}  // namespace pwrcell::conformance
