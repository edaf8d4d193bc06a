// The HTTP building blocks without a server: backoff, rate limiter, URL encoding, Retry-After,
// the status table and the secret redactor.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "adapters/http/backoff.h"
#include "adapters/http/http_client.h"
#include "adapters/http/rate_limiter.h"
#include "adapters/http/secret_redactor.h"
#include "adapters/http/status_table.h"

namespace pwrcell::adapters {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, GrowsExponentiallyUpToTheCapWithJitterBelowTheBase) {
  BackoffPolicy policy;
  policy.initial = milliseconds(100);
  policy.max_delay = milliseconds(1000);
  policy.multiplier = 2;
  policy.jitter = 0.5;
  double r = 0.0;
  Backoff backoff(policy, [&] { return r; });
  EXPECT_EQ(backoff.Delay(1), milliseconds(100));
  EXPECT_EQ(backoff.Delay(2), milliseconds(200));
  EXPECT_EQ(backoff.Delay(3), milliseconds(400));
  EXPECT_EQ(backoff.Delay(5), milliseconds(1000));  // 1600 capped
  r = 0.5;
  EXPECT_EQ(backoff.Delay(1), milliseconds(75));   // 100 * (1 - 0.5 * 0.5)
  EXPECT_EQ(backoff.Delay(4), milliseconds(600));  // 800 * 0.75
  r = 0.999999;
  EXPECT_EQ(backoff.Delay(2), milliseconds(100));  // never below half the base
}

TEST(Backoff, RetryAfterIsAFloorAndTooLongIsReported) {
  BackoffPolicy policy;
  policy.initial = milliseconds(100);
  policy.max_retry_after = std::chrono::seconds(5);
  Backoff backoff(policy, [] { return 0.0; });
  EXPECT_EQ(backoff.Delay(1, milliseconds(1000)), milliseconds(1000));
  EXPECT_EQ(backoff.Delay(1, milliseconds(10)), milliseconds(100));
  EXPECT_FALSE(backoff.TooLong(std::chrono::seconds(5)));
  EXPECT_TRUE(backoff.TooLong(std::chrono::seconds(6)));
  EXPECT_FALSE(backoff.TooLong(std::nullopt));
}

TEST(Backoff, WaitUsesTheInjectedSleep) {
  std::vector<Duration> slept;
  BackoffPolicy policy;
  policy.initial = milliseconds(40);
  policy.jitter = 0;
  Backoff backoff(policy, {}, [&](Duration d) { slept.push_back(d); });
  EXPECT_EQ(backoff.Wait(1), milliseconds(40));
  EXPECT_EQ(backoff.Wait(2, milliseconds(500)), milliseconds(500));
  EXPECT_EQ(slept, (std::vector<Duration>{milliseconds(40), milliseconds(500)}));
}

TEST(RateLimiter, SpacesRequestsAtTheRateAfterTheBurst) {
  using Clock = RateLimiter::SteadyClock;
  Clock::time_point now{};
  std::vector<Clock::duration> slept;
  RateLimiter limiter(
      10, 3, [&] { return now; }, [&](Clock::duration d) { slept.push_back(d); });
  // A burst of 3 goes at once; the 4th waits one interval (100 ms), the 5th two.
  EXPECT_EQ(limiter.Reserve(), Clock::duration::zero());
  EXPECT_EQ(limiter.Reserve(), Clock::duration::zero());
  EXPECT_EQ(limiter.Reserve(), Clock::duration::zero());
  EXPECT_EQ(std::chrono::duration_cast<milliseconds>(limiter.Reserve()), milliseconds(100));
  EXPECT_EQ(std::chrono::duration_cast<milliseconds>(limiter.Reserve()), milliseconds(200));
  // After a long idle time the bucket is full again.
  now += std::chrono::seconds(10);
  EXPECT_EQ(limiter.Reserve(), Clock::duration::zero());
  limiter.Acquire();
  limiter.Acquire();
  limiter.Acquire();
  ASSERT_EQ(slept.size(), 1U);
  EXPECT_EQ(std::chrono::duration_cast<milliseconds>(slept[0]), milliseconds(100));
}

TEST(RateLimiter, UnlimitedNeverWaits) {
  RateLimiter limiter(0);
  EXPECT_TRUE(limiter.unlimited());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(limiter.Reserve(), RateLimiter::SteadyClock::duration::zero());
}

TEST(RateLimiter, HoldsTheRateAcrossThreads) {
  RateLimiter limiter(50);  // 20 ms apart, burst 1
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 6; ++i) limiter.Acquire();
    });
  }
  for (auto& thread : threads) thread.join();
  // 24 tokens: the first is free, 23 intervals of 20 ms follow.
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(455));
}

