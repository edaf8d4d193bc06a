// What the adapter reads from and writes to Concerto (contracts/concerto.graphql), as plain values.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"

namespace pwrcell::domain {

enum class AssetType { kSystem, kInverter, kBattery, kPhotovoltaic, kSiteMeter };
enum class RemoteState { kOnline, kOffline, kError };
enum class Metric {
  kRealPower,
  kReactivePower,
  kStateOfCharge,
  kStateOfHealth,
  kVoltage,
  kEnergyImported,
  kEnergyExported,
  kSourceMaxPower,
  kSinkMaxPower,
  kInverterState,
  kSystemMode,
};

// GraphQL enum spellings ("SITE_METER", "ONLINE", "REAL_POWER"); Parse* return nullopt when unknown.
std::string_view AssetTypeName(AssetType type);
std::optional<AssetType> ParseAssetType(std::string_view name);
std::string_view RemoteStateName(RemoteState state);
std::optional<RemoteState> ParseRemoteState(std::string_view name);
std::string_view MetricName(Metric metric);
std::optional<Metric> ParseMetric(std::string_view name);

// An asset as allAssets / assetByRemoteId return it. Children are listed by id, type and remoteId.
struct AssetChild {
  std::string id;
  std::string remote_id;
  AssetType asset_type = AssetType::kSystem;
  std::vector<AssetChild> children;  // the inverter's batteries and photovoltaics
  bool operator==(const AssetChild&) const = default;
};

struct ConcertoSite {
  std::string id;
  std::string remote_id;
  std::string name;
  std::string timezone;
  std::optional<double> latitude;
  std::optional<double> longitude;
  std::optional<RemoteState> remote_state;
  bool operator==(const ConcertoSite&) const = default;
};

struct ConcertoAsset {
  std::string id;
  std::string remote_id;
  std::string name;
  AssetType asset_type = AssetType::kSystem;
  std::optional<std::string> adapter_name;  // adapterConfiguration.name; nullopt when no adapter serves it
  bool simulated = false;
  std::optional<RemoteState> remote_state;
  std::optional<double> rated_power_kw;
  std::optional<double> energy_capacity_kwh;
  std::optional<bool> ac_coupled;
  std::optional<ConcertoSite> site;  // id, remoteId and name at least
  std::optional<std::string> parent_id;
  std::vector<AssetChild> children;
  bool operator==(const ConcertoAsset&) const = default;
};

struct CreateSiteRequest {
  std::string remote_id;
  std::string name;
  std::string timezone;
  std::optional<double> latitude;
  std::optional<double> longitude;
  bool operator==(const CreateSiteRequest&) const = default;
};

struct CreateAssetRequest {
  std::string remote_id;
  std::string name;
  AssetType asset_type = AssetType::kInverter;
  std::string adapter_name;
  std::optional<std::string> site_id;
  std::optional<std::string> parent_id;
  bool simulated = false;
  std::optional<double> rated_power_kw;
  std::optional<double> energy_capacity_kwh;
  std::optional<bool> ac_coupled;
  bool operator==(const CreateAssetRequest&) const = default;
};

struct UpdateAssetRequest {
  std::string id;
  std::optional<std::string> site_id;
  std::optional<double> rated_power_kw;
  std::optional<double> energy_capacity_kwh;
  std::optional<bool> ac_coupled;
  bool operator==(const UpdateAssetRequest&) const = default;
};

struct RemoteStateUpdate {
  std::string id;  // asset id or site id
  RemoteState state = RemoteState::kOffline;
  std::string reason;
  bool operator==(const RemoteStateUpdate&) const = default;
};

// One Concerto telemetry point: (asset, metric, timestamp) is its identity.
struct TelemetryPoint {
  std::string asset_id;
  Metric metric = Metric::kRealPower;
  Timestamp timestamp;
  double value = 0;
  bool operator==(const TelemetryPoint&) const = default;
};

struct IngestRejection {
  int index = 0;
  std::string message;
  bool operator==(const IngestRejection&) const = default;
};

struct IngestResult {
  int accepted = 0;
  int duplicates = 0;
  std::vector<IngestRejection> rejected;
  bool operator==(const IngestResult&) const = default;
};

// Concerto's limits (contracts/concerto-api.md).
inline constexpr std::size_t kMaxPointsPerIngest = 500;
inline constexpr int kMaxAssetsPerPage = 500;

}  // namespace pwrcell::domain
