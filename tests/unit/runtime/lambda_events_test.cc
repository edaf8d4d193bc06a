#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/metrics.h"
#include "runtime/lambda/emf.h"
#include "runtime/lambda/events.h"
#include "runtime/lambda/functions.h"
#include "runtime/lambda/runtime_api.h"

namespace pwrcell::runtime::lambda {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string KinesisEvent(const std::vector<std::pair<std::string, std::string>>& records) {
  json out = {{"Records", json::array()}};
  for (const auto& [data, sequence] : records) {
    out["Records"].push_back({{"kinesis",
                               {{"kinesisSchemaVersion", "1.0"},
                                {"partitionKey", "pk-" + sequence},
                                {"sequenceNumber", sequence},
                                {"data", data},
                                {"approximateArrivalTimestamp", 1545084650.987}}},
                              {"eventSource", "aws:kinesis"},
                              {"eventID", "shardId-000000000006:" + sequence},
                              {"eventName", "aws:kinesis:record"},
                              {"eventSourceARN", "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"}});
  }
  return out.dump();
}

json SqsRecord(const std::string& id, const std::string& body) {
  return {{"messageId", id},
          {"receiptHandle", "AQEB-" + id},
          {"body", body},
          {"attributes",
           {{"ApproximateReceiveCount", "3"},
            {"SentTimestamp", "1545082649183"},
            {"SenderId", "AIDAIENQZJOLO23YVJ4VO"},
            {"ApproximateFirstReceiveTimestamp", "1545082649185"}}},
          {"messageAttributes", json::object()},
          {"md5OfBody", "e4e68fb7bd0e697a0ae8f1bb342846b3"},
          {"eventSource", "aws:sqs"},
          {"eventSourceARN", "arn:aws:sqs:us-east-2:123456789012:my-queue"},
          {"awsRegion", "us-east-2"}};
}

TEST(KinesisEvent, GivesEachRecordsBytesAndSequenceNumber) {
  auto records = ParseKinesisEvent(KinesisEvent({{Base64Encode(std::string("\x08\x01\x00\xff", 4)), "4959"},
                                                 {Base64Encode("second"), "4960"}}));
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].data, std::string("\x08\x01\x00\xff", 4));
  EXPECT_TRUE((*records)[0].data_is_base64);
  EXPECT_EQ((*records)[0].sequence_number, "4959");
  EXPECT_EQ((*records)[0].partition_key, "pk-4959");
  EXPECT_EQ((*records)[0].event_id, "shardId-000000000006:4959");
  EXPECT_EQ((*records)[1].data, "second");
}

TEST(KinesisEvent, DataThatIsNotBase64IsKeptAsAPoisonRecordNotAnError) {
  auto records = ParseKinesisEvent(KinesisEvent({{"not base64!", "1"}}));
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  EXPECT_FALSE((*records)[0].data_is_base64);
  EXPECT_EQ((*records)[0].data, "not base64!");
}

TEST(KinesisEvent, MissingFieldsAndOtherEventsAreRefusedByName) {
  EXPECT_THAT(ParseKinesisEvent("not json").status().message(), HasSubstr("not JSON"));
  EXPECT_THAT(ParseKinesisEvent("{}").status().message(), HasSubstr("Records"));
  EXPECT_THAT(ParseKinesisEvent(json{{"Records", {SqsRecord("m1", "b")}}}.dump()).status().message(),
              HasSubstr("kinesis"));
  json event = json::parse(KinesisEvent({{"AA==", "7"}}));
  event["Records"][0]["kinesis"].erase("sequenceNumber");
  const Status status = ParseKinesisEvent(event.dump()).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("record 0: no string \"kinesis.sequenceNumber\""));
}

TEST(SqsEvent, GivesEachMessageWithItsQueueReceiveCountAndEncoding) {
  json event = {{"Records", {SqsRecord("m1", "{\"op\":1}"), SqsRecord("m2", "AAEC")}}};
  event["Records"][1]["messageAttributes"] = {
      {"pwrcell-encoding", {{"stringValue", "base64"}, {"stringListValues", json::array()}, {"dataType", "String"}}}};
  auto records = ParseSqsEvent(event.dump());
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].message_id, "m1");
  EXPECT_EQ((*records)[0].receipt_handle, "AQEB-m1");
  EXPECT_EQ((*records)[0].body, "{\"op\":1}");
  EXPECT_EQ((*records)[0].encoding, "");
  EXPECT_EQ((*records)[0].queue_name, "my-queue");
  EXPECT_EQ((*records)[0].receive_count, 3);
  EXPECT_EQ(ToUnixMillis((*records)[0].sent_at), 1545082649183);
  EXPECT_EQ((*records)[1].encoding, "base64");
}

TEST(SqsEvent, RefusesAKinesisEventAndMissingFields) {
  EXPECT_THAT(ParseSqsEvent(KinesisEvent({{"AA==", "1"}})).status().message(), HasSubstr("aws:sqs"));
  json event = {{"Records", {SqsRecord("m1", "b")}}};
  event["Records"][0].erase("messageId");
  EXPECT_THAT(ParseSqsEvent(event.dump()).status().message(), HasSubstr("record 0: no string \"messageId\""));
}

