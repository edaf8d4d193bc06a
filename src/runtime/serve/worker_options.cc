#include "runtime/serve/worker_options.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace pwrcell::runtime::serve {

WorkerOptions WorkerOptionsFromConfig(const config::QueuesConfig& queues, std::string name, int threads,
                                      std::size_t batch) {
  const Duration visibility = queues.visibility_timeout_s;
  WorkerOptions options;
  options.name = std::move(name);
  options.threads = threads;
  options.batch = batch;
  options.visibility_timeout = visibility;
  options.max_receives = queues.max_receives;
  // The backoff between deliveries, not the visibility timeout, decides how long a run of
  // failures the max_receives deliveries of a message span before it is dead-lettered: capped at
  // the visibility timeout, a short one (10 s) buried telemetry after ~45 s of Concerto outage.
  // With a cap of at least 60 s, 5 deliveries span 5+10+20+40 s.
  options.retry_max = std::max(visibility, Duration(std::chrono::seconds(60)));
  options.retry_base = std::min(Duration(std::chrono::seconds(5)), visibility);
  // A failure that is an outage (the service down or rate limiting) backs off from the
  // visibility timeout up to two hours: 5 deliveries span 60+120+240+480 s = 15 min with the
  // defaults, even where the pool's probe cannot see the outage. Where it can, the pool pauses
  // and a message's deliveries are never what ends it (WorkerOptions::outage). The Lambda
  // functions use the same two schedules (SQS counts their receives).
  options.outage_retry_base = visibility;
  options.outage_retry_max = std::chrono::hours(2);
  return options;
}

PoolOptions PoolOptionsFromConfig(const config::Config& config) {
  return PoolOptions{
      // The telemetry handler makes no network call: the writes of a whole round (up to 500
      // records: update their devices, queue their points, delete them) can be one transaction.
      // 500 records of ~57 points fill ~57 messages of 500 points, so the last, partly filled
      // message of a round costs little (>= 475 points per Concerto call on average).
      .telemetry = WorkerOptionsFromConfig(config.queues, "telemetry", 2, 500),
      .concerto = WorkerOptionsFromConfig(config.queues, "concerto", config.concerto.workers, 1),
      .ces = WorkerOptionsFromConfig(config.queues, "ces", config.ces.workers, 1),
  };
}

QueueWorkers::PreparedHandler TelemetryPoolHandler(processes::TelemetryProcessor& processor) {
  return [&processor](const std::vector<ports::ReceivedMessage>& batch) {
    std::vector<processes::StreamRecord> records;
    records.reserve(batch.size());
    for (const auto& m : batch) records.push_back({m.body, m.id});
    return processor.Prepare(records);
  };
}

}  // namespace pwrcell::runtime::serve