TEST(UrlEncode, KeepsUnreservedAndEncodesTheRest) {
  EXPECT_EQ(UrlEncode("abc-XYZ_0.9~"), "abc-XYZ_0.9~");
  EXPECT_EQ(UrlEncode("a b/c,d+e&f=g?h%"), "a%20b%2Fc%2Cd%2Be%26f%3Dg%3Fh%25");
  EXPECT_EQ(UrlEncode("\xc3\xa9"), "%C3%A9");
}

TEST(HttpResponse, ReadsRetryAfterSecondsAndDates) {
  HttpResponse response;
  const Timestamp now = FromUnixMillis(1'784'000'000'000);
  EXPECT_EQ(response.RetryAfter(now), std::nullopt);
  response.headers["retry-after"] = "2";
  EXPECT_EQ(response.RetryAfter(now), milliseconds(2000));
  EXPECT_EQ(response.Header("Retry-After"), "2");
  response.headers["retry-after"] = "0.5";
  EXPECT_EQ(response.RetryAfter(now), milliseconds(500));
  response.headers["retry-after"] = "soon";
  EXPECT_EQ(response.RetryAfter(now), std::nullopt);
  // 1784000000 s = Tue, 14 Jul 2026 03:33:20 GMT
  response.headers["retry-after"] = "Tue, 14 Jul 2026 03:33:23 GMT";
  EXPECT_EQ(response.RetryAfter(now), milliseconds(3000));
  response.headers["retry-after"] = "Tue, 14 Jul 2026 03:00:00 GMT";
  EXPECT_EQ(response.RetryAfter(now), milliseconds(0));
}

TEST(HttpClient, RefusedConnectionIsUnavailableAndTimeoutIsDeadlineExceeded) {
  HttpClient http;
  // Port 1 on loopback: nothing listens there.
  auto refused = http.Get("http://127.0.0.1:1/x", {}, milliseconds(2000));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("127.0.0.1:1/x"), std::string::npos);
  auto bad = http.Get("", {}, milliseconds(100));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  auto malformed = http.Get("http://[::1", {}, milliseconds(100));
  EXPECT_EQ(malformed.status().code(), StatusCode::kInvalidArgument) << malformed.status().ToString();
  auto no_timeout = http.Get("http://127.0.0.1:1/x", {}, milliseconds(0));
  EXPECT_EQ(no_timeout.status().code(), StatusCode::kInvalidArgument);
  // Exchange reports the same without judging it.
  const HttpExchange exchange = http.Exchange({HttpMethod::kGet, "http://127.0.0.1:1/x", {}, "", milliseconds(2000), std::nullopt});
  EXPECT_FALSE(exchange.answered());
  EXPECT_EQ(exchange.curl_code, CURLE_COULDNT_CONNECT);
  EXPECT_NE(exchange.error.find("GET http://127.0.0.1:1/x"), std::string::npos) << exchange.error;
}

