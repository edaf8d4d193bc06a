#include "domain/telemetry_mapping.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <iterator>
#include <string_view>
#include <utility>

#include "domain/record_decoding.h"

namespace pwrcell::domain {
namespace {

using pwrcell::ces::v1::ChannelSample;
using pwrcell::ces::v1::ChannelType;
using pwrcell::ces::v1::EnergyRecord;
using pwrcell::ces::v1::EnergyRecordSet;

constexpr double kWattsPerKilowatt = 1000.0;
constexpr double kWattSecondsPerKilowattHour = 3'600'000.0;

// A float on the wire is a decimal the device meant (57.3), but its exact binary value widened to
// double is 57.29999923706055. Going through the float's shortest round-trip decimal gives Concerto
// the number the device reported instead of float noise in the last digits.
double WidenFloat(float value) {
  if (!std::isfinite(value)) return static_cast<double>(value);
  char buf[32];
  const auto printed = std::to_chars(buf, buf + sizeof buf, value);
  double widened = 0;
  std::from_chars(buf, printed.ptr, widened);
  return widened;
}

// realPower_Wf carries fractions of a watt, so it wins when present; proto3 cannot tell "not
// sent" from 0, so 0 (or a value no one can use) falls back to the integer field.
double RealPowerWatts(const ChannelSample& channel) {
  const float precise = channel.realpower_wf();
  if (std::isfinite(precise) && precise != 0.0F) return WidenFloat(precise);
  return static_cast<double>(channel.realpower_w());
}

double KilowattHours(std::uint64_t watt_seconds) {
  return static_cast<double>(watt_seconds) / kWattSecondsPerKilowattHour;
}

std::string ChannelLabel(const ChannelSample& channel) {
  const int type = static_cast<int>(channel.channeltype());
  const std::string type_name = pwrcell::ces::v1::ChannelType_IsValid(type)
                                    ? pwrcell::ces::v1::ChannelType_Name(channel.channeltype())
                                    : "type " + std::to_string(type);
  return "channel " + std::to_string(channel.channel()) + " " + type_name;
}

// The Concerto asset id of the component whose remoteId is `device_id`, or nullptr. An empty
// deviceId or an asset without an id never matches, so nothing is attributed by accident.
const std::string* FindByRemoteId(const std::vector<AssetRef>& assets, const std::string& device_id) {
  if (device_id.empty()) return nullptr;
  for (const auto& asset : assets) {
    if (asset.remote_id == device_id && !asset.asset_id.empty()) return &asset.asset_id;
  }
  return nullptr;
}

struct MetricValue {
  Metric metric;
  double value;
};

// Where a point comes from, for the details of what was not mapped: a channel, or a record's state
// codes. Spelled out only when a detail is written (rarely), not for every point.
struct Where {
  const ChannelSample* channel = nullptr;  // nullptr: the record's INVERTER_STATE and SYSTEM_MODE
  Timestamp timestamp;
  std::string Text() const {
    return channel != nullptr ? ChannelLabel(*channel) : "record " + FormatIso8601(timestamp);
  }
};

// The Concerto asset id of the INVERTER whose remoteId is `rcpn`, or nullptr.
const std::string* InverterAsset(const DeviceRecord& device, const std::string& rcpn) {
  const AssetRef* inverter = device.FindInverter(rcpn);
  return inverter != nullptr && !inverter->asset_id.empty() ? &inverter->asset_id : nullptr;
}

// True for the records of a system's second, third ... inverter (CES order). The SYSTEM asset
// stands for the first inverter only: two inverters' points at one timestamp would collide on it
// (Concerto keeps one point per asset, metric and timestamp). A record of an inverter the device
// does not list (a hand-written device for `telemetry map`) counts as the first.
bool IsOtherInverter(const DeviceRecord& device, const std::string& rcpn) {
  const auto& rcpns = device.inverter_rcpns;
  auto it = std::find(rcpns.begin(), rcpns.end(), rcpn);
  return it != rcpns.end() && it != rcpns.begin();
}

class Mapper {
 public:
  Mapper(const DeviceRecord& device, const std::string& inverter_id, MappingResult& result)
      : device_(device),
        inverter_id_(inverter_id),
        inverter_asset_(InverterAsset(device, inverter_id)),
        other_inverter_(IsOtherInverter(device, inverter_id)),
        result_(result) {}

