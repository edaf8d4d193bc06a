#include "processes/registrar.h"

#include <gtest/gtest.h>

#include "domain/coupling.h"
#include "process_test_support.h"
#include "processes/device_metadata_processor.h"
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
  EXPECT_EQ(d.inverter, (domain::AssetRef{"asset-inv", "000100000001"}));
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
  ASSERT_TRUE(commissioned.site && commissioned.inverter && commissioned.site_meter);

  // A listing begins; commissioning then records assets on the device; the list, read before
  // that, shows the SYSTEM without them.
  const Timestamp listing_started = h.clock.Now();
  h.clock.Advance(std::chrono::seconds(1));
  h.shared.NoteCommissioningWrite("sys-1", h.clock.Now());
  ConcertoAsset bare = System("asset-1", "sys-1");
  bare.name = "Renamed";
  ASSERT_TRUE(registrar.Register({bare}, true, listing_started).ok());
  auto d = h.Device("sys-1");
  EXPECT_EQ(d.name, "Renamed");  // what only Concerto says still applies
  EXPECT_EQ(d.site, commissioned.site);
  EXPECT_EQ(d.inverter, commissioned.inverter);
  EXPECT_EQ(d.batteries, commissioned.batteries);
  EXPECT_EQ(d.photovoltaics, commissioned.photovoltaics);
  EXPECT_EQ(d.site_meter, commissioned.site_meter);

  // A list whose listing began after the write is the truth: the assets are gone from Concerto.
  h.clock.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(registrar.Register({bare}, true, h.clock.Now()).ok());
  d = h.Device("sys-1");
  EXPECT_FALSE(d.site.has_value());
  EXPECT_FALSE(d.inverter.has_value());
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
  EXPECT_EQ(d.inverter_rcpn, d.metadata->inverters.front().rcpn);
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
  EXPECT_EQ(d.inverter_rcpn, d.metadata->inverters.front().rcpn);
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

TEST(RegistrarPoller, QueuesOneListAssetsWhileOneIsPending) {
  test_support::Harness h;
  RegistrarPoller poller(h.context);
  ASSERT_TRUE(poller.Poll().ok());
  h.clock.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(poller.Poll().ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue), (std::vector<ConcertoRequest>{ListAssetsRequest{}}));

  // Finished (the gateway ends the listing): the next poll queues again.
  h.shared.EndListing();
  ASSERT_TRUE(poller.Poll().ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue).size(), 1U);

  // Pending and lost: after list_assets_expiry another one goes out.
  h.clock.Advance(h.context.settings.list_assets_expiry);
  ASSERT_TRUE(poller.Poll().ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue).size(), 1U);
}

}  // namespace
}  // namespace pwrcell::processes
