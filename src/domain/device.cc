// The device record's rules for systems with several inverters: which asset and which reading
// belongs to which inverter, and which reading speaks for the system.
#include "domain/device.h"

#include <algorithm>
#include <utility>

#include "domain/remote_state.h"

namespace pwrcell::domain {
namespace {

// Where `rcpn` stands in CES order; inverters CES does not list (yet) come after all of them.
std::size_t Rank(const std::vector<std::string>& order, std::string_view rcpn) {
  auto it = std::find(order.begin(), order.end(), rcpn);
  return static_cast<std::size_t>(it - order.begin());
}

template <typename T, typename Key>
void SortByRank(std::vector<T>& items, const std::vector<std::string>& order, Key key) {
  std::stable_sort(items.begin(), items.end(),
                   [&](const T& a, const T& b) { return Rank(order, key(a)) < Rank(order, key(b)); });
}

}  // namespace

const AssetRef* DeviceRecord::FindInverter(std::string_view rcpn) const {
  if (rcpn.empty()) return nullptr;
  auto it = std::find_if(inverters.begin(), inverters.end(), [&](const AssetRef& a) { return a.remote_id == rcpn; });
  return it == inverters.end() ? nullptr : &*it;
}

std::string_view DeviceRecord::FirstInverterRcpn() const {
  return inverter_rcpns.empty() ? std::string_view() : std::string_view(inverter_rcpns.front());
}

bool DeviceRecord::SetInverterRcpns(std::vector<std::string> rcpns) {
  const DeviceRecord before = *this;
  inverter_rcpns = std::move(rcpns);
  // A reading of an inverter CES no longer lists would hold the system in its state for good.
  std::erase_if(inverter_readings, [&](const InverterReading& r) {
    return std::find(inverter_rcpns.begin(), inverter_rcpns.end(), r.rcpn) == inverter_rcpns.end();
  });
  SortByRank(inverter_readings, inverter_rcpns, [](const InverterReading& r) -> const std::string& { return r.rcpn; });
  SortByRank(inverters, inverter_rcpns, [](const AssetRef& a) -> const std::string& { return a.remote_id; });
  return !(*this == before);
}

bool DeviceRecord::SetInverter(AssetRef inverter) {
  for (auto& known : inverters) {
    if (known.remote_id == inverter.remote_id) {
      if (known == inverter) return false;
      known = std::move(inverter);
      return true;
    }
  }
  inverters.push_back(std::move(inverter));
  SortByRank(inverters, inverter_rcpns, [](const AssetRef& a) -> const std::string& { return a.remote_id; });
  return true;
}

bool DeviceRecord::RecordInverterReading(InverterReading reading) {
  for (auto& known : inverter_readings) {
    if (known.rcpn != reading.rcpn) continue;
    if (known.at > reading.at || known == reading) return false;
    known = std::move(reading);
    return true;
  }
  inverter_readings.push_back(std::move(reading));
  SortByRank(inverter_readings, inverter_rcpns, [](const InverterReading& r) -> const std::string& { return r.rcpn; });
  return true;
}

const InverterReading* DeviceRecord::SystemReading() const {
  for (const auto& reading : inverter_readings) {
    if (IsInverterErrorState(reading.state)) return &reading;
  }
  return inverter_readings.empty() ? nullptr : &inverter_readings.front();
}

std::optional<std::uint32_t> DeviceRecord::InverterState() const {
  const InverterReading* reading = SystemReading();
  return reading ? std::optional<std::uint32_t>(reading->state) : std::nullopt;
}

std::optional<int> DeviceRecord::SysMode() const {
  const InverterReading* reading = SystemReading();
  return reading ? std::optional<int>(reading->sys_mode) : std::nullopt;
}

}  // namespace pwrcell::domain
