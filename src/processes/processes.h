// The process graph of SPEC section 3, wired once for every composition root: `serve`
// (runtime/serve/serve.cc) and the Lambda functions (runtime/lambda/functions.cc) build the same
// handlers over the same Context, each handler handed the others it calls (the registrar the
// metadata processor, the Concerto gateway the registrar, the PWRcell gateway the metadata and
// CES state processors). What differs between the roots (which ports back the Context, the
// Concerto and CES clients' rate shares, where simulated records go) is passed in.
//
// Not copyable or movable: the handlers keep references to `context` and to each other. The
// ports in the Context and the two clients must outlive it. Thread-safety: as the handlers'.
#pragma once

#include "common/status.h"
#include "common/time.h"
#include "ports/ces_api.h"
#include "ports/concerto_api.h"
#include "processes/ces_state.h"
#include "processes/concerto_gateway.h"
#include "processes/context.h"
#include "processes/device_metadata_processor.h"
#include "processes/pwrcell_gateway.h"
#include "processes/registrar.h"
#include "processes/simulated_systems.h"
#include "processes/telemetry_processor.h"

namespace pwrcell::processes {

struct Processes {
  // `simulated_interval` and `simulated_sink` are SimulatedTelemetry's (the sink receives the
  // records of the simulated systems: serve's ingest queue, a function's telemetry processor).
  Processes(Context context, ports::ConcertoApi& concerto, ports::CesApi& ces, Duration simulated_interval,
            SimulatedTelemetry::Sink simulated_sink);
  Processes(const Processes&) = delete;
  Processes& operator=(const Processes&) = delete;

  Context context;
  TelemetryProcessor telemetry;
  DeviceMetadataProcessor metadata;
  CesStateProcessor ces_state;
  Registrar registrar;
  RegistrarPoller registrar_poller;
  CesStatePoller ces_poller;
  ConcertoGateway concerto_gateway;
  PwrcellGateway pwrcell_gateway;
  SimulatedTelemetry simulated;
};

// A Concerto (or CES) call that failed because the service is down or shedding load, not because
// of the request: unreachable or failing after the client's retries (kUnavailable: transport
// errors, HTTP 5xx), timing out (kDeadlineExceeded) or rate limiting beyond them
// (kResourceExhausted: HTTP 429, a Retry-After too long to wait for). serve's concerto and ces
// pools then pause and probe (WorkerOptions::outage) and back off with the outage schedule; a
// Lambda function leaves the rest of its batch and delays it by the outage backoff (functions.cc
// RetryDelay). docs/RESILIENCE.md, "Long outages".
bool IsOutage(const Status& status);

}  // namespace pwrcell::processes
