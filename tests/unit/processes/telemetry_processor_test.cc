#include "processes/telemetry_processor.h"

#include <gtest/gtest.h>

#include "energy_record_set.pb.h"
#include "process_test_support.h"

namespace pwrcell::processes {
namespace {

using domain::Metric;
using pwrcell::ces::v1::EnergyRecordSet;
using test_support::Drain;
using test_support::DrainConcerto;

constexpr const char* kRcpn = "000100000001";
constexpr double kT0 = 1'763'800'000;  // seconds

// One record with the four mapped channels: 4 (NET) + 6 (INVERTER_OUTPUT) + 6 (STORAGE) +
// 3 (GENERATION) + 2 (INVERTER_STATE, SYSTEM_MODE) = 21 points.
constexpr std::size_t kPointsPerRecord = 21;

void AddRecord(EnergyRecordSet& set, double seconds, std::uint32_t inverter_state = 2080) {
  auto* record = set.add_energyrecord();
  record->set_currenttimestamp(seconds);
  record->set_previoustimestamp(seconds - 300);
  record->set_sysmode(pwrcell::ces::v1::SELF_SUPPLY);
  record->set_inverterstate(inverter_state);
  auto* net = record->add_channel();
  net->set_channel(1);
  net->set_channeltype(pwrcell::ces::v1::NET);
  net->set_realpower_w(1500);
  net->set_importedenergy_ws(36'000'000);  // 10 kWh
  net->set_exportedenergy_ws(7'200'000);   // 2 kWh
  net->set_voltage_v(240);
  auto* inverter = record->add_channel();
  inverter->set_channel(2);
  inverter->set_channeltype(pwrcell::ces::v1::INVERTER_OUTPUT);
  inverter->set_realpower_w(-2500);
  auto* battery = record->add_channel();
  battery->set_channel(3);
  battery->set_channeltype(pwrcell::ces::v1::STORAGE);
  battery->set_deviceid("000200000001");
  battery->set_realpower_w(1000);
  battery->set_soc(55.5F);
  auto* pv = record->add_channel();
  pv->set_channel(4);
  pv->set_channeltype(pwrcell::ces::v1::GENERATION);
  pv->set_deviceid("000300000001");
  pv->set_realpower_w(3000);
}

std::string RecordSet(int records, double first_seconds = kT0, const std::string& rcpn = kRcpn) {
  EnergyRecordSet set;
  set.set_inverterid(rcpn);
  for (int i = 0; i < records; ++i) AddRecord(set, first_seconds + 300.0 * i);
  return set.SerializeAsString();
}

class TelemetryProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = test_support::Registered("sys-1", "asset-1", h.clock.Now());
    d.inverter_rcpns = {kRcpn};
    d.inverters = {{"asset-2", kRcpn}};
    d.site_meter = domain::AssetRef{"asset-3", "sys-1-meter"};
    d.batteries = {{"asset-4", "000200000001"}};
    d.photovoltaics = {{"asset-5", "000300000001"}};
    h.Store(d);
  }

  std::vector<PushTelemetryRequest> Pushed() {
    std::vector<PushTelemetryRequest> out;
    for (const auto& r : DrainConcerto(h.telemetry_queue)) {
      EXPECT_TRUE(std::holds_alternative<PushTelemetryRequest>(r));
      if (std::holds_alternative<PushTelemetryRequest>(r)) out.push_back(std::get<PushTelemetryRequest>(r));
    }
    return out;
  }

  test_support::Harness h;
  TelemetryProcessor processor{h.context};
};

const domain::TelemetryPoint* Find(const std::vector<domain::TelemetryPoint>& points, const std::string& asset,
                                   Metric metric) {
  for (const auto& p : points) {
    if (p.asset_id == asset && p.metric == metric) return &p;
  }
  return nullptr;
}

