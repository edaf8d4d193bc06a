#include "domain/telemetry_mapping.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

namespace pwrcell::domain {
namespace {

using pwrcell::ces::v1::ChannelSample;
using pwrcell::ces::v1::EnergyRecord;
using pwrcell::ces::v1::EnergyRecordSet;
using testing::Contains;
using testing::HasSubstr;

constexpr double kT0 = 1763800000;  // 2025-11-22T08:26:40Z

EnergyRecordSet FromText(const std::string& text) {
  EnergyRecordSet set;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &set)) << text;
  return set;
}

// A fully commissioned DC system.
DeviceRecord FullDevice() {
  DeviceRecord device;
  device.remote_id = "sys-1";
  device.concerto_asset_id = "asset-system";
  device.inverter_rcpns = {"000100007010"};
  device.inverters = {{"asset-inverter", "000100007010"}};
  device.site_meter = AssetRef{"asset-meter", "meter-7010"};
  device.batteries = {{"asset-battery-1", "000100008010"}, {"asset-battery-2", "000100008011"}};
  device.photovoltaics = {{"asset-pv-1", "000100003010"}};
  return device;
}

EnergyRecordSet OneRecord(const std::string& channels, double seconds = kT0) {
  std::ostringstream text;
  text.precision(17);
  text << "inverterId: \"000100007010\" energyRecord { currentTimestamp: " << seconds
       << " sysMode: SELF_SUPPLY inverterState: 2080 " << channels << " }";
  return FromText(text.str());
}

// The points of `result` for (asset, metric), in order.
std::vector<TelemetryPoint> PointsFor(const MappingResult& result, const std::string& asset, Metric metric) {
  std::vector<TelemetryPoint> found;
  for (const auto& point : result.points) {
    if (point.asset_id == asset && point.metric == metric) found.push_back(point);
  }
  return found;
}

// The one value of (asset, metric); fails the test when there is not exactly one.
double ValueOf(const MappingResult& result, const std::string& asset, Metric metric) {
  const auto found = PointsFor(result, asset, metric);
  EXPECT_EQ(found.size(), 1U) << asset << " " << MetricName(metric);
  return found.empty() ? std::numeric_limits<double>::quiet_NaN() : found.front().value;
}

std::vector<std::string> AssetsOf(const MappingResult& result) {
  std::vector<std::string> assets;
  for (const auto& point : result.points) {
    if (std::find(assets.begin(), assets.end(), point.asset_id) == assets.end()) assets.push_back(point.asset_id);
  }
  return assets;
}

// ---------------------------------------------------------------------------------------------
// The worked vectors (tests/vectors/telemetry_mapping.json).

