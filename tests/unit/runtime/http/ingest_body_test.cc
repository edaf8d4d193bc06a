// The ingest endpoint's body parsing (runtime/http/ingest_body.h), the functions
// fuzz/ingest_body_fuzzer.cc feeds; the endpoint around them is tested in tests/runtime.
#include "runtime/http/ingest_body.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/base64.h"
#include "energy_record_set.pb.h"
#include "ports/queue.h"

namespace pwrcell::runtime::http {
namespace {

// The default telemetry.max_records_per_request.
constexpr std::size_t kMaxRecords = 10000;

std::string ValidRecord() {
  ces::v1::EnergyRecordSet set;
  set.set_inverterid("000100007010");
  set.add_energyrecord()->set_currenttimestamp(1763800000);
  return set.SerializeAsString();
}

std::string Batch(const std::string& entries) {
  return R"({"records":[)" + entries + "]}";
}

TEST(IngestBody, JsonBatchGivesEveryRecordInOrder) {
  const std::string record = ValidRecord();
  const std::string data = Base64Encode(record);
  auto parsed = ParseJsonBatch(Batch(R"({"data":")" + data + R"(","partitionKey":"sys-1"},{"data":"%%%"},{"data":")" +
                                     data + R"(","partitionKey":null})"),
                               kMaxRecords);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ((*parsed)[0].bytes, record);
  EXPECT_EQ((*parsed)[0].error, "");
  EXPECT_EQ((*parsed)[1].bytes, "");
  EXPECT_EQ((*parsed)[1].error.rfind("data: ", 0), 0u) << (*parsed)[1].error;  // invalid base64: that record only
  EXPECT_EQ((*parsed)[2].bytes, record);
}

TEST(IngestBody, JsonBatchOfTheWrongShapeSaysWhich) {
  const auto message = [](const std::string& body) { return ParseJsonBatch(body, kMaxRecords).status().message(); };
  EXPECT_EQ(message("{").rfind("body is not valid JSON: ", 0), 0u);
  EXPECT_EQ(message("[]"), "body must be a JSON object with a \"records\" array");
  EXPECT_EQ(message(R"({"records":{}})"), "body must be a JSON object with a \"records\" array");
  EXPECT_EQ(message(Batch(R"({"data":""},7)")), "records[1] must be an object");
  EXPECT_EQ(message(Batch(R"({"data":1})")), "records[0].data must be a base64 string");
  EXPECT_EQ(message(Batch(R"({"data":"","partitionKey":1})")), "records[0].partitionKey must be a string");
  EXPECT_EQ(ParseJsonBatch("[]", kMaxRecords).status().code(), StatusCode::kInvalidArgument);
  auto empty = ParseJsonBatch(R"({"records":[]})", kMaxRecords);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(IngestBody, TriageKeepsDecodableRecordsAndNamesTheOthersByIndex) {
  std::vector<OfferedRecord> offered = {{ValidRecord(), ""},
                                        {"not a record", ""},
                                        {"", "data: invalid base64"},
                                        {std::string(ports::kMaxQueueMessageBytes + 1, 'x'), ""},
                                        {ValidRecord(), ""}};
  const Triage triage = TriageRecords(offered);
  EXPECT_EQ(triage.accepted, (std::vector<std::string>{ValidRecord(), ValidRecord()}));
  ASSERT_EQ(triage.rejected.size(), 3u);
  EXPECT_EQ(triage.rejected_count, 3u);
  EXPECT_EQ(triage.rejected[0]["index"], 1);
  EXPECT_EQ(triage.rejected[1]["index"], 2);
  EXPECT_EQ(triage.rejected[1]["error"], "data: invalid base64");
  EXPECT_EQ(triage.rejected[2]["index"], 3);
  EXPECT_NE(triage.rejected[2]["error"].get<std::string>().find("the largest a queue message holds"),
            std::string::npos);
}

}  // namespace
}  // namespace pwrcell::runtime::http
