// What the CES API tells about a system (contracts/ces-api.md), as plain values.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/time.h"

namespace pwrcell::domain {

// CES statusName values. Unknown strings are kept verbatim in the device record.
inline constexpr const char* kCesStatusSuccess = "SUCCESS";

struct CesInverter {
  std::string rcpn;
  std::string model;
  double rated_power_w = 0;
  // inverterSetting.acPVPowerRating in kW; nullopt when CES did not report it.
  std::optional<double> ac_pv_power_rating_kw;
  bool operator==(const CesInverter&) const = default;
};

struct CesBattery {
  std::string rcpn;
  std::string model;
  double capacity_wh = 0;
  double rated_power_w = 0;
  bool operator==(const CesBattery&) const = default;
};

struct CesPvLink {
  std::string rcpn;
  double rated_power_w = 0;
  bool operator==(const CesPvLink&) const = default;
};

// GET /systems/v1/{systemId}/metadata?inverterSetting=true
struct SystemMetadata {
  std::string system_id;
  std::string site_id;
  std::string site_name;
  std::string timezone;
  std::optional<double> latitude;
  std::optional<double> longitude;
  std::string status_name;
  std::vector<CesInverter> inverters;
  std::vector<CesBattery> batteries;
  std::vector<CesPvLink> pv_links;
  std::optional<std::string> site_meter_id;  // absent when the system has no site meter
  bool operator==(const SystemMetadata&) const = default;
};

struct CesSystemStatus {
  std::string system_id;
  std::string status_name;
  std::optional<Timestamp> last_communication_at;
  bool operator==(const CesSystemStatus&) const = default;
};

// GET /systems/v1/status?systemIds=...
struct CesStatusBatch {
  std::vector<CesSystemStatus> statuses;
  std::vector<std::string> not_found;
  bool operator==(const CesStatusBatch&) const = default;
};

}  // namespace pwrcell::domain