nlohmann::json LoadVectors() {
  std::ifstream in(PWRCELL_SOURCE_DIR "/tests/vectors/telemetry_mapping.json");
  EXPECT_TRUE(in.good()) << "cannot open the telemetry mapping vectors";
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

// The vector names assets by role; the device's asset ids are those names, and each component's
// remoteId is the RCP number after the colon. The INVERTER is the record's own (its inverterId).
DeviceRecord DeviceForVector(const nlohmann::json& expected_points, const std::string& inverter_id) {
  DeviceRecord device;
  device.remote_id = "vector-system";
  device.concerto_asset_id = "SYSTEM";
  device.inverter_rcpns = {inverter_id};
  device.inverters = {{"INVERTER", inverter_id}};
  device.site_meter = AssetRef{"SITE_METER", "site-meter"};
  for (const auto& point : expected_points) {
    const std::string asset = point.at("asset").get<std::string>();
    const auto colon = asset.find(':');
    if (colon == std::string::npos) continue;
    const AssetRef ref{asset, asset.substr(colon + 1)};
    auto& list = asset.starts_with("BATTERY:") ? device.batteries : device.photovoltaics;
    if (std::find(list.begin(), list.end(), ref) == list.end()) list.push_back(ref);
  }
  return device;
}

TEST(TelemetryMapping, WorkedVectors) {
  const nlohmann::json vectors = LoadVectors();
  ASSERT_FALSE(vectors.is_discarded());
  ASSERT_GE(vectors.at("cases").size(), 2U);
  for (const auto& vector : vectors.at("cases")) {
    SCOPED_TRACE(vector.at("about").get<std::string>());
    const EnergyRecordSet set = FromText(vector.at("record_textproto").get<std::string>());
    const auto& expected = vector.at("expected_points");
    const MappingResult result = MapRecordSet(set, DeviceForVector(expected, set.inverterid()));

    EXPECT_EQ(result.unmapped_channels, 0);
    EXPECT_EQ(result.duplicate_points, 0);
    EXPECT_EQ(result.invalid_values, 0);
    ASSERT_TRUE(result.newest_timestamp.has_value());
    EXPECT_EQ(FormatIso8601(*result.newest_timestamp), vector.at("timestamp").get<std::string>());

    // The vector lists points sorted by asset, then metric name; the mapping's order is by channel.
    std::vector<TelemetryPoint> actual = result.points;
    std::sort(actual.begin(), actual.end(), [](const TelemetryPoint& a, const TelemetryPoint& b) {
      return std::tuple(a.asset_id, MetricName(a.metric), a.timestamp) <
             std::tuple(b.asset_id, MetricName(b.metric), b.timestamp);
    });
    ASSERT_EQ(actual.size(), expected.size());
    for (std::size_t i = 0; i < actual.size(); ++i) {
      SCOPED_TRACE("point " + std::to_string(i));
      EXPECT_EQ(actual[i].asset_id, expected[i].at("asset").get<std::string>());
      EXPECT_EQ(MetricName(actual[i].metric), expected[i].at("metric").get<std::string>());
      EXPECT_EQ(FormatIso8601(actual[i].timestamp), vector.at("timestamp").get<std::string>());
      EXPECT_DOUBLE_EQ(actual[i].value, expected[i].at("value").get<double>());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Hand-computed cases.

TEST(TelemetryMapping, ConvertsWattsToKilowattsAndWattSecondsToKilowattHours) {
  const auto result = MapRecordSet(OneRecord(R"pb(
                                     channel {
                                       channel: 1
                                       channelType: NET
                                       realPower_W: 2500
                                       importedEnergy_Ws: 7200000
                                       exportedEnergy_Ws: 1800000
                                       voltage_V: 241.5
                                     }
                                     channel {
                                       channel: 2
                                       channelType: INVERTER_OUTPUT
                                       realPower_W: 4200
                                       reactivePower_VAR: 300
                                       importedEnergy_Ws: 36000000
                                       exportedEnergy_Ws: 9000
                                       realPowerSourceMax_W: 5000
                                       realPowerSinkMax_W: 3800
                                     }
                                     channel {
                                       channel: 10
                                       channelType: STORAGE
                                       deviceId: "000100008010"
                                       realPower_W: 750
                                       soc: 80
                                       soh: 99.5
                                       voltage_V: 52
                                       importedEnergy_Ws: 3600000
                                       exportedEnergy_Ws: 5400000
                                     }
                                     channel {
                                       channel: 20
                                       channelType: GENERATION_AC
                                       deviceId: "000100003010"
                                       realPower_W: 125
                                       voltage_V: 300
                                       exportedEnergy_Ws: 18000
                                     }
                                   )pb"),
                                   FullDevice());
  EXPECT_EQ(result.unmapped_channels, 0);
  EXPECT_EQ(ValueOf(result, "asset-meter", Metric::kRealPower), 2.5);
  EXPECT_EQ(ValueOf(result, "asset-meter", Metric::kEnergyImported), 2.0);
  EXPECT_EQ(ValueOf(result, "asset-meter", Metric::kEnergyExported), 0.5);
  EXPECT_EQ(ValueOf(result, "asset-meter", Metric::kVoltage), 241.5);
  EXPECT_EQ(ValueOf(result, "asset-inverter", Metric::kRealPower), 4.2);
  EXPECT_EQ(ValueOf(result, "asset-inverter", Metric::kReactivePower), 0.3);
  EXPECT_EQ(ValueOf(result, "asset-inverter", Metric::kEnergyImported), 10.0);
  EXPECT_EQ(ValueOf(result, "asset-inverter", Metric::kEnergyExported), 0.0025);
  EXPECT_EQ(ValueOf(result, "asset-inverter", Metric::kSourceMaxPower), 5.0);
  EXPECT_EQ(ValueOf(result, "asset-inverter", Metric::kSinkMaxPower), 3.8);
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kRealPower), 0.75);
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kStateOfCharge), 80.0);
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kStateOfHealth), 99.5);
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kVoltage), 52.0);
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kEnergyImported), 1.0);
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kEnergyExported), 1.5);
  EXPECT_EQ(ValueOf(result, "asset-pv-1", Metric::kRealPower), 0.125);
  EXPECT_EQ(ValueOf(result, "asset-pv-1", Metric::kVoltage), 300.0);
  EXPECT_EQ(ValueOf(result, "asset-pv-1", Metric::kEnergyExported), 0.005);
  EXPECT_EQ(ValueOf(result, "asset-system", Metric::kInverterState), 2080.0);
  EXPECT_EQ(ValueOf(result, "asset-system", Metric::kSystemMode), 2.0);
  // 4 + 6 + 6 + 3 channel points and 2 system points, nothing else.
  EXPECT_EQ(result.points.size(), 21U);
  for (const auto& point : result.points) EXPECT_EQ(FormatIso8601(point.timestamp), "2025-11-22T08:26:40Z");
}

