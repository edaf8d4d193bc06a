// RetryingCaller's state machine against a scripted transport (no network, no sleeping): what is
// retried and how long it waits, Retry-After, the credentials-renewal hook, what is counted, and
// that no secret survives in a message.
#include <curl/curl.h>
#include <netinet/in.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <sstream>
#include <optional>
#include <string>
#include <vector>

#include "adapters/http/retrying_caller.h"
#include "adapters/memory/clocks.h"

namespace pwrcell::adapters {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;

HttpExchange Answer(long status, std::string body = "", std::map<std::string, std::string> headers = {}) {  // NOLINT
  HttpExchange exchange;
  exchange.response.status = status;
  exchange.response.body = std::move(body);
  exchange.response.headers = std::move(headers);
  return exchange;
}

HttpExchange Failure(int curl_code, std::string error) {
  HttpExchange exchange;
  exchange.curl_code = curl_code;
  exchange.error = std::move(error);
  return exchange;
}

class RetryingCallerTest : public ::testing::Test {
 protected:
  RetryingCallerTest() : counters_{{&metrics_, "test_requests_total", "attempts", {"operation", "outcome"}},
                                   {&metrics_, "test_retries_total", "retries", {"operation"}}} {}

  RetryingCaller& Caller(int max_retries = 3) {
    RetryingCallerOptions options;
    options.service = "Svc";
    options.max_retries = max_retries;
    options.backoff.initial = milliseconds(100);
    options.backoff.max_delay = milliseconds(1000);
    options.backoff.jitter = 0;
    options.backoff.max_retry_after = std::chrono::seconds(30);
    options.backoff_sleep = [this](Duration d) { slept_.push_back(d); };
    options.transport = [this](const HttpRequest& request) {
      sent_.push_back(request);
      if (script_.empty()) return Answer(200, "unscripted");
      HttpExchange next = std::move(script_.front());
      script_.pop_front();
      return next;
    };
    caller_.emplace(std::move(options), clock_, counters_);
    return *caller_;
  }

  CallSpec Spec(std::string operation = "Op") {
    CallSpec spec;
    spec.operation = std::move(operation);
    spec.build = [this]() -> Result<HttpRequest> {
      HttpRequest request;
      request.url = "http://svc.test/x";
      request.headers = {{"x-api-key", key_}};
      return request;
    };
    return spec;
  }

  double Attempts(const std::string& outcome, const std::string& operation = "Op") const {
    return counters_.requests.Value({operation, outcome});
  }
  double Retries(const std::string& operation = "Op") const { return counters_.retries.Value({operation}); }

  Metrics metrics_;
  CallCounters counters_;
  FakeClock clock_{FromUnixMillis(1'784'000'000'000)};
  std::deque<HttpExchange> script_;
  std::vector<HttpRequest> sent_;
  std::vector<Duration> slept_;
  std::string key_ = "key-one-0001";
  std::optional<RetryingCaller> caller_;
};

TEST_F(RetryingCallerTest, SuccessIsReturnedAndCountedOnce) {
  script_ = {Answer(200, "hello")};
  auto answer = Caller().Call(Spec());
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(answer->body, "hello");
  EXPECT_EQ(sent_.size(), 1U);
  EXPECT_EQ(Attempts("ok"), 1);
  EXPECT_EQ(Retries(), 0);
  EXPECT_TRUE(slept_.empty());
}

TEST_F(RetryingCallerTest, TransientFailuresAreRetriedWithExponentialBackoff) {
  script_ = {Answer(503), Failure(CURLE_OPERATION_TIMEDOUT, "GET http://svc.test/x: timed out"),
             Failure(CURLE_COULDNT_CONNECT, "GET http://svc.test/x: refused"), Answer(200, "late")};
  auto answer = Caller().Call(Spec());
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(answer->body, "late");
  EXPECT_EQ(slept_, (std::vector<Duration>{milliseconds(100), milliseconds(200), milliseconds(400)}));
  EXPECT_EQ(Attempts("http_5xx"), 1);
  EXPECT_EQ(Attempts("timeout"), 1);
  EXPECT_EQ(Attempts("transport_error"), 1);
  EXPECT_EQ(Attempts("ok"), 1);
  EXPECT_EQ(Retries(), 3);
}

TEST_F(RetryingCallerTest, GivesUpAfterMaxRetriesWithTheLastTransientStatus) {
  script_ = {Answer(502), Answer(502), Answer(503, R"({"error": "down"})")};
  CallSpec spec = Spec();
  spec.judge = [](const HttpResponse& response, const ExchangeClass& table) {
    return VerdictFromTable(response, table, response.body.empty() ? "" : "down");
  };
  auto answer = Caller(2).Call(spec);
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(answer.status().message(), "after 2 retries: Svc Op: HTTP 503 (down)");
  EXPECT_EQ(sent_.size(), 3U);
  EXPECT_EQ(Retries(), 2);
}

TEST_F(RetryingCallerTest, RetryAfterIsAFloorAndATooLongOneIsNotWaitedFor) {
  script_ = {Answer(429, "", {{"retry-after", "2"}}), Answer(503, "", {{"retry-after", "1"}}), Answer(200)};
  ASSERT_TRUE(Caller().Call(Spec()).ok());
  // 2 s instead of 100 ms; 1 s instead of 200 ms: Retry-After on any retryable answer counts.
  EXPECT_EQ(slept_, (std::vector<Duration>{milliseconds(2000), milliseconds(1000)}));
  EXPECT_EQ(Attempts("rate_limited"), 1);

  slept_.clear();
  sent_.clear();
  script_ = {Answer(429, "", {{"retry-after", "31"}})};
  auto refused = Caller().Call(Spec());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);  // the queue redelivers later
  EXPECT_EQ(sent_.size(), 1U);
  EXPECT_TRUE(slept_.empty());
}

