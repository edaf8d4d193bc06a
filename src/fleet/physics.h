// The physics of a PWRcell system: what its EnergyRecordSet says at a given time.
//
// Pure and deterministic: the same (spec, state, t) gives the same record on every machine.
// Noise (clouds, household load) is drawn from hash(system id, 5-minute slot), not from a
// generator, so a record does not depend on how many records came before it; only the state of
// charge and the lifetime registers carry over, in SystemState.
//
// Model, in W (conversion losses ignored, so NET = load - PV - battery holds to the watt):
// - PV: clear-sky bell from the solar elevation at the system's latitude/longitude (solar
//   time = UTC + longitude/15 h), zero at night, times a cloud factor (daily clearness and
//   per-slot variation). DC-coupled PV is clipped at the inverter rating when the battery
//   cannot absorb the excess; AC-coupled PV has its own inverter and is never clipped.
// - Load: base load plus a morning and an evening peak (local solar time), with per-slot noise.
// - Battery (SELF_SUPPLY): charges from PV surplus, discharges into the load, within the
//   modules' rating, the inverter rating and what the state of charge allows in the interval
//   (so SoC stays within 0..100 and power is cut at the limits).
// - An inverter in an error state (0x7000..0x7FFF) converts nothing: no battery power and no
//   DC PV; AC-coupled PV keeps producing (it has its own inverter).
// Signs follow the proto: NET > 0 imports from the grid; STORAGE > 0 discharges.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/time.h"
#include "energy_record_set.pb.h"
#include "fleet/system_spec.h"

namespace pwrcell::fleet {

inline constexpr std::uint32_t kInverterStateGridConnected = 2080;   // GRID_CONNECTED
inline constexpr std::uint32_t kInverterStateDefaultError = 0x7010;  // 28688, an error state

// Channel numbers as in tests/vectors/telemetry_mapping.json.
inline constexpr std::uint32_t kNetChannel = 1;
inline constexpr std::uint32_t kInverterChannel = 2;
inline constexpr std::uint32_t kFirstStorageChannel = 10;
inline constexpr std::uint32_t kFirstGenerationChannel = 20;
inline constexpr std::uint32_t kAcGenerationChannel = 30;

// What carries over from one record to the next. Registers are lifetime energy in W·s and only
// grow.
struct SystemState {
  double soc_pct = 50;
  std::uint64_t net_imported_ws = 0;
  std::uint64_t net_exported_ws = 0;
  std::uint64_t inverter_imported_ws = 0;
  std::uint64_t inverter_exported_ws = 0;
  std::vector<std::uint64_t> battery_imported_ws;  // per module, as spec.batteries
  std::vector<std::uint64_t> battery_exported_ws;
  std::vector<std::uint64_t> pv_exported_ws;  // per PV link, as spec.pv_links
  std::uint64_t ac_pv_exported_ws = 0;
  bool operator==(const SystemState&) const = default;
};

// The state of a system that has run for spec.age_days: SoC at spec.initial_soc_pct and
// lifetime registers of plausible size.
SystemState InitialState(const SystemSpec& spec);

struct SystemFaults {
  bool silent = false;                          // the system stops communicating: no record (its physics still run)
  std::optional<std::uint32_t> inverter_state;  // overrides GRID_CONNECTED
};

bool IsInverterErrorState(std::uint32_t inverter_state);

// Whole watts, so that the record's channels add up exactly.
struct PowerFlows {
  std::int32_t pv_w = 0;        // total PV (DC links or AC-coupled), after clipping
  std::int32_t load_w = 0;      // household consumption
  std::int32_t battery_w = 0;   // > 0 discharge, < 0 charge
  std::int32_t inverter_w = 0;  // PWRcell inverter AC output, > 0 towards the house/grid
  std::int32_t net_w = 0;       // grid, > 0 import; = load - pv - battery
  bool operator==(const PowerFlows&) const = default;
};

// Sine of the solar elevation at (latitude, longitude) at t: > 0 by day.
double SolarElevationSine(double latitude, double longitude, Timestamp t);
// Local solar time in hours [0, 24): UTC + longitude / 15 h.
double LocalSolarHours(double longitude, Timestamp t);
// PV the panels could produce at t (W), before any clipping.
double AvailablePvW(const SystemSpec& spec, Timestamp t);
// Household load at t (W).
double LoadW(const SystemSpec& spec, Timestamp t);

// The flows over the interval ending at t, given the state at its start. Does not change state.
PowerFlows ComputeFlows(const SystemSpec& spec, const SystemState& state, Timestamp t, Duration interval,
                        const SystemFaults& faults);

// Advances `state` over the interval (t - interval, t] and returns that interval's record, or
// nullopt when the system is silent. Requires interval > 0 and a state made by InitialState for
// this spec.
std::optional<pwrcell::ces::v1::EnergyRecordSet> NextRecord(const SystemSpec& spec, SystemState& state, Timestamp t,
                                                            Duration interval, const SystemFaults& faults);

}  // namespace pwrcell::fleet
