#include "adapters/aws/kinesis_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "common/base64.h"

namespace pwrcell::adapters::aws {
namespace {

using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

std::string_view StripZeros(std::string_view digits) {
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  return digits;
}

// ApproximateArrivalTimestamp: epoch seconds (a JSON number) in the JSON protocol.
Timestamp ArrivalTime(const Json& value) {
  if (value.is_number()) return FromUnixSeconds(value.get<double>());
  if (value.is_string()) {
    if (auto parsed = ParseIso8601(value.get<std::string>())) return *parsed;
  }
  return Timestamp{};
}

std::string OptionalString(const Json& object, const char* name) {
  const auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

int CompareSequenceNumbers(std::string_view a, std::string_view b) {
  a = StripZeros(a);
  b = StripZeros(b);
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  const int order = a.compare(b);
  return order < 0 ? -1 : (order > 0 ? 1 : 0);
}

std::vector<std::string> ReadableShards(const std::vector<KinesisShard>& shards,
                                        const std::set<std::string, std::less<>>& finished) {
  std::set<std::string_view> listed;
  for (const auto& shard : shards) listed.insert(shard.id);
  // A parent no longer listed was trimmed past the stream's retention: nothing is left to read.
  const auto parent_done = [&](const std::string& parent) {
    return parent.empty() || !listed.contains(parent) || finished.contains(parent);
  };
  std::vector<std::string> out;
  for (const auto& shard : shards) {
    if (finished.contains(shard.id)) continue;
    if (parent_done(shard.parent_id) && parent_done(shard.adjacent_parent_id)) out.push_back(shard.id);
  }
  return out;
}

KinesisSourceMetrics::KinesisSourceMetrics(Metrics* registry)
    : records_read(registry, "pwrcell_kinesis_records_read_total", "Records read from the Kinesis stream", {"stream"}),
      bad_records(registry, "pwrcell_kinesis_bad_records_total",
                  "Kinesis records the handler refused for good, passed over", {"stream"}),
      redeliveries(registry, "pwrcell_kinesis_redeliveries_total",
                   "Kinesis batches stopped at a retryable failure and read again from the checkpoint", {"stream"}),
      checkpoints(registry, "pwrcell_kinesis_checkpoints_total", "Kinesis shard checkpoints written", {"stream"}),
      millis_behind(registry, "pwrcell_kinesis_millis_behind_latest",
                    "MillisBehindLatest of the last GetRecords of each shard read", {"stream", "shard"}),
      shards_owned(registry, "pwrcell_kinesis_shards_owned", "Kinesis shards this process reads", {"stream"}) {}

struct KinesisSource::ShardReader {
  KinesisShard shard;
  std::atomic<bool> stop{false};              // asked to stop: Stop, lease lost, handed to another process
  std::atomic<bool> lost{false};              // the lease is another process's now: do not release it
  std::atomic<bool> done{false};              // the thread has ended
  std::atomic<bool> finished{false};          // read to its end (checkpoint SHARD_END)
  std::optional<std::int64_t> millis_behind;  // guarded by KinesisSource::mutex_
  std::thread thread;
};

Result<std::unique_ptr<KinesisSource>> KinesisSource::Open(KinesisSourceOptions options, const AwsClient& client,
                                                           ports::Coordination& coordination, const ports::Clock& clock,
                                                           KinesisHandler handler, Metrics* metrics) {
  if (options.stream_name.empty()) return InvalidArgumentError("Kinesis source: the stream name is empty");
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(options.owner_id, "Kinesis source owner id"));
  if (!handler) return InvalidArgumentError("Kinesis source: no handler");
  if (options.max_records_per_call < 1 || options.max_records_per_call > 10000) {
    return InvalidArgumentError("Kinesis source: max_records_per_call must be 1..10000, not " +
                                std::to_string(options.max_records_per_call));
  }
  if (options.lease_ttl < std::chrono::milliseconds(300) || options.poll_interval <= Duration::zero() ||
      options.relist_interval <= Duration::zero() || options.min_call_interval < Duration::zero()) {
    return InvalidArgumentError(
        "Kinesis source: lease_ttl must be >= 300 ms, poll_interval and relist_interval > 0, min_call_interval >= 0");
  }
  AwsError error;
  auto summary = client.Call(kKinesis, "DescribeStreamSummary", {{"StreamName", options.stream_name}}, &error);
  if (!summary.ok()) {
    if (summary.status().code() == StatusCode::kNotFound) {
      return NotFoundError("Kinesis stream '" + options.stream_name + "' not found: " + summary.status().message());
    }
    return summary.status().WithContext("Kinesis stream '" + options.stream_name + "'");
  }
  const std::string status = (*summary)["StreamDescriptionSummary"].value("StreamStatus", "");
  spdlog::info("kinesis: stream '{}' is {} ({} open shards); reading as '{}'", options.stream_name, status,
               (*summary)["StreamDescriptionSummary"].value("OpenShardCount", 0), options.owner_id);
  return std::unique_ptr<KinesisSource>(
      new KinesisSource(std::move(options), client, coordination, clock, std::move(handler), metrics));
}

KinesisSource::KinesisSource(KinesisSourceOptions options, const AwsClient& client, ports::Coordination& coordination,
                             const ports::Clock& clock, KinesisHandler handler, Metrics* metrics)
    : options_(std::move(options)),
      client_(client),
      coordination_(coordination),
      clock_(clock),
      handler_(std::move(handler)),
      metrics_(metrics),
      backoff_(options_.retry_backoff) {}

KinesisSource::~KinesisSource() {
  Stop();
}

Status KinesisSource::Start() {
  std::lock_guard lock(mutex_);
  if (started_) return FailedPreconditionError("Kinesis source: already started");
  started_ = true;
  coordinator_ = std::thread([this] { Coordinate(); });
  return Status::Ok();
}

void KinesisSource::Stop() {
  stopping_.store(true);
  Wake();
  if (coordinator_.joinable()) coordinator_.join();
}

void KinesisSource::Wake() {
  { std::lock_guard lock(mutex_); }  // a waiter has either seen the flag or is waiting: notified
  wake_.notify_all();
}

bool KinesisSource::Wait(Duration delay, const ShardReader* reader) {
  std::unique_lock lock(mutex_);
  const auto should_stop = [&] { return stopping_.load() || (reader != nullptr && reader->stop.load()); };
  wake_.wait_for(lock, delay, [&] { return should_stop() || (reader == nullptr && relist_now_.load()); });
  return !should_stop();
}

std::string KinesisSource::Key(std::string_view kind, std::string_view id) const {
  std::string key = options_.key_prefix;
  key += options_.stream_name;
  key += '/';
  key += kind;
  key += '/';
  key += id;
  return key;
}

domain::SourceProgress KinesisSource::Progress() const {
  std::lock_guard lock(mutex_);
  domain::SourceProgress progress;
  std::optional<std::int64_t> largest;
  for (const auto& [id, reader] : readers_) {
    if (reader->finished.load()) continue;
    if (!reader->millis_behind) return progress;  // not answered yet: unknown
    largest = std::max(largest.value_or(0), *reader->millis_behind);
  }
  if (largest) progress.stream_lag = Duration(*largest);
  return progress;
}

std::vector<std::string> KinesisSource::OwnedShards() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [id, reader] : readers_) {
    if (!reader->stop.load() && !reader->done.load()) out.push_back(id);
  }
  return out;
}

