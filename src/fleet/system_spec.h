// The composition of a PWRcell system, derived only from its system id.
//
// One copy of the fleet model serves the fleet simulator (which invents a fleet and streams its
// telemetry), the CES simulator (which serves that fleet's metadata, via `fleet-sim
// --print-fleet`), and the adapter (which synthesizes metadata and telemetry for Concerto
// assets marked `simulated`, SPEC section 3). So every draw is a pure function of the id (and
// the options), hashed with FNV-1a 64: same system on every machine, every run.
//
// Batteries: a PWRcell battery cabinet holds 3 to 6 modules of 3 kWh (larger systems add a
// second cabinet). CES and the telemetry list each *module* as a battery with its own RCP
// number (one STORAGE channel per module), so a SystemSpec has one BatterySpec per module.
//
// RCP numbers: 12 upper-case hex digits, "00" + 40 bits drawn from the id's hash, distinct
// within a system by construction. Real RCP numbers carry a 16-bit manufacturer prefix and a
// 32-bit serial; we keep 40 random bits instead because the inverter's RCP number is how the
// adapter matches telemetry to a system, and with 32 bits a 10,000-system fleet would expect
// about one collision among its ~120,000 devices (40 bits: under 1%).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/ces_types.h"

namespace pwrcell::fleet {

struct CompositionOptions {
  // Share of systems whose PV is AC-coupled (a separate PV inverter on the AC side, reported by
  // CES as a non-zero inverterSetting.acPVPowerRating). The adapter uses 0: simulated systems
  // are DC-coupled (SPEC section 3).
  double ac_coupled_fraction = 0.0;
  // Share of systems with a site meter (CTs on the grid connection, a NET channel).
  double site_meter_fraction = 0.9;
};

inline constexpr double kInverterRatingsKw[] = {7.6, 11.4};
inline constexpr double kBatteryModuleCapacityWh = 3000;
// A PWRcell M3 cabinet delivers 3.4 kW from 3 modules: about 1.125 kW per module.
inline constexpr double kBatteryModuleRatedPowerW = 1125;
inline constexpr double kPvLinkRatedPowerW = 2500;
inline constexpr int kMinBatteryModules = 3;
inline constexpr int kMaxBatteryModules = 8;
inline constexpr int kMaxPvLinks = 10;

struct InverterSpec {
  std::string rcpn;
  std::string model;
  double rated_power_w = 0;
  // AC-coupled PV on this inverter, kW; 0 for a DC-coupled system.
  double ac_pv_power_rating_kw = 0;
  bool operator==(const InverterSpec&) const = default;
};

struct BatterySpec {  // one module
  std::string rcpn;
  std::string model;
  double capacity_wh = kBatteryModuleCapacityWh;
  double rated_power_w = kBatteryModuleRatedPowerW;
  double soh_pct = 100;  // state of health, constant over a simulation
  bool operator==(const BatterySpec&) const = default;
};

struct PvLinkSpec {
  std::string rcpn;
  double rated_power_w = kPvLinkRatedPowerW;
  bool operator==(const PvLinkSpec&) const = default;
};

struct SystemSpec {
  std::string system_id;
  std::uint64_t id_hash = 0;  // Fnv1a64(system_id): seeds every per-slot draw of the physics
  std::string site_id;
  std::string site_name;
  std::string timezone;  // IANA name, consistent with latitude/longitude
  double latitude = 0;
  double longitude = 0;  // degrees east (negative in the US); drives solar time
  InverterSpec inverter;
  std::vector<BatterySpec> batteries;
  std::vector<PvLinkSpec> pv_links;  // empty for an AC-coupled system
  std::optional<std::string> site_meter_id;

  // Household and history parameters, drawn from the same hash.
  double base_load_w = 0;     // always-on load
  double morning_peak_w = 0;  // extra load around 07:30 local solar time
  double evening_peak_w = 0;  // extra load around 19:00 local solar time
  double initial_soc_pct = 50;
  double age_days = 0;  // how long the system has run: sizes the lifetime registers at start

  bool IsAcCoupled() const { return inverter.ac_pv_power_rating_kw > 0; }
  bool HasSiteMeter() const { return site_meter_id.has_value(); }
  double BatteryCapacityWh() const;
  double BatteryRatedPowerW() const;
  // Nameplate PV: the PV links' sum (DC) or the AC-coupled rating.
  double PvRatedPowerW() const;
  bool operator==(const SystemSpec&) const = default;
};

// The system with this id. `rated_power_kw` (Concerto's ratedPower) replaces the drawn inverter
// rating when set and positive; everything else is the same with or without it.
SystemSpec MakeSystem(std::string_view system_id, std::optional<double> rated_power_kw,
                      const CompositionOptions& options);

// What CES reports for the system (statusName SUCCESS), so that metadata and telemetry agree.
domain::SystemMetadata ToCesMetadata(const SystemSpec& spec);

// The id of system `index` of a simulated fleet: `prefix` + a UUID-shaped string derived from
// (seed, index). Stable across machines and runs.
std::string FleetSystemId(std::int64_t seed, int index, std::string_view prefix = {});

}  // namespace pwrcell::fleet
