#include "processes/simulated_systems.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "domain/coupling.h"
#include "domain/record_decoding.h"
#include "process_test_support.h"
#include "processes/device_metadata_processor.h"
#include "processes/telemetry_processor.h"

namespace pwrcell::processes {
namespace {

TEST(SimulatedSystems, MetadataIsDeterministicForARemoteId) {
  const auto first = SynthesizeMetadata("sim-1", std::nullopt);
  const auto second = SynthesizeMetadata("sim-1", std::nullopt);
  EXPECT_EQ(first, second);
  EXPECT_EQ(first.system_id, "sim-1");
  EXPECT_EQ(first.status_name, "SUCCESS");
  ASSERT_EQ(first.inverters.size(), 1U);
  EXPECT_EQ(first.inverters[0].rcpn.size(), 12U);
  EXPECT_FALSE(first.site_id.empty());
  EXPECT_GE(first.batteries.size(), 3U);
  // DC-coupled, like every simulated system.
  EXPECT_EQ(domain::DetermineCoupling("sim-1", first.inverters).coupling, domain::Coupling::kDc);

  const auto other = SynthesizeMetadata("sim-2", std::nullopt);
  EXPECT_NE(other.inverters[0].rcpn, first.inverters[0].rcpn);
  EXPECT_NE(other.site_id, first.site_id);
}

TEST(SimulatedSystems, ConcertoRatedPowerIsRespected) {
  EXPECT_EQ(SynthesizeMetadata("sim-1", 7.6).inverters[0].rated_power_w, 7600);
  EXPECT_EQ(SynthesizeMetadata("sim-1", 11.4).inverters[0].rated_power_w, 11400);
  EXPECT_EQ(SynthesizeMetadata("sim-1", 9.0).inverters[0].rated_power_w, 9000);
  // Only the rating changes: the same system otherwise.
  auto a = SynthesizeMetadata("sim-1", 7.6);
  auto b = SynthesizeMetadata("sim-1", 11.4);
  EXPECT_EQ(a.inverters[0].rcpn, b.inverters[0].rcpn);
  EXPECT_EQ(a.batteries, b.batteries);
  EXPECT_EQ(a.site_id, b.site_id);
}

TEST(SimulatedSystems, StaleWhenMissingOrRatedPowerChanged) {
  domain::DeviceRecord d;
  d.remote_id = "sim-1";
  d.rated_power_kw = 7.6;
  EXPECT_TRUE(SimulatedMetadataStale(d));
  d.metadata = SynthesizeMetadata("sim-1", 7.6);
  EXPECT_FALSE(SimulatedMetadataStale(d));
  d.rated_power_kw = 11.4;
  EXPECT_TRUE(SimulatedMetadataStale(d));
}

class SimulatedTelemetryTest : public ::testing::Test {
 protected:
  static constexpr Duration kInterval = std::chrono::minutes(5);

  void SetUp() override {
    // Start at the beginning of an interval slot, at noon UTC.
    h.clock.Set(FromUnixMillis(1'763'812'800'000));
    for (const char* id : {"sim-1", "sim-2"}) Enroll(id, true);
    Enroll("sys-real", false);
  }

  void Enroll(const std::string& remote_id, bool simulated) {
    auto d = test_support::Registered(remote_id, "asset-" + remote_id, h.clock.Now());
    d.is_simulated = simulated;
    h.Store(d);
    auto md = simulated ? SynthesizeMetadata(remote_id, std::nullopt) : test_support::DcMetadata(remote_id);
    ASSERT_TRUE(metadata.Process(remote_id, md).ok());
  }

  Result<int> Tick() { return telemetry.Tick(); }

  // The inverterIds of the records handed to the sink, one entry per record.
  std::multiset<std::string> InverterIds() {
    std::multiset<std::string> ids;
    for (const auto& r : sunk) {
      auto set = domain::DecodeRecordSet(r);
      EXPECT_TRUE(set.ok()) << set.status().ToString();
      if (set.ok()) ids.insert(set->inverterid());
    }
    return ids;
  }
  std::string Rcpn(const std::string& remote_id) { return std::string(h.Device(remote_id).FirstInverterRcpn()); }

