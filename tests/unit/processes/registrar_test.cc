#include "processes/registrar.h"

#include <gtest/gtest.h>

#include "domain/coupling.h"
#include "process_test_support.h"
#include "processes/device_metadata_processor.h"
#include "processes/shared_state.h"
#include "processes/simulated_systems.h"

namespace pwrcell::processes {
namespace {

using domain::AssetChild;
using domain::AssetType;
using domain::CommissioningState;
using domain::ConcertoAsset;
using test_support::DrainCes;
using test_support::DrainConcerto;
using test_support::kAdapterName;

ConcertoAsset System(const std::string& id, const std::string& remote_id,
                     std::optional<std::string> adapter = std::string(kAdapterName), bool simulated = false,
                     std::optional<double> rated_power_kw = std::nullopt) {
  ConcertoAsset a;
  a.id = id;
  a.remote_id = remote_id;
  a.name = "System " + remote_id;
  a.asset_type = AssetType::kSystem;
  a.adapter_name = std::move(adapter);
  a.simulated = simulated;
  a.rated_power_kw = rated_power_kw;
  return a;
}

// A SYSTEM asset as Concerto lists it once commissioned: on a site, with its INVERTER (holding
// the batteries and PV links of `metadata`) and SITE_METER.
ConcertoAsset CommissionedSystem(const std::string& id, const std::string& remote_id,
                                 const domain::SystemMetadata& metadata) {
  ConcertoAsset a = System(id, remote_id);
  a.site = domain::ConcertoSite{"site-1", metadata.site_id, metadata.site_name, "", {}, {}, {}};
  AssetChild inverter{"asset-inv", metadata.inverters.front().rcpn, AssetType::kInverter, {}};
  int n = 0;
  for (const auto& b : metadata.batteries) {
    inverter.children.push_back({"asset-bat-" + std::to_string(++n), b.rcpn, AssetType::kBattery, {}});
  }
  for (const auto& pv : metadata.pv_links) {
    inverter.children.push_back({"asset-pv-" + std::to_string(++n), pv.rcpn, AssetType::kPhotovoltaic, {}});
  }
  a.children.push_back(inverter);
  a.children.push_back({"asset-meter", *metadata.site_meter_id, AssetType::kSiteMeter, {}});
  return a;
}

class RegistrarTest : public ::testing::Test {
 protected:
  test_support::Harness h;
  DeviceMetadataProcessor metadata{h.context};
  Registrar registrar{h.context, metadata};

  // Gives `remote_id` fresh CES metadata, as the metadata processor would, and clears the queues.
  void GiveMetadata(const std::string& remote_id) {
    ASSERT_TRUE(metadata.Process(remote_id, test_support::DcMetadata(remote_id)).ok());
    test_support::Drain(h.concerto_queue);
    test_support::Drain(h.ces_queue);
  }
};

TEST_F(RegistrarTest, RegistersOnlySystemAssetsOfThisAdapter) {
  ConcertoAsset inverter = System("asset-4", "inv-1");
  inverter.asset_type = AssetType::kInverter;
  const std::vector<ConcertoAsset> assets = {
      System("asset-1", "sys-1"),
      System("asset-2", "sys-2", std::string("another-adapter")),
      System("asset-3", "sys-3", std::nullopt),
      inverter,
  };
  ASSERT_TRUE(registrar.Register(assets, true).ok());

  EXPECT_EQ(h.RemoteIds(), std::vector<std::string>{"sys-1"});
  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.concerto_asset_id, "asset-1");
  EXPECT_EQ(d.name, "System sys-1");
  EXPECT_FALSE(d.is_simulated);
  EXPECT_EQ(d.registered_at, h.clock.Now());
  EXPECT_EQ(h.metrics.Value("pwrcell_devices_registered_total"), 1);
}

TEST_F(RegistrarTest, RegisteredAtIsSetOnFirstSightOnly) {
  const Timestamp first = h.clock.Now();
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  h.clock.Advance(std::chrono::minutes(5));
  ConcertoAsset renamed = System("asset-1", "sys-1", std::string(kAdapterName), false, 11.4);
  renamed.name = "Renamed";
  ASSERT_TRUE(registrar.Register({renamed}, true).ok());

  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.registered_at, first);
  EXPECT_EQ(d.name, "Renamed");
  EXPECT_EQ(d.rated_power_kw, std::optional<double>(11.4));
  EXPECT_EQ(h.metrics.Value("pwrcell_devices_registered_total"), 1);
}

