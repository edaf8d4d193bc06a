#include "adapters/aws/dynamodb_coordination.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <string_view>
#include <thread>

#include "common/base64.h"

namespace pwrcell::adapters::aws {
namespace {

using nlohmann::json;
using ports::CoordinationValue;
using ports::LeaseInfo;

constexpr char kKindAttribute[] = "kind";
constexpr char kKeyAttribute[] = "item_key";
constexpr char kLease[] = "lease";
constexpr char kThrottle[] = "throttle";
constexpr char kValue[] = "value";
constexpr char kConditionFailed[] = "ConditionalCheckFailedException";
constexpr std::size_t kBatchWriteMax = 25;  // BatchWriteItem's limit per call

// Every expression names its attributes through placeholders: KEY, NAME and VALUE are among
// DynamoDB's reserved words, and one table of names keeps the expressions readable.
const json& AttributeNames() {
  static const json names = {{"#kind", kKindAttribute},  {"#key", kKeyAttribute}, {"#owner", "owner"},
                             {"#expires", "expires_at"}, {"#at", "at"},           {"#value", "value"},
                             {"#version", "version"}};
  return names;
}

// Only the placeholders an expression uses may be sent (DynamoDB refuses unused ones).
json NamesFor(std::initializer_list<const char*> placeholders) {
  json names = json::object();
  for (const char* placeholder : placeholders) names[placeholder] = AttributeNames().at(placeholder);
  return names;
}

json S(std::string_view text) {
  return {{"S", text}};
}
json N(std::int64_t number) {
  return {{"N", std::to_string(number)}};
}

json Key(const char* kind, const std::string& key) {
  return {{kKindAttribute, S(kind)}, {kKeyAttribute, S(key)}};
}

// ---- Reading items ----

Result<std::string> StringAttribute(const json& item, const char* name) {
  const auto found = item.find(name);
  if (found == item.end() || !found->contains("S") || !(*found)["S"].is_string()) {
    return InternalError(std::string("coordination item without string attribute ") + name);
  }
  return (*found)["S"].get<std::string>();
}

Result<std::int64_t> NumberAttribute(const json& item, const char* name) {
  const auto found = item.find(name);
  if (found == item.end() || !found->contains("N") || !(*found)["N"].is_string()) {
    return InternalError(std::string("coordination item without number attribute ") + name);
  }
  const std::string& text = (*found)["N"].get_ref<const std::string&>();
  std::int64_t number = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (error != std::errc() || end != text.data() + text.size()) {
    return InternalError(std::string("coordination item attribute ") + name + " is not a 64-bit integer");
  }
  return number;
}

Result<CoordinationValue> ValueFromItem(const json& item) {
  const auto found = item.find("value");
  if (found == item.end() || !found->contains("B") || !(*found)["B"].is_string()) {
    return InternalError("coordination value item without binary attribute value");
  }
  // The JSON form of DynamoDB's B type is base64.
  auto bytes = Base64Decode((*found)["B"].get_ref<const std::string&>());
  if (!bytes.ok()) return InternalError("DynamoDB returned a binary attribute that is not base64");
  auto version = NumberAttribute(item, "version");
  if (!version.ok()) return version.status();
  return CoordinationValue{std::move(bytes).value(), *version};
}

std::string Quoted(const std::string& key) {
  return "'" + key + "'";
}

}  // namespace

// ---- The table ----

Status DynamoDbCoordination::CreateTable(AwsClient& client, const std::string& table) {
  const json request = {{"TableName", table},
                        {"AttributeDefinitions",
                         {{{"AttributeName", kKindAttribute}, {"AttributeType", "S"}},
                          {{"AttributeName", kKeyAttribute}, {"AttributeType", "S"}}}},
                        {"KeySchema",
                         {{{"AttributeName", kKindAttribute}, {"KeyType", "HASH"}},
                          {{"AttributeName", kKeyAttribute}, {"KeyType", "RANGE"}}}},
                        {"BillingMode", "PAY_PER_REQUEST"}};
  auto created = client.Call(kDynamoDb, "CreateTable", request);
  if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) {
    return created.status().WithContext("creating the coordination table " + Quoted(table));
  }
  // A new table is CREATING for a few seconds on AWS (at once ACTIVE on moto).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (true) {
    auto described = client.Call(kDynamoDb, "DescribeTable", {{"TableName", table}});
    if (!described.ok()) return described.status().WithContext("creating the coordination table " + Quoted(table));
    if ((*described)["Table"].value("TableStatus", "") == "ACTIVE") return Status::Ok();
    if (std::chrono::steady_clock::now() > deadline) {
      return DeadlineExceededError("the coordination table " + Quoted(table) + " is not ACTIVE after 60 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

Result<std::unique_ptr<DynamoDbCoordination>> DynamoDbCoordination::Open(std::shared_ptr<AwsClient> client,
                                                                         std::string table) {
  auto described = client->Call(kDynamoDb, "DescribeTable", {{"TableName", table}});
  if (!described.ok()) {
    if (described.status().code() == StatusCode::kNotFound) {
      return NotFoundError("the DynamoDB coordination table " + Quoted(table) + " does not exist (" +
                           described.status().message() + ")");
    }
    return described.status().WithContext("opening the DynamoDB coordination table " + Quoted(table));
  }
  // The key schema this adapter writes, so that a table meant for something else (the device
  // table) is refused at start rather than by the first write.
  std::string hash;
  std::string range;
  for (const json& element : (*described)["Table"].value("KeySchema", json::array())) {
    (element.value("KeyType", "") == "HASH" ? hash : range) = element.value("AttributeName", "");
  }
  if (hash != kKindAttribute || range != kKeyAttribute) {
    return FailedPreconditionError("the DynamoDB table " + Quoted(table) + " has the key schema (" + hash + ", " +
                                   range + "), not the coordination table's (" + kKindAttribute + " HASH, " +
                                   kKeyAttribute + " RANGE)");
  }
  return std::unique_ptr<DynamoDbCoordination>(new DynamoDbCoordination(std::move(client), std::move(table)));
}

Result<std::optional<json>> DynamoDbCoordination::GetItem(const char* kind, const std::string& key, const char* what) {
  auto answer =
      client_->Call(kDynamoDb, "GetItem", {{"TableName", table_}, {"Key", Key(kind, key)}, {"ConsistentRead", true}});
  if (!answer.ok()) return answer.status().WithContext(std::string("reading ") + what + " " + key);
  const auto item = answer->find("Item");
  if (item == answer->end() || !item->is_object()) return std::optional<json>();
  return std::optional<json>(std::move(*item));
}

Result<bool> DynamoDbCoordination::ConditionalWrite(const char* operation, json request, const std::string& what) {
  request["TableName"] = table_;
  AwsError error;
  auto answer = client_->Call(kDynamoDb, operation, request, &error);
  if (answer.ok()) return true;
  if (error.code == kConditionFailed) return false;
  return answer.status().WithContext(what);
}

Result<std::vector<json>> DynamoDbCoordination::QueryPrefix(const char* kind, const std::string& prefix,
                                                            bool keys_only) {
  json request = {{"TableName", table_}, {"ConsistentRead", true}};
  // DynamoDB refuses an empty string compared with a key attribute (ValidationException): the
  // empty prefix is the whole kind, without begins_with.
  if (prefix.empty()) {
    request["KeyConditionExpression"] = "#kind = :kind";
    request["ExpressionAttributeValues"] = {{":kind", S(kind)}};
  } else {
    request["KeyConditionExpression"] = "#kind = :kind AND begins_with(#key, :prefix)";
    request["ExpressionAttributeValues"] = {{":kind", S(kind)}, {":prefix", S(prefix)}};
  }
  if (keys_only) request["ProjectionExpression"] = "#kind, #key";
  request["ExpressionAttributeNames"] =
      prefix.empty() && !keys_only ? NamesFor({"#kind"}) : NamesFor({"#kind", "#key"});
  std::vector<json> items;
  while (true) {
    auto page = client_->Call(kDynamoDb, "Query", request);
    if (!page.ok()) return page.status().WithContext(std::string("listing ") + kind + "s with prefix " + prefix);
    for (json& item : (*page)["Items"]) items.push_back(std::move(item));
    const auto last = page->find("LastEvaluatedKey");
    if (last == page->end() || last->empty()) break;
    request["ExclusiveStartKey"] = std::move(*last);
  }
  return items;
}

// ---- Leases ----

Result<bool> DynamoDbCoordination::TryAcquireLease(const std::string& name, const std::string& owner, Timestamp now,
                                                   Duration ttl) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(name, "lease name"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(owner, "lease owner"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationSpan(now, ttl, /*forward=*/true, "lease ttl"));
  json item = Key(kLease, name);
  item["owner"] = S(owner);
  item["expires_at"] = N(ToUnixMillis(now) + ttl.count());
  return ConditionalWrite("PutItem",
                          {{"Item", std::move(item)},
                           {"ConditionExpression", "attribute_not_exists(#key) OR #expires <= :now OR #owner = :owner"},
                           {"ExpressionAttributeNames", NamesFor({"#key", "#expires", "#owner"})},
                           {"ExpressionAttributeValues", {{":now", N(ToUnixMillis(now))}, {":owner", S(owner)}}}},
                          "acquiring lease " + name);
}

Result<bool> DynamoDbCoordination::ReleaseLease(const std::string& name, const std::string& owner) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(name, "lease name"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(owner, "lease owner"));
  // A missing item fails the condition too (its owner is no value): nothing to release.
  return ConditionalWrite("DeleteItem",
                          {{"Key", Key(kLease, name)},
                           {"ConditionExpression", "#owner = :owner"},
                           {"ExpressionAttributeNames", NamesFor({"#owner"})},
                           {"ExpressionAttributeValues", {{":owner", S(owner)}}}},
                          "releasing lease " + name);
}

Result<std::optional<LeaseInfo>> DynamoDbCoordination::GetLease(const std::string& name) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(name, "lease name"));
  auto item = GetItem(kLease, name, "lease");
  if (!item.ok()) return item.status();
  if (!item->has_value()) return std::optional<LeaseInfo>();
  auto owner = StringAttribute(**item, "owner");
  if (!owner.ok()) return owner.status().WithContext("reading lease " + name);
  auto expires_at = NumberAttribute(**item, "expires_at");
  if (!expires_at.ok()) return expires_at.status().WithContext("reading lease " + name);
  return std::optional<LeaseInfo>(LeaseInfo{std::move(owner).value(), FromUnixMillis(*expires_at)});
}

