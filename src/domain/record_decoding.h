// Decoding one telemetry stream record (SPEC 3.1): the bytes of a serialized EnergyRecordSet
// become a message the telemetry mapping can trust, or a kInvalidArgument that says why not.
// Pure: no I/O, no logging, no clock. Thread-safe (no shared state).
#pragma once

#include <string_view>

#include "common/status.h"
#include "energy_record_set.pb.h"

namespace pwrcell::domain {

// Decodes and checks one stream record. Never crashes and never writes to stderr, whatever the bytes.
// Errors (all kInvalidArgument, so a caller dead-letters or skips the record instead of retrying):
//   "empty record";
//   "not a valid EnergyRecordSet (truncated or malformed)";
//   "not a valid EnergyRecordSet: <field> is not valid UTF-8";
//   "inverterId is empty";
//   "no energyRecord";
//   "energyRecord[i].currentTimestamp is not a usable time (<value>)".
Result<pwrcell::ces::v1::EnergyRecordSet> DecodeRecordSet(std::string_view bytes);

// True when `seconds` (EnergyRecord.currentTimestamp) is finite, after the epoch and before the
// year 10000. The upper bound keeps FromUnixSeconds and the date arithmetic downstream clear of
// overflow; no real record comes close to it.
bool IsUsableRecordTimestamp(double seconds);

}  // namespace pwrcell::domain
