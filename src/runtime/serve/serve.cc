#include "runtime/serve/serve.h"

#include <spdlog/spdlog.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "adapters/aws/kinesis_source.h"
#include "adapters/aws/secrets_manager_secret_store.h"
#include "adapters/ces/ces_client.h"
#include "adapters/concerto/concerto_client.h"
#include "adapters/file/file_secret_store.h"
#include "adapters/http/ca_bundle.h"
#include "common/metrics.h"
#include "common/url.h"
#include "domain/record_decoding.h"
#include "processes/messages.h"
#include "processes/processes.h"
#include "processes/shared_state.h"
#include "runtime/http/admin_server.h"
#include "runtime/http/ingest_server.h"
#include "runtime/serve/process_graph.h"
#include "runtime/serve/queue_workers.h"
#include "runtime/serve/scheduler.h"
#include "runtime/serve/serve_metrics.h"
#include "runtime/serve/worker_options.h"

namespace pwrcell::runtime::serve {
namespace {

// Stores records in the ingest queue, in batches of the queue's limit.
Status SendRecords(ports::Queue& queue, const std::vector<std::string>& records) {
  for (std::size_t begin = 0; begin < records.size(); begin += ports::kMaxQueueBatch) {
    std::vector<std::string> chunk(
        records.begin() + static_cast<std::ptrdiff_t>(begin),
        records.begin() + static_cast<std::ptrdiff_t>(std::min(records.size(), begin + ports::kMaxQueueBatch)));
    auto sent = queue.SendBatch(chunk);
    if (!sent.ok()) return sent.status().WithContext("storing telemetry records");
  }
  return Status::Ok();
}

// Concurrent ingest requests share one transaction and one fsync (group commit). A request
// joins the queue; the first one to find no commit running becomes the leader and stores every
// request queued so far (its own included) with `commit`, then hands each of them the result. A
// failure fails the whole group (each is answered 503 / 500 and sends again); no request is
// answered before the transaction holding its records has committed. While one group commits,
// the next one gathers, so the fsyncs per second stay bounded and the records per fsync grow with
// the load.
class GroupCommit {
 public:
  using Commit = std::function<Status(const std::vector<const std::vector<std::string>*>& groups)>;
  explicit GroupCommit(Commit commit) : commit_(std::move(commit)) {}

  // Thread-safe; blocks until `records` are committed or failed.
  Status Store(const std::vector<std::string>& records) {
    Waiter me{&records, Status::Ok(), false};
    std::unique_lock lock(mutex_);
    queued_.push_back(&me);
    while (!me.done) {
      if (committing_) {
        done_.wait(lock);
        continue;
      }
      committing_ = true;
      std::vector<Waiter*> group;
      group.swap(queued_);
      lock.unlock();
      std::vector<const std::vector<std::string>*> batches;
      batches.reserve(group.size());
      for (const Waiter* w : group) batches.push_back(w->records);
      const Status result = commit_(batches);
      lock.lock();
      for (Waiter* w : group) {
        w->result = result;
        w->done = true;
      }
      committing_ = false;
      done_.notify_all();
    }
    return me.result;
  }

