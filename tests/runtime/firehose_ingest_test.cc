// POST /v1/firehose (Amazon Data Firehose HTTP endpoint delivery) and the ingest endpoint's
// access key and gzip bodies, over real sockets on 127.0.0.1.
#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "gzip_bytes.h"
#include "ingest_fixture.h"
#include "runtime/http/ingest_server.h"
#include "test_records.h"

namespace pwrcell::runtime::http {
namespace {

using nlohmann::json;
using testing::Gzip;
using testing::RecordBytesWithoutInverterId;
using testing::ValidRecordBytes;

constexpr int kMaxBodyBytes = 64 * 1024;
constexpr char kFirehoseKey[] = "fh-key-0123456789";
constexpr char kIngestKey[] = "ingest-key-abcdef";
constexpr char kRequestId[] = "ed4acda5-034f-9f42-bba1-f29aea6d7d8f";

json Delivery(const std::vector<std::string>& records, const std::string& request_id = kRequestId) {
  json entries = json::array();
  for (const auto& r : records) entries.push_back({{"data", Base64Encode(r)}});
  return {{"requestId", request_id}, {"timestamp", 1578090901599}, {"records", entries}};
}

class FirehoseIngestTest : public testing::IngestServerFixture {
 protected:
  void SetUp() override {
    ASSERT_TRUE(secrets_.Put("FirehoseAccessKey", json{{"api_key", kFirehoseKey}}.dump()).ok());
    ASSERT_TRUE(secrets_.Put("IngestAccessKey", json{{"api_key", kIngestKey}}.dump()).ok());
    config_.listen = {"127.0.0.1", 0};
    config_.max_body_bytes = kMaxBodyBytes;
    config_.firehose_access_key_secret = "FirehoseAccessKey";
  }

  void StartServer() { StartIngestServer(config_, &secrets_); }

  httplib::Headers FirehoseHeaders(const std::string& key = kFirehoseKey) const {
    httplib::Headers headers = {{"X-Amz-Firehose-Protocol-Version", "1.0"},
                                {"X-Amz-Firehose-Request-Id", kRequestId},
                                {"X-Amz-Firehose-Source-Arn", "arn:aws:firehose:us-east-1:123456789:deliverystream/t"},
                                {"X-Amz-Firehose-Common-Attributes", R"({"commonAttributes": {"site": "a"}})"}};
    if (!key.empty()) headers.emplace("X-Amz-Firehose-Access-Key", key);
    return headers;
  }

  httplib::Result Deliver(const std::string& body, httplib::Headers headers) {
    return client_->Post("/v1/firehose", headers, body, "application/json");
  }

  // Checks the Firehose answer shape: requestId echoed, a plausible millisecond timestamp, an
  // errorMessage exactly when the status is not 200.
  static json FirehoseBody(const httplib::Result& res, const std::string& request_id = kRequestId) {
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    EXPECT_FALSE(res->has_header("Content-Encoding"));
    const json body = json::parse(res->body);
    EXPECT_EQ(body.value("requestId", ""), request_id) << res->body;
    EXPECT_TRUE(body["timestamp"].is_number_integer()) << res->body;
    EXPECT_GT(body["timestamp"].get<std::int64_t>(), 1'700'000'000'000) << res->body;  // ms, not s
    EXPECT_EQ(body.contains("errorMessage"), res->status != 200) << res->body;
    return body;
  }

  double Refused(const std::string& endpoint, const std::string& reason) const {
    return metrics_.Value("pwrcell_ingest_refused_total", {{"endpoint", endpoint}, {"reason", reason}});
  }
  double FirehoseRequests(const std::string& status) const {
    return metrics_.Value("pwrcell_ingest_firehose_requests_total", {{"status", status}});
  }

