#include "domain/commissioning_plan.h"

#include <gtest/gtest.h>

namespace pwrcell::domain {
namespace {

constexpr const char* kAdapter = "pwrcell";

SystemMetadata DcMetadata() {
  SystemMetadata m;
  m.system_id = "sys-1";
  m.site_id = "site-ces-1";
  m.site_name = "Smith residence";
  m.timezone = "America/Denver";
  m.latitude = 39.74;
  m.longitude = -104.99;
  m.status_name = "SUCCESS";
  m.inverters = {{"000100073534", "XVT076A03", 7600, 0.0}};
  m.batteries = {{"000100080112", "PWRcell M6", 18000, 6700}, {"000100080113", "PWRcell M3", 9000, 3400}};
  m.pv_links = {{"000100030a41", 2500}, {"000100030a42", 2500}, {"000100030a43", 2000}};
  m.site_meter_id = "sys-1-meter";
  return m;
}

// A freshly enrolled DC system whose metadata has arrived but nothing of it exists in Concerto.
DeviceRecord FreshRecord() {
  DeviceRecord r;
  r.remote_id = "sys-1";
  r.concerto_asset_id = "asset-7";
  r.name = "Smith";
  r.is_simulated = false;
  r.metadata = DcMetadata();
  r.inverter_rcpns = {"000100073534"};
  r.coupling = Coupling::kDc;
  return r;
}

// The same record once every step of its plan has run.
DeviceRecord CompleteRecord() {
  DeviceRecord r = FreshRecord();
  r.site = SiteRef{"site-1", "site-ces-1", "Smith residence"};
  r.inverters = {{"asset-8", "000100073534"}};
  r.batteries = {{"asset-9", "000100080112"}, {"asset-10", "000100080113"}};
  r.photovoltaics = {{"asset-11", "000100030a41"}, {"asset-12", "000100030a42"}, {"asset-13", "000100030a43"}};
  r.site_meter = AssetRef{"asset-14", "sys-1-meter"};
  return r;
}

std::vector<CommissioningStep> Plan(const DeviceRecord& record) {
  auto plan = PlanCommissioning(record, kAdapter);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  return plan.ok() ? *plan : std::vector<CommissioningStep>{};
}

std::vector<CommissioningStepKind> Kinds(const std::vector<CommissioningStep>& steps) {
  std::vector<CommissioningStepKind> kinds;
  kinds.reserve(steps.size());
  for (const auto& s : steps) kinds.push_back(s.kind);
  return kinds;
}

CommissioningStep AssetStep(CommissioningStepKind kind, CreateAssetRequest request, ParentRef parent,
                            SiteTarget site_target, std::string description) {
  CommissioningStep s;
  s.kind = kind;
  s.asset = std::move(request);
  s.parent = parent;
  s.site_target = site_target;
  s.description = std::move(description);
  return s;
}

CreateAssetRequest Asset(AssetType type, std::string remote_id, std::string name, std::optional<double> rated_kw,
                         std::optional<double> capacity_kwh = std::nullopt, std::optional<bool> ac = std::nullopt) {
  CreateAssetRequest r;
  r.remote_id = std::move(remote_id);
  r.name = std::move(name);
  r.asset_type = type;
  r.adapter_name = kAdapter;
  r.simulated = false;
  r.rated_power_kw = rated_kw;
  r.energy_capacity_kwh = capacity_kwh;
  r.ac_coupled = ac;
  return r;
}

TEST(CommissioningPlan, FreshDcSystemGetsEveryStepInOrderWithExactPayloads) {
  using K = CommissioningStepKind;
  std::vector<CommissioningStep> expected;

  CommissioningStep site;
  site.kind = K::kEnsureSite;
  site.site = CreateSiteRequest{"site-ces-1", "Smith residence", "America/Denver", 39.74, -104.99};
  site.description = "create site site-ces-1 \"Smith residence\"";
  expected.push_back(site);

  expected.push_back(AssetStep(K::kEnsureInverter,
                               Asset(AssetType::kInverter, "000100073534", "Smith inverter", 7.6, std::nullopt, false),
                               ParentRef::kSystem, SiteTarget::kSystemSite,
                               "create INVERTER 000100073534 under system sys-1 on site site-ces-1"));
  expected.back().first_inverter = true;
  expected.push_back(
      AssetStep(K::kEnsureBattery, Asset(AssetType::kBattery, "000100080112", "Smith battery 000100080112", 6.7, 18.0),
                ParentRef::kInverter, SiteTarget::kNone, "create BATTERY 000100080112 under inverter 000100073534"));
  expected.push_back(
      AssetStep(K::kEnsureBattery, Asset(AssetType::kBattery, "000100080113", "Smith battery 000100080113", 3.4, 9.0),
                ParentRef::kInverter, SiteTarget::kNone, "create BATTERY 000100080113 under inverter 000100073534"));
  for (const auto& [rcpn, kw] : std::vector<std::pair<std::string, double>>{
           {"000100030a41", 2.5}, {"000100030a42", 2.5}, {"000100030a43", 2.0}}) {
    expected.push_back(AssetStep(K::kEnsurePhotovoltaic, Asset(AssetType::kPhotovoltaic, rcpn, "Smith PV " + rcpn, kw),
                                 ParentRef::kInverter, SiteTarget::kNone,
                                 "create PHOTOVOLTAIC " + rcpn + " under inverter 000100073534"));
  }
  expected.push_back(
      AssetStep(K::kEnsureSiteMeter, Asset(AssetType::kSiteMeter, "sys-1-meter", "Smith site meter", std::nullopt),
                ParentRef::kSystem, SiteTarget::kNone, "create SITE_METER sys-1-meter under system sys-1"));

  CommissioningStep attach;
  attach.kind = K::kAttachSystemToSite;
  attach.update = UpdateAssetRequest{"asset-7", std::nullopt, std::nullopt, std::nullopt, std::nullopt};
  attach.site_target = SiteTarget::kSystemSite;
  attach.description = "attach system sys-1 to site site-ces-1";
  expected.push_back(attach);

  const auto plan = Plan(FreshRecord());
  ASSERT_EQ(plan.size(), expected.size());
  for (std::size_t i = 0; i < plan.size(); ++i) EXPECT_EQ(plan[i], expected[i]) << "step " << i;
}

TEST(CommissioningPlan, AcSystemMarksInverterAcCoupled) {
  DeviceRecord r = FreshRecord();
  r.coupling = Coupling::kAc;
  const auto plan = Plan(r);
  ASSERT_GE(plan.size(), 2u);
  ASSERT_EQ(plan[1].kind, CommissioningStepKind::kEnsureInverter);
  EXPECT_EQ(plan[1].asset->ac_coupled, std::optional<bool>(true));
}

TEST(CommissioningPlan, UnknownCouplingLeavesAcCoupledUnset) {
  DeviceRecord r = FreshRecord();
  r.coupling = Coupling::kUnknown;
  const auto plan = Plan(r);
  ASSERT_GE(plan.size(), 2u);
  EXPECT_EQ(plan[1].asset->ac_coupled, std::nullopt);
}

TEST(CommissioningPlan, SimulatedFlagIsCopiedOntoEveryCreatedAsset) {
  DeviceRecord r = FreshRecord();
  r.is_simulated = true;
  int assets = 0;
  for (const auto& step : Plan(r)) {
    if (!step.asset) continue;
    ++assets;
    EXPECT_TRUE(step.asset->simulated) << step.description;
  }
  EXPECT_EQ(assets, 7);
}

TEST(CommissioningPlan, SiteAlreadyKnownSkipsEnsureSiteAndAttach) {
  DeviceRecord r = FreshRecord();
  r.site = SiteRef{"site-3", "site-ces-1", "Smith residence"};
  const auto plan = Plan(r);
  using K = CommissioningStepKind;
  EXPECT_EQ(Kinds(plan),
            (std::vector<K>{K::kEnsureInverter, K::kEnsureBattery, K::kEnsureBattery, K::kEnsurePhotovoltaic,
                            K::kEnsurePhotovoltaic, K::kEnsurePhotovoltaic, K::kEnsureSiteMeter}));
  // The inverter still goes on the system's site; the executor resolves it from the record.
  EXPECT_EQ(plan[0].site_target, SiteTarget::kSystemSite);
}

TEST(CommissioningPlan, OperatorChosenSiteIsKeptAndNamedInDescriptions) {
  DeviceRecord r = FreshRecord();
  r.site = SiteRef{"site-9", "", "Hand-made site"};
  const auto plan = Plan(r);
  ASSERT_FALSE(plan.empty());
  EXPECT_EQ(plan[0].kind, CommissioningStepKind::kEnsureInverter);
  EXPECT_EQ(plan[0].description, "create INVERTER 000100073534 under system sys-1 on site site-9");
}

TEST(CommissioningPlan, CompleteSystemOnItsSiteHasEmptyPlan) {
  EXPECT_TRUE(Plan(CompleteRecord()).empty());
  EXPECT_FALSE(NeedsCommissioning(CompleteRecord()));
}

TEST(CommissioningPlan, SystemNotOnSiteGetsEnsureSiteAndAttachOnly) {
  DeviceRecord r = CompleteRecord();
  r.site.reset();
  using K = CommissioningStepKind;
  EXPECT_EQ(Kinds(Plan(r)), (std::vector<K>{K::kEnsureSite, K::kAttachSystemToSite}));
  EXPECT_TRUE(NeedsCommissioning(r));
}

TEST(CommissioningPlan, NewBatteryInMetadataYieldsOnlyThatBattery) {
  DeviceRecord r = CompleteRecord();
  r.metadata->batteries.push_back({"000100080199", "PWRcell M3", 9000, 3400});
  const auto plan = Plan(r);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].kind, CommissioningStepKind::kEnsureBattery);
  EXPECT_EQ(plan[0].asset->remote_id, "000100080199");
  EXPECT_EQ(plan[0].parent, ParentRef::kInverter);
  EXPECT_TRUE(NeedsCommissioning(r));
}