 private:
  struct Waiter {
    const std::vector<std::string>* records;
    Status result;
    bool done = false;
  };
  const Commit commit_;
  std::mutex mutex_;
  std::condition_variable done_;
  std::vector<Waiter*> queued_;  // guarded by mutex_
  bool committing_ = false;      // guarded by mutex_
};

// A handler of single messages as a pool handler: one Status per message, in order. The handling
// (network calls) is all in the first step, outside the round's unit of work; the unit holds only
// the disposals (queue_workers.h).
template <typename Handle>
QueueWorkers::PreparedHandler OneByOne(Handle handle) {
  return [handle](const std::vector<ports::ReceivedMessage>& batch) {
    std::vector<Status> results;
    results.reserve(batch.size());
    for (const auto& m : batch) results.push_back(handle(m));
    return std::function<std::vector<Status>()>([results = std::move(results)] { return results; });
  };
}

}  // namespace

Result<std::unique_ptr<ports::SecretStore>> OpenSecretStore(const config::Config& config) {
  if (config.secrets.backend == "aws") {
    auto options = AwsOptionsFromConfig(config);
    if (!options.ok()) return options.status().WithContext("secrets backend aws");
    return std::unique_ptr<ports::SecretStore>(std::make_unique<adapters::aws::SecretsManagerSecretStore>(
        std::make_shared<adapters::aws::AwsClient>(std::move(*options))));
  }
  if (config.secrets.backend != "file") {
    return InvalidArgumentError("secrets backend \"" + config.secrets.backend + "\" is not supported");
  }
  auto store = adapters::FileSecretStore::Open(config.secrets.path);
  if (!store.ok()) return store.status();  // its messages name the file
  return std::unique_ptr<ports::SecretStore>(std::move(*store));
}

// Everything the app wires, declared in construction order: each member refers only to members
// above it, and is destroyed before them.
struct ServeApp::Parts {
  Parts(const config::Config& cfg, const ports::Clock& clk, ports::SecretStore& secrets,
        std::unique_ptr<Metrics> registry, Store opened)
      : config(cfg),
        clock(clk),
        metrics_owned(std::move(registry)),
        metrics(*metrics_owned),
        store(std::move(opened)),
        concerto(adapters::ConcertoClientOptions::FromConfig(config.concerto), secrets, clock, &metrics),
        ces(adapters::CesClientOptions::FromConfig(config.ces), secrets, clock, &metrics),
        graph(ProcessContext(store, clock, metrics, config), concerto, ces, config.simulated.record_interval_s,
              [this](const auto& records) { return Ingest(records); }),
        pools(PoolOptionsFromConfig(config)),
        telemetry_workers(TelemetryPoolOptions(), {store.ingest.get()}, TelemetryPoolHandler(graph.telemetry), metrics),
        concerto_workers(ConcertoPoolOptions(), {store.concerto.get(), store.concerto_telemetry.get()},
                         OneByOne([this](const ports::ReceivedMessage& m) -> Status {
                           auto request = processes::DecodeConcertoRequest(m.body);
                           if (!request.ok()) return request.status();
                           return graph.concerto_gateway.Handle(*request);
                         }),
                         metrics),
        ces_workers(CesPoolOptions(), {store.ces.get()}, OneByOne([this](const ports::ReceivedMessage& m) -> Status {
                      auto request = processes::DecodeCesRequest(m.body);
                      if (!request.ok()) return request.status();
                      return graph.pwrcell_gateway.Handle(*request);
                    }),
                    metrics),
        ingest_server(
            config.telemetry, [this](const auto& records) { return Ingest(records); }, metrics, &secrets),
        admin_server(config.admin, *store.devices, metrics, MakeAdminHooks(), &secrets) {
    // HTTP ingest (and replay) is a push source: it cannot see what its senders still hold, so it
    // reports no lag and the startup grace lasts offline_timeout from start (SPEC section 4).
    graph.context.source_progress = [] { return domain::SourceProgress{}; };
    if (store.database) {
      store.database->SetTroubleHook(
          [this](std::string_view reason) { gauges.store_write_failures.Increment({reason}); });
    }
    Schedule();
  }

  // Disk trouble of the embedded store (SqliteDatabase::Trouble): empty while it can be written.
  std::string StoreTrouble() const { return store.database ? store.database->Trouble() : std::string(); }
  bool StoreInTrouble() const { return store.database && store.database->InTrouble(); }