  config::TelemetryConfig config_;
};

TEST_F(FirehoseIngestTest, AValidDeliveryStoresEveryRecordAndAnswersItsRequestId) {
  StartServer();
  const std::vector<std::string> records = {ValidRecordBytes("RCP-1"), ValidRecordBytes("RCP-2"),
                                            ValidRecordBytes("RCP-3")};
  httplib::Result res = Deliver(Delivery(records).dump(), FirehoseHeaders());
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200) << res->body;
  const json body = FirehoseBody(res);
  EXPECT_EQ(body.size(), 2u) << "exactly requestId and timestamp: " << res->body;
  EXPECT_EQ(sink_.stored(), records);
  EXPECT_EQ(sink_.calls(), 1);
  EXPECT_EQ(Records("received"), 3);
  EXPECT_EQ(FirehoseRequests("200"), 1);
  EXPECT_EQ(metrics_.Value("pwrcell_ingest_requests_total", {{"status", "200"}}), 1);
}

TEST_F(FirehoseIngestTest, TheBodysRequestIdIsAnswered) {
  StartServer();
  httplib::Result res = Deliver(Delivery({ValidRecordBytes("RCP-1")}, "body-id").dump(), FirehoseHeaders());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  FirehoseBody(res, "body-id");
}

TEST_F(FirehoseIngestTest, AnEmptyDeliveryIsAcceptedWithoutCallingTheSink) {
  StartServer();
  httplib::Result res = Deliver(Delivery({}).dump(), FirehoseHeaders());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  FirehoseBody(res);
  EXPECT_EQ(sink_.calls(), 0);
}

TEST_F(FirehoseIngestTest, AMissingOrWrongAccessKeyIs401AndStoresNothing) {
  StartServer();
  const std::string delivery = Delivery({ValidRecordBytes("RCP-1")}).dump();

  httplib::Result missing = Deliver(delivery, FirehoseHeaders(""));
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  EXPECT_EQ(FirehoseBody(missing)["errorMessage"], "no X-Amz-Firehose-Access-Key");

  httplib::Result wrong = Deliver(delivery, FirehoseHeaders("fh-key-0123456788"));
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  const json body = FirehoseBody(wrong);
  EXPECT_EQ(body["errorMessage"], "invalid X-Amz-Firehose-Access-Key");
  EXPECT_EQ(wrong->body.find(kFirehoseKey), std::string::npos);

  // The ingest endpoint's key is not the Firehose key.
  httplib::Result other = Deliver(delivery, FirehoseHeaders(kIngestKey));
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 401);

  EXPECT_EQ(sink_.calls(), 0);
  EXPECT_EQ(Records("received"), 0);
  EXPECT_EQ(Refused("firehose", "missing_key"), 1);
  EXPECT_EQ(Refused("firehose", "wrong_key"), 2);
  EXPECT_EQ(FirehoseRequests("401"), 3);
}

TEST_F(FirehoseIngestTest, AGzipDeliveryIsAccepted) {
  StartServer();
  const std::vector<std::string> records = {ValidRecordBytes("RCP-1"), ValidRecordBytes("RCP-2")};
  httplib::Headers headers = FirehoseHeaders();
  headers.emplace("Content-Encoding", "gzip");
  httplib::Result res = Deliver(Gzip(Delivery(records).dump()), headers);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  FirehoseBody(res);
  EXPECT_EQ(sink_.stored(), records);
}

TEST_F(FirehoseIngestTest, MalformedJsonOrBase64Is400AndStoresNothing) {
  StartServer();
  const std::string good = Base64Encode(ValidRecordBytes("RCP-1"));
  const std::string bodies[] = {
      "{not json",
      "[]",
      R"({"timestamp": 1, "records": []})",                                    // no requestId
      R"({"requestId": 7, "records": []})",                                    // requestId not a string
      R"({"requestId": "r", "timestamp": "soon", "records": []})",             // timestamp not a number
      R"({"requestId": "r", "timestamp": 1})",                                 // no records
      R"({"requestId": "r", "timestamp": 1, "records": ["AAAA"]})",            // entry not an object
      R"({"requestId": "r", "timestamp": 1, "records": [{"data": 5}]})",       // data not a string
      R"({"requestId": "r", "timestamp": 1, "records": [{"data": "a!b="}]})",  // invalid base64
      // A good record before a corrupt one: nothing of the request is stored.
      R"({"requestId": "r", "timestamp": 1, "records": [{"data": ")" + good + R"("}, {"data": "###"}]})",
  };
  for (const auto& body : bodies) {
    httplib::Result res = Deliver(body, FirehoseHeaders());
    ASSERT_TRUE(res) << body;
    EXPECT_EQ(res->status, 400) << body;
    // The header's request id is answered when the body's cannot be read.
    const json answer = FirehoseBody(res);
    EXPECT_TRUE(answer["errorMessage"].is_string()) << body;
  }
  httplib::Headers gzip = FirehoseHeaders();
  gzip.emplace("Content-Encoding", "gzip");
  httplib::Result corrupt = Deliver("this is not gzip", gzip);
  ASSERT_TRUE(corrupt);
  EXPECT_EQ(corrupt->status, 400);
  FirehoseBody(corrupt);

  EXPECT_EQ(sink_.calls(), 0);
  EXPECT_EQ(Records("received"), 0);
}

TEST_F(FirehoseIngestTest, APoisonRecordIsRejectedAloneCountedAndTheDeliveryAnswered200) {
  StartServer();
  const std::string a = ValidRecordBytes("RCP-1");
  const std::string b = ValidRecordBytes("RCP-2");
  httplib::Result res =
      Deliver(Delivery({a, RecordBytesWithoutInverterId(), b, "not protobuf"}).dump(), FirehoseHeaders());
  ASSERT_TRUE(res);
  // 200, so Firehose does not send the poison records again and again; the good ones are stored.
  EXPECT_EQ(res->status, 200) << res->body;
  FirehoseBody(res);
  EXPECT_EQ(sink_.stored(), (std::vector<std::string>{a, b}));
  EXPECT_EQ(Records("received"), 4);
  EXPECT_EQ(Records("rejected"), 2);
}

