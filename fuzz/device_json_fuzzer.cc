// Fuzzes the device record's JSON (domain/device_json.h), the text the SQLite and DynamoDB
// device tables store and `telemetry map --device` reads: JSON text -> DeviceFromJson, and for a
// record it accepts, the round trip DumpDeviceJson -> parse -> DeviceFromJson gives the same record.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "domain/device_json.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return 0;
  const auto record = pwrcell::domain::DeviceFromJson(parsed);
  if (!record.ok()) {
    if (record.status().code() != pwrcell::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  const std::string dumped = pwrcell::domain::DumpDeviceJson(*record);
  const nlohmann::json reparsed = nlohmann::json::parse(dumped, nullptr, /*allow_exceptions=*/false);
  const auto again =
      reparsed.is_discarded()
          ? pwrcell::Result<pwrcell::domain::DeviceRecord>(pwrcell::InternalError("DumpDeviceJson wrote invalid JSON"))
          : pwrcell::domain::DeviceFromJson(reparsed);
  if (!again.ok() || !(*again == *record)) {
    std::cerr << "device JSON does not round-trip: " << dumped << "\n"
              << (again.ok() ? std::string("(a different record)") : again.status().ToString()) << "\n";
    std::abort();
  }
  return 0;
}
