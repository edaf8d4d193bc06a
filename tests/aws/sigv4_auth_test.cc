// What the adapter really sends is signed completely, and a request signed with a wrong secret key
// is refused and said so clearly. Two independent verifiers:
//   - the test's own (sigv4_verifier.h, itself checked against the public SigV4 test suite in
//     sigv4_vectors_test.cc) behind a local capture server that answers as AWS's JSON-protocol
//     services do: 400 {"__type": "...#InvalidSignatureException", "message": ...};
//   - moto_server with its IAM authentication on (INITIAL_NO_AUTH_ACTION_COUNT, moto's server-mode
//     setting: the first N actions are not checked, every later one is, with botocore's signer).
//     moto needs the access key to exist in its IAM backend, so the test's own server (not the
//     shared one: the setting is process-wide) is started with N = the setup actions, which create
//     a user, its access key, a role and the role's temporary credentials. moto answers an auth
//     failure with 403 and a query-protocol XML error (SignatureDoesNotMatch, InvalidClientTokenId)
//     where AWS's JSON services answer JSON (InvalidSignatureException, UnrecognizedClientException);
//     the client reads both.
#include <gtest/gtest.h>
#include <stdlib.h>  // mkdtemp

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "adapters/aws/aws_client.h"
#include "adapters/http/http_client.h"
#include "capture_server.h"
#include "moto.h"
#include "sigv4_verifier.h"

