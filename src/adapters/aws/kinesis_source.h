// The Kinesis telemetry source of a long-running process (`serve`): reads every shard of one
// stream with GetRecords, hands each batch to a handler, and keeps its position (a checkpoint per
// shard) in the coordination store, so that a restart resumes after the last record handled and
// several processes share the stream.
//
// Per shard, in the coordination store (ports::Coordination), under "<key_prefix><stream>/":
//   checkpoint/<shardId>  versioned value: the sequence number of the last record of the fully
//                         handled prefix, or "SHARD_END" once a closed shard was read to its end.
//                         Written by compare-and-set at the version last read, and never to a
//                         smaller sequence number: an owner that lost its lease cannot move it
//                         back (its write is refused and it stops reading the shard).
//   lease/<shardId>       lease: one process reads a shard at a time; renewed every lease_ttl/3
//                         while reading, released at Stop (or when handing the shard over), taken
//                         over by another process once it expired.
//   worker/<owner_id>     versioned value: the Unix ms until which the process counts as alive,
//                         refreshed with the leases. Each process reads at most
//                         ceil(readable shards / live processes) shards and hands extra shards
//                         back (after checkpointing), so several processes share a stream.
//
// Reading: each owned shard has its own thread: GetShardIterator (AFTER_SEQUENCE_NUMBER the
// checkpoint, else TRIM_HORIZON), then GetRecords in a loop, at most one call per
// min_call_interval per shard (Kinesis allows 5 GetRecords per second per shard), waiting
// poll_interval when the shard is caught up (no records and MillisBehindLatest 0). The handler
// answers one Status per record:
//   OK                  done with (forwarded, skipped as poison, dropped as unknown);
//   retryable error     the batch stops at this record; the prefix before it is checkpointed and
//                       the record is delivered again (with the rest) from the checkpoint after a
//                       backoff; nothing is skipped;
//   permanent error     counted as a bad record and passed over (never blocks the shard).
// An expired iterator (ExpiredIteratorException: Kinesis iterators live 5 minutes) is replaced by
// a new one from the checkpoint.
//
// Resharding: a child shard (ParentShardId / AdjacentParentShardId) is read only once each of its
// parents is finished (checkpoint "SHARD_END", or no longer listed: trimmed past retention). A
// parent is finished when GetRecords answers without NextShardIterator (AWS's end of a closed
// shard). The shards are listed again every relist_interval and as soon as a shard ends.
//
// Delivery is at least once: a record handled but not yet checkpointed when a process dies (or
// loses its lease) is handled again by the next owner; a checkpointed record never is.
//
// Wiring (serve): the handler adapts a batch to the telemetry processor, e.g.
//   [&processor](const KinesisBatch& batch) {
//     std::vector<processes::StreamRecord> records;
//     for (const auto& r : batch.records) records.push_back({r.data, batch.shard_id + "/" + r.sequence_number});
//     return processor.ProcessRecords(records);
//   }
// and `context.source_progress` reads Progress(). IAM: kinesis:DescribeStreamSummary, ListShards,
// GetShardIterator and GetRecords on the stream (fleet-sim's sink: DescribeStreamSummary and
// PutRecords).
//
// Thread-safety: Start, Stop and Progress may be called from any thread. The handler is called
// from one thread per owned shard, so concurrently for different shards (in order within a
// shard); it must be thread-safe (processes::TelemetryProcessor is).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "adapters/aws/aws_client.h"
#include "adapters/http/backoff.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/time.h"
#include "domain/remote_state.h"
#include "ports/clock.h"
#include "ports/coordination.h"