  void MapRecord(const EnergyRecord& record, Timestamp timestamp) {
    for (const auto& channel : record.channel()) MapChannel(channel, timestamp);
    const Where where{nullptr, timestamp};
    const std::initializer_list<MetricValue> states{
        {Metric::kInverterState, static_cast<double>(record.inverterstate())},
        {Metric::kSystemMode, static_cast<double>(static_cast<int>(record.sysmode()))}};
    // In a system with several inverters each INVERTER asset also gets its own inverter's state,
    // so that none is hidden behind the SYSTEM's (which is the first inverter's).
    if (device_.inverter_rcpns.size() > 1 && inverter_asset_ != nullptr)
      Emit(*inverter_asset_, timestamp, where, states);
    if (other_inverter_) {
      if (inverter_asset_ == nullptr) {
        ++result_.unmapped_system_records;
        result_.details.push_back(where.Text() + ": no INVERTER asset for inverter " + inverter_id_ +
                                  " for INVERTER_STATE, SYSTEM_MODE");
      }
      return;
    }
    if (device_.concerto_asset_id.empty()) {
      ++result_.unmapped_system_records;
      result_.details.push_back(where.Text() + ": no SYSTEM asset id for INVERTER_STATE, SYSTEM_MODE");
      return;
    }
    Emit(device_.concerto_asset_id, timestamp, where, states);
  }

 private:
  void MapChannel(const ChannelSample& channel, Timestamp timestamp) {
    switch (channel.channeltype()) {
      case pwrcell::ces::v1::NET:
        if (!device_.site_meter || device_.site_meter->asset_id.empty()) {
          return Unmapped(channel, "no site meter asset");
        }
        return Emit(device_.site_meter->asset_id, timestamp, Where{&channel, timestamp},
                    {{Metric::kRealPower, RealPowerWatts(channel) / kWattsPerKilowatt},
                     {Metric::kEnergyImported, KilowattHours(channel.importedenergy_ws())},
                     {Metric::kEnergyExported, KilowattHours(channel.exportedenergy_ws())},
                     {Metric::kVoltage, WidenFloat(channel.voltage_v())}});
      case pwrcell::ces::v1::INVERTER_OUTPUT: {
        // The INVERTER asset of the inverter that sent the record.
        const std::string* asset = inverter_asset_;
        if (asset == nullptr && other_inverter_) {
          return Unmapped(channel, "no INVERTER asset for inverter " + inverter_id_);
        }
        if (asset == nullptr && !device_.concerto_asset_id.empty()) {
          // Before commissioning there is no INVERTER asset; the SYSTEM stands for the (first) inverter.
          asset = &device_.concerto_asset_id;
        }
        if (asset == nullptr) return Unmapped(channel, "no inverter asset and no SYSTEM asset id");
        return Emit(*asset, timestamp, Where{&channel, timestamp},
                    {{Metric::kRealPower, RealPowerWatts(channel) / kWattsPerKilowatt},
                     {Metric::kReactivePower, static_cast<double>(channel.reactivepower_var()) / kWattsPerKilowatt},
                     {Metric::kEnergyImported, KilowattHours(channel.importedenergy_ws())},
                     {Metric::kEnergyExported, KilowattHours(channel.exportedenergy_ws())},
                     {Metric::kSourceMaxPower, WidenFloat(channel.realpowersourcemax_w()) / kWattsPerKilowatt},
                     {Metric::kSinkMaxPower, WidenFloat(channel.realpowersinkmax_w()) / kWattsPerKilowatt}});
      }
      case pwrcell::ces::v1::STORAGE:
      case pwrcell::ces::v1::STORAGE_AC: {
        const std::string* battery = FindByRemoteId(device_.batteries, channel.deviceid());
        if (battery == nullptr) return Unmapped(channel, "no battery asset with remoteId '" + channel.deviceid() + "'");
        return Emit(*battery, timestamp, Where{&channel, timestamp},
                    {{Metric::kRealPower, RealPowerWatts(channel) / kWattsPerKilowatt},
                     {Metric::kStateOfCharge, WidenFloat(channel.soc())},
                     {Metric::kStateOfHealth, WidenFloat(channel.soh())},
                     {Metric::kVoltage, WidenFloat(channel.voltage_v())},
                     {Metric::kEnergyImported, KilowattHours(channel.importedenergy_ws())},
                     {Metric::kEnergyExported, KilowattHours(channel.exportedenergy_ws())}});
      }
      case pwrcell::ces::v1::GENERATION:
      case pwrcell::ces::v1::GENERATION_AC: {
        const std::string* pv = FindByRemoteId(device_.photovoltaics, channel.deviceid());
        if (pv == nullptr) return Unmapped(channel, "no photovoltaic asset with remoteId '" + channel.deviceid() + "'");
        return Emit(*pv, timestamp, Where{&channel, timestamp},
                    {{Metric::kRealPower, RealPowerWatts(channel) / kWattsPerKilowatt},
                     {Metric::kVoltage, WidenFloat(channel.voltage_v())},
                     {Metric::kEnergyExported, KilowattHours(channel.exportedenergy_ws())}});
      }
      case pwrcell::ces::v1::CONSUMPTION:
        return Unmapped(channel, "Concerto has no asset for consumption");
      default:
        // UNKNOWN_CHANNEL and values newer than our copy of the contract (proto3 keeps them).
        return Unmapped(channel, "channel type not mapped");
    }
  }