namespace pwrcell::aws_test {
namespace {

using adapters::aws::AwsClient;
using adapters::aws::AwsError;
using adapters::aws::AwsOptions;
using adapters::aws::AwsService;
using adapters::aws::kDynamoDb;
using adapters::aws::kKinesis;
using adapters::aws::kSecretsManager;
using adapters::aws::kSqs;

constexpr std::string_view kAccessKeyId = "AKIDVERIFIER0000001";
constexpr std::string_view kSecret = "verifier/Secret+Key0123456789abcdefghij";
constexpr std::string_view kWrongSecret = "WRONG/secret+key0123456789abcdefghijkl";
constexpr std::string_view kSessionToken = "FwoGZXIvYXdzEJr//////////wEaDEXAMPLEtoken/with+slashes==";

// The AWS stand-in of these tests: verifies each request with the one key it knows and answers as
// DynamoDB does (a JSON error with the x-amzn-RequestId header).
CaptureServer::Responder AnswerLikeAws(const std::string& service) {
  return [service](const CapturedRequest& request) {
    const SigV4Verdict verdict =
        VerifySigV4(request, {std::string(kAccessKeyId), std::string(kSecret), "eu-west-1", service});
    if (verdict.ok) return CannedResponse{200, {{"x-amzn-RequestId", "verifier-ok"}}, "{}"};
    const nlohmann::json body = {{"__type", "com.amazon.coral.service#" + verdict.error_code},
                                 {"message", verdict.message}};
    return CannedResponse{400,
                          {{"x-amzn-RequestId", "verifier-refused-42"}, {"Content-Type", "application/x-amz-json-1.0"}},
                          body.dump()};
  };
}

AwsOptions OptionsFor(const std::string& endpoint, std::string_view secret, std::string_view token) {
  AwsOptions options;
  options.region = "eu-west-1";
  options.credentials = {std::string(kAccessKeyId), std::string(secret), std::string(token)};
  for (const AwsService* service : {&kDynamoDb, &kSqs, &kSecretsManager, &kKinesis}) {
    options.endpoints[std::string(service->signing_name)] = endpoint;
  }
  options.max_attempts = 3;  // a refused signature must not be retried: the tests count the requests
  options.timeout = std::chrono::seconds(10);
  return options;
}

struct ServiceCall {
  const AwsService* service;
  std::string_view operation;
  nlohmann::json request;
  std::string_view signed_headers;  // what the adapter's requests must sign, exactly
};

const ServiceCall kCalls[] = {
    {&kDynamoDb,
     "PutItem",
     {{"TableName", "devices"}, {"Item", {{"pk", {{"S", "device#1 with  spaces"}}}}}},
     "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"},
    {&kSqs,
     "SendMessage",
     {{"QueueUrl", "http://127.0.0.1/000000000000/q"}, {"MessageBody", "{\"a\": \"b\"}"}},
     "content-type;host;x-amz-date;x-amz-security-token;x-amz-target;x-amzn-query-mode"},
    {&kSecretsManager,
     "GetSecretValue",
     {{"SecretId", "ConcertoCredentials"}},
     "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"},
    {&kKinesis,
     "PutRecord",
     {{"StreamName", "telemetry"}, {"PartitionKey", "s1"}, {"Data", "eyJhIjoxfQ=="}},
     "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"},
};

// Every call of every service, with a session token, verifies; the signature covers the body, the
// operation (X-Amz-Target), the content type, the host and the token; libcurl's "Expect:" removal
// line is neither sent nor signed; one X-Amz-Date.
TEST(AdapterSigV4, RequestsAreSignedCompletelyAndVerify) {
  for (const ServiceCall& call : kCalls) {
    SCOPED_TRACE(std::string(call.operation));
    const std::string service(call.service->signing_name);
    CaptureServer server(AnswerLikeAws(service));
    AwsClient client(OptionsFor(server.url(), kSecret, kSessionToken));
    auto answer = client.Call(*call.service, call.operation, call.request);
    ASSERT_TRUE(answer.ok()) << answer.status().ToString();
    const auto requests = server.requests();
    ASSERT_EQ(requests.size(), 1u);
    const CapturedRequest& sent = requests.front();
    const SigV4Verdict verdict =
        VerifySigV4(sent, {std::string(kAccessKeyId), std::string(kSecret), "eu-west-1", service});
    EXPECT_TRUE(verdict.ok) << verdict.error_code << ": " << verdict.message << "\n" << sent.raw;
    EXPECT_EQ(sigv4_detail::AuthorizationPart(*sent.Header("Authorization"), "SignedHeaders"), call.signed_headers);
    EXPECT_EQ(sent.Header("X-Amz-Security-Token"), std::string(kSessionToken));
    EXPECT_TRUE(sent.Values("Expect").empty()) << sent.raw;
    EXPECT_EQ(sent.Values("X-Amz-Date").size(), 1u) << sent.raw;
    EXPECT_EQ(sent.method, "POST");
    EXPECT_EQ(sent.target, "/");
  }
}

TEST(AdapterSigV4, WithoutASessionTokenNoTokenIsSentOrSigned) {
  CaptureServer server(AnswerLikeAws("dynamodb"));
  AwsClient client(OptionsFor(server.url(), kSecret, ""));
  auto answer = client.Call(kDynamoDb, "ListTables", nlohmann::json::object());
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  const CapturedRequest sent = server.requests().at(0);
  EXPECT_EQ(sigv4_detail::AuthorizationPart(*sent.Header("Authorization"), "SignedHeaders"),
            "content-type;host;x-amz-date;x-amz-target");
  EXPECT_TRUE(sent.Values("X-Amz-Security-Token").empty());
}

// A body over libcurl's 1 MiB threshold: libcurl adds its own "Expect: 100-continue", which it
// does not sign (it signs only the headers it is given; AWS's SDKs never sign Expect either), and
// the signature still verifies. HttpClient sends the body without waiting for "100 Continue".
TEST(AdapterSigV4, ALargeBodyIsSignedAndItsExpectHeaderIsNot) {
  CaptureServer server(AnswerLikeAws("dynamodb"));
  AwsClient client(OptionsFor(server.url(), kSecret, kSessionToken));
  const std::string big(1536 * 1024, 'x');
  auto answer = client.Call(kDynamoDb, "PutItem", {{"TableName", "devices"}, {"Item", {{"pk", {{"S", big}}}}}});
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  const CapturedRequest sent = server.requests().at(0);
  EXPECT_GT(sent.body.size(), big.size());
  const SigV4Verdict verdict =
      VerifySigV4(sent, {std::string(kAccessKeyId), std::string(kSecret), "eu-west-1", "dynamodb"});
  EXPECT_TRUE(verdict.ok) << verdict.error_code << ": " << verdict.message;
  EXPECT_EQ(sent.Header("Expect"), "100-continue") << "libcurl no longer adds Expect to a large body";
  EXPECT_EQ(sigv4_detail::AuthorizationPart(*sent.Header("Authorization"), "SignedHeaders").find("expect"),
            std::string::npos);
}

// The message of a refused call: the operation, AWS's code, the HTTP status, the request id and
// AWS's explanation; never a secret or the token.
void ExpectAClearRefusal(const Status& status, std::string_view operation, std::string_view code,
                         std::string_view request_id, std::string_view secret) {
  EXPECT_EQ(status.code(), StatusCode::kUnauthenticated) << status.ToString();
  EXPECT_FALSE(status.IsRetryable());
  const std::string& message = status.message();
  EXPECT_EQ(message.rfind(std::string(operation) + ": " + std::string(code) + " (HTTP ", 0), 0u) << message;
  EXPECT_NE(message.find(", request id " + std::string(request_id) + "): "), std::string::npos) << message;
  for (std::string_view hidden : {secret, kSecret, kWrongSecret, kSessionToken}) {
    if (!hidden.empty()) {
      EXPECT_EQ(message.find(hidden), std::string::npos) << message;
    }
  }
}

TEST(AdapterSigV4, AWrongSecretKeyIsRefusedAndSaidClearly) {
  for (const ServiceCall& call : kCalls) {
    SCOPED_TRACE(std::string(call.operation));
    CaptureServer server(AnswerLikeAws(std::string(call.service->signing_name)));
    AwsClient client(OptionsFor(server.url(), kWrongSecret, kSessionToken));
    AwsError error;
    auto answer = client.Call(*call.service, call.operation, call.request, &error);
    ASSERT_FALSE(answer.ok());
    ExpectAClearRefusal(answer.status(), call.operation, "InvalidSignatureException", "verifier-refused-42", "");
    EXPECT_NE(answer.status().message().find("The request signature we calculated does not match"), std::string::npos)
        << answer.status().message();
    EXPECT_EQ(error.code, "InvalidSignatureException");
    EXPECT_EQ(error.http_status, 400);
    EXPECT_EQ(server.requests().size(), 1u) << "a refused signature was retried";
  }
}

TEST(AdapterSigV4, AnUnknownAccessKeyIsRefusedAndSaidClearly) {
  CaptureServer server(AnswerLikeAws("dynamodb"));
  AwsOptions options = OptionsFor(server.url(), kSecret, "");
  options.credentials.access_key_id = "AKIDSOMEONEELSE00000";
  AwsClient client(options);
  auto answer = client.Call(kDynamoDb, "ListTables", nlohmann::json::object());
  ASSERT_FALSE(answer.ok());
  ExpectAClearRefusal(answer.status(), "ListTables", "UnrecognizedClientException", "verifier-refused-42", "");
}

// ---- moto_server with its authentication on ----

// The text of the first <tag>...</tag> of an XML answer ("" if none).
std::string XmlText(const std::string& xml, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::size_t start = xml.find(open);
  if (start == std::string::npos) return {};
  const std::size_t end = xml.find("</" + std::string(tag) + ">", start);
  return end == std::string::npos ? std::string() : xml.substr(start + open.size(), end - start - open.size());
}

struct MotoCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
};

// A moto_server of this test's own with INITIAL_NO_AUTH_ACTION_COUNT = the setup actions below:
// everything after them is authenticated. Started once for the suite, stopped after it.
class MotoWithAuth : public testing::Test {
 protected:
  static constexpr int kSetupActions = 6;

