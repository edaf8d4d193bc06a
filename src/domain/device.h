// The device record (SPEC section 2): one per enrolled system, keyed by remote_id
// (= Concerto SYSTEM remoteId = CES systemId). Plain value type, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"
#include "domain/ces_types.h"
#include "domain/concerto_types.h"

namespace pwrcell::domain {

enum class Coupling { kUnknown, kAc, kDc };
enum class CommissioningState { kNotRequested, kPending, kDone, kFailed };

std::string_view CouplingName(Coupling coupling);  // "UNKNOWN" | "AC" | "DC"
std::optional<Coupling> ParseCoupling(std::string_view name);
std::string_view CommissioningStateName(CommissioningState state);  // "NOT_REQUESTED" | ...
std::optional<CommissioningState> ParseCommissioningState(std::string_view name);

// A Concerto asset the device knows about: its Concerto id and its remoteId.
struct AssetRef {
  std::string asset_id;
  std::string remote_id;
  bool operator==(const AssetRef&) const = default;
};

// The Concerto site a system sits on.
struct SiteRef {
  std::string site_id;
  std::string remote_id;
  std::string name;
  bool operator==(const SiteRef&) const = default;
};

struct Commissioning {
  CommissioningState state = CommissioningState::kNotRequested;
  std::string reason;  // last error or progress note; empty when there is nothing to say
  bool operator==(const Commissioning&) const = default;
};

struct DeviceRecord {
  // Identity and what Concerto says (written by the registrar).
  std::string remote_id;
  std::string concerto_asset_id;
  std::string name;
  bool is_simulated = false;
  std::optional<double> rated_power_kw;
  std::optional<SiteRef> site;
  std::optional<AssetRef> inverter;
  std::vector<AssetRef> batteries;
  std::vector<AssetRef> photovoltaics;
  std::optional<AssetRef> site_meter;

  // What CES says about how the system is built (written by the metadata processor).
  std::string inverter_rcpn;  // how telemetry is matched; empty until metadata arrives
  Coupling coupling = Coupling::kUnknown;
  std::optional<SystemMetadata> metadata;
  std::optional<Timestamp> metadata_fetched_at;

  Commissioning commissioning;

  // Liveness (telemetry processor, CES state processor).
  std::optional<Timestamp> last_heard_at;  // telemetry time; never moves backwards
  std::optional<std::uint32_t> inverter_state;
  std::optional<int> sys_mode;
  std::optional<std::string> system_status;  // CES statusName
  std::optional<Timestamp> system_status_at;
  std::optional<RemoteState> remote_state;  // last value sent to Concerto; nullopt = never sent
  std::string remote_state_reason;

  std::optional<Timestamp> registered_at;
  std::optional<Timestamp> updated_at;

  // Optimistic concurrency: 0 = not yet stored; the store bumps it on every write.
  std::int64_t version = 0;

  bool operator==(const DeviceRecord&) const = default;

  // Raise last_heard_at to `heard` unless it is already later. Returns true when it moved.
  bool RaiseLastHeard(Timestamp heard);
};

}  // namespace pwrcell::domain
