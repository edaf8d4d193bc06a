// pwrcell-adapter command line: parses arguments and hands over to cli/commands.cc.
#include <spdlog/spdlog.h>

#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "common/logging.h"

namespace {

constexpr const char* kExitCodesHelp =
    "Exit codes: 0 ok, 1 failure (store unreachable, I/O), 2 usage error, 3 invalid configuration,\n"
    "            4 not found, 5 invalid input file.";

// A count option: a whole number >= 1, said plainly (CLI11's PositiveNumber prints a 300-digit range).
const CLI::Validator kAtLeastOne(
    [](std::string& value) -> std::string {
      const bool digits = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
      if (digits && value.find_first_not_of('0') != std::string::npos) return {};
      return "expected a whole number of at least 1, not '" + value + "'";
    },
    "N>=1");

}  // namespace

int main(int argc, char** argv) {
  using namespace pwrcell::cli;
  // Every log line of every command is one line, whatever a logged value holds (common/logging.h).
  spdlog::set_formatter(pwrcell::MakeEscapingFormatter("%+"));
  CLI::App app{"pwrcell-adapter: connects Generac PWRcell systems (CES) to a Concerto DERMS instance."};
  app.footer(kExitCodesHelp);
  app.set_version_flag("--version", "pwrcell-adapter 0.1.0");
  app.require_subcommand(1);

  auto* config = app.add_subcommand("config", "Configuration commands")->require_subcommand(1);
  auto* check = config->add_subcommand("check", "Validate a deployment.toml; exit 0 when valid, 3 when not");
  std::string config_file;
  bool print_effective = false;
  check->add_option("FILE", config_file, "The configuration file")->required();
  check->add_flag("--print", print_effective, "Print the effective configuration (file + environment)");
  auto* sam_parameters = config->add_subcommand(
      "sam-parameters",
      "Print template.yml's `sam deploy --parameter-overrides` value for a deployment.toml (docs/LAMBDA.md)");
  sam_parameters->add_option("FILE", config_file, "The configuration file (environment overrides apply)")->required();
  sam_parameters->footer(
      "Prints on stdout every template parameter as Key=Value, space-separated, quoted only where a shell\n"
      "needs it (AdapterName=\"my adapter\"). Use it as one argument:\n"
      "  sam deploy --parameter-overrides \"$(pwrcell-adapter config sam-parameters deployment.toml)\"\n"
      "A value the template cannot take (a schedule other than 60, 120, 180, 300, 600, 900, 1800 or 3600 s,\n"
      "a lambda.*_concurrency below 2, ...) is an error naming the key, the value and why: exit 3, nothing on\n"
      "stdout. Keys the stack has no parameter for ([backend], [storage], [secrets], [aws], [telemetry],\n"
      "[admin], concerto.workers, ...) are named on stderr as notes when they differ from their defaults.\n"
      "Exit codes: 0 ok, 3 invalid file or a value the template cannot take, 4 no such file.");

  auto* devices = app.add_subcommand("devices", "Read the device table")->require_subcommand(1);
  StoreLocation where;
  bool json = false;
  auto add_store_options = [&](CLI::App* cmd, bool with_json = true) {
    cmd->add_option("--config", where.config_path,
                    "deployment.toml whose store is read: its [storage] path, or with [backend] kind = \"aws\" "
                    "the DynamoDB table and SQS queues of its [aws] section (AWS credentials and region from "
                    "the environment)");
    cmd->add_option("--db", where.db_path, "The SQLite store file (overrides --config)");
    if (with_json) cmd->add_flag("--json", json, "JSON output instead of a table");
  };
  auto* list = devices->add_subcommand("list", "List every registered system");
  add_store_options(list);
  auto* show = devices->add_subcommand("show", "Show one system's device record; exit 4 when unknown");
  std::string remote_id;
  show->add_option("ID", remote_id, "The system's remote_id (CES systemId)")->required();
  add_store_options(show);

  auto* queues = app.add_subcommand("queues", "Inspect serve's durable queues and recover their dead letters")
                     ->require_subcommand(1);
  auto* queues_list = queues->add_subcommand("list", "Each queue's visible, in-flight and dead-letter counts");
  add_store_options(queues_list);
  std::string queue_name;
  constexpr const char* kQueueNameHelp = "The queue: ingest, concerto, concerto-telemetry or ces";
  auto* dead_letters = queues->add_subcommand(
      "dead-letters", "A queue's dead letters, oldest first: id, sent_at, receive_count, size, short preview");
  std::size_t dead_letter_limit = 20;
  dead_letters->add_option("NAME", queue_name, kQueueNameHelp)->required();
  dead_letters->add_option("--limit", dead_letter_limit, "Show at most N (default 20)")->check(kAtLeastOne);
  add_store_options(dead_letters);
  auto* redrive = queues->add_subcommand(
      "redrive", "Move a queue's dead letters back into it as new messages, oldest first (safe while serve runs)");
  std::optional<std::size_t> redrive_max;
  redrive->add_option("NAME", queue_name, kQueueNameHelp)->required();
  redrive->add_option("--max", redrive_max, "Move at most N (default: all)")->check(kAtLeastOne);
  add_store_options(redrive, /*with_json=*/false);

  auto* telemetry = app.add_subcommand("telemetry", "Telemetry tools")->require_subcommand(1);
  auto* map = telemetry->add_subcommand(
      "map", "Dry run: decode one EnergyRecordSet and print the Concerto points it becomes for a device");
  std::string device_file, record_file;
  bool text_format = false;
  map->add_option("--device", device_file, "Device record JSON (as `devices show --json` prints it)")->required();
  map->add_option("RECORD", record_file, "The record: serialized EnergyRecordSet bytes")->required();
  map->add_flag("--text", text_format, "RECORD is in protobuf text format");
  map->add_flag("--json", json, "JSON output instead of a table");

  auto* serve = app.add_subcommand("serve", "Run the adapter: every process in one program, until SIGTERM/SIGINT");
  std::string serve_config = "deployment.toml";
  std::string log_level = "info";
  serve->add_option("--config", serve_config, "The deployment.toml (default: deployment.toml)");
  serve->add_option("--log-level", log_level, "trace, debug, info, warn, error or off (default: info)");

  auto* replay = app.add_subcommand(
      "replay", "Append a recorded telemetry stream (fleet-sim file sink format) to serve's durable ingest queue");
  std::string replay_config = "deployment.toml";
  std::string replay_file;
  replay->add_option("FILE", replay_file, "The recorded stream: 4-byte big-endian length + EnergyRecordSet, repeated")
      ->required();
  replay->add_option("--config", replay_config, "The deployment.toml whose [storage] path serve uses");

  auto* aws = app.add_subcommand("aws", "AWS backend tools")->require_subcommand(1);
  auto* aws_setup = aws->add_subcommand(
      "setup", "Create the DynamoDB tables, SQS queues (with dead-letter queues) and Kinesis stream named in [aws]");
  std::string aws_config = "deployment.toml";
  int stream_shards = 1;
  aws_setup->add_option("--config", aws_config, "The deployment.toml whose [aws] section names the resources");
  aws_setup->add_option("--stream-shards", stream_shards, "Shards of a Kinesis stream it creates (default 1)")
      ->check(CLI::Range(1, 500));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  if (serve->parsed()) return Serve(serve_config, log_level);
  if (replay->parsed()) return Replay(replay_config, replay_file);
  if (aws_setup->parsed()) return AwsSetup(aws_config, stream_shards, std::cout, std::cerr);
  if (check->parsed()) return ConfigCheck(config_file, print_effective, std::cout, std::cerr);
  if (sam_parameters->parsed()) return ConfigSamParameters(config_file, std::cout, std::cerr);
  if (list->parsed()) return DevicesList(where, json, std::cout, std::cerr);
  if (show->parsed()) return DevicesShow(where, remote_id, json, std::cout, std::cerr);
  if (queues_list->parsed()) return QueuesList(where, json, std::cout, std::cerr);
  if (dead_letters->parsed()) {
    return QueuesDeadLetters(where, queue_name, dead_letter_limit, json, std::cout, std::cerr);
  }
  if (redrive->parsed()) return QueuesRedrive(where, queue_name, redrive_max, std::cout, std::cerr);
  if (map->parsed()) return TelemetryMap(device_file, record_file, text_format, json, std::cout, std::cerr);
  return kExitUsage;
}
