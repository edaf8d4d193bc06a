// Fleet-scale benchmark of the device table's fleet-wide passes (issue 10 item 6), in process, on
// the SQLite store `serve` uses (device table, queues and coordination in one file):
//
//   fleet_scale --systems 100000 [--db PATH --keep]
//
// Seeds N commissioned systems (registered by the registrar from N Concerto SYSTEM assets with an
// INVERTER and a SITE_METER, CES metadata through the metadata processor, then heard a minute ago
// and ONLINE as Concerto accepted it; 1 in 100 silent for 1,000 s), in units of work of 1,000.
// Then measures CPU and wall time of:
//   - two registrar sweeps of the N assets (what the gateway hands it after 1,000 pages of 100:
//     `Registrar::Register(assets, complete=true)`, the removal pass included): the first after a
//     start, the next one of a settled fleet;
//   - the liveness sweep (`CesStateProcessor::Sweep`): the first turns the silent 1% OFFLINE, the
//     second finds the fleet at rest;
//   - the CES status poll, a simulated-telemetry tick with no simulated system, the /metrics
//     device gauges (`ServeMetrics::Refresh`) and, where the tree has it, a device API page and
//     one device;
// and the peak RSS. Exit 1 when a pass fails or its outcome is wrong (every system registered,
// the silent ones OFFLINE, none other). The same source builds against the tree before the
// change (9bc4cf1) for the "before" figures. --seed-only seeds the file (no request queued in
// it) and stops, for a `serve` run over it (bench/fleet_serve_rest.sh).
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "adapters/memory/clocks.h"
#include "adapters/memory/memory_queue.h"
#include "adapters/sqlite/sqlite_coordination.h"
#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_device_store.h"
#include "adapters/sqlite/sqlite_queue.h"
#include "common/metrics.h"
#include "processes/ces_state.h"
#include "processes/context.h"
#include "processes/device_metadata_processor.h"
#include "processes/registrar.h"
#include "processes/simulated_systems.h"
#include "runtime/serve/serve_metrics.h"
#if __has_include("runtime/http/device_api.h")
#include "runtime/http/device_api.h"
#define PWRCELL_HAS_DEVICE_API 1
#endif

namespace pwrcell {
namespace {

double CpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

double PeakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

bool g_ok = true;
void Check(bool condition, const std::string& what) {
  if (condition) return;
  g_ok = false;
  std::fprintf(stderr, "FAILED: %s\n", what.c_str());
}
void Check(const Status& status, const std::string& what) {
  Check(status.ok(), what + ": " + status.ToString());
}

void Measure(const std::string& name, const std::function<void()>& run) {
  const auto wall0 = std::chrono::steady_clock::now();
  const double cpu0 = CpuSeconds();
  run();
  const double cpu = CpuSeconds() - cpu0;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::printf("%-52s %10.1f ms wall %10.1f ms CPU\n", name.c_str(), wall * 1e3, cpu * 1e3);
  std::fflush(stdout);
}

std::string Id(int i) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "sys-%07d", i);
  return buffer;
}
std::string Rcpn(int i) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "0001%08d", i);
  return buffer;
}

domain::ConcertoAsset Asset(int i, const std::string& adapter_name) {
  domain::ConcertoAsset a;
  a.id = "asset-" + Id(i);
  a.remote_id = Id(i);
  a.name = "Residence " + std::to_string(i);
  a.asset_type = domain::AssetType::kSystem;
  a.adapter_name = adapter_name;
  a.rated_power_kw = 7.6;
  domain::ConcertoSite site;
  site.id = "site-" + Id(i);
  site.remote_id = "ces-site-" + Id(i);
  site.name = "Residence " + std::to_string(i);
  a.site = site;
  a.children = {{"inv-" + Id(i), Rcpn(i), domain::AssetType::kInverter, {}},
                {"meter-" + Id(i), Id(i) + "-meter", domain::AssetType::kSiteMeter, {}}};
  return a;
}

domain::SystemMetadata Metadata(int i) {
  domain::SystemMetadata m;
  m.system_id = Id(i);
  m.site_id = "ces-site-" + Id(i);
  m.site_name = "Residence " + std::to_string(i);
  m.timezone = "America/Denver";
  m.latitude = 39.74;
  m.longitude = -104.99;
  m.status_name = domain::kCesStatusSuccess;
  m.inverters = {domain::CesInverter{Rcpn(i), "PWRcell X7602", 7600, 0.0}};
  m.site_meter_id = Id(i) + "-meter";
  return m;
}

