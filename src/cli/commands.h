// The command implementations behind the CLI. Each returns an exit code (cli/exit_codes.h),
// writes results to `out` and diagnostics to `err`. No global state: everything comes in.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <optional>
#include <string>
#include <variant>

namespace pwrcell::cli {

struct StoreLocation {
  std::optional<std::string> config_path;  // --config: use its [storage] path
  std::optional<std::string> db_path;      // --db: overrides the configuration
};

// Where the store file is: --db, else --config's [storage] path, else ./deployment.toml's, else
// the default path. An exit code (with the reason written to `err`) when the configuration is
// missing or invalid. Shared by the commands that read the store.
std::variant<std::string, int> ResolveDbPath(const StoreLocation& where, std::ostream& err);

int ConfigCheck(const std::string& path, bool print_effective, std::ostream& out, std::ostream& err);
int DevicesList(const StoreLocation& where, bool json, std::ostream& out, std::ostream& err);
int DevicesShow(const StoreLocation& where, const std::string& remote_id, bool json, std::ostream& out,
                std::ostream& err);
// Dry run of the telemetry mapping: decodes one record (binary EnergyRecordSet, or protobuf
// text format when text_format is set) and prints the Concerto points it becomes for the
// device described by `device_json_path` (a device record as `devices show --json` prints it).
int TelemetryMap(const std::string& device_json_path, const std::string& record_path, bool text_format, bool json,
                 std::ostream& out, std::ostream& err);

// `queues list`: each of serve's queues with its visible, in-flight and dead-letter counts.
int QueuesList(const StoreLocation& where, bool json, std::ostream& out, std::ostream& err);
// `queues dead-letters NAME`: up to `limit` dead letters of one queue, oldest first: id, sent_at,
// receive_count, size and a short preview that shows only printable ASCII (never the whole body).
int QueuesDeadLetters(const StoreLocation& where, const std::string& queue, std::size_t limit, bool json,
                      std::ostream& out, std::ostream& err);
// `queues redrive NAME`: moves up to `max` (all when nullopt) dead letters back into their queue
// (ports::Queue::RedriveDeadLetters) and prints how many moved. Safe while serve runs.
int QueuesRedrive(const StoreLocation& where, const std::string& queue, std::optional<std::size_t> max,
                  std::ostream& out, std::ostream& err);

// `serve --config FILE`: runs every process until SIGTERM/SIGINT (runtime/serve/serve.h).
int Serve(const std::string& config_path, const std::string& log_level);
// `replay FILE --config FILE`: appends a recorded stream to serve's durable ingest queue.
int Replay(const std::string& config_path, const std::string& file);

// `aws setup`: creates the DynamoDB tables, the SQS queues with their dead-letter queues (redrive
// after [queues] max_receives deliveries) and, when named, the Kinesis stream (`stream_shards`
// shards) of the configuration's [aws] section; what exists is kept. Credentials and region from
// the standard AWS environment. Exit 0 when all are ready, 3 for a bad configuration or missing
// AWS environment, 1 when AWS refuses (the resource and the AWS error on `err`).
int AwsSetup(const std::string& config_path, int stream_shards, std::ostream& out, std::ostream& err);

}  // namespace pwrcell::cli
