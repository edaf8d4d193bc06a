// Benchmarks of the telemetry path (issue 10 items 2 and 3), on records and commissioned devices
// made by the fleet simulator's library (src/fleet: the same composition and physics as
// sim/scenarios/load-10k.toml, 30% AC-coupled, 90% with a site meter):
//
//   BM_ProtobufParse   serialized EnergyRecordSet -> message (ParseFromString alone): the floor.
//   BM_HotPath         bytes -> DecodeRecordSet -> the device matched by inverterId (an in-memory
//                      index, as a warm cache gives it) -> MapRecordSet -> push_telemetry queue
//                      message bodies of <= 500 points, one core, no I/O. Counters: records/s,
//                      points per record, heap allocations per record.
//   BM_TelemetryStage  the whole telemetry stage as `serve` runs it: a SQLite file holding the
//                      device table and the queues (synchronous=FULL), the ingest queue filled
//                      with `records` records beforehand, then serve's telemetry worker pool
//                      (runtime/serve: threads, round size and one SQLite unit of work per round as
//                      in serve) with TelemetryProcessor until the ingest queue is empty.
//                      Counters: records/s (wall), CPU microseconds per record (process), Concerto
//                      messages and points per message queued.
//
//   telemetry_bench [--systems N] [--records M] [--db-dir DIR] [--round R] [--threads T] [benchmark flags]
//
// --systems  fleet size (default 10000); --records  records queued for the stage (default 50000);
// --db-dir   directory of the temporary SQLite file (default: the temp directory);
// --round    records per worker round, --threads telemetry workers (default: serve's).
// A summary of each stage run goes to stderr. Exits 1 when a stage run loses or fails a record.
#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "adapters/memory/memory_coordination.h"
#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_device_store.h"
#include "adapters/sqlite/sqlite_queue.h"
#include "adapters/system/system_clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "config/config.h"
#include "domain/device.h"
#include "domain/record_decoding.h"
#include "domain/telemetry_mapping.h"
#include "fleet/physics.h"
#include "fleet/system_spec.h"
#include "processes/context.h"
#include "processes/messages.h"
#include "processes/telemetry_processor.h"
#include "runtime/serve/queue_workers.h"
#include "runtime/serve/store.h"
#include "runtime/serve/worker_options.h"

// ---- heap allocation counting (this binary only) ----
// The replacements pair malloc with free; GCC sees the inlined operator new of library code meet
// this free and warns of a mismatch that is not one.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<std::uint64_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}

