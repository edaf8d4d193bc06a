#include "sim/fleet/fleet.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

namespace pwrcell::fleetsim {
namespace {

// The record of a system's second inverter for the interval ending at `t`: standing by (no
// batteries or PV links of its own), GRID_CONNECTED unless a fault says otherwise.
pwrcell::ces::v1::EnergyRecordSet SecondInverterRecord(const std::string& rcpn, double rated_power_w,
                                                       std::optional<std::uint32_t> inverter_state, Timestamp t,
                                                       Duration interval) {
  namespace v1 = pwrcell::ces::v1;
  v1::EnergyRecordSet set;
  set.set_inverterid(rcpn);
  set.set_ishighfrequency(false);
  v1::EnergyRecord* record = set.add_energyrecord();
  record->set_currenttimestamp(static_cast<double>(ToUnixMillis(t)) / 1000.0);
  record->set_previoustimestamp(static_cast<double>(ToUnixMillis(t - interval)) / 1000.0);
  record->set_sysmode(v1::SELF_SUPPLY);
  record->set_inverterstate(inverter_state.value_or(fleet::kInverterStateGridConnected));
  v1::ChannelSample* output = record->add_channel();
  output->set_channel(fleet::kInverterChannel);
  output->set_channeltype(v1::INVERTER_OUTPUT);
  output->set_deviceid(rcpn);
  output->set_devicetype(v1::INVERTER);
  output->set_realpower_w(0);
  output->set_realpowersourcemax_w(static_cast<float>(rated_power_w));
  output->set_realpowersinkmax_w(0);
  return set;
}

// Whole numbers print as integers ("ratedPowerW": 7600), as in the contract's example.
nlohmann::ordered_json Number(double value) {
  if (std::floor(value) == value && std::fabs(value) < 9e15) return static_cast<std::int64_t>(value);
  return value;
}

}  // namespace

Result<Fleet> Fleet::Build(const Scenario& scenario) {
  Fleet fleet(scenario);
  const fleet::CompositionOptions options{.ac_coupled_fraction = scenario.ac_coupled_fraction,
                                          .site_meter_fraction = scenario.site_meter_fraction};
  const auto n = static_cast<std::size_t>(scenario.systems);
  fleet.specs_.reserve(n);
  fleet.states_.reserve(n);
  std::unordered_map<std::string, std::size_t> owner;
  for (std::size_t i = 0; i < n; ++i) {
    fleet.specs_.push_back(fleet::MakeSystem(scenario.system_ids[i], std::nullopt, options));
    const fleet::SystemSpec& spec = fleet.specs_.back();
    fleet.states_.push_back(fleet::InitialState(spec));
    std::vector<const std::string*> rcpns{&spec.inverter.rcpn};
    for (const auto& b : spec.batteries) rcpns.push_back(&b.rcpn);
    for (const auto& link : spec.pv_links) rcpns.push_back(&link.rcpn);
    for (const std::string* rcpn : rcpns) {
      const auto [it, inserted] = owner.emplace(*rcpn, i);
      if (!inserted) {
        return InvalidArgumentError("RCP number " + *rcpn + " occurs in systems " + std::to_string(it->second) +
                                    " and " + std::to_string(i) + "; choose another seed or id_prefix");
      }
    }
  }
  fleet.second_.assign(n, std::nullopt);
  for (const Fault& fault : scenario.faults) {
    if (!FaultAddsInverter(fault.kind) || !fault.system_index) continue;
    const auto i = static_cast<std::size_t>(*fault.system_index);
    if (fleet.second_[i]) continue;  // one second inverter per system, as ces-sim adds one
    const fleet::SystemSpec& spec = fleet.specs_[i];
    const std::string rcpn = NextRcpn(spec.inverter.rcpn);
    const auto [it, inserted] = owner.emplace(rcpn, i);
    if (rcpn.empty() || !inserted) {
      return InvalidArgumentError("the second inverter of system " + std::to_string(i) + " (RCP number " + rcpn +
                                  ") collides with a device of system " + std::to_string(it->second) +
                                  "; choose another seed or id_prefix");
    }
    fleet.second_[i] = SecondInverter{rcpn, spec.inverter.rated_power_w, false, std::nullopt};
  }
  fleet.faults_.assign(n, fleet::SystemFaults{});
  fleet.fault_order_.resize(scenario.faults.size());
  std::iota(fleet.fault_order_.begin(), fleet.fault_order_.end(), 0);
  std::stable_sort(fleet.fault_order_.begin(), fleet.fault_order_.end(),
                   [&](std::size_t a, std::size_t b) { return scenario.faults[a].at_s < scenario.faults[b].at_s; });
  return fleet;
}

void Fleet::ApplyFaultsUpTo(double offset_s) {
  while (next_fault_ < fault_order_.size() && scenario_.faults[fault_order_[next_fault_]].at_s <= offset_s) {
    const Fault& fault = scenario_.faults[fault_order_[next_fault_++]];
    if (!fault.system_index) continue;
    const auto index = static_cast<std::size_t>(*fault.system_index);
    fleet::SystemFaults& target = faults_[index];
    std::optional<SecondInverter>& second = second_[index];
    if (fault.inverter.value_or(0) == 1) {  // the scenario guarantees the system has a second inverter
      if (second && fault.kind == FaultKind::kInverterError) second->inverter_state = fault.inverter_state;
      if (second && fault.kind == FaultKind::kInverterOk) second->inverter_state.reset();
      continue;
    }
    switch (fault.kind) {
      case FaultKind::kSilent:
        target.silent = true;
        break;
      case FaultKind::kResume:
        target.silent = false;
        break;
      case FaultKind::kInverterError:
        target.inverter_state = fault.inverter_state;
        break;
      case FaultKind::kInverterOk:
        target.inverter_state.reset();
        break;
      case FaultKind::kMixedRatings:
      case FaultKind::kSecondInverter:
        if (second) second->active = true;  // CES lists it from now on (ces-sim); it sends records
        break;
      case FaultKind::kCesStatus:
      case FaultKind::kCes5xx:
      case FaultKind::kCes429:
        break;  // CES-side: the CES simulator applies these on its clock
    }
  }
}

std::vector<OutRecord> Fleet::Tick(Timestamp t, std::size_t* silent) {
  std::vector<OutRecord> out;
  out.reserve(specs_.size());
  std::size_t unheard = 0;
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    auto record = fleet::NextRecord(specs_[i], states_[i], t, scenario_.interval, faults_[i]);
    if (!record) {
      ++unheard;
      continue;
    }
    out.push_back(OutRecord{specs_[i].system_id, record->SerializeAsString()});
    if (const auto& second = second_[i]; second && second->active) {
      out.push_back(OutRecord{specs_[i].system_id, SecondInverterRecord(second->rcpn, second->rated_power_w,
                                                                        second->inverter_state, t, scenario_.interval)
                                                       .SerializeAsString()});
    }
  }
  if (silent) *silent = unheard;
  return out;
}