  // Every second: while the store is in trouble, one small write (ProbeWrite) finds out whether it
  // can be written again, so that serve recovers on its own when space returns or the file system
  // is writable again, even when no ingest request comes to try. Logs when the trouble begins and
  // ends. At its end the startup grace begins again (SPEC section 4): the senders were refused
  // meanwhile and still hold their records, so no system is moved to OFFLINE for the silence the
  // store caused.
  Status WatchStore() {
    if (!store.database) return Status::Ok();
    const auto now = std::chrono::steady_clock::now();
    if (store.database->InTrouble()) {
      if (!trouble_since) {
        trouble_since = now;
        spdlog::error("store: {}; ingest answers 503 and the workers wait until it can be written again",
                      store.database->Trouble());
      }
      if (Status probed = store.database->ProbeWrite(); !probed.ok()) return Status::Ok();  // still in trouble
    }
    if (!trouble_since) return Status::Ok();
    spdlog::info("store: can be written again after {} ms; resuming",
                 std::chrono::duration_cast<std::chrono::milliseconds>(now - *trouble_since).count());
    trouble_since.reset();
    if (Status s = processes::MarkAdapterStarted(*store.coordination, clock.Now()); !s.ok()) {
      spdlog::warn("store: restarting the startup grace: {}", s.ToString());
    }
    telemetry_workers.Wake();
    concerto_workers.Wake();
    ces_workers.Wake();
    return Status::Ok();
  }

  // The concerto and CES pools: receives and disposals in units committed kAtomic. A deletion
  // undone by a power loss sends the message again, as a crash before the deletion would: every
  // operation on these queues is idempotent (Concerto de-duplicates points; commissioning and
  // remote_state find what is done). Without this, each deletion was an fsync of its own, and on
  // a disk with ~25 ms fsyncs the deletions alone capped the sender near Concerto's 25 calls/s.
  WorkerOptions NetworkPoolOptions(WorkerOptions options) {
    options.batch_scope = StoreBatchScopes(store, adapters::SqliteUnitOfWork::Mode::kAtomic);
    options.store_trouble = StoreTroubleCheck();
    return options;
  }

  // WorkerOptions::store_trouble: the embedded store's trouble flag (none on AWS).
  std::function<bool()> StoreTroubleCheck() {
    if (!store.database) return {};
    return [database = store.database.get()] { return database->InTrouble(); };
  }

  // The concerto and ces pools pause while their service is down (unreachable, failing or rate
  // limiting after the client's retries: processes::IsOutage) and probe it with its cheapest
  // call, so that an outage of any length costs the waiting messages no deliveries and
  // dead-letters none (WorkerOptions::outage).
  WorkerOptions ConcertoPoolOptions() {
    WorkerOptions options = NetworkPoolOptions(pools.concerto);
    options.outage = processes::IsOutage;
    options.probe = [this] { return concerto.ListAssets(1, 1).status(); };
    return options;
  }

  // CES has no listing: the probe asks the status of one system id that names no system. Any
  // answer (a status batch, or a refusal of the id) says CES is there; only an outage status
  // (no connection, 5xx, timeout, 429) keeps the pool paused.
  WorkerOptions CesPoolOptions() {
    WorkerOptions options = NetworkPoolOptions(pools.ces);
    options.outage = processes::IsOutage;
    options.probe = [this] { return ces.GetStatus({"00000000-0000-0000-0000-000000000000"}).status(); };
    return options;
  }

  WorkerOptions TelemetryPoolOptions() {
    WorkerOptions options = pools.telemetry;
    // A round deletes its records in the unit that writes what came of them, so its commit need
    // not wait for the disk: undone by a power loss, its records come back (SqliteUnitOfWork::Mode).
    options.batch_scope = StoreBatchScopes(store, adapters::SqliteUnitOfWork::Mode::kAtomic);
    options.store_trouble = StoreTroubleCheck();
    return options;
  }

  // The sink of the ingest server and of simulated telemetry: stored all or none (the sender
  // retries), in one transaction and one fsync with the requests that arrived meanwhile.
  Status Ingest(const std::vector<std::string>& records) { return ingest_commits.Store(records); }

