// The AWS client layer against moto_server: calls, answers and the error table.
#include "adapters/aws/aws_client.h"

#include <gtest/gtest.h>

#include "moto.h"

namespace pwrcell::adapters::aws {
namespace {

using aws_test::MotoOptions;
using aws_test::UniqueName;

TEST(AwsClient, CallsDynamoDbAndReadsTheAnswer) {
  AwsClient client(MotoOptions());
  const std::string table = UniqueName("client");
  auto created = client.Call(kDynamoDb, "CreateTable",
                             {{"TableName", table},
                              {"AttributeDefinitions", {{{"AttributeName", "pk"}, {"AttributeType", "S"}}}},
                              {"KeySchema", {{{"AttributeName", "pk"}, {"KeyType", "HASH"}}}},
                              {"BillingMode", "PAY_PER_REQUEST"}});
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto described = client.Call(kDynamoDb, "DescribeTable", {{"TableName", table}});
  ASSERT_TRUE(described.ok()) << described.status().ToString();
  EXPECT_EQ((*described)["Table"]["TableName"], table);
}

TEST(AwsClient, AMissingTableIsNotFoundWithItsAwsCode) {
  AwsClient client(MotoOptions());
  AwsError error;
  auto described = client.Call(kDynamoDb, "DescribeTable", {{"TableName", UniqueName("missing")}}, &error);
  ASSERT_FALSE(described.ok());
  EXPECT_EQ(described.status().code(), StatusCode::kNotFound) << described.status().ToString();
  EXPECT_EQ(error.code, "ResourceNotFoundException");
  EXPECT_NE(described.status().message().find("DescribeTable: ResourceNotFoundException (HTTP 400"), std::string::npos)
      << described.status().message();
}

TEST(AwsClient, AMissingSqsQueueIsNotFound) {
  AwsClient client(MotoOptions());
  AwsError error;
  auto url = client.Call(kSqs, "GetQueueUrl", {{"QueueName", UniqueName("missing")}}, &error);
  ASSERT_FALSE(url.ok());
  EXPECT_EQ(url.status().code(), StatusCode::kNotFound) << url.status().ToString();
}

TEST(AwsErrorTable, MapsAwsErrorsToStatusCodes) {
  const auto code = [](std::string_view aws_code, long http) {  // NOLINT(google-runtime-int)
    return AwsErrorStatus({http, std::string(aws_code), "m", "r"}, "Op").code();
  };
  EXPECT_EQ(code("ProvisionedThroughputExceededException", 400), StatusCode::kResourceExhausted);
  EXPECT_EQ(code("ThrottlingException", 400), StatusCode::kResourceExhausted);
  EXPECT_EQ(code("InternalServerError", 500), StatusCode::kUnavailable);
  EXPECT_EQ(code("SomethingNew", 503), StatusCode::kUnavailable);
  EXPECT_EQ(code("ConditionalCheckFailedException", 400), StatusCode::kAborted);
  EXPECT_EQ(code("InvalidSignatureException", 400), StatusCode::kUnauthenticated);
  EXPECT_EQ(code("UnrecognizedClientException", 400), StatusCode::kUnauthenticated);
  EXPECT_EQ(code("AccessDeniedException", 400), StatusCode::kPermissionDenied);
  EXPECT_EQ(code("ValidationException", 400), StatusCode::kInvalidArgument);
  EXPECT_EQ(code("", 403), StatusCode::kPermissionDenied);
  const Status status = AwsErrorStatus({400, "ValidationException", "bad key", "req-1"}, "PutItem");
  EXPECT_EQ(status.message(), "PutItem: ValidationException (HTTP 400, request id req-1): bad key");
}

TEST(AwsOptions, ReadsTheStandardEnvironment) {
  const std::map<std::string, std::string> env = {{"AWS_ACCESS_KEY_ID", "AKID"},
                                                  {"AWS_SECRET_ACCESS_KEY", "SECRET"},
                                                  {"AWS_SESSION_TOKEN", "TOKEN"},
                                                  {"AWS_DEFAULT_REGION", "eu-west-1"},
                                                  {"AWS_ENDPOINT_URL", "http://127.0.0.1:4566/"},
                                                  {"AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9324"}};
  auto options = AwsOptions::FromEnvironment([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->region, "eu-west-1");
  EXPECT_EQ(options->credentials.session_token, "TOKEN");
  EXPECT_EQ(options->Endpoint(kDynamoDb), "http://127.0.0.1:4566");
  EXPECT_EQ(options->Endpoint(kSqs), "http://127.0.0.1:9324");
}

TEST(AwsOptions, WithoutEndpointsCallsTheRegionalOne) {
  AwsOptions options;
  options.region = "eu-west-1";
  EXPECT_EQ(options.Endpoint(kKinesis), "https://kinesis.eu-west-1.amazonaws.com");
}

TEST(AwsOptions, NamesWhatIsMissing) {
  auto options = AwsOptions::FromEnvironment(
      [](const char* name) -> const char* { return std::string_view(name) == "AWS_ACCESS_KEY_ID" ? "AKID" : nullptr; });
  ASSERT_FALSE(options.ok());
  EXPECT_EQ(options.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(options.status().message().find("AWS_SECRET_ACCESS_KEY"), std::string::npos);
}

}  // namespace
}  // namespace pwrcell::adapters::aws
