// The coordination state (ports/coordination.h) in a DynamoDB table of its own (the device table is
// another), so that every `serve` instance and Lambda function that names the table shares one set
// of leases, throttles and values.
//
// The table: partition key `kind` (S), sort key `item_key` (S), on-demand capacity:
//   kind = "lease"     item_key = lease name   owner (S), expires_at (N, Unix ms)
//   kind = "throttle"  item_key = throttle key at (N, Unix ms)
//   kind = "value"     item_key = value key    value (B), version (N)
// One partition per kind, so that a prefix is a Query on the sort key (begins_with) in key order:
// ListValues and RemovePrefix read only the items they return or remove, never the whole table.
// DynamoDB compares S sort keys by their UTF-8 bytes, and keys are printable ASCII, so the Query's
// order is the byte order ListValues promises. Every read is strongly consistent.
//
// Each lease, throttle and value write is one PutItem or DeleteItem whose ConditionExpression
// carries the rule (lease free, expired or ours; throttle absent or old enough; version still n),
// so that of racing callers, in this process or another, exactly one wins; a failed condition
// (ConditionalCheckFailedException) is the "false" / kAborted answer, never retried. A write whose
// answer is lost (timeout, 5xx) is retried by the client with the same condition; had the lost
// attempt been applied, the retry's condition may fail on the first attempt's own write: TryThrottle
// then answers false for a throttle it recorded, ReleaseLease false for a lease it released, PutValue
// kAborted for a value it wrote (a caller that re-reads finds its value). Each errs on the side of
// doing less; TryAcquireLease's retry renews its own lease and answers true.
//
// Calls per operation: TryAcquireLease, ReleaseLease, GetLease, TryThrottle, ClearThrottle,
// GetValue, PutValue: 1. RemoveValue: 1, plus one GetItem when the condition fails (to tell
// kNotFound from kAborted). ListValues: 1 Query per 1 MB page. RemovePrefix: 3 key-only Queries
// (+ pages) and one BatchWriteItem per 25 items found (+ retries of UnprocessedItems).
//
// Unlike SQLite's, RemovePrefix is not one transaction: it removes the items it found one by one
// (DynamoDB's transactions stop at 100 items). A lease, throttle or value written under the prefix
// while it runs may survive, as one written just after it would; a reader may see part of the
// prefix gone. Its callers (a deregistered system's state) need no more.
//
// Capacity: each kind is one partition key value, so all of a kind's writes share one partition's
// limits (1,000 writes/s) until DynamoDB splits the item collection by sort key ranges (it does for
// tables without local secondary indexes, as this one). Values are at most DynamoDB's item size
// (400 KB, key included): a larger one is kInvalidArgument (ValidationException).
//
// Thread-safe: the object holds no state but its client; many objects (processes) may use one
// table. Errors: those of ports::Coordination, plus those of AwsClient (AwsErrorStatus):
// kUnavailable / kResourceExhausted (retryable, after the client's own retries), kNotFound when the
// table is gone, kUnauthenticated / kPermissionDenied for credentials or IAM.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "adapters/aws/aws_client.h"
#include "ports/coordination.h"

namespace pwrcell::adapters::aws {

class DynamoDbCoordination final : public ports::Coordination {
 public:
  // Creates the table (on-demand capacity) and waits until it is ACTIVE; OK when it exists
  // already. The IAM permissions: dynamodb:CreateTable, dynamodb:DescribeTable.
  // Errors: those of AwsClient; kDeadlineExceeded when the table is not ACTIVE within 60 s.
  static Status CreateTable(AwsClient& client, const std::string& table);

  // The coordination state in `table`, which must exist with this key schema (checked with
  // DescribeTable). Errors: kNotFound naming the table and AWS's error when it does not exist;
  // kFailedPrecondition when its key schema is not (kind HASH, item_key RANGE); those of AwsClient.
  // IAM: dynamodb:DescribeTable, GetItem, PutItem, DeleteItem, Query, BatchWriteItem on the table.
  static Result<std::unique_ptr<DynamoDbCoordination>> Open(std::shared_ptr<AwsClient> client, std::string table);

  Result<bool> TryAcquireLease(const std::string& name, const std::string& owner, Timestamp now, Duration ttl) override;
  Result<bool> ReleaseLease(const std::string& name, const std::string& owner) override;
  Result<std::optional<ports::LeaseInfo>> GetLease(const std::string& name) override;

  Result<bool> TryThrottle(const std::string& key, Timestamp now, Duration interval) override;
  Status ClearThrottle(const std::string& key) override;

  Result<std::optional<ports::CoordinationValue>> GetValue(const std::string& key) override;
  Result<std::int64_t> PutValue(const std::string& key, const std::string& value,
                                std::int64_t expected_version) override;
  Status RemoveValue(const std::string& key, std::int64_t expected_version) override;
  Result<std::vector<std::pair<std::string, ports::CoordinationValue>>> ListValues(const std::string& prefix) override;

  Status RemovePrefix(const std::string& prefix) override;

  const std::string& table() const { return table_; }

 private:
  DynamoDbCoordination(std::shared_ptr<AwsClient> client, std::string table)
      : client_(std::move(client)), table_(std::move(table)) {}

  // The item's attributes (nullopt when absent), read strongly consistent.
  Result<std::optional<nlohmann::json>> GetItem(const char* kind, const std::string& key, const char* what);
  // A conditional PutItem / DeleteItem: true when written, false when the condition failed.
  Result<bool> ConditionalWrite(const char* operation, nlohmann::json request, const std::string& what);
  // The items of `kind` whose sort key starts with `prefix` (every one for ""), in key order, all
  // pages; only their keys when `keys_only`.
  Result<std::vector<nlohmann::json>> QueryPrefix(const char* kind, const std::string& prefix, bool keys_only);

  std::shared_ptr<AwsClient> client_;
  std::string table_;
};

}  // namespace pwrcell::adapters::aws
