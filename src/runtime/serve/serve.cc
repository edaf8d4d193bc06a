#include "runtime/serve/serve.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "adapters/ces/ces_client.h"
#include "adapters/concerto/concerto_client.h"
#include "adapters/file/file_secret_store.h"
#include "adapters/memory/clocks.h"
#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_device_store.h"
#include "adapters/sqlite/sqlite_queue.h"
#include "common/metrics.h"
#include "domain/record_decoding.h"
#include "processes/ces_state.h"
#include "processes/concerto_gateway.h"
#include "processes/device_metadata_processor.h"
#include "processes/pwrcell_gateway.h"
#include "processes/registrar.h"
#include "processes/simulated_systems.h"
#include "processes/telemetry_processor.h"
#include "runtime/http/admin_server.h"
#include "runtime/http/ingest_server.h"
#include "runtime/serve/queue_workers.h"
#include "runtime/serve/scheduler.h"

namespace pwrcell::runtime::serve {
namespace {

Duration Clamp(Duration d, Duration lo, Duration hi) { return std::min(std::max(d, lo), hi); }

// Everything `serve` and `replay` open in the store file.
struct Store {
  std::shared_ptr<adapters::SqliteDatabase> database;
  std::unique_ptr<adapters::SqliteDeviceStore> devices;
  std::unique_ptr<adapters::SqliteQueue> ingest, concerto, concerto_telemetry, ces;
};

Result<Store> OpenStore(const config::Config& config, const ports::Clock& clock) {
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
  return store;
}

// One SQLite transaction as the scope of a worker round (queue_workers.h): one fsync per batch.
class SqliteBatchScope final : public BatchScope {
 public:
  explicit SqliteBatchScope(adapters::SqliteUnitOfWork unit) : unit_(std::move(unit)) {}
  Status Commit() override { return unit_.Commit(); }

