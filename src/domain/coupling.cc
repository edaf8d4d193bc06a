#include "domain/coupling.h"

#include <charconv>

namespace pwrcell::domain {
namespace {

std::string FormatKw(double kw) {
  char buf[32];
  const auto result = std::to_chars(buf, buf + sizeof buf, kw);
  return std::string(buf, result.ptr) + " kW";
}

std::string ListRatings(const std::vector<CesInverter>& inverters) {
  std::string out;
  for (const auto& inverter : inverters) {
    if (!out.empty()) out += ", ";
    out += "inverter " + inverter.rcpn + " = ";
    out += inverter.ac_pv_power_rating_kw ? FormatKw(*inverter.ac_pv_power_rating_kw) : "not reported";
  }
  return out;
}

}  // namespace

CouplingDecision DetermineCoupling(const std::string& system_id, const std::vector<CesInverter>& inverters) {
  if (inverters.empty()) return {Coupling::kUnknown, "system " + system_id + ": CES reports no inverter"};
  std::size_t zero = 0, non_zero = 0, missing = 0;
  for (const auto& inverter : inverters) {
    if (!inverter.ac_pv_power_rating_kw) {
      ++missing;
    } else if (*inverter.ac_pv_power_rating_kw == 0.0) {
      ++zero;
    } else {
      ++non_zero;
    }
  }
  if (non_zero > 0 && zero > 0) {
    return {Coupling::kAc, "system " + system_id + " has mixed acPVPowerRating (" + ListRatings(inverters) +
                               "); treated as AC-coupled, fix the inverter settings in CES"};
  }
  if (non_zero > 0) return {Coupling::kAc, std::nullopt};
  if (missing > 0) {
    return {Coupling::kUnknown, "system " + system_id + ": acPVPowerRating not reported (" + ListRatings(inverters) +
                                    "); coupling unknown"};
  }
  return {Coupling::kDc, std::nullopt};
}

}  // namespace pwrcell::domain
