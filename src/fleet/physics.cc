#include "fleet/physics.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cmath>
#include <numbers>

#include "fleet/hash.h"

namespace pwrcell::fleet {
namespace {

namespace v1 = pwrcell::ces::v1;

constexpr double kSlotSeconds = 300;  // noise changes every 5 minutes, whatever the record interval
constexpr double kDegToRad = std::numbers::pi / 180.0;
// Module temperature, soiling and wiring: a clear noon gives ~85% of nameplate.
constexpr double kPvDerate = 0.9;

// Tags keep the noise streams of one system independent of each other.
enum NoiseTag : std::uint64_t {
  kCloudDayTag = 1,
  kCloudSlotTag,
  kLoadSlotTag,
  kGridVoltageTag,
  kBatteryVoltageTag,
  kPvVoltageTag,
  kReactiveTag,
  kRegisterTag,
  kTrackingTag,
};

double UnixSeconds(Timestamp t) {
  return static_cast<double>(ToUnixMillis(t)) / 1000.0;
}

std::uint64_t Slot(Timestamp t) {
  return static_cast<std::uint64_t>(std::floor(UnixSeconds(t) / kSlotSeconds));
}

double Noise(const SystemSpec& spec, NoiseTag tag, std::uint64_t number) {
  return UnitInterval(HashCombine(spec.id_hash, tag, number));
}

double Bump(double hour, double center, double width) {
  // Distance on the 24-hour circle, so an evening peak near midnight wraps correctly.
  double d = std::fabs(hour - center);
  d = std::min(d, 24.0 - d);
  return std::exp(-0.5 * (d / width) * (d / width));
}

// Splits a whole number of watts over n devices, exactly (the parts add up to the total).
std::vector<std::int32_t> SplitEvenly(std::int32_t total, std::size_t n) {
  std::vector<std::int32_t> parts(n, 0);
  if (n == 0) return parts;
  const auto count = static_cast<std::int32_t>(n);
  const std::int32_t base = total / count;
  std::int32_t remainder = total - base * count;
  const std::int32_t step = remainder >= 0 ? 1 : -1;
  for (auto& part : parts) {
    part = base;
    if (remainder != 0) {
      part += step;
      remainder -= step;
    }
  }
  return parts;
}

std::uint64_t EnergyWs(std::int32_t power_w, double seconds) {
  return static_cast<std::uint64_t>(std::llround(std::fabs(static_cast<double>(power_w)) * seconds));
}

std::int32_t ToWatts(double w) {
  return static_cast<std::int32_t>(std::lround(w));
}

float Round2(double v) {
  return static_cast<float>(std::round(v * 100.0) / 100.0);
}

}  // namespace

bool IsInverterErrorState(std::uint32_t inverter_state) {
  return inverter_state >= 0x7000 && inverter_state <= 0x7FFF;
}

double LocalSolarHours(double longitude, Timestamp t) {
  const double utc_hours = std::fmod(UnixSeconds(t) / 3600.0, 24.0);
  double solar = std::fmod(utc_hours + longitude / 15.0, 24.0);
  if (solar < 0) solar += 24.0;
  return solar;
}

double SolarElevationSine(double latitude, double longitude, Timestamp t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const auto day_of_year = static_cast<double>((day - sys_days{ymd.year() / January / 1}).count() + 1);
  const double declination = 23.44 * kDegToRad * std::sin(2.0 * std::numbers::pi * (284.0 + day_of_year) / 365.0);
  const double hour_angle = 15.0 * kDegToRad * (LocalSolarHours(longitude, t) - 12.0);
  const double lat = latitude * kDegToRad;
  return std::sin(lat) * std::sin(declination) + std::cos(lat) * std::cos(declination) * std::cos(hour_angle);
}

double AvailablePvW(const SystemSpec& spec, Timestamp t) {
  const double sine = SolarElevationSine(spec.latitude, spec.longitude, t);
  if (sine <= 0) return 0;
  // Clearness of the (solar) day: most days are clear, some overcast.
  const auto local_day =
      static_cast<std::uint64_t>(std::floor((UnixSeconds(t) + spec.longitude / 15.0 * 3600.0) / 86400.0));
  const double clearness = 0.4 + 0.6 * std::sqrt(Noise(spec, kCloudDayTag, local_day));
  // Passing clouds: the less clear the day, the deeper the dips.
  const double cloud = 1.0 - (1.0 - clearness) * (0.5 + Noise(spec, kCloudSlotTag, Slot(t)));
  return spec.PvRatedPowerW() * kPvDerate * std::pow(sine, 1.2) * std::clamp(cloud, 0.05, 1.0);
}

double LoadW(const SystemSpec& spec, Timestamp t) {
  const double hour = LocalSolarHours(spec.longitude, t);
  const double shape = spec.base_load_w + spec.morning_peak_w * Bump(hour, 7.5, 1.2) +
                       spec.evening_peak_w * Bump(hour, 19.0, 2.2) + 0.3 * spec.base_load_w * Bump(hour, 13.0, 3.0);
  return shape * (0.85 + 0.3 * Noise(spec, kLoadSlotTag, Slot(t)));
}

SystemState InitialState(const SystemSpec& spec) {
  SystemState state;
  state.soc_pct = spec.initial_soc_pct;
  const double days = spec.age_days;
  const double scale = 0.9 + 0.2 * Noise(spec, kRegisterTag, 0);
  // Typical daily energies: ~4.5 sun hours of nameplate PV, 0.7 battery cycles, 20 kWh of load.
  const double pv_daily_ws = spec.PvRatedPowerW() * 4.5 * 3600.0 * scale;
  const double cycle_ws = kBatteryModuleCapacityWh * 0.7 * 3600.0 * scale;
  const double load_daily_ws = 20000.0 * 3600.0 * scale;
  const auto ws = [](double v) { return static_cast<std::uint64_t>(std::llround(v)); };

  state.battery_imported_ws.assign(spec.batteries.size(), ws(days * cycle_ws));
  state.battery_exported_ws.assign(spec.batteries.size(), ws(days * cycle_ws * 0.92));
  for (const auto& link : spec.pv_links) {
    state.pv_exported_ws.push_back(ws(days * link.rated_power_w * 4.5 * 3600.0 * scale));
  }
  if (spec.IsAcCoupled()) state.ac_pv_exported_ws = ws(days * pv_daily_ws);
  const double battery_daily_ws = cycle_ws * static_cast<double>(spec.batteries.size());
  state.inverter_exported_ws = ws(days * ((spec.IsAcCoupled() ? 0.0 : pv_daily_ws) + battery_daily_ws * 0.92));
  state.inverter_imported_ws = ws(days * (spec.IsAcCoupled() ? battery_daily_ws : battery_daily_ws * 0.05));
  state.net_imported_ws = ws(days * load_daily_ws * 0.35);
  state.net_exported_ws = ws(days * pv_daily_ws * 0.3);
  return state;
}

PowerFlows ComputeFlows(const SystemSpec& spec, const SystemState& state, Timestamp t, Duration interval,
                        const SystemFaults& faults) {
  assert(interval.count() > 0);
  const double seconds = static_cast<double>(interval.count()) / 1000.0;
  const std::uint32_t inverter_state = faults.inverter_state.value_or(kInverterStateGridConnected);
  const bool converting = !IsInverterErrorState(inverter_state);
  const double rating = spec.inverter.rated_power_w;
  const double capacity_ws = spec.BatteryCapacityWh() * 3600.0;
  // What the battery can take or give over the whole interval without leaving 0..100 %.
  const double room_w = capacity_ws > 0 ? (100.0 - state.soc_pct) / 100.0 * capacity_ws / seconds : 0.0;
  const double stored_w = capacity_ws > 0 ? state.soc_pct / 100.0 * capacity_ws / seconds : 0.0;
  const double battery_limit_w = converting ? spec.BatteryRatedPowerW() : 0.0;

  double pv = AvailablePvW(spec, t);
  const double load = LoadW(spec, t);
  // The inverter follows the household with a small lag, so the meter shows a little residual
  // import while discharging and export while charging, as real self-supply systems do.
  const double tracking = 0.96 + 0.04 * Noise(spec, kTrackingTag, Slot(t));
  double battery = 0;  // > 0 discharge
  if (spec.IsAcCoupled()) {
    // The PV inverter is separate; the PWRcell inverter only moves battery power.
    const double surplus = pv - load;
    if (surplus >= 0) {
      battery = -std::min({surplus * tracking, battery_limit_w, rating, room_w});
    } else {
      battery = std::min({-surplus * tracking, battery_limit_w, rating, stored_w});
    }
  } else if (!converting) {
    pv = 0;  // DC PV has no way out while the inverter is down
  } else {
    const double surplus = pv - load;
    if (surplus >= 0) {
      const double charge_limit = std::min(battery_limit_w, room_w);
      double charge = std::min(surplus * tracking, charge_limit);
      // PV beyond the inverter rating must go into the battery or be clipped.
      if (pv - charge > rating) charge = std::min(pv - rating, charge_limit);
      pv = std::min(pv, rating + charge);
      battery = -charge;
    } else if (pv >= rating) {
      pv = rating;  // the inverter is already full: no room for battery output
    } else {
      battery = std::min({-surplus * tracking, battery_limit_w, stored_w, rating - pv});
    }
  }

  PowerFlows flows;
  flows.pv_w = ToWatts(pv);
  flows.load_w = ToWatts(load);
  flows.battery_w = ToWatts(battery);
  flows.inverter_w = spec.IsAcCoupled() ? flows.battery_w : flows.pv_w + flows.battery_w;
  flows.net_w = flows.load_w - flows.pv_w - flows.battery_w;
  return flows;
}

std::optional<v1::EnergyRecordSet> NextRecord(const SystemSpec& spec, SystemState& state, Timestamp t,
                                              Duration interval, const SystemFaults& faults) {
  assert(interval.count() > 0);
  assert(state.battery_imported_ws.size() == spec.batteries.size());
  assert(state.pv_exported_ws.size() == spec.pv_links.size());
  const double seconds = static_cast<double>(interval.count()) / 1000.0;
  const PowerFlows flows = ComputeFlows(spec, state, t, interval, faults);
  const std::uint32_t inverter_state = faults.inverter_state.value_or(kInverterStateGridConnected);
  const std::uint64_t slot = Slot(t);

  // Advance the state first (also while silent: the system keeps running unheard); the record
  // reports the end of the interval.
  const double capacity_ws = spec.BatteryCapacityWh() * 3600.0;
  if (capacity_ws > 0) {
    state.soc_pct = std::clamp(state.soc_pct - flows.battery_w * seconds / capacity_ws * 100.0, 0.0, 100.0);
  }
  const std::uint64_t net_import = flows.net_w > 0 ? EnergyWs(flows.net_w, seconds) : 0;
  const std::uint64_t net_export = flows.net_w < 0 ? EnergyWs(flows.net_w, seconds) : 0;
  const std::uint64_t inverter_export = flows.inverter_w > 0 ? EnergyWs(flows.inverter_w, seconds) : 0;
  const std::uint64_t inverter_import = flows.inverter_w < 0 ? EnergyWs(flows.inverter_w, seconds) : 0;
  state.net_imported_ws += net_import;
  state.net_exported_ws += net_export;
  state.inverter_imported_ws += inverter_import;
  state.inverter_exported_ws += inverter_export;

  const auto modules = SplitEvenly(flows.battery_w, spec.batteries.size());
  std::vector<std::uint64_t> module_imported(modules.size()), module_exported(modules.size());
  for (std::size_t i = 0; i < modules.size(); ++i) {
    module_exported[i] = modules[i] > 0 ? EnergyWs(modules[i], seconds) : 0;
    module_imported[i] = modules[i] < 0 ? EnergyWs(modules[i], seconds) : 0;
    state.battery_exported_ws[i] += module_exported[i];
    state.battery_imported_ws[i] += module_imported[i];
  }
  const auto links = SplitEvenly(spec.IsAcCoupled() ? 0 : flows.pv_w, spec.pv_links.size());
  std::vector<std::uint64_t> link_exported(links.size());
  for (std::size_t i = 0; i < links.size(); ++i) {
    link_exported[i] = EnergyWs(links[i], seconds);
    state.pv_exported_ws[i] += link_exported[i];
  }
  const std::uint64_t ac_pv_exported = spec.IsAcCoupled() ? EnergyWs(flows.pv_w, seconds) : 0;
  state.ac_pv_exported_ws += ac_pv_exported;

  if (faults.silent) return std::nullopt;

  v1::EnergyRecordSet set;
  set.set_inverterid(spec.inverter.rcpn);
  set.set_ishighfrequency(false);
  v1::EnergyRecord* record = set.add_energyrecord();
  record->set_currenttimestamp(static_cast<double>(ToUnixMillis(t)) / 1000.0);
  record->set_previoustimestamp(static_cast<double>(ToUnixMillis(t - interval)) / 1000.0);
  record->set_sysmode(v1::SELF_SUPPLY);
  record->set_inverterstate(inverter_state);

  if (spec.HasSiteMeter()) {
    v1::ChannelSample* net = record->add_channel();
    net->set_channel(kNetChannel);
    net->set_channeltype(v1::NET);
    net->set_deviceid(spec.inverter.rcpn);
    net->set_realpower_w(flows.net_w);
    net->set_realpower_wf(static_cast<float>(flows.net_w));
    net->set_importedenergy_ws(state.net_imported_ws);
    net->set_exportedenergy_ws(state.net_exported_ws);
    net->set_deltaimportedenergy_ws(net_import);
    net->set_deltaexportedenergy_ws(net_export);
    net->set_voltage_v(Round2(238.0 + 4.0 * Noise(spec, kGridVoltageTag, slot)));
  }

  v1::ChannelSample* inverter = record->add_channel();
  inverter->set_channel(kInverterChannel);
  inverter->set_channeltype(v1::INVERTER_OUTPUT);
  inverter->set_deviceid(spec.inverter.rcpn);
  inverter->set_devicetype(v1::INVERTER);
  inverter->set_realpower_w(flows.inverter_w);
  inverter->set_realpower_wf(static_cast<float>(flows.inverter_w));
  {
    // A little reactive power, mostly proportional to the output, either sign.
    const double r = Noise(spec, kReactiveTag, slot);
    const double magnitude = 0.02 * std::abs(flows.inverter_w) + 10.0 + 40.0 * r;
    inverter->set_reactivepower_var(static_cast<std::int32_t>(std::lround(r < 0.3 ? -magnitude : magnitude)));
  }
  inverter->set_importedenergy_ws(state.inverter_imported_ws);
  inverter->set_exportedenergy_ws(state.inverter_exported_ws);
  inverter->set_deltaimportedenergy_ws(inverter_import);
  inverter->set_deltaexportedenergy_ws(inverter_export);
  inverter->set_realpowersourcemax_w(static_cast<float>(spec.inverter.rated_power_w));
  inverter->set_realpowersinkmax_w(
      static_cast<float>(std::min(spec.inverter.rated_power_w, spec.BatteryRatedPowerW())));

  const double battery_voltage = 360.0 + 0.3 * state.soc_pct + Noise(spec, kBatteryVoltageTag, slot);
  for (std::size_t i = 0; i < spec.batteries.size(); ++i) {
    v1::ChannelSample* storage = record->add_channel();
    storage->set_channel(kFirstStorageChannel + static_cast<std::uint32_t>(i));
    storage->set_channeltype(v1::STORAGE);
    storage->set_deviceid(spec.batteries[i].rcpn);
    storage->set_devicetype(v1::BATTERY);
    storage->set_realpower_w(modules[i]);
    storage->set_realpower_wf(static_cast<float>(modules[i]));
    storage->set_soc(Round2(state.soc_pct));
    storage->set_soh(static_cast<float>(spec.batteries[i].soh_pct));
    storage->set_voltage_v(Round2(battery_voltage));
    storage->set_importedenergy_ws(state.battery_imported_ws[i]);
    storage->set_exportedenergy_ws(state.battery_exported_ws[i]);
    storage->set_deltaimportedenergy_ws(module_imported[i]);
    storage->set_deltaexportedenergy_ws(module_exported[i]);
  }

  if (spec.IsAcCoupled()) {
    // AC-coupled PV has no PV link: the inverter's CT measures it, so the inverter is the device.
    v1::ChannelSample* generation = record->add_channel();
    generation->set_channel(kAcGenerationChannel);
    generation->set_channeltype(v1::GENERATION_AC);
    generation->set_deviceid(spec.inverter.rcpn);
    generation->set_devicetype(v1::SOLAR);
    generation->set_realpower_w(flows.pv_w);
    generation->set_realpower_wf(static_cast<float>(flows.pv_w));
    generation->set_voltage_v(Round2(238.0 + 4.0 * Noise(spec, kGridVoltageTag, slot)));
    generation->set_exportedenergy_ws(state.ac_pv_exported_ws);
    generation->set_deltaexportedenergy_ws(ac_pv_exported);
  } else {
    for (std::size_t i = 0; i < spec.pv_links.size(); ++i) {
      v1::ChannelSample* generation = record->add_channel();
      generation->set_channel(kFirstGenerationChannel + static_cast<std::uint32_t>(i));
      generation->set_channeltype(v1::GENERATION);
      generation->set_deviceid(spec.pv_links[i].rcpn);
      generation->set_devicetype(v1::SOLAR);
      generation->set_realpower_w(links[i]);
      generation->set_realpower_wf(static_cast<float>(links[i]));
      // A PV link sees its string's voltage only while the panels produce.
      const double volts = links[i] > 0 ? 340.0 + 20.0 * Noise(spec, kPvVoltageTag, slot * 16 + i) : 0.0;
      generation->set_voltage_v(Round2(volts));
      generation->set_exportedenergy_ws(state.pv_exported_ws[i]);
      generation->set_deltaexportedenergy_ws(link_exported[i]);
    }
  }
  return set;
}

}  // namespace pwrcell::fleet