TEST_F(FirehoseIngestTest, OnlyPoisonRecordsAre200WithNothingStored) {
  StartServer();
  httplib::Result res = Deliver(Delivery({RecordBytesWithoutInverterId()}).dump(), FirehoseHeaders());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(sink_.calls(), 0);
  EXPECT_EQ(Records("rejected"), 1);
}

TEST_F(FirehoseIngestTest, AStoreFailureIs503WithRetryAfterInTheFirehoseShape) {
  StartServer();
  sink_.Answer(UnavailableError("database is locked"));
  httplib::Result res = Deliver(Delivery({ValidRecordBytes("RCP-1")}).dump(), FirehoseHeaders());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  EXPECT_NE(FirehoseBody(res)["errorMessage"].get<std::string>().find("database is locked"), std::string::npos);

  sink_.Answer(InternalError("queue schema mismatch"));
  httplib::Result permanent = Deliver(Delivery({ValidRecordBytes("RCP-1")}).dump(), FirehoseHeaders());
  ASSERT_TRUE(permanent);
  EXPECT_EQ(permanent->status, 500);
  FirehoseBody(permanent);
  EXPECT_EQ(sink_.stored().size(), 0u);
}

TEST_F(FirehoseIngestTest, TooLargeIs413InTheFirehoseShapeDeclaredOrDecompressed) {
  StartServer();
  // Declared too large: refused by the listener at the headers, still in the Firehose shape.
  httplib::Result declared = Deliver(std::string(kMaxBodyBytes + 1, ' '), FirehoseHeaders());
  ASSERT_TRUE(declared) << httplib::to_string(declared.error());
  EXPECT_EQ(declared->status, 413);
  FirehoseBody(declared);

  // Small once compressed, too large once decompressed (a zip bomb): 413 too.
  std::vector<std::string> many(2000, ValidRecordBytes("RCP-000001"));
  const std::string json_text = Delivery(many).dump();
  ASSERT_GT(json_text.size(), static_cast<std::size_t>(kMaxBodyBytes));
  const std::string compressed = Gzip(json_text, 9);
  ASSERT_LT(compressed.size(), static_cast<std::size_t>(kMaxBodyBytes));
  httplib::Headers gzip = FirehoseHeaders();
  gzip.emplace("Content-Encoding", "gzip");
  httplib::Result bomb = Deliver(compressed, gzip);
  ASSERT_TRUE(bomb);
  EXPECT_EQ(bomb->status, 413);
  EXPECT_NE(FirehoseBody(bomb)["errorMessage"].get<std::string>().find(std::to_string(kMaxBodyBytes)),
            std::string::npos);
  EXPECT_EQ(sink_.calls(), 0);
}

TEST_F(FirehoseIngestTest, OtherMethodsAre405InTheFirehoseShape) {
  StartServer();
  httplib::Result get = client_->Get("/v1/firehose", FirehoseHeaders());
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  FirehoseBody(get);
}

TEST_F(FirehoseIngestTest, WithoutAFirehoseSecretTheFirehosePathIs404) {
  config_.firehose_access_key_secret = "";
  StartServer();
  httplib::Result res = Deliver(Delivery({ValidRecordBytes("RCP-1")}).dump(), FirehoseHeaders());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_NE(FirehoseBody(res)["errorMessage"].get<std::string>().find("firehose_access_key_secret"), std::string::npos);
  EXPECT_EQ(sink_.calls(), 0);
}

TEST_F(FirehoseIngestTest, AMissingOrMalformedSecretStopsTheStartNamingTheKeyAndSecret) {
  config_.firehose_access_key_secret = "NoSuchSecret";
  IngestServer missing(
      config_, [](const std::vector<std::string>&) { return Status::Ok(); }, metrics_, &secrets_);
  const Status not_found = missing.Start();
  EXPECT_EQ(not_found.code(), StatusCode::kNotFound);
  EXPECT_NE(not_found.message().find("telemetry.firehose_access_key_secret"), std::string::npos) << not_found.message();
  EXPECT_NE(not_found.message().find("NoSuchSecret"), std::string::npos) << not_found.message();
  EXPECT_EQ(missing.port(), 0);

  ASSERT_TRUE(secrets_.Put("Bad", R"({"api_key": ""})").ok());
  config_.firehose_access_key_secret = "";
  config_.access_key_secret = "Bad";
  IngestServer malformed(
      config_, [](const std::vector<std::string>&) { return Status::Ok(); }, metrics_, &secrets_);
  EXPECT_EQ(malformed.Start().code(), StatusCode::kInvalidArgument);

  IngestServer no_store(
      config_, [](const std::vector<std::string>&) { return Status::Ok(); }, metrics_);
  EXPECT_EQ(no_store.Start().code(), StatusCode::kFailedPrecondition);
}

