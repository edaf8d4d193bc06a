#include "processes/concerto_gateway.h"
#include "processes/processes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "adapters/memory/fake_concerto.h"
#include "process_test_support.h"
#include "processes/device_metadata_processor.h"
#include "processes/registrar.h"
#include "processes/shared_state.h"

namespace pwrcell::processes {
namespace {

using adapters::FakeConcerto;
using domain::AssetType;
using domain::CommissioningState;
using domain::Metric;
using domain::RemoteState;
using test_support::DrainConcerto;
using test_support::kAdapterName;

// Forwards to a FakeConcerto, with two faults the fake cannot play by itself: a failing page
// other than the first, and a lookup that misses what a concurrent writer has just created (so
// that the create meets CONFLICT).
class ScriptedConcerto final : public ports::ConcertoApi {
 public:
  explicit ScriptedConcerto(FakeConcerto& fake) : fake_(fake) {}

  std::optional<int> fail_page;
  std::function<void(int page)> after_page;  // runs after a page was served (an operator at work)
  std::set<std::string> stale_lookups;  // remoteIds whose next lookup answers "not there"

  Result<ports::AssetPage> ListAssets(int page, int per_page) override {
    if (fail_page == page) {
      fail_page.reset();
      return UnavailableError("HTTP 503 on page " + std::to_string(page));
    }
    auto result = fake_.ListAssets(page, per_page);
    if (after_page) after_page(page);
    return result;
  }
  Result<std::optional<domain::ConcertoAsset>> AssetByRemoteId(AssetType type, const std::string& remote_id) override {
    if (stale_lookups.erase(remote_id) > 0) return std::optional<domain::ConcertoAsset>();
    return fake_.AssetByRemoteId(type, remote_id);
  }
  Result<std::optional<domain::ConcertoSite>> SiteByRemoteId(const std::string& remote_id) override {
    if (stale_lookups.erase(remote_id) > 0) return std::optional<domain::ConcertoSite>();
    return fake_.SiteByRemoteId(remote_id);
  }
  Result<domain::ConcertoSite> CreateSite(const domain::CreateSiteRequest& r) override { return fake_.CreateSite(r); }
  Result<domain::ConcertoAsset> CreateAsset(const domain::CreateAssetRequest& r) override {
    return fake_.CreateAsset(r);
  }
  Result<domain::ConcertoAsset> UpdateAsset(const domain::UpdateAssetRequest& r) override {
    return fake_.UpdateAsset(r);
  }
  std::function<void()> after_remote_state;  // runs after an asset's remote_state was sent
  std::map<std::string, Status> fail_ids;     // asset id -> the failure of its next update
  Status UpdateAssetRemoteState(const domain::RemoteStateUpdate& u) override {
    if (auto it = fail_ids.find(u.id); it != fail_ids.end()) {
      Status failure = it->second;
      fail_ids.erase(it);
      return failure;
    }
    Status s = fake_.UpdateAssetRemoteState(u);
    if (after_remote_state) after_remote_state();
    return s;
  }
  Status UpdateSiteRemoteState(const domain::RemoteStateUpdate& u) override { return fake_.UpdateSiteRemoteState(u); }
  Result<domain::IngestResult> IngestTelemetry(const std::vector<domain::TelemetryPoint>& p) override {
    return fake_.IngestTelemetry(p);
  }

 private:
  FakeConcerto& fake_;
};

std::vector<domain::ConcertoAsset> OfType(const std::vector<domain::ConcertoAsset>& assets, AssetType type) {
  std::vector<domain::ConcertoAsset> out;
  std::copy_if(assets.begin(), assets.end(), std::back_inserter(out),
               [&](const domain::ConcertoAsset& a) { return a.asset_type == type; });
  return out;
}

class ConcertoGatewayTest : public ::testing::Test {
 protected:
  test_support::Harness h;
  FakeConcerto fake;
  ScriptedConcerto concerto{fake};
  DeviceMetadataProcessor metadata{h.context};
  Registrar registrar{h.context, metadata};
  ConcertoGateway gateway{h.context, concerto, registrar};

  // Enrolls `remote_id` in Concerto, registers it, gives it CES metadata and turns on
  // auto-commissioning; returns the SYSTEM asset id. The commission request is left queued.
  std::string ReadyForCommissioning(const std::string& remote_id) {
    const std::string id = fake.EnrollSystem(remote_id, "Smith", std::string(kAdapterName));
    h.context.settings.auto_commissioning = true;
    EXPECT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
    EXPECT_TRUE(metadata.Process(remote_id, test_support::DcMetadata(remote_id)).ok());
    return id;
  }
};

TEST_F(ConcertoGatewayTest, ListAssetsReadsEveryPageAndRegistersWithACompleteList) {
  h.context.settings.page_size = 2;
  for (int i = 1; i <= 4; ++i) fake.EnrollSystem("sys-" + std::to_string(i), "S", std::string(kAdapterName));
  fake.EnrollSystem("foreign", "F", std::string("another-adapter"));
  // A record whose asset is not in Concerto: only a complete list removes it.
  h.Store(test_support::Registered("gone", "asset-99", h.clock.Now()));

  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());

  EXPECT_EQ(fake.CallCount(FakeConcerto::kListAssets), 3);  // 2 + 2 + 1 of 5 assets
  EXPECT_EQ(h.RemoteIds(), (std::vector<std::string>{"sys-1", "sys-2", "sys-3", "sys-4"}));
  EXPECT_EQ(h.Device("sys-3").concerto_asset_id, "asset-3");
  EXPECT_EQ(h.metrics.Value("pwrcell_registrar_sweeps_total", {{"complete", "true"}}), 1);
  EXPECT_EQ(h.metrics.Value("pwrcell_registrar_sweeps_total", {{"complete", "false"}}), 0);
}

TEST_F(ConcertoGatewayTest, ListAssetsFetchesOneEmptyPageAfterAnExactlyFullOne) {
  h.context.settings.page_size = 2;
  fake.EnrollSystem("sys-1", "S", std::string(kAdapterName));
  fake.EnrollSystem("sys-2", "S", std::string(kAdapterName));
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
  EXPECT_EQ(fake.CallCount(FakeConcerto::kListAssets), 2);
  EXPECT_EQ(h.RemoteIds(), (std::vector<std::string>{"sys-1", "sys-2"}));
}

TEST_F(ConcertoGatewayTest, FailingPageIsRetryableAndRegistersAndRemovesNothing) {
  h.context.settings.page_size = 2;
  for (int i = 1; i <= 3; ++i) fake.EnrollSystem("sys-" + std::to_string(i), "S", std::string(kAdapterName));
  h.Store(test_support::Registered("gone", "asset-99", h.clock.Now()));
  RegistrarPoller poller(h.context);
  ASSERT_TRUE(poller.Poll().ok());
  const auto queued = DrainConcerto(h.concerto_queue);
  ASSERT_EQ(queued.size(), 1U);

  concerto.fail_page = 2;
  Status failed = gateway.Handle(queued[0]);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(failed.IsRetryable());
  EXPECT_EQ(h.RemoteIds(), std::vector<std::string>{"gone"});
  EXPECT_EQ(h.metrics.Sum("pwrcell_registrar_sweeps_total"), 0);
  // The request is being retried: the poller does not queue a second one meanwhile.
  ASSERT_TRUE(poller.Poll().ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());

  // The redelivery succeeds.
  ASSERT_TRUE(gateway.Handle(queued[0]).ok());
  EXPECT_EQ(h.RemoteIds(), (std::vector<std::string>{"sys-1", "sys-2", "sys-3"}));
  ASSERT_TRUE(poller.Poll().ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue).size(), 1U) << "the listing ended; the next poll queues again";
}

