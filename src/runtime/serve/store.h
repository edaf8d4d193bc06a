// The store of `serve` and `replay`: the device table, the durable queues and the coordination
// state, on the backend `[backend] kind` names. Opening it is this one place.
// - "embedded": one SQLite file (`[storage] path`), one connection shared by everything in it.
// - "aws": DynamoDB tables and SQS queues named in `[aws]`, through one AWS client (credentials and
//   region from the standard environment); every resource must exist (README "Running on AWS").
#pragma once

#include <array>
#include <functional>
#include <memory>

#include "adapters/aws/aws_client.h"
#include "adapters/sqlite/sqlite_coordination.h"
#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_device_store.h"
#include "adapters/sqlite/sqlite_queue.h"
#include "common/metrics.h"
#include "common/status.h"
#include "config/config.h"
#include "ports/clock.h"
#include "ports/coordination.h"
#include "ports/device_store.h"
#include "ports/queue.h"
#include "runtime/serve/queue_workers.h"

namespace pwrcell::runtime::serve {

// The durable queues `serve` keeps in its store file (SqliteQueue names; the CLI's `queues`
// commands offer exactly these). On AWS each is the SQS queue `[aws]` names for it.
inline constexpr const char* kIngestQueue = "ingest";
inline constexpr const char* kConcertoQueue = "concerto";
inline constexpr const char* kConcertoTelemetryQueue = "concerto-telemetry";
inline constexpr const char* kCesQueue = "ces";
inline constexpr std::array<const char*, 4> kQueueNames = {kIngestQueue, kConcertoQueue, kConcertoTelemetryQueue,
                                                           kCesQueue};

struct StoreOpenOptions {
  // Opens the ingest queue (serve, replay). The Lambda functions and the CLI's device commands on
  // AWS have no use for it (telemetry comes from the Kinesis stream there): `ingest` stays null
  // and `[aws] ingest_queue` need not exist.
  bool ingest = true;
};

// Everything `serve` and `replay` open in the store. Movable, not copyable.
struct Store {
  // Embedded only (null on AWS): the one SQLite connection the queues and tables share, whose
  // units of work group a worker round's writes.
  std::shared_ptr<adapters::SqliteDatabase> database;
  // AWS only (null when embedded): the client every AWS backend of this store calls through.
  std::shared_ptr<adapters::aws::AwsClient> aws;
  std::unique_ptr<ports::DeviceStore> devices;
  std::unique_ptr<ports::Queue> ingest, concerto, concerto_telemetry, ces;
  // The state the processes share between invocations (leases, throttles, accepted states, the
  // startup-grace watermark, stream checkpoints): in the store, so several serve processes on it
  // act as one.
  std::unique_ptr<ports::Coordination> coordination;

  // Embedded: opens (creating when missing) the file at `config.storage.path`, with
  // `config.queues`' max_receives; `clock` (the queues' time) must outlive the Store. Errors: those
  // of SqliteDatabase::Open and the table creation (kUnavailable when the file cannot be opened or
  // written, kInternal for a file that is not a database), prefixed with "store <path>".
  // AWS: checks that every table and queue `[aws]` names exists (and each queue's dead-letter
  // queue); a missing one fails with its name and the AWS error ("store aws: ..."); missing AWS
  // credentials or region are kInvalidArgument naming the variable. `metrics` (optional) receives
  // the AWS client's counters.
  static Result<Store> Open(const config::Config& config, const ports::Clock& clock, Metrics* metrics = nullptr,
                            const StoreOpenOptions& options = {});
};

// The AWS client options of `config`: the standard environment (AwsOptions::FromEnvironment) with
// `[aws] region` when set.
Result<adapters::aws::AwsOptions> AwsOptionsFromConfig(const config::Config& config);

// Worker rounds as SQLite units of work on `store.database` (an empty function, no unit, on AWS:
// there each write stands alone, as every handler is idempotent); see the next function.
std::function<Result<std::unique_ptr<BatchScope>>()> StoreBatchScopes(
    const Store& store, adapters::SqliteUnitOfWork::Mode mode = adapters::SqliteUnitOfWork::Mode::kDurable);

// Worker rounds as SQLite units of work on `database` (WorkerOptions::batch_scope): the writes of
// a round share one commit, made with `mode` (kAtomic: no fsync, for rounds that delete their
// inputs in the same unit as they write their outputs; see SqliteUnitOfWork::Mode). `database`
// must outlive the returned function's calls.
std::function<Result<std::unique_ptr<BatchScope>>()> SqliteBatchScopes(
    adapters::SqliteDatabase& database,
    adapters::SqliteUnitOfWork::Mode mode = adapters::SqliteUnitOfWork::Mode::kDurable);

}  // namespace pwrcell::runtime::serve
