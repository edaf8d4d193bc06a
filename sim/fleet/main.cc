// fleet-sim: streams realistic EnergyRecordSet telemetry for a simulated PWRcell fleet on an
// accelerated clock (sim/scenarios/README.md). Thin: the physics live in src/fleet/.
#include <curl/curl.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "sim/fleet/fleet.h"
#include "sim/fleet/scenario.h"
#include "sim/fleet/sinks.h"

namespace {

using pwrcell::fleetsim::Fleet;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;  // records were rejected or could not be delivered
constexpr int kExitUsage = 2;   // bad arguments or a bad scenario

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void OnSignal(int) {
  g_stop.store(true);
}

void Log(const std::string& line) {
  std::fprintf(stderr, "fleet-sim: %s\n", line.c_str());
}

std::string Shortest(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", value);
  return buf;
}

int UsageError(const std::string& message) {
  std::fprintf(stderr, "fleet-sim: error: %s\nRun fleet-sim --help for usage.\n", message.c_str());
  return kExitUsage;
}

// Waits until `due` in slices, so that a signal ends the wait promptly. False if stopped.
bool WaitUntil(std::chrono::steady_clock::time_point due) {
  for (;;) {
    if (g_stop.load()) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now >= due) return true;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(due - now, std::chrono::milliseconds(100)));
  }
}

int Run(Fleet& fleet, pwrcell::fleetsim::RecordSink& sink, const std::string& sink_spec) {
  using namespace std::chrono;
  const auto& scenario = fleet.scenario();
  const double interval_s = duration<double>(scenario.interval).count();
  Log("scenario \"" + scenario.name + "\": " + std::to_string(fleet.systems().size()) + " systems from " +
      pwrcell::FormatIso8601(scenario.start) + ", a record every " + std::to_string(static_cast<long>(interval_s)) +
      " s, speed " + Shortest(scenario.speed) + "x, " +
      (scenario.duration_s ? "for " + Shortest(*scenario.duration_s) + " simulated s"
                           : std::string("until SIGINT/SIGTERM")) +
      ", sink " + sink_spec);

  const auto wall_start = steady_clock::now();
  auto last_progress = wall_start;
  std::size_t ticks = 0;
  std::size_t records_total = 0;
  int exit_code = kExitOk;
  for (std::int64_t k = 0;; ++k) {
    const double offset_s = static_cast<double>(k) * interval_s;
    if (scenario.duration_s && offset_s > *scenario.duration_s) break;
    const auto due = wall_start + duration_cast<steady_clock::duration>(duration<double>(offset_s / scenario.speed));
    if (!WaitUntil(due)) break;

    fleet.ApplyFaultsUpTo(offset_s);
    const pwrcell::Timestamp t = scenario.start + k * scenario.interval;
    std::size_t silent = 0;
    const auto records = fleet.Tick(t, &silent);
    const pwrcell::Status status = sink.Deliver(records);
    ++ticks;
    records_total += records.size();
    if (!status.ok() && status.code() == pwrcell::StatusCode::kUnavailable) {
      // A write that failed for good, or delivery interrupted by a signal: nothing more can go out.
      Log("stopping: " + status.ToString());
      exit_code = kExitFailed;
      break;
    }
    const auto now = steady_clock::now();
    if (now - last_progress >= seconds(5)) {
      last_progress = now;
      Log("simulated " + pwrcell::FormatIso8601(t) + ": " + std::to_string(records.size()) + " records (" +
          std::to_string(silent) + " silent systems); " + std::to_string(sink.counts().delivered) +
          " delivered so far");
    }
  }
  const auto& counts = sink.counts();
  Log("done: " + std::to_string(ticks) + " intervals, " + std::to_string(records_total) + " records produced, " +
      std::to_string(counts.delivered) + " delivered, " + std::to_string(counts.rejected) + " rejected, " +
      std::to_string(counts.undelivered) + " not delivered");
  if (counts.rejected > 0 || counts.undelivered > 0) exit_code = kExitFailed;
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fleet-sim: streams EnergyRecordSet telemetry of a simulated PWRcell fleet on an accelerated clock.\n"
      "Scenario format: sim/scenarios/README.md. Exit codes: 0 ok, 1 records rejected or not delivered,\n"
      "2 bad arguments or scenario."};
  std::string scenario_path;
  std::string sink_spec;
  double speed = 0;
  double duration_s = 0;
  bool print_fleet = false;
  app.add_option("--scenario", scenario_path, "scenario TOML file")->required();
  auto* sink_option =
      app.add_option("--sink", sink_spec,
                     "http://host:port/v1/telemetry (JSON batches), file:PATH (length-delimited) or kinesis:STREAM "
                     "(PutRecords; region, keys and endpoint from the AWS environment)");
  auto* speed_option = app.add_option("--speed", speed, "simulated seconds per wall second (overrides the scenario)");
  auto* duration_option = app.add_option("--duration", duration_s,
                                         "stop after this many simulated seconds (default: until SIGINT/SIGTERM)");
  app.add_flag("--print-fleet", print_fleet, "print the fleet (CES metadata and faults) as JSON and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return UsageError(e.what());
  }

  auto loaded = pwrcell::fleetsim::LoadScenarioFile(scenario_path);
  if (!loaded.ok()) return UsageError("bad scenario: " + loaded.status().message());
  pwrcell::fleetsim::Scenario scenario = std::move(loaded).value();
  if (speed_option->count() > 0) {
    if (!(speed > 0)) return UsageError("--speed must be > 0 (simulated seconds per wall second)");
    scenario.speed = speed;
  }
  if (duration_option->count() > 0) {
    if (!(duration_s > 0)) return UsageError("--duration must be > 0 simulated seconds");
    scenario.duration_s = duration_s;
  }
  auto built = Fleet::Build(scenario);
  if (!built.ok()) return UsageError("bad scenario: " + built.status().message());
  Fleet fleet = std::move(built).value();

  if (print_fleet) {
    std::cout << pwrcell::fleetsim::FleetJson(fleet).dump(2) << "\n";
    return kExitOk;
  }
  if (sink_option->count() == 0) return UsageError("--sink is required (unless --print-fleet)");

  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  curl_global_init(CURL_GLOBAL_DEFAULT);
  int code = kExitOk;
  {
    auto sink = pwrcell::fleetsim::MakeSink(sink_spec, g_stop);
    if (!sink.ok()) {
      curl_global_cleanup();
      return UsageError(sink.status().message());
    }
    code = Run(fleet, **sink, sink_spec);
  }
  curl_global_cleanup();
  return code;
}
