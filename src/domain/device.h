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

// What one inverter's newest record said (SPEC section 3.1: the telemetry processor stores
// inverter_state and sys_mode). Kept per inverter: in a system with several, one inverter's
// GRID_CONNECTED must not overwrite another's error state (SPEC section 4, rule 3).
struct InverterReading {
  std::string rcpn;         // the record set's inverterId
  std::uint32_t state = 0;  // inverterState
  int sys_mode = 0;         // sysMode
  Timestamp at;             // the record's currentTimestamp: an older record does not replace it
  bool operator==(const InverterReading&) const = default;
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
  // The SYSTEM's INVERTER children, one per inverter (SPEC section 6): those whose remoteId is one
  // of inverter_rcpns in that order, then any others. Empty before commissioning.
  std::vector<AssetRef> inverters;
  std::vector<AssetRef> batteries;
  std::vector<AssetRef> photovoltaics;
  std::optional<AssetRef> site_meter;

  // What CES says about how the system is built (written by the metadata processor).
  // Every inverter's RCP number, in CES order; how telemetry is matched (the records of each of
  // them belong to this system). The first is the one batteries and PV links hang under. Empty
  // until metadata arrives.
  std::vector<std::string> inverter_rcpns;
  Coupling coupling = Coupling::kUnknown;
  std::optional<SystemMetadata> metadata;
  std::optional<Timestamp> metadata_fetched_at;

  Commissioning commissioning;

  // Liveness (telemetry processor, CES state processor).
  std::optional<Timestamp> last_heard_at;  // telemetry time; never moves backwards
  // One per inverter heard from, in the order of inverter_rcpns (others after them). See
  // InverterState() for the system's.
  std::vector<InverterReading> inverter_readings;
  std::optional<std::string> system_status;  // CES statusName
  std::optional<Timestamp> system_status_at;
  // remote_state is the last value Concerto accepted for the system (SPEC section 2): written only
  // after updateRemoteState succeeded for its SYSTEM asset and its components; nullopt = never.
  std::optional<RemoteState> remote_state;
  // The rule's latest evaluation (domain/remote_state.h) and its cause: what the adapter wants
  // Concerto to show. While it differs from remote_state an update is pending.
  std::optional<RemoteState> evaluated_state;
  std::string remote_state_reason;              // the current cause, for operators
  std::string remote_state_cause;               // a stable key of the cause (a change of it alone is not sent)
  std::optional<Timestamp> remote_state_since;  // when the current cause was first seen

  std::optional<Timestamp> registered_at;
  std::optional<Timestamp> updated_at;

  // Optimistic concurrency: 0 = not yet stored; the store bumps it on every write.
  std::int64_t version = 0;

  bool operator==(const DeviceRecord&) const = default;

  // Raise last_heard_at to `heard` unless it is already later. Returns true when it moved.
  bool RaiseLastHeard(Timestamp heard);

  // The INVERTER asset whose remoteId is `rcpn`, or nullptr.
  const AssetRef* FindInverter(std::string_view rcpn) const;
  // The first inverter's RCP number (CES order), or "" before metadata.
  std::string_view FirstInverterRcpn() const;
  // Sets inverter_rcpns (the metadata processor), orders `inverters` and `inverter_readings` by
  // it and drops the readings of inverters CES no longer lists. Returns true when anything changed.
  bool SetInverterRcpns(std::vector<std::string> rcpns);
  // Adds the INVERTER asset, or replaces the one with its remoteId; keeps CES order. Returns true
  // when anything changed.
  bool SetInverter(AssetRef inverter);
  // Keeps `reading` as its inverter's, unless that inverter's stored reading is newer (a record
  // delivered late). Returns true when the record changed.
  bool RecordInverterReading(InverterReading reading);
  // The reading that speaks for the system: the first inverter (CES order) in an error state
  // (0x7000..0x7FFF), else the first inverter heard from; nullptr before any record. So a system
  // is in error while any of its inverters says so, whichever of them reported last.
  const InverterReading* SystemReading() const;
  // SystemReading()'s state and mode: what the remote_state rule and the operators see.
  std::optional<std::uint32_t> InverterState() const;
  std::optional<int> SysMode() const;
};

}  // namespace pwrcell::domain