int Run(int systems, std::filesystem::path db, bool keep, bool seed_only) {
  spdlog::set_level(spdlog::level::warn);
  const bool temporary = db.empty();
  if (temporary) db = std::filesystem::temp_directory_path() / ("fleet_scale_" + std::to_string(::getpid()) + ".db");
  struct Cleanup {
    std::filesystem::path path;
    bool remove;
    ~Cleanup() {
      if (!remove) return;
      std::error_code ignored;
      for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix, ignored);
    }
  } cleanup{db, temporary && !keep};

  adapters::FakeClock clock(FromUnixMillis(1'800'000'000'000));
  auto database = adapters::SqliteDatabase::Open(db.string());
  if (!database.ok()) return std::fprintf(stderr, "%s\n", database.status().ToString().c_str()), 1;
  auto devices = adapters::SqliteDeviceStore::Create(*database);
  auto concerto = adapters::SqliteQueue::Create(*database, "concerto", clock, 5);
  auto telemetry = adapters::SqliteQueue::Create(*database, "concerto-telemetry", clock, 5);
  auto ces = adapters::SqliteQueue::Create(*database, "ces", clock, 5);
  auto coordination = adapters::SqliteCoordination::Create(*database);
  if (!devices.ok() || !concerto.ok() || !telemetry.ok() || !ces.ok() || !coordination.ok()) {
    std::fprintf(stderr, "cannot open the store in %s\n", db.c_str());
    return 1;
  }
  Metrics metrics;
  processes::Settings settings;
  // --seed-only leaves the file as a fleet at rest for a `serve` run: the requests the seeding
  // queues (metadata) go to queues in memory, not into the file.
  adapters::MemoryQueue memory_concerto(clock, 5), memory_telemetry(clock, 5), memory_ces(clock, 5);
  processes::Context context{**devices,
                             seed_only ? static_cast<ports::Queue&>(memory_concerto) : **concerto,
                             seed_only ? static_cast<ports::Queue&>(memory_telemetry) : **telemetry,
                             seed_only ? static_cast<ports::Queue&>(memory_ces) : **ces,
                             clock,
                             metrics,
                             **coordination,
                             settings,
                             {}};
  processes::DeviceMetadataProcessor metadata(context);
  processes::Registrar registrar(context, metadata);

  std::vector<domain::ConcertoAsset> assets;
  assets.reserve(static_cast<std::size_t>(systems));
  for (int i = 0; i < systems; ++i) assets.push_back(Asset(i, settings.adapter_name));
  const Timestamp now = clock.Now();
  int silent = 0;
  Measure("seed " + std::to_string(systems) + " systems (units of 1,000)", [&] {
    for (int begin = 0; begin < systems; begin += 1000) {
      const int end = std::min(systems, begin + 1000);
      auto unit = (*database)->BeginUnitOfWork();
      Check(unit.status(), "unit of work");
      if (!unit.ok()) return;
      std::vector<domain::ConcertoAsset> chunk(assets.begin() + begin, assets.begin() + end);
      Check(registrar.Register(chunk, /*complete=*/false), "registering");
      for (int i = begin; i < end; ++i) {
        Check(metadata.Process(Id(i), Metadata(i)), "metadata");
        auto got = (*devices)->Get(Id(i));
        Check(got.ok() && got->has_value(), "reading " + Id(i));
        if (!got.ok() || !got->has_value()) continue;
        domain::DeviceRecord d = **got;
        const bool is_silent = i % 100 == 7;
        silent += is_silent ? 1 : 0;
        const Timestamp heard = now - (is_silent ? std::chrono::seconds(1000) : std::chrono::seconds(60));
        d.RaiseLastHeard(heard);
        d.RecordInverterReading({Rcpn(i), 2080, 2, heard});
        d.evaluated_state = d.remote_state = domain::RemoteState::kOnline;
        d.remote_state_reason = "telemetry current";
        d.remote_state_cause = "online";
        Check((*devices)->Put(d).status(), "writing " + Id(i));
      }
      Check(unit->Commit(), "commit");
    }
  });
  std::printf("peak RSS after seeding: %.1f MiB\n", PeakRssMiB());
  if (seed_only) {
    std::printf("seeded %s\n", db.c_str());
    return g_ok ? 0 : 1;
  }

  const double rss_before = PeakRssMiB();
  Measure("registrar sweep of " + std::to_string(systems) + " assets (first)",
          [&] { Check(registrar.Register(assets, /*complete=*/true, now), "registrar sweep"); });
  Measure("registrar sweep of " + std::to_string(systems) + " assets (next)",
          [&] { Check(registrar.Register(assets, /*complete=*/true, now), "registrar sweep"); });
  Measure("liveness sweep (1% go OFFLINE)", [&] { Check(processes::CesStateProcessor(context).Sweep(), "sweep"); });
  Measure("liveness sweep (again: the 1% still unaccepted)",
          [&] { Check(processes::CesStateProcessor(context).Sweep(), "sweep"); });
  Measure("CES status poll", [&] { Check(processes::CesStatePoller(context).Poll(), "poll"); });
  processes::SimulatedTelemetry simulated(context, std::chrono::minutes(5),
                                          [](const std::vector<std::string>&) { return Status::Ok(); });
  Measure("simulated-telemetry tick (no simulated system)", [&] { Check(simulated.Tick().status(), "tick"); });
  Measure("simulated-telemetry tick, again", [&] { Check(simulated.Tick().status(), "tick"); });
  Metrics registry;
  runtime::serve::ServeMetrics gauges(&registry);
  Measure("/metrics device gauges", [&] {
    gauges.Refresh({{"concerto", concerto->get()}, {"ces", ces->get()}}, **devices);
  });