namespace pwrcell::adapters::aws {

// One record as read from the stream (no AWS type: the data is already base64-decoded).
struct KinesisRecord {
  std::string data;             // the bytes the producer put (one serialized EnergyRecordSet)
  std::string sequence_number;  // Kinesis' sequence number (decimal digits), unique in its shard
  std::string partition_key;    // the producer's partition key (fleet-sim: the systemId)
  Timestamp arrival;            // ApproximateArrivalTimestamp
};

// The records of one GetRecords answer, in shard order.
struct KinesisBatch {
  std::string shard_id;
  std::vector<KinesisRecord> records;
};

// One Status per record of the batch, in order (see the header comment). An answer of another
// length is a bug of the handler: the records from the first without a Status on are delivered
// again.
using KinesisHandler = std::function<std::vector<Status>(const KinesisBatch&)>;

struct KinesisSourceOptions {
  std::string stream_name;
  // This process's name in the leases: unique among the processes reading the stream
  // (e.g. "<host>:<pid>:<random>"); printable ASCII.
  std::string owner_id;
  // Wait between reads of a shard that is caught up.
  Duration poll_interval = std::chrono::seconds(1);
  // Shard leases last this long unless renewed (every lease_ttl / 3); a dead process's shards
  // are taken over after at most this long.
  Duration lease_ttl = std::chrono::seconds(30);
  // How often the shards are listed again (to find the children of a split or merge, and the
  // shards another process gave up).
  Duration relist_interval = std::chrono::seconds(30);
  // At least this long between two GetRecords on one shard (AWS: 5 per second per shard).
  Duration min_call_interval = std::chrono::milliseconds(200);
  // GetRecords' Limit: 1..10000.
  int max_records_per_call = 1000;
  // Waits after a retryable handler failure or a failed AWS call on a shard, growing with each
  // failure in a row.
  BackoffPolicy retry_backoff{std::chrono::milliseconds(200), std::chrono::seconds(10), 2.0, 0.5,
                              std::chrono::seconds(60)};
  // The coordination keys start with this.
  std::string key_prefix = "kinesis/";
};

// pwrcell_kinesis_records_read_total{stream}, pwrcell_kinesis_bad_records_total{stream} (handled
// with a permanent error and passed over), pwrcell_kinesis_redeliveries_total{stream} (a batch
// stopped at a retryable failure), pwrcell_kinesis_checkpoints_total{stream},
// pwrcell_kinesis_millis_behind_latest{stream,shard}, pwrcell_kinesis_shards_owned{stream}.
struct KinesisSourceMetrics {
  explicit KinesisSourceMetrics(Metrics* registry);
  Counter<1> records_read;
  Counter<1> bad_records;
  Counter<1> redeliveries;
  Counter<1> checkpoints;
  Gauge<2> millis_behind;
  Gauge<1> shards_owned;
};

// What ListShards says of one shard (the pure resharding rule below works on these).
struct KinesisShard {
  std::string id;
  std::string parent_id;           // "" when none
  std::string adjacent_parent_id;  // "" when none (set for a merge's child)
  std::string starting_sequence;
  std::optional<std::string> ending_sequence;  // set once the shard is closed
};

// The checkpoint value of a shard read to its end.
inline constexpr std::string_view kShardEnd = "SHARD_END";

// <0, 0, >0 as the decimal sequence number a is below, equal to or above b (Kinesis sequence
// numbers are up to 128-bit decimals: compared by length once leading zeros are dropped).
int CompareSequenceNumbers(std::string_view a, std::string_view b);

// The shards that may be read now: not finished, and each of whose parents is finished or no
// longer listed (trimmed past retention). In the order of `shards`.
std::vector<std::string> ReadableShards(const std::vector<KinesisShard>& shards,
                                        const std::set<std::string, std::less<>>& finished);

class KinesisSource {
 public:
  // Checks the options and that the stream exists (DescribeStreamSummary): kNotFound naming the
  // stream and carrying AWS's error when it does not, kInvalidArgument for bad options, the
  // client's status for other failures. Reads nothing yet. `client`, `coordination` and `clock`
  // must outlive the source.
  static Result<std::unique_ptr<KinesisSource>> Open(KinesisSourceOptions options, const AwsClient& client,
                                                     ports::Coordination& coordination, const ports::Clock& clock,
                                                     KinesisHandler handler, Metrics* metrics = nullptr);

  ~KinesisSource();  // Stop()
  KinesisSource(const KinesisSource&) = delete;
  KinesisSource& operator=(const KinesisSource&) = delete;

  // Starts reading in the background (kFailedPrecondition when already started). Failures while
  // reading are logged, counted and retried; they never end the source.
  Status Start();
  // Stops promptly: no new GetRecords, the batch being handled finishes and is checkpointed, the
  // leases are released. Idempotent; Start cannot be called again.
  void Stop();

  // stream_lag: the largest MillisBehindLatest of the shards this process reads; unset while it
  // reads none or one of them has not answered a GetRecords yet (SPEC section 4: then the source
  // is not known to have caught up).
  domain::SourceProgress Progress() const;

  // The shards this process reads now (operators, tests).
  std::vector<std::string> OwnedShards() const;

  const KinesisSourceOptions& options() const { return options_; }

 private:
  struct ShardReader;

  KinesisSource(KinesisSourceOptions options, const AwsClient& client, ports::Coordination& coordination,
                const ports::Clock& clock, KinesisHandler handler, Metrics* metrics);

  void Coordinate();
  Status ListShards();
  void Balance();
  void RunShard(ShardReader& reader);
  // Waits up to `delay` unless stopping (or `reader` told to stop); false when it should stop.
  bool Wait(Duration delay, const ShardReader* reader = nullptr);
  void Wake();

  std::string Key(std::string_view kind, std::string_view id) const;

  KinesisSourceOptions options_;
  const AwsClient& client_;
  ports::Coordination& coordination_;
  const ports::Clock& clock_;
  KinesisHandler handler_;
  KinesisSourceMetrics metrics_;
  Backoff backoff_;

  std::atomic<bool> stopping_{false};
  std::atomic<bool> relist_now_{false};
  bool started_ = false;
  std::thread coordinator_;

  mutable std::mutex mutex_;  // guards what follows, and is the waits' mutex
  std::condition_variable wake_;
  std::vector<KinesisShard> shards_;
  std::map<std::string, std::unique_ptr<ShardReader>, std::less<>> readers_;  // owned shards
};

}  // namespace pwrcell::adapters::aws