  test_support::Harness h;
  DeviceMetadataProcessor metadata{h.context};
  std::vector<std::string> sunk;
  int sink_calls = 0;
  Status sink_status;
  SimulatedTelemetry telemetry{h.context, kInterval, [this](const std::vector<std::string>& records) {
                                 ++sink_calls;
                                 if (!sink_status.ok()) return sink_status;
                                 sunk.insert(sunk.end(), records.begin(), records.end());
                                 return Status::Ok();
                               }};
};

TEST_F(SimulatedTelemetryTest, OneRecordPerSimulatedSystemPerInterval) {
  auto produced = Tick();
  ASSERT_TRUE(produced.ok());
  EXPECT_EQ(*produced, 2);
  EXPECT_EQ(sink_calls, 1);
  EXPECT_EQ(InverterIds(), (std::multiset<std::string>{Rcpn("sim-1"), Rcpn("sim-2")}));
  for (const auto& r : sunk) {
    auto set = domain::DecodeRecordSet(r);
    ASSERT_TRUE(set.ok());
    ASSERT_EQ(set->energyrecord_size(), 1);
    EXPECT_EQ(FromUnixSeconds(set->energyrecord(0).currenttimestamp()), h.clock.Now());
  }

  // Same slot: nothing more.
  h.clock.Advance(std::chrono::minutes(4));
  ASSERT_EQ(*Tick(), 0);
  EXPECT_EQ(sink_calls, 1);
  EXPECT_EQ(sunk.size(), 2U);

  // Next slot: one more each.
  h.clock.Advance(std::chrono::minutes(1));
  ASSERT_EQ(*Tick(), 2);
  EXPECT_EQ(sunk.size(), 4U);
  EXPECT_EQ(h.metrics.Value("pwrcell_simulated_records_total"), 4);
}

TEST_F(SimulatedTelemetryTest, SlotsMissedByALateTickAreProducedOnTheNextOneUpToTen) {
  ASSERT_EQ(*Tick(), 2);
  sunk.clear();
  // The scheduler was late: the next tick comes three slots later.
  h.clock.Advance(kInterval * 3 + std::chrono::seconds(7));
  ASSERT_EQ(*Tick(), 6);
  std::map<std::string, std::vector<Timestamp>> stamps;
  for (const auto& r : sunk) {
    auto set = domain::DecodeRecordSet(r);
    ASSERT_TRUE(set.ok());
    stamps[set->inverterid()].push_back(FromUnixSeconds(set->energyrecord(0).currenttimestamp()));
  }
  const Timestamp start = h.clock.Now() - kInterval * 3 - std::chrono::seconds(7);
  const std::vector<Timestamp> expected{start + kInterval, start + kInterval * 2, start + kInterval * 3};
  EXPECT_EQ(stamps[Rcpn("sim-1")], expected);
  EXPECT_EQ(stamps[Rcpn("sim-2")], expected);

  // A long stall: only the newest ten slots, then one per interval again.
  h.clock.Advance(kInterval * 100);
  ASSERT_EQ(*Tick(), 20);
  h.clock.Advance(kInterval);
  ASSERT_EQ(*Tick(), 2);
  EXPECT_EQ(h.metrics.Value("pwrcell_simulated_records_total"), 2 + 6 + 20 + 2);
}

TEST_F(SimulatedTelemetryTest, NoRecordForARemovedSystem) {
  ASSERT_EQ(*Tick(), 2);
  const std::string sim2 = Rcpn("sim-2");
  const auto d = h.Device("sim-1");
  ASSERT_TRUE(h.devices.Remove("sim-1", d.version).ok());
  sunk.clear();

  h.clock.Advance(kInterval);
  ASSERT_EQ(*Tick(), 1);
  EXPECT_EQ(InverterIds(), std::multiset<std::string>{sim2});
}

TEST_F(SimulatedTelemetryTest, NoRecordForASystemThatStoppedBeingSimulated) {
  auto d = h.Device("sim-1");
  d.is_simulated = false;
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_EQ(*Tick(), 1);
  EXPECT_EQ(InverterIds(), std::multiset<std::string>{Rcpn("sim-2")});
}

TEST_F(SimulatedTelemetryTest, SinkFailureIsReturnedAndTheSlotProducedAgain) {
  sink_status = UnavailableError("ingest queue down");
  auto failed = Tick();
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(failed.status().IsRetryable());
  EXPECT_TRUE(sunk.empty());

  sink_status = Status::Ok();
  ASSERT_EQ(*Tick(), 2);
  EXPECT_EQ(sunk.size(), 2U);
}

TEST_F(SimulatedTelemetryTest, RecordsFeedTheTelemetryProcessorLikeRealOnes) {
  ASSERT_EQ(*Tick(), 2);
  TelemetryProcessor processor(h.context);
  std::vector<StreamRecord> records;
  for (std::size_t i = 0; i < sunk.size(); ++i) records.push_back({sunk[i], "sim-" + std::to_string(i)});
  for (const auto& s : processor.ProcessRecords(records)) EXPECT_TRUE(s.ok()) << s.ToString();

  EXPECT_EQ(h.Device("sim-1").last_heard_at, h.clock.Now());
  EXPECT_EQ(h.Device("sim-2").last_heard_at, h.clock.Now());
  EXPECT_EQ(h.Device("sys-real").last_heard_at, std::nullopt);
  EXPECT_EQ(h.metrics.Value("pwrcell_telemetry_records_total", {{"outcome", "decoded"}}), 2);
  EXPECT_FALSE(test_support::Drain(h.telemetry_queue).empty());
}

}  // namespace
}  // namespace pwrcell::processes
