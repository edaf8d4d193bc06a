// Benchmark: a fleet-wide remote_state flip (issue 9 item 4). N systems, each commissioned on its
// own site, all OFFLINE (evaluated so, and accepted so by Concerto on every asset and site), are
// all heard at once; the liveness sweep (CesStateProcessor::Sweep) queues one update_remote_state
// request per system and the concerto gateway drains them (ConcertoGateway::Handle). Measured: the
// device-store calls and records read per update_remote_state request, the Coordination-store calls
// per request (claims and accepted states, the request lease), the wall and CPU time of the sweep
// and of the drain, and the Concerto calls.
//
// The composition is the one `serve` uses (src/runtime/serve/store.cc, serve.cc): a SQLite device
// table, SQLite queues and the SQLite coordination tables in one file (a temp file here), with the
// in-memory FakeConcerto in place of the HTTP client. The drain works like serve's concerto workers
// (one message per receive, handled, then deleted; no unit of work around it). Only public APIs of
// the processes are used.
//
//   remote_state_flip [--systems N[,N...]] [--db-dir DIR] [--receive-batch K] [--drain-limit M]
//                     [benchmark flags]
//
// --systems      fleet size, default 10000; several comma-separated sizes give one benchmark each.
// --db-dir       where the temp SQLite file goes (default: the temp directory). On a disk every
//                queue receive/delete, device write and coordination write is an fsync
//                (synchronous=FULL, as in serve); /dev/shm (tmpfs) leaves only the CPU cost.
// --receive-batch messages per Receive, 1..10 (default 1, as serve's concerto workers).
// --drain-limit  handle only the first M update_remote_state requests (default: all) and
//                extrapolate the drain time to all of them (drain_s_extrapolated). Every request
//                costs the same, so a sample gives the per-request numbers of a fleet too big to
//                drain in full (before the ListBySite port each request listed the whole table).
// Every other flag goes to Google Benchmark (--benchmark_format=json, --benchmark_out=FILE, ...).
// A human-readable summary of each run goes to stderr. Wall times suffer from other load on the
// machine; the *_cpu_s counters (process CPU time) much less so. Exits 1 when a run fails (the
// flip did not leave every system ONLINE everywhere), so CTest's smoke run (bench/CMakeLists.txt)
// notices.
//
// Ported from the "before" benchmark (commit 9535a23, where the site aggregate listed the whole
// device table and the shared state was in process memory) to the Coordination port, ListBySite
// and the multi-inverter record; docs/BENCHMARKS.md has both sets of numbers.
#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "adapters/memory/clocks.h"
#include "adapters/memory/fake_concerto.h"
#include "adapters/sqlite/sqlite_coordination.h"
#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_device_store.h"
#include "adapters/sqlite/sqlite_queue.h"
#include "common/metrics.h"
#include "common/status.h"
#include "domain/device.h"
#include "domain/remote_state.h"
#include "ports/coordination.h"
#include "ports/device_store.h"
#include "processes/ces_state.h"
#include "processes/concerto_gateway.h"
#include "processes/context.h"
#include "processes/device_metadata_processor.h"
#include "processes/messages.h"
#include "processes/registrar.h"
#include "processes/shared_state.h"

namespace pwrcell::bench {
namespace {

using adapters::FakeConcerto;
using domain::AssetType;
using domain::RemoteState;

constexpr const char* kAdapterName = "pwrcell-adapter";

// ------------------------------------------------------------------------------------------------
// Counting decorator over ports::DeviceStore.

struct StoreCounts {
  std::atomic<std::int64_t> get{0};
  std::atomic<std::int64_t> find_by_rcpn{0};
  std::atomic<std::int64_t> list{0};
  std::atomic<std::int64_t> list_by_site{0};
  std::atomic<std::int64_t> put{0};
  std::atomic<std::int64_t> remove{0};
  // Records handed back by List / ListBySite (the O(fleet) part) ...
  std::atomic<std::int64_t> list_records{0};
  // ... and by every read (List, ListBySite, plus 1 for each Get / FindByInverterRcpn hit).
  std::atomic<std::int64_t> records_read{0};

  struct Snapshot {
    std::int64_t get, find_by_rcpn, list, list_by_site, put, remove, list_records, records_read;
    std::int64_t calls() const { return get + find_by_rcpn + list + list_by_site + put + remove; }
    Snapshot operator-(const Snapshot& o) const {
      return {get - o.get,
              find_by_rcpn - o.find_by_rcpn,
              list - o.list,
              list_by_site - o.list_by_site,
              put - o.put,
              remove - o.remove,
              list_records - o.list_records,
              records_read - o.records_read};
    }
  };
  Snapshot Take() const {
    return {get.load(), find_by_rcpn.load(), list.load(),         list_by_site.load(),
            put.load(), remove.load(),       list_records.load(), records_read.load()};
  }
};

class CountingDeviceStore final : public ports::DeviceStore {
 public:
  CountingDeviceStore(ports::DeviceStore& inner, StoreCounts& counts) : inner_(inner), counts_(counts) {}