TEST(TelemetryMapping, PreciseRealPowerWinsWhenNonZero) {
  const auto result = MapRecordSet(OneRecord(R"pb(
                                     channel { channel: 1 channelType: NET realPower_W: 1234 realPower_Wf: 1234.5 }
                                     channel { channel: 2 channelType: INVERTER_OUTPUT realPower_W: 1234 }
                                   )pb"),
                                   FullDevice());
  EXPECT_EQ(ValueOf(result, "asset-meter", Metric::kRealPower), 1.2345);
  EXPECT_EQ(ValueOf(result, "asset-inverter", Metric::kRealPower), 1.234);
}

TEST(TelemetryMapping, NegativeValuesKeepTheirSign) {
  const auto result =
      MapRecordSet(OneRecord(R"pb(
                     channel { channel: 1 channelType: NET realPower_W: -3400 realPower_Wf: -3400 }
                     channel { channel: 2 channelType: INVERTER_OUTPUT realPower_W: -200 reactivePower_VAR: -150 }
                     channel { channel: 10 channelType: STORAGE deviceId: "000100008010" realPower_W: -1500 }
                     channel { channel: 20 channelType: GENERATION deviceId: "000100003010" realPower_Wf: -2.5 }
                   )pb"),
                   FullDevice());
  EXPECT_EQ(ValueOf(result, "asset-meter", Metric::kRealPower), -3.4);     // exporting to the grid
  EXPECT_EQ(ValueOf(result, "asset-inverter", Metric::kRealPower), -0.2);  // consuming
  EXPECT_EQ(ValueOf(result, "asset-inverter", Metric::kReactivePower), -0.15);
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kRealPower), -1.5);  // charging
  EXPECT_EQ(ValueOf(result, "asset-pv-1", Metric::kRealPower), -0.0025);    // night-time draw
}