TEST_F(TelemetryProcessorTest, KnownSystemsRecordBecomesPointsAndRaisesLastHeard) {
  const auto results = processor.ProcessRecords({{RecordSet(1), "seq-1"}});
  ASSERT_EQ(results.size(), 1U);
  EXPECT_TRUE(results[0].ok()) << results[0].ToString();

  const auto pushed = Pushed();
  ASSERT_EQ(pushed.size(), 1U);
  const auto& points = pushed[0].points;
  ASSERT_EQ(points.size(), kPointsPerRecord);
  const Timestamp t = FromUnixSeconds(kT0);
  for (const auto& p : points) EXPECT_EQ(p.timestamp, t);
  const auto* net = Find(points, "asset-3", Metric::kRealPower);
  ASSERT_NE(net, nullptr);
  EXPECT_DOUBLE_EQ(net->value, 1.5);
  EXPECT_DOUBLE_EQ(Find(points, "asset-3", Metric::kEnergyImported)->value, 10.0);
  EXPECT_DOUBLE_EQ(Find(points, "asset-3", Metric::kEnergyExported)->value, 2.0);
  EXPECT_DOUBLE_EQ(Find(points, "asset-2", Metric::kRealPower)->value, -2.5);
  EXPECT_DOUBLE_EQ(Find(points, "asset-4", Metric::kStateOfCharge)->value, 55.5);
  EXPECT_DOUBLE_EQ(Find(points, "asset-5", Metric::kRealPower)->value, 3.0);
  EXPECT_DOUBLE_EQ(Find(points, "asset-1", Metric::kInverterState)->value, 2080);
  EXPECT_DOUBLE_EQ(Find(points, "asset-1", Metric::kSystemMode)->value, 2);

  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.last_heard_at, t);
  EXPECT_EQ(d.inverter_readings, (std::vector<domain::InverterReading>{{kRcpn, 2080, 2, t}}));
  EXPECT_EQ(d.InverterState(), std::optional<std::uint32_t>(2080));
  EXPECT_EQ(d.SysMode(), std::optional<int>(2));
  EXPECT_EQ(h.metrics.Value("pwrcell_telemetry_records_total", {{"outcome", "decoded"}}), 1);
  EXPECT_EQ(h.metrics.Value("pwrcell_telemetry_points_total"), 21);
}

TEST_F(TelemetryProcessorTest, LastHeardNeverMovesBackwards) {
  ASSERT_TRUE(processor.ProcessRecords({{RecordSet(1, kT0 + 600), "seq-2"}})[0].ok());
  EnergyRecordSet older;
  older.set_inverterid(kRcpn);
  AddRecord(older, kT0, 0x7010);
  ASSERT_TRUE(processor.ProcessRecords({{older.SerializeAsString(), "seq-1"}})[0].ok());

  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.last_heard_at, FromUnixSeconds(kT0 + 600));
  EXPECT_EQ(d.InverterState(), std::optional<std::uint32_t>(2080)) << "the older record's state is not the latest";
  EXPECT_EQ(Pushed().size(), 2U) << "the older record's points are still forwarded";
}