TEST_F(ConcertoGatewayTest, AssetDeletedDuringTheSweepDeregistersNothingElse) {
  h.context.settings.page_size = 2;
  std::vector<std::string> ids;
  for (int i = 1; i <= 5; ++i) ids.push_back(fake.EnrollSystem("sys-" + std::to_string(i), "S", kAdapterName));
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
  ASSERT_EQ(h.RemoteIds().size(), 5U);

  // Between pages 1 and 2 an operator deletes sys-1 (already read): the pages shift left, so
  // sys-3 is on no page this time. The list must not count as complete, or sys-3, still in
  // Concerto, would be deregistered.
  concerto.after_page = [&](int page) {
    if (page == 1) fake.RemoveAsset(ids[0]);
  };
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
  concerto.after_page = nullptr;
  EXPECT_TRUE(h.Has("sys-3")) << "a system still in Concerto was deregistered";
  EXPECT_EQ(h.metrics.Value("pwrcell_devices_deregistered_total"), 0);
  EXPECT_EQ(h.metrics.Value("pwrcell_registrar_sweeps_total", {{"complete", "false"}}), 1);

  // The next, undisturbed sweep removes sys-1 only.
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
  EXPECT_EQ(h.RemoteIds(), (std::vector<std::string>{"sys-2", "sys-3", "sys-4", "sys-5"}));
}

TEST_F(ConcertoGatewayTest, AssetDeletedAndAnotherCreatedDuringTheSweepDeregistersNothingElse) {
  h.context.settings.page_size = 2;
  std::vector<std::string> ids;
  for (int i = 1; i <= 5; ++i) ids.push_back(fake.EnrollSystem("sys-" + std::to_string(i), "S", kAdapterName));
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
  ASSERT_EQ(h.RemoteIds().size(), 5U);

  // Between pages 1 and 2 sys-1 (already read) is deleted and sys-6 created: totalCount stays 5,
  // the pages shift left so sys-3 is on none, and five distinct assets are read. Only the lookup
  // of sys-3 by remoteId shows the list is not the whole truth.
  concerto.after_page = [&](int page) {
    if (page == 1) {
      fake.RemoveAsset(ids[0]);
      fake.EnrollSystem("sys-6", "S", kAdapterName);
    }
  };
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
  concerto.after_page = nullptr;
  EXPECT_TRUE(h.Has("sys-3")) << "a system still in Concerto was deregistered";
  EXPECT_EQ(h.metrics.Value("pwrcell_devices_deregistered_total"), 0);
  EXPECT_EQ(h.metrics.Value("pwrcell_registrar_sweeps_total", {{"complete", "false"}}), 1);

  // The next, undisturbed sweep removes sys-1 only (its lookup confirms it is gone).
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
  EXPECT_EQ(h.RemoteIds(), (std::vector<std::string>{"sys-2", "sys-3", "sys-4", "sys-5", "sys-6"}));
  EXPECT_EQ(h.metrics.Value("pwrcell_devices_deregistered_total"), 1);
}

TEST_F(ConcertoGatewayTest, AssetCreatedDuringTheSweepIsToleratedAndSeenOnce) {
  h.context.settings.page_size = 2;
  for (int i = 1; i <= 3; ++i) fake.EnrollSystem("sys-" + std::to_string(i), "S", kAdapterName);
  h.Store(test_support::Registered("gone", "asset-99", h.clock.Now()));
  concerto.after_page = [&](int page) {
    if (page == 1) fake.EnrollSystem("sys-4", "S", kAdapterName);
  };
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
  EXPECT_EQ(h.RemoteIds(), (std::vector<std::string>{"sys-1", "sys-2", "sys-3", "sys-4"}));
  EXPECT_EQ(h.metrics.Value("pwrcell_devices_registered_total"), 4);
}

