#include "runtime/serve/store.h"

#include <cstdlib>
#include <string_view>
#include <utility>

#include "adapters/aws/dynamodb_coordination.h"
#include "adapters/aws/dynamodb_device_store.h"
#include "adapters/aws/sqs_queue.h"

namespace pwrcell::runtime::serve {
namespace {

Result<Store> OpenEmbedded(const config::Config& config, const ports::Clock& clock,
                           const StoreOpenOptions& open_options) {
  Store store;
  auto database = adapters::SqliteDatabase::Open(config.storage.path);
  if (!database.ok()) return database.status();
  store.database = *database;
  auto devices = adapters::SqliteDeviceStore::Create(store.database);
  if (!devices.ok()) return devices.status();
  store.devices = std::move(*devices);
  const int max_receives = config.queues.max_receives;
  auto open = [&](const char* name, std::unique_ptr<ports::Queue>& out) -> Status {
    auto queue = adapters::SqliteQueue::Create(store.database, name, clock, max_receives);
    if (!queue.ok()) return queue.status();
    out = std::move(*queue);
    return Status::Ok();
  };
  if (open_options.ingest) PWRCELL_RETURN_IF_ERROR(open(kIngestQueue, store.ingest));
  PWRCELL_RETURN_IF_ERROR(open(kConcertoQueue, store.concerto));
  PWRCELL_RETURN_IF_ERROR(open(kConcertoTelemetryQueue, store.concerto_telemetry));
  PWRCELL_RETURN_IF_ERROR(open(kCesQueue, store.ces));
  auto coordination = adapters::SqliteCoordination::Create(store.database);
  if (!coordination.ok()) return coordination.status();
  store.coordination = std::move(*coordination);
  return store;
}

Result<Store> OpenAws(const config::Config& config, Metrics* metrics, const StoreOpenOptions& open_options) {
  auto options = AwsOptionsFromConfig(config);
  if (!options.ok()) return options.status();
  Store store;
  store.aws = std::make_shared<adapters::aws::AwsClient>(std::move(*options), metrics);
  auto devices = adapters::aws::DynamoDbDeviceStore::Open(store.aws, config.aws.device_table);
  if (!devices.ok()) return devices.status();
  store.devices = std::move(*devices);
  auto coordination = adapters::aws::DynamoDbCoordination::Open(store.aws, config.aws.coordination_table);
  if (!coordination.ok()) return coordination.status();
  store.coordination = std::move(*coordination);
  adapters::aws::SqsQueueOptions queue_options;
  queue_options.wait_time = std::chrono::seconds(config.aws.receive_wait_s);
  auto open = [&](const std::string& name, std::unique_ptr<ports::Queue>& out) -> Status {
    auto queue = adapters::aws::SqsQueue::Open(store.aws, name, queue_options);
    if (!queue.ok()) return queue.status();
    out = std::move(*queue);
    return Status::Ok();
  };
  if (open_options.ingest) PWRCELL_RETURN_IF_ERROR(open(config.aws.ingest_queue, store.ingest));
  PWRCELL_RETURN_IF_ERROR(open(config.aws.concerto_queue, store.concerto));
  PWRCELL_RETURN_IF_ERROR(open(config.aws.concerto_telemetry_queue, store.concerto_telemetry));
  PWRCELL_RETURN_IF_ERROR(open(config.aws.ces_queue, store.ces));
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

Result<adapters::aws::AwsOptions> AwsOptionsFromConfig(const config::Config& config) {
  const std::string region = config.aws.region;
  auto options = adapters::aws::AwsOptions::FromEnvironment([&region](const char* name) -> const char* {
    // [aws] region wins over the environment's.
    if (!region.empty() && (std::string_view(name) == "AWS_REGION")) return region.c_str();
    return std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read at start, before threads
  });
  if (!options.ok()) return options.status();
  return options;
}

std::function<Result<std::unique_ptr<BatchScope>>()> SqliteBatchScopes(adapters::SqliteDatabase& database,
                                                                       adapters::SqliteUnitOfWork::Mode mode) {
  return [&database, mode]() -> Result<std::unique_ptr<BatchScope>> {
    auto unit = database.BeginUnitOfWork();
    if (!unit.ok()) return unit.status();
    return std::unique_ptr<BatchScope>(std::make_unique<SqliteBatchScope>(std::move(*unit), mode));
  };
}

Result<Store> Store::Open(const config::Config& config, const ports::Clock& clock, Metrics* metrics,
                          const StoreOpenOptions& options) {
  if (config.backend.kind == "aws") {
    auto store = OpenAws(config, metrics, options);
    if (!store.ok()) return store.status().WithContext("store aws");
    return store;
  }
  auto store = OpenEmbedded(config, clock, options);
  if (!store.ok()) return store.status().WithContext("store " + config.storage.path);
  return store;
}

std::function<Result<std::unique_ptr<BatchScope>>()> StoreBatchScopes(const Store& store,
                                                                      adapters::SqliteUnitOfWork::Mode mode) {
  if (!store.database) return {};
  return SqliteBatchScopes(*store.database, mode);
}

}  // namespace pwrcell::runtime::serve