// ---- Throttles ----

Result<bool> DynamoDbCoordination::TryThrottle(const std::string& key, Timestamp now, Duration interval) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "throttle key"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationSpan(now, interval, /*forward=*/false, "throttle interval"));
  json item = Key(kThrottle, key);
  item["at"] = N(ToUnixMillis(now));
  return ConditionalWrite("PutItem",
                          {{"Item", std::move(item)},
                           {"ConditionExpression", "attribute_not_exists(#key) OR #at <= :since"},
                           {"ExpressionAttributeNames", NamesFor({"#key", "#at"})},
                           {"ExpressionAttributeValues", {{":since", N(ToUnixMillis(now) - interval.count())}}}},
                          "throttle " + key);
}

Status DynamoDbCoordination::ClearThrottle(const std::string& key) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "throttle key"));
  auto cleared = client_->Call(kDynamoDb, "DeleteItem", {{"TableName", table_}, {"Key", Key(kThrottle, key)}});
  return cleared.status().WithContext("clearing throttle " + key);
}

// ---- Versioned values ----

Result<std::optional<CoordinationValue>> DynamoDbCoordination::GetValue(const std::string& key) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "value key"));
  auto item = GetItem(kValue, key, "value");
  if (!item.ok()) return item.status();
  if (!item->has_value()) return std::optional<CoordinationValue>();
  auto value = ValueFromItem(**item);
  if (!value.ok()) return value.status().WithContext("reading value " + key);
  return std::optional<CoordinationValue>(std::move(value).value());
}

