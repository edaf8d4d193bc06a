// The command implementations behind the CLI. Each returns an exit code (cli/exit_codes.h),
// writes results to `out` and diagnostics to `err`. No global state: everything comes in.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>

namespace pwrcell::cli {

struct StoreLocation {
  std::optional<std::string> config_path;  // --config: use its [storage] path
  std::optional<std::string> db_path;      // --db: overrides the configuration
};

int ConfigCheck(const std::string& path, bool print_effective, std::ostream& out, std::ostream& err);
int DevicesList(const StoreLocation& where, bool json, std::ostream& out, std::ostream& err);
int DevicesShow(const StoreLocation& where, const std::string& remote_id, bool json, std::ostream& out,
                std::ostream& err);
// Dry run of the telemetry mapping: decodes one record (binary EnergyRecordSet, or protobuf
// text format when text_format is set) and prints the Concerto points it becomes for the
// device described by `device_json_path` (a device record as `devices show --json` prints it).
int TelemetryMap(const std::string& device_json_path, const std::string& record_path, bool text_format, bool json,
                 std::ostream& out, std::ostream& err);

// `serve --config FILE`: runs every process until SIGTERM/SIGINT (runtime/serve/serve.h).
int Serve(const std::string& config_path, const std::string& log_level);
// `replay FILE --config FILE`: appends a recorded stream to serve's durable ingest queue.
int Replay(const std::string& config_path, const std::string& file);

}  // namespace pwrcell::cli
