#include "runtime/http/ingest_server.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "domain/record_decoding.h"
#include "ports/queue.h"
#include "runtime/http/access_key.h"
#include "runtime/http/firehose.h"
#include "runtime/http/gzip.h"
#include "runtime/http/ingest_body.h"
#include "runtime/http/listener.h"

namespace pwrcell::runtime::http {
namespace {

using nlohmann::json;

constexpr char kTelemetryPath[] = "/v1/telemetry";
// The path to give a Firehose stream as its HTTP endpoint URL (https://<host>/v1/firehose).
constexpr char kFirehosePath[] = "/v1/firehose";

// PEM files are a few kilobytes; anything far larger is not one.
constexpr std::size_t kMaxPemFileBytes = 1024 * 1024;

// A 200 answer lists the first this many rejected records ({"index", "error"}) and counts all of
// them ("rejected_count"): its size does not grow with the request's.
constexpr std::size_t kMaxRejectionsListed = 100;

// A handler thread keeps its JSON parser's buffers between requests up to this document size; a
// parser grown by a larger body is released after it (simdjson's buffers are ~15x the document:
// eight threads kept ~70 MB each after 5 MiB bodies).
constexpr std::size_t kKeptParserCapacity = 1024 * 1024;

// "application/json; charset=utf-8" -> "application/json".
std::string MediaType(const std::string& content_type) {
  std::string type = content_type.substr(0, content_type.find(';'));
  const auto not_space = [](unsigned char c) { return std::isspace(c) == 0; };
  type.erase(type.begin(), std::find_if(type.begin(), type.end(), not_space));
  type.erase(std::find_if(type.rbegin(), type.rend(), not_space).base(), type.end());
  std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
  return type;
}

}  // namespace

// The records of a Kinesis-style JSON put, or kInvalidArgument saying which part of the shape is
// wrong, or kResourceExhausted for more than `max_records` records (checked before any record is
// decoded). Invalid base64 is not a shape error: that record alone is rejected. Parsed with
// simdjson, in place when `body` has SIMDJSON_PADDING spare capacity (the Listener reserves it):
// at 20,000 records/s the bodies are ~17 MB/s of JSON, which nlohmann's lexer made the largest
// cost of a request.
Result<std::vector<OfferedRecord>> ParseJsonBatch(const std::string& body, std::size_t max_records) {
  // A parser reuses its buffers between documents; one per handler thread.
  thread_local simdjson::dom::parser parser;
  struct ReleaseLargeBuffers {
    ~ReleaseLargeBuffers() {
      if (parser.capacity() > kKeptParserCapacity) parser = simdjson::dom::parser();
    }
  } release_large_buffers;
  simdjson::dom::element document;
  if (const auto error = parser.parse(body).get(document); error != simdjson::SUCCESS) {
    return InvalidArgumentError(std::string("body is not valid JSON: ") + simdjson::error_message(error));
  }
  simdjson::dom::object root;
  simdjson::dom::array records;
  if (document.get(root) != simdjson::SUCCESS || root["records"].get(records) != simdjson::SUCCESS) {
    return InvalidArgumentError("body must be a JSON object with a \"records\" array");
  }
  if (const std::size_t count = records.size(); count > max_records) {
    return ResourceExhaustedError(std::to_string(count) + " records in one request, more than " +
                                  std::to_string(max_records) +
                                  " (telemetry.max_records_per_request): nothing was stored, send them in smaller "
                                  "batches");
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
    Result<std::string> bytes = Base64Decode(data);
    if (bytes.ok()) {
      offered.push_back({std::move(bytes).value(), ""});
    } else {
      offered.push_back({"", "data: " + bytes.status().message()});
    }
    ++i;
  }
  return offered;
}

namespace {

// Whether the body (received in full by the Listener, read in place: a 5 MiB body is never
// copied) is within `max_bytes`. The Listener answers a body over the limit with 413 before any
// handler runs; this keeps the limit true for any caller.
bool BodyWithinLimit(const httplib::Request& req, std::size_t max_bytes) {
  return req.body.size() <= max_bytes;
}

Status CallSink(const RecordSink& sink, const std::vector<std::string>& records) {
  try {
    return sink(records);
  } catch (const std::exception& e) {
    return InternalError(std::string("record sink threw: ") + e.what());
  }
}

// Why a request could not be taken: the status to answer and the message.
struct Refusal {
  int status;
  std::string message;
};

// Undoes the body's Content-Encoding: none or identity leave `body` pointing at the request's
// bytes, gzip (and its old name x-gzip) is decompressed within `max_bytes` into `inflated` and
// `body` pointed at it; anything else is refused 415.
std::optional<Refusal> DecodeContentEncoding(const httplib::Request& req, const std::string*& body,
                                             std::string& inflated, std::size_t max_bytes) {
  body = &req.body;
  const std::string encoding = MediaType(req.get_header_value("Content-Encoding"));
  if (encoding.empty() || encoding == "identity") return std::nullopt;
  if (encoding != "gzip" && encoding != "x-gzip") {
    return Refusal{415, "unsupported Content-Encoding \"" + encoding + "\": send the body uncompressed or gzip"};
  }
  Result<std::string> decompressed = GunzipBounded(req.body, max_bytes);
  if (!decompressed.ok()) {
    const bool too_large = decompressed.status().code() == StatusCode::kResourceExhausted;
    return Refusal{too_large ? 413 : 400, decompressed.status().message()};
  }
  inflated = std::move(decompressed).value();
  body = &inflated;
  return std::nullopt;
}

}  // namespace

Triage TriageRecords(std::vector<OfferedRecord>& offered) {
  Triage triage;
  triage.accepted.reserve(offered.size());
  for (std::size_t i = 0; i < offered.size(); ++i) {
    OfferedRecord& record = offered[i];
    if (record.error.empty() && record.bytes.size() > ports::kMaxQueueMessageBytes) {
      // A record is queued as one message, never split or truncated: larger than a queue
      // message can be on every backend (SQS's limit), it is refused here, counted with the rest.
      record.error = "record of " + std::to_string(record.bytes.size()) + " bytes is larger than " +
                     std::to_string(ports::kMaxQueueMessageBytes) + " bytes, the largest a queue message holds";
    }
    if (record.error.empty()) {
      Result<ces::v1::EnergyRecordSet> decoded = domain::DecodeRecordSet(record.bytes);
      if (decoded.ok()) {
        triage.accepted.push_back(std::move(record.bytes));
        continue;
      }
      record.error = decoded.status().message();
    }
    if (++triage.rejected_count <= kMaxRejectionsListed)
      triage.rejected.push_back({{"index", i}, {"error", record.error}});
  }
  return triage;
}

namespace {

// The key a /v1/telemetry request presents: X-Api-Key, else the token of
// "Authorization: Bearer <token>" (scheme case-insensitive); empty when neither is there.
std::string PresentedApiKey(const httplib::Request& req) {
  if (req.has_header("X-Api-Key")) return req.get_header_value("X-Api-Key");
  return BearerToken(req);
}

std::string_view ReasonLabel(AccessKey::Verdict verdict) {
  return verdict == AccessKey::Verdict::kMissing ? "missing_key" : "wrong_key";
}

// Milliseconds since the epoch, for the Firehose answers' "timestamp" (when the request was
// processed); wall-clock time is what AWS means there, so it is read here, not injected.
std::int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A PEM file's text. Errors name the configuration key and the file.
Result<std::string> ReadPemFile(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    const std::string reason = error != 0 ? std::strerror(error) : "cannot open";
    const std::string message = "telemetry." + key + " " + path + ": " + reason;
    if (error == ENOENT || error == ENOTDIR) return NotFoundError(message);
    if (error == EACCES) return PermissionDeniedError(message);
    return InvalidArgumentError(message);
  }
  std::string text;
  char buffer[8192];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxPemFileBytes) {
      return InvalidArgumentError("telemetry." + key + " " + path + ": larger than 1 MiB, not a PEM file");
    }
  }
  if (text.find("-----BEGIN ") == std::string::npos) {
    return InvalidArgumentError("telemetry." + key + " " + path + ": not a PEM file (no -----BEGIN line)");
  }
  return text;
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

}  // namespace

