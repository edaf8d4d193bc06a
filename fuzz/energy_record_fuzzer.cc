// Fuzzes the telemetry processor's decode/map path (SPEC 3.1, 5): the bytes of one stream record
// through domain::DecodeRecordSet and, when it accepts them, domain::MapRecordSet for each device
// of tests/data/devices.json (DC, AC, several inverters), the batches of SplitIntoBatches and the
// IngestTelemetry document sent to Concerto, which must be valid JSON holding every point.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/concerto/concerto_documents.h"
#include "domain/device_json.h"
#include "domain/record_decoding.h"
#include "domain/telemetry_mapping.h"

namespace {

using pwrcell::domain::DeviceRecord;

std::vector<DeviceRecord> LoadDevices() {
  std::ifstream in(PWRCELL_FUZZ_DEVICES_FILE);
  std::stringstream text;
  text << in.rdbuf();
  const auto parsed = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  std::vector<DeviceRecord> devices;
  if (parsed.is_array()) {
    for (const auto& item : parsed) {
      auto device = pwrcell::domain::DeviceFromJson(item);
      if (device.ok()) devices.push_back(*device);
    }
  }
  if (devices.empty()) {
    std::cerr << "energy_record_fuzzer: no devices in " << PWRCELL_FUZZ_DEVICES_FILE << "\n";
    std::abort();
  }
  return devices;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<DeviceRecord> devices = LoadDevices();
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto decoded = pwrcell::domain::DecodeRecordSet(bytes);
  if (!decoded.ok()) {
    if (decoded.status().code() != pwrcell::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  for (const DeviceRecord& device : devices) {
    pwrcell::domain::MappingResult mapped = pwrcell::domain::MapRecordSet(*decoded, device);
    const std::size_t count = mapped.points.size();
    for (const auto& point : mapped.points) {
      if (!std::isfinite(point.value)) std::abort();  // Concerto's JSON cannot carry them
    }
    std::size_t batched = 0;
    for (const auto& batch : pwrcell::domain::SplitIntoBatches(std::move(mapped.points), 7)) {
      if (batch.empty() || batch.size() > 7) std::abort();
      batched += batch.size();
      const auto op = pwrcell::adapters::concerto_documents::IngestTelemetry(batch);
      // What Concerto receives must be JSON with one entry per point.
      const auto body = nlohmann::json::parse(op.Body(), nullptr, /*allow_exceptions=*/false);
      if (body.is_discarded() || body["variables"]["input"]["points"].size() != batch.size()) std::abort();
    }
    if (batched != count) std::abort();
  }
  return 0;
}
