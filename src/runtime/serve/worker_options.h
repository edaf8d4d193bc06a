// The options of serve's three worker pools, derived from the configuration: a pure function, so
// the retry schedule a deployment gets is unit-tested rather than read out of the composition root.
#pragma once

#include <cstddef>
#include <string>

#include "config/config.h"
#include "processes/telemetry_processor.h"
#include "runtime/serve/queue_workers.h"

namespace pwrcell::runtime::serve {

// One pool over queues configured by `queues`: visibility_timeout and max_receives as configured;
// retry_base = min(5 s, visibility_timeout); retry_max = max(visibility_timeout, 60 s);
// outage_retry_base = visibility_timeout; outage_retry_max = 2 h.
WorkerOptions WorkerOptionsFromConfig(const config::QueuesConfig& queues, std::string name, int threads,
                                      std::size_t batch);

struct PoolOptions {
  WorkerOptions telemetry;  // "telemetry": 2 threads, rounds of 500 records (no network call in a round)
  WorkerOptions concerto;   // "concerto": [concerto] workers threads, one message at a time
  WorkerOptions ces;        // "ces": [ces] workers threads, one message at a time
};

// No batch_scope is set: the composition root that owns the store adds the telemetry pool's.
PoolOptions PoolOptionsFromConfig(const config::Config& config);

// The telemetry pool's handler: the round's ingest-queue messages as stream records for
// `processor`, prepared (decoded, matched, mapped, encoded) outside the round's unit of work and
// applied inside it. `processor` must outlive the pool.
QueueWorkers::PreparedHandler TelemetryPoolHandler(processes::TelemetryProcessor& processor);

}  // namespace pwrcell::runtime::serve
