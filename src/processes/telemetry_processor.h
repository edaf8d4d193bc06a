// telemetry_processor (SPEC 3.1): stream records -> device liveness fields + Concerto points.
//
// For each record: decode it as an EnergyRecordSet (a poison record is counted, logged with its
// sequence number and skipped: it never blocks the stream); find the device by inverterId =
// any of the system's inverter RCP numbers (an unknown system is counted and dropped, never
// created); raise last_heard_at to the newest currentTimestamp (never lower) and store the
// inverter's state and sys_mode when the record is the newest heard from that inverter (one
// reading per inverter, DeviceRecord::RecordInverterReading); map the channels (SPEC section 5)
// and enqueue the points on the Concerto telemetry queue in batches of at most 500 (points of
// several records share a batch).
//
// Only a transient fault (store or queue unavailable) fails a record, so that its source
// delivers it again; re-processing is harmless (last_heard_at only rises, Concerto de-duplicates
// points by (asset, metric, timestamp)).
//
// Thread-safe: several workers may call ProcessRecords at once.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "processes/context.h"
#include "processes/process_metrics.h"

namespace pwrcell::processes {

struct StreamRecord {
  std::string data;      // one serialized EnergyRecordSet
  std::string sequence;  // the source's id for it (queue message id, stream sequence number)
};

class TelemetryProcessor {
 public:
  explicit TelemetryProcessor(Context& context);

  // One Status per record, in order: OK when the record is done with (forwarded, skipped as
  // poison, or dropped as unknown), a retryable error when it must be delivered again.
  std::vector<Status> ProcessRecords(const std::vector<StreamRecord>& records);

 private:
  Context& context_;
  TelemetryMetrics metrics_;
};

}  // namespace pwrcell::processes