TEST(TelemetryMapping, FloatsWidenToTheirShortestDecimal) {
  const auto result = MapRecordSet(
      OneRecord(R"pb(
        channel {
          channel: 10
          channelType: STORAGE
          deviceId: "000100008010"
          soc: 57.3
          soh: 99.1
          voltage_V: 240.1
          realPower_Wf: 1234.6
        }
        channel { channel: 2 channelType: INVERTER_OUTPUT realPowerSourceMax_W: 7600.7 realPowerSinkMax_W: 0.1 }
      )pb"),
      FullDevice());
  ASSERT_NE(static_cast<double>(57.3F), 57.3);  // the trap this rule avoids
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kStateOfCharge), 57.3);
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kStateOfHealth), 99.1);
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kVoltage), 240.1);
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kRealPower), 1234.6 / 1000);
  EXPECT_EQ(ValueOf(result, "asset-inverter", Metric::kSourceMaxPower), 7600.7 / 1000);
  EXPECT_EQ(ValueOf(result, "asset-inverter", Metric::kSinkMaxPower), 0.1 / 1000);
}

TEST(TelemetryMapping, NetWithoutSiteMeterIsUnmappedAndCounted) {
  DeviceRecord device = FullDevice();
  device.site_meter.reset();
  const auto result = MapRecordSet(OneRecord(R"pb(
                                     channel { channel: 30 channelType: NET realPower_W: 100 }
                                     channel { channel: 2 channelType: INVERTER_OUTPUT realPower_W: 100 }
                                   )pb"),
                                   device);
  EXPECT_EQ(result.unmapped_channels, 1);
  EXPECT_THAT(result.details, Contains("channel 30 NET: no site meter asset"));
  EXPECT_EQ(AssetsOf(result), (std::vector<std::string>{"asset-inverter", "asset-system"}));
  // A site meter known by remoteId only (no Concerto id yet) is not an asset either.
  device.site_meter = AssetRef{"", "meter-7010"};
  EXPECT_EQ(MapRecordSet(OneRecord("channel { channel: 30 channelType: NET }"), device).unmapped_channels, 1);
}

TEST(TelemetryMapping, InverterOutputFallsBackToTheSystemAsset) {
  DeviceRecord device = FullDevice();
  device.inverters.clear();
  const auto result = MapRecordSet(
      OneRecord("channel { channel: 2 channelType: INVERTER_OUTPUT realPower_W: 3500 realPowerSourceMax_W: 7600 }"),
      device);
  EXPECT_EQ(result.unmapped_channels, 0);
  EXPECT_EQ(ValueOf(result, "asset-system", Metric::kRealPower), 3.5);
  EXPECT_EQ(ValueOf(result, "asset-system", Metric::kSourceMaxPower), 7.6);
  EXPECT_EQ(ValueOf(result, "asset-system", Metric::kInverterState), 2080.0);
  EXPECT_EQ(AssetsOf(result), (std::vector<std::string>{"asset-system"}));
  EXPECT_EQ(result.points.size(), 8U);
}

// ---- a system with two inverters (SPEC section 6) ----

constexpr const char* kFirstInverter = "000100007010";
constexpr const char* kSecondInverter = "000100007011";

DeviceRecord TwoInverterDevice() {
  DeviceRecord device = FullDevice();
  device.inverter_rcpns = {kFirstInverter, kSecondInverter};
  device.inverters = {{"asset-inverter", kFirstInverter}, {"asset-inverter-2", kSecondInverter}};
  return device;
}

EnergyRecordSet RecordFrom(const std::string& inverter_id, std::uint32_t inverter_state, const std::string& channels) {
  EnergyRecordSet set = OneRecord(channels);
  set.set_inverterid(inverter_id);
  set.mutable_energyrecord(0)->set_inverterstate(inverter_state);
  return set;
}

constexpr const char* kInverterOutput =
    "channel { channel: 2 channelType: INVERTER_OUTPUT realPower_W: 3500 realPowerSourceMax_W: 7600 }";