TEST_F(RegistrarTest, CopiesSiteAndComponentAssetsFromChildren) {
  const auto md = test_support::DcMetadata("sys-1");
  ASSERT_TRUE(registrar.Register({CommissionedSystem("asset-1", "sys-1", md)}, true).ok());

  const auto d = h.Device("sys-1");
  ASSERT_TRUE(d.site.has_value());
  EXPECT_EQ(d.site->site_id, "site-1");
  EXPECT_EQ(d.site->remote_id, "ces-site-sys-1");
  EXPECT_EQ(d.inverters, (std::vector<domain::AssetRef>{{"asset-inv", "000100000001"}}));
  EXPECT_EQ(d.batteries, (std::vector<domain::AssetRef>{{"asset-bat-1", "000200000001"},
                                                        {"asset-bat-2", "000200000002"}}));
  EXPECT_EQ(d.photovoltaics, (std::vector<domain::AssetRef>{{"asset-pv-3", "000300000001"},
                                                            {"asset-pv-4", "000300000002"},
                                                            {"asset-pv-5", "000300000003"}}));
  EXPECT_EQ(d.site_meter, (domain::AssetRef{"asset-meter", "sys-1-meter"}));
}

TEST_F(RegistrarTest, AListOlderThanACommissioningWriteKeepsTheRecordedComponents) {
  const auto md = test_support::DcMetadata("sys-1");
  ASSERT_TRUE(registrar.Register({CommissionedSystem("asset-1", "sys-1", md)}, true).ok());
  const auto commissioned = h.Device("sys-1");
  ASSERT_TRUE(commissioned.site && !commissioned.inverters.empty() && commissioned.site_meter);

  // A listing begins; commissioning then records assets on the device; the list, read before
  // that, shows the SYSTEM without them.
  const Timestamp listing_started = h.clock.Now();
  h.clock.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(NoteCommissioningWrite(h.coordination, "sys-1", h.clock.Now()).ok());
  ConcertoAsset bare = System("asset-1", "sys-1");
  bare.name = "Renamed";
  ASSERT_TRUE(registrar.Register({bare}, true, listing_started).ok());
  auto d = h.Device("sys-1");
  EXPECT_EQ(d.name, "Renamed");  // what only Concerto says still applies
  EXPECT_EQ(d.site, commissioned.site);
  EXPECT_EQ(d.inverters, commissioned.inverters);
  EXPECT_EQ(d.batteries, commissioned.batteries);
  EXPECT_EQ(d.photovoltaics, commissioned.photovoltaics);
  EXPECT_EQ(d.site_meter, commissioned.site_meter);

  // A list whose listing began after the write is the truth: the assets are gone from Concerto.
  h.clock.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(registrar.Register({bare}, true, h.clock.Now()).ok());
  d = h.Device("sys-1");
  EXPECT_FALSE(d.site.has_value());
  EXPECT_TRUE(d.inverters.empty());
  EXPECT_TRUE(d.batteries.empty());
  EXPECT_TRUE(d.photovoltaics.empty());
  EXPECT_FALSE(d.site_meter.has_value());
}

TEST_F(RegistrarTest, IncompleteListRemovesNothing) {
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1"), System("asset-2", "sys-2")}, true).ok());
  ASSERT_EQ(h.RemoteIds(), (std::vector<std::string>{"sys-1", "sys-2"}));

  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, false).ok());
  EXPECT_EQ(h.RemoteIds(), (std::vector<std::string>{"sys-1", "sys-2"}));
  ASSERT_TRUE(registrar.Register({}, false).ok());
  EXPECT_EQ(h.RemoteIds(), (std::vector<std::string>{"sys-1", "sys-2"}));
  EXPECT_EQ(h.metrics.Value("pwrcell_devices_deregistered_total"), 0);
  EXPECT_EQ(h.metrics.Value("pwrcell_registrar_sweeps_total", {{"complete", "false"}}), 2);
}