Result<std::int64_t> DynamoDbCoordination::PutValue(const std::string& key, const std::string& value,
                                                    std::int64_t expected_version) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "value key"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationVersion(expected_version));
  json item = Key(kValue, key);
  item["value"] = {{"B", Base64Encode(value)}};
  item["version"] = N(expected_version + 1);
  json request = {{"Item", std::move(item)}};
  if (expected_version == 0) {
    request["ConditionExpression"] = "attribute_not_exists(#key)";
    request["ExpressionAttributeNames"] = NamesFor({"#key"});
  } else {
    // A missing item has no version: the condition fails, as the port wants (kAborted).
    request["ConditionExpression"] = "#version = :expected";
    request["ExpressionAttributeNames"] = NamesFor({"#version"});
    request["ExpressionAttributeValues"] = {{":expected", N(expected_version)}};
  }
  auto written = ConditionalWrite("PutItem", std::move(request), "writing value " + key);
  if (!written.ok()) return written.status();
  if (!*written) {
    return AbortedError(expected_version == 0
                            ? "value " + key + " already exists"
                            : "value " + key + " is no longer at version " + std::to_string(expected_version));
  }
  return expected_version + 1;
}

Status DynamoDbCoordination::RemoveValue(const std::string& key, std::int64_t expected_version) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "value key"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationVersion(expected_version));
  // A failed condition does not say whether the value is gone (kNotFound) or at another version
  // (kAborted): a consistent read after it tells, and is the moment the answer is true at. Should
  // that read find the expected version (the value was re-created since), the delete is tried
  // again, so that the answer never contradicts what the read saw.
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto removed = ConditionalWrite("DeleteItem",
                                    {{"Key", Key(kValue, key)},
                                     {"ConditionExpression", "#version = :expected"},
                                     {"ExpressionAttributeNames", NamesFor({"#version"})},
                                     {"ExpressionAttributeValues", {{":expected", N(expected_version)}}}},
                                    "removing value " + key);
    if (!removed.ok()) return removed.status();
    if (*removed) return Status::Ok();
    auto stored = GetValue(key);
    if (!stored.ok()) return stored.status().WithContext("removing value " + key);
    if (!stored->has_value()) return NotFoundError("no value " + key);
    if ((*stored)->version != expected_version) {
      return AbortedError("value " + key + " is no longer at version " + std::to_string(expected_version));
    }
  }
  return AbortedError("value " + key + " kept changing while it was removed at version " +
                      std::to_string(expected_version));
}