Status KinesisSource::ListShards() {
  std::vector<KinesisShard> shards;
  Json request = {{"StreamName", options_.stream_name}};
  for (;;) {
    auto answer = client_.Call(kKinesis, "ListShards", request);
    if (!answer.ok()) return answer.status().WithContext("listing the shards of '" + options_.stream_name + "'");
    for (const auto& item : (*answer)["Shards"]) {
      KinesisShard shard;
      shard.id = OptionalString(item, "ShardId");
      shard.parent_id = OptionalString(item, "ParentShardId");
      shard.adjacent_parent_id = OptionalString(item, "AdjacentParentShardId");
      const Json& range = item.contains("SequenceNumberRange") ? item["SequenceNumberRange"] : Json::object();
      shard.starting_sequence = OptionalString(range, "StartingSequenceNumber");
      const std::string ending = OptionalString(range, "EndingSequenceNumber");
      if (!ending.empty()) shard.ending_sequence = ending;
      if (!shard.id.empty()) shards.push_back(std::move(shard));
    }
    const std::string next = OptionalString(*answer, "NextToken");
    if (next.empty()) break;
    request = {{"NextToken", next}};  // AWS refuses StreamName together with NextToken
  }
  std::lock_guard lock(mutex_);
  shards_ = std::move(shards);
  return Status::Ok();
}