TEST_F(RegistrarTest, CompleteListRemovesSystemsThatLeftConcerto) {
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1"), System("asset-2", "sys-2")}, true).ok());
  // sys-2 left Concerto; sys-1 is still there, but now served by another adapter.
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1", std::string("another-adapter"))}, true).ok());
  EXPECT_TRUE(h.RemoteIds().empty());
  EXPECT_EQ(h.metrics.Value("pwrcell_devices_deregistered_total"), 2);
}

TEST_F(RegistrarTest, QueuesGetMetadataForNewSystemsOnce) {
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1"), System("asset-2", "sys-2")}, true).ok());
  EXPECT_EQ(DrainCes(h.ces_queue), (std::vector<CesRequest>{MetadataRequest{"sys-1"}, MetadataRequest{"sys-2"}}));

  // The next sweep, a minute later: the requests are still outstanding, none is repeated.
  h.clock.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1"), System("asset-2", "sys-2")}, true).ok());
  EXPECT_TRUE(DrainCes(h.ces_queue).empty());
}

TEST_F(RegistrarTest, QueuesGetMetadataOnlyWhenStale) {
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  DrainCes(h.ces_queue);
  GiveMetadata("sys-1");

  h.clock.Advance(std::chrono::hours(23));
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  EXPECT_TRUE(DrainCes(h.ces_queue).empty()) << "metadata 23 h old is fresh";

  h.clock.Advance(std::chrono::hours(1));
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  EXPECT_EQ(DrainCes(h.ces_queue), (std::vector<CesRequest>{MetadataRequest{"sys-1"}}));
}

TEST_F(RegistrarTest, SimulatedSystemGetsSynthesizedMetadataAtOnceAndNoCesRequest) {
  ASSERT_TRUE(registrar.Register({System("asset-1", "sim-1", std::string(kAdapterName), true, 11.4)}, true).ok());

  EXPECT_TRUE(DrainCes(h.ces_queue).empty());
  const auto d = h.Device("sim-1");
  EXPECT_TRUE(d.is_simulated);
  ASSERT_TRUE(d.metadata.has_value());
  EXPECT_EQ(*d.metadata, SynthesizeMetadata("sim-1", 11.4));
  EXPECT_EQ(d.metadata->inverters.front().rated_power_w, 11400);
  EXPECT_EQ(d.inverter_rcpns, std::vector<std::string>{d.metadata->inverters.front().rcpn});
  EXPECT_EQ(d.coupling, domain::Coupling::kDc);
  EXPECT_EQ(d.metadata_fetched_at, h.clock.Now());
  EXPECT_EQ(d.system_status, std::nullopt) << "a simulated system has no CES status";
  // Auto-commissioning is off: shown as awaiting commissioning, nothing queued.
  EXPECT_EQ(d.commissioning.state, CommissioningState::kNotRequested);
  EXPECT_NE(d.commissioning.reason.find("awaiting commissioning"), std::string::npos) << d.commissioning.reason;
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
}

TEST_F(RegistrarTest, SimulatedMetadataFollowsConcertoRatedPower) {
  ASSERT_TRUE(registrar.Register({System("asset-1", "sim-1", std::string(kAdapterName), true, 7.6)}, true).ok());
  ASSERT_EQ(h.Device("sim-1").metadata->inverters.front().rated_power_w, 7600);
  ASSERT_TRUE(registrar.Register({System("asset-1", "sim-1", std::string(kAdapterName), true, 11.4)}, true).ok());
  EXPECT_EQ(h.Device("sim-1").metadata->inverters.front().rated_power_w, 11400);
  EXPECT_TRUE(DrainCes(h.ces_queue).empty());
}

