// Time values used across the code base. Timestamps are UTC, millisecond precision.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pwrcell {

using Timestamp = std::chrono::sys_time<std::chrono::milliseconds>;
using Duration = std::chrono::milliseconds;
using Seconds = std::chrono::seconds;

// Milliseconds since the Unix epoch <-> Timestamp.
inline std::int64_t ToUnixMillis(Timestamp t) {
  return t.time_since_epoch().count();
}
inline Timestamp FromUnixMillis(std::int64_t ms) {
  return Timestamp(Duration(ms));
}

// Fractional seconds since the epoch (the wire format of EnergyRecord.currentTimestamp),
// rounded to the nearest millisecond.
Timestamp FromUnixSeconds(double seconds);

// ISO-8601 UTC: "2026-11-22T10:15:00Z", with ".mmm" only when the milliseconds are not zero.
std::string FormatIso8601(Timestamp t);

// Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" (also "+00:00"). nullopt when malformed.
std::optional<Timestamp> ParseIso8601(std::string_view text);

}  // namespace pwrcell