void KinesisSource::Coordinate() {
  std::optional<SteadyClock::time_point> listed_at;
  const Duration renew_every = std::max(Duration(100), options_.lease_ttl / 3);
  while (!stopping_.load()) {
    const auto now = SteadyClock::now();
    if (!listed_at || relist_now_.exchange(false) || now - *listed_at >= options_.relist_interval) {
      const Status listed = ListShards();
      if (listed.ok()) {
        listed_at = now;
      } else {
        spdlog::warn("kinesis: {}", listed.ToString());
      }
    }
    Balance();
    Wait(listed_at ? renew_every : std::min(renew_every, Duration(1000)));
  }

  // Stopping: every reader finishes its batch, checkpoints and releases its lease.
  std::map<std::string, std::unique_ptr<ShardReader>, std::less<>> readers;
  {
    std::lock_guard lock(mutex_);
    readers.swap(readers_);
    for (auto& [id, reader] : readers) reader->stop.store(true);
  }
  wake_.notify_all();
  for (auto& [id, reader] : readers) {
    if (reader->thread.joinable()) reader->thread.join();
  }
  metrics_.shards_owned.Set({options_.stream_name}, 0);
  const std::string worker_key = Key("worker", options_.owner_id);
  if (auto mine = coordination_.GetValue(worker_key); mine.ok() && mine->has_value()) {
    (void)coordination_.RemoveValue(worker_key, (*mine)->version);  // the others count one process fewer now
  }
}