  Result<std::optional<domain::DeviceRecord>> Get(const std::string& remote_id) override {
    ++counts_.get;
    auto r = inner_.Get(remote_id);
    if (r.ok() && r->has_value()) ++counts_.records_read;
    return r;
  }
  Result<std::optional<domain::DeviceRecord>> FindByInverterRcpn(const std::string& rcpn) override {
    ++counts_.find_by_rcpn;
    auto r = inner_.FindByInverterRcpn(rcpn);
    if (r.ok() && r->has_value()) ++counts_.records_read;
    return r;
  }
  Result<std::optional<ports::DeviceKey>> FindKeyByInverterRcpn(const std::string& rcpn) override {
    ++counts_.find_by_rcpn;
    return inner_.FindKeyByInverterRcpn(rcpn);
  }
  Result<bool> RecordHeard(const std::string& remote_id, Timestamp heard_at,
                           const std::optional<domain::InverterReading>& reading) override {
    ++counts_.put;
    return inner_.RecordHeard(remote_id, heard_at, reading);
  }
  Status RecordHeardBatch(const std::vector<ports::HeardUpdate>& updates) override {
    ++counts_.put;
    return inner_.RecordHeardBatch(updates);
  }
  Result<std::vector<domain::DeviceRecord>> List() override {
    ++counts_.list;
    auto r = inner_.List();
    if (r.ok()) CountRecords(r->size());
    return r;
  }
  Result<std::vector<domain::DeviceRecord>> ListPage(const ports::DeviceFilter& filter, const std::string& after,
                                                     std::size_t limit) override {
    ++counts_.list;
    auto r = inner_.ListPage(filter, after, limit);
    if (r.ok()) CountRecords(r->size());
    return r;
  }
  Result<std::vector<ports::DeviceKey>> ListKeys(const ports::DeviceFilter& filter, const std::string& after,
                                                 std::size_t limit) override {
    ++counts_.list;
    return inner_.ListKeys(filter, after, limit);
  }
  Result<std::int64_t> Count(const ports::DeviceFilter& filter) override { return inner_.Count(filter); }
  Result<std::vector<ports::DeviceTally>> Tally() override { return inner_.Tally(); }
  Result<std::vector<domain::DeviceRecord>> ListUnsettled(Timestamp cutoff, const std::string& after,
                                                          std::size_t limit) override {
    ++counts_.list;
    auto r = inner_.ListUnsettled(cutoff, after, limit);
    if (r.ok()) CountRecords(r->size());
    return r;
  }
  Result<std::vector<domain::DeviceRecord>> ListBySite(const std::string& site_id) override {
    ++counts_.list_by_site;
    auto r = inner_.ListBySite(site_id);
    if (r.ok()) CountRecords(r->size());
    return r;
  }
  Result<domain::DeviceRecord> Put(const domain::DeviceRecord& record) override {
    ++counts_.put;
    return inner_.Put(record);
  }
  Status Remove(const std::string& remote_id, std::int64_t expected_version) override {
    ++counts_.remove;
    return inner_.Remove(remote_id, expected_version);
  }

 private:
  void CountRecords(std::size_t n) {
    counts_.list_records += static_cast<std::int64_t>(n);
    counts_.records_read += static_cast<std::int64_t>(n);
  }
  ports::DeviceStore& inner_;
  StoreCounts& counts_;
};

// ------------------------------------------------------------------------------------------------
// Counting decorator over ports::Coordination (the leases, throttles and accepted states in the
// store: each call is a statement, a write one a transaction of its own outside a unit of work).

struct CoordinationCounts {
  std::atomic<std::int64_t> try_acquire_lease{0};
  std::atomic<std::int64_t> release_lease{0};
  std::atomic<std::int64_t> get_lease{0};
  std::atomic<std::int64_t> try_throttle{0};
  std::atomic<std::int64_t> clear_throttle{0};
  std::atomic<std::int64_t> get_value{0};
  std::atomic<std::int64_t> put_value{0};
  std::atomic<std::int64_t> remove_value{0};
  std::atomic<std::int64_t> list_values{0};
  std::atomic<std::int64_t> remove_prefix{0};
  std::atomic<std::int64_t> values_listed{0};  // values handed back by ListValues

