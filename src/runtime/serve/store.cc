#include "runtime/serve/store.h"

#include <utility>

namespace pwrcell::runtime::serve {
namespace {

Result<Store> OpenIn(const config::Config& config, const ports::Clock& clock) {
  Store store;
  auto database = adapters::SqliteDatabase::Open(config.storage.path);
  if (!database.ok()) return database.status();
  store.database = *database;
  auto devices = adapters::SqliteDeviceStore::Create(store.database);
  if (!devices.ok()) return devices.status();
  store.devices = std::move(*devices);
  const int max_receives = config.queues.max_receives;
  auto open = [&](const char* name, std::unique_ptr<adapters::SqliteQueue>& out) -> Status {
    auto queue = adapters::SqliteQueue::Create(store.database, name, clock, max_receives);
    if (!queue.ok()) return queue.status();
    out = std::move(*queue);
    return Status::Ok();
  };
  PWRCELL_RETURN_IF_ERROR(open(kIngestQueue, store.ingest));
  PWRCELL_RETURN_IF_ERROR(open(kConcertoQueue, store.concerto));
  PWRCELL_RETURN_IF_ERROR(open(kConcertoTelemetryQueue, store.concerto_telemetry));
  PWRCELL_RETURN_IF_ERROR(open(kCesQueue, store.ces));
  auto coordination = adapters::SqliteCoordination::Create(store.database);
  if (!coordination.ok()) return coordination.status();
  store.coordination = std::move(*coordination);
  return store;
}

// One SQLite transaction as the scope of a worker round (queue_workers.h): one fsync per batch.
class SqliteBatchScope final : public BatchScope {
 public:
  SqliteBatchScope(adapters::SqliteUnitOfWork unit, adapters::SqliteUnitOfWork::Mode mode)
      : unit_(std::move(unit)), mode_(mode) {}
  Status Commit() override { return unit_.Commit(mode_); }

 private:
  adapters::SqliteUnitOfWork unit_;
  adapters::SqliteUnitOfWork::Mode mode_;
};

}  // namespace

std::function<Result<std::unique_ptr<BatchScope>>()> SqliteBatchScopes(adapters::SqliteDatabase& database,
                                                                       adapters::SqliteUnitOfWork::Mode mode) {
  return [&database, mode]() -> Result<std::unique_ptr<BatchScope>> {
    auto unit = database.BeginUnitOfWork();
    if (!unit.ok()) return unit.status();
    return std::unique_ptr<BatchScope>(std::make_unique<SqliteBatchScope>(std::move(*unit), mode));
  };
}

Result<Store> Store::Open(const config::Config& config, const ports::Clock& clock) {
  auto store = OpenIn(config, clock);
  if (!store.ok()) return store.status().WithContext("store " + config.storage.path);
  return store;
}

}  // namespace pwrcell::runtime::serve
