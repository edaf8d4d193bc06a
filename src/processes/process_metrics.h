// The metrics of the processes of SPEC section 3, one struct per handler, each metric declared
// once here with its name, help text and label names (common/metrics.h). A handler holds its
// struct as a member built from context.metrics:
//
//   TelemetryProcessor::TelemetryProcessor(Context& context)
//       : context_(context), metrics_(&context.metrics) {}
//   metrics_.records.Increment({"decoded"});
//
// Thread-safe like the handles (immutable after construction); the registry must outlive them.
#pragma once

#include "common/metrics.h"

namespace pwrcell::processes {

// telemetry_processor: records in, points out.
struct TelemetryMetrics {
  explicit TelemetryMetrics(Metrics* registry)
      : records(registry, "pwrcell_telemetry_records_total",
                "Telemetry records processed, by outcome (decoded, undecodable, unmatched, retried)", {"outcome"}),
        points(registry, "pwrcell_telemetry_points_total",
               "Concerto points produced by the telemetry mapping and queued for Concerto"),
        unmapped_channels(registry, "pwrcell_telemetry_unmapped_channels_total",
                          "Channels with no matching Concerto asset (counted, not guessed)") {}
  Counter<1> records;  // {outcome=decoded|undecodable|unmatched|retried}
  Counter<> points;
  Counter<> unmapped_channels;
};

// concerto_gateway: what reached Concerto.
struct ConcertoGatewayMetrics {
  explicit ConcertoGatewayMetrics(Metrics* registry)
      : points(registry, "pwrcell_concerto_points_total",
               "Telemetry points sent to Concerto, by outcome (accepted, duplicate, rejected)", {"outcome"}),
        commissioning_steps(registry, "pwrcell_commissioning_steps_total",
                            "Commissioning steps executed, by step and outcome (done, failed)", {"step", "outcome"}),
        remote_state_updates(registry, "pwrcell_remote_state_updates_total",
                             "remote_state updates sent to Concerto, by target (system, inverter, site_meter, site)",
                             {"target"}) {}
  Counter<1> points;                // {outcome=accepted|duplicate|rejected}
  Counter<2> commissioning_steps;   // {step, outcome=done|failed}
  Counter<1> remote_state_updates;  // {target}
};

// ces_state: CES statuses in, remote_state decisions out.
struct CesStateMetrics {
  explicit CesStateMetrics(Metrics* registry)
      : remote_state_changes(registry, "pwrcell_remote_state_changes_total",
                             "remote_state changes decided, by new state", {"state"}),
        ces_statuses(registry, "pwrcell_ces_statuses_total", "CES system statuses received, by statusName",
                     {"status"}) {}
  Counter<1> remote_state_changes;  // {state=ONLINE|OFFLINE|ERROR}
  Counter<1> ces_statuses;          // {status}
};

// device_metadata_processor.
struct DeviceMetadataMetrics {
  explicit DeviceMetadataMetrics(Metrics* registry)
      : processed(registry, "pwrcell_metadata_processed_total", "CES metadata answers stored, by coupling",
                  {"coupling"}),
        coupling_errors(registry, "pwrcell_coupling_errors_total",
                        "Systems whose CES configuration needs an operator (mixed acPVPowerRating ...)") {}
  Counter<1> processed;  // {coupling=AC|DC|...}
  Counter<> coupling_errors;
};

// registrar.
struct RegistrarMetrics {
  explicit RegistrarMetrics(Metrics* registry)
      : sweeps(registry, "pwrcell_registrar_sweeps_total", "Complete or partial asset lists registered", {"complete"}),
        registered(registry, "pwrcell_devices_registered_total", "Systems added to the device table"),
        deregistered(registry, "pwrcell_devices_deregistered_total",
                     "Systems removed from the device table because they left Concerto") {}
  Counter<1> sweeps;  // {complete=true|false}
  Counter<> registered;
  Counter<> deregistered;
};

// simulated_systems.
struct SimulatedSystemsMetrics {
  explicit SimulatedSystemsMetrics(Metrics* registry)
      : records(registry, "pwrcell_simulated_records_total", "EnergyRecordSets synthesized for simulated systems") {}
  Counter<> records;
};

}  // namespace pwrcell::processes