  Status StoreIngested(const std::vector<const std::vector<std::string>*>& groups) {
    if (!store.database) {
      // AWS: each SendBatch stands alone (SQS has no transactions); a request is answered only
      // once all its records are stored, so a failure makes the sender send them again (the
      // records stored before it are processed twice: harmless, see telemetry_processor.h).
      for (const auto* records : groups) PWRCELL_RETURN_IF_ERROR(SendRecords(*store.ingest, *records));
      telemetry_workers.Wake();
      return Status::Ok();
    }
    auto unit = store.database->BeginUnitOfWork();
    if (!unit.ok()) return unit.status().WithContext("storing telemetry records");
    Status stored;
    for (const auto* records : groups) {
      stored = SendRecords(*store.ingest, *records);
      if (!stored.ok()) return stored;  // the unit rolls back
    }
    stored = unit->Commit().WithContext("storing telemetry records");
    if (stored.ok()) telemetry_workers.Wake();
    return stored;
  }

  // The Kinesis telemetry source (`[backend] kind = "aws"` with a telemetry stream): each shard's
  // records go through the telemetry processor as one batch; the source checkpoints the records
  // handled (a retryable failure stops the batch there, to be read again).
  Status OpenKinesis() {
    adapters::aws::KinesisSourceOptions options;
    options.stream_name = config.aws.telemetry_stream;
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    std::random_device random;
    options.owner_id = std::string(host) + ":" + std::to_string(getpid()) + ":" + std::to_string(random());
    options.poll_interval =
        std::min(Duration(config.liveness.record_interval_s) / 2, Duration(std::chrono::seconds(1)));
    // A shard another process gave up (stopped) is found at the next listing, one a dead process
    // held when its lease expires: both well inside the offline timeout, so that a process going
    // away never makes a system look silent (30 s each with the defaults: 300 s records, 900 s
    // timeout).
    options.relist_interval = std::clamp(Duration(config.liveness.record_interval_s), Duration(std::chrono::seconds(1)),
                                         Duration(std::chrono::seconds(30)));
    options.lease_ttl = std::clamp(Duration(config.liveness.offline_timeout_s) / 2, Duration(std::chrono::seconds(3)),
                                   Duration(std::chrono::seconds(30)));
    auto source = adapters::aws::KinesisSource::Open(
        std::move(options), *store.aws, *store.coordination, clock,
        [this](const adapters::aws::KinesisBatch& batch) {
          std::vector<processes::StreamRecord> records;
          records.reserve(batch.records.size());
          for (const auto& r : batch.records) records.push_back({r.data, batch.shard_id + "/" + r.sequence_number});
          auto results = graph.telemetry.ProcessRecords(records);
          concerto_workers.Wake();
          return results;
        },
        &metrics);
    if (!source.ok()) return source.status().WithContext("telemetry stream");
    kinesis = std::move(*source);
    // A stream reports how far behind it is: the startup grace ends once it has caught up.
    graph.context.source_progress = [this] { return kinesis->Progress(); };
    return Status::Ok();
  }

  http::AdminHooks MakeAdminHooks() {
    http::AdminHooks hooks;
    hooks.readiness = [this]() -> std::pair<bool, std::string> {
      if (!ready.load()) return {false, "starting or stopping"};
      if (std::string trouble = StoreTrouble(); !trouble.empty()) return {false, "store: " + trouble};
      auto stats = store.ingest->Stats();
      if (!stats.ok()) return {false, "store: " + stats.status().ToString()};
      return {true, "ready"};
    };
    hooks.refresh_gauges = [this] { RefreshGauges(); };
    hooks.store_trouble = [this] { return StoreTrouble(); };
    return hooks;
  }

  void RefreshGauges() {
    gauges.store_writable.Set(StoreInTrouble() ? 0 : 1);
    gauges.Refresh({{kIngestQueue, store.ingest.get()},
                    {kConcertoQueue, store.concerto.get()},
                    {kConcertoTelemetryQueue, store.concerto_telemetry.get()},
                    {kCesQueue, store.ces.get()}},
                   *store.devices);
  }