TEST(TelemetryMapping, EachInverterOfASystemFeedsItsOwnInverterAsset) {
  const DeviceRecord device = TwoInverterDevice();
  const auto first = MapRecordSet(RecordFrom(kFirstInverter, 2080, kInverterOutput), device);
  EXPECT_EQ(first.unmapped_channels, 0);
  EXPECT_EQ(ValueOf(first, "asset-inverter", Metric::kRealPower), 3.5);
  // The SYSTEM's INVERTER_STATE is the first inverter's; each INVERTER asset also gets its own.
  EXPECT_EQ(ValueOf(first, "asset-system", Metric::kInverterState), 2080.0);
  EXPECT_EQ(ValueOf(first, "asset-inverter", Metric::kInverterState), 2080.0);
  EXPECT_EQ(ValueOf(first, "asset-inverter", Metric::kSystemMode), 2.0);
  EXPECT_EQ(AssetsOf(first), (std::vector<std::string>{"asset-inverter", "asset-system"}));

  const auto second = MapRecordSet(RecordFrom(kSecondInverter, 0x7010, kInverterOutput), device);
  EXPECT_EQ(second.unmapped_channels, 0);
  EXPECT_EQ(second.unmapped_system_records, 0);
  EXPECT_EQ(ValueOf(second, "asset-inverter-2", Metric::kRealPower), 3.5);
  EXPECT_EQ(ValueOf(second, "asset-inverter-2", Metric::kSourceMaxPower), 7.6);
  EXPECT_EQ(ValueOf(second, "asset-inverter-2", Metric::kInverterState), 28688.0);
  // Nothing of the second inverter lands on the SYSTEM or on the first inverter: at the same
  // timestamp it would collide with the first inverter's points (Concerto keeps one of them).
  EXPECT_EQ(AssetsOf(second), (std::vector<std::string>{"asset-inverter-2"}));
  EXPECT_EQ(second.inverter_state, 0x7010U);
}

TEST(TelemetryMapping, ASecondInverterWithoutItsAssetIsCountedNotMergedIntoTheSystem) {
  DeviceRecord device = TwoInverterDevice();
  device.inverters = {{"asset-inverter", kFirstInverter}};  // the second not commissioned yet
  const auto second = MapRecordSet(RecordFrom(kSecondInverter, 2080, std::string(kInverterOutput) + R"pb(
                                     channel { channel: 10 channelType: STORAGE deviceId: "000100008010" soc: 50 }
                                   )pb"),
                                   device);
  EXPECT_EQ(second.unmapped_channels, 1);
  EXPECT_EQ(second.unmapped_system_records, 1);
  EXPECT_THAT(second.details, Contains("channel 2 INVERTER_OUTPUT: no INVERTER asset for inverter 000100007011"));
  // Components are matched by their own deviceId, whichever inverter's record carries them.
  EXPECT_EQ(AssetsOf(second), (std::vector<std::string>{"asset-battery-1"}));

  // Before commissioning: the SYSTEM stands for the first inverter only.
  device.inverters.clear();
  const auto first = MapRecordSet(RecordFrom(kFirstInverter, 2080, kInverterOutput), device);
  EXPECT_EQ(ValueOf(first, "asset-system", Metric::kRealPower), 3.5);
  EXPECT_EQ(ValueOf(first, "asset-system", Metric::kInverterState), 2080.0);
  const auto again = MapRecordSet(RecordFrom(kSecondInverter, 2080, kInverterOutput), device);
  EXPECT_TRUE(again.points.empty());
  EXPECT_EQ(again.unmapped_channels, 1);
}

TEST(TelemetryMapping, ASingleInverterSystemSendsItsStateToTheSystemOnly) {
  const auto result = MapRecordSet(RecordFrom(kFirstInverter, 2080, kInverterOutput), FullDevice());
  EXPECT_TRUE(PointsFor(result, "asset-inverter", Metric::kInverterState).empty());
  EXPECT_EQ(ValueOf(result, "asset-system", Metric::kInverterState), 2080.0);
}

