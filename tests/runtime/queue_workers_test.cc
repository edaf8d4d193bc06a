// QueueWorkers (src/runtime/serve/queue_workers.h): each message's Status decides its fate.
// Real worker threads over the memory queue; the tests wait for the outcome (no timing asserts).
#include "runtime/serve/queue_workers.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "adapters/memory/clocks.h"
#include "adapters/memory/memory_queue.h"
#include "processes/processes.h"

namespace pwrcell::runtime::serve {
namespace {

using namespace std::chrono_literals;

// Polls `done` until it holds or 20 s pass (a generous bound, not a measurement).
template <class F>
bool Eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

class QueueWorkersTest : public ::testing::Test {
 protected:
  // spdlog's registry is a function-local static of the (uninstrumented) shared library: made here,
  // on the test's thread, rather than by the first of several workers that log at once, which
  // ThreadSanitizer reports as a race in spdlog's initialization (serve logs before it starts
  // any worker).
  QueueWorkersTest() { spdlog::default_logger(); }

  static constexpr int kMaxReceives = 3;
  adapters::FakeClock clock;
  adapters::MemoryQueue queue{clock, kMaxReceives};
  Metrics metrics;

  WorkerOptions Options() {
    WorkerOptions o;
    o.name = "test";
    o.threads = 1;
    o.idle_poll = 5ms;
    o.max_receives = kMaxReceives;
    return o;
  }

  ports::QueueStats Stats() { return *queue.Stats(); }
  double Outcome(const char* outcome) {
    return metrics.Value("pwrcell_queue_messages_total", {{"pool", "test"}, {"outcome", outcome}});
  }
};

TEST_F(QueueWorkersTest, SuccessDeletesTheMessage) {
  ASSERT_TRUE(queue.Send({"a"}).ok());
  QueueWorkers workers(
      Options(), {&queue}, [](const auto& batch) { return std::vector<Status>(batch.size()); }, metrics);
  workers.Start();
  ASSERT_TRUE(Eventually([&] { return Outcome("done") == 1; }));
  workers.Stop();
  const auto stats = Stats();
  EXPECT_EQ(stats.visible + stats.in_flight + stats.dead_letter, 0U);
}

TEST_F(QueueWorkersTest, RetryableFailureHidesTheMessageForTheBackoffThenItComesBack) {
  ASSERT_TRUE(queue.Send({"a"}).ok());
  std::atomic<int> calls{0};
  QueueWorkers workers(
      Options(), {&queue},
      [&](const auto& batch) {
        ++calls;
        return std::vector<Status>(batch.size(), UnavailableError("down"));
      },
      metrics);
  workers.Start();
  ASSERT_TRUE(Eventually([&] { return Outcome("retry") == 1; }));
  EXPECT_EQ(Stats().in_flight, 1U);  // hidden for the backoff (5 s after the first delivery)
  clock.Advance(5s);
  ASSERT_TRUE(Eventually([&] { return Outcome("retry") == 2; }));
  EXPECT_EQ(calls.load(), 2);
  workers.Stop();
}

TEST_F(QueueWorkersTest, RetryableFailureOnTheLastDeliveryIsDeadLetteredAndCounted) {
  ASSERT_TRUE(queue.Send({"a"}).ok());
  QueueWorkers workers(
      Options(), {&queue},
      [&](const auto& batch) { return std::vector<Status>(batch.size(), UnavailableError("down")); }, metrics);
  workers.Start();
  ASSERT_TRUE(Eventually([&] { return Outcome("retry") == 1; }));
  clock.Advance(5s);
  ASSERT_TRUE(Eventually([&] { return Outcome("retry") == 2; }));
  clock.Advance(10s);
  // Delivery 3 of 3 fails: dead-lettered by the worker at once, not silently by a later receive.
  ASSERT_TRUE(Eventually([&] { return Outcome("dead_letter") == 1; }));
  workers.Stop();
  EXPECT_EQ(Stats().dead_letter, 1U);
  EXPECT_EQ(Outcome("retry"), 2);
}

TEST_F(QueueWorkersTest, WhileTheStoreIsInTroubleThePoolReceivesNothingAndResumesAfter) {
  ASSERT_TRUE(queue.Send({"a"}).ok());
  std::atomic<bool> trouble{true};
  std::atomic<int> checks{0};
  WorkerOptions options = Options();
  options.store_trouble = [&] {
    ++checks;
    return trouble.load();
  };
  QueueWorkers workers(
      options, {&queue}, [](const auto& batch) { return std::vector<Status>(batch.size()); }, metrics);
  workers.Start();
  ASSERT_TRUE(Eventually([&] { return checks.load() >= 5; }));
  EXPECT_EQ(Stats().visible, 1U) << "received while the store could not be written";
  EXPECT_EQ(Outcome("done"), 0);
  trouble = false;
  ASSERT_TRUE(Eventually([&] { return Outcome("done") == 1; }));
  workers.Stop();
}

TEST_F(QueueWorkersTest, AFailureOnTheLastDeliveryWhileTheStoreIsInTroubleIsNotDeadLettered) {
  ASSERT_TRUE(queue.Send({"a"}).ok());
  // The store fails during the handling of the last delivery (a full disk): not the message's fault.
  std::atomic<bool> trouble{false};
  std::atomic<int> deliveries{0};
  WorkerOptions options = Options();
  options.store_trouble = [&] { return trouble.load(); };
  QueueWorkers workers(
      options, {&queue},
      [&](const auto& batch) {
        if (++deliveries == kMaxReceives) trouble = true;
        return std::vector<Status>(batch.size(), UnavailableError("database or disk is full"));
      },
      metrics);
  workers.Start();
  ASSERT_TRUE(Eventually([&] { return Outcome("retry") == 1; }));
  clock.Advance(5s);
  ASSERT_TRUE(Eventually([&] { return Outcome("retry") == 2; }));
  clock.Advance(10s);
  ASSERT_TRUE(Eventually([&] { return Outcome("retry") == 3; }));
  workers.Stop();
  EXPECT_EQ(Outcome("dead_letter"), 0);
  EXPECT_EQ(Stats().dead_letter, 0U);
  EXPECT_EQ(Stats().in_flight, 1U);  // rescheduled like any retry
}

TEST_F(QueueWorkersTest, PermanentFailureIsDeadLetteredAtOnce) {
  ASSERT_TRUE(queue.Send({"a"}).ok());
  QueueWorkers workers(
      Options(), {&queue},
      [](const auto& batch) { return std::vector<Status>(batch.size(), InvalidArgumentError("bad")); }, metrics);
  workers.Start();
  ASSERT_TRUE(Eventually([&] { return Outcome("dead_letter") == 1; }));
  workers.Stop();
  EXPECT_EQ(Stats().dead_letter, 1U);
  EXPECT_EQ(Outcome("retry"), 0);
}

// A scope that records, in one shared log, when it opens and commits.
class LoggingScope final : public BatchScope {
 public:
  explicit LoggingScope(std::vector<std::string>* log) : log_(log) { log_->push_back("open"); }
  Status Commit() override {
    log_->push_back("commit");
    return Status::Ok();
  }