TEST_F(RegistrarTest, RealSystemMarkedSimulatedGetsSynthesizedMetadataAndNoCesStatus) {
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  GiveMetadata("sys-1");
  ASSERT_EQ(h.Device("sys-1").system_status, std::optional<std::string>("SUCCESS"));

  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1", std::string(kAdapterName), true)}, true).ok());
  const auto d = h.Device("sys-1");
  EXPECT_TRUE(d.is_simulated);
  EXPECT_EQ(d.metadata, std::optional<domain::SystemMetadata>(SynthesizeMetadata("sys-1", std::nullopt)));
  EXPECT_EQ(d.inverter_rcpns, std::vector<std::string>{d.metadata->inverters.front().rcpn});
  EXPECT_EQ(d.system_status, std::nullopt);
  EXPECT_TRUE(DrainCes(h.ces_queue).empty());
}

TEST_F(RegistrarTest, SimulatedSystemMarkedRealAsksCesForMetadata) {
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1", std::string(kAdapterName), true)}, true).ok());
  ASSERT_TRUE(h.Device("sys-1").metadata.has_value());
  ASSERT_TRUE(DrainCes(h.ces_queue).empty());

  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  const auto d = h.Device("sys-1");
  EXPECT_FALSE(d.is_simulated);
  EXPECT_EQ(d.metadata, std::nullopt) << "the synthesized metadata does not describe the real system";
  EXPECT_EQ(d.metadata_fetched_at, std::nullopt);
  EXPECT_EQ(DrainCes(h.ces_queue), (std::vector<CesRequest>{MetadataRequest{"sys-1"}}));
}

TEST_F(RegistrarTest, NoCommissioningWhenAutoCommissioningIsOff) {
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  GiveMetadata("sys-1");
  h.clock.Advance(std::chrono::minutes(11));
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());

  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.commissioning.state, CommissioningState::kNotRequested);
  EXPECT_EQ(d.commissioning.reason, "awaiting commissioning (auto-commissioning is off)");
}

TEST_F(RegistrarTest, RequestsCommissioningWithAutoCommissioningOn) {
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  GiveMetadata("sys-1");  // auto-commissioning off while the metadata arrives
  h.context.settings.auto_commissioning = true;
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());

  EXPECT_EQ(DrainConcerto(h.concerto_queue), (std::vector<ConcertoRequest>{CommissionRequest{"sys-1"}}));
  EXPECT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kPending);
  // A minute later the request is still outstanding: not queued again.
  h.clock.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
}

TEST_F(RegistrarTest, NoMetadataNoCommissioning) {
  h.context.settings.auto_commissioning = true;
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
  EXPECT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kNotRequested);
}

TEST_F(RegistrarTest, SimulatedSystemIsCommissionedAtOnceWithAutoCommissioningOn) {
  h.context.settings.auto_commissioning = true;
  ASSERT_TRUE(registrar.Register({System("asset-1", "sim-1", std::string(kAdapterName), true)}, true).ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue), (std::vector<ConcertoRequest>{CommissionRequest{"sim-1"}}));
  EXPECT_TRUE(DrainCes(h.ces_queue).empty());
}

TEST_F(RegistrarTest, CompleteStructureInConcertoNeedsNoCommissioning) {
  h.context.settings.auto_commissioning = true;
  const auto md = test_support::DcMetadata("sys-1");
  ASSERT_TRUE(registrar.Register({CommissionedSystem("asset-1", "sys-1", md)}, true).ok());
  GiveMetadata("sys-1");
  ASSERT_TRUE(registrar.Register({CommissionedSystem("asset-1", "sys-1", md)}, true).ok());

  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
  EXPECT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kDone);
}