// The whole table of status_table.h, row by row, including the edges of every range.
TEST(StatusTable, MapsEveryCurlResultAndHttpStatus) {
  struct Row {
    int curl;
    long http;  // NOLINT(google-runtime-int)
    StatusCode code;
    const char* outcome;
  };
  const std::vector<Row> rows = {
      {CURLE_OPERATION_TIMEDOUT, 0, StatusCode::kDeadlineExceeded, "timeout"},
      {CURLE_COULDNT_CONNECT, 0, StatusCode::kUnavailable, "transport_error"},
      {CURLE_COULDNT_RESOLVE_HOST, 0, StatusCode::kUnavailable, "transport_error"},
      {CURLE_SSL_CONNECT_ERROR, 0, StatusCode::kUnavailable, "transport_error"},
      {CURLE_RECV_ERROR, 0, StatusCode::kUnavailable, "transport_error"},
      {CURLE_GOT_NOTHING, 0, StatusCode::kUnavailable, "transport_error"},
      {CURLE_WRITE_ERROR, 0, StatusCode::kUnavailable, "transport_error"},  // body too large
      {CURLE_OUT_OF_MEMORY, 0, StatusCode::kUnavailable, "transport_error"},
      {CURLE_URL_MALFORMAT, 0, StatusCode::kInvalidArgument, "transport_error"},
      {CURLE_UNSUPPORTED_PROTOCOL, 0, StatusCode::kInvalidArgument, "transport_error"},
      {CURLE_BAD_FUNCTION_ARGUMENT, 0, StatusCode::kInvalidArgument, "transport_error"},
      // A failed transfer is judged by the curl code alone, whatever status curl saw.
      {CURLE_OPERATION_TIMEDOUT, 200, StatusCode::kDeadlineExceeded, "timeout"},
      {CURLE_OK, 200, StatusCode::kOk, "ok"},
      {CURLE_OK, 204, StatusCode::kOk, "ok"},
      {CURLE_OK, 299, StatusCode::kOk, "ok"},
      {CURLE_OK, 100, StatusCode::kFailedPrecondition, "http_4xx"},
      {CURLE_OK, 301, StatusCode::kFailedPrecondition, "http_4xx"},
      {CURLE_OK, 307, StatusCode::kFailedPrecondition, "http_4xx"},
      {CURLE_OK, 400, StatusCode::kInvalidArgument, "http_4xx"},
      {CURLE_OK, 401, StatusCode::kUnauthenticated, "unauthorized"},
      {CURLE_OK, 402, StatusCode::kInvalidArgument, "http_4xx"},
      {CURLE_OK, 403, StatusCode::kPermissionDenied, "http_4xx"},
      {CURLE_OK, 404, StatusCode::kNotFound, "http_4xx"},
      {CURLE_OK, 405, StatusCode::kFailedPrecondition, "http_4xx"},
      {CURLE_OK, 408, StatusCode::kDeadlineExceeded, "http_4xx"},
      {CURLE_OK, 409, StatusCode::kAlreadyExists, "http_4xx"},
      {CURLE_OK, 413, StatusCode::kInvalidArgument, "http_4xx"},
      {CURLE_OK, 422, StatusCode::kInvalidArgument, "http_4xx"},
      {CURLE_OK, 429, StatusCode::kResourceExhausted, "rate_limited"},
      {CURLE_OK, 499, StatusCode::kInvalidArgument, "http_4xx"},
      {CURLE_OK, 500, StatusCode::kUnavailable, "http_5xx"},
      {CURLE_OK, 502, StatusCode::kUnavailable, "http_5xx"},
      {CURLE_OK, 503, StatusCode::kUnavailable, "http_5xx"},
      {CURLE_OK, 504, StatusCode::kUnavailable, "http_5xx"},
      {CURLE_OK, 599, StatusCode::kUnavailable, "http_5xx"},
      {CURLE_OK, 0, StatusCode::kFailedPrecondition, "http_4xx"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE("curl " + std::to_string(row.curl) + ", HTTP " + std::to_string(row.http));
    const ExchangeClass got = ClassifyExchange(row.curl, row.http);
    EXPECT_EQ(got.code, row.code) << StatusCodeName(got.code);
    EXPECT_EQ(got.outcome, row.outcome);
  }
}

// The rows a client retries are exactly the transient ones, and none is kAborted (status.h).
TEST(StatusTable, RetryableRowsAreTimeoutsTransportRateLimitsAnd5xx) {
  for (long http = 100; http < 600; ++http) {  // NOLINT(google-runtime-int)
    const ExchangeClass got = ClassifyExchange(CURLE_OK, http);
    EXPECT_NE(got.code, StatusCode::kAborted) << http;
    const bool transient = http == 408 || http == 429 || http >= 500;
    EXPECT_EQ(IsRetryable(got.code), transient) << http;
  }
  for (int curl = 1; curl < CURL_LAST; ++curl) {
    const ExchangeClass got = ClassifyExchange(curl, 0);
    EXPECT_NE(got.code, StatusCode::kAborted) << curl;
    const bool unusable_request =
        curl == CURLE_URL_MALFORMAT || curl == CURLE_UNSUPPORTED_PROTOCOL || curl == CURLE_BAD_FUNCTION_ARGUMENT;
    EXPECT_EQ(IsRetryable(got.code), !unusable_request) << curl;
  }
}

TEST(SecretRedactor, MasksEveryRememberedSecretAndIgnoresShortOnes) {
  SecretRedactor redactor;
  redactor.Remember("hunter2-password");
  redactor.Remember("abc");  // too short to scrub safely
  redactor.Remember("");
  EXPECT_EQ(redactor.Redact("login hunter2-password failed; hunter2-password again"),
            "login *** failed; *** again");
  EXPECT_EQ(redactor.Redact("abc stays"), "abc stays");
  // A secret containing another is masked whole.
  redactor.Remember("hunter2-password-and-more");
  EXPECT_EQ(redactor.Redact("x hunter2-password-and-more y"), "x *** y");
}

TEST(SecretRedactor, ForgetsTheOldestButARememberedAgainSecretIsNewest) {
  SecretRedactor redactor(3);
  redactor.Remember("password-1");
  redactor.Remember("token-0001");
  redactor.Remember("password-1");  // re-read: now the newest
  redactor.Remember("token-0002");
  redactor.Remember("token-0003");  // evicts token-0001, the oldest
  EXPECT_EQ(redactor.Redact("password-1 token-0001 token-0002 token-0003"), "*** token-0001 *** ***");
}

}  // namespace
}  // namespace pwrcell::adapters