IngestMetrics::IngestMetrics(Metrics* registry)
    : requests(registry, "pwrcell_ingest_requests_total",
               "Requests to the telemetry ingest endpoint, by HTTP response status.", {"status"}),
      firehose_requests(registry, "pwrcell_ingest_firehose_requests_total",
                        "Amazon Data Firehose deliveries to POST /v1/firehose, by HTTP response status (also "
                        "counted in pwrcell_ingest_requests_total).",
                        {"status"}),
      refused(registry, "pwrcell_ingest_refused_total",
              "Ingest requests refused 401 for their access key: endpoint = telemetry (X-Api-Key / Bearer) or "
              "firehose (X-Amz-Firehose-Access-Key); reason = missing_key or wrong_key.",
              {"endpoint", "reason"}),
      records(registry, "pwrcell_records_total",
              "Telemetry records by outcome: received = offered to HTTP ingest, rejected = refused there "
              "(invalid base64 or not a decodable EnergyRecordSet).",
              {"outcome"}) {}

IngestServer::IngestServer(config::TelemetryConfig config, RecordSink sink, Metrics& metrics,
                           ports::SecretStore* secrets)
    : config_(std::move(config)), sink_(std::move(sink)), metrics_(&metrics), secrets_(secrets) {
  const auto max_body_bytes = static_cast<std::size_t>(std::max(config_.max_body_bytes, 0));
  const auto max_records = static_cast<std::size_t>(std::max(config_.max_records_per_request, 1));
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
      .metrics = &metrics,
  });

  listener_->SetResponseObserver([this](const httplib::Request& req, const httplib::Response& res) {
    const std::string status = std::to_string(res.status);
    metrics_.requests.Increment({status});
    if (req.path == kFirehosePath) metrics_.firehose_requests.Increment({status});
  });
  // Firehose reads every answer as {"requestId", "timestamp", "errorMessage"}, also the ones the
  // listener makes itself (413 at the headers, 405, 503 while stopping).
  listener_->SetErrorReply(
      [](const httplib::Request& req, httplib::Response& res, int status, const std::string& message) {
        if (req.path == kFirehosePath) {
          ReplyJson(res, status, FirehoseAnswer(req.get_header_value(kFirehoseRequestIdHeader), NowMillis(), message));
        } else {
          ReplyError(res, status, message);
        }
      });

  listener_->Post(kTelemetryPath, [this, max_body_bytes, max_records](const httplib::Request& req,
                                                                      httplib::Response& res,
                                                                      const httplib::ContentReader&) {
    if (access_key_) {
      const AccessKey::Verdict verdict = access_key_->Check(PresentedApiKey(req));
      if (verdict != AccessKey::Verdict::kAccepted) {
        metrics_.refused.Increment({"telemetry", ReasonLabel(verdict)});
        res.set_header("WWW-Authenticate", "Bearer realm=\"pwrcell-ingest\"");
        ReplyError(res, 401,
                   verdict == AccessKey::Verdict::kMissing
                       ? "an access key is required: send it as X-Api-Key or Authorization: Bearer"
                       : "invalid access key");
        return;
      }
    }
    if (!BodyWithinLimit(req, max_body_bytes)) {
      ReplyError(res, 413, "request body larger than " + std::to_string(max_body_bytes) + " bytes");
      return;
    }
    const std::string* body = nullptr;
    std::string inflated;
    if (std::optional<Refusal> refusal = DecodeContentEncoding(req, body, inflated, max_body_bytes)) {
      ReplyError(res, refusal->status, refusal->message);
      return;
    }
    std::vector<OfferedRecord> offered;
    const std::string type = MediaType(req.get_header_value("Content-Type"));
    if (type == "application/x-protobuf" || type == "application/octet-stream") {
      offered.push_back({body == &inflated ? std::move(inflated) : *body, ""});
    } else if (type == "application/json") {
      Result<std::vector<OfferedRecord>> parsed = ParseJsonBatch(*body, max_records);
      std::string().swap(inflated);  // the records are copied out
      if (!parsed.ok()) {
        if (parsed.status().code() == StatusCode::kResourceExhausted) {
          listener_->CountRefusal("too_many_records", "POST /v1/telemetry answered 413: " + parsed.status().message());
          ReplyError(res, 413, parsed.status().message());
          return;
        }
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

    Triage triage = TriageRecords(offered);
    std::vector<std::string>& accepted = triage.accepted;
    json& rejected = triage.rejected;
    metrics_.records.Increment({"received"}, static_cast<double>(offered.size()));
    const std::size_t offered_count = offered.size();
    std::vector<OfferedRecord>().swap(offered);  // what was accepted has been moved out
    if (triage.rejected_count > 0) {
      metrics_.records.Increment({"rejected"}, static_cast<double>(triage.rejected_count));
      // Bad input is the client's problem, not ours: logged at info with the first reason.
      spdlog::info("ingest: rejected {} of {} records (first: #{} {})", triage.rejected_count, offered_count,
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
    ReplyJson(res, 200,
              json{{"accepted", accepted.size()},
                   {"rejected", std::move(rejected)},
                   {"rejected_count", triage.rejected_count}});
  });

  listener_->Post(kFirehosePath, [this, max_body_bytes](const httplib::Request& req, httplib::Response& res,
                                                        const httplib::ContentReader&) {
    // The header's id until the body's is known (Firehose sends the same in both).
    std::string request_id = req.get_header_value(kFirehoseRequestIdHeader);
    const auto answer = [&](int status, const std::string& error) {
      ReplyJson(res, status, FirehoseAnswer(request_id, NowMillis(), error));
      if (status != 200) spdlog::info("ingest: Firehose delivery {} answered {}: {}", request_id, status, error);
    };
    if (!firehose_access_key_) {
      answer(404, "Firehose delivery is not enabled on this adapter (telemetry.firehose_access_key_secret)");
      return;
    }
    const AccessKey::Verdict verdict = firehose_access_key_->Check(req.get_header_value(kFirehoseAccessKeyHeader));
    if (verdict != AccessKey::Verdict::kAccepted) {
      metrics_.refused.Increment({"firehose", ReasonLabel(verdict)});
      answer(401, verdict == AccessKey::Verdict::kMissing ? "no X-Amz-Firehose-Access-Key"
                                                          : "invalid X-Amz-Firehose-Access-Key");
      return;
    }
    if (!BodyWithinLimit(req, max_body_bytes)) {
      answer(413, "request body larger than " + std::to_string(max_body_bytes) + " bytes");
      return;
    }
    const std::string* body = nullptr;
    std::string inflated;
    if (std::optional<Refusal> refusal = DecodeContentEncoding(req, body, inflated, max_body_bytes)) {
      answer(refusal->status, refusal->message);
      return;
    }
    Result<FirehoseDelivery> delivery = ParseFirehoseDelivery(*body);
    std::string().swap(inflated);
    if (!delivery.ok()) {
      answer(400, delivery.status().message());
      return;
    }
    if (!delivery->request_id.empty()) request_id = delivery->request_id;

    std::vector<OfferedRecord> offered;
    offered.reserve(delivery->records.size());
    for (std::string& bytes : delivery->records) offered.push_back({std::move(bytes), ""});
    Triage triage = TriageRecords(offered);
    metrics_.records.Increment({"received"}, static_cast<double>(offered.size()));
    if (triage.rejected_count > 0) {
      metrics_.records.Increment({"rejected"}, static_cast<double>(triage.rejected_count));
      // Logged with index and reason (of the first kMaxRejectionsListed) so that a poison record
      // can be found in the stream: the delivery is answered 200, so Firehose keeps no copy of it.
      spdlog::warn("ingest: Firehose delivery {}: rejected {} of {} records: {}", request_id, triage.rejected_count,
                   offered.size(), triage.rejected.dump(-1, ' ', false, json::error_handler_t::replace));
    }
    if (!triage.accepted.empty()) {
      const Status stored = CallSink(sink_, triage.accepted);
      if (!stored.ok()) {
        spdlog::warn("ingest: Firehose delivery {}: could not store {} records: {}", request_id, triage.accepted.size(),
                     stored.ToString());
        if (stored.IsRetryable()) {
          res.set_header("Retry-After", "1");
          answer(503, "records not stored, retry: " + stored.ToString());
        } else {
          answer(500, "records not stored: " + stored.ToString());
        }
        return;
      }
    }
    spdlog::info("ingest: Firehose delivery {}: {} records stored, {} rejected", request_id, triage.accepted.size(),
                 triage.rejected_count);
    answer(200, "");
  });
}

IngestServer::~IngestServer() {
  Stop();
}

Status IngestServer::Start() {
  if (listener_->port() != 0) return FailedPreconditionError("ingest server already started");
  const auto load_key = [this](const std::string& key, const std::string& secret_id,
                               std::unique_ptr<AccessKey>& into) -> Status {
    if (secret_id.empty()) return Status::Ok();
    if (secrets_ == nullptr) {
      return FailedPreconditionError("telemetry." + key + " is set but the ingest server has no secret store");
    }
    auto access_key = std::make_unique<AccessKey>(*secrets_, secret_id);
    PWRCELL_RETURN_IF_ERROR(access_key->Load().WithContext("telemetry." + key));
    into = std::move(access_key);
    return Status::Ok();
  };
  PWRCELL_RETURN_IF_ERROR(load_key("access_key_secret", config_.access_key_secret, access_key_));
  PWRCELL_RETURN_IF_ERROR(
      load_key("firehose_access_key_secret", config_.firehose_access_key_secret, firehose_access_key_));
  if (!config_.tls_cert_file.empty() || !config_.tls_key_file.empty()) {
    Result<std::string> certificate = ReadPemFile("tls_cert_file", config_.tls_cert_file);
    if (!certificate.ok()) return certificate.status();
    Result<std::string> private_key = ReadPemFile("tls_key_file", config_.tls_key_file);
    if (!private_key.ok()) return private_key.status();
    listener_->UseTls(std::move(certificate).value(), std::move(private_key).value());
  }
  PWRCELL_RETURN_IF_ERROR(listener_->Start(config_.listen));
  if ((access_key_ || firehose_access_key_) && !listener_->tls() && !IsLoopback(config_.listen.host)) {
    spdlog::warn(
        "ingest: access keys travel in clear text to {}: set telemetry.tls_cert_file and tls_key_file, or "
        "terminate TLS in front of the adapter",
        config_.listen.ToString());
  }
  if (firehose_access_key_) {
    spdlog::info("ingest: Firehose delivery enabled on {} (access key secret {})", kFirehosePath,
                 firehose_access_key_->secret_id());
  }
  return Status::Ok();
}

void IngestServer::Stop() {
  listener_->Stop();
}

int IngestServer::port() const {
  return listener_->port();
}

}  // namespace pwrcell::runtime::http