  static void SetUpTestSuite() {
    std::string pattern = (std::filesystem::temp_directory_path() / "pwrcell-moto-auth-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = new std::string(pattern);
    const std::string command = "INITIAL_NO_AUTH_ACTION_COUNT=" + std::to_string(kSetupActions) +
                                " python3 " PWRCELL_SOURCE_DIR "/tests/aws/moto_fixture.py start '" + *dir_ +
                                "' >/dev/null";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;  // NOLINT(concurrency-mt-unsafe,cert-env33-c)
    std::ifstream in(std::filesystem::path(*dir_) / "endpoint");
    endpoint_ = new std::string;
    std::getline(in, *endpoint_);
    ASSERT_FALSE(endpoint_->empty());

    // The setup actions (kSetupActions of them), unauthenticated: a user with an allow-all policy
    // and an access key; a role with the same policy, and temporary credentials for it.
    const std::string policy =
        R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]})";
    const std::string trust =
        R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]})";
    const std::string user = UniqueName("sigv4-user");
    const std::string role = UniqueName("sigv4-role");
    Query("iam", "Action=CreateUser&Version=2010-05-08&UserName=" + user);
    Query("iam", "Action=PutUserPolicy&Version=2010-05-08&UserName=" + user +
                     "&PolicyName=all&PolicyDocument=" + adapters::UrlEncode(policy));
    const std::string key = Query("iam", "Action=CreateAccessKey&Version=2010-05-08&UserName=" + user);
    user_ = new MotoCredentials{XmlText(key, "AccessKeyId"), XmlText(key, "SecretAccessKey"), ""};
    const std::string created_role = Query("iam", "Action=CreateRole&Version=2010-05-08&RoleName=" + role +
                                                      "&AssumeRolePolicyDocument=" + adapters::UrlEncode(trust));
    Query("iam", "Action=PutRolePolicy&Version=2010-05-08&RoleName=" + role +
                     "&PolicyName=all&PolicyDocument=" + adapters::UrlEncode(policy));
    const std::string assumed = Query("sts", "Action=AssumeRole&Version=2011-06-15&RoleSessionName=sigv4&RoleArn=" +
                                                 adapters::UrlEncode(XmlText(created_role, "Arn")));
    role_ = new MotoCredentials{XmlText(assumed, "AccessKeyId"), XmlText(assumed, "SecretAccessKey"),
                                XmlText(assumed, "SessionToken")};
    ASSERT_FALSE(user_->access_key_id.empty()) << key;
    ASSERT_FALSE(user_->secret_access_key.empty()) << key;
    ASSERT_FALSE(role_->session_token.empty()) << assumed;
  }

  static void TearDownTestSuite() {
    if (dir_ != nullptr) {
      const std::string command = "python3 " PWRCELL_SOURCE_DIR "/tests/aws/moto_fixture.py stop '" + *dir_ + "'";
      (void)std::system(command.c_str());  // NOLINT(concurrency-mt-unsafe,cert-env33-c)
      std::error_code ignored;
      std::filesystem::remove_all(*dir_, ignored);
    }
    delete dir_;
    delete endpoint_;
    delete user_;
    delete role_;
    dir_ = endpoint_ = nullptr;
    user_ = role_ = nullptr;
  }

  // One IAM/STS query-protocol action (form-encoded POST, XML answer); the answer's body.
  static std::string Query(const std::string& service, const std::string& form) {
    adapters::HttpClient http;
    adapters::HttpRequest request;
    request.method = adapters::HttpMethod::kPost;
    request.url = *endpoint_ + "/";
    request.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
    request.body = form;
    request.sigv4 = adapters::AwsSigV4{"us-east-1", service, "setup", "setup"};
    auto response = http.Send(request);
    EXPECT_TRUE(response.ok() && response->status == 200)
        << form << ": " << (response.ok() ? response->body : response.status().ToString());
    return response.ok() ? response->body : std::string();
  }

  static AwsClient ClientWith(const MotoCredentials& credentials) {
    AwsOptions options;
    options.region = "us-east-1";
    options.credentials = {credentials.access_key_id, credentials.secret_access_key, credentials.session_token};
    for (const AwsService* service : {&kDynamoDb, &kSqs, &kSecretsManager, &kKinesis}) {
      options.endpoints[std::string(service->signing_name)] = *endpoint_;
    }
    options.max_attempts = 2;
    options.timeout = std::chrono::seconds(30);
    return AwsClient(options);
  }

  static std::string* dir_;
  static std::string* endpoint_;
  static MotoCredentials* user_;
  static MotoCredentials* role_;
};
std::string* MotoWithAuth::dir_ = nullptr;
std::string* MotoWithAuth::endpoint_ = nullptr;
MotoCredentials* MotoWithAuth::user_ = nullptr;
MotoCredentials* MotoWithAuth::role_ = nullptr;