Result<std::vector<std::pair<std::string, CoordinationValue>>> DynamoDbCoordination::ListValues(
    const std::string& prefix) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(prefix, "prefix", /*may_be_empty=*/true));
  auto items = QueryPrefix(kValue, prefix, /*keys_only=*/false);
  if (!items.ok()) return items.status();
  std::vector<std::pair<std::string, CoordinationValue>> found;
  found.reserve(items->size());
  for (const json& item : *items) {
    auto key = StringAttribute(item, kKeyAttribute);
    if (!key.ok()) return key.status().WithContext("listing values " + prefix);
    auto value = ValueFromItem(item);
    if (!value.ok()) return value.status().WithContext("listing value " + *key);
    found.emplace_back(std::move(key).value(), std::move(value).value());
  }
  return found;
}

Status DynamoDbCoordination::RemovePrefix(const std::string& prefix) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(prefix, "prefix"));
  std::vector<json> requests;
  for (const char* kind : {kLease, kThrottle, kValue}) {
    auto keys = QueryPrefix(kind, prefix, /*keys_only=*/true);
    if (!keys.ok()) return keys.status().WithContext("removing prefix " + prefix);
    for (json& key : *keys) requests.push_back({{"DeleteRequest", {{"Key", std::move(key)}}}});
  }
  for (std::size_t begin = 0; begin < requests.size(); begin += kBatchWriteMax) {
    const std::size_t end = std::min(requests.size(), begin + kBatchWriteMax);
    json batch = json::array();
    for (std::size_t i = begin; i < end; ++i) batch.push_back(std::move(requests[i]));
    json pending = {{table_, std::move(batch)}};
    // UnprocessedItems come back when a partition is busy: AWS asks for a retry with backoff.
    auto pause = std::chrono::milliseconds(50);
    for (int attempt = 0;; ++attempt) {
      auto answer = client_->Call(kDynamoDb, "BatchWriteItem", {{"RequestItems", pending}});
      if (!answer.ok()) return answer.status().WithContext("removing prefix " + prefix);
      const auto unprocessed = answer->find("UnprocessedItems");
      if (unprocessed == answer->end() || !unprocessed->contains(table_) || (*unprocessed)[table_].empty()) break;
      if (attempt >= 8) {
        return UnavailableError("removing prefix " + prefix + ": DynamoDB left " +
                                std::to_string((*unprocessed)[table_].size()) + " deletions unprocessed 9 times");
      }
      pending = std::move(*unprocessed);
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(2000));
    }
  }
  return Status::Ok();
}

}  // namespace pwrcell::adapters::aws