 private:
  adapters::SqliteUnitOfWork unit_;
};

std::function<Result<std::unique_ptr<BatchScope>>()> SqliteBatchScopes(adapters::SqliteDatabase& database) {
  return [&database]() -> Result<std::unique_ptr<BatchScope>> {
    auto unit = database.BeginUnitOfWork();
    if (!unit.ok()) return unit.status();
    return std::unique_ptr<BatchScope>(std::make_unique<SqliteBatchScope>(std::move(*unit)));
  };
}

// Stores records in the ingest queue, in batches of the queue's limit.
Status SendRecords(ports::Queue& queue, const std::vector<std::string>& records) {
  for (std::size_t begin = 0; begin < records.size(); begin += ports::kMaxQueueBatch) {
    std::vector<std::string> chunk(records.begin() + static_cast<std::ptrdiff_t>(begin),
                                   records.begin() + static_cast<std::ptrdiff_t>(std::min(records.size(), begin + ports::kMaxQueueBatch)));
    auto sent = queue.SendBatch(chunk);
    if (!sent.ok()) return sent.status().WithContext("storing telemetry records");
  }
  return Status::Ok();
}

void DescribeGauges(Metrics& m) {
  m.Describe("pwrcell_queue_depth", Metrics::Type::kGauge, "Messages in a queue, by queue and state (visible, in_flight)");
  m.Describe("pwrcell_dead_letters", Metrics::Type::kGauge, "Messages in a queue's dead-letter store");
  m.Describe("pwrcell_devices", Metrics::Type::kGauge, "Registered systems, by kind and remote_state");
  m.Describe("pwrcell_devices_by_commissioning", Metrics::Type::kGauge,
             "Registered systems, by kind and commissioning state");
  m.Describe("pwrcell_up", Metrics::Type::kGauge, "1 while serve runs");
}

}  // namespace

int RunServe(const config::Config& config, const ServeOptions& options) {
  // Block the stop signals in every thread; the main thread waits for them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  adapters::SystemClock clock;
  Metrics metrics;
  DescribeGauges(metrics);

  auto secrets = adapters::FileSecretStore::Open(config.secrets.path);
  if (!secrets.ok()) {
    spdlog::critical("cannot start: secrets file: {}", secrets.status().ToString());
    return 1;
  }
  for (const auto& id : {config.concerto.credentials_secret, config.ces.credentials_secret}) {
    auto value = (*secrets)->Get(id);
    if (!value.ok()) {
      spdlog::critical("cannot start: secret {}: {}", id, value.status().ToString());
      return 1;
    }
  }
  auto opened = OpenStore(config, clock);
  if (!opened.ok()) {
    spdlog::critical("cannot start: store {}: {}", config.storage.path, opened.status().ToString());
    return 1;
  }
  Store& store = *opened;

  adapters::ConcertoClient concerto(adapters::ConcertoClientOptions::FromConfig(config.concerto), **secrets, clock,
                                    &metrics);
  adapters::CesClient ces(adapters::CesClientOptions::FromConfig(config.ces), **secrets, clock, &metrics);

  processes::Settings settings;
  settings.adapter_name = config.adapter.name;
  settings.auto_commissioning = config.adapter.auto_commissioning;
  settings.offline_timeout = config.liveness.offline_timeout_s;
  settings.record_interval = config.liveness.record_interval_s;
  settings.metadata_refresh = config.schedule.metadata_refresh_s;
  settings.page_size = config.concerto.page_size;
  settings.status_batch_size = config.ces.status_batch_size;
  const Duration poll = config.schedule.registrar_poll_s;
  settings.request_repeat_after = Clamp(poll * 10, std::chrono::seconds(30), std::chrono::minutes(10));
  settings.list_assets_expiry =
      Clamp(Duration(config.queues.visibility_timeout_s) * (config.queues.max_receives + 1), std::chrono::minutes(1),
            std::chrono::hours(1));

  processes::Shared shared(clock.Now());
  processes::Context context{*store.devices, *store.concerto, *store.concerto_telemetry, *store.ces, clock, metrics,
                             shared, settings, nullptr};
  context.source_progress = [&store] {
    domain::SourceProgress progress;
    auto stats = store.ingest->Stats();
    if (stats.ok()) progress.ingest_backlog = stats->visible + stats->in_flight;
    return progress;
  };

  processes::TelemetryProcessor telemetry(context);
  processes::DeviceMetadataProcessor metadata(context);
  processes::CesStateProcessor ces_state(context);
  processes::Registrar registrar(context, metadata);
  processes::RegistrarPoller registrar_poller(context);
  processes::CesStatePoller ces_poller(context);
  processes::ConcertoGateway concerto_gateway(context, concerto, registrar);
  processes::PwrcellGateway pwrcell_gateway(context, ces, metadata, ces_state);

  const Duration visibility = config.queues.visibility_timeout_s;
  auto worker_options = [&](std::string name, int threads, std::size_t batch) {
    WorkerOptions o;
    o.name = std::move(name);
    o.threads = threads;
    o.batch = batch;
    o.visibility_timeout = visibility;
    o.max_receives = config.queues.max_receives;
    // The backoff between deliveries, not the visibility timeout, decides how long an outage the
    // max_receives deliveries of a message span before it is dead-lettered: capped at the
    // visibility timeout, a short one (10 s) buried telemetry after ~45 s of Concerto outage. With
    // a cap of at least 60 s, 5 deliveries span 5+10+20+40 s: a minute-long outage loses nothing.
    o.retry_max = std::max(visibility, Duration(std::chrono::seconds(60)));
    o.retry_base = std::min(Duration(std::chrono::seconds(5)), visibility);
    return o;
  };
  // The telemetry handler makes no network call: a whole round (receive up to 100 records,
  // update their devices, queue their points, delete them) is one transaction, one fsync.
  WorkerOptions telemetry_options = worker_options("telemetry", 2, 100);
  telemetry_options.batch_scope = SqliteBatchScopes(*store.database);
  QueueWorkers telemetry_workers(
      telemetry_options, {store.ingest.get()},
      [&](const std::vector<ports::ReceivedMessage>& batch) {
        std::vector<processes::StreamRecord> records;
        records.reserve(batch.size());
        for (const auto& m : batch) records.push_back({m.body, m.id});
        return telemetry.ProcessRecords(records);
      },
      metrics);
  auto one_by_one = [](auto handle) {
    return [handle](const std::vector<ports::ReceivedMessage>& batch) {
      std::vector<Status> results;
      results.reserve(batch.size());
      for (const auto& m : batch) results.push_back(handle(m));
      return results;
    };
  };
  QueueWorkers concerto_workers(worker_options("concerto", config.concerto.workers, 1),
                                {store.concerto.get(), store.concerto_telemetry.get()},
                                one_by_one([&](const ports::ReceivedMessage& m) -> Status {
                                  auto request = processes::DecodeConcertoRequest(m.body);
                                  if (!request.ok()) return request.status();
                                  return concerto_gateway.Handle(*request);
                                }),
                                metrics);
  QueueWorkers ces_workers(worker_options("ces", config.ces.workers, 1), {store.ces.get()},
                           one_by_one([&](const ports::ReceivedMessage& m) -> Status {
                             auto request = processes::DecodeCesRequest(m.body);
                             if (!request.ok()) return request.status();
                             return pwrcell_gateway.Handle(*request);
                           }),
                           metrics);

  auto ingest_sink = [&](const std::vector<std::string>& records) {
    // All chunks in one transaction: one fsync, and stored all or none (the sender retries).
    auto unit = store.database->BeginUnitOfWork();
    if (!unit.ok()) return unit.status().WithContext("storing telemetry records");
    Status stored = SendRecords(*store.ingest, records);
    if (stored.ok()) stored = unit->Commit().WithContext("storing telemetry records");
    if (stored.ok()) telemetry_workers.Wake();
    return stored;
  };
  processes::SimulatedTelemetry simulated(context, config.simulated.record_interval_s, ingest_sink);

  std::atomic<bool> ready{false};
  http::AdminHooks hooks;
  hooks.readiness = [&]() -> std::pair<bool, std::string> {
    if (!ready.load()) return {false, "starting or stopping"};
    auto stats = store.ingest->Stats();
    if (!stats.ok()) return {false, "store: " + stats.status().ToString()};
    return {true, "ready"};
  };
  hooks.refresh_gauges = [&] {
    metrics.Set("pwrcell_up", {}, 1);
    const std::pair<const char*, ports::Queue*> queues[] = {{kIngestQueue, store.ingest.get()},
                                                            {kConcertoQueue, store.concerto.get()},
                                                            {kConcertoTelemetryQueue, store.concerto_telemetry.get()},
                                                            {kCesQueue, store.ces.get()}};
    for (const auto& [name, queue] : queues) {
      auto stats = queue->Stats();
      if (!stats.ok()) continue;
      metrics.Set("pwrcell_queue_depth", {{"queue", name}, {"state", "visible"}}, static_cast<double>(stats->visible));
      metrics.Set("pwrcell_queue_depth", {{"queue", name}, {"state", "in_flight"}},
                  static_cast<double>(stats->in_flight));
      metrics.Set("pwrcell_dead_letters", {{"queue", name}}, static_cast<double>(stats->dead_letter));
    }
    auto devices = store.devices->List();
    if (!devices.ok()) return;
    metrics.ClearFamily("pwrcell_devices");
    metrics.ClearFamily("pwrcell_devices_by_commissioning");
    for (const char* kind : {"real", "simulated"}) {
      for (const char* state : {"ONLINE", "OFFLINE", "ERROR", "NONE"}) {
        metrics.Set("pwrcell_devices", {{"kind", kind}, {"remote_state", state}}, 0);
      }
    }
    for (const auto& d : *devices) {
      const std::string kind = d.is_simulated ? "simulated" : "real";
      const std::string state = d.remote_state ? std::string(domain::RemoteStateName(*d.remote_state)) : "NONE";
      metrics.Increment("pwrcell_devices", {{"kind", kind}, {"remote_state", state}});
      metrics.Increment("pwrcell_devices_by_commissioning",
                        {{"kind", kind}, {"state", std::string(domain::CommissioningStateName(d.commissioning.state))}});
    }
  };

  http::IngestServer ingest_server(config.telemetry, ingest_sink, metrics);
  http::AdminServer admin_server(config.admin, *store.devices, metrics, hooks);
  if (Status s = admin_server.Start(); !s.ok()) {
    spdlog::critical("cannot start: admin server: {}", s.ToString());
    return 1;
  }
  if (Status s = ingest_server.Start(); !s.ok()) {
    spdlog::critical("cannot start: telemetry ingest: {}", s.ToString());
    admin_server.Stop();
    return 1;
  }

  telemetry_workers.Start();
  concerto_workers.Start();
  ces_workers.Start();

  Scheduler scheduler;
  scheduler.Add("registrar_poller", config.schedule.registrar_poll_s, [&] {
    Status s = registrar_poller.Poll();
    concerto_workers.Wake();
    return s;
  });
  // The first CES state poll waits for the first registration to have a chance to finish.
  scheduler.Add(
      "ces_state_poller", config.schedule.ces_state_poll_s,
      [&] {
        Status s = ces_poller.Poll();
        ces_workers.Wake();
        return s;
      },
      std::min(Duration(config.schedule.ces_state_poll_s), Duration(std::chrono::seconds(5))));
  scheduler.Add(
      "liveness_sweep", config.schedule.liveness_sweep_s,
      [&] {
        Status s = ces_state.Sweep();
        concerto_workers.Wake();
        return s;
      },
      std::min(Duration(config.schedule.liveness_sweep_s), Duration(std::chrono::seconds(2))));
  const Duration sim_tick = std::min(Duration(config.simulated.record_interval_s), Duration(std::chrono::seconds(1)));
  scheduler.Add("simulated_telemetry", sim_tick, [&]() -> Status {
    auto produced = simulated.Tick();
    return produced.status();
  });
  scheduler.Start();
  ready.store(true);

  spdlog::info("serve: adapter \"{}\", Concerto {}, CES {}, auto-commissioning {}", config.adapter.name,
               config.concerto.root_url, config.ces.root_url, config.adapter.auto_commissioning ? "on" : "off");
  spdlog::info("serve: telemetry ingest on http://{}:{}/v1/telemetry", config.telemetry.listen.host,
               ingest_server.port());
  spdlog::info("serve: admin API on http://{}:{}/ (healthz, readyz, metrics, api/devices)", config.admin.listen.host,
               admin_server.port());
  spdlog::info("serve: store {}; workers: concerto {}, ces {}, telemetry 2", config.storage.path,
               config.concerto.workers, config.ces.workers);
  if (options.on_ready) options.on_ready(ingest_server.port(), admin_server.port());

  if (options.stop_flag != nullptr) {
    while (!options.stop_flag->load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } else {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    spdlog::info("serve: {} received; stopping", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  }

  ready.store(false);
  ingest_server.Stop();  // no new records; accepted ones are already stored
  scheduler.Stop();
  telemetry_workers.Stop();  // in-flight work finishes; unfinished messages come back later
  concerto_workers.Stop();
  ces_workers.Stop();
  admin_server.Stop();
  spdlog::info("serve: stopped cleanly");
  return 0;
}

int Replay(const config::Config& config, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "replay: cannot open " << path << "\n";
    return 4;
  }
  adapters::SystemClock clock;
  auto opened = OpenStore(config, clock);
  if (!opened.ok()) {
    std::cerr << "replay: store " << config.storage.path << ": " << opened.status().ToString() << "\n";
    return 1;
  }
  std::vector<std::string> pending;
  std::size_t stored = 0, skipped = 0, index = 0;
  auto flush = [&]() -> bool {
    Status s = SendRecords(*opened->ingest, pending);
    if (!s.ok()) {
      std::cerr << "replay: " << s.ToString() << "\n";
      return false;
    }
    stored += pending.size();
    pending.clear();
    return true;
  };
  while (true) {
    unsigned char header[4];
    in.read(reinterpret_cast<char*>(header), 4);
    if (in.gcount() == 0) break;
    if (in.gcount() != 4) {
      std::cerr << "replay: " << path << " is truncated after record " << index << "\n";
      if (!flush()) return 1;
      return 5;
    }
    const std::uint32_t size = (std::uint32_t{header[0]} << 24) | (std::uint32_t{header[1]} << 16) |
                               (std::uint32_t{header[2]} << 8) | std::uint32_t{header[3]};
    std::string data(size, '\0');
    in.read(data.data(), size);
    if (static_cast<std::uint32_t>(in.gcount()) != size) {
      std::cerr << "replay: " << path << " is truncated in record " << index << "\n";
      if (!flush()) return 1;
      return 5;
    }
    if (auto decoded = domain::DecodeRecordSet(data); !decoded.ok()) {
      std::cerr << "replay: skipping record " << index << ": " << decoded.status().message() << "\n";
      ++skipped;
    } else {
      pending.push_back(std::move(data));
      if (pending.size() >= 100 && !flush()) return 1;
    }
    ++index;
  }
  if (!flush()) return 1;
  std::cout << "replay: " << stored << " records stored in " << config.storage.path << " for serve, " << skipped
            << " skipped\n";
  return 0;
}

}  // namespace pwrcell::runtime::serve