nlohmann::ordered_json CesMetadataJson(const domain::SystemMetadata& metadata) {
  nlohmann::ordered_json inverters = nlohmann::ordered_json::array();
  for (const auto& inverter : metadata.inverters) {
    nlohmann::ordered_json entry{
        {"rcpn", inverter.rcpn}, {"model", inverter.model}, {"ratedPowerW", Number(inverter.rated_power_w)}};
    // The contract shows the rating as a float ("acPVPowerRating": 0.0): keep it a double.
    entry["inverterSetting"] = {{"acPVPowerRating", inverter.ac_pv_power_rating_kw.value_or(0.0)}};
    inverters.push_back(std::move(entry));
  }
  nlohmann::ordered_json batteries = nlohmann::ordered_json::array();
  for (const auto& battery : metadata.batteries) {
    batteries.push_back({{"rcpn", battery.rcpn},
                         {"model", battery.model},
                         {"capacityWh", Number(battery.capacity_wh)},
                         {"ratedPowerW", Number(battery.rated_power_w)}});
  }
  nlohmann::ordered_json pv_links = nlohmann::ordered_json::array();
  for (const auto& link : metadata.pv_links) {
    pv_links.push_back({{"rcpn", link.rcpn}, {"ratedPowerW", Number(link.rated_power_w)}});
  }
  nlohmann::ordered_json json{{"systemId", metadata.system_id},
                              {"siteId", metadata.site_id},
                              {"siteName", metadata.site_name},
                              {"timezone", metadata.timezone}};
  if (metadata.latitude) json["latitude"] = *metadata.latitude;
  if (metadata.longitude) json["longitude"] = *metadata.longitude;
  json["statusName"] = metadata.status_name;
  json["inverters"] = std::move(inverters);
  json["batteries"] = std::move(batteries);
  json["pvLinks"] = std::move(pv_links);
  if (metadata.site_meter_id) json["siteMeter"] = {{"id", *metadata.site_meter_id}};
  return json;
}

nlohmann::ordered_json FleetJson(const Fleet& fleet) {
  const Scenario& scenario = fleet.scenario();
  nlohmann::ordered_json systems = nlohmann::ordered_json::array();
  for (const auto& spec : fleet.systems()) systems.push_back(CesMetadataJson(fleet::ToCesMetadata(spec)));
  nlohmann::ordered_json faults = nlohmann::ordered_json::array();
  for (const Fault& fault : scenario.faults) {
    nlohmann::ordered_json entry{{"at_s", Number(fault.at_s)}, {"kind", FaultKindName(fault.kind)}};
    if (fault.system_index) entry["system"] = *fault.system_index;
    if (fault.system_id) entry["system_id"] = *fault.system_id;
    if (fault.inverter_state) entry["inverter_state"] = *fault.inverter_state;
    if (fault.inverter) entry["inverter"] = *fault.inverter;
    if (fault.status) entry["status"] = *fault.status;
    if (fault.duration_s) entry["duration_s"] = Number(*fault.duration_s);
    faults.push_back(std::move(entry));
  }
  nlohmann::ordered_json json{
      {"scenario", scenario.name},
      {"seed", scenario.seed},
      {"start", FormatIso8601(scenario.start)},
      {"interval_s", std::chrono::duration_cast<std::chrono::seconds>(scenario.interval).count()},
      {"speed", Number(scenario.speed)}};
  if (scenario.duration_s) json["duration_s"] = Number(*scenario.duration_s);
  json["systems"] = std::move(systems);
  json["faults"] = std::move(faults);
  return json;
}

}  // namespace pwrcell::fleetsim