  struct Snapshot {
    std::int64_t try_acquire_lease, release_lease, get_lease, try_throttle, clear_throttle, get_value, put_value,
        remove_value, list_values, remove_prefix, values_listed;
    std::int64_t calls() const {
      return try_acquire_lease + release_lease + get_lease + try_throttle + clear_throttle + get_value + put_value +
             remove_value + list_values + remove_prefix;
    }
    // The calls that write (each its own transaction outside a unit of work).
    std::int64_t writes() const {
      return try_acquire_lease + release_lease + try_throttle + clear_throttle + put_value + remove_value +
             remove_prefix;
    }
    std::int64_t leases() const { return try_acquire_lease + release_lease + get_lease; }
    std::int64_t throttles() const { return try_throttle + clear_throttle; }
    Snapshot operator-(const Snapshot& o) const {
      return {try_acquire_lease - o.try_acquire_lease,
              release_lease - o.release_lease,
              get_lease - o.get_lease,
              try_throttle - o.try_throttle,
              clear_throttle - o.clear_throttle,
              get_value - o.get_value,
              put_value - o.put_value,
              remove_value - o.remove_value,
              list_values - o.list_values,
              remove_prefix - o.remove_prefix,
              values_listed - o.values_listed};
    }
  };
  Snapshot Take() const {
    return {try_acquire_lease.load(), release_lease.load(), get_lease.load(),    try_throttle.load(),
            clear_throttle.load(),    get_value.load(),     put_value.load(),    remove_value.load(),
            list_values.load(),       remove_prefix.load(), values_listed.load()};
  }
};

class CountingCoordination final : public ports::Coordination {
 public:
  CountingCoordination(ports::Coordination& inner, CoordinationCounts& counts) : inner_(inner), counts_(counts) {}

  Result<bool> TryAcquireLease(const std::string& name, const std::string& owner, Timestamp now,
                               Duration ttl) override {
    ++counts_.try_acquire_lease;
    return inner_.TryAcquireLease(name, owner, now, ttl);
  }
  Result<bool> ReleaseLease(const std::string& name, const std::string& owner) override {
    ++counts_.release_lease;
    return inner_.ReleaseLease(name, owner);
  }
  Result<std::optional<ports::LeaseInfo>> GetLease(const std::string& name) override {
    ++counts_.get_lease;
    return inner_.GetLease(name);
  }
  Result<bool> TryThrottle(const std::string& key, Timestamp now, Duration interval) override {
    ++counts_.try_throttle;
    return inner_.TryThrottle(key, now, interval);
  }
  Status ClearThrottle(const std::string& key) override {
    ++counts_.clear_throttle;
    return inner_.ClearThrottle(key);
  }
  Result<std::optional<ports::CoordinationValue>> GetValue(const std::string& key) override {
    ++counts_.get_value;
    return inner_.GetValue(key);
  }
  Result<std::int64_t> PutValue(const std::string& key, const std::string& value,
                                std::int64_t expected_version) override {
    ++counts_.put_value;
    return inner_.PutValue(key, value, expected_version);
  }
  Status RemoveValue(const std::string& key, std::int64_t expected_version) override {
    ++counts_.remove_value;
    return inner_.RemoveValue(key, expected_version);
  }
  Result<std::vector<std::pair<std::string, ports::CoordinationValue>>> ListValues(const std::string& prefix) override {
    ++counts_.list_values;
    auto r = inner_.ListValues(prefix);
    if (r.ok()) counts_.values_listed += static_cast<std::int64_t>(r->size());
    return r;
  }
  Status RemovePrefix(const std::string& prefix) override {
    ++counts_.remove_prefix;
    return inner_.RemovePrefix(prefix);
  }

