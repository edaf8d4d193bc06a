// The Kinesis telemetry source against moto_server: every shard read, checkpoints in the
// coordination store (restart, retryable failures, poison records), shards shared by two
// processes, resharding (parents first) and the progress the startup grace reads; and fleet-sim's
// kinesis sink feeding a stream the source reads back.
//
// moto 5.x differs from Kinesis in ways these tests meet (the source follows AWS's documentation):
// it never ends a closed shard with a missing NextShardIterator (the source also ends a closed
// shard read past its EndingSequenceNumber), keeps writing new records to a closed parent after a
// split or merge, copies a merged parent's records into the child, and numbers records 1, 2, 3...
#include "adapters/aws/kinesis_source.h"

#include <gtest/gtest.h>
#include <stdio.h>  // popen
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "adapters/aws/dynamodb_coordination.h"
#include "adapters/memory/memory_coordination.h"
#include "capture_server.h"
#include "common/base64.h"
#include "moto.h"

namespace pwrcell::adapters::aws {
namespace {

using aws_test::MotoEndpoint;
using aws_test::MotoOptions;
using aws_test::UniqueName;

// Hash keys that land in the first and the second half of the hash range (moto's 2 shards).
const std::string kLowHash = "1";
const std::string kHighHash = "170141183460469231731687303715884105729";
const std::string kShard0 = "shardId-000000000000";
const std::string kShard1 = "shardId-000000000001";
const std::string kShard2 = "shardId-000000000002";

class WallClock final : public ports::Clock {
 public:
  Timestamp Now() const override { return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now()); }
};

struct Handled {
  std::string shard;
  std::string data;
  std::string sequence;
};

// A handler that records what it was given and answers what `decide` says (OK by default). As
// the telemetry processor would, it gives up on the rest of a batch after a retryable failure.
class Collector {
 public:
  using Decide = std::function<Status(const KinesisRecord&, int delivery)>;
  explicit Collector(Decide decide = {}) : decide_(std::move(decide)) {}

  // Called by the handler while a batch is handled (before its statuses are returned).
  std::function<void(const KinesisBatch&)> on_batch;

  KinesisHandler Handler() {
    return [this](const KinesisBatch& batch) {
      if (on_batch) on_batch(batch);
      std::lock_guard lock(mutex_);
      batch_shards_.push_back(batch.shard_id);
      std::vector<Status> statuses;
      bool gave_up = false;
      for (const auto& record : batch.records) {
        if (gave_up) {
          statuses.push_back(UnavailableError("not attempted"));
          continue;
        }
        const int delivery = ++deliveries_[record.data];
        Status status = decide_ ? decide_(record, delivery) : Status::Ok();
        if (status.ok()) {
          handled_.push_back({batch.shard_id, record.data, record.sequence_number});
          partition_keys_.insert(record.partition_key);
        }
        gave_up = status.IsRetryable();
        statuses.push_back(std::move(status));
      }
      return statuses;
    };
  }

  std::vector<Handled> handled() const {
    std::lock_guard lock(mutex_);
    return handled_;
  }
  std::vector<std::string> batch_shards() const {
    std::lock_guard lock(mutex_);
    return batch_shards_;
  }
  int deliveries(const std::string& data) const {
    std::lock_guard lock(mutex_);
    auto it = deliveries_.find(data);
    return it == deliveries_.end() ? 0 : it->second;
  }
  std::set<std::string> partition_keys() const {
    std::lock_guard lock(mutex_);
    return partition_keys_;
  }
  // How many times each data was handled (OK).
  std::map<std::string, int> counts() const {
    std::map<std::string, int> out;
    for (const auto& h : handled()) ++out[h.data];
    return out;
  }