TEST_F(ConcertoGatewayTest, CommissionCreatesTheWholeStructureOnce) {
  const std::string system_id = ReadyForCommissioning("sys-1");
  ASSERT_EQ(DrainConcerto(h.concerto_queue), (std::vector<ConcertoRequest>{CommissionRequest{"sys-1"}}));

  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());

  const auto sites = fake.Sites();
  ASSERT_EQ(sites.size(), 1U);
  EXPECT_EQ(sites[0].remote_id, "ces-site-sys-1");
  EXPECT_EQ(sites[0].name, "Smith residence");
  EXPECT_EQ(sites[0].timezone, "America/Denver");

  const auto assets = fake.Assets();
  ASSERT_EQ(assets.size(), 1U + 1U + 2U + 3U + 1U);
  const auto inverters = OfType(assets, AssetType::kInverter);
  ASSERT_EQ(inverters.size(), 1U);
  const auto& inverter = inverters[0];
  EXPECT_EQ(inverter.remote_id, "000100000001");
  EXPECT_EQ(inverter.parent_id, std::optional<std::string>(system_id));
  ASSERT_TRUE(inverter.site.has_value());
  EXPECT_EQ(inverter.site->id, sites[0].id);
  EXPECT_EQ(inverter.rated_power_kw, std::optional<double>(7.6));
  EXPECT_EQ(inverter.ac_coupled, std::optional<bool>(false));
  EXPECT_EQ(inverter.adapter_name, std::optional<std::string>(kAdapterName));

  const auto batteries = OfType(assets, AssetType::kBattery);
  ASSERT_EQ(batteries.size(), 2U);
  for (const auto& b : batteries) EXPECT_EQ(b.parent_id, std::optional<std::string>(inverter.id));
  EXPECT_EQ(batteries[0].remote_id, "000200000001");
  EXPECT_EQ(batteries[1].remote_id, "000200000002");
  EXPECT_EQ(batteries[0].energy_capacity_kwh, std::optional<double>(3.0));
  const auto pvs = OfType(assets, AssetType::kPhotovoltaic);
  ASSERT_EQ(pvs.size(), 3U);
  for (const auto& pv : pvs) EXPECT_EQ(pv.parent_id, std::optional<std::string>(inverter.id));
  const auto meters = OfType(assets, AssetType::kSiteMeter);
  ASSERT_EQ(meters.size(), 1U);
  EXPECT_EQ(meters[0].remote_id, "sys-1-meter");
  EXPECT_EQ(meters[0].parent_id, std::optional<std::string>(system_id));
  // The SYSTEM sits on the site.
  auto system = fake.Asset(system_id);
  ASSERT_TRUE(system && system->site);
  EXPECT_EQ(system->site->id, sites[0].id);

  // The record knows all of it.
  const auto d = h.Device("sys-1");
  ASSERT_TRUE(d.site.has_value());
  EXPECT_EQ(d.site->site_id, sites[0].id);
  EXPECT_EQ(d.inverters, (std::vector<domain::AssetRef>{{inverter.id, "000100000001"}}));
  EXPECT_EQ(d.batteries.size(), 2U);
  EXPECT_EQ(d.photovoltaics.size(), 3U);
  EXPECT_EQ(d.site_meter, (domain::AssetRef{meters[0].id, "sys-1-meter"}));
  EXPECT_EQ(d.commissioning, (domain::Commissioning{CommissioningState::kDone, ""}));

  // A second run (a redelivered message) creates nothing.
  const int creates = fake.CallCount(FakeConcerto::kCreateAsset);
  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());
  EXPECT_EQ(fake.CallCount(FakeConcerto::kCreateAsset), creates);
  EXPECT_EQ(fake.CallCount(FakeConcerto::kCreateSite), 1);
  EXPECT_EQ(fake.Assets().size(), assets.size());

  // And the next sweep finds nothing to commission.
  h.clock.Advance(std::chrono::minutes(11));
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
  EXPECT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kDone);
}

TEST_F(ConcertoGatewayTest, RerunAfterAForgottenRecordFindsEverythingByRemoteId) {
  ReadyForCommissioning("sys-1");
  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());
  const std::size_t created = fake.Assets().size();
  // The record lost what it learnt (a crash before the progress was saved).
  auto d = h.Device("sys-1");
  d.site.reset();
  d.inverters.clear();
  d.batteries.clear();
  d.photovoltaics.clear();
  d.site_meter.reset();
  ASSERT_TRUE(h.devices.Put(d).ok());

  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());
  EXPECT_EQ(fake.Assets().size(), created);
  EXPECT_EQ(fake.Sites().size(), 1U);
  EXPECT_EQ(h.Device("sys-1").photovoltaics.size(), 3U);
}

TEST_F(ConcertoGatewayTest, LostCreateResponseIsRetriedWithoutDuplicate) {
  ReadyForCommissioning("sys-1");
  fake.LoseNextResponse(FakeConcerto::kCreateAsset, DeadlineExceededError("timeout"));  // the inverter

  Status first = gateway.Handle(CommissionRequest{"sys-1"});
  ASSERT_FALSE(first.ok());
  EXPECT_TRUE(first.IsRetryable());
  const auto pending = h.Device("sys-1").commissioning;
  EXPECT_EQ(pending.state, CommissioningState::kPending);
  EXPECT_EQ(pending.reason.rfind("retrying: ", 0), 0U) << pending.reason;

  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());
  EXPECT_EQ(OfType(fake.Assets(), AssetType::kInverter).size(), 1U);
  EXPECT_EQ(fake.Assets().size(), 8U);
  EXPECT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kDone);
}

TEST_F(ConcertoGatewayTest, ConflictMeansAlreadyThere) {
  const std::string system_id = ReadyForCommissioning("sys-1");
  // A concurrent writer created the site and the inverter between our lookup and our create.
  auto site = fake.CreateSite({"ces-site-sys-1", "Smith residence", "America/Denver", {}, {}});
  ASSERT_TRUE(site.ok());
  domain::CreateAssetRequest inverter;
  inverter.remote_id = "000100000001";
  inverter.name = "inverter";
  inverter.asset_type = AssetType::kInverter;
  inverter.adapter_name = kAdapterName;
  inverter.parent_id = system_id;
  inverter.site_id = site->id;
  auto existing = fake.CreateAsset(inverter);
  ASSERT_TRUE(existing.ok());
  concerto.stale_lookups = {"ces-site-sys-1", "000100000001"};

  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());

  EXPECT_TRUE(concerto.stale_lookups.empty()) << "both lookups were made";
  EXPECT_EQ(fake.CallCount(FakeConcerto::kCreateSite), 2);  // ours: CONFLICT
  EXPECT_EQ(fake.Sites().size(), 1U);
  EXPECT_EQ(OfType(fake.Assets(), AssetType::kInverter).size(), 1U);
  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.site->site_id, site->id);
  EXPECT_EQ(d.inverters, (std::vector<domain::AssetRef>{{existing->id, "000100000001"}}));
  EXPECT_EQ(d.commissioning.state, CommissioningState::kDone);
}

TEST_F(ConcertoGatewayTest, CommissionDoesNothingWithAutoCommissioningOff) {
  ReadyForCommissioning("sys-1");
  h.context.settings.auto_commissioning = false;
  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());
  EXPECT_EQ(fake.CallCount(FakeConcerto::kCreateSite), 0);
  EXPECT_EQ(fake.CallCount(FakeConcerto::kCreateAsset), 0);
  EXPECT_EQ(fake.Assets().size(), 1U);
}

TEST_F(ConcertoGatewayTest, CommissionOfAnUnregisteredSystemIsDone) {
  h.context.settings.auto_commissioning = true;
  EXPECT_TRUE(gateway.Handle(CommissionRequest{"nobody"}).ok());
  EXPECT_EQ(fake.CallCount(FakeConcerto::kCreateAsset), 0);
}

