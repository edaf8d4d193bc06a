#include "runtime/http/ingest_server.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "domain/record_decoding.h"
#include "runtime/http/base64.h"
#include "runtime/http/listener.h"

namespace pwrcell::runtime::http {
namespace {

using nlohmann::json;

constexpr char kTelemetryPath[] = "/v1/telemetry";

// One record as offered by the client: its bytes, or why they could not be had (invalid base64).
struct OfferedRecord {
  std::string bytes;
  std::string error;  // non-empty: rejected before decoding
};

// "application/json; charset=utf-8" -> "application/json".
std::string MediaType(const std::string& content_type) {
  std::string type = content_type.substr(0, content_type.find(';'));
  const auto not_space = [](unsigned char c) { return std::isspace(c) == 0; };
  type.erase(type.begin(), std::find_if(type.begin(), type.end(), not_space));
  type.erase(std::find_if(type.rbegin(), type.rend(), not_space).base(), type.end());
  std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
  return type;
}

// The records of a Kinesis-style JSON put, or kInvalidArgument saying which part of the shape is
// wrong. Invalid base64 is not a shape error: that record alone is rejected. Parsed with
// simdjson: at 20,000 records/s the bodies are ~17 MB/s of JSON, which nlohmann's lexer made
// the largest cost of a request.
Result<std::vector<OfferedRecord>> ParseJsonBatch(const std::string& body) {
  // A parser reuses its buffers between documents; one per handler thread.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element document;
  if (const auto error = parser.parse(body).get(document); error != simdjson::SUCCESS) {
    return InvalidArgumentError(std::string("body is not valid JSON: ") + simdjson::error_message(error));
  }
  simdjson::dom::object root;
  simdjson::dom::array records;
  if (document.get(root) != simdjson::SUCCESS || root["records"].get(records) != simdjson::SUCCESS) {
    return InvalidArgumentError("body must be a JSON object with a \"records\" array");
  }
  std::vector<OfferedRecord> offered;
  offered.reserve(records.size());
  std::size_t i = 0;
  for (simdjson::dom::element entry_element : records) {
    const auto where = [i] { return "records[" + std::to_string(i) + "]"; };
    simdjson::dom::object entry;
    if (entry_element.get(entry) != simdjson::SUCCESS) return InvalidArgumentError(where() + " must be an object");
    std::string_view data;
    if (entry["data"].get(data) != simdjson::SUCCESS) {
      return InvalidArgumentError(where() + ".data must be a base64 string");
    }
    simdjson::dom::element partition_key;
    if (entry["partitionKey"].get(partition_key) == simdjson::SUCCESS && !partition_key.is_null() &&
        !partition_key.is_string()) {
      return InvalidArgumentError(where() + ".partitionKey must be a string");
    }
    Result<std::string> bytes = DecodeBase64(data);
    if (bytes.ok()) {
      offered.push_back({std::move(bytes).value(), ""});
    } else {
      offered.push_back({"", "data: " + bytes.status().message()});
    }
    ++i;
  }
  return offered;
}

// Reads the whole body, keeping at most `max_bytes`. The Listener answers a body over the limit
// with 413 before any handler runs; the count here keeps the limit true for any reader. Returns
// nullopt after writing the error response.
std::optional<std::string> ReadBody(const httplib::Request& req, httplib::Response& res,
                                    const httplib::ContentReader& reader, std::size_t max_bytes) {
  std::string body;
  bool too_large = false;
  bool read = false;
  if (req.is_multipart_form_data()) {
    // Not a shape this endpoint takes (415 below); drain it through the multipart reader, which
    // is the one httplib uses for this content type.
    read =
        reader([](const httplib::MultipartFormData&) { return true; }, [](const char*, std::size_t) { return true; });
  } else {
    read = reader([&](const char* data, std::size_t length) {
      if (too_large) return true;
      if (length > max_bytes - body.size()) {
        too_large = true;
        std::string().swap(body);
        return true;
      }
      body.append(data, length);
      return true;
    });
  }
  if (too_large || res.status == 413) {
    ReplyError(res, 413, "request body larger than " + std::to_string(max_bytes) + " bytes");
    return std::nullopt;
  }
  if (!read) {
    ReplyError(res, 400, "could not read the request body");
    return std::nullopt;
  }
  return body;
}

Status CallSink(const RecordSink& sink, const std::vector<std::string>& records) {
  try {
    return sink(records);
  } catch (const std::exception& e) {
    return InternalError(std::string("record sink threw: ") + e.what());
  }
}

}  // namespace

IngestMetrics::IngestMetrics(Metrics* registry)
    : requests(registry, "pwrcell_ingest_requests_total",
               "Requests to the telemetry ingest endpoint, by HTTP response status.", {"status"}),
      records(registry, "pwrcell_records_total",
              "Telemetry records by outcome: received = offered to HTTP ingest, rejected = refused there "
              "(invalid base64 or not a decodable EnergyRecordSet).",
              {"outcome"}) {}

IngestServer::IngestServer(config::TelemetryConfig config, RecordSink sink, Metrics& metrics)
    : config_(std::move(config)), sink_(std::move(sink)), metrics_(&metrics) {
  const auto max_body_bytes = static_cast<std::size_t>(std::max(config_.max_body_bytes, 0));
  listener_ = std::make_unique<Listener>(Listener::Options{
      .name = "ingest",
      // Enough handlers to keep the sink's group commit fed while others parse.
      .worker_threads = 8,
      .io_threads = 2,
      .max_body_bytes = max_body_bytes,
      // Telemetry may arrive through one forwarder or load balancer, so there is no cap per
      // address; the global cap is what the open-file limit allows comfortably.
      .max_connections = 10000,
      .listen_backlog = 4096,
      .idle_timeout = std::chrono::seconds(60),
      .header_timeout = std::chrono::seconds(10),
      .body_timeout = std::chrono::seconds(60),
  });

  listener_->SetResponseObserver([this](const httplib::Request&, const httplib::Response& res) {
    metrics_.requests.Increment({std::to_string(res.status)});
  });

  listener_->Post(kTelemetryPath, [this, max_body_bytes](const httplib::Request& req, httplib::Response& res,
                                                         const httplib::ContentReader& reader) {
    std::optional<std::string> body = ReadBody(req, res, reader, max_body_bytes);
    if (!body) return;

    std::vector<OfferedRecord> offered;
    const std::string encoding = MediaType(req.get_header_value("Content-Encoding"));
    if (!encoding.empty() && encoding != "identity") {
      ReplyError(res, 415, "unsupported Content-Encoding \"" + encoding + "\": send the body uncompressed");
      return;
    }
    const std::string type = MediaType(req.get_header_value("Content-Type"));
    if (type == "application/x-protobuf" || type == "application/octet-stream") {
      offered.push_back({std::move(*body), ""});
    } else if (type == "application/json") {
      Result<std::vector<OfferedRecord>> parsed = ParseJsonBatch(*body);
      if (!parsed.ok()) {
        ReplyError(res, 400, parsed.status().message());
        return;
      }
      offered = std::move(parsed).value();
    } else {
      ReplyError(res, 415,
                 "unsupported Content-Type \"" + type +
                     "\": send application/x-protobuf (one EnergyRecordSet) or application/json "
                     "({\"records\": [{\"data\": base64}]})");
      return;
    }

    std::vector<std::string> accepted;
    json rejected = json::array();
    for (std::size_t i = 0; i < offered.size(); ++i) {
      OfferedRecord& record = offered[i];
      if (record.error.empty()) {
        Result<ces::v1::EnergyRecordSet> decoded = domain::DecodeRecordSet(record.bytes);
        if (decoded.ok()) {
          accepted.push_back(std::move(record.bytes));
          continue;
        }
        record.error = decoded.status().message();
      }
      rejected.push_back({{"index", i}, {"error", record.error}});
    }
    metrics_.records.Increment({"received"}, static_cast<double>(offered.size()));
    if (!rejected.empty()) {
      metrics_.records.Increment({"rejected"}, static_cast<double>(rejected.size()));
      // Bad input is the client's problem, not ours: logged at info with the first reason.
      spdlog::info("ingest: rejected {} of {} records (first: #{} {})", rejected.size(), offered.size(),
                   rejected[0]["index"].get<std::size_t>(), rejected[0]["error"].get<std::string>());
    }

    if (!accepted.empty()) {
      const Status stored = CallSink(sink_, accepted);
      if (!stored.ok()) {
        spdlog::warn("ingest: could not store {} records: {}", accepted.size(), stored.ToString());
        if (stored.IsRetryable()) {
          res.set_header("Retry-After", "1");
          ReplyError(res, 503, "records not stored, retry: " + stored.ToString());
        } else {
          ReplyError(res, 500, "records not stored: " + stored.ToString());
        }
        return;
      }
    }
    ReplyJson(res, 200, json{{"accepted", accepted.size()}, {"rejected", std::move(rejected)}});
  });
}

IngestServer::~IngestServer() {
  Stop();
}

Status IngestServer::Start() {
  return listener_->Start(config_.listen);
}

void IngestServer::Stop() {
  listener_->Stop();
}

int IngestServer::port() const {
  return listener_->port();
}

}  // namespace pwrcell::runtime::http
