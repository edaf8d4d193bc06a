// The device record as JSON: what the SQLite and DynamoDB device tables store, what
// `devices show --json` prints and what `telemetry map --device` reads.
//
// Keys are the C++ field names in snake_case ("remote_id", "metadata": {"pv_links": ...});
// enums are their SPEC/GraphQL names ("DC", "PENDING", "ONLINE"); timestamps are ISO-8601
// UTC strings (FormatIso8601); an empty optional is null. Pure functions, no I/O.
#pragma once

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "domain/device.h"

namespace pwrcell::domain {

// Every field of the record, including `version`. Never fails; strings that are not valid
// UTF-8 are kept as given here and replaced by U+FFFD only when the JSON is dumped with
// DumpDeviceJson.
nlohmann::json ToJson(const DeviceRecord& record);

// The inverse of ToJson. "remote_id" is required; any other key may be absent (it then takes
// the DeviceRecord default), so hand-written examples stay short; unknown keys are ignored so
// that a record written by a newer version still reads. A record written before systems had
// several inverters ("inverter", "inverter_rcpn", "inverter_state" + "sys_mode") reads as the
// lists those became (one asset, one RCP number, one reading dated last_heard_at); ToJson's
// "inverter_state" and "sys_mode" (the system's, derived) are not read back when
// "inverter_readings" is present.
// Errors: kInvalidArgument naming the offending field ("metadata.inverters[1].rated_power_w:
// expected a number") when `json` is not an object, a value has the wrong type or range, an
// enum name or timestamp does not parse.
Result<DeviceRecord> DeviceFromJson(const nlohmann::json& json);

// ToJson(record) serialized compactly; never throws (invalid UTF-8 is replaced, not rejected).
std::string DumpDeviceJson(const DeviceRecord& record);

}  // namespace pwrcell::domain
