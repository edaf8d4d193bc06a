#include "runtime/lambda/events.h"

#include <charconv>
#include <cstdint>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/base64.h"

namespace pwrcell::runtime::lambda {
namespace {

using nlohmann::json;

Result<json> ParseObject(std::string_view event) {
  json parsed = json::parse(event, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return InvalidArgumentError("the event is not JSON");
  if (!parsed.is_object()) return InvalidArgumentError("the event is not a JSON object");
  return parsed;
}

Result<const json*> RecordsOf(const json& event, std::string_view what) {
  const auto it = event.find("Records");
  if (it == event.end() || !it->is_array()) {
    return InvalidArgumentError("not " + std::string(what) + " event: no \"Records\" array");
  }
  return &*it;
}

// The string at `key` of `object`, or kInvalidArgument naming it and the record.
Result<std::string> RequiredString(const json& object, std::string_view key, std::size_t index,
                                   std::string_view where = "") {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) {
    return InvalidArgumentError("record " + std::to_string(index) + ": no string \"" + std::string(where) +
                                std::string(key) + "\"");
  }
  return it->get<std::string>();
}

std::string OptionalString(const json& object, std::string_view key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::int64_t OptionalInt(const json& object, std::string_view key, std::int64_t fallback) {
  const auto it = object.find(key);
  if (it == object.end()) return fallback;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_string()) {
    const auto& text = it->get_ref<const std::string&>();
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error == std::errc() && end == text.data() + text.size()) return value;
  }
  return fallback;
}

}  // namespace

Result<std::vector<KinesisEventRecord>> ParseKinesisEvent(std::string_view event) {
  auto parsed = ParseObject(event);
  if (!parsed.ok()) return parsed.status();
  auto records = RecordsOf(*parsed, "a Kinesis");
  if (!records.ok()) return records.status();
  std::vector<KinesisEventRecord> out;
  out.reserve((*records)->size());
  std::size_t index = 0;
  for (const json& record : **records) {
    if (!record.is_object()) return InvalidArgumentError("record " + std::to_string(index) + " is not an object");
    const auto kinesis = record.find("kinesis");
    if (kinesis == record.end() || !kinesis->is_object()) {
      return InvalidArgumentError("record " + std::to_string(index) + ": no \"kinesis\" object (not a Kinesis event)");
    }
    KinesisEventRecord r;
    auto sequence = RequiredString(*kinesis, "sequenceNumber", index, "kinesis.");
    if (!sequence.ok()) return sequence.status();
    r.sequence_number = std::move(*sequence);
    auto data = RequiredString(*kinesis, "data", index, "kinesis.");
    if (!data.ok()) return data.status();
    if (auto bytes = Base64Decode(*data); bytes.ok()) {
      r.data = std::move(*bytes);
    } else {
      r.data = std::move(*data);
      r.data_is_base64 = false;
    }
    r.partition_key = OptionalString(*kinesis, "partitionKey");
    r.event_id = OptionalString(record, "eventID");
    out.push_back(std::move(r));
    ++index;
  }
  return out;
}

Result<std::vector<SqsEventRecord>> ParseSqsEvent(std::string_view event) {
  auto parsed = ParseObject(event);
  if (!parsed.ok()) return parsed.status();
  auto records = RecordsOf(*parsed, "an SQS");
  if (!records.ok()) return records.status();
  std::vector<SqsEventRecord> out;
  out.reserve((*records)->size());
  std::size_t index = 0;
  for (const json& record : **records) {
    if (!record.is_object()) return InvalidArgumentError("record " + std::to_string(index) + " is not an object");
    if (OptionalString(record, "eventSource") != "aws:sqs") {
      return InvalidArgumentError("record " + std::to_string(index) + ": eventSource is not \"aws:sqs\"");
    }
    SqsEventRecord r;
    auto id = RequiredString(record, "messageId", index);
    if (!id.ok()) return id.status();
    r.message_id = std::move(*id);
    auto handle = RequiredString(record, "receiptHandle", index);
    if (!handle.ok()) return handle.status();
    r.receipt_handle = std::move(*handle);
    auto body = RequiredString(record, "body", index);
    if (!body.ok()) return body.status();
    r.body = std::move(*body);
    auto arn = RequiredString(record, "eventSourceARN", index);
    if (!arn.ok()) return arn.status();
    r.queue_name = QueueNameOfArn(*arn);
    if (const auto attributes = record.find("attributes"); attributes != record.end() && attributes->is_object()) {
      r.receive_count = static_cast<int>(OptionalInt(*attributes, "ApproximateReceiveCount", 1));
      r.sent_at = FromUnixMillis(OptionalInt(*attributes, "SentTimestamp", 0));
    }
    if (const auto attributes = record.find("messageAttributes");
        attributes != record.end() && attributes->is_object()) {
      if (const auto encoding = attributes->find("pwrcell-encoding");
          encoding != attributes->end() && encoding->is_object()) {
        r.encoding = OptionalString(*encoding, "stringValue");
      }
    }
    out.push_back(std::move(r));
    ++index;
  }
  return out;
}

Status CheckScheduledEvent(std::string_view event) {
  auto parsed = ParseObject(event);
  if (!parsed.ok()) return parsed.status();
  if (parsed->empty()) return Status::Ok();  // a test invocation
  if (parsed->contains("Records")) {
    return InvalidArgumentError("a scheduled handler was sent a stream or queue event (it has \"Records\")");
  }
  const std::string detail_type = OptionalString(*parsed, "detail-type");
  if (detail_type != "Scheduled Event") {
    return InvalidArgumentError("not an EventBridge scheduled event (detail-type \"" + detail_type + "\")");
  }
  return Status::Ok();
}

std::string BatchItemFailures(const std::vector<std::string>& identifiers) {
  json failures = json::array();
  for (const auto& id : identifiers) failures.push_back({{"itemIdentifier", id}});
  return json{{"batchItemFailures", std::move(failures)}}.dump();
}

std::string QueueNameOfArn(std::string_view arn) {
  const auto colon = arn.rfind(':');
  return std::string(colon == std::string_view::npos ? arn : arn.substr(colon + 1));
}

}  // namespace pwrcell::runtime::lambda