TEST(CommissioningPlan, NoSiteMeterInMetadataMeansNoMeterStep) {
  DeviceRecord r = FreshRecord();
  r.metadata->site_meter_id.reset();
  for (const auto& step : Plan(r)) EXPECT_NE(step.kind, CommissioningStepKind::kEnsureSiteMeter);
  EXPECT_EQ(Plan(r).size(), 8u);

  DeviceRecord complete = CompleteRecord();
  complete.metadata->site_meter_id.reset();
  complete.site_meter.reset();
  EXPECT_TRUE(Plan(complete).empty());
  EXPECT_FALSE(NeedsCommissioning(complete));
}

TEST(CommissioningPlan, ReplacedInverterIsEnsuredAgain) {
  DeviceRecord r = CompleteRecord();
  r.metadata->inverters = {{"000100099999", "XVT076A03", 7600, 0.0}};
  r.inverter_rcpns = {"000100099999"};
  const auto plan = Plan(r);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].asset->remote_id, "000100099999");
  EXPECT_TRUE(plan[0].first_inverter);
  EXPECT_TRUE(NeedsCommissioning(r));
}

// SPEC section 6: one INVERTER per inverter, batteries and PV links under the first listed.
TEST(CommissioningPlan, EachInverterGetsItsOwnAssetAndComponentsGoUnderTheFirst) {
  DeviceRecord r = FreshRecord();
  r.coupling = Coupling::kAc;
  r.metadata->inverters = {{"000100073534", "XVT076A03", 7600, 3.8}, {"000100073535", "XVT114G03", 11400, 0.0}};
  r.inverter_rcpns = {"000100073534", "000100073535"};
  using K = CommissioningStepKind;
  const auto plan = Plan(r);
  EXPECT_EQ(Kinds(plan), (std::vector<K>{K::kEnsureSite, K::kEnsureInverter, K::kEnsureInverter, K::kEnsureBattery,
                                         K::kEnsureBattery, K::kEnsurePhotovoltaic, K::kEnsurePhotovoltaic,
                                         K::kEnsurePhotovoltaic, K::kEnsureSiteMeter, K::kAttachSystemToSite}));
  ASSERT_EQ(plan.size(), 10u);
  CommissioningStep first_step =
      AssetStep(K::kEnsureInverter,
                Asset(AssetType::kInverter, "000100073534", "Smith inverter 000100073534", 7.6, std::nullopt, true),
                ParentRef::kSystem, SiteTarget::kSystemSite,
                "create INVERTER 000100073534 under system sys-1 on site site-ces-1");
  first_step.first_inverter = true;  // the batteries' and PV links' parent
  EXPECT_EQ(plan[1], first_step);
  CommissioningStep second =
      AssetStep(K::kEnsureInverter,
                Asset(AssetType::kInverter, "000100073535", "Smith inverter 000100073535", 11.4, std::nullopt, true),
                ParentRef::kSystem, SiteTarget::kSystemSite,
                "create INVERTER 000100073535 under system sys-1 on site site-ces-1");
  EXPECT_EQ(plan[2], second) << "its own rating; the system's coupling; under the SYSTEM, on the site";
  for (std::size_t i = 3; i < 8; ++i) {
    EXPECT_EQ(plan[i].parent, ParentRef::kInverter);
    EXPECT_NE(plan[i].description.find("under inverter 000100073534"), std::string::npos) << plan[i].description;
  }

  // The first inverter exists (an earlier run): only the second is ensured.
  DeviceRecord partial = CompleteRecord();
  partial.metadata = r.metadata;
  partial.inverter_rcpns = r.inverter_rcpns;
  EXPECT_TRUE(NeedsCommissioning(partial));
  const auto rest = Plan(partial);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].asset->remote_id, "000100073535");
  EXPECT_FALSE(rest[0].first_inverter);

  // Only the second exists: the first is ensured, and it is the parent of what may follow.
  partial.inverters = {{"asset-20", "000100073535"}};
  const auto first = Plan(partial);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].asset->remote_id, "000100073534");
  EXPECT_TRUE(first[0].first_inverter);

  partial.inverters = {{"asset-8", "000100073534"}, {"asset-20", "000100073535"}};
  EXPECT_TRUE(Plan(partial).empty());
  EXPECT_FALSE(NeedsCommissioning(partial));
}

