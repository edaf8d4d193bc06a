// What the coordination conformance suite does not reach on DynamoDB: opening a missing or foreign
// table, CreateTable on an existing one, and the paths taken only by many or large items (Query
// pages of 1 MB, BatchWriteItem calls of 25).
#include "adapters/aws/dynamodb_coordination.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "moto.h"

namespace pwrcell::adapters::aws {
namespace {

using aws_test::MotoOptions;
using aws_test::UniqueName;

constexpr Timestamp kT0{Duration{1'763'800'000'000}};

class DynamoDbCoordinationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    table_ = UniqueName("coordination-test");
    const Status created = DynamoDbCoordination::CreateTable(*client_, table_);
    ASSERT_TRUE(created.ok()) << created.ToString();
    auto opened = DynamoDbCoordination::Open(client_, table_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    coordination_ = std::move(opened).value();
  }
  void TearDown() override { (void)client_->Call(kDynamoDb, "DeleteTable", {{"TableName", table_}}); }

  std::shared_ptr<AwsClient> client_ = std::make_shared<AwsClient>(MotoOptions());
  std::string table_;
  std::unique_ptr<DynamoDbCoordination> coordination_;
};

TEST(DynamoDbCoordinationOpen, AMissingTableIsNotFoundWithItsNameAndTheAwsError) {
  const std::string table = UniqueName("missing");
  auto opened = DynamoDbCoordination::Open(std::make_shared<AwsClient>(MotoOptions()), table);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kNotFound) << opened.status().ToString();
  EXPECT_NE(opened.status().message().find("'" + table + "'"), std::string::npos) << opened.status().ToString();
  EXPECT_NE(opened.status().message().find("ResourceNotFoundException"), std::string::npos)
      << opened.status().ToString();
}

TEST(DynamoDbCoordinationOpen, ATableWithAnotherKeySchemaIsRefused) {
  AwsClient client(MotoOptions());
  const std::string table = UniqueName("foreign");
  auto created = client.Call(kDynamoDb, "CreateTable",
                             {{"TableName", table},
                              {"AttributeDefinitions", {{{"AttributeName", "pk"}, {"AttributeType", "S"}}}},
                              {"KeySchema", {{{"AttributeName", "pk"}, {"KeyType", "HASH"}}}},
                              {"BillingMode", "PAY_PER_REQUEST"}});
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto opened = DynamoDbCoordination::Open(std::make_shared<AwsClient>(MotoOptions()), table);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition) << opened.status().ToString();
  EXPECT_NE(opened.status().message().find(table), std::string::npos) << opened.status().ToString();
  (void)client.Call(kDynamoDb, "DeleteTable", {{"TableName", table}});
}

TEST_F(DynamoDbCoordinationTest, CreateTableAgainKeepsTheTableAndItsItems) {
  ASSERT_TRUE(coordination_->PutValue("kept", "v", 0).ok());
  const Status again = DynamoDbCoordination::CreateTable(*client_, table_);
  EXPECT_TRUE(again.ok()) << again.ToString();
  auto value = coordination_->GetValue("kept");
  ASSERT_TRUE(value.ok()) << value.status().ToString();
  EXPECT_EQ(*value, (ports::CoordinationValue{"v", 1}));
}

TEST_F(DynamoDbCoordinationTest, RemovePrefixTakesMoreThanOneBatch) {
  // 3 kinds x 40 items = 120 deletions: five BatchWriteItem calls of at most 25.
  for (int i = 0; i < 40; ++i) {
    const std::string key = "sys-7/" + std::to_string(1000 + i);
    ASSERT_TRUE(coordination_->PutValue(key, "v", 0).ok());
    auto taken = coordination_->TryAcquireLease(key, "worker", kT0, std::chrono::seconds(30));
    ASSERT_TRUE(taken.ok() && *taken);
    auto through = coordination_->TryThrottle(key, kT0, std::chrono::seconds(30));
    ASSERT_TRUE(through.ok() && *through);
  }
  ASSERT_TRUE(coordination_->PutValue("sys-8/state", "kept", 0).ok());
  const Status removed = coordination_->RemovePrefix("sys-7/");
  ASSERT_TRUE(removed.ok()) << removed.ToString();
  for (const char* kind : {"lease", "throttle", "value"}) {
    auto left = client_->Call(kDynamoDb, "Query",
                              {{"TableName", table_},
                               {"KeyConditionExpression", "#kind = :kind"},
                               {"ExpressionAttributeNames", {{"#kind", "kind"}}},
                               {"ExpressionAttributeValues", {{":kind", {{"S", kind}}}}},
                               {"Select", "COUNT"}});
    ASSERT_TRUE(left.ok()) << left.status().ToString();
    EXPECT_EQ((*left)["Count"], std::string(kind) == "value" ? 1 : 0) << kind;
  }
}

TEST_F(DynamoDbCoordinationTest, ListValuesReadsEveryPage) {
  // Query answers at most 1 MB per page: 6 values of 300 KB take several pages.
  const std::string large(300'000, 'x');
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(coordination_->PutValue("big/" + std::to_string(i), large, 0).ok());
  auto page = client_->Call(kDynamoDb, "Query",
                            {{"TableName", table_},
                             {"KeyConditionExpression", "#kind = :kind"},
                             {"ExpressionAttributeNames", {{"#kind", "kind"}}},
                             {"ExpressionAttributeValues", {{":kind", {{"S", "value"}}}}}});
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_TRUE(page->contains("LastEvaluatedKey")) << "one Query page held all 1.8 MB: pagination untested";
  auto listed = coordination_->ListValues("big/");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ((*listed)[i].first, "big/" + std::to_string(i));
    EXPECT_EQ((*listed)[i].second.value.size(), large.size());
  }
}

TEST_F(DynamoDbCoordinationTest, AValueOverTheItemSizeIsAnInvalidArgument) {
  auto written = coordination_->PutValue("huge", std::string(450'000, 'x'), 0);
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.status().code(), StatusCode::kInvalidArgument) << written.status().ToString();
}

}  // namespace
}  // namespace pwrcell::adapters::aws
