// Benchmark: the Concerto sender draining a backlog of point messages (issue 10 item 4), composed
// as `serve` composes it: the SQLite store (a temp file), the concerto worker pool (threads and
// priority queues as serve, one message per handler call), ConcertoGateway and the real
// ConcertoClient (libcurl, token bucket, retries) over HTTP, against a minimal GraphQL server in
// a child process that authenticates and accepts every ingestTelemetry point (so the process's
// CPU time is the adapter's alone).
//
// The backlog is `--backlog` push_telemetry messages made by the telemetry stage's own packing
// (TelemetryProcessor over fleet-simulator records: ~496 points each). The drain then runs for
// `--seconds` (or until the backlog is gone) at `--rate` calls/s (Concerto's 25 by default; 0:
// unlimited, to find what the adapter alone can do). Reported: ingestTelemetry calls/s, points
// per call, adapter CPU per call (process CPU time / calls), messages left, and the time the
// whole backlog takes at the measured rate.
//
//   concerto_drain [--backlog N] [--seconds S] [--rate R] [--workers W] [--db-dir DIR]
//                  [--outage-systems N]
//
// --outage-systems N: the scripted fleet-scale outage run instead (RunOutage below): the backlog
// is made by the telemetry stage itself from N systems' records while Concerto answers 503, then
// Concerto recovers and the drain is measured while live telemetry keeps arriving.
//
// Exit status 1 when a call fails, a point is lost or a message is dead-lettered.
#include <httplib.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "adapters/concerto/concerto_client.h"
#include "adapters/memory/memory_coordination.h"
#include "adapters/memory/memory_secret_store.h"
#include "adapters/system/system_clock.h"
#include "config/config.h"
#include "domain/device.h"
#include "domain/telemetry_mapping.h"
#include "fleet/physics.h"
#include "fleet/system_spec.h"
#include "processes/concerto_gateway.h"
#include "processes/context.h"
#include "processes/device_metadata_processor.h"
#include "processes/messages.h"
#include "processes/processes.h"
#include "processes/registrar.h"
#include "processes/telemetry_processor.h"
#include "runtime/serve/queue_workers.h"
#include "runtime/serve/store.h"
#include "runtime/serve/worker_options.h"