TEST(CommissioningPlan, SiteNameFallsBackToSystemNameAndUnknownRatingsStayUnset) {
  DeviceRecord r = FreshRecord();
  r.metadata->site_name.clear();
  r.metadata->inverters[0].rated_power_w = 0;
  const auto plan = Plan(r);
  ASSERT_GE(plan.size(), 2u);
  EXPECT_EQ(plan[0].site->name, "Smith");
  EXPECT_EQ(plan[1].asset->rated_power_kw, std::nullopt);
}

TEST(CommissioningPlan, TheMetadataDecidesTheInvertersNotTheRecordsRcpns) {
  DeviceRecord r = FreshRecord();
  r.inverter_rcpns.clear();
  const auto plan = Plan(r);
  ASSERT_GE(plan.size(), 2u);
  EXPECT_EQ(plan[1].asset->remote_id, "000100073534");
}

TEST(CommissioningPlan, Errors) {
  DeviceRecord no_metadata = FreshRecord();
  no_metadata.metadata.reset();
  auto plan = PlanCommissioning(no_metadata, kAdapter);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(plan.status().message(), "no CES metadata yet");

  DeviceRecord no_inverter = FreshRecord();
  no_inverter.metadata->inverters.clear();
  EXPECT_EQ(PlanCommissioning(no_inverter, kAdapter).status().code(), StatusCode::kFailedPrecondition);

  DeviceRecord no_asset = FreshRecord();
  no_asset.concerto_asset_id.clear();
  EXPECT_EQ(PlanCommissioning(no_asset, kAdapter).status().code(), StatusCode::kFailedPrecondition);

  DeviceRecord no_site_id = FreshRecord();
  no_site_id.metadata->site_id.clear();
  EXPECT_EQ(PlanCommissioning(no_site_id, kAdapter).status().code(), StatusCode::kFailedPrecondition);
  // A site id is only needed when the site is.
  no_site_id.site = SiteRef{"site-1", "site-ces-1", "Smith residence"};
  EXPECT_TRUE(PlanCommissioning(no_site_id, kAdapter).ok());
}