TEST_F(RegistrarTest, DeregistrationRemovesTheSystemsCoordinationKeysOnly) {
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1"), System("asset-2", "sys-2"),
                                  System("asset-3", "sys-20")},
                                 true)
                  .ok());
  DrainCes(h.ces_queue);
  const Timestamp now = h.clock.Now();
  for (const std::string id : {"sys-1", "sys-2", "sys-20"}) {
    ASSERT_TRUE(NoteCommissioningWrite(h.coordination, id, now).ok());
    auto leased = h.coordination.TryAcquireLease(SystemKey(id, "remote_state"), "token-" + id, now, std::chrono::hours(1));
    ASSERT_TRUE(leased.ok() && *leased);
    leased = h.coordination.TryAcquireLease(SystemKey(id, "commission"), "token-" + id, now, std::chrono::hours(1));
    ASSERT_TRUE(leased.ok() && *leased);
    auto throttled = h.coordination.TryThrottle(SystemKey(id, "commission"), now, std::chrono::hours(1));
    ASSERT_TRUE(throttled.ok() && *throttled);
  }
  // The state Concerto accepted for an asset is not under the system's prefix.
  ASSERT_TRUE(h.coordination.PutValue(AcceptedStateKey(false, "asset-2"), "{}", 0).ok());

  // sys-2 leaves Concerto.
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1"), System("asset-3", "sys-20")}, true).ok());
  ASSERT_EQ(h.RemoteIds(), (std::vector<std::string>{"sys-1", "sys-20"}));

  auto gone_values = h.coordination.ListValues(SystemKeyPrefix("sys-2"));
  ASSERT_TRUE(gone_values.ok());
  EXPECT_TRUE(gone_values->empty());
  for (const char* lease : {"remote_state", "commission"}) {
    auto held = h.coordination.GetLease(SystemKey("sys-2", lease));
    ASSERT_TRUE(held.ok());
    EXPECT_FALSE(held->has_value()) << lease;
  }
  // Another system's keys stay, also one whose id merely starts with "sys-2".
  for (const std::string id : {"sys-1", "sys-20"}) {
    auto wrote = CommissioningWroteSince(h.coordination, id, now);
    ASSERT_TRUE(wrote.ok());
    EXPECT_TRUE(*wrote) << id;
    auto held = h.coordination.GetLease(SystemKey(id, "remote_state"));
    ASSERT_TRUE(held.ok() && held->has_value()) << id;
    auto due = h.coordination.TryThrottle(SystemKey(id, "metadata"), now, std::chrono::hours(1));
    ASSERT_TRUE(due.ok());
    EXPECT_FALSE(*due) << id;
  }
  auto accepted = h.coordination.GetValue(AcceptedStateKey(false, "asset-2"));
  ASSERT_TRUE(accepted.ok());
  EXPECT_TRUE(accepted->has_value());

  // Its throttles are forgotten too, so a re-enrolled system starts afresh: its metadata is
  // requested again at once (the first sweep took the metadata throttle), and commissioning may be.
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1"), System("asset-2", "sys-2"),
                                  System("asset-3", "sys-20")},
                                 true)
                  .ok());
  EXPECT_EQ(DrainCes(h.ces_queue), (std::vector<CesRequest>{MetadataRequest{"sys-2"}}));
  auto due = h.coordination.TryThrottle(SystemKey("sys-2", "commission"), now, std::chrono::hours(1));
  ASSERT_TRUE(due.ok());
  EXPECT_TRUE(*due);
}

TEST_F(RegistrarTest, TheMetadataThrottleIsSharedByRegistrarsOfTwoProcesses) {
  // A second process: its own Context, handlers and settings, over the same store, queues and
  // coordination.
  Context other_context{h.devices, h.concerto_queue, h.telemetry_queue, h.ces_queue, h.clock, h.metrics,
                        h.coordination, h.context.settings, {}};
  DeviceMetadataProcessor other_metadata{other_context};
  Registrar other{other_context, other_metadata};

  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  EXPECT_EQ(DrainCes(h.ces_queue), (std::vector<CesRequest>{MetadataRequest{"sys-1"}}));
  h.clock.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(other.Register({System("asset-1", "sys-1")}, true).ok());
  EXPECT_TRUE(DrainCes(h.ces_queue).empty()) << "the other process sees the request already made";

  h.clock.Advance(h.context.settings.request_repeat_after - std::chrono::minutes(1));
  ASSERT_TRUE(other.Register({System("asset-1", "sys-1")}, true).ok());
  EXPECT_EQ(DrainCes(h.ces_queue), (std::vector<CesRequest>{MetadataRequest{"sys-1"}}))
      << "after request_repeat_after it is asked again (the first answer may be lost)";
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  EXPECT_TRUE(DrainCes(h.ces_queue).empty());
}

