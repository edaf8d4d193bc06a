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

// Standard base64 with padding (an independent encoder, so the server's decoder is checked
// against something other than itself).
inline std::string Base64(const std::string& bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += {kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], kAlphabet[(n >> 6) & 63], kAlphabet[n & 63]};
  }
  if (bytes.size() - i == 1) {
    const unsigned n = static_cast<unsigned char>(bytes[i]) << 16;
    out += {kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], '=', '='};
  } else if (bytes.size() - i == 2) {
    const unsigned n = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += {kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], kAlphabet[(n >> 6) & 63], '='};
  }
  return out;
}

}  // namespace pwrcell::runtime::http::testing
