// The HTTP building blocks without a server: backoff, rate limiter, URL encoding, Retry-After.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "adapters/http/backoff.h"
#include "adapters/http/http_client.h"
#include "adapters/http/rate_limiter.h"

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
}

}  // namespace
}  // namespace pwrcell::adapters