// --- The ingest endpoint's own access key and gzip bodies ---

TEST_F(FirehoseIngestTest, WithAnAccessKeyTelemetryNeedsItAsXApiKeyOrBearer) {
  config_.access_key_secret = "IngestAccessKey";
  StartServer();
  const std::string record = ValidRecordBytes("RCP-1");

  httplib::Result none = client_->Post("/v1/telemetry", record, "application/x-protobuf");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer realm=\"pwrcell-ingest\"");
  EXPECT_TRUE(json::parse(none->body)["error"].is_string());

  httplib::Result wrong =
      client_->Post("/v1/telemetry", {{"X-Api-Key", "ingest-key-abcdeF"}}, record, "application/x-protobuf");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  httplib::Result wrong_bearer = client_->Post("/v1/telemetry", {{"Authorization", std::string("Basic ") + kIngestKey}},
                                               record, "application/x-protobuf");
  ASSERT_TRUE(wrong_bearer);
  EXPECT_EQ(wrong_bearer->status, 401);
  EXPECT_EQ(sink_.calls(), 0);
  EXPECT_EQ(Refused("telemetry", "missing_key"), 2);
  EXPECT_EQ(Refused("telemetry", "wrong_key"), 1);

  httplib::Result api_key =
      client_->Post("/v1/telemetry", {{"X-Api-Key", kIngestKey}}, record, "application/x-protobuf");
  ASSERT_TRUE(api_key);
  EXPECT_EQ(api_key->status, 200) << api_key->body;
  httplib::Result bearer = client_->Post("/v1/telemetry", {{"Authorization", std::string("bearer ") + kIngestKey}},
                                         record, "application/x-protobuf");
  ASSERT_TRUE(bearer);
  EXPECT_EQ(bearer->status, 200) << bearer->body;
  EXPECT_EQ(sink_.stored(), (std::vector<std::string>{record, record}));

  // The Firehose path keeps its own key.
  httplib::Result firehose = Deliver(Delivery({record}).dump(), FirehoseHeaders());
  ASSERT_TRUE(firehose);
  EXPECT_EQ(firehose->status, 200);
}

TEST_F(FirehoseIngestTest, WithoutAnAccessKeyTelemetryIsOpenAsBefore) {
  StartServer();
  httplib::Result res = client_->Post("/v1/telemetry", ValidRecordBytes("RCP-1"), "application/x-protobuf");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(FirehoseIngestTest, TelemetryTakesGzipBodiesWithinTheDecompressedLimit) {
  StartServer();
  const std::string a = ValidRecordBytes("RCP-A");
  const std::string b = ValidRecordBytes("RCP-B");
  const json batch = {{"records", {{{"data", Base64Encode(a)}}, {{"data", Base64Encode(b)}}}}};
  httplib::Result json_res =
      client_->Post("/v1/telemetry", {{"Content-Encoding", "gzip"}}, Gzip(batch.dump()), "application/json");
  ASSERT_TRUE(json_res);
  EXPECT_EQ(json_res->status, 200) << json_res->body;
  EXPECT_EQ(json::parse(json_res->body)["accepted"], 2);

  httplib::Result proto =
      client_->Post("/v1/telemetry", {{"Content-Encoding", "gzip"}}, Gzip(a), "application/x-protobuf");
  ASSERT_TRUE(proto);
  EXPECT_EQ(proto->status, 200) << proto->body;
  EXPECT_EQ(sink_.stored(), (std::vector<std::string>{a, b, a}));

  httplib::Result bomb = client_->Post("/v1/telemetry", {{"Content-Encoding", "gzip"}},
                                       Gzip(std::string(10 * kMaxBodyBytes, 'x'), 9), "application/x-protobuf");
  ASSERT_TRUE(bomb);
  EXPECT_EQ(bomb->status, 413);
  httplib::Result corrupt =
      client_->Post("/v1/telemetry", {{"Content-Encoding", "gzip"}}, "not gzip", "application/x-protobuf");
  ASSERT_TRUE(corrupt);
  EXPECT_EQ(corrupt->status, 400);
  httplib::Result brotli = client_->Post("/v1/telemetry", {{"Content-Encoding", "br"}}, a, "application/x-protobuf");
  ASSERT_TRUE(brotli);
  EXPECT_EQ(brotli->status, 415);
  EXPECT_EQ(sink_.calls(), 2);
}

}  // namespace
}  // namespace pwrcell::runtime::http
