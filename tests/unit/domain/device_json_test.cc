#include "domain/device_json.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <string>

namespace pwrcell::domain {
namespace {

using nlohmann::json;

// A record with every field set to something other than its default.
DeviceRecord FullRecord() {
  DeviceRecord r;
  r.remote_id = "sys-dc-0001";
  r.concerto_asset_id = "asset-1";
  r.name = "Smith residence \xc3\xa9";  // UTF-8 survives
  r.is_simulated = true;
  r.rated_power_kw = 7.6;
  r.site = SiteRef{"site-1", "site-ces-1", "Smith"};
  r.inverters = {{"asset-2", "000100007010"}, {"asset-7", "000100007011"}};
  r.batteries = {{"asset-3", "000100008010"}, {"asset-4", "000100008011"}};
  r.photovoltaics = {{"asset-5", "000100003010"}};
  r.site_meter = AssetRef{"asset-6", "sys-dc-0001-meter"};
  r.inverter_rcpns = {"000100007010", "000100007011"};
  r.coupling = Coupling::kAc;
  SystemMetadata m;
  m.system_id = "sys-dc-0001";
  m.site_id = "site-ces-1";
  m.site_name = "Smith";
  m.timezone = "America/Denver";
  m.latitude = 39.7392;
  m.longitude = -104.9903;
  m.status_name = "SUCCESS";
  m.inverters = {{"000100007010", "XVT076A03", 7600, 7.6}, {"000100007011", "XVT114G03", 11400, std::nullopt}};
  m.batteries = {{"000100008010", "PWRcell M6", 17100, 3400.5}};
  m.pv_links = {{"000100003010", 2500}, {"000100003011", 0.1}};
  m.site_meter_id = "meter-9";
  r.metadata = m;
  r.metadata_fetched_at = FromUnixMillis(1'763'800'000'123);
  r.commissioning = {CommissioningState::kPending, "creating site"};
  r.last_heard_at = FromUnixMillis(1'763'800'300'000);
  r.inverter_readings = {{"000100007010", 0xFFFF'FFFFu, -3, FromUnixMillis(1'763'800'300'000)},
                         {"000100007011", 0x7010, 4, FromUnixMillis(1'763'800'000'000)}};
  r.system_status = "SUCCESS";
  r.system_status_at = FromUnixMillis(1'763'800'200'000);
  r.remote_state = RemoteState::kOnline;
  r.remote_state_reason = "telemetry received 30 s ago";
  r.registered_at = FromUnixMillis(1'700'000'000'000);
  r.updated_at = FromUnixMillis(1'763'800'300'001);
  r.version = 42;
  return r;
}

// Parsing the dumped text proves the round trip survives serialization, not just the json tree.
Result<DeviceRecord> ThroughText(const DeviceRecord& r) {
  return DeviceFromJson(json::parse(DumpDeviceJson(r)));
}

TEST(DeviceJson, FullRecordRoundTrips) {
  const DeviceRecord original = FullRecord();
  auto back = ThroughText(original);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, original);
}

TEST(DeviceJson, DefaultRecordRoundTripsWithNulls) {
  DeviceRecord original;
  original.remote_id = "sys-1";
  const json j = ToJson(original);
  for (const char* key :
       {"rated_power_kw", "site", "site_meter", "metadata", "metadata_fetched_at", "last_heard_at", "inverter_state",
        "sys_mode", "system_status", "system_status_at", "remote_state", "registered_at", "updated_at"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_null()) << key;
  }
  for (const char* key : {"inverters", "inverter_rcpns", "inverter_readings"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_EQ(j[key], json::array()) << key;
  }
  auto back = ThroughText(original);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, original);
}

TEST(DeviceJson, UsesSnakeCaseKeysEnumNamesAndIsoTimestamps) {
  const json j = ToJson(FullRecord());
  EXPECT_EQ(j["remote_id"], "sys-dc-0001");
  EXPECT_EQ(j["coupling"], "AC");
  EXPECT_EQ(j["commissioning"]["state"], "PENDING");
  EXPECT_EQ(j["commissioning"]["reason"], "creating site");
  EXPECT_EQ(j["remote_state"], "ONLINE");
  EXPECT_EQ(j["metadata_fetched_at"], "2025-11-22T08:26:40.123Z");
  EXPECT_EQ(j["last_heard_at"], "2025-11-22T08:31:40Z");
  EXPECT_EQ(j["inverter_rcpns"], (json{"000100007010", "000100007011"}));
  EXPECT_EQ(j["inverters"][1], (json{{"asset_id", "asset-7"}, {"remote_id", "000100007011"}}));
  EXPECT_EQ(j["inverter_readings"][0],
            (json{{"rcpn", "000100007010"}, {"state", 4294967295u}, {"sys_mode", -3}, {"at", "2025-11-22T08:31:40Z"}}));
  // The system's state and mode, for readers of the device API: the second inverter's error state
  // speaks for the system although the first reported later.
  EXPECT_EQ(j["inverter_state"], 0x7010);
  EXPECT_EQ(j["sys_mode"], 4);
  EXPECT_EQ(j["version"], 42);
  EXPECT_EQ(j["site"]["site_id"], "site-1");
  EXPECT_EQ(j["batteries"][1]["asset_id"], "asset-4");
  EXPECT_EQ(j["metadata"]["pv_links"][0]["rcpn"], "000100003010");
  EXPECT_EQ(j["metadata"]["inverters"][0]["ac_pv_power_rating_kw"], 7.6);
  EXPECT_TRUE(j["metadata"]["inverters"][1]["ac_pv_power_rating_kw"].is_null());
  EXPECT_EQ(j["metadata"]["site_meter_id"], "meter-9");
}

// What a version before several inverters wrote: one "inverter", one "inverter_rcpn" and the
// newest record's "inverter_state" and "sys_mode" (tests/data/devices.json, SQLite files).
TEST(DeviceJson, ASingleInverterRecordReadsAsTheInverterLists) {
  auto d = DeviceFromJson(json::parse(R"({
    "remote_id": "sys-old", "inverter": {"asset_id": "asset-2", "remote_id": "000100007010"},
    "inverter_rcpn": "000100007010", "last_heard_at": "2025-11-22T08:31:40Z",
    "inverter_state": 28688, "sys_mode": 2})"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->inverters, (std::vector<AssetRef>{{"asset-2", "000100007010"}}));
  EXPECT_EQ(d->inverter_rcpns, (std::vector<std::string>{"000100007010"}));
  EXPECT_EQ(d->inverter_readings,
            (std::vector<InverterReading>{{"000100007010", 28688, 2, FromUnixMillis(1'763'800'300'000)}}));
  EXPECT_EQ(d->InverterState(), std::optional<std::uint32_t>(28688));
  // Written back, it has the current shape (plus the first inverter under the single names, for
  // readers of the device API) and reads the same.
  const json j = ToJson(*d);
  EXPECT_EQ(j["inverters"], json::parse(R"([{"asset_id": "asset-2", "remote_id": "000100007010"}])"));
  EXPECT_EQ(j["inverter"], json::parse(R"({"asset_id": "asset-2", "remote_id": "000100007010"})"));
  EXPECT_EQ(j["inverter_rcpn"], "000100007010");
  auto again = DeviceFromJson(j);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *d);
}

TEST(DeviceJson, ASingleInverterRecordWithoutMetadataOrTelemetryHasEmptyLists) {
  auto d = DeviceFromJson(json::parse(R"({"remote_id": "sys-old", "inverter": null, "inverter_rcpn": "",
                                          "inverter_state": null, "sys_mode": null})"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(d->inverters.empty());
  EXPECT_TRUE(d->inverter_rcpns.empty());
  EXPECT_TRUE(d->inverter_readings.empty());
}

TEST(DeviceJson, TheListsWinOverTheSingleInverterKeys) {
  json j = ToJson(FullRecord());
  j["inverter"] = {{"asset_id", "old"}, {"remote_id", "old"}};
  j["inverter_rcpn"] = "old";
  j["inverter_state"] = 1;  // derived by ToJson; never read back when inverter_readings is there
  auto d = DeviceFromJson(j);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, FullRecord());
}