#ifdef PWRCELL_HAS_DEVICE_API
  Measure("device API: first page (1,000)",
          [&] { Check(runtime::http::ListDevices(**devices, {}).status == 200, "device API page"); });
  Measure("device API: a page of 1,000 ONLINE in the middle", [&] {
    Check(runtime::http::ListDevices(**devices, {{"remote_state", "ONLINE"}, {"after", Id(systems / 2)}}).status == 200,
          "device API page");
  });
  Measure("device API: a page of 100 in the middle", [&] {
    Check(runtime::http::ListDevices(**devices, {{"limit", "100"}, {"after", Id(systems / 2)}}).status == 200,
          "device API page");
  });
  Measure("device API: one device",
          [&] { Check(runtime::http::GetDevice(**devices, Id(systems / 3)).status == 200, "one"); });
#endif
  std::printf("peak RSS: %.1f MiB (%.1f MiB after seeding)\n", PeakRssMiB(), rss_before);

  // The outcome: every system registered, the silent ones evaluated OFFLINE, the others ONLINE.
  int offline = 0, online = 0, count = 0;
  auto all = (*devices)->List();
  Check(all.status(), "listing");
  if (all.ok()) {
    for (const auto& d : *all) {
      ++count;
      offline += d.evaluated_state == domain::RemoteState::kOffline ? 1 : 0;
      online += d.evaluated_state == domain::RemoteState::kOnline ? 1 : 0;
    }
  }
  std::printf("records %d, evaluated ONLINE %d, OFFLINE %d (silent %d)\n", count, online, offline, silent);
  Check(count == systems, "every system registered");
  Check(offline == silent && online == systems - silent, "the silent systems and only they are OFFLINE");
  if (keep || !temporary) std::printf("store kept in %s\n", db.c_str());
  return g_ok ? 0 : 1;
}

}  // namespace
}  // namespace pwrcell

int main(int argc, char** argv) {
  int systems = 100000;
  std::filesystem::path db;
  bool keep = false;
  bool seed_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--systems" && i + 1 < argc) {
      systems = std::stoi(argv[++i]);
    } else if (arg == "--db" && i + 1 < argc) {
      db = argv[++i];
    } else if (arg == "--keep") {
      keep = true;
    } else if (arg == "--seed-only") {
      seed_only = keep = true;
    } else {
      std::fprintf(stderr, "usage: fleet_scale [--systems N] [--db PATH] [--keep] [--seed-only]\n");
      return 2;
    }
  }
  return pwrcell::Run(systems, db, keep, seed_only);
}