TEST(TelemetryMapping, WithoutAnySystemAssetIdSystemLevelPointsAreCountedNotInvented) {
  DeviceRecord device = FullDevice();
  device.inverters.clear();
  device.concerto_asset_id.clear();
  const auto result = MapRecordSet(OneRecord(R"pb(
                                     channel { channel: 2 channelType: INVERTER_OUTPUT realPower_W: 3500 }
                                     channel { channel: 1 channelType: NET realPower_W: 100 }
                                   )pb"),
                                   device);
  EXPECT_EQ(result.unmapped_channels, 1);
  EXPECT_EQ(result.unmapped_system_records, 1);
  EXPECT_THAT(result.details, Contains("channel 2 INVERTER_OUTPUT: no inverter asset and no SYSTEM asset id"));
  EXPECT_THAT(result.details,
              Contains("record 2025-11-22T08:26:40Z: no SYSTEM asset id for INVERTER_STATE, SYSTEM_MODE"));
  EXPECT_EQ(AssetsOf(result), (std::vector<std::string>{"asset-meter"}));
  for (const auto& point : result.points) EXPECT_FALSE(point.asset_id.empty());
  // The device's own state is still reported.
  EXPECT_EQ(result.inverter_state, 2080U);
  EXPECT_EQ(result.sys_mode, 2);
}

TEST(TelemetryMapping, ComponentsAreMatchedByDeviceIdOnly) {
  DeviceRecord device = FullDevice();
  device.batteries.push_back(AssetRef{"asset-battery-no-remote-id", ""});
  device.batteries.push_back(AssetRef{"", "000100008099"});  // known by remoteId, not yet in Concerto
  const auto result = MapRecordSet(OneRecord(R"pb(
                                     channel { channel: 10 channelType: STORAGE deviceId: "000100008012" }
                                     channel { channel: 11 channelType: STORAGE_AC deviceId: "" }
                                     channel { channel: 12 channelType: STORAGE deviceId: "000100008099" }
                                     channel { channel: 13 channelType: STORAGE_AC deviceId: "000100008011" soc: 12 }
                                     channel { channel: 20 channelType: GENERATION deviceId: "000100003099" }
                                   )pb"),
                                   device);
  EXPECT_EQ(result.unmapped_channels, 4);
  EXPECT_THAT(result.details, Contains("channel 10 STORAGE: no battery asset with remoteId '000100008012'"));
  EXPECT_THAT(result.details, Contains("channel 20 GENERATION: no photovoltaic asset with remoteId '000100003099'"));
  EXPECT_EQ(ValueOf(result, "asset-battery-2", Metric::kStateOfCharge), 12.0);
  EXPECT_EQ(AssetsOf(result), (std::vector<std::string>{"asset-battery-2", "asset-system"}));
}

TEST(TelemetryMapping, ConsumptionAndUnknownChannelTypesAreUnmapped) {
  EnergyRecordSet set = OneRecord(R"pb(
    channel { channel: 40 channelType: CONSUMPTION realPower_W: 900 }
    channel { channel: 41 channelType: UNKNOWN_CHANNEL realPower_W: 900 }
    channel { channel: 42 channelType: NET realPower_W: 900 }
  )pb");
  set.mutable_energyrecord(0)->mutable_channel(2)->set_channeltype(static_cast<pwrcell::ces::v1::ChannelType>(42));
  const auto result = MapRecordSet(set, FullDevice());
  EXPECT_EQ(result.unmapped_channels, 3);
  EXPECT_THAT(result.details, Contains(HasSubstr("channel 40 CONSUMPTION")));
  EXPECT_THAT(result.details, Contains(HasSubstr("channel 41 UNKNOWN_CHANNEL")));
  EXPECT_THAT(result.details, Contains("channel 42 type 42: channel type not mapped"));
  EXPECT_EQ(AssetsOf(result), (std::vector<std::string>{"asset-system"}));
}

