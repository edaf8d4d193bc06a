#include "domain/device.h"

#include <gtest/gtest.h>

namespace pwrcell::domain {
namespace {

TEST(DeviceRecord, LastHeardNeverMovesBackwards) {
  DeviceRecord d;
  EXPECT_TRUE(d.RaiseLastHeard(FromUnixSeconds(1000)));
  EXPECT_FALSE(d.RaiseLastHeard(FromUnixSeconds(900)));
  EXPECT_EQ(*d.last_heard_at, FromUnixSeconds(1000));
  EXPECT_FALSE(d.RaiseLastHeard(FromUnixSeconds(1000)));
  EXPECT_TRUE(d.RaiseLastHeard(FromUnixSeconds(1300)));
  EXPECT_EQ(*d.last_heard_at, FromUnixSeconds(1300));
}

TEST(DeviceRecord, DefaultsMatchTheSpec) {
  DeviceRecord d;
  EXPECT_EQ(d.coupling, Coupling::kUnknown);
  EXPECT_EQ(d.commissioning.state, CommissioningState::kNotRequested);
  EXPECT_FALSE(d.remote_state.has_value());
  EXPECT_EQ(d.version, 0);
}

// ---- several inverters ----

InverterReading Reading(const std::string& rcpn, std::uint32_t state, std::int64_t seconds, int sys_mode = 2) {
  return {rcpn, state, sys_mode, FromUnixSeconds(static_cast<double>(seconds))};
}

DeviceRecord TwoInverters() {
  DeviceRecord d;
  d.inverter_rcpns = {"inv-a", "inv-b"};
  return d;
}

TEST(DeviceRecord, EachInverterKeepsItsNewestReading) {
  DeviceRecord d = TwoInverters();
  EXPECT_FALSE(d.SystemReading());
  EXPECT_FALSE(d.InverterState().has_value());
  EXPECT_TRUE(d.RecordInverterReading(Reading("inv-b", 2080, 1000)));
  EXPECT_TRUE(d.RecordInverterReading(Reading("inv-a", 2080, 1300)));
  // inv-b's record arrives after inv-a's newer one: it is still inv-b's newest and is kept.
  EXPECT_TRUE(d.RecordInverterReading(Reading("inv-b", 0x7010, 1200)));
  // A late, older record of inv-b changes nothing; the same reading again neither.
  EXPECT_FALSE(d.RecordInverterReading(Reading("inv-b", 2080, 1100)));
  EXPECT_FALSE(d.RecordInverterReading(Reading("inv-b", 0x7010, 1200)));
  EXPECT_EQ(d.inverter_readings,
            (std::vector<InverterReading>{Reading("inv-a", 2080, 1300), Reading("inv-b", 0x7010, 1200)}))
      << "in CES order whatever the order heard";
}

TEST(DeviceRecord, AnInverterInErrorSpeaksForTheSystem) {
  DeviceRecord d = TwoInverters();
  d.RecordInverterReading(Reading("inv-b", 0x7010, 1000, 4));
  d.RecordInverterReading(Reading("inv-a", 2080, 1300, 2));  // the other's OK, reported later
  ASSERT_NE(d.SystemReading(), nullptr);
  EXPECT_EQ(d.SystemReading()->rcpn, "inv-b");
  EXPECT_EQ(d.InverterState(), std::optional<std::uint32_t>(0x7010));
  EXPECT_EQ(d.SysMode(), std::optional<int>(4));
  // inv-b recovers: the first inverter speaks for the system again.
  d.RecordInverterReading(Reading("inv-b", 2080, 1600, 4));
  EXPECT_EQ(d.SystemReading()->rcpn, "inv-a");
  EXPECT_EQ(d.InverterState(), std::optional<std::uint32_t>(2080));
  EXPECT_EQ(d.SysMode(), std::optional<int>(2));
  // Both in error: the first (CES order).
  d.RecordInverterReading(Reading("inv-b", 0x7001, 1900));
  d.RecordInverterReading(Reading("inv-a", 0x7FFF, 1900));
  EXPECT_EQ(d.SystemReading()->rcpn, "inv-a");
}

TEST(DeviceRecord, NewInverterRcpnsReorderAndDropWhatCesNoLongerLists) {
  DeviceRecord d = TwoInverters();
  d.RecordInverterReading(Reading("inv-a", 2080, 1000));
  d.RecordInverterReading(Reading("inv-b", 0x7010, 1000));
  d.SetInverter({"asset-a", "inv-a"});
  d.SetInverter({"asset-b", "inv-b"});
  d.SetInverter({"asset-x", "by-hand"});  // an INVERTER child no inverter of CES matches: last
  EXPECT_EQ(d.inverters, (std::vector<AssetRef>{{"asset-a", "inv-a"}, {"asset-b", "inv-b"}, {"asset-x", "by-hand"}}));

  EXPECT_FALSE(d.SetInverterRcpns({"inv-a", "inv-b"}));
  // CES now lists inv-b first and inv-c instead of inv-a: inv-a's reading goes; the assets follow
  // the new order (inv-a's asset stays: Concerto still has it, until the registrar sees otherwise).
  EXPECT_TRUE(d.SetInverterRcpns({"inv-b", "inv-c"}));
  EXPECT_EQ(d.inverter_readings, (std::vector<InverterReading>{Reading("inv-b", 0x7010, 1000)}));
  EXPECT_EQ(d.inverters, (std::vector<AssetRef>{{"asset-b", "inv-b"}, {"asset-a", "inv-a"}, {"asset-x", "by-hand"}}));
  EXPECT_EQ(d.FirstInverterRcpn(), "inv-b");
  // A reading of an inverter that CES dropped would otherwise hold the system in ERROR for good.
  EXPECT_TRUE(d.SetInverterRcpns({"inv-c"}));
  EXPECT_TRUE(d.inverter_readings.empty());
  EXPECT_FALSE(d.InverterState().has_value());
}

TEST(DeviceRecord, SetInverterAddsOrReplacesByRemoteIdAndFindInverterMatchesIt) {
  DeviceRecord d = TwoInverters();
  EXPECT_TRUE(d.SetInverter({"asset-b", "inv-b"}));
  EXPECT_TRUE(d.SetInverter({"asset-a", "inv-a"}));
  EXPECT_FALSE(d.SetInverter({"asset-a", "inv-a"}));
  EXPECT_TRUE(d.SetInverter({"asset-a2", "inv-a"}));  // re-created in Concerto: the new id
  EXPECT_EQ(d.inverters, (std::vector<AssetRef>{{"asset-a2", "inv-a"}, {"asset-b", "inv-b"}}));
  ASSERT_NE(d.FindInverter("inv-b"), nullptr);
  EXPECT_EQ(d.FindInverter("inv-b")->asset_id, "asset-b");
  EXPECT_EQ(d.FindInverter("inv-c"), nullptr);
  EXPECT_EQ(d.FindInverter(""), nullptr);
  EXPECT_EQ(DeviceRecord{}.FirstInverterRcpn(), "");
}

TEST(DomainNames, RoundTrip) {
  for (auto t : {AssetType::kSystem, AssetType::kInverter, AssetType::kBattery, AssetType::kPhotovoltaic,
                 AssetType::kSiteMeter}) {
    EXPECT_EQ(ParseAssetType(AssetTypeName(t)), t);
  }
  EXPECT_EQ(AssetTypeName(AssetType::kSiteMeter), "SITE_METER");
  EXPECT_EQ(MetricName(Metric::kEnergyImported), "ENERGY_IMPORTED");
  EXPECT_EQ(ParseMetric("SYSTEM_MODE"), Metric::kSystemMode);
  EXPECT_EQ(ParseRemoteState("ERROR"), RemoteState::kError);
  EXPECT_EQ(CouplingName(Coupling::kDc), "DC");
  EXPECT_EQ(CommissioningStateName(CommissioningState::kFailed), "FAILED");
  EXPECT_EQ(ParseCommissioningState("PENDING"), CommissioningState::kPending);
  EXPECT_FALSE(ParseMetric("POWER").has_value());
  EXPECT_FALSE(ParseCoupling("ac").has_value());
}

}  // namespace
}  // namespace pwrcell::domain