 private:
  std::vector<std::string>* log_;
};

TEST_F(QueueWorkersTest, APreparedHandlersFirstStepRunsBetweenTheReceiveUnitAndTheRoundUnit) {
  ASSERT_TRUE(queue.SendBatch({"a", "b", "c"}).ok());
  std::vector<std::string> log;  // only the one worker thread writes it while it runs
  WorkerOptions options = Options();
  options.batch = 3;
  options.batch_scope = [&log]() -> Result<std::unique_ptr<BatchScope>> {
    return std::unique_ptr<BatchScope>(std::make_unique<LoggingScope>(&log));
  };
  std::atomic<int> rounds{0};
  QueueWorkers workers(options, {&queue},
                       QueueWorkers::PreparedHandler([&](const std::vector<ports::ReceivedMessage>& batch) {
                         log.push_back("prepare " + std::to_string(batch.size()));
                         return std::function<std::vector<Status>()>([&log, &rounds, n = batch.size()] {
                           log.push_back("apply");
                           ++rounds;
                           return std::vector<Status>(n);
                         });
                       }),
                       metrics);
  workers.Start();
  ASSERT_TRUE(Eventually([&] { return Outcome("done") == 3; }));
  workers.Stop();
  ASSERT_EQ(rounds.load(), 1);
  // The first entries: the receive unit, the first step outside it, then the round's unit (idle
  // polls afterwards open and commit empty receive units).
  ASSERT_GE(log.size(), 6U);
  EXPECT_EQ(std::vector<std::string>(log.begin(), log.begin() + 6),
            (std::vector<std::string>{"open", "commit", "prepare 3", "open", "apply", "commit"}));
  const auto stats = Stats();
  EXPECT_EQ(stats.visible + stats.in_flight + stats.dead_letter, 0U);
}

TEST_F(QueueWorkersTest, AnOutagePausesThePoolSoThatNoMessageIsDeadLetteredHoweverLongItLasts) {
  ASSERT_TRUE(queue.SendBatch({"a", "b", "c", "d", "e"}).ok());
  std::atomic<bool> down{true};
  std::atomic<int> handled{0};
  std::atomic<int> probes{0};
  WorkerOptions options = Options();
  options.threads = 2;
  options.batch = 1;
  options.outage = [](const Status& s) { return s.code() == StatusCode::kUnavailable; };
  options.probe = [&]() -> Status {
    ++probes;
    return down.load() ? UnavailableError("still down") : Status::Ok();
  };
  options.pause_base = 1ms;
  options.pause_max = 4ms;
  QueueWorkers workers(
      options, {&queue},
      [&](const auto& batch) {
        ++handled;
        return std::vector<Status>(batch.size(), down.load() ? UnavailableError("connection refused") : Status::Ok());
      },
      metrics);
  workers.Start();
  // Far more probes than max_receives (3) deliveries would allow without the pause.
  ASSERT_TRUE(Eventually([&] { return probes.load() >= 20; }));
  EXPECT_LE(handled.load(), 2) << "while paused, only the messages in flight when it began were handled";
  EXPECT_EQ(Stats().dead_letter, 0U);
  down.store(false);
  clock.Advance(std::chrono::minutes(10));  // the two failed messages' retry delay
  ASSERT_TRUE(Eventually([&] { return Outcome("done") == 5; }));
  workers.Stop();
  EXPECT_EQ(Stats().dead_letter, 0U);
  EXPECT_EQ(metrics.Value("pwrcell_queue_pool_pauses_total", {{"pool", "test"}}), 1);
  EXPECT_GE(metrics.Value("pwrcell_queue_pool_probes_total", {{"pool", "test"}, {"outcome", "ok"}}), 1);
}

TEST_F(QueueWorkersTest, RepeatedOutagesNeverUseUpAMessagesDeliveries) {
  // Outage after outage, each confirmed by a failed probe and each ended by an answered one: the
  // message fails on every delivery, far more often than max_receives (3). It is queued again
  // with its deliveries starting over instead of dead-lettered, however many outages there are.
  ASSERT_TRUE(queue.Send("a").ok());
  std::atomic<int> handled{0};
  std::atomic<int> probes{0};
  WorkerOptions options = Options();
  options.batch = 1;
  options.outage = processes::IsOutage;
  // Odd probes (right after a failure) fail: an outage; even ones (the pause's) answer: it ended.
  options.probe = [&]() -> Status { return ++probes % 2 == 1 ? UnavailableError("connection refused") : Status::Ok(); };
  options.pause_base = 1ms;
  options.pause_max = 1ms;
  QueueWorkers workers(
      options, {&queue},
      [&](const auto& batch) {
        ++handled;
        return std::vector<Status>(batch.size(), ResourceExhaustedError("HTTP 429, Retry-After 3600"));
      },
      metrics);
  workers.Start();
  ASSERT_TRUE(Eventually([&] {
    clock.Advance(std::chrono::minutes(10));  // past every retry delay
    return handled.load() >= 4 * kMaxReceives;
  }));
  workers.Stop();
  EXPECT_EQ(Stats().dead_letter, 0U);
  EXPECT_EQ(Stats().visible + Stats().in_flight, 1U) << "the message is still queued";
  EXPECT_GE(Outcome("requeued"), 3);
  EXPECT_EQ(Outcome("dead_letter"), 0);
  EXPECT_GE(metrics.Value("pwrcell_queue_pool_pauses_total", {{"pool", "test"}}), 4 * kMaxReceives - 1);
  // Stopped in the middle of one of the outages or between two: the gauge says which.
  EXPECT_EQ(metrics.Value("pwrcell_queue_pool_paused", {{"pool", "test"}}), probes.load() % 2 == 1 ? 1 : 0);
}

TEST_F(QueueWorkersTest, AMessageThatFailsWhileTheServiceAnswersUsesUpItsDeliveries) {
  // The same outage status, but the probe is answered: the message is at fault, not the service,
  // so its max_receives deliveries end in the dead-letter store (not queued again for ever).
  ASSERT_TRUE(queue.Send("a").ok());
  WorkerOptions options = Options();
  options.batch = 1;
  options.outage = processes::IsOutage;
  options.probe = [] { return Status::Ok(); };
  QueueWorkers workers(
      options, {&queue},
      [](const auto& batch) { return std::vector<Status>(batch.size(), UnavailableError("HTTP 502 on this one")); },
      metrics);
  workers.Start();
  ASSERT_TRUE(Eventually([&] {
    clock.Advance(std::chrono::minutes(10));
    return Outcome("dead_letter") == 1;
  }));
  workers.Stop();
  EXPECT_EQ(Stats().dead_letter, 1U);
  EXPECT_EQ(Outcome("requeued"), 0);
  EXPECT_EQ(Outcome("retry"), kMaxReceives - 1);
  EXPECT_EQ(metrics.Value("pwrcell_queue_pool_pauses_total", {{"pool", "test"}}), 0);
}

TEST(IsOutageTest, OutagesAreUnreachableFailingTimingOutOrRateLimiting) {
  EXPECT_TRUE(processes::IsOutage(UnavailableError("HTTP 503")));
  EXPECT_TRUE(processes::IsOutage(DeadlineExceededError("timed out")));
  EXPECT_TRUE(processes::IsOutage(ResourceExhaustedError("HTTP 429")));
  EXPECT_FALSE(processes::IsOutage(Status::Ok()));
  EXPECT_FALSE(processes::IsOutage(UnauthenticatedError("credentials rejected")));
  EXPECT_FALSE(processes::IsOutage(InvalidArgumentError("HTTP 400")));
  EXPECT_FALSE(processes::IsOutage(InternalError("unparsable answer")));
}

TEST_F(QueueWorkersTest, AFailureWhileTheProbeIsAnsweredIsNotAnOutage) {
  // One operation failing (the probe is answered, even if refused) must not pause the pool: the
  // message takes the usual retry path and the others go on.
  for (Status probe_answer : {Status::Ok(), PermissionDeniedError("the probe is not allowed")}) {
    Metrics local;
    adapters::MemoryQueue q{clock, kMaxReceives};
    ASSERT_TRUE(q.SendBatch({"fails", "b", "c"}).ok());
    WorkerOptions options = Options();
    options.batch = 1;
    options.outage = [](const Status& s) { return s.code() == StatusCode::kUnavailable; };
    options.probe = [probe_answer] { return probe_answer; };
    QueueWorkers workers(
        options, {&q},
        [](const std::vector<ports::ReceivedMessage>& batch) {
          std::vector<Status> results;
          for (const auto& m : batch) {
            results.push_back(m.body == "fails" ? UnavailableError("HTTP 502 on one operation") : Status::Ok());
          }
          return results;
        },
        local);
    workers.Start();
    ASSERT_TRUE(Eventually([&] {
      return local.Value("pwrcell_queue_messages_total", {{"pool", "test"}, {"outcome", "done"}}) == 2;
    }));
    workers.Stop();
    EXPECT_EQ(local.Value("pwrcell_queue_messages_total", {{"pool", "test"}, {"outcome", "retry"}}), 1);
    EXPECT_EQ(local.Value("pwrcell_queue_pool_pauses_total", {{"pool", "test"}}), 0);
    EXPECT_EQ(local.Value("pwrcell_queue_pool_probes_total", {{"pool", "test"}, {"outcome", "ok"}}), 1);
    EXPECT_EQ(q.Stats()->in_flight, 1U) << "the failed message waits for its retry delay";
  }
}

TEST_F(QueueWorkersTest, WithoutAnOutagePredicateAnUnavailableServiceUsesTheRetryBackoff) {
  ASSERT_TRUE(queue.Send("a").ok());
  QueueWorkers workers(
      Options(), {&queue},
      [](const auto& batch) { return std::vector<Status>(batch.size(), UnavailableError("connection refused")); },
      metrics);
  workers.Start();
  ASSERT_TRUE(Eventually([&] { return Outcome("retry") == 1; }));
  workers.Stop();
  EXPECT_EQ(metrics.Value("pwrcell_queue_pool_pauses_total", {{"pool", "test"}}), 0);
}

TEST_F(QueueWorkersTest, RetryDelayDoublesFromTheBaseUpToTheCap) {
  WorkerOptions o = Options();
  o.retry_base = 5s;
  o.retry_max = 60s;
  EXPECT_EQ(QueueWorkers::RetryDelay(o, 1), Duration(5s));
  EXPECT_EQ(QueueWorkers::RetryDelay(o, 2), Duration(10s));
  EXPECT_EQ(QueueWorkers::RetryDelay(o, 4), Duration(40s));
  EXPECT_EQ(QueueWorkers::RetryDelay(o, 5), Duration(60s));
  EXPECT_EQ(QueueWorkers::RetryDelay(o, 30), Duration(60s));
}

}  // namespace
}  // namespace pwrcell::runtime::serve