class ConcertoGatewayRemoteStateTest : public ConcertoGatewayTest {
 protected:
  // sys-1 commissioned in Concerto (SYSTEM, one INVERTER, SITE_METER, on a site), its record
  // evaluated ERROR and not yet accepted.
  void SetUp() override {
    ReadyForCommissioning("sys-1");
    ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());
    DrainConcerto(h.concerto_queue);
    auto d = h.Device("sys-1");
    ASSERT_TRUE(d.site && d.site_meter && d.inverters.size() == 1U);
    d.evaluated_state = RemoteState::kError;
    d.remote_state_reason = "CES status DISCONNECTED";
    d.remote_state_cause = "ces:DISCONNECTED";
    record = *h.devices.Put(d);
    site_id = record.site->site_id;
    // Commissioning gave the new site the aggregate of its (then unevaluated) system.
    sites_before = fake.SiteRemoteStateHistory().size();
    ASSERT_TRUE(fake.AssetRemoteStateHistory().empty());
  }
  std::vector<std::string> AssetIds() const {
    return {record.concerto_asset_id, record.inverters[0].asset_id, record.site_meter->asset_id};
  }
  std::vector<domain::RemoteStateUpdate> SiteUpdates() const {
    auto all = fake.SiteRemoteStateHistory();
    return {all.begin() + static_cast<std::ptrdiff_t>(sites_before), all.end()};
  }
  // The target's value in the Coordination store (empty when there is none).
  AcceptedState Accepted(const std::string& id, bool site = false) {
    auto value = h.coordination.GetValue(AcceptedStateKey(site, id));
    EXPECT_TRUE(value.ok()) << value.status().ToString();
    return value.ok() && value->has_value() ? DecodeAcceptedState((*value)->value) : AcceptedState{};
  }
  // The lease the sweep takes for a queued request, held by `owner`.
  void TakeRequestLease(const std::string& owner) {
    auto leased = h.coordination.TryAcquireLease(SystemKey("sys-1", "remote_state"), owner, h.clock.Now(),
                                                 h.context.settings.list_assets_expiry);
    ASSERT_TRUE(leased.ok() && *leased);
  }
  std::optional<ports::LeaseInfo> RequestLease() {
    auto lease = h.coordination.GetLease(SystemKey("sys-1", "remote_state"));
    EXPECT_TRUE(lease.ok());
    return lease.ok() ? *lease : std::nullopt;
  }
  void SetEvaluated(RemoteState state, const std::string& reason) {
    auto d = h.Device("sys-1");
    d.evaluated_state = state;
    d.remote_state_reason = reason;
    ASSERT_TRUE(h.devices.Put(d).ok());
  }

  domain::DeviceRecord record;
  std::string site_id;
  std::size_t sites_before = 0;
};

TEST_F(ConcertoGatewayRemoteStateTest, SendsTheEvaluationToSystemInverterSiteMeterAndSiteAndRecordsItAccepted) {
  TakeRequestLease("token-1");
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, "token-1"}).ok());

  const std::string reason = "CES status DISCONNECTED";
  EXPECT_EQ(fake.AssetRemoteStateHistory(),
            (std::vector<domain::RemoteStateUpdate>{{record.concerto_asset_id, RemoteState::kError, reason},
                                                    {record.inverters[0].asset_id, RemoteState::kError, reason},
                                                    {record.site_meter->asset_id, RemoteState::kError, reason}}));
  EXPECT_EQ(SiteUpdates(), (std::vector<domain::RemoteStateUpdate>{
                               {site_id, RemoteState::kError, "no system ONLINE; 1 of 1 in ERROR"}}));
  EXPECT_EQ(fake.Asset(record.concerto_asset_id)->remote_state, std::optional<RemoteState>(RemoteState::kError));
  // Accepted: on the device and per target in the store, with no claim left behind.
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kError));
  for (const auto& id : AssetIds()) {
    const AcceptedState stored = Accepted(id);
    EXPECT_EQ(stored.accepted, std::optional<RemoteState>(RemoteState::kError)) << id;
    EXPECT_TRUE(stored.claim_owner.empty()) << id;
    EXPECT_FALSE(stored.claim_state.has_value()) << id;
  }
  EXPECT_EQ(Accepted(site_id, true).accepted, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_updates_total", {{"target", "system"}}), 1);
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_updates_total", {{"target", "inverter"}}), 1);
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_updates_total", {{"target", "site_meter"}}), 1);
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_updates_total", {{"target", "site"}}),
            static_cast<double>(sites_before + 1));
  EXPECT_FALSE(RequestLease().has_value()) << "done: the request's lease is given back";
}

TEST_F(ConcertoGatewayRemoteStateTest, ClaimsEachTargetWhileSendingIt) {
  std::vector<AcceptedState> during;
  concerto.after_remote_state = [&] { during.push_back(Accepted(record.concerto_asset_id)); };
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", std::nullopt, ""}).ok());
  concerto.after_remote_state = nullptr;
  ASSERT_EQ(during.size(), 3U);
  // While the SYSTEM asset was being sent, the store showed a live claim of ERROR on it, not yet accepted.
  EXPECT_FALSE(during[0].claim_owner.empty());
  EXPECT_EQ(during[0].claim_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(during[0].claim_until, h.clock.Now() + h.context.settings.work_lease);
  EXPECT_EQ(during[0].accepted, std::nullopt);
  // Once sent: accepted, claim gone.
  EXPECT_EQ(during[1].accepted, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_TRUE(during[1].claim_owner.empty());
}

TEST_F(ConcertoGatewayRemoteStateTest, EachTargetGetsAStateOnceEvenWithTwoRequests) {
  // Two requests queued for two changes (OFFLINE, then ERROR) both run after the second change:
  // they read the same state, and only the first sends it.
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  EXPECT_EQ(fake.AssetRemoteStateHistory().size(), 3U);  // system, inverter, site meter: once each
  EXPECT_EQ(SiteUpdates().size(), 1U);
  EXPECT_EQ(fake.CallCount(FakeConcerto::kUpdateAssetRemoteState), 3);
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_updates_total", {{"target", "system"}}), 1);

  // A real change is sent.
  SetEvaluated(RemoteState::kOnline, "telemetry current");
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  const auto history = fake.AssetRemoteStateHistory();
  ASSERT_EQ(history.size(), 6U);
  for (std::size_t i = 3; i < 6; ++i) EXPECT_EQ(history[i].state, RemoteState::kOnline);
  EXPECT_EQ(SiteUpdates().size(), 2U);
  EXPECT_EQ(SiteUpdates().back().state, RemoteState::kOnline);
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kOnline));
}

