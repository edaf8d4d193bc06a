// A fleet-simulator scenario (sim/scenarios/README.md): the fleet, its clock and its faults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace pwrcell::fleetsim {

enum class FaultKind {
  kSilent,          // the system stops sending telemetry
  kResume,          // ... and starts again
  kInverterError,   // inverterState of inverter `inverter` becomes `inverter_state` (an error state by default)
  kInverterOk,      // back to GRID_CONNECTED
  kCesStatus,       // CES reports `status` for the system (applied by ces-sim)
  kMixedRatings,    // a second inverter whose acPVPowerRating contradicts the first's: CES lists it
                    // (ces-sim), and fleet-sim streams its records
  kSecondInverter,  // a second inverter like the first (same model, rating and coupling): as above
  kCes5xx,          // every CES API call fails with 503 for `duration_s` (ces-sim)
  kCes429,          // every CES API call is rate limited for `duration_s` (ces-sim)
};

std::string_view FaultKindName(FaultKind kind);
std::optional<FaultKind> ParseFaultKind(std::string_view name);
// True for the kinds that concern one system (all but ces_5xx / ces_429).
bool FaultNeedsSystem(FaultKind kind);
// True for the kinds that give a system its second inverter (mixed_ratings, second_inverter).
bool FaultAddsInverter(FaultKind kind);

// The RCP number of the inverter such a fault adds: the first inverter's plus one (12 upper-case
// hex digits, wrapping at 48 bits), as ces-sim computes it. "" when `first` is not hex.
std::string NextRcpn(const std::string& first);

inline constexpr std::uint32_t kDefaultErrorInverterState = 28688;  // 0x7010

struct Fault {
  double at_s = 0;  // simulated seconds after the start
  FaultKind kind = FaultKind::kSilent;
  // The system it concerns, resolved to both forms when the fault names one.
  std::optional<int> system_index;
  std::optional<std::string> system_id;
  std::optional<std::uint32_t> inverter_state;  // kInverterError
  // kInverterError / kInverterOk: which inverter, 0 (the first, the default) or 1 (the second, which
  // a kMixedRatings or kSecondInverter fault of the same system adds).
  std::optional<int> inverter;
  std::optional<std::string> status;  // kCesStatus
  std::optional<double> duration_s;   // kCes5xx / kCes429
};

struct Scenario {
  std::string name;
  std::int64_t seed = 0;
  int systems = 0;
  Timestamp start;
  Duration interval = std::chrono::seconds(300);
  double speed = 60;  // simulated seconds per wall second
  double ac_coupled_fraction = 0.3;
  double site_meter_fraction = 0.9;
  std::string id_prefix;
  std::optional<double> duration_s;     // stop after this many simulated seconds
  std::vector<Fault> faults;            // in file order; applied in at_s order (stable)
  std::vector<std::string> system_ids;  // derived: FleetSystemId(seed, i, id_prefix)
};

// Parses and validates a scenario; errors (kInvalidArgument, kNotFound for a missing file) name
// the file, the key and what was expected.
Result<Scenario> LoadScenarioFile(const std::string& path);
Result<Scenario> LoadScenarioString(std::string_view toml, std::string_view source_name);

}  // namespace pwrcell::fleetsim