TEST_F(RegistrarTest, AFailedMetadataRequestIsNotThrottled) {
  test_support::SwitchableQueue ces(h.ces_queue);
  Context context{h.devices, h.concerto_queue, h.telemetry_queue, ces, h.clock, h.metrics, h.coordination,
                  h.context.settings, {}};
  DeviceMetadataProcessor md{context};
  Registrar failing{context, md};
  ces.down = true;
  EXPECT_EQ(failing.Register({System("asset-1", "sys-1")}, true).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(h.Has("sys-1"));
  ces.down = false;
  h.clock.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(failing.Register({System("asset-1", "sys-1")}, true).ok());
  EXPECT_EQ(DrainCes(h.ces_queue), (std::vector<CesRequest>{MetadataRequest{"sys-1"}}));
}

TEST_F(RegistrarTest, TheCommissionThrottleIsSharedByRegistrarsOfTwoProcesses) {
  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  GiveMetadata("sys-1");
  h.context.settings.auto_commissioning = true;
  Context other_context{h.devices, h.concerto_queue, h.telemetry_queue, h.ces_queue, h.clock, h.metrics,
                        h.coordination, h.context.settings, {}};
  DeviceMetadataProcessor other_metadata{other_context};
  Registrar other{other_context, other_metadata};

  ASSERT_TRUE(registrar.Register({System("asset-1", "sys-1")}, true).ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue), (std::vector<ConcertoRequest>{CommissionRequest{"sys-1"}}));
  h.clock.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(other.Register({System("asset-1", "sys-1")}, true).ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
}

// The list_assets token of the poller's lease, or "" when the request is not a list_assets.
std::string ListingToken(const ConcertoRequest& request) {
  const auto* list = std::get_if<ListAssetsRequest>(&request);
  return list ? list->lease_owner : std::string();
}

TEST(RegistrarPoller, QueuesOneListAssetsWhileOneIsPending) {
  test_support::Harness h;
  RegistrarPoller poller(h.context);
  ASSERT_TRUE(poller.Poll().ok());
  h.clock.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(poller.Poll().ok());
  auto queued = DrainConcerto(h.concerto_queue);
  ASSERT_EQ(queued.size(), 1U);
  const std::string first = ListingToken(queued[0]);
  ASSERT_FALSE(first.empty());
  auto lease = h.coordination.GetLease(kListingLease);
  ASSERT_TRUE(lease.ok() && lease->has_value());
  EXPECT_EQ((*lease)->owner, first);
  EXPECT_EQ((*lease)->expires_at, h.clock.Now() - std::chrono::minutes(1) + h.context.settings.list_assets_expiry);

  // Another process's poller shares the lease.
  Context other_context{h.devices, h.concerto_queue, h.telemetry_queue, h.ces_queue, h.clock, h.metrics,
                        h.coordination, h.context.settings, {}};
  RegistrarPoller other(other_context);
  ASSERT_TRUE(other.Poll().ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());

  // Finished (the gateway gives the lease back with the request's token): the next poll queues again.
  auto released = h.coordination.ReleaseLease(kListingLease, first);
  ASSERT_TRUE(released.ok() && *released);
  ASSERT_TRUE(poller.Poll().ok());
  queued = DrainConcerto(h.concerto_queue);
  ASSERT_EQ(queued.size(), 1U);
  const std::string second = ListingToken(queued[0]);
  EXPECT_FALSE(second.empty());
  EXPECT_NE(second, first);

  // Pending and lost: after list_assets_expiry another one goes out.
  h.clock.Advance(h.context.settings.list_assets_expiry - std::chrono::milliseconds(1));
  ASSERT_TRUE(poller.Poll().ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
  h.clock.Advance(std::chrono::milliseconds(1));
  ASSERT_TRUE(poller.Poll().ok());
  queued = DrainConcerto(h.concerto_queue);
  ASSERT_EQ(queued.size(), 1U);
  EXPECT_NE(ListingToken(queued[0]), second);
}

TEST(RegistrarPoller, AFailedQueueSendGivesTheLeaseBack) {
  test_support::Harness h;
  test_support::SwitchableQueue queue(h.concerto_queue);
  Context context{h.devices, queue, h.telemetry_queue, h.ces_queue, h.clock, h.metrics, h.coordination,
                  h.context.settings, {}};
  RegistrarPoller poller(context);
  queue.down = true;
  EXPECT_EQ(poller.Poll().code(), StatusCode::kUnavailable);
  auto lease = h.coordination.GetLease(kListingLease);
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE(lease->has_value());
  queue.down = false;
  ASSERT_TRUE(poller.Poll().ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue).size(), 1U);
}

TEST(RegistrarPoller, SeveralProcessesPollAsOne) {
  // Two processes' pollers on one store, each ticking every registrar_poll on its own schedule:
  // together they queue about one list_assets per interval, not one each.
  test_support::Harness h;
  h.context.settings.registrar_poll = std::chrono::seconds(60);
  Context other_context{h.devices, h.concerto_queue, h.telemetry_queue, h.ces_queue, h.clock, h.metrics,
                        h.coordination, h.context.settings, {}};
  RegistrarPoller mine(h.context);
  RegistrarPoller other(other_context);
  int queued = 0;
  auto finish = [&] {
    for (const auto& r : DrainConcerto(h.concerto_queue)) {
      ++queued;
      ASSERT_TRUE(h.coordination.ReleaseLease(kListingLease, std::get<ListAssetsRequest>(r).lease_owner).ok());
    }
  };
  for (int minute = 0; minute < 10; ++minute) {
    ASSERT_TRUE(mine.Poll().ok());
    finish();
    h.clock.Advance(std::chrono::seconds(20));
    ASSERT_TRUE(other.Poll().ok());
    finish();
    h.clock.Advance(std::chrono::seconds(40));
  }
  EXPECT_EQ(queued, 10);
}

}  // namespace
}  // namespace pwrcell::processes