TEST_F(MotoWithAuth, TheRightKeyIsAcceptedByDynamoDbSqsAndSecretsManager) {
  AwsClient client = ClientWith(*user_);
  const std::string name = UniqueName("sigv4");
  auto tables = client.Call(kDynamoDb, "ListTables", nlohmann::json::object());
  ASSERT_TRUE(tables.ok()) << tables.status().ToString();
  auto queue = client.Call(kSqs, "CreateQueue", {{"QueueName", name}});
  ASSERT_TRUE(queue.ok()) << queue.status().ToString();
  auto secret = client.Call(kSecretsManager, "CreateSecret", {{"Name", name}, {"SecretString", "{\"k\":\"v\"}"}});
  ASSERT_TRUE(secret.ok()) << secret.status().ToString();
  auto value = client.Call(kSecretsManager, "GetSecretValue", {{"SecretId", name}});
  ASSERT_TRUE(value.ok()) << value.status().ToString();
  EXPECT_EQ((*value)["SecretString"], "{\"k\":\"v\"}");
}

TEST_F(MotoWithAuth, AWrongSecretKeyIsRefusedAndSaidClearly) {
  MotoCredentials wrong = *user_;
  wrong.secret_access_key = std::string(kWrongSecret);
  AwsClient client = ClientWith(wrong);
  struct Refused {
    const AwsService* service;
    std::string_view operation;
    nlohmann::json request;
  };
  for (const Refused& call : {Refused{&kDynamoDb, "ListTables", nlohmann::json::object()},
                              Refused{&kSqs, "ListQueues", nlohmann::json::object()},
                              Refused{&kSecretsManager, "ListSecrets", nlohmann::json::object()}}) {
    SCOPED_TRACE(std::string(call.operation));
    AwsError error;
    auto answer = client.Call(*call.service, call.operation, call.request, &error);
    ASSERT_FALSE(answer.ok());
    EXPECT_EQ(error.code, "SignatureDoesNotMatch");
    EXPECT_FALSE(error.request_id.empty());
    ExpectAClearRefusal(answer.status(), call.operation, "SignatureDoesNotMatch", error.request_id,
                        user_->secret_access_key);
    EXPECT_NE(answer.status().message().find("Check your AWS Secret Access Key"), std::string::npos)
        << answer.status().message();
  }
}