  void Schedule() {
    // Every task below writes to the store: while it cannot be written, they wait for WatchStore.
    scheduler.Add("store_watch", std::chrono::seconds(1), [this] { return WatchStore(); });
    scheduler.Add("registrar_poller", config.schedule.registrar_poll_s, [this] {
      if (StoreInTrouble()) return Status::Ok();
      Status s = graph.registrar_poller.Poll();
      concerto_workers.Wake();
      return s;
    });
    // The first CES state poll waits for the first registration to have a chance to finish.
    scheduler.Add(
        "ces_state_poller", config.schedule.ces_state_poll_s,
        [this] {
          if (StoreInTrouble()) return Status::Ok();
          Status s = graph.ces_poller.Poll();
          ces_workers.Wake();
          return s;
        },
        std::min(Duration(config.schedule.ces_state_poll_s), Duration(std::chrono::seconds(5))));
    scheduler.Add(
        "liveness_sweep", config.schedule.liveness_sweep_s,
        [this] {
          if (StoreInTrouble()) return Status::Ok();
          Status s = graph.ces_state.Sweep();
          concerto_workers.Wake();
          return s;
        },
        std::min(Duration(config.schedule.liveness_sweep_s), Duration(std::chrono::seconds(2))));
    const Duration sim_tick = std::min(Duration(config.simulated.record_interval_s), Duration(std::chrono::seconds(1)));
    scheduler.Add(
        "simulated_telemetry", sim_tick,
        [this]() -> Status {
          if (StoreInTrouble()) return Status::Ok();
          return graph.simulated.Tick().status();
        },
        Duration::zero(), /*quiet=*/true);
  }

