#include "domain/coupling.h"

#include <gtest/gtest.h>

namespace pwrcell::domain {
namespace {

CesInverter Inverter(const std::string& rcpn, std::optional<double> ac_pv_kw) {
  CesInverter i;
  i.rcpn = rcpn;
  i.model = "XVT076A03";
  i.rated_power_w = 7600;
  i.ac_pv_power_rating_kw = ac_pv_kw;
  return i;
}

TEST(Coupling, AllZeroIsDcCoupled) {
  EXPECT_EQ(DetermineCoupling("sys-1", {Inverter("000100073534", 0.0)}),
            (CouplingDecision{Coupling::kDc, std::nullopt}));
  EXPECT_EQ(DetermineCoupling("sys-1", {Inverter("a", 0.0), Inverter("b", 0.0)}).coupling, Coupling::kDc);
}

TEST(Coupling, AnyNonZeroIsAcCoupled) {
  EXPECT_EQ(DetermineCoupling("sys-1", {Inverter("000100073534", 3.8)}),
            (CouplingDecision{Coupling::kAc, std::nullopt}));
  EXPECT_EQ(DetermineCoupling("sys-1", {Inverter("a", 3.8), Inverter("b", 5.0)}).coupling, Coupling::kAc);
}

TEST(Coupling, MixedRatingsAreAcCoupledWithAnErrorNamingSystemAndEachRating) {
  const auto decision = DetermineCoupling("5f0c6a52", {Inverter("000100073534", 0.0), Inverter("000100073535", 3.8)});
  EXPECT_EQ(decision.coupling, Coupling::kAc);
  ASSERT_TRUE(decision.error.has_value());
  EXPECT_EQ(*decision.error,
            "system 5f0c6a52 has mixed acPVPowerRating (inverter 000100073534 = 0 kW, inverter 000100073535 = 3.8 kW); "
            "treated as AC-coupled, fix the inverter settings in CES");
}

TEST(Coupling, NoInverterIsUnknownWithError) {
  const auto decision = DetermineCoupling("sys-9", {});
  EXPECT_EQ(decision.coupling, Coupling::kUnknown);
  EXPECT_EQ(decision.error.value_or(""), "system sys-9: CES reports no inverter");
}

TEST(Coupling, MissingRatingIsUnknownUnlessAnotherIsNonZero) {
  EXPECT_EQ(DetermineCoupling("s", {Inverter("a", std::nullopt)}).coupling, Coupling::kUnknown);
  EXPECT_EQ(DetermineCoupling("s", {Inverter("a", 0.0), Inverter("b", std::nullopt)}).coupling, Coupling::kUnknown);
  EXPECT_EQ(DetermineCoupling("s", {Inverter("a", 2.0), Inverter("b", std::nullopt)}).coupling, Coupling::kAc);
}

}  // namespace
}  // namespace pwrcell::domain