TEST(TelemetryMapping, EachRecordGivesPointsAtItsOwnTimestampAndTheNewestSetsTheState) {
  const EnergyRecordSet set = FromText(R"pb(
    inverterId: "000100007010"
    energyRecord {
      currentTimestamp: 1763800000
      sysMode: SELF_SUPPLY
      inverterState: 2080
      channel { channel: 1 channelType: NET realPower_W: 100 }
    }
    energyRecord {
      currentTimestamp: 1763800300
      sysMode: PRIORITY_BACKUP
      inverterState: 28688
      channel { channel: 1 channelType: NET realPower_W: 300 }
    }
    energyRecord {
      currentTimestamp: 1763799700
      sysMode: GRID_TIE
      inverterState: 768
      channel { channel: 1 channelType: NET realPower_W: -100 }
    }
  )pb");
  const auto result = MapRecordSet(set, FullDevice());
  EXPECT_EQ(result.duplicate_points, 0);
  const auto power = PointsFor(result, "asset-meter", Metric::kRealPower);
  ASSERT_EQ(power.size(), 3U);
  EXPECT_EQ(FormatIso8601(power[0].timestamp), "2025-11-22T08:26:40Z");
  EXPECT_EQ(power[0].value, 0.1);
  EXPECT_EQ(FormatIso8601(power[1].timestamp), "2025-11-22T08:31:40Z");
  EXPECT_EQ(power[1].value, 0.3);
  EXPECT_EQ(FormatIso8601(power[2].timestamp), "2025-11-22T08:21:40Z");
  EXPECT_EQ(power[2].value, -0.1);
  const auto states = PointsFor(result, "asset-system", Metric::kInverterState);
  ASSERT_EQ(states.size(), 3U);
  EXPECT_EQ(states[1].value, 28688.0);
  EXPECT_EQ(result.points.size(), 3U * 4 + 3U * 2);

  ASSERT_TRUE(result.newest_timestamp.has_value());
  EXPECT_EQ(FormatIso8601(*result.newest_timestamp), "2025-11-22T08:31:40Z");
  EXPECT_EQ(result.inverter_state, 28688U);
  EXPECT_EQ(result.sys_mode, 4);
}

TEST(TelemetryMapping, FractionalTimestampKeepsItsMilliseconds) {
  const auto result =
      MapRecordSet(OneRecord("channel { channel: 1 channelType: NET realPower_W: 1 }", kT0 + 0.25), FullDevice());
  ASSERT_FALSE(result.points.empty());
  for (const auto& point : result.points) EXPECT_EQ(FormatIso8601(point.timestamp), "2025-11-22T08:26:40.250Z");
  EXPECT_EQ(result.newest_timestamp, FromUnixMillis(1763800000250));
}

TEST(TelemetryMapping, ASecondChannelForTheSameAssetIsDroppedAndCounted) {
  const auto result = MapRecordSet(OneRecord(R"pb(
                                     channel { channel: 10 channelType: STORAGE deviceId: "000100008010" soc: 40 }
                                     channel { channel: 11 channelType: STORAGE_AC deviceId: "000100008010" soc: 90 }
                                   )pb"),
                                   FullDevice());
  EXPECT_EQ(result.duplicate_points, 6);
  EXPECT_EQ(result.unmapped_channels, 0);
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kStateOfCharge), 40.0);  // the first one stays
  EXPECT_EQ(result.points.size(), 6U + 2U);
  EXPECT_THAT(result.details, Contains("channel 11 STORAGE_AC: 6 point(s) already given, dropped"));
}

TEST(TelemetryMapping, TwoRecordsWithTheSameTimestampDoNotDuplicatePoints) {
  const EnergyRecordSet set = FromText(R"pb(
    inverterId: "000100007010"
    energyRecord {
      currentTimestamp: 1763800000
      channel { channel: 1 channelType: NET realPower_W: 100 }
    }
    energyRecord {
      currentTimestamp: 1763800000
      channel { channel: 1 channelType: NET realPower_W: 200 }
    }
  )pb");
  const auto result = MapRecordSet(set, FullDevice());
  EXPECT_EQ(result.points.size(), 4U + 2U);
  EXPECT_EQ(result.duplicate_points, 6);
  EXPECT_EQ(ValueOf(result, "asset-meter", Metric::kRealPower), 0.1);
}

