// registrar (SPEC 3.4), invoked by concerto_gateway with the complete list of Concerto assets:
// keeps the SYSTEM assets of this adapter, upserts them into the device table (name, simulated
// flag, rated power, site, component assets from the SYSTEM's children and the inverter's),
// removes records whose asset left Concerto (only when the list is complete), requests CES
// metadata where it is missing or stale (simulated systems: synthesized at once, no CES), and
// requests commissioning where Concerto lacks structure (AUTO_COMMISSIONING) or shows such
// systems as awaiting commissioning. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "domain/concerto_types.h"
#include "processes/context.h"
#include "processes/device_metadata_processor.h"
#include "processes/process_metrics.h"

namespace pwrcell::processes {

// The device record fields that Concerto is the source of, applied to `record` from `asset`.
// `keep_components`: leave site, inverter, batteries, PV and site meter as the record has them
// (the list may predate what commissioning just recorded). Returns true when something changed.
// Exposed for tests.
bool ApplyConcertoAsset(const domain::ConcertoAsset& asset, domain::DeviceRecord& record, bool keep_components = false);

class Registrar {
 public:
  Registrar(Context& context, DeviceMetadataProcessor& metadata);

  // `complete`: every page was read and the list covers Concerto's totalCount. Only then are
  // records of systems missing from the list removed.
  // `listing_started`: when the listing began; a record that commissioning wrote to since then
  // keeps its component assets this time (the list may not show them yet).
  // Errors: transient store/queue errors (the caller retries the whole listing).
  Status Register(const std::vector<domain::ConcertoAsset>& assets, bool complete,
                  std::optional<Timestamp> listing_started = std::nullopt);

 private:
  // A system the last sweep found needing nothing: no write, no metadata or commissioning request.
  // The next sweep skips it without reading the record while its version and its asset are the
  // same and its metadata is not due yet (the only input that moves with time), so a sweep of a
  // settled fleet reads the table's keys once and decodes no record.
  struct Quiet {
    std::int64_t version = 0;
    std::size_t asset_fingerprint = 0;
    bool is_simulated = false;
    std::optional<Timestamp> metadata_fetched_at;
  };

  Context& context_;
  DeviceMetadataProcessor& metadata_;
  RegistrarMetrics metrics_;
  std::mutex quiet_mutex_;
  std::unordered_map<std::string, Quiet> quiet_;  // guarded by quiet_mutex_
};

class RegistrarPoller {
 public:
  explicit RegistrarPoller(Context& context) : context_(context) {}
  // Queues one list_assets request, unless one is still pending. Errors: the queue's.
  Status Poll();

 private:
  Context& context_;
};

}  // namespace pwrcell::processes
