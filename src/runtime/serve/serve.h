// `pwrcell-adapter serve`: every process of SPEC section 3 in one program (the embedded
// default): SQLite (WAL) device table and durable queues, telemetry from the HTTP ingest
// endpoint (and `replay`), secrets from a file, admin HTTP on loopback, a scheduler for the
// pollers and the sweep, worker pools for the queues. The composition root of that runtime.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <string>

#include "config/config.h"

namespace pwrcell::runtime::serve {

// The durable queues `serve` keeps in its store file (SqliteQueue names; the CLI's `queues`
// commands offer exactly these).
inline constexpr const char* kIngestQueue = "ingest";
inline constexpr const char* kConcertoQueue = "concerto";
inline constexpr const char* kConcertoTelemetryQueue = "concerto-telemetry";
inline constexpr const char* kCesQueue = "ces";
inline constexpr std::array<const char*, 4> kQueueNames = {kIngestQueue, kConcertoQueue, kConcertoTelemetryQueue,
                                                           kCesQueue};

struct ServeOptions {
  // Called once both servers listen, with their bound ports (tests use port 0).
  std::function<void(int ingest_port, int admin_port)> on_ready;
  // When set, serve stops when this becomes true (tests, the demo) instead of waiting for a signal.
  const std::atomic<bool>* stop_flag = nullptr;
};

// Runs until SIGTERM/SIGINT (or stop_flag). Returns the process exit code: 0 after a clean stop;
// 1 when it cannot start (store, secrets, ports), with the reason logged.
int RunServe(const config::Config& config, const ServeOptions& options = {});

// Appends the records of a recorded stream (fleet-sim's file sink: each record a 4-byte
// big-endian length, then one serialized EnergyRecordSet) to the durable ingest queue of the
// store at `config.storage.path`, where `serve` (running now or started later) processes them.
// Records that do not decode are counted and skipped, never stored. Returns an exit code
// (0 ok, 1 store failure, 4 no such file, 5 truncated file) and prints a summary.
int Replay(const config::Config& config, const std::string& path);

}  // namespace pwrcell::runtime::serve
