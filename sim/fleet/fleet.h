// The simulated fleet: one SystemSpec and SystemState per system of a scenario, the faults in
// force, and the JSON that --print-fleet shows (the CES simulator serves the same fleet from it).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "domain/ces_types.h"
#include "fleet/physics.h"
#include "fleet/system_spec.h"
#include "sim/fleet/scenario.h"

namespace pwrcell::fleetsim {

// One stream record: the serialized EnergyRecordSet and its partition key (the CES systemId).
struct OutRecord {
  std::string partition_key;
  std::string data;
};

class Fleet {
 public:
  // Fails (kInvalidArgument) if two devices of the fleet share an RCP number: the adapter matches
  // telemetry by the inverter's, so a fleet must not contain a collision. The second inverters
  // that mixed_ratings / second_inverter faults add count as devices too.
  static Result<Fleet> Build(const Scenario& scenario);

  const Scenario& scenario() const { return scenario_; }
  const std::vector<fleet::SystemSpec>& systems() const { return specs_; }

  // Applies the faults due at or before `offset_s` (simulated seconds after start) that have not
  // been applied yet. CES-side kinds are ignored here: ces-sim applies them.
  void ApplyFaultsUpTo(double offset_s);

  // The records of every non-silent system for the interval ending at `t`; advances the physics
  // of every system (silent ones too). `silent` counts the systems that sent nothing. A system
  // with a second inverter (from its mixed_ratings / second_inverter fault's time on) sends two
  // records: the first inverter's, then the second's (its own inverterId, one INVERTER_OUTPUT
  // channel: it has no batteries or PV links of its own, CES lists them under the first).
  std::vector<OutRecord> Tick(Timestamp t, std::size_t* silent = nullptr);

 private:
  explicit Fleet(Scenario scenario) : scenario_(std::move(scenario)) {}

  Scenario scenario_;
  std::vector<fleet::SystemSpec> specs_;
  std::vector<fleet::SystemState> states_;
  std::vector<fleet::SystemFaults> faults_;
  std::vector<std::size_t> fault_order_;  // indexes into scenario_.faults by (at_s, file order)

  struct SecondInverter {
    std::string rcpn;
    double rated_power_w = 0;
    bool active = false;                          // its fault has come
    std::optional<std::uint32_t> inverter_state;  // overrides GRID_CONNECTED (inverter_error, inverter = 1)
  };
  std::vector<std::optional<SecondInverter>> second_;  // per system: those a fault gives one
  std::size_t next_fault_ = 0;
};

// The CES metadata object of contracts/ces-api.md (with inverterSetting and statusName).
nlohmann::ordered_json CesMetadataJson(const domain::SystemMetadata& metadata);

// {"scenario", "seed", "start", "interval_s", "speed", "duration_s"?, "systems": [metadata...],
//  "faults": [{"at_s", "kind", "system", "system_id", ...}]}
nlohmann::ordered_json FleetJson(const Fleet& fleet);

}  // namespace pwrcell::fleetsim
