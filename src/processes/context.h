// What every process of SPEC section 3 is handed: the ports it talks through and the settings it
// obeys. Handlers are plain objects built over a Context; a composition root (serve, tests) owns
// the ports and the Context. Nothing another process (another serve instance, a Lambda
// function) would need is kept in a handler or in the Context: it lives in the Coordination port.
//
// Thread-safety: Context members are thread-safe (ports are); a handler object may be called
// from several worker threads at once.
#pragma once

#include <functional>
#include <string>

#include "common/metrics.h"
#include "common/time.h"
#include "domain/remote_state.h"
#include "ports/clock.h"
#include "ports/coordination.h"
#include "ports/device_store.h"
#include "ports/queue.h"

namespace pwrcell::processes {

struct Settings {
  std::string adapter_name = "pwrcell-adapter";
  bool auto_commissioning = false;
  Duration offline_timeout = std::chrono::seconds(900);
  Duration record_interval = std::chrono::seconds(300);  // of the telemetry source (startup grace)
  Duration metadata_refresh = std::chrono::hours(24);
  int page_size = 100;
  int status_batch_size = 100;
  // A get_metadata or commission request is not repeated for the same system sooner than this
  // (the registrar sweeps every minute; CES or Concerto may be slow or down).
  Duration request_repeat_after = std::chrono::minutes(10);
  // A queued request (list_assets, update_remote_state) not finished after this long is considered
  // lost (dead-lettered) and another may be queued; also the lease of one commissioning run.
  Duration list_assets_expiry = std::chrono::minutes(10);
  // How long a commissioning run (renewed before each step) or a remote_state send to one target
  // holds its claim before another worker may take over: the queues' visibility timeout, so a
  // message redelivered after a crash finds the claim expired. Expiring under a very slow call
  // costs at most a repeated idempotent step or a repeated state, never a duplicate asset.
  Duration work_lease = std::chrono::seconds(60);
  // The registrar poll's interval: the polls of several processes on one store are throttled to
  // one per (about) this interval, as one adapter would poll.
  Duration registrar_poll = std::chrono::seconds(60);
};

struct Context {
  ports::DeviceStore& devices;
  ports::Queue& concerto_queue;            // control: list_assets, commission, update_remote_state
  ports::Queue& concerto_telemetry_queue;  // push_telemetry
  ports::Queue& ces_queue;
  const ports::Clock& clock;
  Metrics& metrics;
  // Everything shared between invocations (leases, throttles, the states Concerto accepted, the
  // startup-grace watermark): in the store, never in this process's memory (shared_state.h).
  ports::Coordination& coordination;
  Settings settings;
  // How far the telemetry source has got (stream lag); decides the end of the startup grace
  // together with the watermark in the store (shared_state.h). Unset: no startup grace at all
  // (unit tests); a source that reports no lag (HTTP ingest) keeps the grace for offline_timeout.
  std::function<domain::SourceProgress()> source_progress;
};

}  // namespace pwrcell::processes
