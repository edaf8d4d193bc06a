#include "processes/device_metadata_processor.h"

#include <gtest/gtest.h>

#include "process_test_support.h"
#include "processes/shared_state.h"

namespace pwrcell::processes {
namespace {

using domain::CommissioningState;
using domain::Coupling;
using test_support::DrainConcerto;

class DeviceMetadataProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override { h.Store(test_support::Registered("sys-1", "asset-1", h.clock.Now())); }

  test_support::Harness h;
  DeviceMetadataProcessor processor{h.context};
};

TEST_F(DeviceMetadataProcessorTest, StoresWhatCesSaysAboutADcSystem) {
  h.clock.Advance(std::chrono::seconds(30));
  const auto md = test_support::DcMetadata("sys-1");
  ASSERT_TRUE(processor.Process("sys-1", md).ok());

  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.inverter_rcpns, std::vector<std::string>{"000100000001"});
  EXPECT_EQ(d.coupling, Coupling::kDc);
  EXPECT_EQ(d.metadata, std::optional<domain::SystemMetadata>(md));
  EXPECT_EQ(d.metadata_fetched_at, h.clock.Now());
  EXPECT_EQ(d.system_status, std::optional<std::string>("SUCCESS"));
  EXPECT_EQ(d.system_status_at, h.clock.Now());
  EXPECT_EQ(h.metrics.Value("pwrcell_metadata_processed_total", {{"coupling", "DC"}}), 1);
  EXPECT_EQ(h.metrics.Value("pwrcell_coupling_errors_total"), 0);
  // Telemetry can now be matched by the inverter's RCP number.
  auto found = h.devices.FindByInverterRcpn("000100000001");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->remote_id, "sys-1");
}

TEST_F(DeviceMetadataProcessorTest, NonZeroAcPvRatingIsAcCoupled) {
  auto md = test_support::DcMetadata("sys-1");
  md.inverters[0].ac_pv_power_rating_kw = 3.8;
  ASSERT_TRUE(processor.Process("sys-1", md).ok());
  EXPECT_EQ(h.Device("sys-1").coupling, Coupling::kAc);
  EXPECT_EQ(h.metrics.Value("pwrcell_metadata_processed_total", {{"coupling", "AC"}}), 1);
  EXPECT_EQ(h.metrics.Value("pwrcell_coupling_errors_total"), 0);
}

TEST_F(DeviceMetadataProcessorTest, MixedRatingsAreAcCoupledAndCountedAsAnError) {
  auto md = test_support::DcMetadata("sys-1");
  md.inverters = {domain::CesInverter{"000100000001", "X7602", 7600, 0.0},
                  domain::CesInverter{"000100000002", "X7602", 7600, 5.0}};
  ASSERT_TRUE(processor.Process("sys-1", md).ok());
  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.coupling, Coupling::kAc);
  EXPECT_EQ(d.inverter_rcpns, (std::vector<std::string>{"000100000001", "000100000002"}));
  EXPECT_EQ(h.metrics.Value("pwrcell_coupling_errors_total"), 1);
  EXPECT_EQ(h.metrics.Value("pwrcell_metadata_processed_total", {{"coupling", "AC"}}), 1);
}