void KinesisSource::Balance() {
  const Timestamp now = clock_.Now();

  // Readers that ended (finished shards, lost or handed-back leases).
  std::vector<std::unique_ptr<ShardReader>> ended;
  {
    std::lock_guard lock(mutex_);
    for (auto it = readers_.begin(); it != readers_.end();) {
      if (it->second->done.load()) {
        ended.push_back(std::move(it->second));
        it = readers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& reader : ended) {
    if (reader->thread.joinable()) reader->thread.join();
    metrics_.millis_behind.Set({options_.stream_name, reader->shard.id}, 0);
  }

  // This process's heartbeat, and how many processes read the stream.
  const std::string worker_key = Key("worker", options_.owner_id);
  const std::string alive_until = std::to_string(ToUnixMillis(now + options_.lease_ttl));
  auto mine = coordination_.GetValue(worker_key);
  if (mine.ok()) {
    auto put = coordination_.PutValue(worker_key, alive_until, mine->has_value() ? (*mine)->version : 0);
    if (!put.ok()) spdlog::debug("kinesis: heartbeat: {}", put.status().ToString());
  }
  std::size_t live_workers = 1;
  if (auto workers = coordination_.ListValues(Key("worker", "")); workers.ok()) {
    live_workers = 0;
    for (const auto& [key, value] : *workers) {
      const std::int64_t until = std::atoll(value.value.c_str());
      if (until > ToUnixMillis(now) || key == worker_key) {
        ++live_workers;
      } else if (until < ToUnixMillis(now - 10 * options_.lease_ttl)) {
        (void)coordination_.RemoveValue(key, value.version);  // a process that died long ago
      }
    }
    live_workers = std::max<std::size_t>(live_workers, 1);
  }

  // Renew the leases of the shards being read (first: a store that cannot list the checkpoints
  // must not let them expire); a lease taken over stops its reader.
  std::vector<ShardReader*> active;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, reader] : readers_) {
      if (!reader->stop.load()) active.push_back(reader.get());
    }
  }
  std::size_t owned = 0;
  for (ShardReader* reader : active) {
    auto renewed =
        coordination_.TryAcquireLease(Key("lease", reader->shard.id), options_.owner_id, now, options_.lease_ttl);
    if (renewed.ok() && !*renewed) {
      spdlog::warn("kinesis: the lease of shard {} was taken over by another process; stopping it", reader->shard.id);
      reader->lost.store(true);
      reader->stop.store(true);
      continue;
    }
    if (!renewed.ok())
      spdlog::warn("kinesis: renewing the lease of {}: {}", reader->shard.id, renewed.status().ToString());
    ++owned;
  }
  Wake();  // readers told to stop notice at once

  // Which shards may be read now (parents first).
  auto checkpoints = coordination_.ListValues(Key("checkpoint", ""));
  if (!checkpoints.ok()) {
    spdlog::warn("kinesis: reading the checkpoints of '{}': {}", options_.stream_name, checkpoints.status().ToString());
    return;
  }
  std::set<std::string, std::less<>> finished;
  const std::size_t prefix_size = Key("checkpoint", "").size();
  for (const auto& [key, value] : *checkpoints) {
    if (value.value == kShardEnd) finished.insert(key.substr(prefix_size));
  }
  std::vector<KinesisShard> shards;
  {
    std::lock_guard lock(mutex_);
    shards = shards_;
  }
  const std::vector<std::string> readable = ReadableShards(shards, finished);
  const std::size_t target = (readable.size() + live_workers - 1) / live_workers;

  // More than a fair share: hand one back per round (it checkpoints, then releases its lease).
  if (owned > target && !active.empty()) {
    for (auto it = active.rbegin(); it != active.rend(); ++it) {
      if ((*it)->stop.load()) continue;
      spdlog::info("kinesis: handing shard {} over ({} processes read {} shards)", (*it)->shard.id, live_workers,
                   readable.size());
      (*it)->stop.store(true);
      --owned;
      break;
    }
  }
  Wake();

  // Take free shards up to the fair share.
  for (const std::string& id : readable) {
    if (owned >= target || stopping_.load()) break;
    {
      std::lock_guard lock(mutex_);
      if (readers_.contains(id)) continue;  // ours (possibly still handing it back)
    }
    auto acquired = coordination_.TryAcquireLease(Key("lease", id), options_.owner_id, now, options_.lease_ttl);
    if (!acquired.ok()) {
      spdlog::warn("kinesis: taking the lease of {}: {}", id, acquired.status().ToString());
      continue;
    }
    if (!*acquired) continue;  // another process reads it
    auto reader = std::make_unique<ShardReader>();
    for (const auto& shard : shards) {
      if (shard.id == id) reader->shard = shard;
    }
    ShardReader* raw = reader.get();
    {
      std::lock_guard lock(mutex_);
      readers_.emplace(id, std::move(reader));
      raw->thread = std::thread([this, raw] { RunShard(*raw); });
    }
    spdlog::info("kinesis: reading shard {} of '{}'", id, options_.stream_name);
    ++owned;
  }
  metrics_.shards_owned.Set({options_.stream_name}, static_cast<double>(owned));
}