  void Unmapped(const ChannelSample& channel, const std::string& why) {
    ++result_.unmapped_channels;
    result_.details.push_back(ChannelLabel(channel) + ": " + why);
  }

  void Emit(const std::string& asset_id, Timestamp timestamp, const Where& where,
            std::initializer_list<MetricValue> values) {
    // The metrics already given for (asset, timestamp): a handful of entries per record set.
    std::uint32_t* given = nullptr;
    for (auto& entry : emitted_) {
      if (entry.timestamp == timestamp && entry.asset_id == asset_id) {
        given = &entry.metrics;
        break;
      }
    }
    if (given == nullptr) given = &emitted_.emplace_back(Emitted{asset_id, timestamp, 0}).metrics;
    int duplicates = 0;
    for (const auto& [metric, value] : values) {
      if (!std::isfinite(value)) {
        ++result_.invalid_values;
        result_.details.push_back(where.Text() + ": " + std::string(MetricName(metric)) + " is not finite");
        continue;
      }
      const std::uint32_t bit = 1U << static_cast<unsigned>(metric);
      if ((*given & bit) != 0) {
        ++duplicates;
        continue;
      }
      *given |= bit;
      result_.points.push_back(TelemetryPoint{asset_id, metric, timestamp, value});
    }
    if (duplicates > 0) {
      result_.duplicate_points += duplicates;
      result_.details.push_back(where.Text() + ": " + std::to_string(duplicates) + " point(s) already given, dropped");
    }
  }

  struct Emitted {
    std::string_view asset_id;  // into the device record, which outlives the mapper
    Timestamp timestamp;
    std::uint32_t metrics;  // bit i: Metric i given
  };
  static_assert(static_cast<unsigned>(Metric::kSystemMode) < 32, "a metric per bit of Emitted::metrics");

  const DeviceRecord& device_;
  const std::string& inverter_id_;
  const std::string* inverter_asset_;  // nullptr: no INVERTER asset with remoteId inverter_id_
  bool other_inverter_;
  MappingResult& result_;
  std::vector<Emitted> emitted_;
};

}  // namespace

MappingResult MapRecordSet(const EnergyRecordSet& set, const DeviceRecord& device) {
  MappingResult result;
  std::size_t channels = 0;
  for (const auto& record : set.energyrecord()) channels += static_cast<std::size_t>(record.channel_size());
  result.points.reserve(channels * 6 + static_cast<std::size_t>(set.energyrecord_size()) * 4);
  Mapper mapper(device, set.inverterid(), result);
  for (const auto& record : set.energyrecord()) {
    const double seconds = record.currenttimestamp();
    if (!IsUsableRecordTimestamp(seconds)) {
      ++result.skipped_records;
      result.details.push_back("record with currentTimestamp " + std::to_string(seconds) + ": not a usable time");
      continue;
    }
    const Timestamp timestamp = FromUnixSeconds(seconds);
    mapper.MapRecord(record, timestamp);
    if (!result.newest_timestamp || timestamp >= *result.newest_timestamp) {
      result.newest_timestamp = timestamp;
      result.inverter_state = record.inverterstate();
      result.sys_mode = static_cast<int>(record.sysmode());
    }
  }
  return result;
}

std::vector<std::vector<TelemetryPoint>> SplitIntoBatches(std::vector<TelemetryPoint> points, std::size_t max_batch) {
  assert(max_batch > 0 && "a batch must hold at least one point");
  if (max_batch == 0) max_batch = 1;  // never loop forever in a release build
  std::vector<std::vector<TelemetryPoint>> batches;
  batches.reserve((points.size() + max_batch - 1) / max_batch);
  for (std::size_t begin = 0, end = 0; begin < points.size(); begin = end) {
    end = begin + std::min(max_batch, points.size() - begin);
    batches.emplace_back(std::make_move_iterator(points.begin() + static_cast<std::ptrdiff_t>(begin)),
                         std::make_move_iterator(points.begin() + static_cast<std::ptrdiff_t>(end)));
  }
  return batches;
}

}  // namespace pwrcell::domain
