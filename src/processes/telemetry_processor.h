// telemetry_processor (SPEC 3.1): stream records -> device liveness fields + Concerto points.
//
// For a batch of records (one worker round): decode each as an EnergyRecordSet (a poison record is
// counted, logged with its sequence number and skipped: it never blocks the stream); find the
// device by inverterId = any of the system's inverter RCP numbers (an unknown system is counted
// and dropped, never created); map the channels (SPEC section 5); then, once for the whole batch,
// raise each device's last_heard_at to the newest currentTimestamp heard (never lower) and store
// each inverter's newest state and sys_mode (DeviceStore::RecordHeardBatch: one write for the
// batch, the record itself is not rewritten), and enqueue the points on the Concerto telemetry
// queue in messages of 500 points (the points of several records share a message, a record's
// points may span two), the last message of the batch holding the rest.
//
// Device look-ups: each distinct inverterId of the batch is resolved once to (remote_id, version)
// by an index look-up; the decoded record comes from a cache of the records this processor has
// read, keyed by remote_id and valid only at the version the store reports, so a record changed by
// any process (commissioning, metadata, removal) is read again, and the cost per record does not
// grow with the fleet. The cache holds at most `device_cache_size` records (then it starts afresh).
//
// Only a transient fault (store or queue unavailable) fails a record, so that its source
// delivers it again; re-processing is harmless (last_heard_at only rises, Concerto de-duplicates
// points by (asset, metric, timestamp)).
//
// Thread-safe: several workers may call ProcessRecords at once.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "domain/device.h"
#include "processes/context.h"
#include "processes/process_metrics.h"

namespace pwrcell::processes {

struct StreamRecord {
  std::string data;      // one serialized EnergyRecordSet
  std::string sequence;  // the source's id for it (queue message id, stream sequence number)
};

class TelemetryProcessor {
 public:
  static constexpr std::size_t kDefaultDeviceCacheSize = 20000;

  explicit TelemetryProcessor(Context& context, std::size_t device_cache_size = kDefaultDeviceCacheSize);

  // One Status per record, in order: OK when the record is done with (forwarded, skipped as
  // poison, or dropped as unknown), a retryable error when it must be delivered again.
  std::vector<Status> ProcessRecords(const std::vector<StreamRecord>& records);

  // ProcessRecords in two steps, so that a worker can do the first outside its database
  // transaction: Prepare decodes, looks the devices up, maps and encodes (CPU and reads); the
  // Apply it returns writes (the devices' hot fields, the queued points) and gives the Statuses.
  // Apply must be called once; it may run on another thread.
  using Apply = std::function<std::vector<Status>()>;
  Apply Prepare(const std::vector<StreamRecord>& records);

 private:
  // The record at `remote_id` as of `version`: from the cache, else read (and cached). nullptr
  // when it is gone.
  Result<std::shared_ptr<const domain::DeviceRecord>> Device(const std::string& remote_id, std::int64_t version);

  Context& context_;
  TelemetryMetrics metrics_;
  const std::size_t device_cache_size_;
  std::mutex cache_mutex_;
  std::unordered_map<std::string, std::shared_ptr<const domain::DeviceRecord>> cache_;  // by remote_id
};

}  // namespace pwrcell::processes
