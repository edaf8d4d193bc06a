// A few appenders that write JSON text straight into a std::string, for the bodies written once
// per telemetry point (the queued push_telemetry messages, Concerto's ingestTelemetry request),
// where building an nlohmann::json tree and dumping it cost more than mapping the record itself
// (bench/telemetry_bench.cc). The output parses as the same JSON nlohmann would write; numbers may
// be spelled differently (57 rather than 57.0), never valued differently. Thread-safe (no state).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pwrcell::json_writer {

// `text` as a JSON string, quotes included. '"', '\\' and the control characters are escaped;
// other bytes are copied as they are (the callers' strings come from parsed JSON or from our own
// enums, so they are UTF-8).
void AppendString(std::string& out, std::string_view text);

// The shortest decimal that reads back as exactly `value` (std::to_chars). A value that is NaN or
// infinite has no JSON spelling: it is written as null.
void AppendNumber(std::string& out, double value);

void AppendInteger(std::string& out, std::int64_t value);

}  // namespace pwrcell::json_writer