TEST_F(DeviceMetadataProcessorTest, StoresEveryInverterSoThatEachOnesTelemetryMatches) {
  auto md = test_support::DcMetadata("sys-1");
  md.inverters = {domain::CesInverter{"000100000001", "X7602", 7600, 0.0},
                  domain::CesInverter{"000100000002", "X7602", 7600, 0.0}};
  ASSERT_TRUE(processor.Process("sys-1", md).ok());
  EXPECT_EQ(h.Device("sys-1").inverter_rcpns, (std::vector<std::string>{"000100000001", "000100000002"}));
  EXPECT_EQ(h.Device("sys-1").coupling, Coupling::kDc) << "the coupling rule is unchanged";
  for (const char* rcpn : {"000100000001", "000100000002"}) {
    auto found = h.devices.FindByInverterRcpn(rcpn);
    ASSERT_TRUE(found.ok() && found->has_value()) << rcpn;
    EXPECT_EQ((*found)->remote_id, "sys-1");
  }

  // The second inverter reported an error; then CES stops listing it (replaced in the field):
  // its RCP number matches no more, and its old reading no longer holds the system in error.
  auto d = h.Device("sys-1");
  d.inverter_readings = {{"000100000001", 2080, 2, h.clock.Now()}, {"000100000002", 0x7010, 2, h.clock.Now()}};
  ASSERT_TRUE(h.devices.Put(d).ok());
  md.inverters = {domain::CesInverter{"000100000003", "X7602", 7600, 0.0},
                  domain::CesInverter{"000100000001", "X7602", 7600, 0.0}};
  ASSERT_TRUE(processor.Process("sys-1", md).ok());
  d = h.Device("sys-1");
  EXPECT_EQ(d.inverter_rcpns, (std::vector<std::string>{"000100000003", "000100000001"})) << "CES order";
  EXPECT_EQ(d.inverter_readings, (std::vector<domain::InverterReading>{{"000100000001", 2080, 2, h.clock.Now()}}));
  auto gone = h.devices.FindByInverterRcpn("000100000002");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  auto added = h.devices.FindByInverterRcpn("000100000003");
  ASSERT_TRUE(added.ok() && added->has_value());
}

TEST_F(DeviceMetadataProcessorTest, AnswerForAnUnregisteredSystemIsIgnored) {
  ASSERT_TRUE(processor.Process("nobody", test_support::DcMetadata("nobody")).ok());
  EXPECT_EQ(h.RemoteIds(), std::vector<std::string>{"sys-1"});
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
}

TEST_F(DeviceMetadataProcessorTest, RequestsCommissioningWhenDueWithAutoCommissioning) {
  h.context.settings.auto_commissioning = true;
  ASSERT_TRUE(processor.Process("sys-1", test_support::DcMetadata("sys-1")).ok());

  EXPECT_EQ(DrainConcerto(h.concerto_queue), (std::vector<ConcertoRequest>{CommissionRequest{"sys-1"}}));
  EXPECT_EQ(h.Device("sys-1").commissioning, (domain::Commissioning{CommissioningState::kPending, "queued"}));

  // Metadata again (a refresh) within request_repeat_after: not queued twice.
  h.clock.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(processor.Process("sys-1", test_support::DcMetadata("sys-1")).ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
  // After it: queued again (the first may have been lost).
  h.clock.Advance(h.context.settings.request_repeat_after);
  ASSERT_TRUE(processor.Process("sys-1", test_support::DcMetadata("sys-1")).ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue).size(), 1U);
}

TEST_F(DeviceMetadataProcessorTest, TheCommissionThrottleIsInTheStoreSharedByEveryProcess) {
  h.context.settings.auto_commissioning = true;
  ASSERT_TRUE(processor.Process("sys-1", test_support::DcMetadata("sys-1")).ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue).size(), 1U);

  // Another process (its own Context and processor, the same store and coordination).
  Context other_context{h.devices, h.concerto_queue, h.telemetry_queue, h.ces_queue, h.clock, h.metrics,
                        h.coordination, h.context.settings, {}};
  DeviceMetadataProcessor other(other_context);
  h.clock.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(other.Process("sys-1", test_support::DcMetadata("sys-1")).ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());

  // The throttle is the store's: forgetting it there lets the next answer queue again.
  ASSERT_TRUE(h.coordination.ClearThrottle(SystemKey("sys-1", "commission")).ok());
  ASSERT_TRUE(other.Process("sys-1", test_support::DcMetadata("sys-1")).ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue), (std::vector<ConcertoRequest>{CommissionRequest{"sys-1"}}));
}

