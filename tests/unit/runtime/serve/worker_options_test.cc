#include "runtime/serve/worker_options.h"

#include <gtest/gtest.h>

#include <chrono>

namespace pwrcell::runtime::serve {
namespace {

using std::chrono::seconds;

TEST(PoolOptionsFromConfig, Defaults) {
  const PoolOptions pools = PoolOptionsFromConfig(config::Config{});
  EXPECT_EQ(pools.telemetry.name, "telemetry");
  EXPECT_EQ(pools.telemetry.threads, 2);
  EXPECT_EQ(pools.telemetry.batch, 500u);
  EXPECT_EQ(pools.concerto.name, "concerto");
  EXPECT_EQ(pools.concerto.threads, 10);
  EXPECT_EQ(pools.concerto.batch, 1u);
  EXPECT_EQ(pools.ces.name, "ces");
  EXPECT_EQ(pools.ces.threads, 4);
  EXPECT_EQ(pools.ces.batch, 1u);
  for (const WorkerOptions* pool : {&pools.telemetry, &pools.concerto, &pools.ces}) {
    EXPECT_EQ(pool->visibility_timeout, seconds(60)) << pool->name;
    EXPECT_EQ(pool->max_receives, 5) << pool->name;
    EXPECT_EQ(pool->retry_base, seconds(5)) << pool->name;
    EXPECT_EQ(pool->retry_max, seconds(60)) << pool->name;
    EXPECT_FALSE(pool->batch_scope) << pool->name;  // the composition root adds the store's
  }
}

TEST(PoolOptionsFromConfig, ThreadsComeFromEachServicesWorkers) {
  config::Config cfg;
  cfg.concerto.workers = 3;
  cfg.ces.workers = 1;
  const PoolOptions pools = PoolOptionsFromConfig(cfg);
  EXPECT_EQ(pools.concerto.threads, 3);
  EXPECT_EQ(pools.ces.threads, 1);
  EXPECT_EQ(pools.telemetry.threads, 2);
}

WorkerOptions ForVisibility(int visibility_timeout_s, int max_receives = 5) {
  config::QueuesConfig queues;
  queues.visibility_timeout_s = seconds(visibility_timeout_s);
  queues.max_receives = max_receives;
  return WorkerOptionsFromConfig(queues, "q", 1, 1);
}

TEST(WorkerOptionsFromConfig, RetryBaseIsFiveSecondsAtMostTheVisibilityTimeout) {
  EXPECT_EQ(ForVisibility(1).retry_base, seconds(1));
  EXPECT_EQ(ForVisibility(4).retry_base, seconds(4));
  EXPECT_EQ(ForVisibility(5).retry_base, seconds(5));
  EXPECT_EQ(ForVisibility(6).retry_base, seconds(5));
  EXPECT_EQ(ForVisibility(3600).retry_base, seconds(5));
}

TEST(WorkerOptionsFromConfig, RetryMaxIsTheVisibilityTimeoutAtLeastSixtySeconds) {
  EXPECT_EQ(ForVisibility(1).retry_max, seconds(60));
  EXPECT_EQ(ForVisibility(10).retry_max, seconds(60));
  EXPECT_EQ(ForVisibility(60).retry_max, seconds(60));
  EXPECT_EQ(ForVisibility(61).retry_max, seconds(61));
  EXPECT_EQ(ForVisibility(600).retry_max, seconds(600));
}

TEST(WorkerOptionsFromConfig, AnOutageBacksOffFromTheVisibilityTimeoutUpToTwoHours) {
  const WorkerOptions defaults = ForVisibility(60);
  EXPECT_EQ(defaults.outage_retry_base, seconds(60));
  EXPECT_EQ(defaults.outage_retry_max, std::chrono::hours(2));
  // The defaults' 5 deliveries span 60 + 120 + 240 + 480 s = 15 min of an outage the probe misses.
  Duration spanned = Duration::zero();
  for (int n = 1; n < 5; ++n) spanned += QueueWorkers::OutageRetryDelay(defaults, n);
  EXPECT_EQ(spanned, seconds(900));
  EXPECT_EQ(QueueWorkers::OutageRetryDelay(defaults, 30), std::chrono::hours(2));
  EXPECT_EQ(ForVisibility(2).outage_retry_base, seconds(2));
}

TEST(WorkerOptionsFromConfig, CopiesTheQueueSettingsAndThePoolShape) {
  const WorkerOptions options = ForVisibility(10, 7);
  EXPECT_EQ(options.name, "q");
  EXPECT_EQ(options.visibility_timeout, seconds(10));
  EXPECT_EQ(options.max_receives, 7);
  // With a 10 s visibility timeout, 5 deliveries still span 5 + 10 + 20 + 40 s of outage.
  EXPECT_EQ(QueueWorkers::RetryDelay(ForVisibility(10), 1), seconds(5));
  EXPECT_EQ(QueueWorkers::RetryDelay(ForVisibility(10), 4), seconds(40));
  EXPECT_EQ(QueueWorkers::RetryDelay(ForVisibility(10), 5), seconds(60));
}

}  // namespace
}  // namespace pwrcell::runtime::serve