// SPEC section 6: the records of every inverter of a system match it; each feeds its own INVERTER
// asset, and one inverter's OK does not hide another's error (SPEC section 4, rule 3).
TEST_F(TelemetryProcessorTest, EveryInverterOfASystemMatchesItAndKeepsItsOwnState) {
  constexpr const char* kSecond = "000100000002";
  auto d = h.Device("sys-1");
  d.inverter_rcpns = {kRcpn, kSecond};
  d.inverters = {{"asset-2", kRcpn}, {"asset-6", kSecond}};
  ASSERT_TRUE(h.devices.Put(d).ok());

  EnergyRecordSet second;
  second.set_inverterid(kSecond);
  AddRecord(second, kT0, 0x7010);  // the second inverter is in error ...
  ASSERT_TRUE(processor.ProcessRecords({{second.SerializeAsString(), "seq-1"}})[0].ok());
  // ... and the first reports GRID_CONNECTED afterwards, for a later time.
  ASSERT_TRUE(processor.ProcessRecords({{RecordSet(1, kT0 + 300), "seq-2"}})[0].ok());
  EXPECT_EQ(h.metrics.Value("pwrcell_telemetry_records_total", {{"outcome", "decoded"}}), 2);
  EXPECT_EQ(h.metrics.Value("pwrcell_telemetry_records_total", {{"outcome", "unmatched"}}), 0);

  d = h.Device("sys-1");
  EXPECT_EQ(d.last_heard_at, FromUnixSeconds(kT0 + 300));
  EXPECT_EQ(d.inverter_readings, (std::vector<domain::InverterReading>{{kRcpn, 2080, 2, FromUnixSeconds(kT0 + 300)},
                                                                       {kSecond, 0x7010, 2, FromUnixSeconds(kT0)}}));
  EXPECT_EQ(d.InverterState(), std::optional<std::uint32_t>(0x7010)) << "the error is not hidden";

  const auto pushed = Pushed();
  ASSERT_EQ(pushed.size(), 2U);
  // The second inverter's output and state went to its own INVERTER asset, not to the SYSTEM.
  EXPECT_DOUBLE_EQ(Find(pushed[0].points, "asset-6", Metric::kRealPower)->value, -2.5);
  EXPECT_DOUBLE_EQ(Find(pushed[0].points, "asset-6", Metric::kInverterState)->value, 0x7010);
  EXPECT_EQ(Find(pushed[0].points, "asset-1", Metric::kInverterState), nullptr);
  EXPECT_EQ(Find(pushed[0].points, "asset-2", Metric::kRealPower), nullptr);
  // The first inverter's went to its asset and to the SYSTEM.
  EXPECT_DOUBLE_EQ(Find(pushed[1].points, "asset-2", Metric::kRealPower)->value, -2.5);
  EXPECT_DOUBLE_EQ(Find(pushed[1].points, "asset-1", Metric::kInverterState)->value, 2080);
  EXPECT_EQ(Find(pushed[1].points, "asset-6", Metric::kRealPower), nullptr);

  // The second inverter recovers: the system's state follows.
  EnergyRecordSet recovered;
  recovered.set_inverterid(kSecond);
  AddRecord(recovered, kT0 + 300, 2080);
  ASSERT_TRUE(processor.ProcessRecords({{recovered.SerializeAsString(), "seq-3"}})[0].ok());
  EXPECT_EQ(h.Device("sys-1").InverterState(), std::optional<std::uint32_t>(2080));
}

TEST_F(TelemetryProcessorTest, LastHeardIsTheNewestRecordOfTheSet) {
  ASSERT_TRUE(processor.ProcessRecords({{RecordSet(3), "seq-1"}})[0].ok());
  EXPECT_EQ(h.Device("sys-1").last_heard_at, FromUnixSeconds(kT0 + 600));
}

TEST_F(TelemetryProcessorTest, MessagesCarryAtMost500Points) {
  // 30 records of 21 points in one set: 630 points.
  ASSERT_TRUE(processor.ProcessRecords({{RecordSet(30), "seq-1"}})[0].ok());
  auto pushed = Pushed();
  ASSERT_EQ(pushed.size(), 2U);
  EXPECT_EQ(pushed[0].points.size(), 500U);
  EXPECT_EQ(pushed[1].points.size(), 130U);

  // Three sets of 10 records (210 points each) share messages without exceeding 500.
  const auto results = processor.ProcessRecords(
      {{RecordSet(10, kT0 + 9000), "a"}, {RecordSet(10, kT0 + 12000), "b"}, {RecordSet(10, kT0 + 15000), "c"}});
  for (const auto& r : results) EXPECT_TRUE(r.ok());
  pushed = Pushed();
  std::size_t total = 0;
  for (const auto& m : pushed) {
    EXPECT_LE(m.points.size(), domain::kMaxPointsPerIngest);
    EXPECT_FALSE(m.points.empty());
    total += m.points.size();
  }
  EXPECT_EQ(total, 630U);
  EXPECT_EQ(pushed.size(), 2U);
}

TEST_F(TelemetryProcessorTest, UnknownSystemIsCountedAndDroppedNeverCreated) {
  const auto results = processor.ProcessRecords({{RecordSet(1, kT0, "000199999999"), "seq-1"}});
  ASSERT_EQ(results.size(), 1U);
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(h.metrics.Value("pwrcell_telemetry_records_total", {{"outcome", "unmatched"}}), 1);
  EXPECT_TRUE(Drain(h.telemetry_queue).empty());
  EXPECT_EQ(h.RemoteIds(), std::vector<std::string>{"sys-1"});
  EXPECT_EQ(h.Device("sys-1").last_heard_at, std::nullopt);
}