TEST_F(ConcertoGatewayRemoteStateTest, AFailedUpdateIsNotRecordedAsAcceptedAndTheRetrySendsIt) {
  TakeRequestLease("token-1");
  fake.FailNext(FakeConcerto::kUpdateAssetRemoteState, UnavailableError("502"));
  const Status failed = gateway.Handle(RemoteStateRequest{"sys-1", site_id, "token-1"});
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(failed.IsRetryable());
  EXPECT_TRUE(fake.AssetRemoteStateHistory().empty());
  EXPECT_TRUE(SiteUpdates().empty());
  EXPECT_EQ(h.Device("sys-1").remote_state, std::nullopt) << "not accepted";
  const AcceptedState system = Accepted(record.concerto_asset_id);
  EXPECT_EQ(system.accepted, std::nullopt);
  EXPECT_TRUE(system.claim_owner.empty()) << "the claim is given back, so the retry may send";
  EXPECT_FALSE(system.claim_until.has_value());
  ASSERT_TRUE(RequestLease().has_value()) << "retryable: the request is delivered again";
  EXPECT_EQ(RequestLease()->owner, "token-1");

  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, "token-1"}).ok());
  const auto history = fake.AssetRemoteStateHistory();
  ASSERT_EQ(history.size(), 3U);
  EXPECT_EQ(history[0].id, record.concerto_asset_id);
  EXPECT_EQ(history[0].state, RemoteState::kError);
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_FALSE(RequestLease().has_value());
}

TEST_F(ConcertoGatewayRemoteStateTest, AFailureHalfwayKeepsWhatWasAcceptedAndTheRetrySendsOnlyTheRest) {
  concerto.fail_ids = {{record.inverters[0].asset_id, UnavailableError("502")}};
  EXPECT_EQ(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).code(), StatusCode::kUnavailable);
  ASSERT_EQ(fake.AssetRemoteStateHistory().size(), 1U);  // the SYSTEM asset only
  EXPECT_EQ(Accepted(record.concerto_asset_id).accepted, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(Accepted(record.inverters[0].asset_id).accepted, std::nullopt);
  EXPECT_EQ(h.Device("sys-1").remote_state, std::nullopt) << "not every target accepted it";

  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  const auto history = fake.AssetRemoteStateHistory();
  ASSERT_EQ(history.size(), 3U);
  EXPECT_EQ(history[1].id, record.inverters[0].asset_id);
  EXPECT_EQ(history[2].id, record.site_meter->asset_id);
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kError));
}

TEST_F(ConcertoGatewayRemoteStateTest, AFailureHalfwayThenAFlipBackLeavesNoTargetWrong) {
  // Accepted ERROR everywhere, then evaluated ONLINE: the SYSTEM asset takes ONLINE, the inverter
  // fails for good.
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  ASSERT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kError));
  SetEvaluated(RemoteState::kOnline, "telemetry current");
  concerto.fail_ids = {{record.inverters[0].asset_id, InvalidArgumentError("400")}};
  EXPECT_EQ(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).code(), StatusCode::kInvalidArgument);
  concerto.fail_ids.clear();
  EXPECT_EQ(Accepted(record.concerto_asset_id).accepted, std::optional<RemoteState>(RemoteState::kOnline));
  // The device no longer has one accepted state: forgotten, so that whatever the evaluation is
  // next differs from it and is sent.
  EXPECT_EQ(h.Device("sys-1").remote_state, std::nullopt);

  // The evaluation flips back to ERROR: the SYSTEM asset (now ONLINE) gets ERROR again.
  SetEvaluated(RemoteState::kError, "CES status DISCONNECTED");
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  EXPECT_EQ(fake.Asset(record.concerto_asset_id)->remote_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kError));
}

TEST_F(ConcertoGatewayRemoteStateTest, AFailedSiteSendLeavesTheSystemUnacceptedSoTheSweepSendsAgain) {
  fake.FailNext(FakeConcerto::kUpdateSiteRemoteState, InvalidArgumentError("400"));
  EXPECT_EQ(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fake.AssetRemoteStateHistory().size(), 3U) << "the assets have it";
  EXPECT_NE(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kError))
      << "not recorded accepted while its site lacks it";
  // The next request (queued by the sweep, since evaluated != accepted) sends only the site.
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  EXPECT_EQ(fake.AssetRemoteStateHistory().size(), 3U);
  ASSERT_FALSE(SiteUpdates().empty());
  EXPECT_EQ(SiteUpdates().back().state, RemoteState::kError);
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kError));
}

TEST_F(ConcertoGatewayRemoteStateTest, APermanentFailureGivesTheLeaseBack) {
  TakeRequestLease("token-1");
  fake.FailNext(FakeConcerto::kUpdateAssetRemoteState, InvalidArgumentError("400"));
  const Status failed = gateway.Handle(RemoteStateRequest{"sys-1", site_id, "token-1"});
  EXPECT_EQ(failed.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(RequestLease().has_value()) << "dead-lettered: the sweep may queue the state again";
  EXPECT_EQ(h.Device("sys-1").remote_state, std::nullopt);
}

TEST_F(ConcertoGatewayRemoteStateTest, AnotherOwnersLeaseIsNotGivenBack) {
  // The lease expired and the sweep queued another request (another token) meanwhile.
  TakeRequestLease("token-2");
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, "token-1"}).ok());
  ASSERT_TRUE(RequestLease().has_value());
  EXPECT_EQ(RequestLease()->owner, "token-2");
}

TEST_F(ConcertoGatewayRemoteStateTest, ARestartedGatewaySendsNothingConcertoAlreadyHas) {
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  ASSERT_EQ(fake.CallCount(FakeConcerto::kUpdateAssetRemoteState), 3);
  const int site_calls = fake.CallCount(FakeConcerto::kUpdateSiteRemoteState);
  // The worker crashed after Concerto accepted but before the device recorded it.
  auto d = h.Device("sys-1");
  d.remote_state.reset();
  ASSERT_TRUE(h.devices.Put(d).ok());

  // A new process: new handler objects, the same store and coordination.
  DeviceMetadataProcessor metadata2{h.context};
  Registrar registrar2{h.context, metadata2};
  ConcertoGateway restarted{h.context, concerto, registrar2};
  ASSERT_TRUE(restarted.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  EXPECT_EQ(fake.CallCount(FakeConcerto::kUpdateAssetRemoteState), 3) << "nothing sent twice";
  EXPECT_EQ(fake.CallCount(FakeConcerto::kUpdateSiteRemoteState), site_calls);
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kError))
      << "what the store shows accepted is recorded on the device";
}

