// The command implementations behind the CLI. Each returns an exit code (cli/exit_codes.h),
// writes results to `out` and diagnostics to `err`. No global state: everything comes in.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <optional>
#include <string>
#include <variant>

#include "config/config.h"
#include "runtime/serve/store.h"

namespace pwrcell::cli {

struct StoreLocation {
  std::optional<std::string> config_path;  // --config: use its [storage] path, or its [aws] resources
  std::optional<std::string> db_path;      // --db: overrides the configuration
};

// The store a `devices` or `queues` command works on.
struct StoreTarget {
  std::string db_path;                // embedded: the SQLite file
  std::optional<config::Config> aws;  // set when the configuration keeps the store on AWS
};

// Which store: --db's file, else --config's (else ./deployment.toml's, else the default path):
// its [storage] path, or its AWS backends when `[backend] kind = "aws"` (then `aws` is set). An
// exit code (with the reason written to `err`) when the configuration is missing or invalid.
// Shared by the commands that read the store.
std::variant<StoreTarget, int> ResolveStore(const StoreLocation& where, std::ostream& err);

// Opens the store of `config` on AWS (runtime::serve::Store::Open), with the ingest queue only
// when `ingest` is set (a Lambda stack has none). On failure writes the reason to `err` and
// returns the exit code: 3 when the AWS environment is incomplete (the variable is named), 4 when
// a table or queue does not exist (named), 1 otherwise (AWS unreachable, refused).
std::variant<runtime::serve::Store, int> OpenAwsStore(const config::Config& config, bool ingest, std::ostream& err);

int ConfigCheck(const std::string& path, bool print_effective, std::ostream& out, std::ostream& err);
// `config sam-parameters FILE`: loads FILE as ConfigCheck does and prints the `sam deploy
// --parameter-overrides` value of template.yml (docs/LAMBDA.md): every parameter as Key=Value,
// space-separated, a value in double quotes only when a shell would need them. A value the
// template cannot take (a schedule not in its AllowedValues, a concurrency below 2, ...) is an
// error naming the key, the value and why: exit 3, nothing on stdout. Keys the template has no
// parameter for are named on `err` as notes when they differ from their defaults. Exit codes as
// ConfigCheck otherwise (3 invalid file, 4 no file).
int ConfigSamParameters(const std::string& path, std::ostream& out, std::ostream& err);
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