TEST_F(RetryingCallerTest, PermanentFailuresAreReturnedAtOnce) {
  for (long status : {400L, 403L, 404L, 405L, 409L, 301L}) {  // NOLINT(google-runtime-int)
    sent_.clear();
    script_ = {Answer(status)};
    auto answer = Caller().Call(Spec());
    ASSERT_FALSE(answer.ok()) << status;
    EXPECT_FALSE(answer.status().IsRetryable()) << answer.status().ToString();
    EXPECT_THAT(answer.status().message(), HasSubstr("Svc Op: HTTP " + std::to_string(status)));
    EXPECT_EQ(sent_.size(), 1U) << status;
  }
  EXPECT_EQ(Retries(), 0);
  EXPECT_TRUE(slept_.empty());
}

TEST_F(RetryingCallerTest, AJudgeRefinesTheTableAndItsOutcomeIsCounted) {
  script_ = {Answer(200, "not what we expected")};
  CallSpec spec = Spec();
  spec.judge = [](const HttpResponse&, const ExchangeClass& table) {
    EXPECT_EQ(table.code, StatusCode::kOk);
    return Verdict{InternalError("answer without data"), "invalid_response", false};
  };
  auto answer = Caller().Call(spec);
  EXPECT_EQ(answer.status().code(), StatusCode::kInternal);
  EXPECT_EQ(answer.status().message(), "Svc Op: answer without data");
  EXPECT_EQ(Attempts("invalid_response"), 1);
}

TEST_F(RetryingCallerTest, RejectedCredentialsAreRenewedOnceAndThatIsNotARetry) {
  script_ = {Answer(401), Answer(200, "welcome")};
  CallSpec spec = Spec();
  int renewals = 0;
  spec.renew_credentials = [&]() -> Result<bool> {
    ++renewals;
    key_ = "key-two-0002";
    return true;
  };
  spec.credentials = "the key of secret 'S'";
  auto answer = Caller().Call(spec);
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(renewals, 1);
  ASSERT_EQ(sent_.size(), 2U);
  EXPECT_EQ(sent_[1].headers[0].second, "key-two-0002");  // rebuilt with the renewed key
  EXPECT_EQ(Attempts("unauthorized"), 1);
  EXPECT_EQ(Retries(), 0);
  EXPECT_TRUE(slept_.empty());
}

TEST_F(RetryingCallerTest, RejectedAgainAfterRenewalIsUnauthenticatedNamingTheCredentials) {
  script_ = {Answer(401), Answer(401), Answer(200)};
  CallSpec spec = Spec();
  int renewals = 0;
  spec.renew_credentials = [&]() -> Result<bool> { return ++renewals > 0; };
  spec.credentials = "the key of secret 'S'";
  auto answer = Caller().Call(spec);
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(answer.status().message(), "Svc Op: the key of secret 'S' was rejected again after renewing it (HTTP 401)");
  EXPECT_EQ(renewals, 1);
  EXPECT_EQ(sent_.size(), 2U);
}

