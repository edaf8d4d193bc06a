// Enum <-> name tables for the domain's value types (GraphQL / SPEC spellings).
#include <array>
#include <utility>

#include "domain/concerto_types.h"
#include "domain/device.h"

namespace pwrcell::domain {
namespace {

template <typename E, std::size_t N>
std::string_view NameOf(const std::array<std::pair<E, std::string_view>, N>& table, E value) {
  for (const auto& [e, name] : table) {
    if (e == value) return name;
  }
  return "UNKNOWN";
}

template <typename E, std::size_t N>
std::optional<E> ParseName(const std::array<std::pair<E, std::string_view>, N>& table, std::string_view name) {
  for (const auto& [e, n] : table) {
    if (n == name) return e;
  }
  return std::nullopt;
}

constexpr std::array<std::pair<AssetType, std::string_view>, 5> kAssetTypes{{
    {AssetType::kSystem, "SYSTEM"},
    {AssetType::kInverter, "INVERTER"},
    {AssetType::kBattery, "BATTERY"},
    {AssetType::kPhotovoltaic, "PHOTOVOLTAIC"},
    {AssetType::kSiteMeter, "SITE_METER"},
}};

constexpr std::array<std::pair<RemoteState, std::string_view>, 3> kRemoteStates{{
    {RemoteState::kOnline, "ONLINE"},
    {RemoteState::kOffline, "OFFLINE"},
    {RemoteState::kError, "ERROR"},
}};

constexpr std::array<std::pair<Metric, std::string_view>, 11> kMetrics{{
    {Metric::kRealPower, "REAL_POWER"},
    {Metric::kReactivePower, "REACTIVE_POWER"},
    {Metric::kStateOfCharge, "STATE_OF_CHARGE"},
    {Metric::kStateOfHealth, "STATE_OF_HEALTH"},
    {Metric::kVoltage, "VOLTAGE"},
    {Metric::kEnergyImported, "ENERGY_IMPORTED"},
    {Metric::kEnergyExported, "ENERGY_EXPORTED"},
    {Metric::kSourceMaxPower, "SOURCE_MAX_POWER"},
    {Metric::kSinkMaxPower, "SINK_MAX_POWER"},
    {Metric::kInverterState, "INVERTER_STATE"},
    {Metric::kSystemMode, "SYSTEM_MODE"},
}};

constexpr std::array<std::pair<Coupling, std::string_view>, 3> kCouplings{{
    {Coupling::kUnknown, "UNKNOWN"},
    {Coupling::kAc, "AC"},
    {Coupling::kDc, "DC"},
}};

constexpr std::array<std::pair<CommissioningState, std::string_view>, 4> kCommissioningStates{{
    {CommissioningState::kNotRequested, "NOT_REQUESTED"},
    {CommissioningState::kPending, "PENDING"},
    {CommissioningState::kDone, "DONE"},
    {CommissioningState::kFailed, "FAILED"},
}};

}  // namespace

std::string_view AssetTypeName(AssetType type) {
  return NameOf(kAssetTypes, type);
}
std::optional<AssetType> ParseAssetType(std::string_view name) {
  return ParseName(kAssetTypes, name);
}
std::string_view RemoteStateName(RemoteState state) {
  return NameOf(kRemoteStates, state);
}
std::optional<RemoteState> ParseRemoteState(std::string_view name) {
  return ParseName(kRemoteStates, name);
}
std::string_view MetricName(Metric metric) {
  return NameOf(kMetrics, metric);
}
std::optional<Metric> ParseMetric(std::string_view name) {
  return ParseName(kMetrics, name);
}
std::string_view CouplingName(Coupling coupling) {
  return NameOf(kCouplings, coupling);
}
std::optional<Coupling> ParseCoupling(std::string_view name) {
  return ParseName(kCouplings, name);
}
std::string_view CommissioningStateName(CommissioningState state) {
  return NameOf(kCommissioningStates, state);
}
std::optional<CommissioningState> ParseCommissioningState(std::string_view name) {
  return ParseName(kCommissioningStates, name);
}

bool DeviceRecord::RaiseLastHeard(Timestamp heard) {
  if (last_heard_at && *last_heard_at >= heard) return false;
  last_heard_at = heard;
  return true;
}

}  // namespace pwrcell::domain