TEST(NeedsCommissioning, FollowsWhatConcertoLacks) {
  DeviceRecord no_metadata = FreshRecord();
  no_metadata.metadata.reset();
  EXPECT_FALSE(NeedsCommissioning(no_metadata));
  EXPECT_TRUE(NeedsCommissioning(FreshRecord()));

  DeviceRecord no_inverter = CompleteRecord();
  no_inverter.inverters.clear();
  EXPECT_TRUE(NeedsCommissioning(no_inverter));

  DeviceRecord no_pv = CompleteRecord();
  no_pv.photovoltaics.pop_back();
  EXPECT_TRUE(NeedsCommissioning(no_pv));

  DeviceRecord no_meter = CompleteRecord();
  no_meter.site_meter.reset();
  EXPECT_TRUE(NeedsCommissioning(no_meter));
}

TEST(ResolveStep, FillsSymbolicReferences) {
  const auto plan = Plan(FreshRecord());
  ASSERT_EQ(plan.size(), 9u);
  const ResolvedIds ids{"asset-7", "site-1", "asset-8"};

  auto inverter = ResolveStep(plan[1], ids);
  ASSERT_TRUE(inverter.ok());
  EXPECT_EQ(inverter->asset->parent_id, std::optional<std::string>("asset-7"));
  EXPECT_EQ(inverter->asset->site_id, std::optional<std::string>("site-1"));

  auto battery = ResolveStep(plan[2], ids);
  ASSERT_TRUE(battery.ok());
  EXPECT_EQ(battery->asset->parent_id, std::optional<std::string>("asset-8"));
  EXPECT_EQ(battery->asset->site_id, std::nullopt);

  auto attach = ResolveStep(plan[8], ids);
  ASSERT_TRUE(attach.ok());
  EXPECT_EQ(attach->update->id, "asset-7");
  EXPECT_EQ(attach->update->site_id, std::optional<std::string>("site-1"));

  auto site = ResolveStep(plan[0], ResolvedIds{"asset-7", std::nullopt, std::nullopt});
  ASSERT_TRUE(site.ok());
  EXPECT_EQ(*site, plan[0]);
}

TEST(ResolveStep, MissingIdIsFailedPrecondition) {
  const auto plan = Plan(FreshRecord());
  ASSERT_EQ(plan.size(), 9u);
  EXPECT_EQ(ResolveStep(plan[1], ResolvedIds{"asset-7", std::nullopt, std::nullopt}).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(ResolveStep(plan[2], ResolvedIds{"asset-7", "site-1", std::nullopt}).status().code(),
            StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace pwrcell::domain
