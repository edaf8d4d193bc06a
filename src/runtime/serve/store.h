// The store of `serve` and `replay`: one SQLite file (`[storage] path`) holding the device table,
// the durable queues and the coordination state. Opening it is this one place.
#pragma once

#include <array>
#include <functional>
#include <memory>

#include "adapters/sqlite/sqlite_coordination.h"
#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_device_store.h"
#include "adapters/sqlite/sqlite_queue.h"
#include "common/status.h"
#include "config/config.h"
#include "ports/clock.h"
#include "runtime/serve/queue_workers.h"

namespace pwrcell::runtime::serve {

// The durable queues `serve` keeps in its store file (SqliteQueue names; the CLI's `queues`
// commands offer exactly these).
inline constexpr const char* kIngestQueue = "ingest";
inline constexpr const char* kConcertoQueue = "concerto";
inline constexpr const char* kConcertoTelemetryQueue = "concerto-telemetry";
inline constexpr const char* kCesQueue = "ces";
inline constexpr std::array<const char*, 4> kQueueNames = {kIngestQueue, kConcertoQueue, kConcertoTelemetryQueue,
                                                           kCesQueue};

// Everything `serve` and `replay` open in the store file. Movable, not copyable; the queues and
// the device table share `database` (one connection).
struct Store {
  std::shared_ptr<adapters::SqliteDatabase> database;
  std::unique_ptr<adapters::SqliteDeviceStore> devices;
  std::unique_ptr<adapters::SqliteQueue> ingest, concerto, concerto_telemetry, ces;
  // The state the processes share between invocations (leases, throttles, accepted states, the
  // startup-grace watermark): in the same file, so several serve processes on it act as one.
  std::unique_ptr<adapters::SqliteCoordination> coordination;

  // Opens (creating when missing) the file at `config.storage.path`, with `config.queues`'
  // max_receives; `clock` (the queues' time) must outlive the Store. Errors: those of
  // SqliteDatabase::Open and the table creation (kUnavailable when the file cannot be opened or
  // written, kInternal for a file that is not a database), prefixed with "store <path>".
  static Result<Store> Open(const config::Config& config, const ports::Clock& clock);
};

// Worker rounds as SQLite units of work on `database` (WorkerOptions::batch_scope): the writes of
// a round share one commit, made with `mode` (kAtomic: no fsync, for rounds that delete their
// inputs in the same unit as they write their outputs; see SqliteUnitOfWork::Mode). `database`
// must outlive the returned function's calls.
std::function<Result<std::unique_ptr<BatchScope>>()> SqliteBatchScopes(
    adapters::SqliteDatabase& database,
    adapters::SqliteUnitOfWork::Mode mode = adapters::SqliteUnitOfWork::Mode::kDurable);

}  // namespace pwrcell::runtime::serve