TEST_F(TelemetryProcessorTest, UndecodableRecordsAreCountedAndSkippedWithoutBlockingTheRest) {
  EnergyRecordSet no_records;
  no_records.set_inverterid(kRcpn);
  const auto results = processor.ProcessRecords({
      {"", "seq-1"},
      {"\xff\xff\xff\xff garbage", "seq-2"},
      {no_records.SerializeAsString(), "seq-3"},
      {RecordSet(1), "seq-4"},
  });
  ASSERT_EQ(results.size(), 4U);
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(h.metrics.Value("pwrcell_telemetry_records_total", {{"outcome", "undecodable"}}), 3);
  EXPECT_EQ(h.metrics.Value("pwrcell_telemetry_records_total", {{"outcome", "decoded"}}), 1);
  const auto pushed = Pushed();
  ASSERT_EQ(pushed.size(), 1U);
  EXPECT_EQ(pushed[0].points.size(), kPointsPerRecord);
  EXPECT_EQ(h.Device("sys-1").last_heard_at, FromUnixSeconds(kT0));
}

TEST_F(TelemetryProcessorTest, ChannelWithoutAnAssetIsCountedNotGuessed) {
  auto d = h.Device("sys-1");
  d.batteries.clear();
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.ProcessRecords({{RecordSet(1), "seq-1"}})[0].ok());
  EXPECT_EQ(h.metrics.Value("pwrcell_telemetry_unmapped_channels_total"), 1);
  const auto pushed = Pushed();
  ASSERT_EQ(pushed.size(), 1U);
  EXPECT_EQ(pushed[0].points.size(), kPointsPerRecord - 6);
}

// A queue that is down: the records whose points it would carry must be delivered again.
class DownQueue final : public ports::Queue {
 public:
  Result<std::string> Send(const std::string&) override { return UnavailableError("queue down"); }
  Result<std::vector<std::string>> SendBatch(const std::vector<std::string>&) override {
    return UnavailableError("queue down");
  }
  Result<std::vector<ports::ReceivedMessage>> Receive(std::size_t, Duration) override {
    return UnavailableError("queue down");
  }
  Status Delete(const std::string&) override { return UnavailableError("queue down"); }
  Status DeadLetter(const std::string&) override { return UnavailableError("queue down"); }
  Status ChangeVisibility(const std::string&, Duration) override { return UnavailableError("queue down"); }
  Result<ports::QueueStats> Stats() override { return UnavailableError("queue down"); }
  Result<std::vector<ports::ReceivedMessage>> PeekDeadLetters(std::size_t) override {
    return UnavailableError("queue down");
  }
  Result<std::size_t> RedriveDeadLetters(std::size_t) override { return UnavailableError("queue down"); }
};

TEST_F(TelemetryProcessorTest, QueueOutageFailsTheRecordRetryably) {
  DownQueue down;
  Context context{h.devices, h.concerto_queue, down, h.ces_queue, h.clock, h.metrics, h.coordination, h.context.settings, {}};
  TelemetryProcessor failing(context);
  const auto results = failing.ProcessRecords({{"garbage", "seq-1"}, {RecordSet(1), "seq-2"}});
  ASSERT_EQ(results.size(), 2U);
  EXPECT_TRUE(results[0].ok()) << "a poison record is never retried";
  EXPECT_FALSE(results[1].ok());
  EXPECT_TRUE(results[1].IsRetryable());
  // Re-processing after the outage is harmless.
  ASSERT_TRUE(processor.ProcessRecords({{RecordSet(1), "seq-2"}})[0].ok());
  EXPECT_EQ(h.Device("sys-1").last_heard_at, FromUnixSeconds(kT0));
  EXPECT_EQ(Pushed().size(), 1U);
}

}  // namespace
}  // namespace pwrcell::processes
