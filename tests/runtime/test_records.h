// Helpers shared by the runtime HTTP tests: valid and invalid EnergyRecordSet bytes.
#pragma once

#include <cstddef>
#include <string>

#include "energy_record_set.pb.h"

namespace pwrcell::runtime::http::testing {

// The serialized bytes of a minimal EnergyRecordSet that domain::DecodeRecordSet accepts.
inline std::string ValidRecordBytes(const std::string& inverter_id, double timestamp = 1763800000) {
  ces::v1::EnergyRecordSet set;
  set.set_inverterid(inverter_id);
  set.add_energyrecord()->set_currenttimestamp(timestamp);
  std::string bytes;
  set.SerializeToString(&bytes);
  return bytes;
}

// Well-formed protobuf that DecodeRecordSet refuses: "inverterId is empty".
inline std::string RecordBytesWithoutInverterId() {
  return ValidRecordBytes("");
}

}  // namespace pwrcell::runtime::http::testing