namespace pwrcell::bench {
namespace {

struct Options {
  int systems = 10000;
  int records = 50000;
  std::string db_dir;
  int round = 0;    // records per worker round; 0: serve's
  int threads = 0;  // telemetry workers; 0: serve's
};
Options g_options;
bool g_failed = false;  // a stage run lost or failed records: exit 1

constexpr std::int64_t kSeed = 10000;  // load-10k's seed

template <typename T>
T Must(Result<T> result, std::string_view what) {
  if (!result.ok()) throw std::runtime_error(std::string(what) + ": " + result.status().ToString());
  return std::move(*result);
}
void Must(const Status& status, std::string_view what) {
  if (!status.ok()) throw std::runtime_error(std::string(what) + ": " + status.ToString());
}

// A commissioned system: every component registered, asset ids made up (unique per system).
struct System {
  fleet::SystemSpec spec;
  domain::DeviceRecord device;
};

System MakeCommissioned(int index, Timestamp now) {
  fleet::CompositionOptions composition;
  composition.ac_coupled_fraction = 0.3;
  composition.site_meter_fraction = 0.9;
  System s;
  const std::string id = fleet::FleetSystemId(kSeed, index);
  s.spec = fleet::MakeSystem(id, std::nullopt, composition);
  const domain::SystemMetadata m = fleet::ToCesMetadata(s.spec);
  domain::DeviceRecord& d = s.device;
  d.remote_id = id;
  d.name = "System " + id;
  const std::string prefix = "a" + std::to_string(index) + "-";
  d.concerto_asset_id = prefix + "system-0000-0000-0000-000000000000";
  d.site = domain::SiteRef{prefix + "site", m.site_id, m.site_name};
  std::vector<std::string> rcpns;
  for (const auto& inverter : m.inverters) {
    d.inverters.push_back({prefix + "inverter-" + inverter.rcpn, inverter.rcpn});
    rcpns.push_back(inverter.rcpn);
  }
  for (const auto& battery : m.batteries) d.batteries.push_back({prefix + "battery-" + battery.rcpn, battery.rcpn});
  for (const auto& pv : m.pv_links) d.photovoltaics.push_back({prefix + "pv-" + pv.rcpn, pv.rcpn});
  if (m.site_meter_id) d.site_meter = domain::AssetRef{prefix + "meter-" + *m.site_meter_id, *m.site_meter_id};
  d.SetInverterRcpns(rcpns);
  d.metadata = m;
  d.metadata_fetched_at = now;
  d.commissioning = domain::Commissioning{domain::CommissioningState::kDone, ""};
  d.system_status = domain::kCesStatusSuccess;
  d.system_status_at = now;
  d.registered_at = now;
  d.updated_at = now;
  return s;
}

struct Fleet {
  std::vector<System> systems;
  std::vector<std::string> records;  // serialized EnergyRecordSets, interval by interval
  std::size_t points = 0;            // points the mapping gives for all of them
};

// `systems` commissioned systems and `records` records: one per system per 5-minute interval.
Fleet MakeFleet(int systems, int records) {
  Fleet fleet;
  const Timestamp start = FromUnixMillis(1782014400000);  // 2026-06-21T04:00:00Z, load-10k's start
  for (int i = 0; i < systems; ++i) fleet.systems.push_back(MakeCommissioned(i, start));
  std::vector<fleet::SystemState> states;
  for (const auto& s : fleet.systems) states.push_back(fleet::InitialState(s.spec));
  const Duration interval = std::chrono::minutes(5);
  for (int n = 0; static_cast<int>(fleet.records.size()) < records; ++n) {
    const Timestamp t = start + interval * (n / systems + 1) + std::chrono::hours(6);  // daylight: PV flows
    const auto i = static_cast<std::size_t>(n % systems);
    auto record = fleet::NextRecord(fleet.systems[i].spec, states[i], t, interval, fleet::SystemFaults{});
    if (!record) continue;
    fleet.points += domain::MapRecordSet(*record, fleet.systems[i].device).points.size();
    fleet.records.push_back(record->SerializeAsString());
  }
  return fleet;
}

// Made once per size (the fleet simulator's physics is not what is measured).
const Fleet& SharedFleet(int systems, int records) {
  static std::map<std::pair<int, int>, std::unique_ptr<Fleet>> fleets;
  auto& fleet = fleets[{systems, records}];
  if (fleet == nullptr) fleet = std::make_unique<Fleet>(MakeFleet(systems, records));
  return *fleet;
}

void BM_ProtobufParse(benchmark::State& state) {
  const Fleet& fleet = SharedFleet(1000, 10000);
  std::size_t i = 0;
  std::size_t bytes = 0;
  pwrcell::ces::v1::EnergyRecordSet set;
  for (auto _ : state) {
    const std::string& record = fleet.records[i++ % fleet.records.size()];
    bytes += record.size();
    if (!set.ParseFromString(record)) state.SkipWithError("a record does not parse");
    benchmark::DoNotOptimize(set);
  }
  state.counters["records_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["bytes_per_record"] = static_cast<double>(bytes) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_ProtobufParse);

void BM_HotPath(benchmark::State& state) {
  const Fleet& fleet = SharedFleet(1000, 10000);
  std::unordered_map<std::string, const domain::DeviceRecord*> by_rcpn;
  for (const auto& s : fleet.systems) {
    for (const auto& rcpn : s.device.inverter_rcpns) by_rcpn.emplace(rcpn, &s.device);
  }
  std::size_t i = 0;
  std::size_t points = 0;
  std::vector<domain::TelemetryPoint> pending;
  std::size_t body_bytes = 0;
  const std::uint64_t allocations_before = g_allocations.load();
  for (auto _ : state) {
    const std::string& bytes = fleet.records[i++ % fleet.records.size()];
    auto decoded = domain::DecodeRecordSet(bytes);
    if (!decoded.ok()) {
      state.SkipWithError("a record does not decode");
      break;
    }
    const auto found = by_rcpn.find(decoded->inverterid());
    if (found == by_rcpn.end()) {
      state.SkipWithError("a record matches no device");
      break;
    }
    domain::MappingResult mapped = domain::MapRecordSet(*decoded, *found->second);
    points += mapped.points.size();
    for (auto& p : mapped.points) {
      pending.push_back(std::move(p));
      if (pending.size() == domain::kMaxPointsPerIngest) {
        body_bytes += processes::EncodeConcertoRequest(processes::PushTelemetryRequest{std::move(pending)}).size();
        pending.clear();
      }
    }
  }
  const std::uint64_t allocations = g_allocations.load() - allocations_before;
  const auto n = static_cast<double>(state.iterations());
  state.counters["records_per_s"] = benchmark::Counter(n, benchmark::Counter::kIsRate);
  state.counters["points_per_record"] = static_cast<double>(points) / n;
  state.counters["allocs_per_record"] = static_cast<double>(allocations) / n;
  state.counters["body_bytes_per_point"] = points ? static_cast<double>(body_bytes) / static_cast<double>(points) : 0;
}
BENCHMARK(BM_HotPath);

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void RemoveDatabaseFiles(const std::filesystem::path& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
}

void BM_TelemetryStage(benchmark::State& state) {
  const Fleet& fleet = SharedFleet(g_options.systems, g_options.records);
  const std::filesystem::path dir =
      g_options.db_dir.empty() ? std::filesystem::temp_directory_path() : std::filesystem::path(g_options.db_dir);
  const std::filesystem::path path = dir / ("telemetry_bench_" + std::to_string(::getpid()) + ".db");
  for (auto _ : state) {
    RemoveDatabaseFiles(path);
    adapters::SystemClock clock;
    config::Config config;
    config.storage.path = path.string();
    runtime::serve::Store store = Must(runtime::serve::Store::Open(config, clock), "opening the store");
    auto& database = store.database;
    auto& devices = store.devices;
    auto& ingest = store.ingest;
    auto& points_queue = store.concerto_telemetry;
    adapters::MemoryCoordination coordination;
    {
      auto unit = Must(database->BeginUnitOfWork(), "unit of work");
      for (const auto& s : fleet.systems) Must(devices->Put(s.device), "seeding a device");
      for (std::size_t begin = 0; begin < fleet.records.size(); begin += ports::kMaxQueueBatch) {
        std::vector<std::string> chunk(
            fleet.records.begin() + static_cast<std::ptrdiff_t>(begin),
            fleet.records.begin() +
                static_cast<std::ptrdiff_t>(std::min(fleet.records.size(), begin + ports::kMaxQueueBatch)));
        Must(ingest->SendBatch(chunk), "queueing records");
      }
      Must(unit.Commit(), "committing the seed");
    }
    Metrics metrics;
    processes::Context context{*devices, *store.concerto, *points_queue, *store.ces, clock, metrics, coordination, {},
                               {}};
    processes::TelemetryProcessor processor(context);
    runtime::serve::PoolOptions pools = runtime::serve::PoolOptionsFromConfig(config);
    runtime::serve::WorkerOptions options = pools.telemetry;
    options.batch_scope =
        runtime::serve::SqliteBatchScopes(*database, adapters::SqliteUnitOfWork::Mode::kAtomic);  // as serve.cc
    if (g_options.round > 0) options.batch = static_cast<std::size_t>(g_options.round);
    if (g_options.threads > 0) options.threads = g_options.threads;
    runtime::serve::QueueWorkers workers(options, {ingest.get()}, runtime::serve::TelemetryPoolHandler(processor),
                                         metrics);
    const double cpu_before = CpuSeconds();
    const auto wall_before = std::chrono::steady_clock::now();
    std::fprintf(stderr, "telemetry stage: workers started (pid %d)\n", static_cast<int>(::getpid()));
    workers.Start();
    while (true) {
      auto stats = Must(ingest->Stats(), "ingest stats");
      if (stats.visible == 0 && stats.in_flight == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    workers.Stop();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_before).count();
    const double cpu = CpuSeconds() - cpu_before;
    state.SetIterationTime(wall);
    auto out = Must(points_queue->Stats(), "points stats");
    std::size_t queued_points = 0;
    std::size_t messages = 0;
    while (true) {
      auto got = Must(points_queue->Receive(ports::kMaxQueueBatch, std::chrono::hours(1)), "draining points");
      if (got.empty()) break;
      for (const auto& m : got) {
        auto request = Must(processes::DecodeConcertoRequest(m.body), "a queued message");
        queued_points += std::get<processes::PushTelemetryRequest>(request).points.size();
        ++messages;
      }
    }
    const auto n = static_cast<double>(fleet.records.size());
    state.counters["records"] = n;
    state.counters["records_per_s"] = n / wall;
    state.counters["cpu_us_per_record"] = cpu * 1e6 / n;
    state.counters["messages"] = static_cast<double>(messages);
    state.counters["points_per_message"] = messages ? static_cast<double>(queued_points) / messages : 0;
    std::fprintf(stderr,
                 "telemetry stage (round %zu, %d threads): %zu records of %d systems in %.2f s wall (%.0f records/s), "
                 "%.2f s CPU "
                 "(%.1f us/record); %zu messages, %.1f points per message (%zu points, %zu expected); "
                 "dead letters %zu, failed %zu\n",
                 options.batch, options.threads, fleet.records.size(), g_options.systems, wall, n / wall, cpu,
                 cpu * 1e6 / n, messages, messages ? static_cast<double>(queued_points) / messages : 0.0, queued_points,
                 fleet.points, Must(ingest->Stats(), "stats").dead_letter,
                 static_cast<std::size_t>(metrics.Value("pwrcell_telemetry_records_total", {{"outcome", "retried"}})));
    if (queued_points != fleet.points || out.dead_letter != 0 || Must(ingest->Stats(), "stats").dead_letter != 0 ||
        metrics.Value("pwrcell_telemetry_records_total", {{"outcome", "retried"}}) != 0) {
      state.SkipWithError("the stage lost or duplicated points");
      g_failed = true;
    }
    store = runtime::serve::Store{};
    RemoveDatabaseFiles(path);
  }
}
BENCHMARK(BM_TelemetryStage)->UseManualTime()->Iterations(1)->Unit(benchmark::kSecond);

bool ParseOwnFlags(int& argc, char** argv) {
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string_view name) -> const char* {
      if (arg == name && i + 1 < argc) return argv[++i];
      return nullptr;
    };
    if (const char* systems = value("--systems")) {
      g_options.systems = std::atoi(systems);
    } else if (const char* records = value("--records")) {
      g_options.records = std::atoi(records);
    } else if (const char* round = value("--round")) {
      g_options.round = std::atoi(round);
    } else if (const char* threads = value("--threads")) {
      g_options.threads = std::atoi(threads);
    } else if (const char* db_dir = value("--db-dir")) {
      g_options.db_dir = db_dir;
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  return g_options.systems > 0 && g_options.records > 0;
}

}  // namespace
}  // namespace pwrcell::bench

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  if (!pwrcell::bench::ParseOwnFlags(argc, argv)) {
    std::fprintf(stderr, "usage: telemetry_bench [--systems N] [--records M] [--db-dir DIR] [benchmark flags]\n");
    return 2;
  }
  benchmark::Initialize(&argc, argv);
  try {
    benchmark::RunSpecifiedBenchmarks();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "telemetry_bench: %s\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  return pwrcell::bench::g_failed ? 1 : 0;
}