TEST(ScheduledEvent, AcceptsEventBridgesScheduledEventAndRefusesOthers) {
  const json scheduled = {{"version", "0"},
                          {"id", "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa"},
                          {"detail-type", "Scheduled Event"},
                          {"source", "aws.events"},
                          {"account", "123456789012"},
                          {"time", "2015-10-08T16:53:06Z"},
                          {"region", "us-east-1"},
                          {"resources", {"arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule"}},
                          {"detail", json::object()}};
  EXPECT_TRUE(CheckScheduledEvent(scheduled.dump()).ok());
  EXPECT_TRUE(CheckScheduledEvent("{}").ok());
  EXPECT_FALSE(CheckScheduledEvent(KinesisEvent({{"AA==", "1"}})).ok());
  EXPECT_THAT(CheckScheduledEvent(R"({"detail-type":"Object Created"})").message(), HasSubstr("Object Created"));
}

TEST(BatchItemFailures, IsTheShapeLambdaReads) {
  EXPECT_EQ(json::parse(BatchItemFailures({})), json::parse(R"({"batchItemFailures":[]})"));
  EXPECT_EQ(json::parse(BatchItemFailures({"a", "b"})),
            json::parse(R"({"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"b"}]})"));
}

TEST(LambdaError, IsTheDocumentedErrorJson) {
  EXPECT_EQ(json::parse(ErrorJson({"Pwrcell.Unavailable", "store aws: down"})),
            json::parse(R"({"errorMessage":"store aws: down","errorType":"Pwrcell.Unavailable","stackTrace":[]})"));
}

TEST(Handlers, EveryNameRoundTripsAndAnUnknownOneListsTheValidOnes) {
  for (const char* name : {"telemetry_processor", "concerto_gateway", "pwrcell_gateway", "registrar_poller",
                           "ces_state_poller", "liveness_sweep", "simulated_telemetry"}) {
    auto handler = ParseHandler(name);
    ASSERT_TRUE(handler.ok()) << name;
    EXPECT_EQ(HandlerName(*handler), name);
  }
  const Status unknown = ParseHandler("bootstrap.handler").status();
  EXPECT_EQ(unknown.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.message(), HasSubstr("concerto_gateway"));
}

TEST(RateShare, InstancesTogetherNeverExceedTheLimitInAnyOneSecondWindow) {
  // An instance spaced at rate r sends at most r + 1 requests in any one-second window.
  for (int instances : {1, 2, 4, 5, 10}) {
    const double r = SharePerInstance(25, instances);
    EXPECT_GT(r, 0);
    EXPECT_LE(instances * (r + 1), 25 + 1e-9) << instances;
  }
  EXPECT_DOUBLE_EQ(SharePerInstance(25, 4), 5.25);
  EXPECT_DOUBLE_EQ(SharePerInstance(10, 2), 4);
  EXPECT_EQ(SharePerInstance(0, 4), 0);  // unlimited stays unlimited
  EXPECT_DOUBLE_EQ(SharePerInstance(3, 2), 0.75);  // below 2 each: half the share
}

TEST(LambdaConfigTest, RefusesTheEmbeddedBackendsAndAStreamlessTelemetryFunction) {
  config::Config c;
  c.backend.kind = "aws";
  c.secrets.backend = "aws";
  EXPECT_TRUE(LambdaConfig(c, Handler::kTelemetryProcessor).ok());
  config::Config embedded = c;
  embedded.backend.kind = "embedded";
  EXPECT_THAT(LambdaConfig(embedded, Handler::kConcertoGateway).status().message(), HasSubstr("[backend] kind"));
  config::Config file_secrets = c;
  file_secrets.secrets.backend = "file";
  EXPECT_THAT(LambdaConfig(file_secrets, Handler::kConcertoGateway).status().message(),
              HasSubstr("[secrets] backend"));
  config::Config no_stream = c;
  no_stream.aws.telemetry_stream = "";
  EXPECT_FALSE(LambdaConfig(no_stream, Handler::kTelemetryProcessor).ok());
  EXPECT_TRUE(LambdaConfig(no_stream, Handler::kLivenessSweep).ok());
}

TEST(Emf, WritesTheIncreaseOfEachMovedCounterOnceAndGaugesWhenTheyChange) {
  Metrics metrics;
  Counter<1> records(&metrics, "pwrcell_x_total", "help", {"outcome"});
  Gauge<0> depth(&metrics, "pwrcell_depth", "help");
  EmfWriter emf;
  const Timestamp now = FromUnixMillis(1764150000000);
  records.Increment({"done"}, 3);
  depth.Set(7);
  auto lines = emf.Lines(metrics, now);
  ASSERT_EQ(lines.size(), 2u);
  const json depth_line = json::parse(lines[0]);
  EXPECT_EQ(depth_line["pwrcell_depth"], 7);
  EXPECT_EQ(depth_line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json::parse("[[]]"));
  const json line = json::parse(lines[1]);
  EXPECT_EQ(line["_aws"]["Timestamp"], 1764150000000);
  EXPECT_EQ(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "pwrcell-adapter");
  EXPECT_EQ(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json::parse(R"([["outcome"]])"));
  EXPECT_EQ(line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "pwrcell_x_total");
  EXPECT_EQ(line["outcome"], "done");
  EXPECT_EQ(line["pwrcell_x_total"], 3);

  EXPECT_TRUE(emf.Lines(metrics, now).empty());  // nothing moved
  records.Increment({"done"}, 2);
  lines = emf.Lines(metrics, now);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(json::parse(lines[0])["pwrcell_x_total"], 2);  // the increase, not the total
}

}  // namespace
}  // namespace pwrcell::runtime::lambda