namespace pwrcell::processes {
namespace {

// A settled system is skipped by the next sweeps without reading its record (Registrar::Quiet):
// only while its record and its asset stay as they were.
TEST_F(RegistrarTest, ASettledSystemIsExaminedAgainOnceItsRecordChanges) {
  h.context.settings.auto_commissioning = true;
  const auto md = test_support::DcMetadata("sys-1");
  ASSERT_TRUE(registrar.Register({CommissionedSystem("asset-1", "sys-1", md)}, true).ok());
  GiveMetadata("sys-1");
  ASSERT_TRUE(registrar.Register({CommissionedSystem("asset-1", "sys-1", md)}, true).ok());
  ASSERT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kDone);
  ASSERT_TRUE(registrar.Register({CommissionedSystem("asset-1", "sys-1", md)}, true).ok());  // quiet now

  // Another writer records a failed commissioning run; Concerto still shows it complete.
  domain::DeviceRecord d = h.Device("sys-1");
  d.commissioning = {CommissioningState::kFailed, "a late failure"};
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(registrar.Register({CommissionedSystem("asset-1", "sys-1", md)}, true).ok());
  EXPECT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kDone);
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
}

TEST_F(RegistrarTest, ASettledSystemTakesAChangeOfItsAsset) {
  h.context.settings.auto_commissioning = true;
  const auto md = test_support::DcMetadata("sys-1");
  ConcertoAsset asset = CommissionedSystem("asset-1", "sys-1", md);
  ASSERT_TRUE(registrar.Register({asset}, true).ok());
  GiveMetadata("sys-1");
  ASSERT_TRUE(registrar.Register({asset}, true).ok());
  ASSERT_TRUE(registrar.Register({asset}, true).ok());  // quiet now
  asset.name = "Renamed";
  ASSERT_TRUE(registrar.Register({asset}, true).ok());
  EXPECT_EQ(h.Device("sys-1").name, "Renamed");
  // And a component an operator deleted in Concerto: commissioning is requested again.
  asset.children.pop_back();  // the site meter
  ASSERT_TRUE(registrar.Register({asset}, true).ok());
  EXPECT_FALSE(DrainConcerto(h.concerto_queue).empty());
}

}  // namespace
}  // namespace pwrcell::processes