 private:
  Decide decide_;
  mutable std::mutex mutex_;
  std::vector<Handled> handled_;
  std::vector<std::string> batch_shards_;
  std::map<std::string, int> deliveries_;
  std::set<std::string> partition_keys_;
};

// Polls `condition` every 20 ms for up to `timeout`.
bool Eventually(const std::function<bool()>& condition, Duration timeout = std::chrono::seconds(20)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

class KinesisSourceTest : public ::testing::Test {
 protected:
  void SetUp() override { stream_ = UniqueName("kin"); }

  void CreateStream(int shards) {
    auto created = client_.Call(kKinesis, "CreateStream", {{"StreamName", stream_}, {"ShardCount", shards}});
    ASSERT_TRUE(created.ok()) << created.status().ToString();
  }

  // Puts records (data, explicit hash key) in one PutRecords; returns (shard, sequence) of each.
  std::vector<std::pair<std::string, std::string>> Put(
      const std::vector<std::pair<std::string, std::string>>& records) {
    nlohmann::json entries = nlohmann::json::array();
    for (const auto& [data, hash] : records) {
      entries.push_back({{"Data", Base64Encode(data)}, {"PartitionKey", "system-" + data}, {"ExplicitHashKey", hash}});
    }
    auto put = client_.Call(kKinesis, "PutRecords", {{"StreamName", stream_}, {"Records", entries}});
    EXPECT_TRUE(put.ok()) << put.status().ToString();
    std::vector<std::pair<std::string, std::string>> out;
    if (!put.ok()) return out;
    EXPECT_EQ((*put)["FailedRecordCount"], 0);
    for (const auto& entry : (*put)["Records"]) {
      out.emplace_back(entry["ShardId"].get<std::string>(), entry["SequenceNumber"].get<std::string>());
    }
    return out;
  }

  KinesisSourceOptions Options(const std::string& owner) const {
    KinesisSourceOptions options;
    options.stream_name = stream_;
    options.owner_id = owner;
    options.poll_interval = std::chrono::milliseconds(50);
    options.lease_ttl = std::chrono::milliseconds(1500);
    options.relist_interval = std::chrono::milliseconds(500);
    options.min_call_interval = std::chrono::milliseconds(10);
    options.retry_backoff = {std::chrono::milliseconds(50), std::chrono::milliseconds(200), 2.0, 0.0,
                             std::chrono::seconds(1)};
    return options;
  }

  std::unique_ptr<KinesisSource> Open(const std::string& owner, Collector& collector,
                                      std::optional<KinesisSourceOptions> options = std::nullopt) {
    auto source = KinesisSource::Open(options ? *options : Options(owner), client_, coordination_, clock_,
                                      collector.Handler(), &metrics_);
    EXPECT_TRUE(source.ok()) << source.status().ToString();
    return source.ok() ? std::move(source).value() : nullptr;
  }

  std::optional<std::string> Checkpoint(const std::string& shard) {
    auto value = coordination_.GetValue("kinesis/" + stream_ + "/checkpoint/" + shard);
    EXPECT_TRUE(value.ok()) << value.status().ToString();
    if (!value.ok() || !value->has_value()) return std::nullopt;
    return (*value)->value;
  }

  AwsClient client_{MotoOptions()};
  MemoryCoordination coordination_;
  WallClock clock_;
  Metrics metrics_;
  std::string stream_;
};

TEST(KinesisSequenceNumbers, CompareAsDecimalNumbers) {
  EXPECT_LT(CompareSequenceNumbers("9", "10"), 0);
  EXPECT_GT(CompareSequenceNumbers("49590338271490256608559692538361571095921575989136588898",
                                   "49590338271490256608559692538361571095921575989136588897"),
            0);
  EXPECT_EQ(CompareSequenceNumbers("007", "7"), 0);
  EXPECT_LT(CompareSequenceNumbers("0", "1"), 0);
}

// The resharding rule without AWS: a split (0 -> 1, 2) then a merge (1 + 2 -> 3).
TEST(KinesisResharding, ChildrenWaitForEveryParent) {
  const std::vector<KinesisShard> shards = {{"s0", "", "", "1", "100"},
                                            {"s1", "s0", "", "101", "200"},
                                            {"s2", "s0", "", "102", "201"},
                                            {"s3", "s1", "s2", "202", std::nullopt},
                                            {"s4", "", "", "1", std::nullopt}};
  using Finished = std::set<std::string, std::less<>>;
  EXPECT_EQ(ReadableShards(shards, Finished{}), (std::vector<std::string>{"s0", "s4"}));
  EXPECT_EQ(ReadableShards(shards, Finished{"s0"}), (std::vector<std::string>{"s1", "s2", "s4"}));
  EXPECT_EQ(ReadableShards(shards, Finished{"s0", "s1"}), (std::vector<std::string>{"s2", "s4"}));
  EXPECT_EQ(ReadableShards(shards, Finished{"s0", "s1", "s2"}), (std::vector<std::string>{"s3", "s4"}));
  EXPECT_EQ(ReadableShards(shards, Finished{"s0", "s1", "s2", "s3", "s4"}), std::vector<std::string>{});
  // Parents trimmed past retention are no longer listed: their children are readable.
  const std::vector<KinesisShard> trimmed = {{"s3", "s1", "s2", "202", std::nullopt}};
  EXPECT_EQ(ReadableShards(trimmed, Finished{}), std::vector<std::string>{"s3"});
}

// What moto cannot show, against a fake Kinesis that answers as AWS documents: a closed shard ends
// with an answer without NextShardIterator (its EndingSequenceNumber lies beyond its last record),
// an expired iterator is replaced from the checkpoint, a throttled GetRecords is waited out, and
// GetRecords on one shard is paced to at most 5 calls per second.
TEST(KinesisSourceOnFakeAws, FollowsAwsEndOfShardExpiredIteratorsAndThrottling) {
  const std::string prefix = "495903382714902566085596925383615710959215759891365888";
  const std::map<std::string, std::vector<std::string>> records = {
      {"shardId-parent", {prefix + "01", prefix + "02", prefix + "03"}},
      {"shardId-child", {prefix + "14", prefix + "15"}}};
  std::mutex mutex;
  std::map<std::string, std::vector<std::chrono::steady_clock::time_point>> get_records_at;
  std::vector<nlohmann::json> iterator_requests;
  int parent_reads = 0;
  int child_reads = 0;
  const auto json_answer = [](int status, const nlohmann::json& body) {
    return aws_test::CannedResponse{
        status, {{"Content-Type", "application/x-amz-json-1.1"}, {"x-amzn-RequestId", "fake"}}, body.dump()};
  };
  aws_test::CaptureServer server([&](const aws_test::CapturedRequest& request) {
    const std::string target = request.Header("X-Amz-Target").value_or("");
    const nlohmann::json body = nlohmann::json::parse(request.body);
    std::lock_guard lock(mutex);
    if (target == "Kinesis_20131202.DescribeStreamSummary") {
      return json_answer(200, {{"StreamDescriptionSummary", {{"StreamStatus", "ACTIVE"}, {"OpenShardCount", 1}}}});
    }
    if (target == "Kinesis_20131202.ListShards") {
      return json_answer(200,
                         {{"Shards",
                           {{{"ShardId", "shardId-parent"},
                             {"SequenceNumberRange",
                              {{"StartingSequenceNumber", prefix + "00"}, {"EndingSequenceNumber", prefix + "99"}}}},
                            {{"ShardId", "shardId-child"},
                             {"ParentShardId", "shardId-parent"},
                             {"SequenceNumberRange", {{"StartingSequenceNumber", prefix + "10"}}}}}}});
    }
    if (target == "Kinesis_20131202.GetShardIterator") {
      iterator_requests.push_back(body);
      const auto& shard = records.at(body["ShardId"].get<std::string>());
      std::size_t position = 0;
      if (body["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER") {
        while (position < shard.size() &&
               CompareSequenceNumbers(shard[position], body["StartingSequenceNumber"].get<std::string>()) <= 0) {
          ++position;
        }
      }
      return json_answer(200, {{"ShardIterator", body["ShardId"].get<std::string>() + "|" + std::to_string(position)}});
    }
    if (target == "Kinesis_20131202.GetRecords") {
      const std::string iterator = body["ShardIterator"];
      const std::string shard_id = iterator.substr(0, iterator.find('|'));
      std::size_t position = std::stoul(iterator.substr(iterator.find('|') + 1));
      get_records_at[shard_id].push_back(std::chrono::steady_clock::now());
      if (shard_id == "shardId-parent" && ++parent_reads == 2) {
        return json_answer(400, {{"__type", "ExpiredIteratorException"}, {"message", "Iterator expired"}});
      }
      if (shard_id == "shardId-child" && ++child_reads == 1) {
        return json_answer(400, {{"__type", "ProvisionedThroughputExceededException"}, {"message", "Rate exceeded"}});
      }
      const auto& shard = records.at(shard_id);
      nlohmann::json out = {{"Records", nlohmann::json::array()}};
      const std::size_t limit = body["Limit"].get<std::size_t>();
      for (std::size_t n = 0; position < shard.size() && n < limit; ++position, ++n) {
        out["Records"].push_back({{"SequenceNumber", shard[position]},
                                  {"Data", Base64Encode("data-" + shard[position].substr(prefix.size()))},
                                  {"PartitionKey", "system"},
                                  {"ApproximateArrivalTimestamp", 1782014400.25}});
      }
      out["MillisBehindLatest"] = (shard.size() - position) * 1000;
      const bool closed = shard_id == "shardId-parent";
      if (!(closed && position == shard.size())) out["NextShardIterator"] = shard_id + "|" + std::to_string(position);
      return json_answer(200, out);
    }
    return json_answer(400, {{"__type", "UnknownOperationException"}, {"message", target}});
  });

  AwsOptions aws;
  aws.region = "eu-west-1";
  aws.credentials = {"AKIDEXAMPLE", "secret", ""};
  aws.endpoints["kinesis"] = server.url();
  aws.max_attempts = 1;  // the source's own backoff handles throttling
  const AwsClient client(aws);
  MemoryCoordination coordination;
  const WallClock clock;
  Collector collector;
  KinesisSourceOptions options;
  options.stream_name = "telemetry";
  options.owner_id = "p1";
  options.poll_interval = std::chrono::milliseconds(50);
  options.lease_ttl = std::chrono::milliseconds(1500);
  options.relist_interval = std::chrono::milliseconds(500);
  options.max_records_per_call = 2;
  options.retry_backoff = {std::chrono::milliseconds(50), std::chrono::milliseconds(200), 2.0, 0.0,
                           std::chrono::seconds(1)};
  // min_call_interval stays at its default, 200 ms (5 GetRecords per second per shard).
  auto source = KinesisSource::Open(options, client, coordination, clock, collector.Handler());
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  ASSERT_TRUE((*source)->Start().ok());
  ASSERT_TRUE(Eventually([&] { return collector.handled().size() >= 5; }));
  (*source)->Stop();

  std::vector<std::string> order;
  for (const auto& h : collector.handled()) order.push_back(h.shard + ":" + h.data);
  EXPECT_EQ(order,
            (std::vector<std::string>{"shardId-parent:data-01", "shardId-parent:data-02", "shardId-parent:data-03",
                                      "shardId-child:data-14", "shardId-child:data-15"}));
  auto parent = coordination.GetValue("kinesis/telemetry/checkpoint/shardId-parent");
  ASSERT_TRUE(parent.ok() && parent->has_value());
  EXPECT_EQ((*parent)->value, "SHARD_END") << "ended by the answer without NextShardIterator";
  auto child = coordination.GetValue("kinesis/telemetry/checkpoint/shardId-child");
  ASSERT_TRUE(child.ok() && child->has_value());
  EXPECT_EQ((*child)->value, prefix + "15");

  std::lock_guard lock(mutex);
  // The expired iterator was replaced by one after the checkpointed record 02.
  bool renewed_after_checkpoint = false;
  for (const auto& request : iterator_requests) {
    renewed_after_checkpoint |= request["ShardId"] == "shardId-parent" &&
                                request["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER" &&
                                request["StartingSequenceNumber"] == prefix + "02";
  }
  EXPECT_TRUE(renewed_after_checkpoint) << nlohmann::json(iterator_requests).dump();
  EXPECT_GE(child_reads, 2) << "throttled once, then read again";
  EXPECT_GE(parent_reads, 3) << "the expired iterator's read, then the rest";
  for (const auto& [shard, times] : get_records_at) {
    for (std::size_t i = 1; i < times.size(); ++i) {
      EXPECT_GE(times[i] - times[i - 1], std::chrono::milliseconds(195)) << shard << " call " << i;
    }
  }
}

TEST_F(KinesisSourceTest, AMissingStreamIsReportedByName) {
  Collector collector;
  auto source = KinesisSource::Open(Options("p1"), client_, coordination_, clock_, collector.Handler());
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), StatusCode::kNotFound);
  EXPECT_NE(source.status().message().find("Kinesis stream '" + stream_ + "' not found"), std::string::npos)
      << source.status().message();
  EXPECT_NE(source.status().message().find("ResourceNotFoundException"), std::string::npos)
      << source.status().message();
}

TEST_F(KinesisSourceTest, ReadsEveryShardOnceInOrderAndCheckpoints) {
  CreateStream(2);
  std::vector<std::pair<std::string, std::string>> records;
  for (int i = 0; i < 40; ++i) records.emplace_back("r" + std::to_string(i), i % 2 == 0 ? kLowHash : kHighHash);
  const auto placed = Put(records);
  ASSERT_EQ(placed.size(), 40U);
  std::map<std::string, std::vector<std::string>> put_order;  // shard -> data in put order
  std::map<std::string, std::string> last_sequence;
  for (std::size_t i = 0; i < placed.size(); ++i) {
    put_order[placed[i].first].push_back(records[i].first);
    last_sequence[placed[i].first] = placed[i].second;
  }
  ASSERT_EQ(put_order.size(), 2U);

  Collector collector;
  auto source = Open("p1", collector);
  ASSERT_NE(source, nullptr);
  EXPECT_FALSE(source->Progress().stream_lag.has_value()) << "no shard has answered before Start";
  ASSERT_TRUE(source->Start().ok());
  ASSERT_TRUE(Eventually([&] { return collector.handled().size() >= 40; }));
  ASSERT_TRUE(Eventually(
      [&] { return Checkpoint(kShard0) == last_sequence[kShard0] && Checkpoint(kShard1) == last_sequence[kShard1]; }));
  source->Stop();

  std::map<std::string, std::vector<std::string>> handled_order;
  for (const auto& h : collector.handled()) handled_order[h.shard].push_back(h.data);
  EXPECT_EQ(handled_order, put_order);
  for (const auto& [data, count] : collector.counts()) EXPECT_EQ(count, 1) << data;
  EXPECT_EQ(metrics_.Value("pwrcell_kinesis_records_read_total", {{"stream", stream_}}), 40);
  EXPECT_GE(metrics_.Value("pwrcell_kinesis_checkpoints_total", {{"stream", stream_}}), 2);
  EXPECT_EQ(collector.partition_keys().count("system-r0"), 1U);
  // Stop released the leases.
  for (const auto& shard : {kShard0, kShard1}) {
    auto lease = coordination_.GetLease("kinesis/" + stream_ + "/lease/" + shard);
    ASSERT_TRUE(lease.ok());
    EXPECT_FALSE(lease->has_value()) << shard;
  }
}

TEST_F(KinesisSourceTest, ARestartResumesAfterTheCheckpoint) {
  CreateStream(2);
  std::vector<std::pair<std::string, std::string>> first;
  for (int i = 0; i < 10; ++i) first.emplace_back("a" + std::to_string(i), i % 2 == 0 ? kLowHash : kHighHash);
  ASSERT_EQ(Put(first).size(), 10U);
  Collector before;
  {
    auto source = Open("p1", before);
    ASSERT_NE(source, nullptr);
    ASSERT_TRUE(source->Start().ok());
    ASSERT_TRUE(Eventually([&] { return before.handled().size() >= 10; }));
    source->Stop();
  }
  std::vector<std::pair<std::string, std::string>> second;
  for (int i = 0; i < 10; ++i) second.emplace_back("b" + std::to_string(i), i % 2 == 0 ? kLowHash : kHighHash);
  const auto placed = Put(second);
  ASSERT_EQ(placed.size(), 10U);

  Collector after;
  auto source = Open("p2", after);  // another process, the same store
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(source->Start().ok());
  ASSERT_TRUE(Eventually([&] { return after.handled().size() >= 10; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // anything re-read would show by now
  source->Stop();
  std::set<std::string> handled;
  for (const auto& h : after.handled()) handled.insert(h.data);
  EXPECT_EQ(after.handled().size(), 10U);
  for (const auto& [data, hash] : second) EXPECT_TRUE(handled.contains(data)) << data;
  for (const auto& [data, hash] : first) EXPECT_EQ(after.deliveries(data), 0) << data << " was checkpointed";
}

TEST_F(KinesisSourceTest, ARetryableFailureStopsTheBatchAndRedeliversFromThatRecord) {
  CreateStream(1);
  std::vector<std::pair<std::string, std::string>> records;
  for (int i = 0; i < 10; ++i) records.emplace_back("r" + std::to_string(i), kLowHash);
  const auto placed = Put(records);
  ASSERT_EQ(placed.size(), 10U);
  Collector collector([](const KinesisRecord& record, int delivery) {
    return record.data == "r5" && delivery <= 2 ? UnavailableError("store down") : Status::Ok();
  });
  auto source = Open("p1", collector);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(source->Start().ok());
  ASSERT_TRUE(Eventually([&] { return collector.handled().size() >= 10; }));
  ASSERT_TRUE(Eventually([&] { return Checkpoint(kShard0) == placed.back().second; }));
  source->Stop();

  std::vector<std::string> order;
  for (const auto& h : collector.handled()) order.push_back(h.data);
  std::vector<std::string> expected;
  for (const auto& [data, hash] : records) expected.push_back(data);
  EXPECT_EQ(order, expected) << "each record handled once, in order, none skipped";
  EXPECT_EQ(collector.deliveries("r5"), 3);
  EXPECT_EQ(collector.deliveries("r4"), 1) << "the prefix before the failure was checkpointed";
  EXPECT_EQ(metrics_.Value("pwrcell_kinesis_redeliveries_total", {{"stream", stream_}}), 2);
}

TEST_F(KinesisSourceTest, APoisonRecordIsCountedAndDoesNotBlockTheShard) {
  CreateStream(1);
  const auto placed = Put({{"ok1", kLowHash}, {"poison", kLowHash}, {"ok2", kLowHash}});
  ASSERT_EQ(placed.size(), 3U);
  Collector collector([](const KinesisRecord& record, int) {
    return record.data == "poison" ? InvalidArgumentError("not an EnergyRecordSet") : Status::Ok();
  });
  auto source = Open("p1", collector);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(source->Start().ok());
  ASSERT_TRUE(Eventually([&] { return Checkpoint(kShard0) == placed.back().second; }));
  source->Stop();
  EXPECT_EQ(collector.counts(), (std::map<std::string, int>{{"ok1", 1}, {"ok2", 1}}));
  EXPECT_EQ(collector.deliveries("poison"), 1);
  EXPECT_EQ(metrics_.Value("pwrcell_kinesis_bad_records_total", {{"stream", stream_}}), 1);
}

TEST_F(KinesisSourceTest, TwoProcessesShareTheShardsAndHandleEachRecordOnce) {
  CreateStream(2);
  Collector collector_a;
  Collector collector_b;
  auto a = Open("process-a", collector_a);
  auto b = Open("process-b", collector_b);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->Start().ok());
  ASSERT_TRUE(Eventually([&] { return a->OwnedShards().size() == 2; })) << "alone, a process reads every shard";
  ASSERT_TRUE(b->Start().ok());
  ASSERT_TRUE(Eventually([&] { return a->OwnedShards().size() == 1 && b->OwnedShards().size() == 1; }))
      << "a: " << a->OwnedShards().size() << " b: " << b->OwnedShards().size();
  EXPECT_NE(a->OwnedShards(), b->OwnedShards());

  std::vector<std::pair<std::string, std::string>> records;
  for (int i = 0; i < 40; ++i) records.emplace_back("r" + std::to_string(i), i % 2 == 0 ? kLowHash : kHighHash);
  ASSERT_EQ(Put(records).size(), 40U);
  ASSERT_TRUE(Eventually([&] { return collector_a.handled().size() + collector_b.handled().size() >= 40; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  a->Stop();
  b->Stop();
  std::map<std::string, int> counts = collector_a.counts();
  for (const auto& [data, count] : collector_b.counts()) counts[data] += count;
  EXPECT_EQ(counts.size(), 40U);
  for (const auto& [data, count] : counts) EXPECT_EQ(count, 1) << data;
  EXPECT_EQ(collector_a.handled().size(), 20U);
  EXPECT_EQ(collector_b.handled().size(), 20U);
}

TEST_F(KinesisSourceTest, AProcessThatStopsHandsItsShardsToTheOther) {
  CreateStream(2);
  Collector collector_a;
  Collector collector_b;
  auto a = Open("process-a", collector_a);
  auto b = Open("process-b", collector_b);
  ASSERT_TRUE(a->Start().ok());
  ASSERT_TRUE(b->Start().ok());
  ASSERT_TRUE(Eventually([&] { return a->OwnedShards().size() == 1 && b->OwnedShards().size() == 1; }));
  ASSERT_EQ(Put({{"x0", kLowHash}, {"x1", kHighHash}}).size(), 2U);
  ASSERT_TRUE(Eventually([&] { return collector_a.handled().size() + collector_b.handled().size() >= 2; }));
  a->Stop();
  ASSERT_TRUE(Eventually([&] { return b->OwnedShards().size() == 2; })) << "b takes a's released shard";
  ASSERT_EQ(Put({{"y0", kLowHash}, {"y1", kHighHash}}).size(), 2U);
  ASSERT_TRUE(Eventually([&] { return collector_b.counts().contains("y0") && collector_b.counts().contains("y1"); }));
  b->Stop();
  std::map<std::string, int> counts = collector_a.counts();
  for (const auto& [data, count] : collector_b.counts()) counts[data] += count;
  EXPECT_EQ(counts, (std::map<std::string, int>{{"x0", 1}, {"x1", 1}, {"y0", 1}, {"y1", 1}}));
}

// The production arrangement: two processes, each with its own connection to the coordination
// table in DynamoDB (moto), share a stream; then a third, started after both stopped, resumes after
// their checkpoints and handles only what came since.
TEST_F(KinesisSourceTest, TwoProcessesShareTheStreamThroughDynamoDbAndARestartResumes) {
  CreateStream(2);
  auto client = std::make_shared<AwsClient>(MotoOptions());
  const std::string table = UniqueName("kin-coord");
  ASSERT_TRUE(DynamoDbCoordination::CreateTable(*client, table).ok());
  auto coordination_a = DynamoDbCoordination::Open(client, table);
  auto coordination_b = DynamoDbCoordination::Open(client, table);
  ASSERT_TRUE(coordination_a.ok() && coordination_b.ok());
  Collector collector_a;
  Collector collector_b;
  auto a = KinesisSource::Open(Options("process-a"), client_, **coordination_a, clock_, collector_a.Handler());
  auto b = KinesisSource::Open(Options("process-b"), client_, **coordination_b, clock_, collector_b.Handler());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->Start().ok());
  ASSERT_TRUE((*b)->Start().ok());
  ASSERT_TRUE(Eventually([&] { return (*a)->OwnedShards().size() == 1 && (*b)->OwnedShards().size() == 1; }));
  std::vector<std::pair<std::string, std::string>> first;
  for (int i = 0; i < 20; ++i) first.emplace_back("a" + std::to_string(i), i % 2 == 0 ? kLowHash : kHighHash);
  ASSERT_EQ(Put(first).size(), 20U);
  ASSERT_TRUE(Eventually([&] { return collector_a.handled().size() + collector_b.handled().size() >= 20; }));
  (*a)->Stop();
  (*b)->Stop();
  std::map<std::string, int> counts = collector_a.counts();
  for (const auto& [data, count] : collector_b.counts()) counts[data] += count;
  EXPECT_EQ(counts.size(), 20U);
  for (const auto& [data, count] : counts) EXPECT_EQ(count, 1) << data;

  std::vector<std::pair<std::string, std::string>> second;
  for (int i = 0; i < 6; ++i) second.emplace_back("b" + std::to_string(i), i % 2 == 0 ? kLowHash : kHighHash);
  ASSERT_EQ(Put(second).size(), 6U);
  auto coordination_c = DynamoDbCoordination::Open(client, table);
  ASSERT_TRUE(coordination_c.ok());
  Collector collector_c;
  auto c = KinesisSource::Open(Options("process-c"), client_, **coordination_c, clock_, collector_c.Handler());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Start().ok());
  ASSERT_TRUE(Eventually([&] { return collector_c.handled().size() >= 6; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  (*c)->Stop();
  std::set<std::string> resumed;
  for (const auto& h : collector_c.handled()) resumed.insert(h.data);
  EXPECT_EQ(collector_c.handled().size(), 6U);
  EXPECT_EQ(resumed, (std::set<std::string>{"b0", "b1", "b2", "b3", "b4", "b5"}));
}

// Another process took the shard over while this one was handling a batch (its lease had expired)
// and checkpointed further: the stale owner's checkpoint is refused, so it cannot move the
// checkpoint back, and it stops reading the shard without touching the new owner's lease.
TEST_F(KinesisSourceTest, AStaleOwnerCannotMoveTheCheckpointBackAndStops) {
  CreateStream(1);
  std::vector<std::pair<std::string, std::string>> records;
  for (int i = 0; i < 5; ++i) records.emplace_back("r" + std::to_string(i), kLowHash);
  const auto placed = Put(records);
  ASSERT_EQ(placed.size(), 5U);
  const std::string checkpoint_key = "kinesis/" + stream_ + "/checkpoint/" + kShard0;
  const std::string lease_key = "kinesis/" + stream_ + "/lease/" + kShard0;
  Collector collector;
  std::atomic<bool> taken{false};
  collector.on_batch = [&](const KinesisBatch&) {
    if (taken.exchange(true)) return;
    // The new owner: takes the (by its clock expired) lease and checkpoints the whole shard.
    auto lease = coordination_.TryAcquireLease(lease_key, "intruder", clock_.Now() + std::chrono::hours(1),
                                               std::chrono::hours(2));
    ASSERT_TRUE(lease.ok() && *lease);
    auto stored = coordination_.GetValue(checkpoint_key);
    ASSERT_TRUE(stored.ok());
    ASSERT_TRUE(
        coordination_.PutValue(checkpoint_key, placed.back().second, stored->has_value() ? (*stored)->version : 0)
            .ok());
  };
  KinesisSourceOptions options = Options("p1");
  options.max_records_per_call = 2;
  auto source = Open("p1", collector, options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(source->Start().ok());
  ASSERT_TRUE(Eventually([&] { return taken.load() && source->OwnedShards().empty(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // it must not come back to the shard
  EXPECT_TRUE(source->OwnedShards().empty());
  source->Stop();
  EXPECT_EQ(Checkpoint(kShard0), placed.back().second) << "the stale owner moved the checkpoint back";
  EXPECT_EQ(collector.handled().size(), 2U) << "it read no further than its first batch";
  EXPECT_EQ(metrics_.Value("pwrcell_kinesis_checkpoints_total", {{"stream", stream_}}), 0);
  auto lease = coordination_.GetLease(lease_key);
  ASSERT_TRUE(lease.ok() && lease->has_value());
  EXPECT_EQ((*lease)->owner, "intruder") << "Stop must not release a lease it lost";
}

// moto keeps a merged parent's records (and copies them into the child): the child's batches must
// all come after both parents were read to their end.
TEST_F(KinesisSourceTest, AMergedShardIsReadAfterBothParents) {
  CreateStream(2);
  std::vector<std::pair<std::string, std::string>> records;
  for (int i = 0; i < 6; ++i) records.emplace_back("p" + std::to_string(i), i % 2 == 0 ? kLowHash : kHighHash);
  ASSERT_EQ(Put(records).size(), 6U);
  auto merged = client_.Call(kKinesis, "MergeShards",
                             {{"StreamName", stream_}, {"ShardToMerge", kShard0}, {"AdjacentShardToMerge", kShard1}});
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();

  Collector collector;
  std::mutex seen_mutex;
  std::vector<std::string> owned_while_parents_read;
  std::unique_ptr<KinesisSource> source;
  KinesisSourceOptions options = Options("p1");
  options.max_records_per_call = 1;  // several batches per parent
  collector.on_batch = [&](const KinesisBatch& batch) {
    if (batch.shard_id == kShard2) return;
    std::lock_guard lock(seen_mutex);
    for (const auto& id : source->OwnedShards()) owned_while_parents_read.push_back(id);
  };
  source = Open("p1", collector, options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(source->Start().ok());
  ASSERT_TRUE(Eventually([&] { return Checkpoint(kShard0) == "SHARD_END" && Checkpoint(kShard1) == "SHARD_END"; }));
  ASSERT_TRUE(Eventually([&] { return source->OwnedShards() == std::vector<std::string>{kShard2}; }));
  source->Stop();

  const auto shards = collector.batch_shards();
  const auto first_child = std::find(shards.begin(), shards.end(), kShard2);
  EXPECT_TRUE(std::find(first_child, shards.end(), kShard0) == shards.end() &&
              std::find(first_child, shards.end(), kShard1) == shards.end())
      << "a parent batch came after a child batch";
  {
    std::lock_guard lock(seen_mutex);
    EXPECT_FALSE(owned_while_parents_read.empty());
    EXPECT_EQ(std::count(owned_while_parents_read.begin(), owned_while_parents_read.end(), kShard2), 0)
        << "the child was read while a parent was";
  }
  std::map<std::string, int> from_parents;
  for (const auto& h : collector.handled()) {
    if (h.shard != kShard2) ++from_parents[h.data];
  }
  EXPECT_EQ(from_parents.size(), 6U);
  for (const auto& [data, count] : from_parents) EXPECT_EQ(count, 1) << data;
}

// A split while the source runs: the closed parent is read to its end, then both children.
TEST_F(KinesisSourceTest, ASplitShardIsFollowedToItsChildren) {
  CreateStream(1);
  ASSERT_EQ(Put({{"before0", kLowHash}, {"before1", kHighHash}}).size(), 2U);
  Collector collector;
  auto source = Open("p1", collector);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(source->Start().ok());
  ASSERT_TRUE(Eventually([&] { return collector.handled().size() >= 2; }));
  EXPECT_EQ(source->OwnedShards(), std::vector<std::string>{kShard0});
  auto split = client_.Call(kKinesis, "SplitShard",
                            {{"StreamName", stream_}, {"ShardToSplit", kShard0}, {"NewStartingHashKey", kHighHash}});
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  ASSERT_TRUE(Eventually([&] { return Checkpoint(kShard0) == "SHARD_END"; }));
  ASSERT_TRUE(Eventually([&] { return source->OwnedShards() == std::vector<std::string>{kShard1, kShard2}; }));
  source->Stop();
  // moto moves the parent's records back into the (closed) parent on a split; they were handled once.
  EXPECT_EQ(collector.counts(), (std::map<std::string, int>{{"before0", 1}, {"before1", 1}}));
}

TEST_F(KinesisSourceTest, ProgressReportsTheLargestLagOnceEveryShardAnswered) {
  CreateStream(1);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Put({{"r" + std::to_string(i), kLowHash}}).size(), 1U);
    if (i < 2) std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }
  Collector collector;
  std::mutex lag_mutex;
  std::vector<std::optional<Duration>> lags;
  std::unique_ptr<KinesisSource> source;
  collector.on_batch = [&](const KinesisBatch&) {
    std::lock_guard lock(lag_mutex);
    lags.push_back(source->Progress().stream_lag);
  };
  KinesisSourceOptions options = Options("p1");
  options.max_records_per_call = 1;
  source = Open("p1", collector, options);
  ASSERT_NE(source, nullptr);
  EXPECT_FALSE(source->Progress().stream_lag.has_value());
  ASSERT_TRUE(source->Start().ok());
  ASSERT_TRUE(Eventually([&] { return collector.handled().size() >= 3; }));
  ASSERT_TRUE(Eventually([&] {
    const auto lag = source->Progress().stream_lag;
    return lag.has_value() && *lag == Duration(0);
  })) << "caught up";
  source->Stop();
  std::lock_guard lock(lag_mutex);
  ASSERT_EQ(lags.size(), 3U);
  ASSERT_TRUE(lags[0].has_value());
  EXPECT_GE(*lags[0], Duration(700)) << "the first record is ~800 ms behind the newest";
  EXPECT_LT(*lags[0], Duration(5000));
  ASSERT_TRUE(lags[1].has_value());
  EXPECT_LT(*lags[1], *lags[0]);
  EXPECT_GE(metrics_.Value("pwrcell_kinesis_millis_behind_latest", {{"stream", stream_}, {"shard", kShard0}}), 0);
}

// fleet-sim's kinesis sink puts the scenario's records; the source reads the same bytes back,
// compared with the same scenario written to a file sink.
TEST_F(KinesisSourceTest, FleetSimKinesisSinkFeedsTheSource) {
  const std::filesystem::path fleet_sim = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "fleet-sim";
  ASSERT_TRUE(std::filesystem::exists(fleet_sim)) << fleet_sim << " is not built";
  CreateStream(2);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / UniqueName("fleet-kinesis");
  std::filesystem::create_directories(dir);
  const std::filesystem::path scenario = dir / "scenario.toml";
  std::ofstream(scenario) << "[scenario]\nname = \"kinesis-sink\"\nseed = 7\nsystems = 6\n"
                             "start = \"2026-06-21T10:00:00Z\"\ninterval_s = 300\nspeed = 100000\n";
  const std::string env = "AWS_ENDPOINT_URL=" + MotoEndpoint() +
                          " AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 ";
  const std::string common = fleet_sim.string() + " --scenario " + scenario.string() + " --duration 2700";
  const auto run = [](const std::string& command, std::string* output) {
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) return -1;
    char buffer[512];
    while (fgets(buffer, sizeof buffer, pipe) != nullptr) *output += buffer;
    return pclose(pipe);
  };
  std::string file_log;
  ASSERT_EQ(run(common + " --sink file:" + (dir / "records.bin").string(), &file_log), 0) << file_log;
  std::string kinesis_log;
  ASSERT_EQ(run(env + common + " --sink kinesis:" + stream_, &kinesis_log), 0) << kinesis_log;
  std::string missing_log;
  EXPECT_EQ(WEXITSTATUS(run(env + common + " --sink kinesis:" + stream_ + "-missing", &missing_log)), 2);
  EXPECT_NE(missing_log.find("ResourceNotFoundException"), std::string::npos) << missing_log;

  std::multiset<std::string> expected;
  {
    std::ifstream in(dir / "records.bin", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (std::size_t i = 0; i + 4 <= bytes.size();) {
      const std::size_t n = (static_cast<unsigned char>(bytes[i]) << 24) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 2]) << 8) | static_cast<unsigned char>(bytes[i + 3]);
      expected.insert(bytes.substr(i + 4, n));
      i += 4 + n;
    }
  }
  std::filesystem::remove_all(dir);
  ASSERT_EQ(expected.size(), 60U) << "6 systems x 10 intervals: " << file_log;
  EXPECT_NE(kinesis_log.find("60 delivered, 0 rejected, 0 not delivered"), std::string::npos) << kinesis_log;

  Collector collector;
  auto source = Open("p1", collector);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(source->Start().ok());
  ASSERT_TRUE(Eventually([&] { return collector.handled().size() >= expected.size(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  source->Stop();
  std::multiset<std::string> read;
  for (const auto& h : collector.handled()) read.insert(h.data);
  EXPECT_EQ(read.size(), expected.size());
  EXPECT_TRUE(read == expected) << "the stream holds exactly the scenario's records";
  EXPECT_EQ(collector.partition_keys().size(), 6U) << "partition key = systemId";
}

}  // namespace
}  // namespace pwrcell::adapters::aws