TEST_F(ConcertoGatewayRemoteStateTest, ALiveClaimByAnotherWorkerIsAbortedUntilItExpires) {
  AcceptedState claimed;
  claimed.claim_owner = "another-worker";
  claimed.claim_state = RemoteState::kError;
  claimed.claim_until = h.clock.Now() + std::chrono::seconds(30);
  ASSERT_TRUE(h.coordination.PutValue(AcceptedStateKey(false, record.concerto_asset_id), EncodeAcceptedState(claimed), 0)
                  .ok());
  TakeRequestLease("token-1");

  const Status busy = gateway.Handle(RemoteStateRequest{"sys-1", site_id, "token-1"});
  EXPECT_EQ(busy.code(), StatusCode::kAborted) << "contention, not an outage of Concerto";
  EXPECT_TRUE(busy.IsRetryable());
  EXPECT_FALSE(IsOutage(busy));
  EXPECT_EQ(fake.CallCount(FakeConcerto::kUpdateAssetRemoteState), 0);
  EXPECT_EQ(Accepted(record.concerto_asset_id).claim_owner, "another-worker") << "the claim is left alone";
  ASSERT_TRUE(RequestLease().has_value()) << "retried later: the lease stays";

  // The other worker died: once its claim ran out, the redelivery sends.
  h.clock.Advance(std::chrono::seconds(30));
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, "token-1"}).ok());
  EXPECT_EQ(fake.AssetRemoteStateHistory().size(), 3U);
  const AcceptedState after = Accepted(record.concerto_asset_id);
  EXPECT_EQ(after.accepted, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_TRUE(after.claim_owner.empty());
}

TEST_F(ConcertoGatewayRemoteStateTest, AStateChangedWhileSendingIsSentAgainSoTheLastWordIsCurrent) {
  // The sweep records ONLINE while this worker is still sending ERROR: this one must not have
  // the last word with the old state.
  bool changed = false;
  concerto.after_remote_state = [&] {
    if (changed) return;
    changed = true;
    SetEvaluated(RemoteState::kOnline, "telemetry current");
  };
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", std::nullopt, ""}).ok());
  concerto.after_remote_state = nullptr;
  const auto history = fake.AssetRemoteStateHistory();
  ASSERT_EQ(history.size(), 6U);  // ERROR to the 3 assets, then ONLINE to the 3 assets
  EXPECT_EQ(history[0].state, RemoteState::kError);
  for (std::size_t i = 3; i < 6; ++i) EXPECT_EQ(history[i].state, RemoteState::kOnline);
  EXPECT_EQ(fake.Asset(record.concerto_asset_id)->remote_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_EQ(fake.Asset(record.inverters[0].asset_id)->remote_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kOnline));
}

TEST_F(ConcertoGatewayRemoteStateTest, SendsTheStoredEvaluationNotTheLastAcceptedOne) {
  auto d = h.Device("sys-1");
  d.remote_state = RemoteState::kError;  // accepted before
  d.evaluated_state = RemoteState::kOnline;
  d.remote_state_reason = "telemetry current";
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", std::nullopt, ""}).ok());
  const auto history = fake.AssetRemoteStateHistory();
  ASSERT_EQ(history.size(), 3U);
  for (const auto& u : history) EXPECT_EQ(u, (domain::RemoteStateUpdate{u.id, RemoteState::kOnline, "telemetry current"}));
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kOnline));
}

TEST_F(ConcertoGatewayRemoteStateTest, ARequestWithoutASiteUsesTheRecordsSite) {
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", std::nullopt, ""}).ok());
  EXPECT_EQ(SiteUpdates(), (std::vector<domain::RemoteStateUpdate>{
                               {site_id, RemoteState::kError, "no system ONLINE; 1 of 1 in ERROR"}}));
}

TEST_F(ConcertoGatewayRemoteStateTest, EveryInverterOfTheSystemGetsTheState) {
  domain::CreateAssetRequest second;
  second.remote_id = "000100000002";
  second.name = "inverter 2";
  second.asset_type = AssetType::kInverter;
  second.adapter_name = kAdapterName;
  second.parent_id = record.concerto_asset_id;
  second.site_id = site_id;
  auto created = fake.CreateAsset(second);
  ASSERT_TRUE(created.ok());
  auto d = h.Device("sys-1");
  d.inverter_rcpns = {"000100000001", "000100000002"};
  d.SetInverter(domain::AssetRef{created->id, "000100000002"});
  ASSERT_TRUE(h.devices.Put(d).ok());

  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", std::nullopt, ""}).ok());
  std::vector<std::string> ids;
  for (const auto& u : fake.AssetRemoteStateHistory()) ids.push_back(u.id);
  EXPECT_EQ(ids, (std::vector<std::string>{record.concerto_asset_id, record.inverters[0].asset_id, created->id,
                                           record.site_meter->asset_id}));
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_updates_total", {{"target", "inverter"}}), 2);
}

TEST_F(ConcertoGatewayRemoteStateTest, UnknownToConcertoIsSkippedAndTheStateIsNotRecordedAccepted) {
  ASSERT_TRUE(fake.RemoveAsset(record.site_meter->asset_id));
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", std::nullopt, ""}).ok());
  EXPECT_EQ(fake.AssetRemoteStateHistory().size(), 2U);
  EXPECT_EQ(h.Device("sys-1").remote_state, std::nullopt) << "the site meter did not accept it";
  const AcceptedState meter = Accepted(record.site_meter->asset_id);
  EXPECT_EQ(meter.accepted, std::nullopt);
  EXPECT_TRUE(meter.claim_owner.empty()) << "its claim is given back too";

  fake.FailNext(FakeConcerto::kUpdateAssetRemoteState, UnavailableError("502"));
  SetEvaluated(RemoteState::kOnline, "telemetry current");
  const Status failed = gateway.Handle(RemoteStateRequest{"sys-1", std::nullopt, ""});
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(failed.IsRetryable());
}

