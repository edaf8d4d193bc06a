#include "runtime/http/firehose.h"

#include <simdjson.h>

#include <utility>

#include "common/base64.h"

namespace pwrcell::runtime::http {
namespace {

constexpr std::size_t kMaxErrorMessageBytes = 4096;

}  // namespace

Result<FirehoseDelivery> ParseFirehoseDelivery(std::string_view body) {
  // Parsed with simdjson, as the Kinesis-style batches are (ingest_server.cc): a 5 MiB delivery
  // is mostly base64. One parser per handler thread reuses its buffers.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element document;
  if (const auto error = parser.parse(body.data(), body.size()).get(document); error != simdjson::SUCCESS) {
    return InvalidArgumentError(std::string("body is not valid JSON: ") + simdjson::error_message(error));
  }
  simdjson::dom::object root;
  if (document.get(root) != simdjson::SUCCESS) return InvalidArgumentError("body must be a JSON object");
  FirehoseDelivery delivery;
  std::string_view request_id;
  if (root["requestId"].get(request_id) != simdjson::SUCCESS) {
    return InvalidArgumentError("\"requestId\" must be a string");
  }
  delivery.request_id = std::string(request_id);
  simdjson::dom::element timestamp;
  if (root["timestamp"].get(timestamp) == simdjson::SUCCESS && !timestamp.is_number()) {
    return InvalidArgumentError("\"timestamp\" must be a number (milliseconds since the epoch)");
  }
  simdjson::dom::array records;
  if (root["records"].get(records) != simdjson::SUCCESS) return InvalidArgumentError("\"records\" must be an array");
  delivery.records.reserve(records.size());
  std::size_t i = 0;
  for (simdjson::dom::element entry_element : records) {
    const auto where = [i] { return "records[" + std::to_string(i) + "]"; };
    simdjson::dom::object entry;
    if (entry_element.get(entry) != simdjson::SUCCESS) return InvalidArgumentError(where() + " must be an object");
    std::string_view data;
    if (entry["data"].get(data) != simdjson::SUCCESS) return InvalidArgumentError(where() + ".data must be a string");
    Result<std::string> bytes = Base64Decode(data);
    if (!bytes.ok()) return InvalidArgumentError(where() + ".data is not valid base64: " + bytes.status().message());
    delivery.records.push_back(std::move(bytes).value());
    ++i;
  }
  return delivery;
}

nlohmann::json FirehoseAnswer(std::string_view request_id, std::int64_t timestamp_ms, std::string_view error_message) {
  nlohmann::json answer = {{"requestId", std::string(request_id)}, {"timestamp", timestamp_ms}};
  if (!error_message.empty()) {
    std::string message(error_message.substr(0, kMaxErrorMessageBytes));
    answer["errorMessage"] = std::move(message);
  }
  return answer;
}

}  // namespace pwrcell::runtime::http