TEST_F(RetryingCallerTest, NothingNewToTryOrNoHookMakesTheFirstRejectionFinal) {
  script_ = {Answer(401)};
  CallSpec spec = Spec();
  spec.renew_credentials = []() -> Result<bool> { return false; };
  spec.credentials = "the key of secret 'S'";
  auto answer = Caller().Call(spec);
  EXPECT_EQ(answer.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(answer.status().message(), "Svc Op: the key of secret 'S' was rejected (HTTP 401)");
  EXPECT_EQ(sent_.size(), 1U);

  script_ = {Answer(401)};
  auto without_hook = Caller().Call(Spec());
  EXPECT_EQ(without_hook.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(without_hook.status().message(), "Svc Op: HTTP 401");

  // A renewal that fails ends the call with its error.
  script_ = {Answer(401)};
  spec.renew_credentials = []() -> Result<bool> { return UnavailableError("secret store down"); };
  EXPECT_EQ(Caller().Call(spec).status().code(), StatusCode::kUnavailable);
}

TEST_F(RetryingCallerTest, ABuildErrorEndsTheCallWithoutARequest) {
  CallSpec spec = Spec();
  spec.build = []() -> Result<HttpRequest> { return FailedPreconditionError("secret 'S' has no api_key"); };
  auto answer = Caller().Call(spec);
  EXPECT_EQ(answer.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(sent_.empty());
  EXPECT_EQ(metrics_.Sum("test_requests_total"), 0);
}

TEST_F(RetryingCallerTest, RememberedSecretsNeverReachAMessage) {
  RetryingCaller& caller = Caller(1);
  caller.Remember(key_);
  caller.Remember("p4ssw0rd-secret");
  script_ = {Answer(503), Answer(400, "you sent key-one-0001 and p4ssw0rd-secret")};
  CallSpec spec = Spec();
  spec.judge = [](const HttpResponse& response, const ExchangeClass& table) {
    return VerdictFromTable(response, table, response.body);  // a server echoing what it got
  };
  auto answer = caller.Call(spec);
  ASSERT_FALSE(answer.ok());
  EXPECT_THAT(answer.status().message(), Not(HasSubstr("key-one-0001")));
  EXPECT_THAT(answer.status().message(), Not(HasSubstr("p4ssw0rd-secret")));
  EXPECT_THAT(answer.status().message(), HasSubstr("you sent *** and ***"));

  script_ = {Failure(CURLE_COULDNT_CONNECT, "GET http://svc.test/?k=p4ssw0rd-secret: refused")};
  auto transport = caller.Call(Spec());
  EXPECT_THAT(transport.status().message(), Not(HasSubstr("p4ssw0rd-secret")));
}

// A root URL may carry a password ("http://user:pass@host"): the real HttpClient's error names the
// URL, and every retry warning and the final Status show it as "user:***@".
TEST(RetryingCallerUrlPassword, RetryWarningsAndTheStatusHideIt) {
  // A bound socket that never listens: connecting to it is refused, and no one else gets the port.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string url = "http://operator:Url-Pa55word@127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/x";

  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));

  Metrics metrics;
  CallCounters counters{{&metrics, "test_requests_total", "attempts", {"operation", "outcome"}},
                        {&metrics, "test_retries_total", "retries", {"operation"}}};
  FakeClock clock{FromUnixMillis(1'784'000'000'000)};
  RetryingCallerOptions options;
  options.service = "Svc";
  options.max_retries = 2;
  options.backoff.jitter = 0;
  options.backoff_sleep = [](Duration) {};
  RetryingCaller caller(std::move(options), clock, counters);
  CallSpec spec;
  spec.operation = "Op";
  spec.build = [&url]() -> Result<HttpRequest> {
    HttpRequest request;
    request.url = url;
    request.timeout = std::chrono::seconds(5);
    return request;
  };
  auto answer = caller.Call(spec);
  spdlog::set_default_logger(previous);
  ::close(fd);

  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(counters.retries.Value({"Op"}), 2);
  EXPECT_THAT(answer.status().message(), HasSubstr("http://operator:***@127.0.0.1:"));
  EXPECT_THAT(answer.status().message(), Not(HasSubstr("Url-Pa55word")));
  EXPECT_THAT(log.str(), HasSubstr("retry 1/2"));
  EXPECT_THAT(log.str(), HasSubstr("http://operator:***@127.0.0.1:"));
  EXPECT_THAT(log.str(), Not(HasSubstr("Url-Pa55word")));
}

}  // namespace
}  // namespace pwrcell::adapters