namespace pwrcell::bench {
namespace {

struct Options {
  int backlog = 100000;
  double seconds = 60;
  double rate = 25;
  int workers = 0;  // 0: the configured default
  std::string db_dir;
  int outage_systems = 0;  // > 0: the scripted outage run with this many systems
};

template <typename T>
T Must(Result<T> result, std::string_view what) {
  if (!result.ok()) throw std::runtime_error(std::string(what) + ": " + result.status().ToString());
  return std::move(*result);
}
void Must(const Status& status, std::string_view what) {
  if (!status.ok()) throw std::runtime_error(std::string(what) + ": " + status.ToString());
}

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Counts occurrences of `needle` in `text`.
std::size_t Count(std::string_view text, std::string_view needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

// The child's availability: SIGUSR1 takes it down (every request answered 503), SIGUSR2 up.
std::atomic<bool> g_down{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");
extern "C" void OnDown(int) {
  g_down.store(true);
}
extern "C" void OnUp(int) {
  g_down.store(false);
}

// The child: answers Authenticate, ListAssets (an empty page: the paused pool's probe) and
// IngestTelemetry (accepting every point) until killed.
[[noreturn]] void ServeFakeConcerto(int port_pipe) {
  signal(SIGUSR1, OnDown);
  signal(SIGUSR2, OnUp);
  httplib::Server server;
  server.Post("/graphql", [](const httplib::Request& req, httplib::Response& res) {
    if (g_down.load()) {
      res.status = 503;
      res.set_content(R"({"errors":[{"message":"down for the benchmark"}]})", "application/json");
      return;
    }
    if (req.body.find(R"("operationName":"ListAssets")") != std::string::npos) {
      res.set_content(R"({"data":{"allAssets":{"totalCount":0,"data":{"assets":[]}}}})", "application/json");
      return;
    }
    if (req.body.find(R"("operationName":"Authenticate")") != std::string::npos) {
      res.set_content(R"({"data":{"authenticate":{"accessToken":"bench-token","expiresAt":"2099-01-01T00:00:00Z"}}})",
                      "application/json");
      return;
    }
    const std::size_t points = Count(req.body, R"("assetId":)");
    res.set_content(
        R"({"data":{"ingestTelemetry":{"accepted":)" + std::to_string(points) + R"(,"duplicates":0,"rejected":[]}}})",
        "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  if (write(port_pipe, &port, sizeof port) != sizeof port) _exit(1);
  close(port_pipe);
  server.listen_after_bind();
  _exit(0);
}

// N commissioned-looking systems (load-10k's composition, made-up asset ids) and their records.
struct LiveFleet {
  std::vector<fleet::SystemSpec> specs;
  std::vector<fleet::SystemState> states;
  std::vector<domain::DeviceRecord> devices;
  std::size_t next = 0;  // the next (interval * N + system) to produce
  Timestamp start = FromUnixMillis(1782036000000);

  explicit LiveFleet(int systems) {
    fleet::CompositionOptions composition;
    composition.ac_coupled_fraction = 0.3;
    for (int i = 0; i < systems; ++i) {
      const std::string id = fleet::FleetSystemId(10000, i);
      specs.push_back(fleet::MakeSystem(id, std::nullopt, composition));
      states.push_back(fleet::InitialState(specs.back()));
      const domain::SystemMetadata m = fleet::ToCesMetadata(specs.back());
      domain::DeviceRecord d;
      d.remote_id = id;
      d.name = "System " + id;
      const std::string prefix = "a" + std::to_string(i) + "-";
      d.concerto_asset_id = prefix + "system-0000-0000-0000-000000000000";
      d.site = domain::SiteRef{prefix + "site", m.site_id, m.site_name};
      std::vector<std::string> rcpns;
      for (const auto& inv : m.inverters) {
        d.inverters.push_back({prefix + "inverter-" + inv.rcpn, inv.rcpn});
        rcpns.push_back(inv.rcpn);
      }
      for (const auto& b : m.batteries) d.batteries.push_back({prefix + "battery-" + b.rcpn, b.rcpn});
      for (const auto& pv : m.pv_links) d.photovoltaics.push_back({prefix + "pv-" + pv.rcpn, pv.rcpn});
      if (m.site_meter_id) d.site_meter = domain::AssetRef{prefix + "meter-" + *m.site_meter_id, *m.site_meter_id};
      d.SetInverterRcpns(rcpns);
      d.metadata = m;
      d.commissioning = domain::Commissioning{domain::CommissioningState::kDone, ""};
      devices.push_back(std::move(d));
    }
  }

  // The next record of the fleet (system after system, interval after interval) and the device
  // it belongs to; nullopt for a silent system.
  std::optional<pwrcell::ces::v1::EnergyRecordSet> NextSet(const domain::DeviceRecord*& device) {
    const std::size_t n = specs.size();
    const std::size_t i = next % n;
    const Timestamp t = start + std::chrono::minutes(5) * static_cast<std::int64_t>(next / n + 1);
    ++next;
    device = &devices[i];
    return fleet::NextRecord(specs[i], states[i], t, std::chrono::minutes(5), fleet::SystemFaults{});
  }

  // The next `count` records, serialized.
  std::vector<std::string> Next(std::size_t count) {
    std::vector<std::string> out;
    const domain::DeviceRecord* device = nullptr;
    while (out.size() < count) {
      if (auto record = NextSet(device)) out.push_back(record->SerializeAsString());
    }
    return out;
  }
};

// Records of a 2,000-system fleet packed into queue messages by the mapping and the message
// encoder. `sink` gets them 1,000 at a time (the backlog of 100,000 is ~2 GB of text: never all in
// memory).
void MakeBacklog(int messages, std::size_t& points, const std::function<void(std::vector<std::string>&)>& sink) {
  LiveFleet fleet(2000);
  std::vector<std::string> bodies;
  std::vector<domain::TelemetryPoint> pending;
  points = 0;
  int made = 0;
  const domain::DeviceRecord* device = nullptr;
  while (made < messages) {
    auto record = fleet.NextSet(device);
    if (!record) continue;
    for (auto& p : domain::MapRecordSet(*record, *device).points) {
      pending.push_back(std::move(p));
      if (pending.size() == domain::kMaxPointsPerIngest) {
        points += pending.size();
        bodies.push_back(processes::EncodeConcertoRequest(processes::PushTelemetryRequest{std::move(pending)}));
        pending.clear();
        if (++made == messages || bodies.size() == 1000) {
          sink(bodies);
          bodies.clear();
        }
        if (made == messages) break;
      }
    }
  }
}

// The Concerto side of serve, as serve.cc composes it: the HTTP client with bench credentials and
// the gateway with the processes it needs.
struct Sender {
  adapters::MemorySecretStore secrets;
  adapters::ConcertoClient concerto;
  adapters::MemoryCoordination coordination;
  processes::Context context;
  processes::DeviceMetadataProcessor metadata{context};
  processes::Registrar registrar{context, metadata};
  processes::ConcertoGateway gateway{context, concerto, registrar};

  Sender(const config::Config& config, runtime::serve::Store& store, const ports::Clock& clock, Metrics& metrics)
      : secrets({{config.concerto.credentials_secret, R"({"email":"bench@example.com","password":"bench"})"}}),
        concerto(adapters::ConcertoClientOptions::FromConfig(config.concerto), secrets, clock, &metrics),
        context{
            *store.devices, *store.concerto, *store.concerto_telemetry, *store.ces, clock, metrics, coordination, {},
            nullptr} {}

  // The concerto pool's handler (serve.cc's OneByOne): every message handled in the first step,
  // outside the round's unit. `on_result` sees each Status.
  runtime::serve::QueueWorkers::PreparedHandler Handler(std::function<void(const Status&)> on_result = {}) {
    return [this, on_result](const std::vector<ports::ReceivedMessage>& batch) {
      std::vector<Status> results;
      for (const auto& m : batch) {
        auto request = processes::DecodeConcertoRequest(m.body);
        results.push_back(request.ok() ? gateway.Handle(*request) : request.status());
        if (on_result) on_result(results.back());
      }
      return std::function<std::vector<Status>()>([results] { return results; });
    };
  }
};

// The store file and configuration of a run against the fake Concerto on `port`.
config::Config RunConfig(const Options& options, int port, const std::filesystem::path& path) {
  config::Config config;
  config.storage.path = path.string();
  config.concerto.root_url = "http://127.0.0.1:" + std::to_string(port);
  config.concerto.max_requests_per_second = options.rate;
  if (options.workers > 0) config.concerto.workers = options.workers;
  return config;
}

int RunOutage(const Options& options, pid_t fake, int port, const std::filesystem::path& path);

int Run(const Options& options) {
  // The fake Concerto first (fork before any thread exists).
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe");
  const pid_t child = fork();
  if (child < 0) throw std::runtime_error("fork");
  if (child == 0) {
    close(fds[0]);
    ServeFakeConcerto(fds[1]);
  }
  close(fds[1]);
  int port = 0;
  if (read(fds[0], &port, sizeof port) != sizeof port || port <= 0) throw std::runtime_error("fake Concerto port");
  close(fds[0]);
  struct KillChild {
    pid_t pid;
    ~KillChild() {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } kill_child{child};

  const std::filesystem::path dir =
      options.db_dir.empty() ? std::filesystem::temp_directory_path() : std::filesystem::path(options.db_dir);
  const std::filesystem::path path = dir / ("concerto_drain_" + std::to_string(::getpid()) + ".db");
  struct RemoveFiles {
    std::filesystem::path path;
    ~RemoveFiles() {
      for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
    }
  } remove_files{path};

  if (options.outage_systems > 0) return RunOutage(options, child, port, path);

  adapters::SystemClock clock;
  const config::Config config = RunConfig(options, port, path);
  auto store = Must(runtime::serve::Store::Open(config, clock), "opening the store");

  std::size_t backlog_points = 0;
  const auto made = std::chrono::steady_clock::now();
  MakeBacklog(options.backlog, backlog_points, [&](std::vector<std::string>& bodies) {
    auto unit = Must(store.database->BeginUnitOfWork(), "unit of work");
    for (std::size_t k = 0; k < bodies.size(); k += ports::kMaxQueueBatch) {
      std::vector<std::string> chunk(
          std::make_move_iterator(bodies.begin() + static_cast<std::ptrdiff_t>(k)),
          std::make_move_iterator(bodies.begin() +
                                  static_cast<std::ptrdiff_t>(std::min(bodies.size(), k + ports::kMaxQueueBatch))));
      Must(store.concerto_telemetry->SendBatch(chunk), "queueing the backlog");
    }
    Must(unit.Commit(), "committing the backlog");
  });
  std::fprintf(stderr, "concerto drain: a backlog of %d messages (%zu points) queued in %.1f s\n", options.backlog,
               backlog_points, std::chrono::duration<double>(std::chrono::steady_clock::now() - made).count());

  Metrics metrics;
  Sender sender(config, store, clock, metrics);
  const runtime::serve::PoolOptions pools = runtime::serve::PoolOptionsFromConfig(config);
  std::atomic<std::size_t> calls{0};
  std::atomic<std::size_t> failures{0};
  // As serve.cc composes the pool (NetworkPoolOptions, OneByOne): receives and deletions in
  // kAtomic units, the handling outside them.
  runtime::serve::WorkerOptions pool = pools.concerto;
  pool.batch_scope = runtime::serve::SqliteBatchScopes(*store.database, adapters::SqliteUnitOfWork::Mode::kAtomic);
  runtime::serve::QueueWorkers workers(pool, {store.concerto.get(), store.concerto_telemetry.get()},
                                       sender.Handler([&](const Status& s) { ++(s.ok() ? calls : failures); }),
                                       metrics);

  const double cpu_before = CpuSeconds();
  const auto started = std::chrono::steady_clock::now();
  workers.Start();
  const auto deadline = started + std::chrono::duration<double>(options.seconds);
  std::size_t left = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto stats = Must(store.concerto_telemetry->Stats(), "stats");
    left = stats.visible + stats.in_flight;
    if (left == 0) break;
  }
  workers.Stop();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const double cpu = CpuSeconds() - cpu_before;
  auto stats = Must(store.concerto_telemetry->Stats(), "stats");
  left = stats.visible + stats.in_flight;
  const double accepted = metrics.Value("pwrcell_concerto_points_total", {{"outcome", "accepted"}});
  const auto n = static_cast<double>(calls.load());
  const double rate = n / wall;
  std::printf(
      "concerto drain: backlog %d messages, rate limit %.0f/s, %d workers: %.0f calls in %.1f s = %.2f calls/s, "
      "%.1f points per call, %.2f ms adapter CPU per call (%.1f%% of a core); %zu messages left, the whole backlog "
      "drains in %.0f s at this rate; failures %zu, dead letters %zu\n",
      options.backlog, options.rate, pools.concerto.threads, n, wall, rate, n > 0 ? accepted / n : 0.0,
      n > 0 ? cpu * 1000 / n : 0.0, 100 * cpu / wall, left, rate > 0 ? options.backlog / rate : 0.0, failures.load(),
      stats.dead_letter);
  const bool lost = left == 0 && accepted != static_cast<double>(backlog_points);
  if (failures.load() != 0 || stats.dead_letter != 0 || lost) {
    std::fprintf(stderr, "concerto drain: FAILED (accepted %.0f of %zu points)\n", accepted, backlog_points);
    return 1;
  }
  return 0;
}

// ---- The scripted outage run (--outage-systems N) ----
//
// N commissioned systems in the store; Concerto down (503 to everything). Records of the fleet
// (one per system per 5-minute interval, fleet physics) are appended to the ingest queue as fast
// as the telemetry stage takes them (at most 20,000 waiting) until `backlog` point messages wait
// for Concerto. Then Concerto comes back and the drain runs for `seconds` while live telemetry
// keeps arriving at the fleet's rate (N records per 300 s). Everything runs as serve composes
// it: the telemetry pool (TelemetryProcessor, rounds in kAtomic units) and the concerto pool
// (ConcertoGateway and ConcertoClient, paused while Concerto is down and probing it).
int RunOutage(const Options& options, pid_t fake, int port, const std::filesystem::path& path) {
  adapters::SystemClock clock;
  const config::Config config = RunConfig(options, port, path);
  auto store = Must(runtime::serve::Store::Open(config, clock), "opening the store");
  LiveFleet fleet(options.outage_systems);
  {
    auto unit = Must(store.database->BeginUnitOfWork(), "unit of work");
    for (const auto& d : fleet.devices) Must(store.devices->Put(d), "seeding a device");
    Must(unit.Commit(), "committing the devices");
  }
  Metrics metrics;
  Sender sender(config, store, clock, metrics);
  processes::TelemetryProcessor telemetry(sender.context);
  const runtime::serve::PoolOptions pools = runtime::serve::PoolOptionsFromConfig(config);
  const auto atomic = adapters::SqliteUnitOfWork::Mode::kAtomic;
  // As serve.cc composes the pools (TelemetryPoolOptions, ConcertoPoolOptions, OneByOne).
  runtime::serve::WorkerOptions telemetry_pool = pools.telemetry;
  telemetry_pool.batch_scope = runtime::serve::SqliteBatchScopes(*store.database, atomic);
  runtime::serve::WorkerOptions concerto_pool = pools.concerto;
  concerto_pool.batch_scope = runtime::serve::SqliteBatchScopes(*store.database, atomic);
  concerto_pool.outage = processes::IsOutage;
  concerto_pool.probe = [&sender] { return sender.concerto.ListAssets(1, 1).status(); };
  runtime::serve::QueueWorkers telemetry_workers(telemetry_pool, {store.ingest.get()},
                                                 runtime::serve::TelemetryPoolHandler(telemetry), metrics);
  runtime::serve::QueueWorkers concerto_workers(concerto_pool, {store.concerto.get(), store.concerto_telemetry.get()},
                                                sender.Handler(), metrics);
  auto waiting = [&](ports::Queue& queue) {
    auto stats = Must(queue.Stats(), "stats");
    return stats.visible + stats.in_flight;
  };
  auto append = [&](const std::vector<std::string>& records) {
    auto unit = Must(store.database->BeginUnitOfWork(), "unit of work");
    for (std::size_t k = 0; k < records.size(); k += ports::kMaxQueueBatch) {
      std::vector<std::string> chunk(
          records.begin() + static_cast<std::ptrdiff_t>(k),
          records.begin() + static_cast<std::ptrdiff_t>(std::min(records.size(), k + ports::kMaxQueueBatch)));
      Must(store.ingest->SendBatch(chunk), "appending records");
    }
    Must(unit.Commit(), "committing records");
    telemetry_workers.Wake();
  };
  auto calls = [&](const char* outcome) {
    return metrics.Value("pwrcell_concerto_requests_total", {{"operation", "IngestTelemetry"}, {"outcome", outcome}});
  };

  // Phase 1: the outage.
  kill(fake, SIGUSR1);
  telemetry_workers.Start();
  concerto_workers.Start();
  const double cpu_1 = CpuSeconds();
  const auto start_1 = std::chrono::steady_clock::now();
  std::size_t appended = 0;
  while (waiting(*store.concerto_telemetry) < static_cast<std::size_t>(options.backlog)) {
    if (waiting(*store.ingest) > 20000) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    const auto records = fleet.Next(2000);
    append(records);
    appended += records.size();
  }
  // The records already appended are turned into points too before Concerto comes back, so that
  // the recovery measures the drain, not the rest of the outage's records.
  while (waiting(*store.ingest) > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double wall_1 = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_1).count();
  const double cpu_1_used = CpuSeconds() - cpu_1;
  const std::size_t backlog = waiting(*store.concerto_telemetry);
  const std::size_t processed_1 = appended;
  std::printf(
      "outage: %d systems, Concerto down for %.0f s: %zu records appended, %zu processed by the telemetry stage "
      "(%.0f records/s; process CPU %.0f%% of a core), %zu point messages waiting; during it %.0f "
      "ingestTelemetry attempts, %.0f pool pauses, %.0f probes, %zu dead letters\n",
      options.outage_systems, wall_1, appended, processed_1, static_cast<double>(processed_1) / wall_1,
      100 * cpu_1_used / wall_1, backlog,
      metrics.Value("pwrcell_concerto_requests_total", {{"operation", "IngestTelemetry"}, {"outcome", "http_5xx"}}) +
          calls("ok"),
      metrics.Value("pwrcell_queue_pool_pauses_total", {{"pool", "concerto"}}),
      metrics.Value("pwrcell_queue_pool_probes_total", {{"pool", "concerto"}, {"outcome", "failed"}}),
      Must(store.concerto_telemetry->Stats(), "stats").dead_letter);
  std::fflush(stdout);

  // Phase 2: recovery, with live telemetry at the fleet's rate.
  const double ok_before = calls("ok");
  const double accepted_before = metrics.Value("pwrcell_concerto_points_total", {{"outcome", "accepted"}});
  kill(fake, SIGUSR2);
  const double cpu_2 = CpuSeconds();
  const auto start_2 = std::chrono::steady_clock::now();
  const auto deadline = start_2 + std::chrono::duration<double>(options.seconds);
  const double live_per_second = options.outage_systems / 300.0;
  double live_due = 0;
  std::size_t max_ingest = 0;
  std::optional<std::chrono::steady_clock::time_point> first_call;  // when the pool resumed (within 1 s)
  double calls_at_first = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (!first_call && calls("ok") > ok_before) {
      first_call = std::chrono::steady_clock::now();
      calls_at_first = calls("ok");
    }
    live_due += live_per_second;
    const auto n = static_cast<std::size_t>(live_due);
    live_due -= static_cast<double>(n);
    if (n > 0) append(fleet.Next(n));
    max_ingest = std::max(max_ingest, waiting(*store.ingest));
    if (waiting(*store.concerto_telemetry) == 0) break;
  }
  const double wall_2 = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_2).count();
  const double cpu_2_used = CpuSeconds() - cpu_2;
  concerto_workers.Stop();
  telemetry_workers.Stop();
  const auto stopped = std::chrono::steady_clock::now();
  const double sent = calls("ok") - ok_before;
  const double accepted = metrics.Value("pwrcell_concerto_points_total", {{"outcome", "accepted"}}) - accepted_before;
  const std::size_t left = waiting(*store.concerto_telemetry);
  // The rate once the pool resumed (the probe finds Concerto back within pause_max).
  const double resumed_after = first_call ? std::chrono::duration<double>(*first_call - start_2).count() : wall_2;
  const double steady =
      first_call ? (calls("ok") - calls_at_first) / std::chrono::duration<double>(stopped - *first_call).count() : 0.0;
  const double rate = sent / wall_2;
  const double net = (static_cast<double>(backlog) - static_cast<double>(left)) / wall_2;
  const std::size_t dead =
      Must(store.concerto_telemetry->Stats(), "stats").dead_letter + Must(store.ingest->Stats(), "stats").dead_letter;
  std::printf(
      "recovery: the pool resumed %.1f s after Concerto came back; %.0f ingestTelemetry calls in %.1f s = %.2f "
      "calls/s overall, %.2f calls/s once resumed (limit %.0f), %.1f points per call, process CPU %.2f ms per call "
      "(%.1f%% of a core, telemetry of the live fleet included); backlog %zu -> %zu messages (net %.2f messages/s "
      "with live telemetry arriving): the whole backlog drains in %.0f s at that net rate; ingest backlog at most "
      "%zu records (live telemetry %.1f records/s); dead letters %zu\n",
      resumed_after, sent, wall_2, rate, steady, options.rate, sent > 0 ? accepted / sent : 0.0,
      sent > 0 ? cpu_2_used * 1000 / sent : 0.0, 100 * cpu_2_used / wall_2, backlog, left, net,
      net > 0 ? static_cast<double>(backlog) / net : 0.0, max_ingest, live_per_second, dead);
  return dead == 0 && sent > 0 ? 0 : 1;
}

}  // namespace
}  // namespace pwrcell::bench

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  pwrcell::bench::Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (value == nullptr) {
      std::fprintf(stderr, "concerto_drain: %s needs a value\n", argv[i]);
      return 2;
    }
    ++i;
    if (arg == "--backlog") {
      options.backlog = std::atoi(value);
    } else if (arg == "--seconds") {
      options.seconds = std::atof(value);
    } else if (arg == "--rate") {
      options.rate = std::atof(value);
    } else if (arg == "--workers") {
      options.workers = std::atoi(value);
    } else if (arg == "--outage-systems") {
      options.outage_systems = std::atoi(value);
    } else if (arg == "--db-dir") {
      options.db_dir = value;
    } else {
      std::fprintf(stderr,
                   "usage: concerto_drain [--backlog N] [--seconds S] [--rate R] [--workers W] [--db-dir DIR] "
                   "[--outage-systems N]\n");
      return 2;
    }
  }
  if (options.backlog <= 0 || options.seconds <= 0) {
    std::fprintf(stderr, "concerto_drain: --backlog and --seconds must be positive\n");
    return 2;
  }
  try {
    return pwrcell::bench::Run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concerto_drain: %s\n", e.what());
    return 1;
  }
}