TEST(TelemetryMapping, NonFiniteValuesAreDroppedAndCounted) {
  EnergyRecordSet set = OneRecord(R"pb(channel { channel: 10 channelType: STORAGE deviceId: "000100008010" })pb");
  auto* channel = set.mutable_energyrecord(0)->mutable_channel(0);
  channel->set_soc(std::numeric_limits<float>::quiet_NaN());
  channel->set_voltage_v(std::numeric_limits<float>::infinity());
  channel->set_realpower_wf(std::numeric_limits<float>::quiet_NaN());
  channel->set_realpower_w(700);
  const auto result = MapRecordSet(set, FullDevice());
  EXPECT_EQ(result.invalid_values, 2);
  EXPECT_TRUE(PointsFor(result, "asset-battery-1", Metric::kStateOfCharge).empty());
  EXPECT_TRUE(PointsFor(result, "asset-battery-1", Metric::kVoltage).empty());
  EXPECT_EQ(ValueOf(result, "asset-battery-1", Metric::kRealPower), 0.7);  // the integer field stands in
  EXPECT_THAT(result.details, Contains("channel 10 STORAGE: STATE_OF_CHARGE is not finite"));
}

TEST(TelemetryMapping, RecordsWithUnusableTimestampsAreSkipped) {
  EnergyRecordSet set = OneRecord("channel { channel: 1 channelType: NET realPower_W: 100 }");
  set.add_energyrecord()->set_currenttimestamp(std::numeric_limits<double>::quiet_NaN());
  set.add_energyrecord()->set_currenttimestamp(-5);
  const auto result = MapRecordSet(set, FullDevice());
  EXPECT_EQ(result.skipped_records, 2);
  EXPECT_EQ(result.points.size(), 6U);
  EXPECT_EQ(result.newest_timestamp, FromUnixSeconds(kT0));
}

TEST(TelemetryMapping, EmptySetGivesNothing) {
  const auto result = MapRecordSet(EnergyRecordSet(), FullDevice());
  EXPECT_TRUE(result.points.empty());
  EXPECT_EQ(result.unmapped_channels, 0);
  EXPECT_FALSE(result.newest_timestamp.has_value());
  EXPECT_FALSE(result.inverter_state.has_value());
  EXPECT_FALSE(result.sys_mode.has_value());
}

// ---------------------------------------------------------------------------------------------
// Batching.

std::vector<TelemetryPoint> NumberedPoints(std::size_t count) {
  std::vector<TelemetryPoint> points;
  for (std::size_t i = 0; i < count; ++i) {
    points.push_back({"asset", Metric::kRealPower, FromUnixMillis(static_cast<std::int64_t>(i)), 0.0});
  }
  return points;
}

std::vector<std::size_t> BatchSizes(const std::vector<std::vector<TelemetryPoint>>& batches) {
  std::vector<std::size_t> sizes;
  sizes.reserve(batches.size());
  for (const auto& batch : batches) sizes.push_back(batch.size());
  return sizes;
}

TEST(TelemetryMappingBatches, SplitsIntoConcertoSizedBatchesKeepingOrder) {
  const std::vector<std::pair<std::size_t, std::vector<std::size_t>>> cases = {
      {0, {}}, {1, {1}}, {500, {500}}, {501, {500, 1}}, {1201, {500, 500, 201}}};
  for (const auto& [count, sizes] : cases) {
    SCOPED_TRACE(count);
    const auto points = NumberedPoints(count);
    const auto batches = SplitIntoBatches(points);
    EXPECT_EQ(BatchSizes(batches), sizes);
    std::vector<TelemetryPoint> rejoined;
    for (const auto& batch : batches) rejoined.insert(rejoined.end(), batch.begin(), batch.end());
    EXPECT_EQ(rejoined, points);
  }
}

TEST(TelemetryMappingBatches, HonoursASmallerLimit) {
  EXPECT_EQ(BatchSizes(SplitIntoBatches(NumberedPoints(7), 3)), (std::vector<std::size_t>{3, 3, 1}));
  EXPECT_EQ(BatchSizes(SplitIntoBatches(NumberedPoints(3), 1)), (std::vector<std::size_t>{1, 1, 1}));
}

}  // namespace
}  // namespace pwrcell::domain