TEST_F(MotoWithAuth, AnUnknownAccessKeyIsRefusedAndSaidClearly) {
  MotoCredentials unknown = *user_;
  unknown.access_key_id = "AKIAUNKNOWNKEY000000";
  AwsClient client = ClientWith(unknown);
  AwsError error;
  auto answer = client.Call(kDynamoDb, "ListTables", nlohmann::json::object(), &error);
  ASSERT_FALSE(answer.ok());
  ExpectAClearRefusal(answer.status(), "ListTables", "InvalidClientTokenId", error.request_id,
                      user_->secret_access_key);
}

// Temporary credentials: the session token is sent and signed (moto recomputes the signature over
// the headers the request names, token included, and checks the token belongs to the key).
TEST_F(MotoWithAuth, TemporaryCredentialsWithTheirTokenAreAccepted) {
  AwsClient client = ClientWith(*role_);
  auto tables = client.Call(kDynamoDb, "ListTables", nlohmann::json::object());
  ASSERT_TRUE(tables.ok()) << tables.status().ToString();
  auto queues = client.Call(kSqs, "ListQueues", nlohmann::json::object());
  ASSERT_TRUE(queues.ok()) << queues.status().ToString();
}

TEST_F(MotoWithAuth, TemporaryCredentialsWithAWrongSecretOrTokenAreRefused) {
  MotoCredentials wrong_secret = *role_;
  wrong_secret.secret_access_key = std::string(kWrongSecret);
  AwsError error;
  auto answer = ClientWith(wrong_secret).Call(kDynamoDb, "ListTables", nlohmann::json::object(), &error);
  ASSERT_FALSE(answer.ok());
  ExpectAClearRefusal(answer.status(), "ListTables", "SignatureDoesNotMatch", error.request_id,
                      role_->secret_access_key);
  EXPECT_EQ(answer.status().message().find(role_->session_token), std::string::npos);

  MotoCredentials wrong_token = *role_;
  wrong_token.session_token = std::string(kSessionToken);
  answer = ClientWith(wrong_token).Call(kDynamoDb, "ListTables", nlohmann::json::object(), &error);
  ASSERT_FALSE(answer.ok());
  ExpectAClearRefusal(answer.status(), "ListTables", "InvalidClientTokenId", error.request_id,
                      role_->secret_access_key);
  EXPECT_EQ(answer.status().message().find(role_->session_token), std::string::npos);
}

// A body over 1 MiB (libcurl then adds its own, unsigned, Expect: 100-continue) still passes the
// signature check: whatever moto answers, it is not a signature error.
TEST_F(MotoWithAuth, ALargeBodyPassesTheSignatureCheck) {
  AwsClient client = ClientWith(*user_);
  const std::string name = UniqueName("sigv4-big");
  AwsError error;
  auto answer = client.Call(kSecretsManager, "CreateSecret",
                            {{"Name", name}, {"SecretString", std::string(1200 * 1024, 'x')}}, &error);
  EXPECT_NE(answer.status().code(), StatusCode::kUnauthenticated) << answer.status().ToString();
  EXPECT_NE(error.code, "SignatureDoesNotMatch");
  RecordProperty("moto_answer", answer.ok() ? std::string("ok") : answer.status().ToString());
}

}  // namespace
}  // namespace pwrcell::aws_test
