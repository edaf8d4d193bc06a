// The coupling rule (contracts/ces-api.md): every acPVPowerRating zero -> DC-coupled; any
// non-zero -> AC-coupled; zero and non-zero on one system -> AC-coupled plus an error an
// operator can act on. Pure: the caller logs the error.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "domain/ces_types.h"
#include "domain/device.h"

namespace pwrcell::domain {

struct CouplingDecision {
  Coupling coupling = Coupling::kUnknown;
  // Set when the configuration needs an operator: mixed ratings (naming the systemId and each
  // inverter's rating), no inverter, or no rating reported.
  std::optional<std::string> error;
  bool operator==(const CouplingDecision&) const = default;
};

CouplingDecision DetermineCoupling(const std::string& system_id, const std::vector<CesInverter>& inverters);

}  // namespace pwrcell::domain