TEST(DeviceJson, AbsentKeysTakeTheDefaults) {
  auto d = DeviceFromJson(json{{"remote_id", "sys-2"}, {"coupling", "DC"}, {"unknown_future_key", 1}});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  DeviceRecord expected;
  expected.remote_id = "sys-2";
  expected.coupling = Coupling::kDc;
  EXPECT_EQ(*d, expected);
}

// Each case: a change to a valid record's JSON, and the field the error must name.
struct BadCase {
  const char* about;
  void (*mutate)(json&);
  const char* field;
};

class DeviceJsonRejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(DeviceJsonRejects, NamingTheField) {
  json j = ToJson(FullRecord());
  GetParam().mutate(j);
  auto d = DeviceFromJson(j);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status().message().rfind(std::string(GetParam().field) + ":", 0), 0u) << d.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    DeviceJson, DeviceJsonRejects,
    ::testing::Values(
        BadCase{"missing remote_id", [](json& j) { j.erase("remote_id"); }, "remote_id"},
        BadCase{"remote_id null", [](json& j) { j["remote_id"] = nullptr; }, "remote_id"},
        BadCase{"name not a string", [](json& j) { j["name"] = 5; }, "name"},
        BadCase{"lowercase coupling", [](json& j) { j["coupling"] = "ac"; }, "coupling"},
        BadCase{"unknown commissioning state", [](json& j) { j["commissioning"]["state"] = "MAYBE"; },
                "commissioning.state"},
        BadCase{"unknown remote_state", [](json& j) { j["remote_state"] = "SLEEPING"; }, "remote_state"},
        BadCase{"timestamp without zone", [](json& j) { j["last_heard_at"] = "2025-11-22 08:31:40"; }, "last_heard_at"},
        BadCase{"timestamp as number", [](json& j) { j["updated_at"] = 1763800000; }, "updated_at"},
        BadCase{"negative inverter state", [](json& j) { j["inverter_readings"][0]["state"] = -1; },
                "inverter_readings[0].state"},
        BadCase{"inverter state above 32 bits", [](json& j) { j["inverter_readings"][1]["state"] = 4294967296ull; },
                "inverter_readings[1].state"},
        BadCase{"fractional sys_mode", [](json& j) { j["inverter_readings"][0]["sys_mode"] = 1.5; },
                "inverter_readings[0].sys_mode"},
        BadCase{"reading without its time", [](json& j) { j["inverter_readings"][1].erase("at"); },
                "inverter_readings[1].at"},
        BadCase{"legacy negative inverter_state",
                [](json& j) {
                  j.erase("inverter_readings");
                  j["inverter_state"] = -1;
                },
                "inverter_state"},
        BadCase{"rcpn not a string", [](json& j) { j["inverter_rcpns"][1] = 7010; }, "inverter_rcpns[1]"},
        BadCase{"inverters not an array", [](json& j) { j["inverters"] = json::object(); }, "inverters"},
        BadCase{"version above int64", [](json& j) { j["version"] = 18446744073709551615ull; }, "version"},
        BadCase{"site not an object", [](json& j) { j["site"] = "site-1"; }, "site"},
        BadCase{"battery asset id not a string", [](json& j) { j["batteries"][1]["asset_id"] = true; },
                "batteries[1].asset_id"},
        BadCase{"nested metadata field", [](json& j) { j["metadata"]["inverters"][1]["rated_power_w"] = "big"; },
                "metadata.inverters[1].rated_power_w"},
        BadCase{"pv_links not an array", [](json& j) { j["metadata"]["pv_links"] = json::object(); },
                "metadata.pv_links"},
        BadCase{"is_simulated as string", [](json& j) { j["is_simulated"] = "yes"; }, "is_simulated"}),
    [](const ::testing::TestParamInfo<BadCase>& param_info) {
      std::string name = param_info.param.about;
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

TEST(DeviceJson, RejectsANonObject) {
  auto d = DeviceFromJson(json::array());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
}

TEST(DeviceJson, DumpNeverThrowsOnInvalidUtf8) {
  DeviceRecord r;
  r.remote_id = "sys-3";
  r.name = "bad \xff byte";
  std::string text;
  ASSERT_NO_THROW(text = DumpDeviceJson(r));
  auto back = DeviceFromJson(json::parse(text));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->remote_id, "sys-3");
  EXPECT_NE(back->name, r.name);
}

}  // namespace
}  // namespace pwrcell::domain