 private:
  ports::Coordination& inner_;
  CoordinationCounts& counts_;
};

// ------------------------------------------------------------------------------------------------
// The composition: SQLite store and queues in one temp file, FakeConcerto, the processes.

struct Options {
  std::vector<int> sizes{10000};
  std::filesystem::path db_dir = std::filesystem::temp_directory_path();
  std::size_t receive_batch = 1;  // serve's concerto workers receive one message at a time
  std::optional<std::int64_t> drain_limit;
};
Options g_options;
// Set when a run fails (SkipWithError does not change Google Benchmark's exit status).
bool g_failed = false;
void Fail(benchmark::State& state, const char* message) {
  g_failed = true;
  state.SkipWithError(message);
}

void RemoveDatabaseFiles(const std::filesystem::path& path) {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    std::filesystem::remove(path.string() + suffix, ignored);
  }
}

template <class T>
T Must(Result<T> result, std::string_view what) {
  if (!result.ok()) throw std::runtime_error(std::string(what) + ": " + result.status().ToString());
  return std::move(*result);
}
void Must(const Status& status, std::string_view what) {
  if (!status.ok()) throw std::runtime_error(std::string(what) + ": " + status.ToString());
}

struct Store {
  std::shared_ptr<adapters::SqliteDatabase> database;
  std::unique_ptr<adapters::SqliteDeviceStore> devices;
  std::unique_ptr<adapters::SqliteQueue> concerto;
  std::unique_ptr<adapters::SqliteQueue> concerto_telemetry;
  std::unique_ptr<adapters::SqliteQueue> ces;
  std::unique_ptr<adapters::SqliteCoordination> coordination;
};

// As serve's Store::Open (src/runtime/serve/store.cc): the same queue names (store.h) and the
// coordination tables in the same file, over one connection. (The ingest queue plays no part.)
Store OpenStore(const std::string& path, const ports::Clock& clock) {
  constexpr int kMaxReceives = 5;  // config.queues.max_receives' default
  Store store;
  store.database = Must(adapters::SqliteDatabase::Open(path), "opening " + path);
  store.devices = Must(adapters::SqliteDeviceStore::Create(store.database), "device table");
  store.concerto = Must(adapters::SqliteQueue::Create(store.database, "concerto", clock, kMaxReceives), "queue");
  store.concerto_telemetry =
      Must(adapters::SqliteQueue::Create(store.database, "concerto-telemetry", clock, kMaxReceives), "queue");
  store.ces = Must(adapters::SqliteQueue::Create(store.database, "ces", clock, kMaxReceives), "queue");
  store.coordination = Must(adapters::SqliteCoordination::Create(store.database), "coordination tables");
  return store;
}

processes::Context MakeContext(ports::DeviceStore& devices, Store& store, const ports::Clock& clock, Metrics& metrics,
                               ports::Coordination& coordination) {
  processes::Settings settings;
  settings.adapter_name = kAdapterName;
  // source_progress unset: no startup grace (ces_state.cc: no telemetry source to wait for).
  return processes::Context{devices,      *store.concerto, *store.concerto_telemetry, *store.ces, clock, metrics,
                            coordination, settings,        /*source_progress=*/{}};
}

std::string Padded(int i) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%06d", i);
  return buffer;
}

domain::SystemMetadata Metadata(const std::string& system_id, int i) {
  const std::string n = Padded(i);
  domain::SystemMetadata m;
  m.system_id = system_id;
  m.site_id = "ces-site-" + system_id;
  m.site_name = "Residence " + n;
  m.timezone = "America/Denver";
  m.latitude = 39.74;
  m.longitude = -104.99;
  m.status_name = domain::kCesStatusSuccess;
  m.inverters = {domain::CesInverter{"0001" + n + "01", "PWRcell X7602", 7600, 0.0}};
  m.site_meter_id = system_id + "-meter";
  return m;
}

// One commissioned system as commissioning leaves it: a SYSTEM asset on a site of its own, an
// INVERTER and a SITE_METER under it, CES metadata; evaluated OFFLINE (never heard) and OFFLINE
// accepted by Concerto (remote_state). Creates its Concerto structure in the fake and returns its
// device record (not stored) with the Concerto ids its remote_state goes to.
// No batteries or PV links: their assets play no part in a remote_state update, and every asset
// created in the FakeConcerto costs a scan of all assets (its setup is O(assets^2); with the five
// more assets of a DC system with two batteries and three PV links, 3,000 systems took ~2 min).
struct System {
  domain::DeviceRecord record;
  std::vector<std::string> asset_ids;  // SYSTEM, INVERTER, SITE_METER
  std::string site_id;
};
System Commissioned(FakeConcerto& fake, int i, Timestamp now) {
  const std::string remote_id = "sys-" + Padded(i);
  const domain::SystemMetadata m = Metadata(remote_id, i);
  domain::DeviceRecord d;
  d.remote_id = remote_id;
  d.name = "System " + remote_id;
  d.concerto_asset_id = fake.EnrollSystem(remote_id, d.name, std::string(kAdapterName));
  auto site = Must(fake.CreateSite({m.site_id, m.site_name, m.timezone, m.latitude, m.longitude}), "site");
  d.site = domain::SiteRef{site.id, site.remote_id, site.name};
  auto asset = [&](const std::string& rid, const std::string& name, AssetType type, const std::string& parent) {
    domain::CreateAssetRequest r;
    r.remote_id = rid;
    r.name = name;
    r.asset_type = type;
    r.adapter_name = kAdapterName;
    r.site_id = site.id;
    r.parent_id = parent;
    auto created = Must(fake.CreateAsset(r), "asset");
    return domain::AssetRef{created.id, created.remote_id};
  };
  d.inverters = {asset(m.inverters[0].rcpn, m.inverters[0].model, AssetType::kInverter, d.concerto_asset_id)};
  d.site_meter = asset(*m.site_meter_id, "Site meter", AssetType::kSiteMeter, d.concerto_asset_id);
  Must(fake.UpdateAsset({d.concerto_asset_id, site.id, std::nullopt, std::nullopt, std::nullopt}), "attach");
  d.inverter_rcpns = {m.inverters[0].rcpn};
  d.coupling = domain::Coupling::kDc;  // acPVPowerRating 0 (domain/coupling.h)
  d.metadata = m;
  d.metadata_fetched_at = now;
  d.commissioning = domain::Commissioning{domain::CommissioningState::kDone, ""};
  d.system_status = domain::kCesStatusSuccess;
  d.system_status_at = now;
  d.registered_at = now;
  d.updated_at = now;
  // The rule's own evaluation now (OFFLINE, never heard: reason and cause as the sweep would
  // record them, so the sweep before the flip records nothing), accepted by Concerto.
  const domain::StateDecision decision =
      domain::EvaluateRemoteState(d, domain::LivenessContext{now, processes::Settings{}.offline_timeout, now, true});
  if (decision.state != RemoteState::kOffline) throw std::runtime_error("fixture: " + remote_id + " not OFFLINE");
  d.evaluated_state = decision.state;
  d.remote_state = decision.state;
  d.remote_state_reason = decision.reason;
  d.remote_state_cause = decision.cause;
  d.remote_state_since = now;
  std::vector<std::string> asset_ids{d.concerto_asset_id};
  for (const auto& inverter : d.inverters) asset_ids.push_back(inverter.asset_id);
  asset_ids.push_back(d.site_meter->asset_id);
  return System{d, std::move(asset_ids), site.id};
}

