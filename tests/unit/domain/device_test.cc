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