// The site's state comes from its systems' records (DeviceStore::ListBySite) as they are when the
// request runs, each counted by its evaluation.
TEST_F(ConcertoGatewayRemoteStateTest, TheSiteIsAggregatedOverItsSystemsThroughListBySite) {
  auto other = test_support::Registered("sys-2", "asset-x", h.clock.Now());
  other.site = record.site;
  other.evaluated_state = RemoteState::kOnline;  // not accepted yet, but it is what the adapter wants
  other.remote_state = RemoteState::kOffline;
  h.Store(other);
  auto elsewhere = test_support::Registered("sys-3", "asset-y", h.clock.Now());
  elsewhere.site = domain::SiteRef{"site-elsewhere", "ces-site-elsewhere", "Elsewhere"};
  elsewhere.evaluated_state = RemoteState::kError;
  h.Store(elsewhere);

  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  EXPECT_EQ(SiteUpdates(),
            (std::vector<domain::RemoteStateUpdate>{{site_id, RemoteState::kOnline, "1 of 2 systems ONLINE"}}));

  // sys-2 goes OFFLINE: the site follows when a request of either system runs.
  auto d2 = h.Device("sys-2");
  d2.evaluated_state = RemoteState::kOffline;
  ASSERT_TRUE(h.devices.Put(d2).ok());
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  ASSERT_EQ(SiteUpdates().size(), 2U);
  EXPECT_EQ(SiteUpdates()[1],
            (domain::RemoteStateUpdate{site_id, RemoteState::kError, "no system ONLINE; 1 of 2 in ERROR"}));
}

TEST_F(ConcertoGatewayRemoteStateTest, TheSiteGetsItsAggregateAsItIsNowNotTheOneOfAnOlderRequest) {
  // Two requests were queued: ERROR, then ONLINE. Run out of order, the older one must not leave
  // the site in ERROR.
  SetEvaluated(RemoteState::kOnline, "telemetry current");
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  EXPECT_EQ(SiteUpdates(),
            (std::vector<domain::RemoteStateUpdate>{{site_id, RemoteState::kOnline, "1 of 1 systems ONLINE"}}));
}

TEST_F(ConcertoGatewayRemoteStateTest, AnOldBodyWithASiteStateSendsTheAggregateAsItIsNow) {
  auto decoded = DecodeConcertoRequest(R"({"op":"update_remote_state","remote_id":"sys-1","site":{"id":")" + site_id +
                                       R"(","state":"OFFLINE","reason":"all 1 systems OFFLINE"}})");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_TRUE(gateway.Handle(*decoded).ok());
  EXPECT_EQ(SiteUpdates(), (std::vector<domain::RemoteStateUpdate>{
                               {site_id, RemoteState::kError, "no system ONLINE; 1 of 1 in ERROR"}}));
}

TEST_F(ConcertoGatewayRemoteStateTest, SystemNeverEvaluatedOnlyUpdatesTheSite) {
  auto d = h.Device("sys-1");
  d.evaluated_state.reset();
  d.remote_state = RemoteState::kOnline;
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", site_id, ""}).ok());
  EXPECT_TRUE(fake.AssetRemoteStateHistory().empty());
  // Counted by what Concerto accepted for it.
  EXPECT_EQ(SiteUpdates(),
            (std::vector<domain::RemoteStateUpdate>{{site_id, RemoteState::kOnline, "1 of 1 systems ONLINE"}}));
}

TEST_F(ConcertoGatewayRemoteStateTest, ARequestForAnUnregisteredSystemIsDoneAndGivesItsLeaseBack) {
  auto leased = h.coordination.TryAcquireLease(SystemKey("gone", "remote_state"), "token-9", h.clock.Now(),
                                               h.context.settings.list_assets_expiry);
  ASSERT_TRUE(leased.ok() && *leased);
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"gone", std::nullopt, "token-9"}).ok());
  EXPECT_EQ(fake.CallCount(FakeConcerto::kUpdateAssetRemoteState), 0);
  auto lease = h.coordination.GetLease(SystemKey("gone", "remote_state"));
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE(lease->has_value());
}

TEST_F(ConcertoGatewayTest, CommissioningGivesTheNewAssetsAndTheSiteTheSystemsCurrentState) {
  // The system went ONLINE (and Concerto accepted it) before its structure existed in Concerto.
  const std::string system_id = ReadyForCommissioning("sys-1");
  DrainConcerto(h.concerto_queue);
  auto d = h.Device("sys-1");
  d.evaluated_state = RemoteState::kOnline;
  d.remote_state_reason = "telemetry current";
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(gateway.Handle(RemoteStateRequest{"sys-1", std::nullopt, ""}).ok());
  ASSERT_EQ(fake.AssetRemoteStateHistory().size(), 1U);  // only the SYSTEM asset exists yet
  ASSERT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kOnline));

  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());

  const auto done = h.Device("sys-1");
  ASSERT_EQ(done.inverters.size(), 1U);
  const auto history = fake.AssetRemoteStateHistory();
  ASSERT_EQ(history.size(), 3U);  // + inverter and site meter, the system not again
  EXPECT_EQ(history[1].id, done.inverters[0].asset_id);
  EXPECT_EQ(history[1].state, RemoteState::kOnline);
  EXPECT_EQ(history[2].id, done.site_meter->asset_id);
  const auto sites = fake.SiteRemoteStateHistory();
  ASSERT_EQ(sites.size(), 1U);
  EXPECT_EQ(sites[0].id, done.site->site_id);
  EXPECT_EQ(sites[0].state, RemoteState::kOnline);
}

TEST_F(ConcertoGatewayTest, CommissioningRecordsItsWritesForTheRegistrar) {
  ReadyForCommissioning("sys-1");
  const Timestamp before = h.clock.Now();
  auto wrote = CommissioningWroteSince(h.coordination, "sys-1", before);
  ASSERT_TRUE(wrote.ok());
  EXPECT_FALSE(*wrote);
  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());
  wrote = CommissioningWroteSince(h.coordination, "sys-1", before);
  ASSERT_TRUE(wrote.ok());
  EXPECT_TRUE(*wrote);
  wrote = CommissioningWroteSince(h.coordination, "sys-1", before + std::chrono::milliseconds(1));
  ASSERT_TRUE(wrote.ok());
  EXPECT_FALSE(*wrote) << "the note is the time of the write";
}