TEST_F(DeviceMetadataProcessorTest, AFailedCommissionRequestIsNotThrottled) {
  h.context.settings.auto_commissioning = true;
  test_support::SwitchableQueue queue(h.concerto_queue);
  Context context{h.devices, queue, h.telemetry_queue, h.ces_queue, h.clock, h.metrics, h.coordination,
                  h.context.settings, {}};
  DeviceMetadataProcessor failing(context);
  queue.down = true;
  EXPECT_EQ(failing.Process("sys-1", test_support::DcMetadata("sys-1")).code(), StatusCode::kUnavailable);
  queue.down = false;
  h.clock.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(failing.Process("sys-1", test_support::DcMetadata("sys-1")).ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue), (std::vector<ConcertoRequest>{CommissionRequest{"sys-1"}}));
}

TEST_F(DeviceMetadataProcessorTest, NeverRequestsCommissioningWithAutoCommissioningOff) {
  ASSERT_TRUE(processor.Process("sys-1", test_support::DcMetadata("sys-1")).ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
  EXPECT_EQ(h.Device("sys-1").commissioning,
            (domain::Commissioning{CommissioningState::kNotRequested,
                                   "awaiting commissioning (auto-commissioning is off)"}));
}

TEST_F(DeviceMetadataProcessorTest, ACompleteSystemIsDoneWithoutARequest) {
  h.context.settings.auto_commissioning = true;
  const auto md = test_support::DcMetadata("sys-1");
  auto d = h.Device("sys-1");
  d.site = domain::SiteRef{"site-1", md.site_id, md.site_name};
  d.inverters = {{"asset-2", "000100000001"}};
  d.batteries = {{"asset-3", "000200000001"}, {"asset-4", "000200000002"}};
  d.photovoltaics = {{"asset-5", "000300000001"}, {"asset-6", "000300000002"}, {"asset-7", "000300000003"}};
  d.site_meter = domain::AssetRef{"asset-8", "sys-1-meter"};
  ASSERT_TRUE(h.devices.Put(d).ok());

  ASSERT_TRUE(processor.Process("sys-1", md).ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
  EXPECT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kDone);

  // CES now reports a third battery: commissioning is due again.
  auto grown = md;
  grown.batteries.push_back(domain::CesBattery{"000200000003", "module", 3000, 1125});
  ASSERT_TRUE(processor.Process("sys-1", grown).ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue), (std::vector<ConcertoRequest>{CommissionRequest{"sys-1"}}));
  EXPECT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kPending);
}

TEST_F(DeviceMetadataProcessorTest, ASecondInverterInCesMakesCommissioningDueAgain) {
  h.context.settings.auto_commissioning = true;
  const auto md = test_support::DcMetadata("sys-1");
  auto d = h.Device("sys-1");
  d.site = domain::SiteRef{"site-1", md.site_id, md.site_name};
  d.inverters = {{"asset-2", "000100000001"}};
  d.batteries = {{"asset-3", "000200000001"}, {"asset-4", "000200000002"}};
  d.photovoltaics = {{"asset-5", "000300000001"}, {"asset-6", "000300000002"}, {"asset-7", "000300000003"}};
  d.site_meter = domain::AssetRef{"asset-8", "sys-1-meter"};
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.Process("sys-1", md).ok());
  ASSERT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kDone);

  auto two = md;
  two.inverters.push_back(domain::CesInverter{"000100000002", "X7602", 7600, 0.0});
  ASSERT_TRUE(processor.Process("sys-1", two).ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue), (std::vector<ConcertoRequest>{CommissionRequest{"sys-1"}}));
  EXPECT_EQ(h.Device("sys-1").commissioning.state, CommissioningState::kPending);
}

TEST_F(DeviceMetadataProcessorTest, SimulatedSystemKeepsNoCesStatus) {
  auto d = h.Device("sys-1");
  d.is_simulated = true;
  ASSERT_TRUE(h.devices.Put(d).ok());
  auto md = test_support::DcMetadata("sys-1");
  ASSERT_TRUE(processor.Process("sys-1", md).ok());
  EXPECT_EQ(h.Device("sys-1").system_status, std::nullopt);
}

}  // namespace
}  // namespace pwrcell::processes