std::int64_t ConcertoCalls(const FakeConcerto& fake) {
  std::int64_t total = 0;
  for (std::string_view op :
       {FakeConcerto::kListAssets, FakeConcerto::kAssetByRemoteId, FakeConcerto::kSiteByRemoteId,
        FakeConcerto::kCreateSite, FakeConcerto::kCreateAsset, FakeConcerto::kUpdateAsset,
        FakeConcerto::kUpdateAssetRemoteState, FakeConcerto::kUpdateSiteRemoteState, FakeConcerto::kIngestTelemetry}) {
    total += fake.CallCount(op);
  }
  return total;
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// CPU time of this process (all threads), in seconds.
double CpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

void RemoteStateFlip(benchmark::State& state, int systems) {
  for (auto _ : state) {
    const std::filesystem::path path =
        g_options.db_dir / ("pwrcell-bench-remote-state-flip-" + std::to_string(::getpid()) + ".db");
    RemoveDatabaseFiles(path);
    try {
      const auto setup_start = std::chrono::steady_clock::now();
      adapters::FakeClock clock;
      Store store = OpenStore(path.string(), clock);
      StoreCounts counts;
      CountingDeviceStore devices(*store.devices, counts);
      CoordinationCounts coordination_counts;
      CountingCoordination coordination(*store.coordination, coordination_counts);
      Metrics metrics;
      processes::Context context = MakeContext(devices, store, clock, metrics, coordination);
      FakeConcerto fake;
      processes::DeviceMetadataProcessor metadata(context);
      processes::Registrar registrar(context, metadata);
      processes::ConcertoGateway gateway(context, fake, registrar);
      processes::CesStateProcessor ces_state(context);

      // The fleet, commissioned and OFFLINE; Concerto has OFFLINE on every asset and site, and the
      // Coordination store says so (the accepted states, shared_state.h). Written straight to the
      // store (not counted), in one transaction.
      const std::string accepted_offline = processes::EncodeAcceptedState({RemoteState::kOffline, "", {}, {}});
      const domain::StateDecision offline_site = domain::AggregateSiteState({RemoteState::kOffline});
      std::vector<System> fleet;
      fleet.reserve(static_cast<std::size_t>(systems));
      for (int i = 1; i <= systems; ++i) fleet.push_back(Commissioned(fake, i, clock.Now()));
      const double fake_setup_s = Seconds(std::chrono::steady_clock::now() - setup_start);
      {
        auto unit = Must(store.database->BeginUnitOfWork(), "unit of work");
        for (const auto& system : fleet) {
          Must(store.devices->Put(system.record), "storing " + system.record.remote_id);
          for (const auto& id : system.asset_ids) {
            Must(fake.UpdateAssetRemoteState({id, RemoteState::kOffline, system.record.remote_state_reason}), "asset");
            Must(store.coordination->PutValue(processes::AcceptedStateKey(false, id), accepted_offline, 0),
                 "accepted state of " + id);
          }
          Must(fake.UpdateSiteRemoteState({system.site_id, RemoteState::kOffline, offline_site.reason}), "site state");
          Must(store.coordination->PutValue(processes::AcceptedStateKey(true, system.site_id), accepted_offline, 0),
               "accepted state of " + system.site_id);
        }
        Must(unit.Commit(), "commit");
      }
      // Nothing to do before the flip: a sweep now records nothing, takes no lease, queues nothing.
      clock.Advance(std::chrono::seconds(1));
      {
        const auto s0 = counts.Take();
        const auto k0 = coordination_counts.Take();
        Must(ces_state.Sweep(), "sweep before the flip");
        const auto s1 = counts.Take() - s0;
        const auto k1 = coordination_counts.Take() - k0;
        if (Must(store.concerto->Stats(), "stats").visible != 0 || s1.put != 0 || k1.writes() != 0) {
          throw std::runtime_error("fleet not in steady state: the sweep before the flip wrote " +
                                   std::to_string(s1.put) + " records, made " + std::to_string(k1.writes()) +
                                   " coordination writes");
        }
      }

      // Every system heard now (what the telemetry processor writes), again in one transaction.
      clock.Advance(std::chrono::seconds(1));
      {
        auto unit = Must(store.database->BeginUnitOfWork(), "unit of work");
        for (const auto& system : fleet) {
          auto d = Must(store.devices->Get(system.record.remote_id), "reading").value();
          d.RaiseLastHeard(clock.Now());
          d.updated_at = clock.Now();
          Must(store.devices->Put(d), "storing " + d.remote_id);
        }
        Must(unit.Commit(), "commit");
      }
      clock.Advance(std::chrono::seconds(1));
      const double setup_s = Seconds(std::chrono::steady_clock::now() - setup_start);

      // --- The flip ---
      const auto c0 = counts.Take();
      const auto k0 = coordination_counts.Take();
      const std::int64_t concerto0 = ConcertoCalls(fake);
      const int asset_updates0 = fake.CallCount(FakeConcerto::kUpdateAssetRemoteState);
      const int site_updates0 = fake.CallCount(FakeConcerto::kUpdateSiteRemoteState);

      const double sweep_cpu_start = CpuSeconds();
      const auto sweep_start = std::chrono::steady_clock::now();
      Must(ces_state.Sweep(), "sweep");
      const auto sweep_end = std::chrono::steady_clock::now();
      const double sweep_cpu_s = CpuSeconds() - sweep_cpu_start;
      const auto c1 = counts.Take();
      const auto k1 = coordination_counts.Take();
      const std::int64_t queued = static_cast<std::int64_t>(Must(store.concerto->Stats(), "stats").visible);

      std::int64_t updates = 0, other_requests = 0, failures = 0;
      const std::int64_t limit = g_options.drain_limit.value_or(queued);
      const double drain_cpu_start = CpuSeconds();
      const auto drain_start = std::chrono::steady_clock::now();
      while (updates + other_requests < limit) {
        const auto want = static_cast<std::size_t>(std::min<std::int64_t>(
            static_cast<std::int64_t>(g_options.receive_batch), limit - updates - other_requests));
        auto received = Must(store.concerto->Receive(want, std::chrono::minutes(5)), "receive");
        if (received.empty()) break;
        for (const auto& message : received) {
          auto request = processes::DecodeConcertoRequest(message.body);
          Must(request.status(), "decoding " + message.body);
          if (std::holds_alternative<processes::RemoteStateRequest>(*request)) {
            ++updates;
          } else {
            ++other_requests;
          }
          Status handled = gateway.Handle(*request);
          if (!handled.ok()) {
            ++failures;
            spdlog::error("handling {}: {}", message.body, handled.ToString());
            continue;  // left in flight (the fake clock never makes it visible again)
          }
          Must(store.concerto->Delete(message.receipt), "delete");
        }
      }
      const auto drain_end = std::chrono::steady_clock::now();
      const double drain_cpu_s = CpuSeconds() - drain_cpu_start;
      const auto c2 = counts.Take();
      const auto k2 = coordination_counts.Take();
      const bool complete = updates + other_requests >= queued;

      const double sweep_s = Seconds(sweep_end - sweep_start);
      const double drain_s = Seconds(drain_end - drain_start);
      const auto sweep = c1 - c0;
      const auto drain = c2 - c1;
      const auto sweep_coordination = k1 - k0;
      const auto drain_coordination = k2 - k1;
      const std::int64_t concerto_calls = ConcertoCalls(fake) - concerto0;
      const int asset_updates = fake.CallCount(FakeConcerto::kUpdateAssetRemoteState) - asset_updates0;
      const int site_updates = fake.CallCount(FakeConcerto::kUpdateSiteRemoteState) - site_updates0;
      const double handled = static_cast<double>(std::max<std::int64_t>(1, updates + other_requests));
      const double drain_s_all = drain_s * static_cast<double>(queued) / handled;
      const double drain_cpu_s_all = drain_cpu_s * static_cast<double>(queued) / handled;
      state.SetIterationTime(sweep_s + drain_s_all);

      // Check the outcome (uncounted): every system ONLINE in the store (evaluated and accepted)
      // and, by the last update Concerto accepted, on its SYSTEM, INVERTER and SITE_METER assets and
      // its site, and recorded so as accepted in the Coordination store. (Concerto's side from the
      // histories: FakeConcerto::Asset renders children by scanning every asset, too slow here.)
      std::map<std::string, RemoteState> asset_states, site_states;
      for (const auto& u : fake.AssetRemoteStateHistory()) asset_states[u.id] = u.state;
      for (const auto& u : fake.SiteRemoteStateHistory()) site_states[u.id] = u.state;
      auto online_in = [](const std::map<std::string, RemoteState>& states, const std::string& id) {
        auto it = states.find(id);
        return it != states.end() && it->second == RemoteState::kOnline;
      };
      auto accepted_online = [&](bool site, const std::string& id) {
        auto stored = Must(store.coordination->GetValue(processes::AcceptedStateKey(site, id)), "accepted state");
        return stored.has_value() && processes::DecodeAcceptedState(stored->value).accepted == RemoteState::kOnline;
      };
      std::int64_t online = 0;
      for (const auto& system : fleet) {
        auto d = Must(store.devices->Get(system.record.remote_id), "reading");
        bool ok = d.has_value() && d->remote_state == RemoteState::kOnline &&
                  d->evaluated_state == RemoteState::kOnline && online_in(site_states, system.site_id) &&
                  accepted_online(true, system.site_id);
        for (const auto& id : system.asset_ids) ok = ok && online_in(asset_states, id) && accepted_online(false, id);
        if (ok) ++online;
      }
      const double per = updates > 0 ? static_cast<double>(updates) : 1.0;
      auto& k = state.counters;
      k["systems"] = systems;
      k["updates"] = static_cast<double>(updates);
      k["store_calls_per_update"] = static_cast<double>(drain.calls()) / per;
      k["records_read_per_update"] = static_cast<double>(drain.records_read) / per;
      k["list_records_per_update"] = static_cast<double>(drain.list_records) / per;
      k["coordination_calls_per_update"] = static_cast<double>(drain_coordination.calls()) / per;
      k["coordination_writes_per_update"] = static_cast<double>(drain_coordination.writes()) / per;
      k["sweep_s"] = sweep_s;
      k["drain_s"] = drain_s;
      k["drain_ms_per_update"] = drain_s * 1000.0 / per;
      k["drain_cpu_ms_per_update"] = drain_cpu_s * 1000.0 / per;
      k["sweep_cpu_s"] = sweep_cpu_s;
      k["drain_cpu_s"] = drain_cpu_s;
      if (!complete) {
        k["drain_s_extrapolated"] = drain_s_all;
        k["drain_cpu_s_extrapolated"] = drain_cpu_s_all;
      }
      k["sweep_store_calls"] = static_cast<double>(sweep.calls());
      k["sweep_records_read"] = static_cast<double>(sweep.records_read);
      k["sweep_coordination_calls"] = static_cast<double>(sweep_coordination.calls());
      k["concerto_calls"] = static_cast<double>(concerto_calls);
      k["concerto_calls_per_update"] = static_cast<double>(concerto_calls) / per;
      k["setup_s"] = setup_s;

      std::fprintf(stderr, "\nremote_state flip, %d systems on %d sites (SQLite %s, receive batch %zu)\n", systems,
                   systems, path.c_str(), g_options.receive_batch);
      std::fprintf(stderr, "  setup (not measured)         %10.2f s (of which the FakeConcerto structure %.2f s)\n",
                   setup_s, fake_setup_s);
      std::fprintf(stderr,
                   "  sweep                        %10.3f s wall, %.3f s CPU; store calls %lld (Get %lld, List %lld, "
                   "Put %lld), records read %lld; coordination calls %lld (leases %lld, values %lld); requests "
                   "queued %lld\n",
                   sweep_s, sweep_cpu_s, static_cast<long long>(sweep.calls()), static_cast<long long>(sweep.get),
                   static_cast<long long>(sweep.list), static_cast<long long>(sweep.put),
                   static_cast<long long>(sweep.records_read), static_cast<long long>(sweep_coordination.calls()),
                   static_cast<long long>(sweep_coordination.leases()),
                   static_cast<long long>(sweep_coordination.get_value + sweep_coordination.put_value),
                   static_cast<long long>(queued));
      std::fprintf(stderr, "  drain                        %10.3f s wall, %.3f s CPU for %lld of %lld requests%s\n",
                   drain_s, drain_cpu_s, static_cast<long long>(updates + other_requests),
                   static_cast<long long>(queued), complete ? "" : " (--drain-limit)");
      if (!complete) {
        std::fprintf(stderr, "  drain, extrapolated to all   %10.1f s wall, %.1f s CPU\n", drain_s_all,
                     drain_cpu_s_all);
      }
      std::fprintf(stderr, "  per update_remote_state      %10.3f ms wall, %.3f ms CPU\n", drain_s * 1000.0 / per,
                   drain_cpu_s * 1000.0 / per);
      std::fprintf(stderr, "  update_remote_state handled  %10lld   (other requests %lld, failures %lld)\n",
                   static_cast<long long>(updates), static_cast<long long>(other_requests),
                   static_cast<long long>(failures));
      std::fprintf(stderr,
                   "  store calls per update       %10.3f   (Get %.3f, List %.3f, ListBySite %.3f, Find %.3f, Put "
                   "%.3f, Remove %.3f)\n",
                   static_cast<double>(drain.calls()) / per, static_cast<double>(drain.get) / per,
                   static_cast<double>(drain.list) / per, static_cast<double>(drain.list_by_site) / per,
                   static_cast<double>(drain.find_by_rcpn) / per, static_cast<double>(drain.put) / per,
                   static_cast<double>(drain.remove) / per);
      std::fprintf(stderr, "  records read per update      %10.1f   (of which by List/ListBySite %.1f)\n",
                   static_cast<double>(drain.records_read) / per, static_cast<double>(drain.list_records) / per);
      std::fprintf(stderr, "  drain store calls total      %10lld   records read total %lld\n",
                   static_cast<long long>(drain.calls()), static_cast<long long>(drain.records_read));
      const auto& dc = drain_coordination;
      std::fprintf(
          stderr,
          "  coordination calls / update %10.3f   (GetValue %.3f, PutValue %.3f, TryAcquireLease %.3f, "
          "ReleaseLease %.3f, other %.3f); writes %.3f\n",
          static_cast<double>(dc.calls()) / per, static_cast<double>(dc.get_value) / per,
          static_cast<double>(dc.put_value) / per, static_cast<double>(dc.try_acquire_lease) / per,
          static_cast<double>(dc.release_lease) / per,
          static_cast<double>(dc.calls() - dc.get_value - dc.put_value - dc.try_acquire_lease - dc.release_lease) / per,
          static_cast<double>(dc.writes()) / per);
      std::fprintf(stderr, "  drain coordination calls     %10lld   (values listed %lld)\n",
                   static_cast<long long>(dc.calls()), static_cast<long long>(dc.values_listed));
      std::fprintf(stderr, "  Concerto calls (flip)        %10lld   (asset remote_state %d, site remote_state %d)\n",
                   static_cast<long long>(concerto_calls), asset_updates, site_updates);
      std::fprintf(stderr, "  systems ONLINE everywhere    %10lld of %d%s\n", static_cast<long long>(online), systems,
                   complete ? "" : " (drain stopped early)");

      if (failures > 0 || (complete && (updates != systems || online != systems))) {
        Fail(state, "the flip did not complete: see the summary on stderr");
      }
    } catch (const std::exception& e) {
      Fail(state, e.what());
    }
    RemoveDatabaseFiles(path);
  }
}

// Takes --systems / --db-dir / --receive-batch out of argv (the rest goes to Google Benchmark).
bool ParseOwnFlags(int& argc, char** argv) {
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> value;
    std::string name = arg;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (name != "--systems" && name != "--db-dir" && name != "--receive-batch" && name != "--drain-limit") {
      rest.push_back(argv[i]);
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", name.c_str());
        return false;
      }
      value = argv[++i];
    }
    try {
      if (name == "--systems") {
        g_options.sizes.clear();
        std::size_t begin = 0;
        while (begin <= value->size()) {
          const std::size_t end = std::min(value->find(',', begin), value->size());
          const int n = std::stoi(value->substr(begin, end - begin));
          if (n < 1) throw std::invalid_argument("size < 1");
          g_options.sizes.push_back(n);
          begin = end + 1;
        }
      } else if (name == "--db-dir") {
        g_options.db_dir = *value;
      } else if (name == "--drain-limit") {
        const long long m = std::stoll(*value);
        if (m < 1) throw std::invalid_argument("limit < 1");
        g_options.drain_limit = m;
      } else {
        const int k = std::stoi(*value);
        if (k < 1 || static_cast<std::size_t>(k) > ports::kMaxQueueBatch) throw std::invalid_argument("1..10");
        g_options.receive_batch = static_cast<std::size_t>(k);
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "bad value for %s: %s\n", name.c_str(), value->c_str());
      return false;
    }
  }
  argc = static_cast<int>(rest.size());
  for (int i = 0; i < argc; ++i) argv[i] = rest[static_cast<std::size_t>(i)];
  return true;
}

}  // namespace
}  // namespace pwrcell::bench

int main(int argc, char** argv) {
  using namespace pwrcell::bench;
  if (!ParseOwnFlags(argc, argv)) return 2;
  spdlog::set_level(spdlog::level::warn);  // one info line per state change would swamp the run
  for (int n : g_options.sizes) {
    benchmark::RegisterBenchmark(("remote_state_flip/systems:" + std::to_string(n)).c_str(),
                                 [n](benchmark::State& state) { RemoteStateFlip(state, n); })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kSecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return g_failed ? 1 : 0;
}
