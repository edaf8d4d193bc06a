// The telemetry mapping (SPEC section 5): one decoded EnergyRecordSet and the device it belongs to
// become Concerto telemetry points. Pure: no I/O, no logging, no clock. Thread-safe (no shared state).
//
// Units follow contracts/concerto.graphql: W -> kW, W·s -> kWh, percent and volts unchanged.
// Signs are not touched: the wire and Concerto agree (site meter > 0 imports, battery > 0
// discharges, photovoltaic and inverter > 0 produce).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/time.h"
#include "domain/concerto_types.h"
#include "domain/device.h"
#include "energy_record_set.pb.h"

namespace pwrcell::domain {

struct MappingResult {
  // In record order, then channel order, then a fixed metric order per channel; each record's
  // INVERTER_STATE and SYSTEM_MODE follow its channels. (asset, metric, timestamp) is unique.
  std::vector<TelemetryPoint> points;

  // Channels that produced no point: a type Concerto has no asset for (CONSUMPTION,
  // UNKNOWN_CHANNEL, values unknown to the contract) or an asset the device does not know.
  int unmapped_channels = 0;
  // Records whose INVERTER_STATE and SYSTEM_MODE were not emitted because the device has no
  // SYSTEM asset id (or, for a record of a system's second or later inverter, no INVERTER asset
  // for that inverter).
  int unmapped_system_records = 0;
  // Points dropped because an earlier channel or record already gave (asset, metric, timestamp).
  int duplicate_points = 0;
  // Points dropped because the value was NaN or infinite (Concerto's JSON cannot carry them).
  int invalid_values = 0;
  // Records skipped because currentTimestamp is not usable (see IsUsableRecordTimestamp);
  // DecodeRecordSet already rejects such sets, this guards sets built in-process.
  int skipped_records = 0;
  // One short line per event counted above, e.g. "channel 30 NET: no site meter asset", for
  // debug logging. Wording is not a contract.
  std::vector<std::string> details;

  // Max currentTimestamp of the set's usable records; nullopt when there is none.
  std::optional<Timestamp> newest_timestamp;
  // From the record with the newest currentTimestamp (the later one in the set on a tie).
  std::optional<std::uint32_t> inverter_state;
  std::optional<int> sys_mode;
};

// Maps every record of `set` for `device`. Never fails: what cannot be mapped is counted, not guessed.
//
// Several inverters (SPEC section 6): the set's inverterId says which inverter sent it.
// INVERTER_OUTPUT goes to that inverter's INVERTER asset (remoteId = inverterId); without one, to
// the SYSTEM asset for the first inverter (CES order) and nowhere for the others (unmapped: two
// inverters' outputs must not merge into one series). INVERTER_STATE and SYSTEM_MODE go to the
// SYSTEM asset from the first inverter's records; in a system with several inverters every
// inverter's records also give them to its own INVERTER asset.
MappingResult MapRecordSet(const pwrcell::ces::v1::EnergyRecordSet& set, const DeviceRecord& device);

// Splits `points` into consecutive batches of at most `max_batch` (> 0) points, keeping their order.
// No batch is empty, so no points gives no batches.
std::vector<std::vector<TelemetryPoint>> SplitIntoBatches(std::vector<TelemetryPoint> points,
                                                          std::size_t max_batch = kMaxPointsPerIngest);

}  // namespace pwrcell::domain
