// Simulated systems (SPEC section 3, "Simulated systems"): Concerto SYSTEM assets marked
// `simulated` are unknown to CES, so the adapter serves them itself, with the same fleet model
// the fleet simulator uses (src/fleet): metadata synthesized from the remoteId (and Concerto's
// ratedPower), DC-coupled; telemetry synthesized every record interval and handed to the same
// sink as real records (the ingest queue), so the telemetry processor, liveness and forwarding
// are one code path.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/ces_types.h"
#include "fleet/physics.h"
#include "fleet/system_spec.h"
#include "processes/context.h"
#include "processes/process_metrics.h"

namespace pwrcell::processes {

// The system a simulated remoteId stands for: same answer on every run and machine.
fleet::SystemSpec SimulatedSystemSpec(const std::string& remote_id, std::optional<double> rated_power_kw);
// What CES would say about it (statusName SUCCESS).
domain::SystemMetadata SynthesizeMetadata(const std::string& remote_id, std::optional<double> rated_power_kw);
// True when the record's metadata is not what SynthesizeMetadata gives now (none yet, or
// Concerto's ratedPower changed).
bool SimulatedMetadataStale(const domain::DeviceRecord& record);

// Produces one EnergyRecordSet per simulated system per interval. Thread-safe (Tick is
// serialized by a mutex; the scheduler calls it from one thread anyway). Of several producers
// over one store (serve processes) only the holder of the "simulated/producer" lease produces;
// the newest slot stored is a watermark in the store, so a takeover does not repeat it. The
// physics state (battery charge ...) is this producer's own: a takeover starts it afresh.
class SimulatedTelemetry {
 public:
  using Sink = std::function<Status(const std::vector<std::string>& records)>;
  SimulatedTelemetry(Context& context, Duration interval, Sink sink);

  // For every registered simulated system that has metadata: when its next record is due (the
  // interval slot of `now` was not produced yet), advance its physics and hand the record to
  // the sink. A system that left the device table (or stopped being simulated) is dropped here
  // at once. Returns the number of records produced. Errors: the store's or the sink's (the
  // slot is then retried on the next tick).
  Result<int> Tick();

 private:
  struct Running {
    fleet::SystemSpec spec;
    fleet::SystemState state;
    std::optional<Timestamp> last_slot;
  };
  // What a simulated record at `version` says: its spec, or nullopt when it cannot produce yet
  // (no metadata or no inverter). A record is decoded again only when its version moves, so a
  // tick at rest decodes nothing.
  struct Known {
    std::int64_t version = 0;
    std::optional<fleet::SystemSpec> spec;
  };
  static constexpr const char* kProducerLease = "simulated/producer";
  static constexpr const char* kProducedSlotKey = "simulated/produced_slot";  // unix ms of the newest slot stored

  Context& context_;
  const Duration interval_;
  Sink sink_;
  const std::string owner_;  // this object's identity as the producer (not shared state)
  SimulatedSystemsMetrics metrics_;
  std::mutex mutex_;
  std::map<std::string, Running> running_;
  std::map<std::string, Known> known_;
};

}  // namespace pwrcell::processes