  const config::Config config;
  const ports::Clock& clock;
  const std::unique_ptr<Metrics> metrics_owned;  // made before the store (its AWS client counts)
  Metrics& metrics;
  const ServeMetrics gauges{&metrics};
  Store store;
  adapters::ConcertoClient concerto;
  adapters::CesClient ces;
  processes::Processes graph;  // the handlers; simulated telemetry goes through Ingest
  PoolOptions pools;
  QueueWorkers telemetry_workers;
  QueueWorkers concerto_workers;
  QueueWorkers ces_workers;
  std::atomic<bool> ready{false};
  GroupCommit ingest_commits{[this](const auto& groups) { return StoreIngested(groups); }};
  http::IngestServer ingest_server;
  http::AdminServer admin_server;
  Scheduler scheduler;
  std::optional<std::chrono::steady_clock::time_point> trouble_since;  // WatchStore's thread only
  std::unique_ptr<adapters::aws::KinesisSource> kinesis;               // AWS with a telemetry stream only
};

Result<std::unique_ptr<ServeApp>> ServeApp::Create(const config::Config& config, const ports::Clock& clock,
                                                   ports::SecretStore& secrets) {
  // The loader refuses this already; a Config made in code must not open the admin API either.
  if (!config::IsLoopback(config.admin.listen) &&
      (!config.admin.allow_remote || config.admin.access_key_secret.empty())) {
    return InvalidArgumentError("admin.listen " + config.admin.listen.ToString() +
                                " is not a loopback address: it needs admin.allow_remote and admin.access_key_secret");
  }
  for (const auto& [key, path] : {std::pair<std::string, std::string>{"concerto.ca_file", config.concerto.ca_file},
                                  std::pair<std::string, std::string>{"ces.ca_file", config.ces.ca_file}}) {
    if (!path.empty()) PWRCELL_RETURN_IF_ERROR(adapters::CheckCaFile(key, path));
  }
  for (const auto& id : {config.concerto.credentials_secret, config.ces.credentials_secret}) {
    auto value = secrets.Get(id);
    if (!value.ok()) return value.status().WithContext("secret " + id);
  }
  auto metrics = std::make_unique<Metrics>();
  auto store = Store::Open(config, clock, metrics.get());
  if (!store.ok()) return store.status();
  auto parts = std::make_unique<Parts>(config, clock, secrets, std::move(metrics), std::move(*store));
  // The secrets' shape too (not only that they exist): a malformed one stops the start here
  // instead of dead-lettering the first request that needs it.
  if (Status s = parts->concerto.CheckCredentials(); !s.ok()) return s;
  if (Status s = parts->ces.CheckCredentials(); !s.ok()) return s;
  if (config.backend.kind == "aws" && !config.aws.telemetry_stream.empty()) {
    PWRCELL_RETURN_IF_ERROR(parts->OpenKinesis());
  }
  return std::unique_ptr<ServeApp>(new ServeApp(std::move(parts)));
}

ServeApp::ServeApp(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

ServeApp::~ServeApp() {
  (void)Stop();
}

Status ServeApp::Start() {
  if (state_ != State::kCreated) return FailedPreconditionError("serve: an app starts once");
  Parts& p = *parts_;
  state_ = State::kStopped;  // whatever fails below leaves nothing running
#if defined(__GLIBC__)
  // Request bodies (up to telemetry.max_body_bytes) and their parse buffers are large,
  // short-lived allocations on many threads. By default glibc raises its mmap threshold to the
  // size of the last such block freed, after which they come from per-thread arenas that keep
  // the memory: eight concurrent 5 MiB bodies left serve ~130 MiB larger for good. A fixed
  // threshold keeps them mmapped and given back when freed (bench/ingest_flood_probe.py,
  // docs/BENCHMARKS.md "HTTP limits").
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
  // The startup grace begins (again, for every process on this store): records held by the
  // senders while this process was down may still come.
  if (Status s = processes::MarkAdapterStarted(*p.store.coordination, p.clock.Now()); !s.ok()) {
    return s.WithContext("recording the start in the store");
  }
  if (Status s = p.admin_server.Start(); !s.ok()) return s.WithContext("admin server");
  if (Status s = p.ingest_server.Start(); !s.ok()) {
    p.admin_server.Stop();
    return s.WithContext("telemetry ingest");
  }
  p.telemetry_workers.Start();
  p.concerto_workers.Start();
  p.ces_workers.Start();
  if (p.kinesis) {
    if (Status s = p.kinesis->Start(); !s.ok()) {
      p.telemetry_workers.Stop();
      p.concerto_workers.Stop();
      p.ces_workers.Stop();
      p.ingest_server.Stop();
      p.admin_server.Stop();
      return s.WithContext("telemetry stream");
    }
  }
  p.scheduler.Start();
  p.ready.store(true);
  state_ = State::kRunning;

  const config::Config& config = p.config;
  spdlog::info("serve: adapter \"{}\", Concerto {}, CES {}, auto-commissioning {}", config.adapter.name,
               RedactUrlCredentials(config.concerto.root_url), RedactUrlCredentials(config.ces.root_url),
               config.adapter.auto_commissioning ? "on" : "off");
  if (p.kinesis) {
    spdlog::info("serve: telemetry from Kinesis stream {} (owner {})", config.aws.telemetry_stream,
                 p.kinesis->options().owner_id);
  }
  spdlog::info("serve: telemetry ingest on {}://{}:{}/v1/telemetry",
               config.telemetry.tls_cert_file.empty() ? "http" : "https", config.telemetry.listen.host,
               p.ingest_server.port());
  spdlog::info("serve: admin API on http://{}:{}/ (healthz, readyz, metrics, api/devices)", config.admin.listen.host,
               p.admin_server.port());
  const std::string where =
      config.backend.kind == "aws"
          ? "aws (tables " + config.aws.device_table + ", " + config.aws.coordination_table + "; queues " +
                config.aws.ingest_queue + ", " + config.aws.concerto_queue + ", " +
                config.aws.concerto_telemetry_queue + ", " + config.aws.ces_queue + "; stream " +
                (config.aws.telemetry_stream.empty() ? std::string("none") : config.aws.telemetry_stream) + ")"
          : config.storage.path;
  spdlog::info("serve: store {}; workers: concerto {}, ces {}, telemetry {}", where, p.pools.concerto.threads,
               p.pools.ces.threads, p.pools.telemetry.threads);
  return Status::Ok();
}

Status ServeApp::Stop() {
  if (state_ != State::kRunning) {
    state_ = State::kStopped;
    return Status::Ok();
  }
  state_ = State::kStopped;
  Parts& p = *parts_;
  p.ready.store(false);
  p.ingest_server.Stop();            // no new records; accepted ones are already stored
  if (p.kinesis) p.kinesis->Stop();  // the batch in hand finishes and is checkpointed
  p.scheduler.Stop();
  p.telemetry_workers.Stop();  // in-flight work finishes; unfinished messages come back later
  p.concerto_workers.Stop();
  p.ces_workers.Stop();
  p.admin_server.Stop();
  spdlog::info("serve: stopped cleanly");
  return Status::Ok();
}

int ServeApp::ingest_port() const {
  return state_ == State::kRunning ? parts_->ingest_server.port() : 0;
}
int ServeApp::admin_port() const {
  return state_ == State::kRunning ? parts_->admin_server.port() : 0;
}

Result<ReplaySummary> Replay(const config::Config& config, const ports::Clock& clock, const std::string& path,
                             std::ostream& notes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open " + path);
  // A record's length prefix is checked against the bytes left in the file before anything is
  // allocated for it: a corrupt prefix must not cost up to 4 GiB of memory to find out.
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<std::uint64_t>(std::max<std::streamoff>(in.tellg(), 0));
  in.seekg(0, std::ios::beg);
  std::uint64_t offset = 0;
  auto opened = Store::Open(config, clock);
  if (!opened.ok()) return opened.status();
  ReplaySummary summary;
  std::vector<std::string> pending;
  auto flush = [&]() -> Status {
    PWRCELL_RETURN_IF_ERROR(SendRecords(*opened->ingest, pending));
    summary.stored += pending.size();
    pending.clear();
    return Status::Ok();
  };
  // The whole records before a cut are kept: they are stored, then the cut is reported.
  auto truncated = [&](const std::string& where) -> Status {
    PWRCELL_RETURN_IF_ERROR(flush());
    return InvalidArgumentError(path + " is truncated " + where + " (" + std::to_string(summary.stored) +
                                " whole records before it stored)");
  };
  for (std::size_t index = 0;; ++index) {
    unsigned char header[4];
    in.read(reinterpret_cast<char*>(header), 4);
    if (in.gcount() == 0) break;
    if (in.gcount() != 4) return truncated("after record " + std::to_string(index));
    const std::uint32_t size = (std::uint32_t{header[0]} << 24) | (std::uint32_t{header[1]} << 16) |
                               (std::uint32_t{header[2]} << 8) | std::uint32_t{header[3]};
    offset += 4;
    if (size > file_size - std::min(offset, file_size)) {
      return truncated("in record " + std::to_string(index) + " (it declares " + std::to_string(size) + " bytes, " +
                       std::to_string(file_size - std::min(offset, file_size)) + " are left)");
    }
    std::string data(size, '\0');
    in.read(data.data(), size);
    if (static_cast<std::uint32_t>(in.gcount()) != size) return truncated("in record " + std::to_string(index));
    offset += size;
    if (auto decoded = domain::DecodeRecordSet(data); !decoded.ok()) {
      notes << "replay: skipping record " << index << ": " << decoded.status().message() << "\n";
      ++summary.skipped;
    } else {
      pending.push_back(std::move(data));
      if (pending.size() >= 100) PWRCELL_RETURN_IF_ERROR(flush());
    }
  }
  PWRCELL_RETURN_IF_ERROR(flush());
  return summary;
}

}  // namespace pwrcell::runtime::serve