void KinesisSource::RunShard(ShardReader& reader) {
  const std::string& shard_id = reader.shard.id;
  const std::string checkpoint_key = Key("checkpoint", shard_id);
  const std::string lease_key = Key("lease", shard_id);
  const std::array<std::string_view, 1> stream_label{options_.stream_name};

  std::optional<std::string> checkpoint;  // as last read from or written to the store
  std::int64_t version = 0;               // its version (0: none stored)
  std::string iterator;                   // empty: get one from the checkpoint
  std::optional<SteadyClock::time_point> last_call;
  int failures = 0;  // in a row, for the backoff
  const auto fail_wait = [&] { return Wait(backoff_.Delay(++failures), &reader); };

  // Moves the checkpoint forward by compare-and-set. kAborted when another process wrote it since.
  const auto write_checkpoint = [&](const std::string& value) -> Status {
    auto written = coordination_.PutValue(checkpoint_key, value, version);
    if (!written.ok()) return written.status();
    version = *written;
    checkpoint = value;
    metrics_.checkpoints.Increment(stream_label);
    return Status::Ok();
  };
  // After a refused checkpoint: keep reading (from the stored checkpoint) only while the lease is
  // still ours; a process that lost its lease stops, its handled records go to the new owner.
  const auto after_conflict = [&] {
    iterator.clear();
    auto lease = coordination_.GetLease(lease_key);
    const bool ours =
        lease.ok() && lease->has_value() && (*lease)->owner == options_.owner_id && (*lease)->expires_at > clock_.Now();
    if (!ours) {
      spdlog::warn("kinesis: shard {}: the checkpoint moved under another owner; stopping", shard_id);
      reader.lost.store(true);
      reader.stop.store(true);
    }
  };
  const auto mark_finished = [&] {
    const Status ended = write_checkpoint(std::string(kShardEnd));
    if (ended.ok()) {
      spdlog::info("kinesis: shard {} read to its end", shard_id);
      reader.finished.store(true);
      relist_now_.store(true);  // its children may be read now
      Wake();
      return true;
    }
    spdlog::warn("kinesis: shard {}: marking it finished: {}", shard_id, ended.ToString());
    if (ended.code() == StatusCode::kAborted) after_conflict();
    return false;
  };

  while (!stopping_.load() && !reader.stop.load()) {
    if (iterator.empty()) {
      auto stored = coordination_.GetValue(checkpoint_key);
      if (!stored.ok()) {
        spdlog::warn("kinesis: shard {}: reading its checkpoint: {}", shard_id, stored.status().ToString());
        fail_wait();
        continue;
      }
      checkpoint.reset();
      version = 0;
      if (stored->has_value()) {
        checkpoint = (*stored)->value;
        version = (*stored)->version;
      }
      if (checkpoint == kShardEnd) {
        reader.finished.store(true);
        break;
      }
      Json request = {{"StreamName", options_.stream_name}, {"ShardId", shard_id}};
      if (checkpoint) {
        request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER";
        request["StartingSequenceNumber"] = *checkpoint;
      } else {
        request["ShardIteratorType"] = "TRIM_HORIZON";
      }
      auto got = client_.Call(kKinesis, "GetShardIterator", request);
      if (!got.ok() || !(*got)["ShardIterator"].is_string()) {
        spdlog::warn("kinesis: shard {}: GetShardIterator: {}", shard_id,
                     got.ok() ? "no ShardIterator in the answer" : got.status().ToString());
        fail_wait();
        continue;
      }
      iterator = (*got)["ShardIterator"].get<std::string>();
    }

    if (last_call) {  // at most one GetRecords per min_call_interval on this shard
      const auto next = *last_call + options_.min_call_interval;
      const auto now = SteadyClock::now();
      if (next > now && !Wait(std::chrono::duration_cast<Duration>(next - now) + Duration(1), &reader)) break;
    }
    AwsError error;
    auto answer = client_.Call(kKinesis, "GetRecords",
                               {{"ShardIterator", iterator}, {"Limit", options_.max_records_per_call}}, &error);
    last_call = SteadyClock::now();
    if (!answer.ok()) {
      if (error.code == "ExpiredIteratorException") {  // iterators live 5 minutes: a new one
        iterator.clear();
        continue;
      }
      spdlog::warn("kinesis: shard {}: {}", shard_id, answer.status().ToString());
      if (!answer.status().IsRetryable()) iterator.clear();
      fail_wait();
      continue;
    }

    KinesisBatch batch;
    batch.shard_id = shard_id;
    std::size_t undecodable = 0;
    for (const auto& item : (*answer)["Records"]) {
      KinesisRecord record;
      record.sequence_number = OptionalString(item, "SequenceNumber");
      record.partition_key = OptionalString(item, "PartitionKey");
      record.arrival =
          item.contains("ApproximateArrivalTimestamp") ? ArrivalTime(item["ApproximateArrivalTimestamp"]) : Timestamp{};
      // The JSON protocol's blob: standard padded base64, which AWS writes without line breaks.
      auto data = Base64Decode(OptionalString(item, "Data"));
      if (data.ok()) {
        record.data = std::move(data).value();
      } else {
        // Cannot come from AWS (it encodes the bytes itself); handed over empty so that the
        // handler counts it as poison and the checkpoint still passes it.
        ++undecodable;
      }
      batch.records.push_back(std::move(record));
    }
    if (undecodable > 0) spdlog::warn("kinesis: shard {}: {} records with bad base64 data", shard_id, undecodable);
    const std::int64_t millis_behind = (*answer).value("MillisBehindLatest", std::int64_t{0});
    {
      std::lock_guard lock(mutex_);
      reader.millis_behind = millis_behind;
    }
    metrics_.millis_behind.Set({options_.stream_name, shard_id}, static_cast<double>(millis_behind));

    if (!batch.records.empty()) {
      metrics_.records_read.Increment(stream_label, static_cast<double>(batch.records.size()));
      const std::vector<Status> statuses = handler_(batch);
      std::size_t handled = 0;
      std::optional<Status> retry;
      for (; handled < batch.records.size(); ++handled) {
        if (handled >= statuses.size()) {
          retry = InternalError("the handler answered " + std::to_string(statuses.size()) + " statuses for " +
                                std::to_string(batch.records.size()) + " records");
          break;
        }
        const Status& status = statuses[handled];
        if (status.ok()) continue;
        if (status.IsRetryable()) {
          retry = status;
          break;
        }
        metrics_.bad_records.Increment(stream_label);
        spdlog::warn("kinesis: shard {}: record {} refused for good, passed over: {}", shard_id,
                     batch.records[handled].sequence_number, status.ToString());
      }
      if (handled > 0) {
        const Status written = write_checkpoint(batch.records[handled - 1].sequence_number);
        if (!written.ok()) {
          spdlog::warn("kinesis: shard {}: checkpoint {}: {}", shard_id, batch.records[handled - 1].sequence_number,
                       written.ToString());
          if (written.code() == StatusCode::kAborted) {
            after_conflict();
          } else {
            iterator.clear();  // delivered again from the stored checkpoint
            fail_wait();
          }
          continue;
        }
      }
      if (retry) {
        metrics_.redeliveries.Increment(stream_label);
        spdlog::warn("kinesis: shard {}: record {} to be delivered again: {}", shard_id,
                     batch.records[handled].sequence_number, retry->ToString());
        iterator.clear();
        fail_wait();
        continue;
      }
    }
    failures = 0;

    // AWS ends a closed shard by answering without NextShardIterator. moto never does: for a
    // closed shard (EndingSequenceNumber listed) an empty, caught-up answer past its ending
    // sequence number (or of a shard closed before it held a record) is its end as well. On AWS the
    // missing iterator comes first; the extra conditions keep this from ending a shard early.
    const auto next = answer->find("NextShardIterator");
    bool at_end = next == answer->end() || !next->is_string() || next->get<std::string>().empty();
    if (!at_end && batch.records.empty() && millis_behind == 0) {
      KinesisShard listed = reader.shard;  // as the latest listing says (it may have closed since)
      {
        std::lock_guard lock(mutex_);
        for (const auto& shard : shards_) {
          if (shard.id == shard_id) listed = shard;
        }
      }
      if (listed.ending_sequence) {
        at_end = checkpoint ? CompareSequenceNumbers(*checkpoint, *listed.ending_sequence) >= 0
                            : CompareSequenceNumbers(*listed.ending_sequence, listed.starting_sequence) <= 0;
      }
    }
    if (at_end) {
      if (mark_finished()) break;
      continue;
    }
    iterator = next->get<std::string>();
    if (batch.records.empty() && millis_behind == 0 && !Wait(options_.poll_interval, &reader)) break;
  }

  if (!reader.lost.load()) {
    auto released = coordination_.ReleaseLease(lease_key, options_.owner_id);
    if (!released.ok()) spdlog::warn("kinesis: releasing the lease of {}: {}", shard_id, released.status().ToString());
  }
  reader.done.store(true);
  relist_now_.store(reader.finished.load() || relist_now_.load());
  Wake();
}

}  // namespace pwrcell::adapters::aws
