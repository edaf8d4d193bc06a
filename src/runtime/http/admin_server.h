// The admin server of `pwrcell-adapter serve` (SPEC section 8: "Admin HTTP on 127.0.0.1: health,
// Prometheus metrics, device API, a dashboard page"). Read-only; binds admin.listen, which the
// configuration defaults to loopback because nothing here is authenticated.
//
//   GET /healthz              200 {"status":"ok"} while the process serves requests at all.
//   GET /readyz               200 {"status":"ready"} when the readiness hook says so, else
//                             503 {"status":"not ready","reason":"..."}, with "store": "disk full:
//                             ..." (read-only, I/O error) while the store cannot be written.
//   GET /metrics              Prometheus text format 0.0.4 of the Metrics registry, after the
//                             refresh-gauges hook has run.
//   GET /api/devices          {"count": n, "devices": [record, ...]}, ordered by remote_id; each
//                             record is domain::ToJson plus "kind": "simulated" | "real".
//                             Filters (combinable): ?remote_state=ONLINE|OFFLINE|ERROR,
//                             ?simulated=true|false; another value answers 400.
//   GET /api/devices/{id}     the one record, or 404 {"error":"no device with remote_id X"}.
//   GET /                     a self-contained HTML dashboard refreshing from /api/devices.
// A device store error answers 503 {"error": "<status>"}. Other methods on these paths: 405;
// other paths: 404; both with {"error": ...}.
//
// Thread-safety: requests are served on a small pool of worker threads, so the hooks are called
// concurrently (and concurrently with the rest of the program) and must be thread-safe; the
// DeviceStore and Metrics are. Start() and Stop() are for the owning thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "common/metrics.h"
#include "common/status.h"
#include "config/config.h"
#include "ports/device_store.h"

namespace pwrcell::runtime::http {

class Listener;

struct AdminHooks {
  // Whether the adapter is ready, and if not why ("telemetry source catching up"). Unset: always
  // ready.
  std::function<std::pair<bool, std::string>()> readiness;
  // Sets the gauges a scrape should see (queue depths, DLQ sizes, devices by remote_state and
  // commissioning). Called before every /metrics render. Unset: nothing to refresh.
  std::function<void()> refresh_gauges;
  // Why the store cannot be written ("disk full: ..."), or empty while it can; a non-empty answer
  // is added to /readyz's body as "store". Unset: nothing added.
  std::function<std::string()> store_trouble;
};

class AdminServer {
 public:
  // `devices` and `metrics` must outlive the server.
  AdminServer(config::AdminConfig config, ports::DeviceStore& devices, Metrics& metrics, AdminHooks hooks = {});
  ~AdminServer();  // Stop()s
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds the admin address and serves on a thread of its own. Errors: kUnavailable
  // "cannot listen on 127.0.0.1:8071: address in use" (or another reason); kFailedPrecondition
  // when already started.
  Status Start();

  // Stops accepting connections and returns once the requests in progress have been answered.
  // Idempotent.
  void Stop();

  // The bound port (the free port chosen for port 0); 0 before Start() succeeded.
  int port() const;

 private:
  config::AdminConfig config_;
  ports::DeviceStore& devices_;
  Metrics& metrics_;
  AdminHooks hooks_;
  std::unique_ptr<Listener> listener_;
};

}  // namespace pwrcell::runtime::http
