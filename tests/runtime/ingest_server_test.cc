#include "runtime/http/ingest_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "ingest_fixture.h"
#include "ports/queue.h"
#include "test_records.h"

namespace pwrcell::runtime::http {
namespace {

using nlohmann::json;
using testing::RecordBytesWithoutInverterId;
using testing::RecordingSink;
using testing::ValidRecordBytes;

constexpr int kMaxBodyBytes = 4096;

class IngestServerTest : public testing::IngestServerFixture {
 protected:
  void SetUp() override {
    config::TelemetryConfig config;
    config.listen = {"127.0.0.1", 0};
    config.max_body_bytes = kMaxBodyBytes;
    ASSERT_NO_FATAL_FAILURE(StartIngestServer(config));
    ASSERT_GT(server_->port(), 0);
  }

  httplib::Result PostJson(const json& body) { return client_->Post("/v1/telemetry", body.dump(), "application/json"); }

  double Requests(const std::string& status) const {
    return metrics_.Value("pwrcell_ingest_requests_total", {{"status", status}});
  }
};

TEST_F(IngestServerTest, ProtobufBodyReachesTheSinkByteIdentical) {
  const std::string record = ValidRecordBytes("RCP-000100");
  httplib::Result res = client_->Post("/v1/telemetry", record, "application/x-protobuf");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(json::parse(res->body), (json{{"accepted", 1}, {"rejected", json::array()}, {"rejected_count", 0}}));
  EXPECT_EQ(sink_.stored(), std::vector<std::string>{record});
  EXPECT_EQ(Requests("200"), 1);
  EXPECT_EQ(Records("received"), 1);
  EXPECT_EQ(Records("rejected"), 0);
}

TEST_F(IngestServerTest, OctetStreamIsTakenAsProtobuf) {
  const std::string record = ValidRecordBytes("RCP-000101");
  httplib::Result res = client_->Post("/v1/telemetry", record, "application/octet-stream");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(sink_.stored(), std::vector<std::string>{record});
}

TEST_F(IngestServerTest, UndecodableProtobufBodyIsRejectedAsRecordZeroAndNotStored) {
  httplib::Result res = client_->Post("/v1/telemetry", RecordBytesWithoutInverterId(), "application/x-protobuf");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  const json body = json::parse(res->body);
  EXPECT_EQ(body["accepted"], 0);
  ASSERT_EQ(body["rejected"].size(), 1u);
  EXPECT_EQ(body["rejected"][0]["index"], 0);
  EXPECT_EQ(body["rejected"][0]["error"], "inverterId is empty");
  EXPECT_EQ(sink_.calls(), 0);
}

TEST_F(IngestServerTest, JsonBatchRejectsBadRecordsByIndexAndStoresTheRest) {
  const std::string good = ValidRecordBytes("RCP-000102");
  const json body = {{"records",
                      {
                          {{"data", "not base64!"}, {"partitionKey", "sys-1"}},
                          {{"data", Base64Encode(good)}, {"partitionKey", "sys-2"}},
                          {{"data", Base64Encode(RecordBytesWithoutInverterId())}},
                      }}};
  httplib::Result res = PostJson(body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json answer = json::parse(res->body);
  EXPECT_EQ(answer["accepted"], 1);
  ASSERT_EQ(answer["rejected"].size(), 2u) << answer.dump();
  EXPECT_EQ(answer["rejected"][0]["index"], 0);
  EXPECT_NE(answer["rejected"][0]["error"].get<std::string>().find("base64"), std::string::npos);
  EXPECT_EQ(answer["rejected"][1]["index"], 2);
  EXPECT_EQ(answer["rejected"][1]["error"], "inverterId is empty");

  EXPECT_EQ(sink_.stored(), std::vector<std::string>{good});
  EXPECT_EQ(Records("received"), 3);
  EXPECT_EQ(Records("rejected"), 2);
}

// A body of empty records once drew a 17 MB answer (one {"index", "error"} each): the answer
// lists the first 100 and counts the rest.
TEST_F(IngestServerTest, TheAnswerListsTheFirstHundredRejectionsAndCountsThemAll) {
  const std::string good = ValidRecordBytes("RCP-000103");
  json records = json::array();
  for (int i = 0; i < 150; ++i) records.push_back({{"data", ""}});
  records.push_back({{"data", Base64Encode(good)}});
  httplib::Result res = PostJson(json{{"records", records}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json answer = json::parse(res->body);
  EXPECT_EQ(answer["accepted"], 1);
  EXPECT_EQ(answer["rejected_count"], 150);
  ASSERT_EQ(answer["rejected"].size(), 100u);
  EXPECT_EQ(answer["rejected"][99]["index"], 99);
  EXPECT_EQ(sink_.stored(), std::vector<std::string>{good});
  EXPECT_EQ(Records("received"), 151);
  EXPECT_EQ(Records("rejected"), 150);
}

// telemetry.max_records_per_request: one record more is refused as a whole, 413, counted.
class IngestRecordCapTest : public testing::IngestServerFixture {
 protected:
  void SetUp() override {
    config::TelemetryConfig config;
    config.listen = {"127.0.0.1", 0};
    config.max_records_per_request = 3;
    ASSERT_NO_FATAL_FAILURE(StartIngestServer(config));
  }
  httplib::Result PostRecords(int count) {
    json records = json::array();
    for (int i = 0; i < count; ++i) {
      records.push_back({{"data", Base64Encode(ValidRecordBytes("RCP-" + std::to_string(i)))}});
    }
    return client_->Post("/v1/telemetry", json{{"records", records}}.dump(), "application/json");
  }
  double Refused(const std::string& reason) const {
    return metrics_.Value("pwrcell_http_refused_total", {{"server", "ingest"}, {"reason", reason}});
  }
};

TEST_F(IngestRecordCapTest, MoreRecordsThanTheCapIs413AndNothingIsStored) {
  httplib::Result res = PostRecords(4);
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 413) << res->body;
  const std::string error = json::parse(res->body)["error"].get<std::string>();
  EXPECT_NE(error.find("4 records in one request, more than 3 (telemetry.max_records_per_request)"), std::string::npos)
      << error;
  EXPECT_EQ(sink_.calls(), 0);
  EXPECT_EQ(Records("received"), 0);
  EXPECT_EQ(Refused("too_many_records"), 1);
  EXPECT_EQ(metrics_.Value("pwrcell_ingest_requests_total", {{"status", "413"}}), 1);

  res = PostRecords(3);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(sink_.stored().size(), 3u);
  EXPECT_EQ(Refused("too_many_records"), 1);
}

TEST_F(IngestServerTest, JsonWithCharsetParameterAndNoPartitionKeyIsAccepted) {
  const std::string a = ValidRecordBytes("RCP-A");
  const std::string b = ValidRecordBytes("RCP-B");
  const json body = {
      {"records", {{{"data", Base64Encode(a)}}, {{"data", Base64Encode(b)}, {"partitionKey", nullptr}}}}};
  httplib::Result res = client_->Post("/v1/telemetry", body.dump(), "application/json; charset=utf-8");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["accepted"], 2);
  EXPECT_EQ(sink_.stored(), (std::vector<std::string>{a, b}));
}

TEST_F(IngestServerTest, EmptyBatchIsAcceptedWithoutCallingTheSink) {
  httplib::Result res = PostJson(json{{"records", json::array()}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body), (json{{"accepted", 0}, {"rejected", json::array()}, {"rejected_count", 0}}));
  EXPECT_EQ(sink_.calls(), 0);
}

TEST_F(IngestServerTest, OversizedBodyIs413AndNothingIsStored) {
  const std::string big(kMaxBodyBytes + 1, 'x');
  httplib::Result res = client_->Post("/v1/telemetry", big, "application/x-protobuf");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 413);
  EXPECT_NE(json::parse(res->body)["error"].get<std::string>().find(std::to_string(kMaxBodyBytes)), std::string::npos);
  EXPECT_EQ(sink_.calls(), 0);
  EXPECT_EQ(Requests("413"), 1);

  // A body of exactly the limit is read (and here rejected as a record, not as a request).
  httplib::Result at_limit = client_->Post("/v1/telemetry", std::string(kMaxBodyBytes, 'x'), "application/x-protobuf");
  ASSERT_TRUE(at_limit);
  EXPECT_EQ(at_limit->status, 200);
}

TEST_F(IngestServerTest, OversizedChunkedBodyIs413Too) {
  // No Content-Length: httplib cannot refuse it up front, the server counts while reading.
  int chunks_sent = 0;
  httplib::Result res = client_->Post(
      "/v1/telemetry",
      [&chunks_sent](std::size_t, httplib::DataSink& sink) {
        if (chunks_sent == 8) {
          sink.done();
          return true;
        }
        ++chunks_sent;
        const std::string chunk(1024, 'x');
        return sink.write(chunk.data(), chunk.size());
      },
      "application/x-protobuf");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 413);
  EXPECT_EQ(sink_.calls(), 0);
}

TEST_F(IngestServerTest, BodiesOfTheWrongShapeAre400) {
  const std::string bodies[] = {
      "{not json",
      "[]",
      R"({"records": 5})",
      R"({"Records": []})",
      R"({"records": ["AAAA"]})",
      R"({"records": [{"partitionKey": "x"}]})",
      R"({"records": [{"data": 5}]})",
      R"({"records": [{"data": "AAAA", "partitionKey": 7}]})",
  };
  for (const auto& body : bodies) {
    httplib::Result res = client_->Post("/v1/telemetry", body, "application/json");
    ASSERT_TRUE(res) << body;
    EXPECT_EQ(res->status, 400) << body;
    const json answer = json::parse(res->body);
    EXPECT_TRUE(answer["error"].is_string()) << body;
    EXPECT_FALSE(answer.contains("accepted")) << body;
  }
  EXPECT_EQ(Requests("400"), static_cast<double>(std::size(bodies)));
  EXPECT_EQ(sink_.calls(), 0);
  EXPECT_EQ(Records("received"), 0);
}

TEST_F(IngestServerTest, UnknownContentTypeIs415) {
  httplib::Result res = client_->Post("/v1/telemetry", "hello", "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 415);
  EXPECT_NE(json::parse(res->body)["error"].get<std::string>().find("text/plain"), std::string::npos);
  EXPECT_EQ(Requests("415"), 1);
}

TEST_F(IngestServerTest, OtherMethodsAre405AndOtherPaths404) {
  httplib::Result get = client_->Get("/v1/telemetry");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  EXPECT_EQ(get->get_header_value("Allow"), "POST");
  EXPECT_TRUE(json::parse(get->body)["error"].is_string());

  httplib::Result put = client_->Put("/v1/telemetry", "{}", "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 405);

  httplib::Result other = client_->Post("/v1/other", "{}", "application/json");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  EXPECT_TRUE(json::parse(other->body)["error"].is_string());

  EXPECT_EQ(Requests("405"), 2);
  EXPECT_EQ(Requests("404"), 1);
}

TEST_F(IngestServerTest, RetryableSinkFailureIs503WithRetryAfterAndClaimsNothing) {
  sink_.Answer(UnavailableError("database is locked"));
  const json body = {{"records", {{{"data", Base64Encode(ValidRecordBytes("RCP-1"))}}, {{"data", "###"}}}}};
  httplib::Result res = PostJson(body);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  const json answer = json::parse(res->body);
  EXPECT_FALSE(answer.contains("accepted"));
  EXPECT_NE(answer["error"].get<std::string>().find("database is locked"), std::string::npos);
  EXPECT_EQ(sink_.calls(), 1);
  EXPECT_EQ(Requests("503"), 1);
  EXPECT_EQ(Requests("200"), 0);
}

TEST_F(IngestServerTest, PermanentSinkFailureIs500) {
  sink_.Answer(InternalError("queue schema mismatch"));
  httplib::Result res = client_->Post("/v1/telemetry", ValidRecordBytes("RCP-1"), "application/x-protobuf");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 500);
  EXPECT_FALSE(res->has_header("Retry-After"));
  EXPECT_NE(json::parse(res->body)["error"].get<std::string>().find("queue schema mismatch"), std::string::npos);
}

TEST_F(IngestServerTest, MetricsAreDescribedAndRendered) {
  ASSERT_TRUE(client_->Post("/v1/telemetry", ValidRecordBytes("RCP-1"), "application/x-protobuf"));
  ASSERT_TRUE(client_->Post("/v1/telemetry", "{", "application/json"));
  const std::string text = metrics_.RenderPrometheus();
  EXPECT_NE(text.find("# TYPE pwrcell_ingest_requests_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("# HELP pwrcell_records_total "), std::string::npos) << text;
  EXPECT_NE(text.find("pwrcell_ingest_requests_total{status=\"200\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("pwrcell_ingest_requests_total{status=\"400\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("pwrcell_records_total{outcome=\"received\"} 1\n"), std::string::npos) << text;
}

TEST_F(IngestServerTest, StartOnATakenPortFailsNamingTheAddress) {
  config::TelemetryConfig config;
  config.listen = {"127.0.0.1", static_cast<std::uint16_t>(server_->port())};
  IngestServer second(
      config, [](const std::vector<std::string>&) { return Status::Ok(); }, metrics_);
  const Status started = second.Start();
  EXPECT_EQ(started.code(), StatusCode::kUnavailable);
  EXPECT_EQ(started.message(), "cannot listen on 127.0.0.1:" + std::to_string(server_->port()) + ": address in use");
  EXPECT_EQ(second.port(), 0);
  second.Stop();  // harmless after a failed Start

  // The first server is unaffected.
  httplib::Result res = client_->Post("/v1/telemetry", ValidRecordBytes("RCP-1"), "application/x-protobuf");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(IngestServerTest, StartTwiceIsAFailedPrecondition) {
  EXPECT_EQ(server_->Start().code(), StatusCode::kFailedPrecondition);
}

// Each record is queued as one message: a record larger than every backend's queue message
// (ports::kMaxQueueMessageBytes, SQS's limit) is refused as a bad record, counted, never truncated.
TEST(IngestServerRecordSizeTest, ARecordLargerThanAQueueMessageIsRejectedAndTheRestStored) {
  Metrics metrics;
  RecordingSink sink;
  config::TelemetryConfig config;
  config.listen = {"127.0.0.1", 0};
  config.max_body_bytes = 1 << 20;
  IngestServer server(
      config, [&sink](const std::vector<std::string>& records) { return sink(records); }, metrics);
  ASSERT_TRUE(server.Start().ok());
  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(10, 0);
  // A valid record padded with an unknown length-delimited field (number 1000) past the limit.
  std::string padding(ports::kMaxQueueMessageBytes, 'x');
  std::string big = ValidRecordBytes("RCP-000190");
  big += std::string("\xc2\x3e", 2);  // key: field 1000, wire type 2
  std::size_t n = padding.size();
  while (n >= 0x80) {
    big += static_cast<char>((n & 0x7f) | 0x80);
    n >>= 7;
  }
  big += static_cast<char>(n);
  big += padding;
  const std::string small = ValidRecordBytes("RCP-000191");
  const json body = {{"records", {{{"data", Base64Encode(big)}}, {{"data", Base64Encode(small)}}}}};
  httplib::Result res = client.Post("/v1/telemetry", body.dump(), "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200) << res->body;
  const json answer = json::parse(res->body);
  EXPECT_EQ(answer["accepted"], 1);
  ASSERT_EQ(answer["rejected"].size(), 1u) << answer.dump();
  EXPECT_EQ(answer["rejected"][0]["index"], 0);
  EXPECT_NE(answer["rejected"][0]["error"].get<std::string>().find("the largest a queue message holds"),
            std::string::npos);
  EXPECT_EQ(sink.stored(), std::vector<std::string>{small});
  EXPECT_EQ(metrics.Value("pwrcell_records_total", {{"outcome", "rejected"}}), 1);
  server.Stop();
}

TEST(IngestServerShutdownTest, StopLetsTheRequestInProgressFinishThenRefusesConnections) {
  Metrics metrics;
  std::mutex mutex;
  std::condition_variable changed;
  bool in_sink = false;
  bool release = false;
  config::TelemetryConfig config;
  config.listen = {"127.0.0.1", 0};
  IngestServer server(
      config,
      [&](const std::vector<std::string>&) {
        std::unique_lock lock(mutex);
        in_sink = true;
        changed.notify_all();
        changed.wait(lock, [&] { return release; });
        return Status::Ok();
      },
      metrics);
  ASSERT_TRUE(server.Start().ok());
  const int port = server.port();

  auto request = std::async(std::launch::async, [port] {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(10, 0);
    httplib::Result res = client.Post("/v1/telemetry", ValidRecordBytes("RCP-1"), "application/x-protobuf");
    return res ? res->status : -1;
  });
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(10), [&] { return in_sink; }));
  }

  auto stopped = std::async(std::launch::async, [&server] { server.Stop(); });
  // Stop() must wait for the request that is inside the sink.
  EXPECT_EQ(stopped.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  changed.notify_all();
  EXPECT_EQ(request.get(), 200);
  ASSERT_EQ(stopped.wait_for(std::chrono::seconds(10)), std::future_status::ready);

  httplib::Client late("127.0.0.1", port);
  late.set_connection_timeout(2, 0);
  EXPECT_FALSE(late.Get("/v1/telemetry"));
}

}  // namespace
}  // namespace pwrcell::runtime::http