TEST_F(ConcertoGatewayTest, ABusyCommissioningLeaseIsAbortedAndCommissionsNothing) {
  ReadyForCommissioning("sys-1");
  const std::string lease = SystemKey("sys-1", "commission");
  auto leased = h.coordination.TryAcquireLease(lease, "another-worker", h.clock.Now(), std::chrono::minutes(1));
  ASSERT_TRUE(leased.ok() && *leased);

  const Status busy = gateway.Handle(CommissionRequest{"sys-1"});
  EXPECT_EQ(busy.code(), StatusCode::kAborted) << "contention, not an outage of Concerto";
  EXPECT_TRUE(busy.IsRetryable());
  EXPECT_FALSE(IsOutage(busy));
  EXPECT_EQ(fake.CallCount(FakeConcerto::kSiteByRemoteId), 0);
  EXPECT_EQ(fake.CallCount(FakeConcerto::kCreateSite), 0);
  EXPECT_EQ(fake.CallCount(FakeConcerto::kCreateAsset), 0);
  auto held = h.coordination.GetLease(lease);
  ASSERT_TRUE(held.ok() && held->has_value());
  EXPECT_EQ((*held)->owner, "another-worker");

  // The other run died: its lease expires and the redelivery commissions.
  h.clock.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());
  EXPECT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kDone);
  held = h.coordination.GetLease(lease);
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(held->has_value()) << "given back when done";
}

TEST_F(ConcertoGatewayTest, AFailedCommissioningRunGivesItsLeaseBack) {
  ReadyForCommissioning("sys-1");
  fake.FailNext(FakeConcerto::kCreateSite, UnavailableError("503"));
  EXPECT_EQ(gateway.Handle(CommissionRequest{"sys-1"}).code(), StatusCode::kUnavailable);
  auto held = h.coordination.GetLease(SystemKey("sys-1", "commission"));
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(held->has_value());
  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok()) << "the redelivery is not locked out";
  EXPECT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kDone);
}

TEST_F(ConcertoGatewayTest, TheListingLeaseIsGivenBackWithItsTokenWhenTheListingIsDone) {
  fake.EnrollSystem("sys-1", "S", std::string(kAdapterName));
  RegistrarPoller poller(h.context);
  ASSERT_TRUE(poller.Poll().ok());
  const auto queued = DrainConcerto(h.concerto_queue);
  ASSERT_EQ(queued.size(), 1U);
  ASSERT_TRUE(std::holds_alternative<ListAssetsRequest>(queued[0]));
  const std::string token = std::get<ListAssetsRequest>(queued[0]).lease_owner;
  ASSERT_FALSE(token.empty());
  auto lease = h.coordination.GetLease(kListingLease);
  ASSERT_TRUE(lease.ok() && lease->has_value());
  EXPECT_EQ((*lease)->owner, token);

  // A stale request (another token: its lease expired and was taken over) gives nothing back.
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{"stale-token"}).ok());
  lease = h.coordination.GetLease(kListingLease);
  ASSERT_TRUE(lease.ok() && lease->has_value());
  EXPECT_EQ((*lease)->owner, token);
  ASSERT_TRUE(poller.Poll().ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());

  ASSERT_TRUE(gateway.Handle(queued[0]).ok());
  lease = h.coordination.GetLease(kListingLease);
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE(lease->has_value());
  ASSERT_TRUE(poller.Poll().ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue).size(), 1U) << "the listing ended; the next poll queues again";
}

TEST_F(ConcertoGatewayTest, APermanentlyFailedListingGivesItsLeaseBack) {
  RegistrarPoller poller(h.context);
  ASSERT_TRUE(poller.Poll().ok());
  const auto queued = DrainConcerto(h.concerto_queue);
  ASSERT_EQ(queued.size(), 1U);
  fake.FailNext(FakeConcerto::kListAssets, PermissionDeniedError("403"));
  const Status failed = gateway.Handle(queued[0]);
  ASSERT_FALSE(failed.ok());
  EXPECT_FALSE(failed.IsRetryable());
  auto lease = h.coordination.GetLease(kListingLease);
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE(lease->has_value());
}

TEST_F(ConcertoGatewayTest, PushTelemetryIngestsThePointsOnce) {
  const std::string system_id = fake.EnrollSystem("sys-1", "S", std::string(kAdapterName));
  const Timestamp t = FromUnixMillis(1'763'800'000'000);
  const std::vector<domain::TelemetryPoint> points = {
      {system_id, Metric::kInverterState, t, 2080},
      {system_id, Metric::kSystemMode, t, 2},
      {system_id, Metric::kRealPower, t, 1.5},
  };
  ASSERT_TRUE(gateway.Handle(PushTelemetryRequest{points}).ok());
  EXPECT_EQ(fake.Points(), points);
  EXPECT_EQ(h.metrics.Value("pwrcell_concerto_points_total", {{"outcome", "accepted"}}), 3);

  // Redelivered: Concerto de-duplicates.
  ASSERT_TRUE(gateway.Handle(PushTelemetryRequest{points}).ok());
  EXPECT_EQ(fake.Points().size(), 3U);
  EXPECT_EQ(h.metrics.Value("pwrcell_concerto_points_total", {{"outcome", "duplicate"}}), 3);

  // A point for an asset Concerto does not know is rejected and counted, the rest accepted.
  ASSERT_TRUE(gateway
                  .Handle(PushTelemetryRequest{{{"asset-404", Metric::kRealPower, t, 1},
                                                {system_id, Metric::kRealPower, t + Seconds(300), 2}}})
                  .ok());
  EXPECT_EQ(fake.Points().size(), 4U);
  EXPECT_EQ(h.metrics.Value("pwrcell_concerto_points_total", {{"outcome", "rejected"}}), 1);
}

TEST_F(ConcertoGatewayTest, PushTelemetryFailureIsRetryable) {
  const std::string system_id = fake.EnrollSystem("sys-1", "S", std::string(kAdapterName));
  fake.FailNext(FakeConcerto::kIngestTelemetry, ResourceExhaustedError("429"));
  Status failed = gateway.Handle(
      PushTelemetryRequest{{{system_id, Metric::kRealPower, FromUnixMillis(1'763'800'000'000), 1}}});
  EXPECT_EQ(failed.code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(failed.IsRetryable());
  EXPECT_TRUE(fake.Points().empty());

  EXPECT_TRUE(gateway.Handle(PushTelemetryRequest{}).ok());
  EXPECT_EQ(fake.CallCount(FakeConcerto::kIngestTelemetry), 1) << "no call for an empty message";
}

}  // namespace
}  // namespace pwrcell::processes
