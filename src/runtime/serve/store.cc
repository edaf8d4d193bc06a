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

}  // namespace

Result<Store> Store::Open(const config::Config& config, const ports::Clock& clock) {
  auto store = OpenIn(config, clock);
  if (!store.ok()) return store.status().WithContext("store " + config.storage.path);
  return store;
}

}  // namespace pwrcell::runtime::serve
